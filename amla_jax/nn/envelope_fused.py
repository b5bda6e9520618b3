"""An envelope cell's branches computed as a few dense convolutions, on CPU.

Every envelope branch (amla_spec.md A.1) starts with a stride-1 SAME convolution: a
dense k×k one, or a k×k depthwise one followed by a 1x1 pointwise one, which together
are the dense convolution with kernel ``D[i, j, c] · P[c, o]``. Concatenating the
kernels of the branches with the same size along the output channels gives one
convolution per kernel size (a 3x3 and a 3x3sep branch: one 3x3 convolution); on small
cells, every kernel zero-padded to the largest gives ONE convolution. Their outputs, in
branch order, are the branches' outputs. BatchNorm is per channel, ReLU and dropout are
per element, and MeanSSS is a per-branch mean of per-channel means, so the rest of the
cell is one BatchNorm, one ReLU, one dropout. The parameters and statistics are the
branch modules' own (same names, shapes, initial values), so checkpoints, parameter
counts and NAC's ``nac_stats`` are the same whichever way a cell runs.

Why: XLA:CPU's compile time follows the number of fusions (~8 ms each), and a cell's
six branches were ~400 of them (the depthwise path alone k² per convolution); on digits'
8x8 maps, with 2-5 channels per branch, the step's time followed the number of ops too.
Cost: a separable branch loses its factorisation (k²·C_in·C_out multiply-adds instead of
k²·C_in + C_in·C_out), so `fuses` asks for this only up to the cell sizes measured not
to step slower (``FUSED_MAX_MACS`` per example): there XLA's dense convolutions were as
fast as the per-branch ops or faster (experiments/bench/README.md). One convolution per
size from ``GROUP_MIN_MACS`` on: on AMLA's CIFAR-10 EnvelopeNet the padded kernel did
2.5x the arithmetic (a 1x1 branch in a 7x7 kernel does 49 times its work) and stepped
1.5x slower. Square maps only (`reachable_taps` crops each axis on its own). Not the
same as the per-branch form: float rounding, and the dropout mask (one draw over the
cell instead of one per branch; the same distribution).

Synopsis::

    if fuses(layer, height, width, channels):
        y = fused_branches(self, x, layer.branches, width, dropout, momentum, train)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.layers import (
    TF_SLIM_EPSILON,
    conv_init,
    conv_same,
    reachable_size,
    reachable_taps,
)
from amla_jax.spec.macro import parse_macro_op

# A cell runs fused up to this many multiply-adds per example, counted as every branch
# padded to the cell's largest kernel (H·W·K²·C_in·C_out; the rule's measure since the
# cells were one padded convolution, kept so that the same cells fuse): the largest
# measured, AMLA's CIFAR-10 EnvelopeNet (cells of 181-201M), stepped faster fused than
# per branch, and NAC's digits cells (<= 0.7M) too (experiments/bench/README.md). Larger
# cells are unmeasured.
FUSED_MAX_MACS = 250_000_000

# Below this many multiply-adds per example (counted the same way) a fused cell is ONE
# convolution, every branch's kernel padded to the cell's largest. Measured with
# experiments/bench/compile_probe.py: on digits at NAC's widths (cells <= 0.8M) one per
# kernel size stepped 1.3-1.6x slower and compiled 1.2-1.4x slower; at AMLA's widths (12M)
# it stepped as fast and compiled 1.5x slower. At CIFAR-10 size (181-201M) the padded
# kernel's 2.5x arithmetic stepped 1.5x slower (train_step.py). Between, unmeasured.
GROUP_MIN_MACS = 50_000_000


def fused_kernel(branches, height: int, width: int) -> int | None:
    """The largest kernel size K of ``branches`` on a ``height`` x ``width`` map (the
    taps that reach a pixel), or None where a kernel is even (its SAME padding is not
    centred: kept per branch)."""
    sizes = [parse_macro_op(op)[0] for _, op in branches]
    if any(k % 2 == 0 for k in sizes):
        return None
    return max(max(reachable_size(k, height), reachable_size(k, width)) for k in sizes)


def padded_macs(height: int, width: int, kernel: int, in_channels: int, out_channels: int) -> int:
    """Multiply-adds per example of a cell's branches as one convolution with every
    kernel padded to ``kernel``: the measure of ``FUSED_MAX_MACS`` and ``GROUP_MIN_MACS``."""
    return height * width * kernel * kernel * in_channels * out_channels


def fuses(branches, height: int, width: int, in_channels: int, out_channels: int) -> bool:
    """True where a cell of ``branches`` runs fused: on CPU, square maps and odd kernels
    only, and at most ``FUSED_MAX_MACS`` multiply-adds per example."""
    k = fused_kernel(branches, height, width)
    if k is None or height != width or jax.default_backend() != "cpu":
        return False
    return padded_macs(height, width, k, in_channels, out_channels) <= FUSED_MAX_MACS


class _Kernel(nn.Module):
    """Declares ``kernel`` as ``nn.Conv`` / `layers.Conv` / `layers.DepthwiseConv` do."""

    shape: tuple[int, ...]

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("kernel", conv_init, self.shape, jnp.float32)


class _BatchNormVariables(nn.Module):
    """Declares ``nn.BatchNorm``'s offset-only variables: running mean and var, bias."""

    features: int

    @nn.compact
    def __call__(self):
        shape = (self.features,)
        mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), shape)
        var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), shape)
        bias = self.param("bias", nn.initializers.zeros, shape, jnp.float32)
        return mean, var, bias


