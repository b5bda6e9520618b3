"""The DARTS search network (Liu et al. 2019): a mixed op on every edge of every cell.

As quark0/darts ``cnn/model_search.py`` builds it (read, not copied): a stem (3x3 conv
to 3C, affine BN), ``layers`` cells with reductions (channels doubled, stride 2 on the
edges from the cell inputs) at layers//3 and 2*layers//3, then global average pool and
a linear classifier. A cell preprocesses its two inputs to C channels
(FactorizedReduce when the previous cell reduced, else ReLU-1x1 conv-BN; both
``affine=False``), then node k (k = 0..3) is the sum, over its k + 2 inputs (the cell's
two inputs, then nodes 0..k-1), of the mixed op ``sum_i weights[e, i] * op_i(x)`` over
``primitives``; edge e counts node 0's inputs first, then node 1's, ... (14 edges). The
cell's output concatenates the 4 nodes. The ops are `amla_jax.nn.micro_ops` ops with
``affine=False`` BatchNorms, and pooling ops are followed by a BN (``affine=False``), as
in DARTS' ``MixedOp``. All normal cells share ``weights["normal"]``, all reduction cells
``weights["reduce"]`` (each ``(14, len(primitives))``).

Synopsis::

    from amla_jax.nn.supernet_darts import DartsSupernet
    from amla_jax.spaces.darts import OPS
    model = DartsSupernet(OPS, channels=16, layers=8, num_classes=10)
    weights = {"normal": jnp.full((14, 8), 1 / 8), "reduce": jnp.full((14, 8), 1 / 8)}
    logits = model.apply(variables, x, weights, train=False)
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.micro_ops import FactorizedReduce, ReLUConvBN, affine_batch_norm, conv, get_op

NODES = 4
STEM_MULTIPLIER = 3


class DartsMixedOp(nn.Module):
    """``sum_i weights[i] * op_i(x)`` over ``primitives`` (names of `MICRO_OPS`)."""

    primitives: tuple[str, ...]
    features: int
    stride: int = 1
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array, train: bool) -> jax.Array:
        total = None
        for i, name in enumerate(self.primitives):
            op = get_op(name).build(self.features, self.stride, self.bn_momentum, name, False)
            y = op(x, train)
            if "pool" in name:
                y = affine_batch_norm(y, train, self.bn_momentum, f"{name}_bn", affine=False)
            term = weights[i] * y
            total = term if total is None else total + term
        return total


class _InputEdge(nn.Module):
    """A scan step over the edges from the cell's two inputs: ``y_e = mixed(inputs[source])``."""

    primitives: tuple[str, ...]
    features: int
    stride: int
    bn_momentum: float
    train: bool

    @nn.compact
    def __call__(self, inputs: jax.Array, edge) -> tuple[jax.Array, jax.Array]:
        source, weights = edge
        mixed = DartsMixedOp(
            self.primitives, self.features, self.stride, self.bn_momentum, name="op"
        )
        return inputs, mixed(inputs[source], weights, self.train)


class _NodeEdge(nn.Module):
    """A scan step over the edges between nodes: ``nodes[target] += mixed(nodes[source])``."""

    primitives: tuple[str, ...]
    features: int
    bn_momentum: float
    train: bool

    @nn.compact
    def __call__(self, nodes: jax.Array, edge) -> tuple[jax.Array, None]:
        source, target, weights = edge
        mixed = DartsMixedOp(self.primitives, self.features, 1, self.bn_momentum, name="op")
        return nodes.at[target].add(mixed(nodes[source], weights, self.train)), None


def _scan(module: type[nn.Module], length: int) -> type[nn.Module]:
    return nn.scan(
        module,
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True},
        length=length,
    )


# Rows of the (14, ops) weights (DARTS' edge order: node k's inputs 0..k+1 at offset
# k(k+3)/2) split into the 8 edges from the two cell inputs and the 6 between nodes.
_ROW = {(k, j): k * (k + 3) // 2 + j for k in range(NODES) for j in range(k + 2)}
INPUT_EDGES = tuple((k, j) for k in range(NODES) for j in range(2))
NODE_EDGES = tuple((k, j) for k in range(NODES) for j in range(2, k + 2))


class DartsSearchCell(nn.Module):
    """One DARTS search cell of ``features`` channels per node (see the module docstring).

    The mixed edges run as two ``nn.scan``s: first the 8 edges from the cell's inputs
    (strided in a reduction cell), then the 6 between nodes in target order (node k's
    inputs are complete before node k feeds on), so XLA compiles two mixed ops per cell
    instead of 14 (compiling dominated a search on CPU). Parameters are stacked along a
    leading edge axis: ``input_edges`` in `INPUT_EDGES` order, ``node_edges`` in
    `NODE_EDGES` order ((node, input) pairs; input j >= 2 is node j - 2).
    """

    primitives: tuple[str, ...]
    features: int
    reduction: bool
    reduction_prev: bool
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, weights: jax.Array, train: bool) -> jax.Array:
        c, momentum, ops = self.features, self.bn_momentum, self.primitives
        if self.reduction_prev:
            s0 = FactorizedReduce(c, 2, momentum, False, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConvBN(c, 1, momentum, False, name="preprocess0")(s0, train)
        s1 = ReLUConvBN(c, 1, momentum, False, name="preprocess1")(s1, train)
        stride = 2 if self.reduction else 1
        inputs = jnp.stack([s0, s1])
        rows = jnp.asarray([_ROW[e] for e in INPUT_EDGES])
        sources = jnp.asarray([j for _, j in INPUT_EDGES])
        scan = _scan(_InputEdge, len(INPUT_EDGES))(
            ops, c, stride, momentum, train, name="input_edges"
        )
        _, outs = scan(inputs, (sources, weights[rows]))
        nodes = outs.reshape(NODES, 2, *outs.shape[1:]).sum(axis=1)  # INPUT_EDGES is node-major
        rows = jnp.asarray([_ROW[e] for e in NODE_EDGES])
        sources = jnp.asarray([j - 2 for _, j in NODE_EDGES])
        targets = jnp.asarray([k for k, _ in NODE_EDGES])
        scan = _scan(_NodeEdge, len(NODE_EDGES))(ops, c, momentum, train, name="node_edges")
        nodes, _ = scan(nodes, (sources, targets, weights[rows]))
        return jnp.concatenate(list(nodes), axis=-1)


class DartsSupernet(nn.Module):
    """The DARTS search network; ``__call__(x, weights, train)`` returns the logits."""

    primitives: tuple[str, ...]
    channels: int = 16
    layers: int = 8
    num_classes: int = 10
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(
        self, x: jax.Array, weights: Mapping[str, jax.Array], train: bool = False
    ) -> jax.Array:
        x = conv(x, STEM_MULTIPLIER * self.channels, (3, 3), name="stem")
        s0 = s1 = affine_batch_norm(x, train, self.bn_momentum, "stem_bn")
        width, reduction_prev = self.channels, False
        reductions = (self.layers // 3, 2 * self.layers // 3)
        for i in range(self.layers):
            reduction = i in reductions
            width *= 2 if reduction else 1
            cell = DartsSearchCell(
                self.primitives, width, reduction, reduction_prev, self.bn_momentum, name=f"cell{i}"
            )
            kind = "reduce" if reduction else "normal"
            s0, s1 = s1, cell(s0, s1, jnp.asarray(weights[kind]), train)
            reduction_prev = reduction
        x = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(x)
