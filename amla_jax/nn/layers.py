"""Layers shared by every network builder: BatchNorm, SAME padding, the CPU-fast conv
paths, LRN, pooling and cutout.

One `batch_norm` and one `same_padding` serve the macro, micro and ENAS bodies (they
differ only in the options they pass). The convolutions pick a faster formulation on
CPU where XLA's own is slow (depthwise as shifted slices; small maps as im2col matmuls)
and give the same result as `jax.lax.conv_general_dilated`.

Synopsis::

    from amla_jax.nn.layers import Conv, DepthwiseConv, batch_norm, same_padding
    y = batch_norm(train, momentum=0.99)(x)       # inside a compact Flax module
    same_padding(kernel=3)                         # (1, 1)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.convs import conv_general_dilated, depthwise_shift

# TF-slim's xavier initialiser, which AMLA's convolutions use.
conv_init = nn.initializers.glorot_uniform()
TF_SLIM_EPSILON = 1e-3  # TF-slim's BatchNorm epsilon, `batch_norm`'s default


def batch_norm(
    train: bool,
    momentum: float,
    scale: bool = False,
    name: str | None = None,
    epsilon: float = TF_SLIM_EPSILON,
    offset: bool = True,
) -> nn.BatchNorm:
    """BatchNorm with batch statistics in training and running averages in evaluation.

    The defaults are TF-slim's (offset only, epsilon 1e-3), which AMLA's envelope cells
    use; the micro ops ask for an affine one with PyTorch's epsilon 1e-5. AMLA's TF code
    always used batch statistics (it never passed ``is_training``); we do not copy that
    quirk (amla_spec.md A.1). ``offset=False`` drops β too: with ``scale=False`` that is
    PyTorch's ``affine=False``, which the one-shot supernets' ops use.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        use_scale=scale,
        use_bias=offset,
        name=name,
    )


def same_padding(
    kernel: int, dilation: int = 1, size: int | None = None, stride: int = 1
) -> tuple[int, int]:
    """TF's SAME padding of one spatial axis, as (before, after); the extra pixel goes
    after, so odd kernels pad symmetrically (as PyTorch/DARTS do at stride 1).

    Args:
      kernel: kernel size.
      dilation: kernel dilation.
      size: the axis length; needed only when ``stride`` > 1.
      stride: the stride.
    """
    if size is None:
        total = (kernel - 1) * dilation
    else:
        out = -(-size // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def depthwise_conv(
    x: jax.Array,
    kernel: jax.Array,
    stride: int = 1,
    dilation: int = 1,
    padding: str | int = "SAME",
    impl: str = "auto",
) -> jax.Array:
    """A depthwise convolution; ``kernel`` has Flax's grouped shape (k, k, 1, C).

    On CPU, XLA's grouped convolution is very slow in the backward pass (175x slower
    than this for a 7x7 kernel over 1024 channels at 1x1, 4x at 32x32; see
    experiments/bench/README.md), so ``impl="auto"`` computes it there as a sum of k²
    shifted, per-channel-scaled slices (`convs.depthwise_shift`, whose hand-written
    backward pass keeps only ``x``). Elsewhere it uses ``lax.conv_general_dilated``. Both
    give the same result.

    Args:
      x: NHWC input.
      kernel: (k, k, 1, C) weights.
      stride: spatial stride.
      dilation: kernel dilation.
      padding: "SAME" (TF, asymmetric when strided) or a symmetric pixel count.
      impl: "auto", "shift" or "xla".
    """
    k = kernel.shape[0]
    if isinstance(padding, int):
        pads = [(padding, padding)] * 2
    else:
        pads = [same_padding(k, dilation, x.shape[a], stride) for a in (1, 2)]
    if impl == "xla" or (impl == "auto" and jax.default_backend() != "cpu"):
        return jax.lax.conv_general_dilated(
            x,
            kernel,
            (stride, stride),
            pads,
            rhs_dilation=(dilation, dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1],
        )
    return depthwise_shift(x, kernel, stride, dilation, tuple(tuple(p) for p in pads))


def reachable_taps(kernel: jax.Array, height: int, width: int) -> jax.Array:
    """The central taps of a stride-1 SAME kernel that can touch a real pixel.

    With SAME padding, a tap more than ``size - 1`` pixels from the kernel's centre only
    ever multiplies padding, so on small feature maps (AMLA's last stages are 2x2 and
    1x1 on 8x8 digits) a 5x5 or 7x7 kernel can be cropped to its central
    ``(2·size − 1)``² taps without changing the result, only the work.
    """
    k_h, k_w = kernel.shape[:2]
    keep_h, keep_w = reachable_size(k_h, height), reachable_size(k_w, width)
    top, left = (k_h - keep_h) // 2, (k_w - keep_w) // 2
    return kernel[top : top + keep_h, left : left + keep_w]


