"""XLA compile options for the programs a search compiles once per candidate.

A search compiles every candidate's programs afresh, and on CPU compiling takes most of
a candidate's time. XLA:CPU's MLIR fusion emitters (its default) took ~20% longer to
compile the no-argument run's candidates than its classic LLVM IR emitters, for the same
step time (``experiments/bench/xla_flags.py``; experiments/bench/README.md), so
`compile_lowered` asks for the classic emitters on CPU. The option is per program: a
jaxlib that does not know it refuses it with INVALID_ARGUMENT, and the program then
compiles with XLA's defaults; naming ``xla_cpu_use_fusion_emitters`` in ``$XLA_FLAGS``
(``=true`` for XLA's default) takes precedence.

Synopsis::

    from amla_jax.train.compile_options import compile_lowered
    compiled = compile_lowered(jax.jit(step).lower(state, batch, key))
    init = compile_lowered(lowered_init, {"xla_backend_optimization_level": 0})
"""

from __future__ import annotations

import os

import jax

CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def options_for(backend: str, extra: dict | None = None) -> dict:
    """The compile options `compile_lowered` passes on ``backend``: ``CPU_OPTIONS`` on
    CPU (less any that ``$XLA_FLAGS`` names) and ``extra``."""
    options = dict(CPU_OPTIONS) if backend == "cpu" else {}
    flags = os.environ.get("XLA_FLAGS", "")
    options = {name: value for name, value in options.items() if name not in flags}
    return {**options, **(extra or {})}


def compile_lowered(lowered: jax.stages.Lowered, extra: dict | None = None):
    """``lowered.compile`` with `options_for` the default backend; an option this jaxlib
    does not know is dropped (XLA's default instead), never an error."""
    options = options_for(jax.default_backend(), extra)
    while options:
        try:
            return lowered.compile(compiler_options=options)
        except RuntimeError as error:  # jax.errors.JaxRuntimeError
            unknown = [name for name in options if f"compile option: '{name}'" in str(error)]
            if not unknown:
                raise
            options = {k: v for k, v in options.items() if k not in unknown}
    return lowered.compile()