class _TapVariables(nn.Module):
    """Declares `macro.MeanSquareTap`'s ``nac_stats`` variables."""

    @nn.compact
    def __call__(self):
        total = self.variable("nac_stats", "meansss_sum", lambda: jnp.zeros((), jnp.float32))
        count = self.variable("nac_stats", "count", lambda: jnp.zeros((), jnp.float32))
        return total, count


class _BranchVariables(nn.Module):
    """One branch's variables, named as `macro.EnvelopeBranch` names them; returns its
    dense kernel (cropped to the reachable taps), BatchNorm and tap variables."""

    op: str
    features: int

    @nn.compact
    def __call__(self, in_channels: int, height: int, width: int):
        k, separable = parse_macro_op(self.op)
        if separable:
            depthwise = _Kernel((k, k, 1, in_channels), name="depthwise")()
            pointwise = _Kernel((1, 1, in_channels, self.features), name="pointwise")()
            depthwise = reachable_taps(depthwise, height, width)
            kernel = depthwise[:, :, 0, :, None] * pointwise[0, 0][None, None]
        else:
            kernel = _Kernel((k, k, in_channels, self.features), name="conv")()
            kernel = reachable_taps(kernel, height, width)
        return (
            kernel,
            _BatchNormVariables(self.features, name="bn")(),
            _TapVariables(name="stats")(),
        )


def _pad_to(kernel: jax.Array, size: int) -> jax.Array:
    """``kernel`` zero-padded to ``size`` x ``size``, centred (odd sizes)."""
    edge = (size - kernel.shape[0]) // 2
    return jnp.pad(kernel, ((edge, edge), (edge, edge), (0, 0), (0, 0)))


def _convolve(x: jax.Array, kernels: list[jax.Array]) -> jax.Array:
    """The convolutions of ``x`` with ``kernels`` (HWIO, equal output widths),
    concatenated in their order: one convolution per kernel size, or below
    ``GROUP_MIN_MACS`` one with every kernel padded to the largest."""
    size = max(kernel.shape[0] for kernel in kernels)
    features = kernels[0].shape[-1]
    _, height, width, channels = x.shape
    if padded_macs(height, width, size, channels, features * len(kernels)) < GROUP_MIN_MACS:
        return conv_same(x, jnp.concatenate([_pad_to(k, size) for k in kernels], axis=-1))
    by_size: dict[int, list[int]] = {}
    for i, kernel in enumerate(kernels):
        by_size.setdefault(kernel.shape[0], []).append(i)
    if len(by_size) == 1:
        return conv_same(x, jnp.concatenate(kernels, axis=-1))
    parts: list[jax.Array | None] = [None] * len(kernels)
    for members in by_size.values():
        y = conv_same(x, jnp.concatenate([kernels[i] for i in members], axis=-1))
        for j, i in enumerate(members):
            parts[i] = y[..., j * features : (j + 1) * features]
    return jnp.concatenate(parts, axis=-1)


def fused_branches(
    cell: nn.Module,
    x: jax.Array,
    branches: tuple[tuple[str, str], ...],
    features: int,
    dropout: float,
    bn_momentum: float,
    train: bool,
) -> jax.Array:
    """A filter layer's branches (after any skip bottleneck) as one convolution per
    kernel size (`_convolve`), then one BatchNorm, ReLU, MeanSSS tap and dropout, called
    inside ``cell``'s compact method so that the variables sit where
    `macro.EnvelopeBranch` puts them (``Cell<c>/<key>/...``).
    Equals the branches' outputs concatenated, to float rounding and the dropout draw.

    Args:
      cell: the calling module (its variables are declared in its scope).
      x: the NHWC input of every branch.
      branches: ``(branch key, op)`` pairs in the layer's order.
      features: channels per branch.
      dropout: the branches' dropout rate.
      bn_momentum: the running averages' momentum.
      train: batch statistics, MeanSSS and dropout if True; running averages if False.
    """
    height, width = x.shape[1], x.shape[2]
    parts = [
        _BranchVariables(op, features, name=key)(x.shape[-1], height, width) for key, op in branches
    ]
    y = _convolve(x, [kernel for kernel, _, _ in parts])
    bn = [variables for _, variables, _ in parts]
    bias = jnp.concatenate([b.astype(jnp.float32) for _, _, b in bn])
    if train:
        mean = jnp.mean(y, axis=(0, 1, 2))
        var = jnp.maximum(0.0, jnp.mean(jnp.square(y), axis=(0, 1, 2)) - jnp.square(mean))
        if not cell.is_initializing():
            m = bn_momentum
            for i, (ra_mean, ra_var, _) in enumerate(bn):
                part = slice(i * features, (i + 1) * features)
                ra_mean.value = m * ra_mean.value + (1 - m) * mean[part]
                ra_var.value = m * ra_var.value + (1 - m) * var[part]
    else:
        mean = jnp.concatenate([ra_mean.value for ra_mean, _, _ in bn])
        var = jnp.concatenate([ra_var.value for _, ra_var, _ in bn])
    y = nn.relu((y - mean) * jax.lax.rsqrt(var + TF_SLIM_EPSILON) + bias)
    if train and cell.is_mutable_collection("nac_stats") and not cell.is_initializing():
        per_channel = jnp.mean(jnp.square(jax.lax.stop_gradient(y)), axis=(0, 1, 2))
        per_branch = per_channel.reshape(len(parts), features).mean(axis=1)
        for i, (_, _, (total, count)) in enumerate(parts):
            total.value = total.value + per_branch[i] * y.shape[0]
            count.value = count.value + 1.0
    return nn.Dropout(dropout, deterministic=not train, name="dropout")(y)
