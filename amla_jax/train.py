"""Training and evaluation of one network: a pure, jitted, data-parallel train step.

`train_step(state, batch, key) -> (state, metrics)` is compiled once per (spec, recipe,
batch shape) and memoised, with the state donated. It also accumulates what NAC needs
to see of a network: the per-branch MeanSSS (``nac_stats``) and the skip-edge scalars
(ordinary params), read back by `read_utilities` and `read_scalars` under AMLA's names.
Batches are sharded over every local device along a ``data`` mesh axis
(``jax.jit`` + ``NamedSharding``); the state is replicated.

Synopsis::

    from amla_jax.train import train_and_evaluate
    result = train_and_evaluate(spec, dataset, cfg.optim, cfg.train, key, run_dir="runs/x")
    result.metrics["test/accuracy"], result.utilities["Cell1/Branch2"], result.scalars
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.metrics import MetricWriter
from amla_jax.nn import build_model, init_variables, param_count
from amla_jax.optim import make_optimizer, make_schedule, steps_for
from amla_jax.progress import progress_bar
from amla_jax.spec import NetworkSpec


class TrainState(train_state.TrainState):
    """Flax's TrainState plus BatchNorm statistics, NAC statistics and the weight EMA."""

    batch_stats: Any = None
    nac_stats: Any = None
    ema_params: Any = None


