"""The NAS-Bench-201 search network: NB201's skeleton with a mixed op on every cell edge.

As NB201's one-shot baselines build it (D-X-Y/AutoDL-Projects ``xautodl/models/
cell_searchs/search_model_darts.py`` and ``search_cells.py``, read, not copied): the
stem, stages, ResNet reduction blocks, ``lastact`` and head of `amla_jax.nn.nb201`; in
each cell, edge ``e`` computes ``sum_i weights[e, i] * op_i(x)`` over NB201's 5 ops in
`NB201_OPS` order, edges in `NB201_EDGES` order. Every cell of the network uses the same
``(6, 5)`` weights (DARTS' and ENAS' setting on this space). The ops are
`amla_jax.nn.nb201.nb201_op`, with ``affine=False`` BatchNorms by default, as in NB201's
search cells (``affine=False, track_running_stats=True``).

With one-hot weights of an arch (`amla_jax.oneshot.supernet`'s ``weights_of_arch``) a
cell computes the discrete NB201 cell's function for the same op parameters.

Synopsis::

    from amla_jax.nn.supernet_nb201 import NB201Supernet
    model = NB201Supernet(channels=16, cells_per_stage=5, num_classes=10)
    weights = {"cell": jnp.full((6, 5), 0.2)}
    variables = model.init(key, x, weights, train=False)
    logits, updates = model.apply(variables, x, weights, train=True, mutable=["batch_stats"])
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.layers import batch_norm, conv_init
from amla_jax.nn.nb201 import nb201_op, nb201_stages
from amla_jax.spec.nb201 import NB201_EDGES, NB201_OPS


class NB201MixedEdge(nn.Module):
    """One mixed edge as a scan step: ``nodes[target] += sum_i w[i] * op_i(nodes[source])``.

    ``nodes`` stacks the cell's 4 nodes (the carry); ``edge`` is ``(source, target, w)``.
    """

    features: int
    bn_momentum: float = 0.9
    affine: bool = False
    train: bool = False

    @nn.compact
    def __call__(self, nodes: jax.Array, edge) -> tuple[jax.Array, None]:
        source, target, weights = edge
        x = nodes[source]
        total = None
        for i, op in enumerate(NB201_OPS):
            y = nb201_op(op, x, self.train, self.features, self.bn_momentum, op, self.affine)
            total = weights[i] * y if total is None else total + weights[i] * y
        return nodes.at[target].add(total), None


class NB201MixedCell(nn.Module):
    """An NB201 cell whose edge ``e`` is ``sum_i weights[e, i] * op_i(x)``.

    ``weights``: ``(len(NB201_EDGES), len(NB201_OPS))``. The six edges run as one
    ``nn.scan`` in `NB201_EDGES` order (which is topological), so XLA compiles one mixed
    edge per cell instead of six (compiling dominated a search on CPU). Parameters are
    stacked along a leading edge axis: ``edges/{op}_conv/kernel`` has shape
    ``(6, k, k, C, C)``, row ``e`` belonging to edge ``NB201_EDGES[e]``.
    """

    features: int
    bn_momentum: float = 0.9
    affine: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array, train: bool) -> jax.Array:
        targets = jnp.asarray([t for t, _ in NB201_EDGES], jnp.int32)
        sources = jnp.asarray([s for _, s in NB201_EDGES], jnp.int32)
        scan = nn.scan(
            NB201MixedEdge,
            variable_axes={"params": 0, "batch_stats": 0},
            split_rngs={"params": True},
            length=len(NB201_EDGES),
        )
        edges = scan(self.features, self.bn_momentum, self.affine, train, name="edges")
        nodes = jnp.zeros((NB201_EDGES[-1][0] + 1, *x.shape), x.dtype).at[0].set(x)
        nodes, _ = edges(nodes, (sources, targets, weights))
        return nodes[-1]


class NB201Supernet(nn.Module):
    """NB201's ``TinyNetwork`` skeleton with `NB201MixedCell` cells.

    ``__call__(x, weights, train)`` returns the logits; ``weights["cell"]`` is the
    ``(6, 5)`` array every cell shares. Stem (3x3 conv, affine BN, no ReLU), reduction
    blocks, ``lastact`` and the head (global average pool, linear with the zoo's
    ``fc-final`` initialisation) are those of `amla_jax.spec.nb201_network`.
    """

    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10
    bn_momentum: float = 0.9
    affine: bool = False

    @nn.compact
    def __call__(
        self, x: jax.Array, weights: Mapping[str, jax.Array], train: bool = False
    ) -> jax.Array:
        cell_weights = jnp.asarray(weights["cell"])
        x = nn.Conv(self.channels, (3, 3), use_bias=False, kernel_init=conv_init, name="stem")(x)
        x = batch_norm(train, self.bn_momentum, scale=True, name="stem_bn", epsilon=1e-5)(x)

        def cell(x: jax.Array, width: int, name: str) -> jax.Array:
            mixed = NB201MixedCell(width, self.bn_momentum, self.affine, name=name)
            return mixed(x, cell_weights, train)

        x = nb201_stages(x, train, self.cells_per_stage, self.bn_momentum, cell)
        x = jnp.mean(x, axis=(1, 2))
        init = nn.initializers.truncated_normal(stddev=1.0 / x.shape[-1])
        return nn.Dense(self.num_classes, kernel_init=init, name="classifier")(x)
