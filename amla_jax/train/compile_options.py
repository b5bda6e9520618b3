"""XLA compile options for the programs a search compiles once per candidate.

A search compiles every candidate's programs afresh, and on CPU compiling takes most of
a candidate's time at small budgets. Two per-program options, each measured
(experiments/bench/README.md):

- ``CPU_OPTIONS``, every CPU program: YNNPACK gets only the reductions
  (``xla_cpu_experimental_ynn_fusion_type``); XLA's default also hands it each
  convolution and matmul, which made the no-argument run 1.16x slower and the train step
  of AMLA's "run" network 1.2-1.3x slower.
- `emitter_options`: XLA:CPU's classic LLVM IR fusion emitters instead of its MLIR ones
  (the default) for programs on small batches (at most ``SMALL_BATCH_PIXELS`` pixels, such
  as digits' 50 x 8 x 8): they compiled the no-argument run's candidates ~20% faster for
  the same step time. Not on larger batches: on AMLA's EnvelopeNet at CIFAR shape (64 x
  32 x 32) their elementwise code stepped 1.24x slower at -O1, and compiled 2.3x slower at
  XLA's default -O2.

A jaxlib that does not know an option (or its value) refuses it with INVALID_ARGUMENT,
and the program compiles with XLA's default for it; naming the flag in ``$XLA_FLAGS``
takes precedence. amla_jax's own defaults in ``$XLA_FLAGS`` (`add_default_flag`: the
runner's -O1) do not: they apply where a program asks for nothing else.

Synopsis::

    from amla_jax.train.compile_options import compile_lowered, emitter_options
    compiled = compile_lowered(jax.jit(step).lower(state, batch, key),
                               emitter_options(batch["image"].shape))
    init = compile_lowered(lowered_init, {"xla_backend_optimization_level": 0})
"""

from __future__ import annotations

import os

import jax
import numpy as np

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
CLASSIC_EMITTERS = {"xla_cpu_use_fusion_emitters": False}
SMALL_BATCH_PIXELS = 16_384  # digits: 50 x 8 x 8 = 3,200; CIFAR: 64 x 32 x 32 = 65,536


def emitter_options(batch_shape: tuple[int, ...]) -> dict:
    """`CLASSIC_EMITTERS` for a program on NHWC batches of ``batch_shape`` with at most
    ``SMALL_BATCH_PIXELS`` pixels (batch x height x width), else nothing (XLA's default)."""
    if len(batch_shape) == 4 and np.prod(batch_shape[:3]) <= SMALL_BATCH_PIXELS:
        return dict(CLASSIC_EMITTERS)
    return {}


# Where `add_default_flag` records the flags it added to $XLA_FLAGS (inherited by child
# processes, so that they too can tell amla_jax's defaults from the user's flags).
DEFAULTS_ENV = "AMLA_JAX_XLA_DEFAULTS"


def add_default_flag(flag: str) -> None:
    """Appends ``flag`` (``--name=value``) to ``$XLA_FLAGS`` as amla_jax's default,
    unless ``$XLA_FLAGS`` already names it. Unlike a user's flag, a default does not
    override per-program options (the initialisation's -O0 under the runner's -O1)."""
    name = flag.lstrip("-").split("=")[0]
    flags = os.environ.get("XLA_FLAGS", "")
    if name not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
        os.environ[DEFAULTS_ENV] = f"{os.environ.get(DEFAULTS_ENV, '')} {flag}".strip()


def user_flags() -> str:
    """``$XLA_FLAGS`` less the flags `add_default_flag` added."""
    added = set(os.environ.get(DEFAULTS_ENV, "").split())
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if f not in added)


def forward_options(batch_shape: tuple[int, ...]) -> dict:
    """The options of a forward-only program (evaluation, BatchNorm calibration) on
    ``batch_shape``'s regime: on small batches (`emitter_options`) also XLA's -O0, which
    compiled the no-argument run's two forward programs in 1.5 s instead of 4.1 s (CPU
    seconds, beside the train step's compile); their few dozen forward passes of a
    digits-sized network then took up to 0.9 s more per candidate. Elsewhere nothing: a
    big network's evaluation is not cheap at -O0."""
    small = emitter_options(batch_shape)
    return {**small, "xla_backend_optimization_level": 0} if small else {}


def options_for(backend: str, extra: dict | None = None) -> dict:
    """The compile options `compile_lowered` passes on ``backend``: ``CPU_OPTIONS`` and
    ``extra``, less any that the user's ``$XLA_FLAGS`` (`user_flags`) names and, off
    CPU, any ``xla_cpu_`` one."""
    options = {**(CPU_OPTIONS if backend == "cpu" else {}), **(extra or {})}
    flags = user_flags()
    return {
        name: value
        for name, value in options.items()
        if name not in flags and (backend == "cpu" or not name.startswith("xla_cpu_"))
    }


def compile_lowered(lowered: jax.stages.Lowered, extra: dict | None = None):
    """``lowered.compile`` with `options_for` the default backend; an option this jaxlib
    does not know is dropped (XLA's default instead), never an error."""
    options = options_for(jax.default_backend(), extra)
    while options:
        try:
            return lowered.compile(compiler_options=options)
        except RuntimeError as error:  # jax.errors.JaxRuntimeError
            unknown = [name for name in options if _refused(name, str(error))]
            if not unknown:
                raise
            options = {k: v for k, v in options.items() if k not in unknown}
    return lowered.compile()


def _refused(name: str, message: str) -> bool:
    """True where ``message`` says this jaxlib does not know option ``name`` or its value."""
    return f"compile option: '{name}'" in message or f"setting option {name}," in message
