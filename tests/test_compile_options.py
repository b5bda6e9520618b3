"""The compile options a candidate's programs are compiled with (issue 14)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amla_jax.train.compile_options import (
    CLASSIC_EMITTERS,
    CPU_OPTIONS,
    DEFAULTS_ENV,
    compile_lowered,
    emitter_options,
    options_for,
    user_flags,
)


def test_cpu_programs_give_ynnpack_only_reductions_unless_xla_flags_name_it(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert (
        options_for("cpu")
        == CPU_OPTIONS
        == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
    )
    assert options_for("gpu") == {}
    assert options_for("cpu", {"xla_backend_optimization_level": 0}) == {
        **CPU_OPTIONS,
        "xla_backend_optimization_level": 0,
    }
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=reduce")
    assert options_for("cpu") == {}  # the user's flag wins


def test_small_batches_ask_for_the_classic_emitters(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert emitter_options((50, 8, 8, 1)) == CLASSIC_EMITTERS  # digits
    assert emitter_options((256, 8, 8, 1)) == CLASSIC_EMITTERS  # SMALL_BATCH_PIXELS exactly
    assert emitter_options((64, 32, 32, 3)) == {}  # CIFAR: XLA's default emitters
    assert emitter_options((50, 64)) == {}  # not an image batch
    small = options_for("cpu", emitter_options((50, 8, 8, 1)))
    assert small == {**CPU_OPTIONS, "xla_cpu_use_fusion_emitters": False}
    assert options_for("gpu", emitter_options((50, 8, 8, 1))) == {}  # CPU options off CPU
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert options_for("cpu", emitter_options((50, 8, 8, 1))) == CPU_OPTIONS


def test_an_option_value_this_jaxlib_does_not_know_is_dropped_not_fatal():
    lowered = jax.jit(lambda x: jnp.sin(x) * 2).lower(jnp.ones(3))
    compiled = compile_lowered(
        lowered, {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_NOT_ONE"}
    )
    np.testing.assert_allclose(compiled(jnp.ones(3)), 2 * np.sin(np.ones(3)), rtol=1e-6)


def test_convolutions_outside_ynnpack_compute_the_same_values():
    # A convolution's forward and both gradients, XLA's own kernels against XLA's default
    # (YNNPACK), agree to float rounding.
    def f(x, w):
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.sum(jnp.tanh(y) ** 2)

    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16))
    w = jax.random.normal(jax.random.key(1), (3, 3, 16, 8)) * 0.1
    lowered = jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, w)
    ours = compile_lowered(lowered)(x, w)
    xla_default = lowered.compile()(x, w)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(xla_default), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


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
    ours = compile_lowered(lowered, CLASSIC_EMITTERS)(x)
    xla_default = lowered.compile()(x)
    np.testing.assert_allclose(ours, xla_default, rtol=1e-5, atol=1e-5)


class _RecordingLowered:
    """Stands in for a `jax.stages.Lowered`: records the options each compile asked for
    and refuses the names in ``unknown`` as a jaxlib that lacks them does."""

    def __init__(self, unknown=(), failure=None, bad_values=()):
        self.unknown, self.failure, self.asked = set(unknown), failure, []
        self.bad_values = set(bad_values)

    def compile(self, compiler_options=None):
        self.asked.append(compiler_options)
        if self.failure:
            raise RuntimeError(self.failure)
        refused = sorted(self.unknown & set(compiler_options or {}))
        if refused:
            raise RuntimeError(f"INVALID_ARGUMENT: No such compile option: '{refused[0]}'")
        bad = sorted(self.bad_values & set(compiler_options or {}))
        if bad:
            value = compiler_options[bad[0]]
            raise RuntimeError(
                f"INVALID_ARGUMENT: While setting option {bad[0]}, '{value}' is not a valid enum value."
            )
        return "compiled"


def test_compile_lowered_passes_the_options_and_retries_without_refused_ones(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    lowered = _RecordingLowered()
    assert compile_lowered(lowered, {"xla_backend_optimization_level": 0}) == "compiled"
    assert lowered.asked == [{**CPU_OPTIONS, "xla_backend_optimization_level": 0}]

    lowered = _RecordingLowered(unknown={*CPU_OPTIONS, *CLASSIC_EMITTERS})
    assert compile_lowered(lowered, {**CLASSIC_EMITTERS, "xla_backend_optimization_level": 0})
    assert lowered.asked == [  # one refused name per error, as XLA reports them
        {**CPU_OPTIONS, **CLASSIC_EMITTERS, "xla_backend_optimization_level": 0},
        {**CLASSIC_EMITTERS, "xla_backend_optimization_level": 0},
        {"xla_backend_optimization_level": 0},
    ]


def test_compile_lowered_retries_without_an_option_whose_value_is_refused(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    lowered = _RecordingLowered(bad_values={"xla_cpu_experimental_ynn_fusion_type"})
    assert compile_lowered(lowered, CLASSIC_EMITTERS) == "compiled"
    assert lowered.asked == [{**CPU_OPTIONS, **CLASSIC_EMITTERS}, CLASSIC_EMITTERS]


def test_compile_lowered_reraises_errors_that_are_not_a_refused_option(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    lowered = _RecordingLowered(failure="RESOURCE_EXHAUSTED: out of memory")
    with pytest.raises(RuntimeError, match="RESOURCE_EXHAUSTED"):
        compile_lowered(lowered)
    assert len(lowered.asked) == 1


def test_the_runners_default_level_does_not_override_a_programs_own(monkeypatch):
    # The runner's -O1 is amla_jax's default, not the user's: the initialisation's own
    # -O0 still applies. A level the user names in $XLA_FLAGS wins over both.
    from amla_jax.runner import prefer_fast_compiles

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/nowhere")
    monkeypatch.delenv(DEFAULTS_ENV, raising=False)
    prefer_fast_compiles()
    assert "--xla_backend_optimization_level=1" in os.environ["XLA_FLAGS"].split()
    assert user_flags() == "--xla_dump_to=/tmp/nowhere"
    level0 = {"xla_backend_optimization_level": 0}
    assert options_for("cpu", level0)["xla_backend_optimization_level"] == 0
    prefer_fast_compiles()  # idempotent
    assert os.environ["XLA_FLAGS"].count("optimization_level") == 1
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=2")
    monkeypatch.delenv(DEFAULTS_ENV)
    prefer_fast_compiles()  # the user's level stays, and wins
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=2"
    assert "xla_backend_optimization_level" not in options_for("cpu", level0)