def reachable_size(kernel: int, size: int) -> int:
    """How many of a stride-1 SAME kernel's taps along an axis of ``size`` pixels can
    touch a real pixel (`reachable_taps` keeps that many)."""
    return min(kernel, 2 * size - 1)


def conv_same(x: jax.Array, kernel: jax.Array, impl: str = "auto") -> jax.Array:
    """A stride-1 SAME convolution with an HWIO ``kernel``.

    On CPU, XLA's convolution gradients are very slow on tiny feature maps (a 3x3
    512→256 conv at 2x2 trains ~5-15x slower than the same work as one matmul), so
    ``impl="auto"`` uses an im2col matmul there for maps of at most 4x4 pixels, and a 1x1
    kernel is one matmul on CPU (`convs.conv_general_dilated`); ``impl="xla"`` is always
    XLA's convolution.
    """
    k_h, k_w = kernel.shape[:2]
    small = x.shape[1] * x.shape[2] <= 16 and (k_h > 1 or k_w > 1)
    if impl == "im2col" or (impl == "auto" and small and jax.default_backend() == "cpu"):
        height, width = x.shape[1], x.shape[2]
        pad_h, pad_w = same_padding(k_h), same_padding(k_w)
        xp = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
        cols = jnp.concatenate(
            [xp[:, i : i + height, j : j + width, :] for i in range(k_h) for j in range(k_w)],
            axis=-1,
        )
        return jnp.einsum("nhwc,cd->nhwd", cols, kernel.reshape(-1, kernel.shape[-1]))
    conv = jax.lax.conv_general_dilated if impl == "xla" else conv_general_dilated
    return conv(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


class Conv(nn.Module):
    """A stride-1 SAME convolution without bias whose kernel is cropped to the taps that
    can reach real pixels (`reachable_taps`), computed by `conv_same`; its parameter is
    ``kernel`` as in ``nn.Conv``."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", conv_init, shape, jnp.float32)
        return conv_same(x, reachable_taps(kernel, x.shape[1], x.shape[2]))


class DepthwiseConv(nn.Module):
    """A depthwise k×k convolution (no bias) with `depthwise_conv`'s fast CPU path.

    Its parameter is ``kernel`` of shape (k, k, 1, C), as in ``nn.Conv`` with
    ``feature_group_count=C``, so parameter counts and checkpoints are the same.
    """

    kernel_size: int
    stride: int = 1
    dilation: int = 1
    padding: str | int = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, 1, x.shape[-1])
        kernel = self.param("kernel", conv_init, shape, jnp.float32)
        if self.stride == 1 and self.dilation == 1 and self.padding == "SAME":
            kernel = reachable_taps(kernel, x.shape[1], x.shape[2])
        return depthwise_conv(x, kernel, self.stride, self.dilation, self.padding)


def local_response_norm(
    x: jax.Array,
    depth_radius: int = 4,
    bias: float = 1.0,
    alpha: float = 0.001 / 9.0,
    beta: float = 0.75,
) -> jax.Array:
    """TensorFlow's ``tf.nn.lrn`` over the channel axis (AMLA's stem ``lrn`` block)."""
    window = 2 * depth_radius + 1
    sq_sum = jax.lax.reduce_window(
        x * x,
        0.0,
        jax.lax.add,
        (1, 1, 1, window),
        (1, 1, 1, 1),
        ((0, 0), (0, 0), (0, 0), (depth_radius, depth_radius)),
    )
    return x / (bias + alpha * sq_sum) ** beta


def max_pool_same(x: jax.Array, size: int = 2, stride: int = 2) -> jax.Array:
    """TF-style SAME max-pool (padding never wins the max)."""
    return nn.max_pool(x, window_shape=(size, size), strides=(stride, stride), padding="SAME")


def batch_cutout(x: jax.Array, key: jax.Array, size: int, per_image: bool = False) -> jax.Array:
    """AMLA's stem cutout: a ``size``² zero square whose top-left corner is uniform.

    AMLA draws one square per batch, shared by all images, with its top-left corner in
    [0, H) x [0, W), clipped at the border (amla_spec.md A.10). ``per_image`` draws one
    square per image instead.
    """
    batch, height, width = x.shape[:3]
    num = batch if per_image else 1
    key_y, key_x = jax.random.split(key)
    top = jax.random.randint(key_y, (num, 1, 1), 0, height)
    left = jax.random.randint(key_x, (num, 1, 1), 0, width)
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return x * (1.0 - inside[..., None].astype(x.dtype))
