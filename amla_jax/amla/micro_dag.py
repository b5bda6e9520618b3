"""AMLA's micro network format (amla_spec.md D.2): ``normal_cell``/``reduction_cell``
DAGs of ``nodeN`` entries, read into a `MicroSpec` of the ``amla`` convention.

In AMLA's DAG, ``node1`` is cell k−2 (``-1``), ``node2`` is cell k−1 (``0``), and each
later node is an op on one earlier node or an ``add``/``concat`` of several; the cell's
output is its last node. No JAX.

Synopsis::

    from amla_jax.amla.micro_dag import from_amla_micro
    body = from_amla_micro(config["arch"])      # {"type": "micro", "normal_cell": {...}, ...}
    body.convention                             # "amla"
"""

from __future__ import annotations

import re
from typing import Any

from amla_jax.spec.base import check as _check
from amla_jax.spec.micro import AUX, COMBINES, MICRO_OPS, CellSpec, EdgeSpec, MicroSpec, NodeSpec

_AMLA_NODE = re.compile(r"^node([0-9]+)$", re.ASCII)
_AMLA_OP = re.compile(r"^([0-9])x([0-9])(sep|maxpool|avgpool|dilated|max|avg)?$", re.ASCII)
_AMLA_NODE_KEYS = {"type", "stride", "filters", "rate", "padding", "activation"}


def _amla_op(kind: Any, where: str) -> str:
    """AMLA's op type → our ``amla_*`` op. ``3x3avg``/``3x3max`` read as pools: AMLA
    misparsed ``3x3avg`` as a conv (amla_spec.md D.2); we take the evident intent."""
    match = _AMLA_OP.match(kind) if isinstance(kind, str) else None
    name = "amla_identity" if kind == "identity" else None
    if match:
        suffix = {"max": "maxpool", "avg": "avgpool"}.get(match.group(3), match.group(3))
        name = f"amla_{match.group(1)}x{match.group(2)}{suffix or ''}"
    valid = sorted(k[5:] for k in MICRO_OPS if k.startswith("amla_"))
    _check(name in MICRO_OPS, f"{where}: unknown AMLA op {kind!r}; valid: add, concat, {valid}")
    return name


def _amla_nodes(dag: Any, where: str) -> list[tuple[int, Any]]:
    """``{"nodeN": ...}`` → [(N, entry)] sorted, checking the numbering."""
    _check(isinstance(dag, dict), f"{where}: expected an object of nodeN entries")
    numbered = []
    for key, value in dag.items():
        match = _AMLA_NODE.match(key)
        _check(bool(match), f"{where}.{key}: AMLA DAG keys are node1, node2, ...")
        numbered.append((int(match.group(1)), value))
    numbered.sort(key=lambda item: item[0])
    _check(
        [n for n, _ in numbered] == list(range(1, len(numbered) + 1)),
        f"{where}: nodes must be numbered node1..node{len(numbered)} without gaps",
    )
    return numbered


def _amla_node(entry: Any, number: int, where: str) -> NodeSpec:
    _check(
        isinstance(entry, dict) and isinstance(entry.get("node"), dict),
        f"{where}: expected {{'node': {{'type': ...}}, 'input': [...]}}",
    )
    spec, names = entry["node"], entry.get("input")
    _check(
        set(spec) <= _AMLA_NODE_KEYS and spec.get("rate", 2) == 2,
        f"{where}.node: keys {sorted(spec)}; valid: {sorted(_AMLA_NODE_KEYS)} (rate 2 only)",
    )
    _check(isinstance(names, list) and names, f"{where}.input: must list node names")
    sources = []
    for name in names:
        match = _AMLA_NODE.match(name) if isinstance(name, str) else None
        ok = bool(match) and 1 <= int(match.group(1)) < number
        _check(ok, f"{where}.input: {name!r} is not an earlier node")
        sources.append(int(match.group(1)) - 1)
    if spec.get("type") in COMBINES:
        return NodeSpec(tuple(EdgeSpec("amla_identity", s) for s in sources), spec["type"])
    _check(len(sources) == 1, f"{where}.input: an op node takes one input, got {names}")
    op = _amla_op(spec.get("type"), f"{where}.node.type")
    return NodeSpec((EdgeSpec(op, sources[0], spec.get("stride", 1), spec.get("filters")),))


def _amla_cell(dag: Any, where: str, reduction: bool) -> CellSpec:
    numbered = _amla_nodes(dag, where)
    _check(
        len(numbered) >= 3 and numbered[0][1] == -1 and numbered[1][1] == 0,
        f"{where}: node1 must be -1 (cell k-2) and node2 0 (cell k-1), then op nodes",
    )
    nodes = tuple(_amla_node(entry, n, f"{where}.node{n}") for n, entry in numbered[2:])
    return CellSpec(nodes, (len(nodes) + 1,), reduction)


def from_amla_micro(data: dict) -> MicroSpec:
    """AMLA's micro ``arch`` (amla_spec.md D.2) → a `MicroSpec` of the ``amla`` convention."""
    known = {"type", "normal_cell", "reduction_cell", "auxiliary_classifier", "network"}
    unknown = sorted(set(data) - known)
    _check(not unknown, f"arch: unknown keys {unknown} in AMLA's micro format")
    cells = tuple(
        (key, _amla_cell(data[key], f"arch.{key}", key == "reduction_cell"))
        for key in ("normal_cell", "reduction_cell")
        if key in data
    )
    if "auxiliary_classifier" in data:
        aux = _amla_nodes(data["auxiliary_classifier"], "arch.auxiliary_classifier")
        node = aux[1][1] if len(aux) == 2 and isinstance(aux[1][1], dict) else {}
        _check(
            aux[0][1] == 0 and (node.get("node") or {}).get("type") == "dense",
            "arch.auxiliary_classifier: only {node1: 0, node2: dense of node1} is supported",
        )
    network = data.get("network")
    _check(isinstance(network, list), "arch.network: must be a list of cell names")
    renamed = tuple(AUX if entry == "auxiliary_classifier" else entry for entry in network)
    return MicroSpec(cells, renamed, channels=0, convention="amla", aux_kind="dense")
