"""nn.layers: the CPU-fast conv paths equal XLA's, LRN and cutout follow AMLA, and the one
BatchNorm and SAME-padding helper give what each body asks for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amla_jax.nn import layers

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize(
    "kernel, dilation, size, stride, expected",
    [
        (3, 1, None, 1, (1, 1)),
        (4, 1, None, 1, (1, 2)),  # even kernels: the extra pixel after (TF SAME)
        (3, 2, None, 1, (2, 2)),
        (3, 1, 8, 2, (0, 1)),  # strided: TF pads after, not symmetrically
        (3, 1, 9, 2, (1, 1)),
        (1, 1, 7, 2, (0, 0)),
    ],
)
def test_same_padding_is_tensorflows(kernel, dilation, size, stride, expected):
    assert layers.same_padding(kernel, dilation, size, stride) == expected


def test_same_padding_keeps_the_size_like_lax_same():
    x = jnp.ones((1, 9, 9, 1))
    w = jnp.ones((5, 5, 1, 1))
    for stride in (1, 2):
        pads = [layers.same_padding(5, 1, 9, stride)] * 2
        ours = jax.lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=DN)
        ref = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=DN)
        np.testing.assert_array_equal(ours, ref)


def test_batch_norm_options():
    x = jax.random.normal(jax.random.key(0), (4, 3, 3, 2))
    envelope = layers.batch_norm(train=True, momentum=0.99)
    variables = envelope.init(jax.random.key(1), x)
    assert set(variables["params"]) == {"bias"}  # TF-slim: offset only
    assert envelope.epsilon == 1e-3
    affine = layers.batch_norm(True, 0.9, scale=True, epsilon=1e-5)
    assert set(affine.init(jax.random.key(1), x)["params"]) == {"bias", "scale"}
    # Training normalises with the batch statistics; evaluation with the running ones.
    y, _ = envelope.apply(variables, x, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y).mean((0, 1, 2)), 0.0, atol=1e-5)
    frozen = layers.batch_norm(train=False, momentum=0.99)
    np.testing.assert_allclose(frozen.apply(variables, x), x / np.sqrt(1 + 1e-3), rtol=1e-5)


@pytest.mark.parametrize(
    "shape, k, stride, dilation",
    [
        ((2, 1, 1, 8), 7, 1, 1),
        ((2, 9, 7, 4), 5, 1, 1),
        ((2, 8, 8, 3), 3, 2, 1),
        ((2, 9, 9, 3), 3, 1, 2),
    ],
)
def test_depthwise_shift_path_equals_xla(shape, k, stride, dilation):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (k, k, 1, shape[-1]))
    fast = layers.depthwise_conv(x, w, stride, dilation, impl="shift")
    ref = layers.depthwise_conv(x, w, stride, dilation, impl="xla")
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw, k", [(1, 5), (2, 5), (2, 3), (4, 7), (3, 1)])
def test_small_map_conv_paths_equal_xla(hw, k):
    x = jax.random.normal(jax.random.key(0), (2, hw, hw, 6))
    w = jax.random.normal(jax.random.key(1), (k, k, 6, 5))
    ref = layers.conv_same(x, w, impl="xla")
    np.testing.assert_allclose(layers.conv_same(x, w, impl="im2col"), ref, rtol=1e-5, atol=1e-5)
    cropped = layers.reachable_taps(w, hw, hw)
    np.testing.assert_allclose(layers.conv_same(x, cropped, impl="xla"), ref, rtol=1e-5, atol=1e-5)


def test_lrn_matches_the_tensorflow_formula():
    x = jax.random.normal(jax.random.key(0), (1, 2, 2, 12))
    out = layers.local_response_norm(x)
    sq = np.pad(np.asarray(x) ** 2, ((0, 0), (0, 0), (0, 0), (4, 4)))
    window = np.stack([sq[..., c : c + 9].sum(-1) for c in range(12)], -1)
    np.testing.assert_allclose(out, np.asarray(x) / (1 + 0.001 / 9 * window) ** 0.75, rtol=1e-5)


def test_batch_cutout_zeroes_one_shared_square():
    x = jnp.ones((3, 8, 8, 2))
    out = np.asarray(layers.batch_cutout(x, jax.random.key(3), 4))
    assert (out[0] == out[1]).all() and (out[1] == out[2]).all()
    zeros = (out[0, :, :, 0] == 0).sum()
    assert 1 <= zeros <= 16
