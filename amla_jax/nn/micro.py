"""Micro-cell network bodies: a `MicroSpec`'s cells stacked, with auxiliary heads.

The stem and the classifier head come from the `NetworkSpec`; the body maps the stem
output to the last cell's features. Cell ``i`` is the module ``cell{i}`` and auxiliary
head ``j`` is ``AuxHead{j}`` (`amla_jax.nn.count_params` leaves those out, as every
reference count does). Drop-path draws from the ``dropout`` RNG stream.

Synopsis::

    from amla_jax.nn.micro import MicroBody
    body = MicroBody(spec.body, num_classes=10)
    features, aux_logits = body.apply(variables, stem_out, train=True,
                                      drop_path_rate=0.1, rngs={"dropout": key},
                                      mutable=["batch_stats"])[0]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.micro_ops import (
    AUX_HEADS,
    FactorizedReduce,
    ReLUConvBN,
    conv,
    drop_path,
    get_op,
)
from amla_jax.spec.micro import AUX, CellSpec, MicroSpec

__all__ = ["AmlaCell", "Cell", "MicroBody"]


def _is_zero(rate: Any) -> bool:
    return isinstance(rate, int | float) and rate == 0


def _adjust(cell: Cell, x: jax.Array, train: bool, larger: bool, always: bool, name: str):
    """ReLU → FactorizedReduce when ``x`` has twice the resolution, else ReLU-1×1-BN when
    ``always`` or its width differs from the cell's, else ``x``."""
    if larger:
        return FactorizedReduce(cell.features, 2, cell.bn_momentum, name=name)(x, train)
    if always or x.shape[-1] != cell.features:
        return ReLUConvBN(cell.features, 1, cell.bn_momentum, name=name)(x, train)
    return x


def _darts_inputs(cell: Cell, s0: jax.Array, s1: jax.Array, train: bool) -> list[jax.Array]:
    larger = s0.shape[1] > s1.shape[1]
    s0 = _adjust(cell, s0, train, larger, True, "pre0")
    return [s0, _adjust(cell, s1, train, False, True, "pre1")]


def _enas_inputs(cell: Cell, s0: jax.Array, s1: jax.Array, train: bool) -> list[jax.Array]:
    s0 = _adjust(cell, s0, train, s0.shape[1] > s1.shape[1], False, "pre0")
    s1 = _adjust(cell, s1, train, False, False, "pre1")
    return [s0, _adjust(cell, s1, train, False, True, "layer_base")]  # ENAS's "layer_base"


def _nasnet_inputs(cell: Cell, s0: jax.Array, s1: jax.Array, train: bool) -> list[jax.Array]:
    h0 = _adjust(cell, s1, train, False, True, "pre0")
    if cell.first:  # NASNet's first cell has no cell k-2: h1 is the raw stem
        return [h0, s0]
    return [h0, _adjust(cell, s0, train, s0.shape[1] > s1.shape[1], False, "pre1")]


# The two cell inputs (states 0 and 1) under each convention (genotypes.md §0).
CELL_INPUTS = {"darts": _darts_inputs, "enas": _enas_inputs, "nasnet": _nasnet_inputs}


class Cell(nn.Module):
    """A DARTS/ENAS/NASNet cell: preprocess the inputs, sum (or concat) each node's op
    outputs, concat the chosen states; states at a higher resolution or another width
    go through a FactorizedReduce first (NASNet/ENAS)."""

    spec: CellSpec
    convention: str
    features: int
    first: bool = False
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, *, train: bool, drop_path_rate=0.0):
        states = CELL_INPUTS[self.convention](self, s0, s1, train)
        for i, node in enumerate(self.spec.nodes):
            outs = []
            for j, edge in enumerate(node.edges):
                op, x = get_op(edge.op), states[edge.input]
                width = edge.filters or self.features
                y = op.build(width, edge.stride, self.bn_momentum, f"node{i}_{j}")(x, train)
                if (
                    train
                    and not _is_zero(drop_path_rate)
                    and op.drops(edge.stride, x.shape[-1], width)
                ):
                    y = drop_path(self, y, drop_path_rate)
                outs.append(y)
            states.append(sum(outs[1:], outs[0]) if node.combine == "add" else _cat(outs))
        chosen = [states[i] for i in self.spec.concat]
        size = min(s.shape[1] for s in chosen)
        for k, (index, state) in enumerate(zip(self.spec.concat, chosen, strict=True)):
            if state.shape[1] > size or state.shape[-1] != self.features:
                stride = 2 if state.shape[1] > size else 1
                chosen[k] = FactorizedReduce(
                    self.features, stride, self.bn_momentum, relu=False, name=f"out{index}"
                )(state, train)
        return _cat(chosen)