@dataclasses.dataclass
class TrainResult:
    """What training one network tells a search algorithm.

    Attributes:
      metrics: final scalars (``train/loss``, ``validation/accuracy``, ``test/accuracy``,
        ``test/top5`` where classes > 5, ...).
      utilities: AMLA's MeanSSS per branch, keyed ``"Cell<k>/Branch<j>"``.
      scalars: skip-edge scalars, ``{dest cellnumber: {source cellnumber: value}}``.
      num_params: trainable parameters (auxiliary heads excluded).
      steps: training steps run.
      train_seconds: wall time of the training loop, compilation excluded.
      compile_seconds: wall time spent compiling the train and eval steps.
      state: the final TrainState (host arrays are not copied).
      flops: forward FLOPs of one image, where the caller measured them (the search's
        evaluator does; `train_and_evaluate` leaves None).
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


def data_mesh() -> Mesh:
    """A one-axis mesh over every local device; batches are split along ``data``."""
    return Mesh(np.asarray(jax.local_devices()), ("data",))


# The initialisation runs once per network, so it is compiled at XLA's -O0: seconds less
# to compile than at -O1, and its run time does not matter. (Not the BatchNorm calibration
# step: it runs a forward pass per calibration batch, which -O0 would slow on big networks.)
_RUN_ONCE = {"xla_backend_optimization_level": 0}


def create_train_state(
    model, key: jax.Array, input_shape: tuple[int, ...], tx: optax.GradientTransformation
) -> TrainState:
    """Initialises parameters, optimiser state, statistics and the EMA from ``key``.

    The initialisation is one jitted program, compiled at -O0: run eagerly, each of its
    hundreds of small ops would be compiled on its own, which took longer than compiling
    the train step.
    """

    def init(key):
        variables = init_variables(model, key, input_shape)
        params = variables["params"]
        return TrainState.create(
            apply_fn=model.apply,
            params=params,
            tx=tx,
            batch_stats=variables.get("batch_stats", {}),
            nac_stats=variables.get("nac_stats", {}),
            ema_params=jax.tree_util.tree_map(jnp.copy, params),
        )

    return jax.jit(init).lower(key).compile(compiler_options=_RUN_ONCE)(key)


def _loss_fn(
    params, state: TrainState, batch, key, optim: OptimConfig, drop_path_rate, num_classes: int
):
    variables = {"params": params, "batch_stats": state.batch_stats, "nac_stats": state.nac_stats}
    (logits, aux_logits), updates = state.apply_fn(
        variables,
        batch["image"],
        train=True,
        drop_path_rate=drop_path_rate,
        rngs={"dropout": key},
        mutable=["batch_stats", "nac_stats"],
    )
    labels = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), optim.label_smoothing)
    ce = optax.softmax_cross_entropy(logits, labels).mean()
    loss = ce
    for aux in aux_logits:
        loss = loss + optim.aux_weight * optax.softmax_cross_entropy(aux, labels).mean()
    if optim.l2:
        l2 = sum(jnp.sum(jnp.square(p)) for p in jax.tree_util.tree_leaves(params))
        loss = loss + optim.l2 * l2
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (
        updates,
        {"train/loss": loss, "train/cross_entropy": ce, "train/accuracy": accuracy},
    )


def _train_step(
    state: TrainState,
    batch,
    key,
    *,
    optim: OptimConfig,
    num_classes: int,
    total_steps: int,
    schedule,
):
    key = jax.random.fold_in(key, state.step)
    drop_path_rate = optim.drop_path * state.step / max(total_steps, 1)
    grads, (updates, metrics) = jax.grad(_loss_fn, has_aux=True)(
        state.params, state, batch, key, optim, drop_path_rate, num_classes
    )
    new_state = state.apply_gradients(
        grads=grads, batch_stats=updates["batch_stats"], nac_stats=updates["nac_stats"]
    )
    if optim.ema_decay > 0:
        step = state.step.astype(jnp.float32)
        decay = jnp.minimum(optim.ema_decay, (1.0 + step) / (10.0 + step))
        ema = optax.incremental_update(new_state.params, state.ema_params, 1.0 - decay)
        new_state = new_state.replace(ema_params=ema)
    metrics["train/learning_rate"] = schedule(state.step)
    return new_state, metrics


def _eval_step(state: TrainState, batch, *, use_ema: bool, num_classes: int):
    params = state.ema_params if use_ema else state.params
    variables = {"params": params, "batch_stats": state.batch_stats, "nac_stats": state.nac_stats}
    logits, _ = state.apply_fn(variables, batch["image"], train=False)
    mask = batch["mask"]
    labels = jax.nn.one_hot(batch["label"], num_classes)
    loss = optax.softmax_cross_entropy(logits, labels)
    top5 = jnp.any(jax.lax.top_k(logits, min(5, num_classes))[1] == batch["label"][:, None], -1)
    return {
        "loss": jnp.sum(loss * mask),
        "accuracy": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
        "top5": jnp.sum(top5 * mask),
        "count": jnp.sum(mask),
    }


def _calibration_step(state: TrainState, batch, key, stats, *, use_ema: bool):
    """The BatchNorm running statistics after one training-mode forward pass of the
    evaluated weights over ``batch``, starting from ``stats`` (see `recalibrate_batch_norm`)."""
    params = state.ema_params if use_ema else state.params
    variables = {"params": params, "batch_stats": stats, "nac_stats": state.nac_stats}
    _, updates = state.apply_fn(
        variables,
        batch["image"],
        train=True,
        rngs={"dropout": key},
        mutable=["batch_stats", "nac_stats"],
    )
    return updates["batch_stats"]


# A running statistic fed in as 2**20 comes out as m * 2**20 + (1 - m) * batch: the
# difference from the zero-fed output recovers each BatchNorm's momentum m exactly enough.
_PROBE = float(2**20)


def recalibrate_batch_norm(state: TrainState, calibrate, batches, key) -> TrainState:
    """Replaces the BatchNorm running averages with the population statistics of the
    weights that are evaluated (the EMA weights where there is an EMA), averaged over
    ``batches`` of training data.

    Short trainings (a search trains many networks for a few hundred steps) leave the
    running averages dominated by their initial values and by early weights; evaluating
    with them gives near-chance accuracy however well the network trains. Each BatchNorm
    updates ``m * running + (1 - m) * batch``; feeding zeros yields ``(1 - m) * batch`` and
    one probe with a large constant yields ``m``, so no module needs to expose its momentum.
    """
    stats = state.batch_stats
    if not jax.tree_util.tree_leaves(stats):
        return state
    zeros = jax.tree_util.tree_map(jnp.zeros_like, stats)
    probe = jax.tree_util.tree_map(lambda x: jnp.full_like(x, _PROBE), stats)
    total, count, momentum = None, 0, None
    for i, batch in enumerate(batches):
        batch_key = jax.random.fold_in(key, i)
        part = calibrate(state, batch, batch_key, zeros)
        if momentum is None:
            probed = calibrate(state, batch, batch_key, probe)
            momentum = jax.tree_util.tree_map(lambda p, z: (p - z) / _PROBE, probed, part)
        total = part if total is None else jax.tree_util.tree_map(jnp.add, total, part)
        count += 1
    if count == 0:
        return state

    def population(old, summed, m):
        rate = 1.0 - m
        return jnp.where(rate > 1e-6, summed / (count * jnp.maximum(rate, 1e-6)), old)

    return state.replace(batch_stats=jax.tree_util.tree_map(population, stats, total, momentum))


_COMPILED: dict[tuple, Any] = {}


def _config_key(cfg) -> tuple:
    return tuple(sorted(dataclasses.asdict(cfg).items()))


@dataclasses.dataclass
class _Program:
    """Everything compiled for one (spec, recipe, schedule length, batch shapes)."""

    model: Any
    tx: optax.GradientTransformation
    train_step: Any = None
    eval_step: Any = None
    calibration_step: Any = None


def _program(
    spec: NetworkSpec,
    num_classes: int,
    optim: OptimConfig,
    steps_per_epoch: int,
    total_steps: int,
    shapes: tuple,
) -> _Program:
    """The memoised model and optimiser for ``spec``: reusing the same objects keeps the
    train state's static fields equal, so the compiled steps can be reused."""
    key = (
        spec,
        num_classes,
        _config_key(optim),
        steps_per_epoch,
        total_steps,
        shapes,
        jax.local_device_count(),
    )
    if key not in _COMPILED:
        tx = make_optimizer(optim, steps_per_epoch, total_steps)
        _COMPILED[key] = _Program(build_model(spec, num_classes), tx)
    return _COMPILED[key]


