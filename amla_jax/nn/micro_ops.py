"""Operations of micro-cell networks: DARTS, ENAS, NASNet/AmoebaNet and AMLA's micro DAG.

Each registry entry of `MICRO_OPS` is a `MicroOp`: a Flax module class, its fixed
options, and the rule that says whether drop-path applies to its output. Every op maps
its input to ``features`` channels at ``stride`` (genotypes.md §1.2, §2.4, §4.2): convs
have no bias, every BatchNorm is affine (γ, β), average pooling excludes the padding,
and odd kernels pad symmetrically (PyTorch/DARTS) while even ones pad after (TF SAME).
The ``amla_*`` ops are AMLA's micro-DAG node types (amla_spec.md D.2); their
``features`` default to the input width.

Synopsis::

    from amla_jax.nn.micro_ops import get_op
    op = get_op("sep_conv_3x3").build(features=36, stride=2, bn_momentum=0.9, name="op")
    y = op(x, train=True)                     # inside a compact Flax module
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.layers import batch_norm, same_padding

conv_init = nn.initializers.he_normal()


def conv(
    x: jax.Array,
    features: int,
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    name: str | None = None,
) -> jax.Array:
    """A 2-D convolution with `same_padding` on each axis."""
    padding = tuple(same_padding(k, dilation) for k in kernel)
    return nn.Conv(
        features,
        kernel,
        strides=stride,
        padding=padding,
        kernel_dilation=dilation,
        feature_group_count=groups,
        use_bias=use_bias,
        kernel_init=conv_init,
        name=name,
    )(x)


def affine_batch_norm(
    x: jax.Array, train: bool, momentum: float, name: str | None = None, affine: bool = True
) -> jax.Array:
    """`batch_norm` with γ and β and PyTorch's epsilon 1e-5 (DARTS/ENAS/NASNet), applied.

    ``affine=False`` leaves out γ and β, as the DARTS and NB201 search networks do inside
    their mixed ops (PyTorch's ``BatchNorm2d(C, affine=False)``).
    """
    return batch_norm(train, momentum, scale=affine, name=name, epsilon=1e-5, offset=affine)(x)


def pool(x: jax.Array, kind: str, kernel: int, stride: int) -> jax.Array:
    """Max or average pooling (the average excludes the padding)."""
    padding = (same_padding(kernel),) * 2
    if kind == "max":
        return nn.max_pool(
            x, window_shape=(kernel, kernel), strides=(stride, stride), padding=padding
        )
    return nn.avg_pool(
        x,
        window_shape=(kernel, kernel),
        strides=(stride, stride),
        padding=padding,
        count_include_pad=False,
    )


def drop_path(module: nn.Module, x: jax.Array, rate: Any) -> jax.Array:
    """Zeroes whole samples with probability ``rate`` and rescales the rest by 1/(1-rate)."""
    keep = 1.0 - rate
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, (x.shape[0], 1, 1, 1))
    return x * mask.astype(x.dtype) / keep


class _Op(nn.Module):
    features: int
    stride: int = 1
    bn_momentum: float = 0.9
    # False in the one-shot search networks: every BatchNorm of the op without γ, β.
    affine: bool = True


class ReLUConvBN(_Op):
    """ReLU → k×k conv (stride) → BN; DARTS's preprocessing and NASNet's ``1x1`` op."""

    kernel: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = conv(nn.relu(x), self.features, (self.kernel,) * 2, (self.stride,) * 2)
        return affine_batch_norm(x, train, self.bn_momentum, affine=self.affine)


class FactorizedReduce(_Op):
    """Two 1×1 stride-2 convs to F/2 (the second on the input shifted by one pixel),
    concatenated, then BN; with ``stride`` 1 a 1×1 conv → BN (genotypes.md §0.6)."""

    stride: int = 2
    relu: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.relu:
            x = nn.relu(x)
        if self.stride == 1:
            return affine_batch_norm(
                conv(x, self.features, (1, 1)), train, self.bn_momentum, affine=self.affine
            )
        half = self.features // 2
        shifted = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:, :]
        path1 = conv(x[:, ::2, ::2], half, (1, 1), name="path1")
        path2 = conv(shifted[:, ::2, ::2], self.features - half, (1, 1), name="path2")
        return affine_batch_norm(
            jnp.concatenate([path1, path2], -1), train, self.bn_momentum, affine=self.affine
        )


class SepConv(_Op):
    """``repeats`` × (ReLU → depthwise k×k (dilation) → pointwise → BN); stride on the first.

    ``repeats=2`` is the stacked sep_conv of DARTS/ENAS/NASNet, ``repeats=1`` with
    ``dilation=2`` is DARTS's dil_conv.
    """

    kernel: int = 3
    dilation: int = 1
    repeats: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i in range(self.repeats):
            stride = (self.stride,) * 2 if i == 0 else (1, 1)
            x = nn.relu(x)
            x = conv(x, x.shape[-1], (self.kernel,) * 2, stride, self.dilation, x.shape[-1])
            x = affine_batch_norm(
                conv(x, self.features, (1, 1)), train, self.bn_momentum, affine=self.affine
            )
        return x


class Pool(_Op):
    """k×k max/avg pool; a 1×1 conv → BN (no ReLU) follows when the width differs (NASNet)."""

    kind: str = "max"
    kernel: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        width = x.shape[-1]
        x = pool(x, self.kind, self.kernel, self.stride)
        if width != self.features:
            x = affine_batch_norm(
                conv(x, self.features, (1, 1)), train, self.bn_momentum, affine=self.affine
            )
        return x


class Skip(_Op):
    """Identity where shapes allow; otherwise a reduction of the chosen ``style``:

    - ``"darts"``: ReLU → FactorizedReduce (DARTS ``skip_connect``);
    - ``"enas"``: FactorizedReduce without ReLU when strided, then ReLU → 1×1 → BN if
      the input width differs (ENAS ``identity``);
    - ``"nasnet"``: ReLU → 1×1 conv (stride) → BN (NASNet/AmoebaNet ``none``).
    """

    style: str = "darts"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        width = x.shape[-1]
        if self.stride == 1 and width == self.features:
            return x
        momentum, affine = self.bn_momentum, self.affine
        if self.style == "darts":
            return FactorizedReduce(self.features, self.stride, momentum, affine)(x, train)
        if self.style == "nasnet":
            return ReLUConvBN(self.features, self.stride, momentum, affine)(x, train)
        if self.stride > 1:
            x = FactorizedReduce(self.features, self.stride, momentum, affine, relu=False)(x, train)
        if width != self.features:
            x = ReLUConvBN(self.features, 1, momentum, affine)(x, train)
        return x


class Zero(_Op):
    """The zero op (DARTS ``none``): zeros at the output size."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train
        x = x[:, :: self.stride, :: self.stride, :1]
        return jnp.zeros((*x.shape[:3], self.features), x.dtype)


class FactorizedConv(_Op):
    """ReLU → 1×k conv → k×1 conv → BN, no BN between (DARTS ``conv_7x1_1x7``)."""

    kernel: int = 7

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = conv(nn.relu(x), self.features, (1, self.kernel), (1, self.stride))
        x = conv(x, self.features, (self.kernel, 1), (self.stride, 1))
        return affine_batch_norm(x, train, self.bn_momentum, affine=self.affine)


class Bottleneck(_Op):
    """ReLU → 1×1 (→ F/4) → BN → ReLU → inner conv (stride) → BN → ReLU → 1×1 (→ F) → BN.

    The inner conv is k×k, or 1×k → BN → ReLU → k×1 when ``factorized`` (AmoebaNet
    ``3x3`` and ``1x7_7x1``, genotypes.md §4.2).
    """

    kernel: int = 3
    factorized: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        narrow, momentum, k, s = self.features // 4, self.bn_momentum, self.kernel, self.stride
        x = affine_batch_norm(conv(nn.relu(x), narrow, (1, 1)), train, momentum, affine=self.affine)
        if self.factorized:
            x = affine_batch_norm(
                conv(nn.relu(x), narrow, (1, k), (1, s)), train, momentum, affine=self.affine
            )
            x = affine_batch_norm(
                conv(nn.relu(x), narrow, (k, 1), (s, 1)), train, momentum, affine=self.affine
            )
        else:
            x = affine_batch_norm(
                conv(nn.relu(x), narrow, (k, k), (s, s)), train, momentum, affine=self.affine
            )
        return affine_batch_norm(
            conv(nn.relu(x), self.features, (1, 1)), train, momentum, affine=self.affine
        )


class AmlaOp(_Op):
    """An AMLA micro-DAG op node (amla_spec.md D.2), followed by dropout 0.2 in training.

    ``kind``: ``"conv"`` (conv → BN β-only → ReLU), ``"sep"`` (depthwise + pointwise,
    then BN → ReLU), ``"dilated"`` (atrous conv rate 2 with bias → ReLU, no BN),
    ``"max"``/``"avg"`` (pooling) or ``"identity"``.
    """

    kind: str = "conv"
    kernel: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        k, stride = (self.kernel,) * 2, (self.stride,) * 2
        if self.kind == "identity":
            return x
        if self.kind in ("max", "avg"):
            x = pool(x, self.kind, self.kernel, self.stride)
        elif self.kind == "dilated":
            x = nn.relu(conv(x, self.features, k, stride, dilation=2, use_bias=True))
        else:
            if self.kind == "sep":
                x = conv(x, x.shape[-1], k, stride, groups=x.shape[-1])
                stride = (1, 1)
            x = conv(x, self.features, (1, 1) if self.kind == "sep" else k, stride)
            x = nn.relu(batch_norm(train, self.bn_momentum, epsilon=1e-5)(x))
        return nn.Dropout(0.2, deterministic=not train)(x)


@dataclass(frozen=True)
class MicroOp:
    """A registry entry: module class, fixed options, and the drop-path rule.

    Attributes:
      module: the Flax module class (fields ``features``, ``stride``, ``bn_momentum``).
      options: fixed keyword options of the class.
      drop: ``"always"``, ``"never"`` or ``"unless_identity"`` (DARTS drops a
        ``skip_connect`` only where it is a FactorizedReduce).
    """

    module: type[nn.Module]
    options: dict = field(default_factory=dict)
    drop: str = "always"

    def build(
        self, features: int, stride: int, bn_momentum: float, name: str, affine: bool = True
    ) -> nn.Module:
        # AMLA's ops ignore ``affine`` (their BatchNorm is β-only by AMLA's design).
        return self.module(features, stride, bn_momentum, affine, name=name, **self.options)

    def drops(self, stride: int, in_width: int, features: int) -> bool:
        if self.drop == "unless_identity":
            return stride > 1 or in_width != features
        return self.drop == "always"


def _amla_ops() -> dict[str, MicroOp]:
    ops = {"amla_identity": MicroOp(AmlaOp, {"kind": "identity"}, "never")}
    for k in (1, 3, 5, 7):
        ops[f"amla_{k}x{k}"] = MicroOp(AmlaOp, {"kind": "conv", "kernel": k}, "never")
        ops[f"amla_{k}x{k}sep"] = MicroOp(AmlaOp, {"kind": "sep", "kernel": k}, "never")
        ops[f"amla_{k}x{k}dilated"] = MicroOp(AmlaOp, {"kind": "dilated", "kernel": k}, "never")
    for k in (2, 3, 5):
        ops[f"amla_{k}x{k}maxpool"] = MicroOp(AmlaOp, {"kind": "max", "kernel": k}, "never")
        ops[f"amla_{k}x{k}avgpool"] = MicroOp(AmlaOp, {"kind": "avg", "kernel": k}, "never")
    return ops


MICRO_OPS: dict[str, MicroOp] = {
    "none": MicroOp(Zero, drop="never"),
    "skip_connect": MicroOp(Skip, {"style": "darts"}, "unless_identity"),
    "identity": MicroOp(Skip, {"style": "enas"}, "never"),
    "identity_conv": MicroOp(Skip, {"style": "nasnet"}, "never"),
    "sep_conv_3x3": MicroOp(SepConv, {"kernel": 3}),
    "sep_conv_5x5": MicroOp(SepConv, {"kernel": 5}),
    "sep_conv_7x7": MicroOp(SepConv, {"kernel": 7}),
    "dil_conv_3x3": MicroOp(SepConv, {"kernel": 3, "dilation": 2, "repeats": 1}),
    "dil_conv_5x5": MicroOp(SepConv, {"kernel": 5, "dilation": 2, "repeats": 1}),
    "dil_sep_conv_5x5": MicroOp(SepConv, {"kernel": 5, "dilation": 2}),
    "max_pool_2x2": MicroOp(Pool, {"kind": "max", "kernel": 2}),
    "max_pool_3x3": MicroOp(Pool, {"kind": "max", "kernel": 3}),
    "avg_pool_3x3": MicroOp(Pool, {"kind": "avg", "kernel": 3}),
    "conv_1x1": MicroOp(ReLUConvBN, {"kernel": 1}),
    "conv_3x3": MicroOp(ReLUConvBN, {"kernel": 3}),
    "conv_7x1_1x7": MicroOp(FactorizedConv, {"kernel": 7}),
    "bottleneck_3x3": MicroOp(Bottleneck, {"kernel": 3}),
    "bottleneck_1x7_7x1": MicroOp(Bottleneck, {"kernel": 7, "factorized": True}),
    **_amla_ops(),
}


def get_op(name: str) -> MicroOp:
    """The `MICRO_OPS` entry ``name``; raises KeyError listing the valid names."""
    if name not in MICRO_OPS:
        raise KeyError(f"unknown micro op {name!r}; valid: {', '.join(MICRO_OPS)}")
    return MICRO_OPS[name]


class AuxHeadConv(nn.Module):
    """ReLU → 5×5/3 avg-pool (VALID) → 1×1 conv 128 → BN → ReLU → conv 768 over the
    remaining map → BN → ReLU → FC: the DARTS/ENAS/NASNet CIFAR auxiliary head."""

    num_classes: int
    fc_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.avg_pool(nn.relu(x), window_shape=(5, 5), strides=(3, 3), padding="VALID")
        x = nn.relu(affine_batch_norm(conv(x, 128, (1, 1)), train, self.bn_momentum))
        x = nn.Conv(768, x.shape[1:3], padding="VALID", use_bias=False, kernel_init=conv_init)(x)
        x = nn.relu(affine_batch_norm(x, train, self.bn_momentum))
        return nn.Dense(self.num_classes, use_bias=self.fc_bias)(x.reshape(x.shape[0], -1))


class AuxHeadDense(nn.Module):
    """AMLA's ``dense`` auxiliary classifier: flatten → FC → ReLU → dropout 0.2."""

    num_classes: int
    fc_bias: bool = True
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.relu(nn.Dense(self.num_classes, use_bias=self.fc_bias)(x.reshape(x.shape[0], -1)))
        return nn.Dropout(0.2, deterministic=not train)(x)


AUX_HEADS = {"conv": AuxHeadConv, "dense": AuxHeadDense}
