"""The NAS-Bench-201 body (Dong & Yang 2020) as NB201's reference code builds it.

Follows D-X-Y/AutoDL-Projects ``xautodl/models/cell_infers/tiny_network.py`` (the
``TinyNetwork`` skeleton), ``cells.py`` (``InferCell``) and ``cell_operations.py`` (the
ops and ``ResNetBasicblock``); read, not copied. Per edge: ``nor_conv_kxk`` is ReLU →
k×k conv (no bias, stride 1, pad k//2) → affine BN; ``avg_pool_3x3`` is a 3×3 average
pool, stride 1, pad 1, that excludes the padding (``POOLING``, ``count_include_pad=
False``); ``skip_connect`` is the identity; ``none`` is zeros. Node j is the sum of the
edges into it; the cell's output is node 3. Every edge's op exists (and has parameters)
even when its result cannot reach node 3, as in the reference.

Between stages, ``ResNetBasicblock(C, 2C, stride 2)``: ReLU → 3×3 conv stride 2 pad 1 →
BN, ReLU → 3×3 conv → BN, plus the shortcut 2×2 average pool stride 2 → 1×1 conv (no
BN). After the last cell, ``lastact``: BN → ReLU (the pool and classifier are the
network's head blocks). BatchNorms are affine with PyTorch's epsilon 1e-5 and momentum
0.1 (Flax's 0.9).

Synopsis::

    from amla_jax.nn.nb201 import NB201Body
    features, _ = NB201Body(spec.body, num_classes=10).apply(variables, x, train=False)

`nb201_op`, `sum_into_nodes` and `nb201_stages` are the pieces the one-shot supernet
(`amla_jax.nn.supernet_nb201`) shares with this body.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.layers import Conv, conv_init
from amla_jax.nn.micro_ops import affine_batch_norm
from amla_jax.spec.base import SpecError
from amla_jax.spec.nb201 import NB201_EDGES, NB201Spec

NUM_STAGES = 3


def nb201_op(
    op: str,
    x: jax.Array,
    train: bool,
    features: int,
    momentum: float,
    name: str,
    affine: bool = True,
) -> jax.Array:
    """One NB201 edge op applied to ``x`` (call inside a compact Flax module).

    The one definition of NB201's ops, shared by the discrete cell and the one-shot
    supernet's mixed op; ``affine=False`` is the search cells' BN (no γ, β).
    """
    if op == "none":
        return jnp.zeros_like(x)
    if op == "skip_connect":
        return x
    if op == "avg_pool_3x3":
        return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[op]
    y = Conv(features, kernel, name=f"{name}_conv")(nn.relu(x))
    return affine_batch_norm(y, train, momentum, f"{name}_bn", affine)


def sum_into_nodes(x: jax.Array, edge: Callable[[int, int, jax.Array], jax.Array]) -> jax.Array:
    """NB201's cell DAG: node j is the sum of ``edge(i, j, node_i)`` over the edges
    ``(j, i)`` into it, in `NB201_EDGES` order; returns node 3."""
    nodes = [x]
    for to in range(1, NB201_EDGES[-1][0] + 1):
        total = None
        for index, (target, source) in enumerate(NB201_EDGES):
            if target == to:
                y = edge(index, source, nodes[source])
                total = y if total is None else total + y
        nodes.append(total)
    return nodes[-1]


class NB201Cell(nn.Module):
    """One NB201 cell of ``features`` channels: the six edges of ``ops`` into nodes 1-3."""

    ops: tuple[str, ...]
    features: int
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def edge(index: int, source: int, y: jax.Array) -> jax.Array:
            target = NB201_EDGES[index][0]
            name = f"edge{target}_{source}"
            return nb201_op(self.ops[index], y, train, self.features, self.bn_momentum, name)

        return sum_into_nodes(x, edge)


class NB201Reduction(nn.Module):
    """NB201's ``ResNetBasicblock(inplanes, features, stride=2)`` between stages."""

    features: int
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        # PyTorch's explicit padding 1 (not SAME, which pads only after at stride 2).
        y = nn.Conv(
            self.features,
            (3, 3),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=conv_init,
            name="conv_a",
        )(nn.relu(x))
        y = affine_batch_norm(y, train, self.bn_momentum, "conv_a_bn")
        y = Conv(self.features, 3, name="conv_b")(nn.relu(y))
        y = affine_batch_norm(y, train, self.bn_momentum, "conv_b_bn")
        shortcut = nn.avg_pool(x, (2, 2), (2, 2), "VALID")
        shortcut = Conv(self.features, 1, name="shortcut_conv")(shortcut)
        return y + shortcut


class NB201Body(nn.Module):
    """Three stages of ``cells_per_stage`` cells at C, 2C, 4C, then BN-ReLU.

    Returns ``(features, ())``: NB201 has no auxiliary head and no drop-path.
    """

    spec: NB201Spec
    num_classes: int
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, drop_path_rate=0.0):
        del drop_path_rate  # NB201 trains without drop-path
        width = self.spec.channels
        if x.shape[-1] != width:
            # NB201's cells keep their input width; the stem must produce arch.channels.
            raise SpecError(
                f"stem: outputs {x.shape[-1]} channels but arch.channels is {width}; "
                "make the stem conv's 'outputs' equal arch.channels"
            )

        def cell(x: jax.Array, width: int, name: str) -> jax.Array:
            return NB201Cell(self.spec.ops, width, self.bn_momentum, name=name)(x, train)

        x = nb201_stages(x, train, self.spec.cells_per_stage, self.bn_momentum, cell)
        return x, ()


def nb201_stages(
    x: jax.Array,
    train: bool,
    cells_per_stage: int,
    momentum: float,
    cell: Callable[[jax.Array, int, str], jax.Array],
) -> jax.Array:
    """NB201's skeleton after the stem (call inside a compact Flax module): three stages
    of ``cells_per_stage`` cells at C, 2C, 4C (C = ``x``'s width) with the ResNet
    reduction blocks between them, then BN-ReLU. ``cell(x, width, name)`` applies one
    cell; the discrete body and the one-shot supernet differ only there."""
    width = x.shape[-1]
    for stage in range(NUM_STAGES):
        if stage:
            width *= 2
            x = NB201Reduction(width, momentum, name=f"reduce{stage}")(x, train)
        for i in range(cells_per_stage):
            x = cell(x, width, f"s{stage}_c{i}")
    x = affine_batch_norm(x, train, momentum, "lastact_bn")
    return nn.relu(x)
