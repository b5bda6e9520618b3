"""nn.layers and nn.convs: the CPU-fast conv paths equal XLA's (values and gradients), LRN and cutout follow AMLA, and the one
BatchNorm and SAME-padding helper give what each body asks for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from amla_jax.nn import convs, layers

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


def _grads(conv, x, w):
    """Value and gradients (input, kernel) of a non-linear loss of ``conv(x, w)``."""
    return jax.value_and_grad(lambda a, b: jnp.sum(jnp.sin(conv(a, b))), argnums=(0, 1))(x, w)


def _assert_same(ours, ref, tol=1e-4):
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "shape, k, stride, dilation, padding",
    [
        ((2, 1, 1, 8), 7, 1, 1, "SAME"),
        ((2, 9, 7, 4), 5, 1, 1, "SAME"),
        ((2, 8, 8, 3), 3, 2, 1, "SAME"),  # TF SAME, asymmetric when strided
        ((2, 9, 9, 3), 3, 2, 1, "SAME"),
        ((2, 9, 9, 3), 3, 1, 2, "SAME"),
        ((2, 10, 10, 3), 5, 2, 2, "SAME"),
        ((2, 7, 7, 3), 3, 1, 1, 2),  # symmetric padding wider than the kernel needs
        ((2, 8, 8, 3), 3, 2, 2, 0),
    ],
)
def test_depthwise_shift_gradients_equal_xla(shape, k, stride, dilation, padding):
    # depthwise_shift's hand-written backward pass against autodiff of XLA's conv.
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (k, k, 1, shape[-1]))

    def conv(impl):
        return lambda a, b: layers.depthwise_conv(a, b, stride, dilation, padding, impl=impl)

    _assert_same(_grads(conv("shift"), x, w), _grads(conv("xla"), x, w))


@pytest.mark.parametrize(
    "shape, kernel, strides, padding",
    [
        ((2, 5, 5, 6), (1, 1, 6, 4), (1, 1), "SAME"),  # the matmul path
        ((2, 5, 5, 6), (1, 1, 6, 4), (1, 1), ((0, 0), (0, 0))),
        ((2, 5, 5, 6), (1, 1, 6, 4), (2, 2), "SAME"),  # passed through to XLA
        ((2, 5, 5, 6), (3, 3, 6, 4), (1, 1), "SAME"),
        ((2, 5, 5, 6), (1, 1, 6, 4), (1, 1), ((1, 1), (0, 0))),
    ],
)
def test_conv_general_dilated_hook_equals_xla(shape, kernel, strides, padding):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), kernel)

    def conv(fn):
        return lambda a, b: fn(a, b, strides, padding, dimension_numbers=DN)

    ours = _grads(conv(convs.conv_general_dilated), x, w)
    _assert_same(ours, _grads(conv(jax.lax.conv_general_dilated), x, w))


def test_nn_conv_with_the_hook_keeps_parameters_and_outputs():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
    plain = nn.Conv(5, (1, 1))
    hooked = nn.Conv(5, (1, 1), conv_general_dilated=convs.conv_general_dilated)
    variables = plain.init(jax.random.key(1), x)
    assert jax.tree.structure(hooked.init(jax.random.key(1), x)) == jax.tree.structure(variables)
    np.testing.assert_allclose(
        hooked.apply(variables, x), plain.apply(variables, x), rtol=1e-5, atol=1e-5
    )


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
