"""Compiled programs per network and recipe, reused across trainings of the same spec.

A search trains the same spec more than once (a resumed run, a repeated seed, NAC
revisiting a network, tests). Compiling its train step again costs tens of seconds on
CPU; reusing it needs the *same* model and optimiser objects, because they are static
fields of the train state and jit compares them by identity. A `ProgramCache` holds,
per `ProgramKey`, one immutable `Program`: the model, the optimiser and the
ahead-of-time compiled train, eval and BatchNorm calibration steps. Compiling returns a
new `Program` (same model and optimiser) that replaces the cached one.

`train_and_evaluate` uses the process-wide `PROGRAMS` unless it is given a cache of its
own; ``PROGRAMS.clear()`` drops every compiled program (memory, or a fresh compile to
time).

Synopsis::

    from amla_jax.train.programs import PROGRAMS, program_key
    key = program_key(spec, num_classes, optim, steps_per_epoch, total_steps, shapes)
    program = PROGRAMS.get(key)                   # model + optimiser, memoised
    state = create_train_state(program.model, init_key, image_shape, program.tx)
    program, seconds = PROGRAMS.compile(key, state, train_batch, eval_batch, calibrate=True)
    state, metrics = program.train_step(state, train_batch, step_key)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import optax

from amla_jax.config import OptimConfig
from amla_jax.nn import build_model
from amla_jax.optim import make_optimizer
from amla_jax.spec import NetworkSpec
from amla_jax.train.calibrate import make_calibration_step
from amla_jax.train.compile_options import compile_lowered, emitter_options, forward_options
from amla_jax.train.evaluate import make_eval_step
from amla_jax.train.state import TrainState
from amla_jax.train.step import make_train_step


@dataclasses.dataclass(frozen=True)
class ProgramKey:
    """What a compiled program depends on (hashable; `program_key` builds it)."""

    spec: NetworkSpec
    num_classes: int
    optim: tuple  # OptimConfig's (field, value) pairs, sorted: the schema is not frozen
    steps_per_epoch: int
    total_steps: int
    shapes: tuple  # (image shape, train batch size, eval batch size)
    num_devices: int

    def optim_config(self) -> OptimConfig:
        return OptimConfig(**dict(self.optim))


def program_key(
    spec: NetworkSpec,
    num_classes: int,
    optim: OptimConfig,
    steps_per_epoch: int,
    total_steps: int,
    shapes: tuple,
) -> ProgramKey:
    """The `ProgramKey` of training ``spec`` with ``optim`` on every device of every process."""
    return ProgramKey(
        spec,
        num_classes,
        tuple(sorted(dataclasses.asdict(optim).items())),
        steps_per_epoch,
        total_steps,
        shapes,
        jax.device_count(),
    )


@dataclasses.dataclass(frozen=True)
class Program:
    """The model, optimiser and compiled steps of one `ProgramKey` (None: not compiled)."""

    model: Any
    tx: optax.GradientTransformation
    train_step: Callable | None = None
    eval_step: Callable | None = None
    calibration_step: Callable | None = None


class ProgramCache:
    """`Program`s by `ProgramKey`; the owner decides how long compiled programs live."""

    def __init__(self) -> None:
        self._programs: dict[ProgramKey, Program] = {}

    def __len__(self) -> int:
        return len(self._programs)

    def clear(self) -> None:
        self._programs.clear()

    def get(self, key: ProgramKey) -> Program:
        """The cached program of ``key``; a new model and optimiser the first time."""
        if key not in self._programs:
            optim = key.optim_config()
            tx = make_optimizer(optim, key.steps_per_epoch, key.total_steps)
            self._programs[key] = Program(build_model(key.spec, key.num_classes), tx)
        return self._programs[key]

    def compile(
        self,
        key: ProgramKey,
        state: TrainState,
        train_batch: dict,
        eval_batch: dict,
        calibrate: bool = True,
    ) -> tuple[Program, float]:
        """Compiles ``key``'s train and eval steps once (the state is donated), and its
        BatchNorm calibration step once when ``calibrate`` and the model has BatchNorm.

        Args:
          key: the program's key; ``state`` must come from ``get(key)``'s model and tx.
          state, train_batch, eval_batch: example arguments placed as the real ones, or
            their shapes (`lower_initialisation`'s ``out_info`` placed by
            `replicated_shapes`).
          calibrate: whether the calibration step is needed.

        Returns:
          ``(program, seconds)``: the compiled program (now the cached one) and the
          compile seconds, 0 when everything needed was compiled before.
        """
        program = self.get(key)
        optim = key.optim_config()
        started, example_key = time.perf_counter(), jax.random.key(0)
        lowerings: dict[str, Callable] = {}
        if program.train_step is None:  # the biggest first: it compiles while the rest lower
            lowerings["train_step"] = lambda: make_train_step(
                optim, key.num_classes, key.steps_per_epoch, key.total_steps
            ).lower(state, train_batch, example_key)
            lowerings["eval_step"] = lambda: make_eval_step(optim, key.num_classes).lower(
                state, eval_batch
            )
        if (
            calibrate
            and program.calibration_step is None
            and jax.tree_util.tree_leaves(state.batch_stats)
        ):
            lowerings["calibration_step"] = lambda: make_calibration_step(optim).lower(
                state, train_batch, example_key, state.batch_stats
            )
        if not lowerings:
            return program, 0.0
        shape = train_batch["image"].shape
        options = {"train_step": emitter_options(shape)}
        options |= {name: forward_options(shape) for name in ("eval_step", "calibration_step")}
        program = dataclasses.replace(program, **compile_concurrently(lowerings, options))
        self._programs[key] = program
        return program, time.perf_counter() - started


def compile_concurrently(
    lowerings: dict[str, Callable], options: dict[str, dict] | None = None
) -> dict[str, Any]:
    """Lowers each program in turn (tracing holds Python's lock) and compiles them in
    threads as soon as each is lowered: XLA compiles a program on one core and releases
    the lock, so on a 2-core machine the train step's compile overlaps the lowering and
    compiling of the evaluation and calibration steps (experiments/bench/README.md).
    Each compiles with `compile_lowered`'s options and its own in ``options`` (by name)."""
    options = options or {}
    with ThreadPoolExecutor(max_workers=len(lowerings)) as pool:
        futures = {
            name: pool.submit(compile_lowered, lower(), options.get(name))
            for name, lower in lowerings.items()
        }
        return {name: future.result() for name, future in futures.items()}


# The process-wide cache `train_and_evaluate` uses unless given one (see the docstring).
PROGRAMS = ProgramCache()
