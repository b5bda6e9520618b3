"""The compile options a candidate's programs are compiled with (issue 14)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amla_jax.train.compile_options import CPU_OPTIONS, compile_lowered, options_for


def test_cpu_programs_ask_for_the_classic_emitters_unless_xla_flags_name_them(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert options_for("cpu") == CPU_OPTIONS == {"xla_cpu_use_fusion_emitters": False}
    assert options_for("gpu") == {}
    assert options_for("cpu", {"xla_backend_optimization_level": 0}) == {
        **CPU_OPTIONS,
        "xla_backend_optimization_level": 0,
    }
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert options_for("cpu") == {}  # the user's flag wins


def test_an_option_this_jaxlib_does_not_know_is_dropped_not_fatal():
    lowered = jax.jit(lambda x: jnp.sin(x) * 2).lower(jnp.ones(3))
    compiled = compile_lowered(lowered, {"xla_no_such_option_anywhere": 1})
    np.testing.assert_allclose(compiled(jnp.ones(3)), 2 * np.sin(np.ones(3)), rtol=1e-6)


def test_the_classic_emitters_compute_the_same_step_values():
    # Elementwise and reduction work through both emitters agree to float rounding.
    def f(x):
        return jnp.tanh(x) @ x.T + jnp.exp(-(x**2)).sum(axis=0)

    x = jax.random.normal(jax.random.key(0), (16, 16))
    lowered = jax.jit(f).lower(x)
    ours = compile_lowered(lowered)(x)
    xla_default = lowered.compile(compiler_options={"xla_cpu_use_fusion_emitters": True})(x)
    np.testing.assert_allclose(ours, xla_default, rtol=1e-5, atol=1e-5)


class _RecordingLowered:
    """Stands in for a `jax.stages.Lowered`: records the options each compile asked for
    and refuses the names in ``unknown`` as a jaxlib that lacks them does."""

    def __init__(self, unknown=(), failure=None):
        self.unknown, self.failure, self.asked = set(unknown), failure, []

    def compile(self, compiler_options=None):
        self.asked.append(compiler_options)
        if self.failure:
            raise RuntimeError(self.failure)
        refused = sorted(self.unknown & set(compiler_options or {}))
        if refused:
            raise RuntimeError(f"INVALID_ARGUMENT: No such compile option: '{refused[0]}'")
        return "compiled"


def test_compile_lowered_passes_the_options_and_retries_without_refused_ones(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    lowered = _RecordingLowered()
    assert compile_lowered(lowered, {"xla_backend_optimization_level": 0}) == "compiled"
    assert lowered.asked == [{**CPU_OPTIONS, "xla_backend_optimization_level": 0}]

    lowered = _RecordingLowered(unknown=CPU_OPTIONS)
    assert compile_lowered(lowered, {"xla_backend_optimization_level": 0}) == "compiled"
    assert lowered.asked == [
        {**CPU_OPTIONS, "xla_backend_optimization_level": 0},
        {"xla_backend_optimization_level": 0},
    ]


def test_compile_lowered_reraises_errors_that_are_not_a_refused_option(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    lowered = _RecordingLowered(failure="RESOURCE_EXHAUSTED: out of memory")
    with pytest.raises(RuntimeError, match="RESOURCE_EXHAUSTED"):
        compile_lowered(lowered)
    assert len(lowered.asked) == 1