def _cat(xs: list[jax.Array]) -> jax.Array:
    return xs[0] if len(xs) == 1 else jnp.concatenate(xs, axis=-1)


class AmlaCell(nn.Module):
    """AMLA's micro cell (amla_spec.md D.2): op nodes keep their input width, combined
    inputs at a higher resolution are shrunk by 3×3 stride-2 convs, ``add`` projects the
    narrower inputs to the widest by 1×1 convs, and the output gets a 1×1 conv + ReLU to
    the width of cell k−1 (×2 in a reduction cell)."""

    spec: CellSpec
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, *, train: bool):
        states = [s0, s1]
        for i, node in enumerate(self.spec.nodes):
            outs = []
            for j, edge in enumerate(node.edges):
                x = states[edge.input]
                width = edge.filters or x.shape[-1]
                op = get_op(edge.op).build(width, edge.stride, self.bn_momentum, f"node{i}_{j}")
                outs.append(op(x, train))
            states.append(self._combine(outs, node.combine, f"node{i}"))
        out = self._combine([states[i] for i in self.spec.concat], "concat", "out")
        width = s1.shape[-1] * (2 if self.spec.reduction else 1)
        return nn.relu(conv(out, width, (1, 1), use_bias=True, name="project"))

    def _combine(self, xs: list[jax.Array], combine: str, name: str) -> jax.Array:
        if len(xs) == 1:
            return xs[0]
        size = min(x.shape[1] for x in xs)
        for k, x in enumerate(xs):
            step = 0
            while x.shape[1] > size:
                x = conv(
                    x, x.shape[-1], (3, 3), (2, 2), use_bias=True, name=f"{name}_shrink{k}_{step}"
                )
                step += 1
            xs[k] = x
        if combine == "concat":
            return _cat(xs)
        widest = max(x.shape[-1] for x in xs)
        xs = [
            x
            if x.shape[-1] == widest
            else conv(x, widest, (1, 1), use_bias=True, name=f"{name}_proj{k}")
            for k, x in enumerate(xs)
        ]
        return sum(xs[1:], xs[0])


class MicroBody(nn.Module):
    """Stacks the cells of ``spec.network``; returns (features, auxiliary logits).

    The width starts at ``spec.channels`` and doubles at each reduction cell; the first
    cell sees the stem output as both inputs. Auxiliary heads run in training only.
    """

    spec: MicroSpec
    num_classes: int
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, drop_path_rate=0.0):
        spec = self.spec
        s0 = s1 = x
        width, index, aux_logits, num_aux = spec.channels, 0, [], 0
        for entry in spec.network:
            if entry == AUX:
                head = AUX_HEADS[spec.aux_kind](
                    self.num_classes, spec.aux_fc_bias, self.bn_momentum, name=f"AuxHead{num_aux}"
                )
                num_aux += 1
                if train or self.is_initializing():
                    aux_logits.append(head(s1, train))
                continue
            cell = spec.cell(entry)
            if spec.convention == "amla":
                out = AmlaCell(cell, self.bn_momentum, name=f"cell{index}")(s0, s1, train=train)
            else:
                width = width * 2 if cell.reduction else width
                rate = drop_path_rate
                if spec.drop_path_by_depth and not _is_zero(rate):
                    rate = rate * (index + 1) / spec.num_cells
                module = Cell(
                    cell, spec.convention, width, index == 0, self.bn_momentum, name=f"cell{index}"
                )
                out = module(s0, s1, train=train, drop_path_rate=rate)
            s0, s1, index = s1, out, index + 1
        if spec.final_relu:
            s1 = nn.relu(s1)
        return s1, tuple(aux_logits) if train else ()
