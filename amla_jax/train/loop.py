"""Training one network from scratch and evaluating it: `train_and_evaluate`.

One key is the only source of randomness: it splits into the initialisation key, the
per-step key (folded with the step inside the train step) and the data seed. Metrics go
to ``<run_dir>/metrics.jsonl`` and TensorBoard under the network's ``prefix``.

Synopsis::

    from amla_jax.train import train_and_evaluate
    result = train_and_evaluate(spec, dataset, cfg.optim, cfg.train, key, run_dir="runs/x")
    result.metrics["test/accuracy"], result.utilities["Cell1/Branch2"], result.scalars
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import jax
from jax.sharding import Mesh

from amla_jax import faults
from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.errors import CandidateFailed, UserError
from amla_jax.metrics import MetricWriter
from amla_jax.nn import count_flops, param_count
from amla_jax.optim import steps_for
from amla_jax.progress import progress_bar
from amla_jax.spec import NetworkSpec
from amla_jax.train.calibrate import recalibrate_batch_norm
from amla_jax.train.distributed import is_primary
from amla_jax.train.evaluate import evaluate
from amla_jax.train.nac_stats import read_scalars, read_utilities
from amla_jax.train.programs import PROGRAMS, ProgramCache, program_key
from amla_jax.train.state import (
    TrainState,
    lower_initialisation,
    model_variables,
    run_initialisation,
)
from amla_jax.train.step import data_mesh, replicate, replicated_shapes, shard_batch


class BatchSizeError(UserError):
    """A batch size does not split evenly over the devices; the message names the key."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What training one network tells a search algorithm (built once, never changed).

    Attributes:
      metrics: final scalars (``train/loss``, ``validation/accuracy``, ``test/accuracy``,
        ``test/top5`` where classes > 5, ...).
      utilities: AMLA's MeanSSS per branch, keyed ``"Cell<k>/Branch<j>"``.
      scalars: skip-edge scalars, ``{dest cellnumber: {source cellnumber: value}}``.
      num_params: trainable parameters (auxiliary heads excluded).
      steps: training steps run.
      train_seconds: wall time of the training loop, compilation excluded.
      compile_seconds: wall time spent compiling the train, eval and calibration steps
        (0 when this process compiled them before for the same spec and recipe).
      state: the final TrainState (host arrays are not copied).
      flops: forward FLOPs of one image, measured from the trained variables when
        `train_and_evaluate` is asked to (``measure_flops``), else None.
    """

    metrics: dict[str, float]
    utilities: dict[str, float]
    scalars: dict[int, dict[int, float]]
    num_params: int
    steps: int
    train_seconds: float
    compile_seconds: float
    state: Any = None
    flops: float | None = None


def _check_batch_sizes(train: TrainConfig, mesh: Mesh) -> None:
    for name, size in (
        ("train.batch_size", train.batch_size),
        ("train.eval_batch_size", train.eval_batch_size),
    ):
        if size % mesh.size:
            raise BatchSizeError(
                f"{name}: {size} is not divisible by the {mesh.size} devices; "
                f"use a multiple of {mesh.size}"
            )


def _split_size(info, split: str) -> int:
    return {"validation": info.num_validation, "test": info.num_test}[split]


@dataclasses.dataclass(frozen=True)
class _Run:
    """What the loop and the final evaluation share of one training."""

    dataset: Any
    train: TrainConfig
    mesh: Mesh
    writer: MetricWriter
    eval_splits: list[str]
    step_key: jax.Array


def _train_loop(state, train_step, eval_step, batches, first, total_steps, run: _Run) -> tuple:
    """Runs ``total_steps`` steps from ``first``; returns the state and the last logged
    train metrics (evaluating every ``train.eval_every`` steps before the last).

    Raises:
      CandidateFailed: the loss is not finite at a logging point (they already copy the
        metrics to the host, so the check costs nothing; the last step is always one).
    """
    train, writer, mesh, info = run.train, run.writer, run.mesh, run.dataset.info
    split, metrics, batch = run.eval_splits[0], {}, first
    with progress_bar(f"training {writer.prefix}", total_steps, enabled=train.progress) as advance:
        for step in range(1, total_steps + 1):
            faults.point("train")
            state, step_metrics = train_step(state, batch, run.step_key)
            if step % max(train.log_every, 1) == 0 or step == total_steps:
                metrics = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
                writer.write(step, metrics)
                _check_finite(metrics, step)
                advance(step, f"loss {metrics['train/loss']:.3f}")
            if train.eval_every and step % train.eval_every == 0 and step < total_steps:
                eval_batches = run.dataset.eval_batches(split, train.eval_batch_size)
                writer.write(
                    step, evaluate(state, eval_step, eval_batches, mesh, split, info.num_classes)
                )
            if step < total_steps:
                batch = shard_batch(next(batches), mesh)
    return state, metrics


def _check_finite(metrics: dict[str, float], step: int) -> None:
    loss = metrics.get("train/loss", 0.0)
    if not math.isfinite(loss):
        raise CandidateFailed(f"non-finite train/loss ({loss}) at step {step}", steps=step)


def _initial_state(init: jax.stages.Lowered, key: jax.Array, mesh: Mesh) -> TrainState:
    return replicate(run_initialisation(init, key), mesh)


def _measure_flops(spec: NetworkSpec, info, shapes) -> float:
    # The variables' shapes spare count_flops tracing the network's initialisation.
    return count_flops(spec, info.image_shape, info.num_classes, shapes)


def train_and_evaluate(
    spec: NetworkSpec,
    dataset,
    optim: OptimConfig,
    train: TrainConfig,
    key: jax.Array,
    run_dir: str | Path | None = None,
    prefix: str = "train",
    *,
    measure_flops: bool = False,
    programs: ProgramCache | None = None,
) -> TrainResult:
    """Trains ``spec`` from scratch on ``dataset`` and evaluates it.

    Args:
      spec: the network.
      dataset: an `amla_jax.data.Dataset`.
      optim: the recipe (optimiser, schedule, regularisation).
      train: steps/epochs, batch sizes, logging.
      key: the only source of randomness (init, dropout, data order, augmentation).
      run_dir: where metrics and TensorBoard events go (None: nowhere; process 0 only).
      prefix: this network's name in the metrics (one TensorBoard run each).
      measure_flops: also count the forward FLOPs of one image (``result.flops``).
      programs: where compiled programs are kept and reused (default: `PROGRAMS`).

    Returns:
      A `TrainResult` with final metrics, NAC statistics and timings.

    Raises:
      BatchSizeError: a batch size does not divide over the local devices.
      CandidateFailed: the training diverged (non-finite loss); stopped early.
    """
    info, mesh = dataset.info, data_mesh()
    _check_batch_sizes(train, mesh)
    steps_per_epoch = max(1, info.num_train // train.batch_size)
    total_steps = steps_for(train.epochs, train.steps, info.num_train, train.batch_size)
    init_key, step_key, data_key = jax.random.split(key, 3)
    programs = PROGRAMS if programs is None else programs
    shapes = (info.image_shape, train.batch_size, train.eval_batch_size)
    pkey = program_key(spec, info.num_classes, optim, steps_per_epoch, total_steps, shapes)
    program = programs.get(pkey)
    data_seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    batches = dataset.train_batches(data_seed, train.batch_size)
    first = shard_batch(next(batches), mesh)
    eval_splits = [s for s in ("validation", "test") if _split_size(info, s)]
    eval_example = shard_batch(
        next(dataset.eval_batches(eval_splits[-1], train.eval_batch_size)), mesh
    )
    calibrate = train.bn_calibration_batches > 0
    init = lower_initialisation(program.model, init_key, info.image_shape, program.tx)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The initialisation compiles (on another core) while the steps lower and compile
        # for its shapes; XLA compiles each program on one core.
        initialised = pool.submit(_initial_state, init, init_key, mesh)
        faults.point("compile")
        program, compile_seconds = programs.compile(
            pkey, replicated_shapes(init.out_info, mesh), first, eval_example, calibrate
        )
        state = initialised.result()
    # With several processes (`amla_jax.train.distributed`) only process 0 writes.
    writer = MetricWriter(run_dir if is_primary() else None, prefix)
    run = _Run(dataset, train, mesh, writer, eval_splits, step_key)
    started = time.perf_counter()
    # Counting FLOPs traces and lowers the forward pass once more (1-3 s on 2 cores): it
    # runs while XLA trains, not after, and outside the training's time.
    pool, flops = ThreadPoolExecutor(max_workers=1), None
    if measure_flops:  # shapes taken here: the train step donates the state
        shapes = replicated_shapes(model_variables(state), mesh)
        flops = pool.submit(_measure_flops, spec, info, shapes)
    try:
        state, metrics = _train_loop(
            state, program.train_step, program.eval_step, batches, first, total_steps, run
        )
    except CandidateFailed as failure:  # diverged: stopped early, timings added
        writer.close()
        seconds = time.perf_counter() - started
        raise CandidateFailed(failure.reason, failure.steps, seconds, compile_seconds) from None
    finally:
        pool.shutdown(wait=False)  # the count, if any, finishes; its result is read below
    if program.calibration_step is not None and calibrate:
        calibration = (shard_batch(b, mesh) for b in islice(batches, train.bn_calibration_batches))
        key = jax.random.fold_in(step_key, total_steps + 1)
        state = recalibrate_batch_norm(state, program.calibration_step, calibration, key)
    jax.block_until_ready(state.params)
    train_seconds = time.perf_counter() - started
    metrics.update(_final_metrics(state, program.eval_step, run))
    writer.write(total_steps, {k: v for k, v in metrics.items() if not k.startswith("train/")})
    writer.close()
    return TrainResult(
        metrics=metrics,
        utilities=read_utilities(state.nac_stats),
        scalars=read_scalars(state.params),
        num_params=param_count(state.params),
        steps=total_steps,
        train_seconds=train_seconds,
        compile_seconds=compile_seconds,
        state=state,
        flops=None if flops is None else flops.result(),
    )


def _final_metrics(state: TrainState, eval_step: Callable, run: _Run) -> dict[str, float]:
    """Every evaluation split's metrics (validation first, then test)."""
    metrics, num_classes = {}, run.dataset.info.num_classes
    for split in run.eval_splits:
        batches = run.dataset.eval_batches(split, run.train.eval_batch_size)
        metrics.update(evaluate(state, eval_step, batches, run.mesh, split, num_classes))
    return metrics
