"""CPU formulations of convolutions whose gradients XLA:CPU computes slowly; each gives
the math of ``jax.lax.conv_general_dilated`` (equal to float rounding).

Measured on a 2-core CPU at CIFAR shape (experiments/bench/README.md, "Where the step's
time goes"): XLA's weight gradient of a 1x1 convolution is a convolution 3-4x slower
than the same work as one matmul (2.2-3.5x for forward plus both gradients). Autodiff
of the depthwise "sum of shifted slices" stores every shifted slice for the backward
pass and pads each of the k² cotangents back; the hand-written backward keeps only x
and computes the input gradient as one shifted sum. Its kernel gradient still copies
each window once (XLA:CPU gives the k² reductions to YNNPACK, which takes materialised
operands): that copy is the largest remaining cost of the initial EnvelopeNet's step.
For k>1 convolutions, XLA's own gradients were the fastest measured (im2col and per-tap
weight gradients were slower), so they pass through unchanged.

Synopsis::

    from amla_jax.nn.convs import conv_general_dilated, depthwise_shift
    nn.Conv(64, (1, 1), conv_general_dilated=conv_general_dilated)  # 1x1 as a matmul
    y = depthwise_shift(x, kernel, stride=1, dilation=1, pads=((3, 3), (3, 3)))
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))


def _pointwise(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, groups, dn):
    """True where the convolution is a plain NHWC x HWIO 1x1 one: a matmul."""
    if rhs.ndim != 4 or rhs.shape[:2] != (1, 1) or groups != 1:
        return False
    if lax.conv_dimension_numbers(lhs.shape, rhs.shape, dn) != _NHWC:
        return False
    ones = all(s == 1 for s in (*window_strides, *(lhs_dilation or ()), *(rhs_dilation or ())))
    flat = padding in ("SAME", "VALID") or all(tuple(p) == (0, 0) for p in padding)
    return ones and flat


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    precision=None,
    **kwargs,
) -> jax.Array:
    """``lax.conv_general_dilated`` that computes a stride-1 NHWC 1x1 convolution on CPU
    as a matmul (``nn.Conv``'s ``conv_general_dilated`` hook); anything else is passed
    through unchanged.

    Why: its weight gradient is then a matmul too (3-4x faster than XLA:CPU's
    weight-gradient convolution at 32x32x128, batch 64); the forward pass is the same
    speed either way.
    """
    args = (window_strides, padding, lhs_dilation, rhs_dilation)
    if jax.default_backend() == "cpu" and _pointwise(
        lhs, rhs, *args, feature_group_count, dimension_numbers
    ):
        kernel = rhs.reshape(rhs.shape[2], rhs.shape[3])
        return lax.dot_general(lhs, kernel, (((3,), (0,)), ((), ())), precision=precision)
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )


def _taps(xp: jax.Array, k: int, dilation: int, stride: int, out_h: int, out_w: int):
    """The k² strided windows of ``xp`` that tap (i, j) of a k x k kernel multiplies."""
    for i in range(k):
        for j in range(k):
            start = (0, i * dilation, j * dilation, 0)
            limit = (
                xp.shape[0],
                i * dilation + (out_h - 1) * stride + 1,
                j * dilation + (out_w - 1) * stride + 1,
                xp.shape[3],
            )
            yield i, j, lax.slice(xp, start, limit, (1, stride, stride, 1))


def _shift_sum(xp, kernel, dilation, stride, out_h, out_w):
    """Σ_ij window_ij(xp) · kernel[i, j, 0]: one elementwise fusion."""
    out = None
    for i, j, tap in _taps(xp, kernel.shape[0], dilation, stride, out_h, out_w):
        term = tap * kernel[i, j, 0]
        out = term if out is None else out + term
    return out


def _forward(x, kernel, stride, dilation, pads):
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    span = (kernel.shape[0] - 1) * dilation + 1
    out_h = (xp.shape[1] - span) // stride + 1
    out_w = (xp.shape[2] - span) // stride + 1
    return _shift_sum(xp, kernel, dilation, stride, out_h, out_w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def depthwise_shift(x, kernel, stride: int, dilation: int, pads) -> jax.Array:
    """A depthwise convolution (NHWC ``x``, kernel (k, k, 1, C)) as a sum of k² shifted,
    per-channel-scaled slices, with a hand-written backward pass.

    ``pads`` is ((top, bottom), (left, right)), a tuple. The backward pass keeps only
    ``x`` (autodiff kept all k² slices) and computes the input gradient as the same kind
    of shifted sum over the dilated, padded cotangent with the flipped kernel, and the
    kernel gradient as k² reductions of window · cotangent.
    """
    return _forward(x, kernel, stride, dilation, pads)


def _depthwise_fwd(x, kernel, stride, dilation, pads):
    return _forward(x, kernel, stride, dilation, pads), (x, kernel)


def _depthwise_bwd(stride, dilation, pads, residuals, dy):
    x, kernel = residuals
    k = kernel.shape[0]
    # Per axis, the input gradient is dx[l] = Σ_j dyd[l + j·d] · kernel[k-1-j], where
    # dyd is dy dilated by the stride and padded so that window 0 starts at pixel 0.
    config = [(0, 0, 0)]
    for (before, _), size, out in zip(pads, x.shape[1:3], dy.shape[1:3], strict=True):
        low = (k - 1) * dilation - before
        dilated = (out - 1) * stride + 1
        config.append((low, size + (k - 1) * dilation - low - dilated, stride - 1))
    config.append((0, 0, 0))
    dyd = lax.pad(dy, jnp.zeros((), dy.dtype), config)
    dx = _shift_sum(dyd, kernel[::-1, ::-1], dilation, 1, x.shape[1], x.shape[2])
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    windows = _taps(xp, k, dilation, stride, dy.shape[1], dy.shape[2])
    dk = jnp.stack([jnp.sum(tap * dy, axis=(0, 1, 2)) for _, _, tap in windows])
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


depthwise_shift.defvjp(_depthwise_fwd, _depthwise_bwd)
