"""Micro-cell bodies: normal/reduction cell DAGs stacked in a sequence (DARTS, ENAS, NASNet).

A cell has two inputs (states 0, 1); node ``i`` is state ``i + 2``, the ``add`` (or
``concat``) of its edges, each an op of `MICRO_OPS` on an earlier
state; the cell outputs the concat of the states in ``concat``. In a reduction cell,
edges reading a cell input default to stride 2, others to 1 (genotypes.md §0.2); C
doubles at each reduction cell. The ``convention`` says what the inputs are (genotypes.md
§0): ``darts`` (0 = cell k−2, 1 = cell k−1, each ReLU-1×1-BN, or FactorizedReduce after a
reduction), ``enas`` (a 1×1 only where widths differ, plus ENAS's "layer_base" 1×1 on
input 1), ``nasnet`` (0 = h0 = ReLU-1×1-BN(cell k−1), 1 = h1 = cell k−2 adjusted, the raw
stem for the first cell) or ``amla`` (AMLA's DAG semantics, amla_spec.md D.2).

Our JSON (the ``arch`` of a `NetworkSpec`)::

    {"type": "micro", "convention": "darts", "channels": 36,
     "cells": {"normal": {"nodes": [[["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], ...],
                          "concat": [2, 3, 4, 5]},
               "reduction": {"reduction": true, "nodes": [...], "concat": [2, 3, 4, 5]}},
     "network": ["normal", ..., "reduction", "aux", ...],    # "aux": an auxiliary head
     "aux_head": {"kind": "conv", "fc_bias": true},
     "drop_path_by_depth": false, "final_relu": false}

An edge is ``[op, input]``, ``[op, input, stride]`` or ``[op, input, stride, filters]``;
a node is a list of edges (summed) or ``{"combine": "concat", "edges": [...]}``.
AMLA's micro format (``normal_cell``/``reduction_cell`` DAGs of ``nodeN``) is read by
`amla_jax.amla.micro_dag` into this one (the ``amla`` convention).

Synopsis::

    from amla_jax.spec.micro import MicroSpec
    body = MicroSpec.from_json(arch_json)
    MicroSpec.from_json(body.to_json()) == body    # True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amla_jax.spec.base import MAX_WIDTH
from amla_jax.spec.base import check as _check
from amla_jax.spec.base import flag as _flag
from amla_jax.spec.base import is_int as _is_int

__all__ = ["AUX", "MICRO_OPS", "CellSpec", "EdgeSpec", "MicroSpec", "NodeSpec"]

CONVENTIONS = ("darts", "enas", "nasnet", "amla")
COMBINES = ("add", "concat")
AUX_KINDS = ("conv", "dense")
AUX = "aux"
_MICRO_KEYS = ("type", "convention", "channels", "cells", "network", "aux_head")
_MICRO_KEYS += ("drop_path_by_depth", "final_relu")


def _amla_op_names() -> tuple[str, ...]:
    names = ["amla_identity"]
    for k in (1, 3, 5, 7):
        names += [f"amla_{k}x{k}", f"amla_{k}x{k}sep", f"amla_{k}x{k}dilated"]
    for k in (2, 3, 5):
        names += [f"amla_{k}x{k}maxpool", f"amla_{k}x{k}avgpool"]
    return tuple(names)


# The op names an edge may use; `amla_jax.nn.micro_ops.MICRO_OPS` builds each one. The
# ``amla_*`` ops are AMLA's micro-DAG node types (amla_spec.md D.2).
MICRO_OPS = (
    "none", "skip_connect", "identity", "identity_conv",
    "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
    "dil_conv_3x3", "dil_conv_5x5", "dil_sep_conv_5x5",
    "max_pool_2x2", "max_pool_3x3", "avg_pool_3x3",
    "conv_1x1", "conv_3x3", "conv_7x1_1x7", "bottleneck_3x3", "bottleneck_1x7_7x1",
    *_amla_op_names(),
)  # fmt: skip


@dataclass(frozen=True)
class EdgeSpec:
    """``op(states[input])`` at ``stride``; ``filters`` overrides the op's width (AMLA
    op nodes; by default the cell width, or the input width for ``amla_*`` ops)."""

    op: str
    input: int
    stride: int = 1
    filters: int | None = None

    def to_json(self, default_stride: int) -> list:
        if self.filters is not None:
            return [self.op, self.input, self.stride, self.filters]
        if self.stride != default_stride:
            return [self.op, self.input, self.stride]
        return [self.op, self.input]

    def validate(self, where: str, state: int, amla: bool) -> None:
        valid = ", ".join(MICRO_OPS)
        _check(self.op in MICRO_OPS, f"{where}.op: unknown op {self.op!r}; valid: {valid}")
        mixed = f"{where}.op: {self.op!r}: the amla_* ops go with the amla convention only"
        _check(self.op.startswith("amla_") == amla, mixed)
        _check(
            _is_int(self.input) and 0 <= self.input < state,
            f"{where}.input: state {self.input!r} out of range 0..{state - 1} "
            "(an edge reads a cell input or an earlier node)",
        )
        _check(self.stride in (1, 2) and _is_int(self.stride), f"{where}.stride: must be 1 or 2")
        _check(
            self.filters is None or (_is_int(self.filters) and 0 < self.filters <= MAX_WIDTH),
            f"{where}.filters: must be an integer in 1..{MAX_WIDTH}, got {self.filters!r}",
        )


@dataclass(frozen=True)
class NodeSpec:
    """An intermediate state: the ``combine`` (``add`` or ``concat``) of its edges."""

    edges: tuple[EdgeSpec, ...]
    combine: str = "add"


@dataclass(frozen=True)
class CellSpec:
    """A cell DAG: nodes over states {0, 1, earlier nodes}; output = concat of ``concat``."""

    nodes: tuple[NodeSpec, ...]
    concat: tuple[int, ...]
    reduction: bool = False

    def to_json(self) -> dict:
        nodes = []
        for node in self.nodes:
            edges = [e.to_json(_default_stride(self.reduction, e.input)) for e in node.edges]
            nodes.append(
                edges if node.combine == "add" else {"combine": node.combine, "edges": edges}
            )
        out: dict[str, Any] = {"reduction": True} if self.reduction else {}
        return {**out, "nodes": nodes, "concat": list(self.concat)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> CellSpec:
        _check(
            isinstance(data, dict) and {"nodes", "concat"} <= set(data),
            f"{where}: expected an object with 'nodes' and 'concat'",
        )
        unknown = sorted(set(data) - {"nodes", "concat", "reduction"})
        _check(not unknown, f"{where}: unknown keys {unknown}; valid: nodes, concat, reduction")
        reduction = _flag(data.get("reduction", False), f"{where}.reduction")
        nodes = data["nodes"]
        _check(isinstance(nodes, list) and nodes, f"{where}.nodes: must be a non-empty list")
        concat = data["concat"]
        _check(isinstance(concat, list) and concat, f"{where}.concat: must be a non-empty list")
        parsed = tuple(
            _node_from_json(n, f"{where}.nodes[{i}]", reduction) for i, n in enumerate(nodes)
        )
        return cls(parsed, tuple(concat), reduction)

    def validate(self, where: str, amla: bool) -> None:
        _check(bool(self.nodes), f"{where}.nodes: needs at least one node")
        scales = [1, 1]  # each state's downsampling relative to the cell inputs
        for i, node in enumerate(self.nodes):
            at = f"{where}.nodes[{i}]"
            _check(node.combine in COMBINES, f"{at}.combine: must be one of {COMBINES}")
            _check(bool(node.edges), f"{at}: needs at least one edge")
            for j, edge in enumerate(node.edges):
                edge.validate(f"{at}.edges[{j}]", i + 2, amla)
            mine = {scales[e.input] * e.stride for e in node.edges}
            _check(
                amla or len(mine) == 1,
                f"{at}: its edges give different resolutions (downsampling {sorted(mine)}); "
                "check the strides",
            )
            scales.append(max(mine))
        last = len(scales) - 1
        for index in self.concat:
            _check(
                _is_int(index) and 0 <= index <= last,
                f"{where}.concat: state {index!r} out of range 0..{last} "
                "(0, 1: the cell inputs; 2..: the nodes)",
            )
        _check(
            len(set(self.concat)) == len(self.concat),
            f"{where}.concat: lists a state twice: {list(self.concat)}",
        )


def _default_stride(reduction: bool, source: int) -> int:
    return 2 if reduction and source < 2 else 1


def _node_from_json(data: Any, where: str, reduction: bool) -> NodeSpec:
    combine = "add"
    if isinstance(data, dict):
        _check(
            "edges" in data and set(data) <= {"combine", "edges"},
            f"{where}: a node object has 'edges' and an optional 'combine'",
        )
        combine, data = data.get("combine", "add"), data["edges"]
    _check(isinstance(data, list) and data, f"{where}: a node is a non-empty list of edges")
    edges = []
    for j, edge in enumerate(data):
        _check(
            isinstance(edge, list) and 2 <= len(edge) <= 4,
            f"{where}.edges[{j}]: an edge is [op, input], [op, input, stride] or "
            f"[op, input, stride, filters], got {edge!r}",
        )
        op, source, *rest = edge
        _check(_is_int(source), f"{where}.edges[{j}].input: must be a state index, got {source!r}")
        stride = rest[0] if rest else _default_stride(reduction, source)
        edges.append(EdgeSpec(op, source, stride, rest[1] if len(rest) > 1 else None))
    return NodeSpec(tuple(edges), combine)


@dataclass(frozen=True)
class MicroSpec:
    """A micro body: named cells and the ``network`` sequence of cell names and ``"aux"``.

    Attributes:
      cells: ``(name, CellSpec)`` pairs.
      network: cell names in order; ``"aux"`` puts an auxiliary head on the output of
        the cell before it.
      channels: the initial cell width C (doubles at each reduction cell); 0 for the
        ``amla`` convention, whose widths follow the stem.
      convention: ``darts``, ``enas``, ``nasnet`` or ``amla`` (see the module doc).
      aux_kind: ``conv`` (DARTS/ENAS/NASNet head) or ``dense`` (AMLA).
      aux_fc_bias: whether the auxiliary FC has a bias (ENAS: no).
      drop_path_by_depth: scale the drop-path rate of cell i by (i + 1) / num_cells
        (ENAS, NASNet) instead of using it as is (DARTS).
      final_relu: a ReLU on the last cell's output (ENAS, NASNet), before the head.
    """

    cells: tuple[tuple[str, CellSpec], ...]
    network: tuple[str, ...]
    channels: int = 0
    convention: str = "darts"
    aux_kind: str = "conv"
    aux_fc_bias: bool = True
    drop_path_by_depth: bool = False
    final_relu: bool = False
    type: str = field(default="micro", init=False)

    def __post_init__(self):
        _check(
            self.convention in CONVENTIONS,
            f"arch.convention: unknown {self.convention!r}; valid: {', '.join(CONVENTIONS)}",
        )
        amla = self.convention == "amla"
        _check(
            amla or (_is_int(self.channels) and 0 < self.channels <= MAX_WIDTH),
            f"arch.channels: must be a positive integer <= {MAX_WIDTH} (the first cells' "
            f"width C), got {self.channels!r}",
        )
        _check(bool(self.cells), "arch.cells: needs at least one cell")
        for name, cell in self.cells:
            _check(name != AUX, f"arch.cells: {AUX!r} is reserved for auxiliary heads")
            cell.validate(f"arch.cells.{name}", amla)
        names = [name for name, _ in self.cells]
        for i, entry in enumerate(self.network):
            _check(
                entry == AUX or entry in names,
                f"arch.network[{i}]: unknown cell {entry!r}; valid: {', '.join([*names, AUX])}",
            )
        _check(
            bool(self.network) and self.network[0] != AUX,
            "arch.network: must start with a cell (an 'aux' follows the cell it reads)",
        )
        _check(
            self.aux_kind in AUX_KINDS,
            f"arch.aux_head.kind: unknown {self.aux_kind!r}; valid: {', '.join(AUX_KINDS)}",
        )

    def cell(self, name: str) -> CellSpec:
        return dict(self.cells)[name]

    @property
    def num_cells(self) -> int:
        return sum(entry != AUX for entry in self.network)

    def to_json(self) -> dict:
        return {
            "type": "micro",
            "convention": self.convention,
            "channels": self.channels,
            "cells": {name: cell.to_json() for name, cell in self.cells},
            "network": list(self.network),
            "aux_head": {"kind": self.aux_kind, "fc_bias": self.aux_fc_bias},
            "drop_path_by_depth": self.drop_path_by_depth,
            "final_relu": self.final_relu,
        }

    @classmethod
    def from_json(cls, data: Any) -> MicroSpec:
        """Reads our format (AMLA's ``normal_cell``/``reduction_cell`` DAGs:
        `amla_jax.amla.micro_dag`)."""
        _check(isinstance(data, dict), f"arch: expected an object, got {data!r}")
        _check(
            "normal_cell" not in data and "reduction_cell" not in data,
            "arch: AMLA's micro DAG format (normal_cell/reduction_cell) is read from AMLA "
            "task configs by amla_jax.amla.load_spec, not inside our format",
        )
        unknown = sorted(set(data) - set(_MICRO_KEYS))
        _check(not unknown, f"arch: unknown keys {unknown}; valid: {', '.join(_MICRO_KEYS)}")
        cells, network = data.get("cells"), data.get("network")
        _check(isinstance(cells, dict) and cells, "arch.cells: must be an object of name: cell")
        _check(isinstance(network, list), "arch.network: must be a list of cell names and 'aux'")
        aux = data.get("aux_head", {})
        _check(
            isinstance(aux, dict) and set(aux) <= {"kind", "fc_bias"},
            f"arch.aux_head: expected an object with 'kind' and 'fc_bias', got {aux!r}",
        )
        return cls(
            cells=tuple(
                (str(k), CellSpec.from_json(v, f"arch.cells.{k}")) for k, v in cells.items()
            ),
            network=tuple(network),
            channels=data.get("channels", 0),
            convention=data.get("convention", "darts"),
            aux_kind=aux.get("kind", "conv"),
            aux_fc_bias=_flag(aux.get("fc_bias", True), "arch.aux_head.fc_bias"),
            drop_path_by_depth=_flag(
                data.get("drop_path_by_depth", False), "arch.drop_path_by_depth"
            ),
            final_relu=_flag(data.get("final_relu", False), "arch.final_relu"),
        )
