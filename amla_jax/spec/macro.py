"""AMLA's macro body as data: envelope-style filter layers, wideners and skip inputs.

Layers are addressed by 1-based cellnumbers; cellnumber 0 is the stem output. A filter
layer holds parallel branches (``"3x3"``, ``"5x5sep"``: `parse_macro_op`), its total
``outputs`` and optional skip ``inputs``. Our JSON keeps AMLA's layer entries verbatim
(``{"filters": {...}, "outputs": N, "inputs": [...]}``, ``{"widener": {}}``).

Synopsis::

    from amla_jax.spec.macro import MacroSpec, skip_sources
    body = MacroSpec.from_json({"type": "macro", "network": [
        {"filters": {"Branch0": "3x3", "Branch1": "5x5sep"}, "outputs": 64}]})
    skip_sources(body.layers[0], cellnumber=1)     # ()
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from amla_jax.spec.base import MAX_LAYERS, MAX_WIDTH, SpecError, freeze, is_int, thaw

# AMLA's envelope branch ops; the grammar accepts any odd or even K in 1..11 ("KxK",
# "KxKsep"). ASCII digits only: "\d" would accept other scripts' digits.
BRANCH_OPS = ("1x1", "3x3", "5x5", "7x7", "3x3sep", "5x5sep", "7x7sep")
_MACRO_OP = re.compile(r"^([0-9]+)x([0-9]+)(sep)?$", re.ASCII)


def parse_macro_op(op: str, where: str = "op") -> tuple[int, bool]:
    """Parses an envelope branch op (``"3x3"``, ``"5x5sep"``) into (kernel size, separable).

    Args:
      op: the op string.
      where: the field name used in the error message.

    Returns:
      ``(kernel, separable)``.
    """
    match = _MACRO_OP.match(op) if isinstance(op, str) else None
    if not match or match.group(1) != match.group(2) or not 1 <= int(match.group(1)) <= 11:
        raise SpecError(
            f"{where}: unknown op {op!r}; use 'KxK' or 'KxKsep' with K in 1..11 "
            "(AMLA's envelope cell uses 1x1, 3x3, 3x3sep, 5x5, 5x5sep, 7x7sep)"
        )
    return int(match.group(1)), bool(match.group(3))


@dataclass(frozen=True)
class LayerSpec:
    """One entry of a macro body.

    Attributes:
      kind: ``"filters"`` (an envelope-style cell), ``"widener"``, ``"widener2"`` or
        ``"placeholder"`` (AMLA's no-op entries such as ``"auxiliary"``, which still take a
        cellnumber).
      branches: sorted ``(branch key, op)`` pairs of a filter layer.
      outputs: total channels of a filter layer (each branch gets ``outputs // len``).
      inputs: skip sources as cellnumbers, ``"all"``, or None for no skip machinery
        (an empty tuple still adds the 1x1 bottleneck, as AMLA does).
      extra: the raw JSON of a placeholder entry, kept for round trips.
    """

    kind: str
    branches: tuple[tuple[str, str], ...] = ()
    outputs: int | None = None
    inputs: tuple[int, ...] | str | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for _, op in self.branches)

    def to_json(self) -> dict:
        if self.kind == "placeholder":
            return {k: thaw(v) for k, v in self.extra}
        out: dict[str, Any] = {}
        if self.kind == "filters":
            out["filters"] = dict(self.branches)
            out["outputs"] = self.outputs
        else:
            out[self.kind] = {}
        if self.inputs is not None:
            out["inputs"] = self.inputs if isinstance(self.inputs, str) else list(self.inputs)
        return out

    @classmethod
    def from_json(cls, data: dict, cellnumber: int) -> LayerSpec:
        where = f"arch.network[{cellnumber - 1}] (cellnumber {cellnumber})"
        if not isinstance(data, dict):
            raise SpecError(f"{where}: expected an object, got {data!r}")
        kinds = [k for k in ("filters", "widener", "widener2") if k in data]
        if len(kinds) > 1:
            raise SpecError(f"{where}: has both {kinds[0]!r} and {kinds[1]!r}; keep one")
        if not kinds:
            unknown = set(data) - {"outputs", "auxiliary", "inputs"}
            if unknown:
                raise SpecError(
                    f"{where}: unknown keys {sorted(unknown)}; a layer needs 'filters', "
                    "'widener' or 'widener2'"
                )
            return cls("placeholder", extra=freeze(data))
        inputs = _parse_inputs(data.get("inputs"), cellnumber, where)
        if kinds[0] != "filters":
            if kinds[0] == "widener2" and inputs is None:
                inputs = ()
            return cls(kinds[0], inputs=inputs)
        return cls(
            "filters",
            branches=_parse_branches(data["filters"], where),
            outputs=_parse_outputs(data.get("outputs"), len(data["filters"] or {}), where),
            inputs=inputs,
        )


def _parse_branches(filters: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(filters, dict) or not filters:
        raise SpecError(f"{where}.filters: must be a non-empty object of BranchN: op")
    for key, op in filters.items():
        parse_macro_op(op, f"{where}.filters.{key}")
    return tuple(sorted(filters.items()))


def _parse_outputs(outputs: Any, num_branches: int, where: str) -> int:
    if not is_int(outputs) or not 1 <= outputs <= MAX_WIDTH:
        raise SpecError(
            f"{where}.outputs: a filter layer needs an integer in 1..{MAX_WIDTH}, got {outputs!r}"
        )
    if outputs < num_branches:
        raise SpecError(
            f"{where}.outputs: {outputs} channels cannot be split over {num_branches} "
            "branches (each branch gets floor(outputs / branches) >= 1)"
        )
    return outputs


def _parse_inputs(inputs: Any, cellnumber: int, where: str) -> tuple[int, ...] | str | None:
    if inputs is None or inputs == "all":
        return inputs
    if not isinstance(inputs, list | tuple):
        raise SpecError(f"{where}.inputs: must be a list of cellnumbers or 'all', got {inputs!r}")
    for src in inputs:
        if not isinstance(src, int) or isinstance(src, bool) or not 0 <= src < cellnumber:
            raise SpecError(
                f"{where}.inputs: source {src!r} must be an earlier cellnumber in "
                f"0..{cellnumber - 1} (0 is the stem output)"
            )
    if len(set(inputs)) != len(inputs):
        raise SpecError(f"{where}.inputs: lists a source twice: {list(inputs)}")
    return tuple(inputs)


@dataclass(frozen=True)
class MacroSpec:
    """AMLA's macro body: a list of layers addressed by 1-based cellnumbers."""

    layers: tuple[LayerSpec, ...]
    branch_dropout: float = 0.2
    type: str = field(default="macro", init=False)

    def __post_init__(self):
        if not self.layers:
            raise SpecError("arch.network: must hold at least one layer")
        if not any(layer.kind == "filters" for layer in self.layers):
            raise SpecError("arch.network: needs at least one 'filters' layer")
        if len(self.layers) > MAX_LAYERS:
            raise SpecError(f"arch.network: {len(self.layers)} layers; at most {MAX_LAYERS}")
        dropout = self.branch_dropout
        number = isinstance(dropout, int | float) and not isinstance(dropout, bool)
        if not number or not 0 <= dropout < 1:
            raise SpecError(f"arch.branch_dropout: must be a number in [0, 1), got {dropout!r}")

    def to_json(self) -> dict:
        out = {"type": "macro", "network": [layer.to_json() for layer in self.layers]}
        if self.branch_dropout != 0.2:
            out["branch_dropout"] = self.branch_dropout
        return out

    @classmethod
    def from_json(cls, data: dict) -> MacroSpec:
        network = data.get("network")
        if not isinstance(network, list):
            raise SpecError("arch.network: must be a list of layers")
        if len(network) > MAX_LAYERS:
            raise SpecError(f"arch.network: {len(network)} layers; at most {MAX_LAYERS}")
        layers = tuple(LayerSpec.from_json(entry, i + 1) for i, entry in enumerate(network))
        return cls(layers, branch_dropout=data.get("branch_dropout", 0.2))


def skip_sources(layer: LayerSpec, cellnumber: int) -> tuple[int, ...]:
    """The extra sources of a filter layer (the predecessor is implicit, A.2)."""
    if layer.inputs == "all":
        return tuple(range(cellnumber - 1))  # the stem (0) and all but the predecessor
    return tuple(layer.inputs or ())