def compile_steps(
    program: _Program,
    optim: OptimConfig,
    state: TrainState,
    train_batch: dict,
    eval_batch: dict,
    steps_per_epoch: int,
    total_steps: int,
    calibrate: bool = True,
) -> float:
    """Compiles ``program``'s train and eval steps once (the state is donated), and its
    BatchNorm calibration step once when ``calibrate`` and the model has BatchNorm.

    Returns:
      The compile seconds; 0 when they were compiled before.
    """
    started, compiled = time.perf_counter(), False
    if (
        calibrate
        and program.calibration_step is None
        and jax.tree_util.tree_leaves(state.batch_stats)
    ):
        compiled = True
        program.calibration_step = (
            jax.jit(partial(_calibration_step, use_ema=optim.ema_decay > 0))
            .lower(state, train_batch, jax.random.key(0), state.batch_stats)
            .compile()
        )
    if program.train_step is not None:
        return time.perf_counter() - started if compiled else 0.0
    num_classes = program.model.num_classes
    schedule = make_schedule(optim, steps_per_epoch, total_steps)
    program.train_step = (
        jax.jit(
            lambda s, b, k: _train_step(
                s,
                b,
                k,
                optim=optim,
                num_classes=num_classes,
                total_steps=total_steps,
                schedule=schedule,
            ),
            donate_argnums=0,
        )
        .lower(state, train_batch, jax.random.key(0))
        .compile()
    )
    program.eval_step = (
        jax.jit(lambda s, b: _eval_step(s, b, use_ema=optim.ema_decay > 0, num_classes=num_classes))
        .lower(state, eval_batch)
        .compile()
    )
    return time.perf_counter() - started


def _shard(batch: dict, mesh: Mesh) -> dict:
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {k: jax.device_put(v, sharding) for k, v in batch.items()}


def evaluate(
    state: TrainState, eval_step, batches, mesh: Mesh, prefix: str, num_classes: int
) -> dict[str, float]:
    """Loss, top-1 (and top-5 where classes > 5) over every example of ``batches``."""
    totals = None
    for batch in batches:
        out = eval_step(state, _shard(batch, mesh))
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    metrics = {
        f"{prefix}/loss": totals["loss"] / count,
        f"{prefix}/accuracy": totals["accuracy"] / count,
    }
    if num_classes > 5:
        metrics[f"{prefix}/top5"] = totals["top5"] / count
    return {k: float(v) for k, v in metrics.items()}


def read_utilities(nac_stats) -> dict[str, float]:
    """AMLA's MeanSSS per branch (sum / steps), keyed ``"Cell<k>/Branch<j>"``."""
    cells = jax.device_get(nac_stats).get("body", {})
    return {
        f"{cell}/{branch}": float(v["stats"]["meansss_sum"] / max(v["stats"]["count"], 1.0))
        for cell, branches in cells.items()
        if cell.startswith("Cell")
        for branch, v in branches.items()
    }


def read_scalars(params) -> dict[int, dict[int, float]]:
    """Skip-edge scalars ``{dest cellnumber: {source cellnumber: value}}``."""
    cells = jax.device_get(params).get("body", {})
    out: dict[int, dict[int, float]] = {}
    for cell, leaves in cells.items():
        if not cell.startswith("Cell"):
            continue
        edges = {
            int(name[len("scalar_") :]): float(v)
            for name, v in leaves.items()
            if name.startswith("scalar_")
        }
        if edges:
            out[int(cell[len("Cell") :])] = edges
    return out


