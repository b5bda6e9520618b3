"""The initialisation's host PRNG: deterministic, independent streams, few fusions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fakes import template_spec

from amla_jax.config import OptimConfig
from amla_jax.nn import build_model, init_variables
from amla_jax.optim import make_optimizer
from amla_jax.train import create_train_state
from amla_jax.train.host_prng import HOST_PHILOX, host_key
from amla_jax.train.state import lower_initialisation


def _uniform(key, shape=(4096,)):
    return np.asarray(jax.jit(lambda k: jax.random.uniform(host_key(k), shape))(key))


def test_same_key_same_values_other_key_other_values():
    a, b = _uniform(jax.random.key(0)), _uniform(jax.random.key(0))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _uniform(jax.random.key(1)))


def test_uniform_statistics():
    values = _uniform(jax.random.key(7), (200_000,))
    assert 0.0 <= values.min() and values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.005
    assert abs(values.std() - (1 / 12) ** 0.5) < 0.005
    counts, _ = np.histogram(values, bins=10, range=(0, 1))
    assert counts.min() > 0.97 * counts.max()


def test_fold_in_and_split_streams_differ():
    key = host_key(jax.random.key(3))
    folded = [jax.random.fold_in(key, d) for d in (0, 1, 2)]
    split = list(jax.random.split(key, 3))
    draws = [np.asarray(jax.random.bits(k, (64,), jnp.uint32)) for k in folded + split + [key]]
    assert len({d.tobytes() for d in draws}) == len(draws)
    assert jax.random.key_impl(split[0]) == jax.random.key_impl(key)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32, jnp.uint64])
def test_every_bit_width(dtype):
    if dtype == jnp.uint64 and not jax.config.jax_enable_x64:
        pytest.skip("64-bit types need jax_enable_x64")
    bits = np.asarray(jax.random.bits(host_key(jax.random.key(0)), (1000,), dtype))
    assert bits.dtype == np.dtype(dtype) and len(np.unique(bits)) > 100


def test_vmapped_keys_draw_their_own_values():
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda k: jax.random.normal(host_key(k), (5,)))(keys)
    one_by_one = [jax.random.normal(host_key(k), (5,)) for k in keys]
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(one_by_one))


def test_keys_of_other_sizes_are_mixed_down():
    key = jax.random.key(0, impl="rbg")  # four words
    assert jax.random.key_impl(host_key(key)) == jax.random.key_impl(host_key(jax.random.key(0)))
    assert np.asarray(jax.random.bits(host_key(key), (8,))).shape == (8,)
    assert HOST_PHILOX is not None


def test_initialisation_compiles_a_fraction_of_threefrys_program():
    """Threefry compiles a key derivation and a generator per parameter (about 1,100
    fusions for a digits NAC candidate); drawn on the host, a few dozen remain."""
    model = build_model(template_spec(16), 10)  # NAC's starting EnvelopeNet
    tx = make_optimizer(OptimConfig(), 10, 100)
    key, shape = jax.random.key(0), (8, 8, 1)
    host = lower_initialisation(model, key, shape, tx).compile().as_text()
    threefry = jax.jit(lambda k: init_variables(model, k, shape)).lower(key).compile().as_text()
    assert 4 * host.count(" fusion(") < threefry.count(" fusion(")


def test_train_state_is_deterministic_and_glorot_scaled():
    model = build_model(template_spec(16), 10)  # NAC's starting EnvelopeNet
    tx = make_optimizer(OptimConfig(), 10, 100)
    a = create_train_state(model, jax.random.key(0), (8, 8, 1), tx)
    b = create_train_state(model, jax.random.key(0), (8, 8, 1), tx)
    for x, y in zip(
        jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    kernels = [k for k in jax.tree_util.tree_leaves(a.params) if k.ndim == 4 and k.size > 1000]
    for kernel in kernels:  # glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
        receptive = kernel.shape[0] * kernel.shape[1]
        limit = (6 / (receptive * (kernel.shape[2] + kernel.shape[3]))) ** 0.5
        assert np.abs(kernel).max() <= limit
        assert abs(float(np.std(kernel)) - limit / 3**0.5) < 0.1 * limit
    assert len({k.tobytes() for k in map(np.asarray, kernels)}) == len(kernels)