def save_train_state(state: TrainState, path: str | Path) -> None:
    """An Orbax checkpoint of the train state's arrays (params, statistics, optimiser)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415 (slow import, needed only here)

    tree = {
        "step": state.step,
        "params": state.params,
        "batch_stats": state.batch_stats,
        "nac_stats": state.nac_stats,
        "ema_params": state.ema_params,
        "opt_state": state.opt_state,
    }
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(Path(path).absolute(), jax.device_get(tree), force=True)


def train_and_evaluate(
    spec: NetworkSpec,
    dataset,
    optim: OptimConfig,
    train: TrainConfig,
    key: jax.Array,
    run_dir: str | Path | None = None,
    prefix: str = "train",
) -> TrainResult:
    """Trains ``spec`` from scratch on ``dataset`` and evaluates it.

    Args:
      spec: the network.
      dataset: an `amla_jax.data.Dataset`.
      optim: the recipe (optimiser, schedule, regularisation).
      train: steps/epochs, batch sizes, logging.
      key: the only source of randomness (init, dropout, data order, augmentation).
      run_dir: where metrics and TensorBoard events go (None: nowhere).
      prefix: this network's name in the metrics (one TensorBoard run each).

    Returns:
      A `TrainResult` with final metrics, NAC statistics and timings.
    """
    info = dataset.info
    mesh = data_mesh()
    for name, size in (
        ("train.batch_size", train.batch_size),
        ("train.eval_batch_size", train.eval_batch_size),
    ):
        if size % mesh.size:
            raise ValueError(f"{name}: {size} is not divisible by the {mesh.size} devices")
    steps_per_epoch = max(1, info.num_train // train.batch_size)
    total_steps = steps_for(train.epochs, train.steps, info.num_train, train.batch_size)
    init_key, step_key, data_key = jax.random.split(key, 3)
    shapes = (info.image_shape, train.batch_size, train.eval_batch_size)
    program = _program(spec, info.num_classes, optim, steps_per_epoch, total_steps, shapes)
    replicated = NamedSharding(mesh, PartitionSpec())
    state = create_train_state(program.model, init_key, info.image_shape, program.tx)
    state = jax.device_put(state, replicated)
    data_seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    batches = dataset.train_batches(data_seed, train.batch_size)
    first = _shard(next(batches), mesh)
    eval_splits = [s for s in ("validation", "test") if _split_size(info, s)]
    eval_example = _shard(next(dataset.eval_batches(eval_splits[-1], train.eval_batch_size)), mesh)
    compile_seconds = compile_steps(
        program,
        optim,
        state,
        first,
        eval_example,
        steps_per_epoch,
        total_steps,
        calibrate=train.bn_calibration_batches > 0,
    )
    train_step, eval_step = program.train_step, program.eval_step
    writer = MetricWriter(run_dir, prefix)
    started, metrics, batch = time.perf_counter(), {}, first
    with progress_bar(f"training {prefix}", total_steps, enabled=train.progress) as advance:
        for step in range(1, total_steps + 1):
            state, step_metrics = train_step(state, batch, step_key)
            if step % max(train.log_every, 1) == 0 or step == total_steps:
                metrics = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
                writer.write(step, metrics)
                advance(step, f"loss {metrics['train/loss']:.3f}")
            if train.eval_every and step % train.eval_every == 0 and step < total_steps:
                writer.write(
                    step,
                    evaluate(
                        state,
                        eval_step,
                        dataset.eval_batches(eval_splits[0], train.eval_batch_size),
                        mesh,
                        eval_splits[0],
                        info.num_classes,
                    ),
                )
            if step < total_steps:
                batch = _shard(next(batches), mesh)
    if program.calibration_step is not None and train.bn_calibration_batches > 0:
        calibration = (_shard(b, mesh) for b in islice(batches, train.bn_calibration_batches))
        state = recalibrate_batch_norm(
            state,
            program.calibration_step,
            calibration,
            jax.random.fold_in(step_key, total_steps + 1),
        )
    jax.block_until_ready(state.params)
    train_seconds = time.perf_counter() - started
    for split in eval_splits:
        metrics.update(
            evaluate(
                state,
                eval_step,
                dataset.eval_batches(split, train.eval_batch_size),
                mesh,
                split,
                info.num_classes,
            )
        )
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
    )


def _split_size(info, split: str) -> int:
    return {"validation": info.num_validation, "test": info.num_test}[split]
