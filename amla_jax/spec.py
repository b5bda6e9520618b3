"""Network specifications: frozen, hashable, JSON-serialisable descriptions of a network.

A `NetworkSpec` is a stem, a body and a head. The body is either *macro* (AMLA's list of
envelope-style layers with parallel branches, skip ``inputs`` and wideners) or *micro*
(normal/reduction cell DAGs stacked in a sequence; see `amla_jax.spec_micro`). The spec
is plain data: it validates itself, names the offending field when it is wrong, and is
hashable so that it can be a `jax.jit` static argument and a cache key.

Synopsis::

    from amla_jax.spec import NetworkSpec, load_spec
    spec = load_spec("config.run.json")          # AMLA's task config or our own JSON
    spec.to_json()                                # our format (a dict of JSON values)
    spec.to_amla()                                # AMLA's {init_cell, classification_cell, arch}
    NetworkSpec.from_json(spec.to_json()) == spec  # True
    count_params(spec, (32, 32, 3), num_classes=10)

Our JSON format keeps AMLA's macro layer entries verbatim (``{"filters": {...},
"outputs": N, "inputs": [...]}``, ``{"widener": {}}``) so that a body can be copied between
the two; stem and head are lists instead of ``LayerK``/``BranchJ`` dicts.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "amla_jax.spec/1"

STEM_BLOCKS = ("conv2d", "max_pool", "avg_pool", "lrn", "dropout", "cutout", "batch_norm", "relu")
HEAD_BLOCKS = ("reduce_mean", "flatten", "dropout", "fc", "fc-final")
_MACRO_OP = re.compile(r"^(\d+)x(\d+)(sep)?$")


class SpecError(ValueError):
    """A network spec is malformed or contradictory; the message names the field."""


def freeze(value: Any) -> Any:
    """Turns JSON values into hashable ones (lists → tuples, dicts → sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


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
class BlockSpec:
    """One stem or head block: AMLA's ``{"block": name, ...options}``."""

    block: str
    options: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def to_json(self) -> dict:
        return {"block": self.block, **{k: _thaw(v) for k, v in self.options}}

    @classmethod
    def from_json(cls, data: dict, where: str, allowed: tuple[str, ...]) -> BlockSpec:
        if not isinstance(data, dict) or "block" not in data:
            raise SpecError(f"{where}: expected an object with a 'block' key, got {data!r}")
        if data["block"] not in allowed:
            raise SpecError(
                f"{where}.block: unknown block {data['block']!r}; valid: {', '.join(allowed)}"
            )
        options = {k: v for k, v in data.items() if k != "block"}
        block = cls(data["block"], freeze(options))
        block.validate(where)
        return block

    def validate(self, where: str) -> None:
        keys = ("outputs", "stride", "size") if self.block == "cutout" else ("outputs", "stride")
        for key in keys:
            value = self.get(key)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise SpecError(f"{where}.{key}: must be a positive integer, got {value!r}")
        if self.block in ("conv2d", "fc", "fc-final") and self.get("outputs") is None:
            raise SpecError(f"{where}: block {self.block!r} needs 'outputs'")
        keep = self.get("keep_prob")
        if keep is not None and not (isinstance(keep, int | float) and 0 < keep <= 1):
            raise SpecError(f"{where}.keep_prob: must be in (0, 1], got {keep!r}")


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
            return {k: _thaw(v) for k, v in self.extra}
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
    if not isinstance(outputs, int) or isinstance(outputs, bool) or outputs <= 0:
        raise SpecError(
            f"{where}.outputs: a filter layer needs a positive integer, got {outputs!r}"
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
        if not 0 <= self.branch_dropout < 1:
            raise SpecError(f"arch.branch_dropout: must be in [0, 1), got {self.branch_dropout}")

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
        layers = tuple(LayerSpec.from_json(entry, i + 1) for i, entry in enumerate(network))
        return cls(layers, branch_dropout=data.get("branch_dropout", 0.2))


# Body types by their JSON ``type``: "module:Class" resolved lazily, because the micro
# module imports this one.
BODY_TYPES = {
    "macro": "amla_jax.spec:MacroSpec",
    "micro": "amla_jax.spec_micro:MicroSpec",
    "enas_macro": "amla_jax.spec_micro:EnasMacroSpec",
}


def _body_from_json(data: Any):
    if not isinstance(data, dict):
        raise SpecError(f"arch: expected an object with 'type' and 'network', got {data!r}")
    kind = data.get("type", "macro")
    if kind not in BODY_TYPES:
        raise SpecError(f"arch.type: unknown body type {kind!r}; valid: {', '.join(BODY_TYPES)}")
    module_name, class_name = BODY_TYPES[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name).from_json(data)


def _blocks_from_amla(cell: Any, name: str, allowed: tuple[str, ...]) -> list[list[BlockSpec]]:
    """AMLA's ``{"LayerK": {"BranchJ": {...}}}`` → layers (sorted keys) of branches."""
    if not isinstance(cell, dict):
        raise SpecError(f"{name}: expected an object of LayerK entries")
    layers = []
    for layer_key in sorted(cell):
        branches = cell[layer_key]
        if not isinstance(branches, dict) or not branches:
            raise SpecError(f"{name}.{layer_key}: expected an object of BranchJ entries")
        layers.append(
            [
                BlockSpec.from_json(branches[b], f"{name}.{layer_key}.{b}", allowed)
                for b in sorted(branches)
            ]
        )
    return layers


DEFAULT_STEM = (
    (BlockSpec("conv2d", freeze({"kernel_size": [1, 1], "outputs": 64})),),
    (BlockSpec("lrn"),),
)
DEFAULT_HEAD = (
    BlockSpec("reduce_mean"),
    BlockSpec("dropout", freeze({"keep_prob": 0.8})),
    BlockSpec("fc-final", freeze({"outputs": 10})),
)


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: stem (layers of concatenated branches), body, head (sequential)."""

    body: Any  # MacroSpec | MicroSpec
    stem: tuple[tuple[BlockSpec, ...], ...] = DEFAULT_STEM
    head: tuple[BlockSpec, ...] = DEFAULT_HEAD
    name: str = ""

    def __post_init__(self):
        if not self.stem or any(not layer for layer in self.stem):
            raise SpecError("stem: needs at least one layer, each with at least one block")
        for i, layer in enumerate(self.stem):
            for j, block in enumerate(layer):
                if block.block not in STEM_BLOCKS:
                    raise SpecError(f"stem[{i}][{j}].block: unknown block {block.block!r}")
        if not any(b.block in ("fc", "fc-final") for b in self.head):
            raise SpecError("head: needs a final 'fc-final' block")
        if self.head[-1].block != "fc-final":
            raise SpecError("head: the last block must be 'fc-final'")

    # --- our format -------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "name": self.name,
            "stem": [[b.to_json() for b in layer] for layer in self.stem],
            "arch": self.body.to_json(),
            "head": [b.to_json() for b in self.head],
        }

    @classmethod
    def from_json(cls, data: Any) -> NetworkSpec:
        """Reads our format or an AMLA task config (detected by its ``init_cell`` key)."""
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        if "format" not in data and "arch" not in data and "envelopenet" in data:
            return cls.from_amla(data)  # an AMLA construction config: its initial network
        if "arch" not in data:
            raise SpecError("arch: missing; a network spec needs an 'arch' with the body")
        if "format" not in data:
            return cls.from_amla(data)
        if data["format"] != FORMAT:
            raise SpecError(f"format: unknown {data['format']!r}; this version reads {FORMAT!r}")
        stem = tuple(
            tuple(
                BlockSpec.from_json(b, f"stem[{i}][{j}]", STEM_BLOCKS) for j, b in enumerate(layer)
            )
            for i, layer in enumerate(_as_list(data.get("stem"), "stem"))
        )
        head = tuple(
            BlockSpec.from_json(b, f"head[{i}]", HEAD_BLOCKS)
            for i, b in enumerate(_as_list(data.get("head"), "head"))
        )
        return cls(_body_from_json(data["arch"]), stem, head, str(data.get("name", "")))

    # --- AMLA's format ----------------------------------------------------------------
    @classmethod
    def from_amla(cls, config: dict) -> NetworkSpec:
        """Reads the network of an AMLA task config (``init_cell``, ``arch``, head)."""
        stem = DEFAULT_STEM
        if "init_cell" in config:
            stem = tuple(
                tuple(x) for x in _blocks_from_amla(config["init_cell"], "init_cell", STEM_BLOCKS)
            )
        head = DEFAULT_HEAD
        if "classification_cell" in config:
            layers = _blocks_from_amla(
                config["classification_cell"], "classification_cell", HEAD_BLOCKS
            )
            head = tuple(block for layer in layers for block in layer)
        name = str(config.get("parameters", {}).get("arch_name", ""))
        if "arch" not in config:  # construction config: NAC's initial EnvelopeNet (A.5)
            widths = [b.get("outputs") for layer in stem for b in layer if b.block == "conv2d"]
            if not widths:
                raise SpecError("init_cell: has no conv2d, so the stem width (C_init) is undefined")
            return cls(_initial_body(config["envelopenet"], widths[-1]), stem, head, name)
        return cls(_body_from_json(config["arch"]), stem, head, name)

    def to_amla(self) -> dict:
        """AMLA's task-config form: ``parameters`` (deterministic train mode), ``init_cell``,
        ``classification_cell`` and ``arch``; `load_spec` and AMLA both read it."""
        init_cell = {
            f"Layer{i}": {f"Branch{j}": b.to_json() for j, b in enumerate(layer)}
            for i, layer in enumerate(self.stem)
        }
        head = {f"Layer{i}": {"Branch0": b.to_json()} for i, b in enumerate(self.head)}
        parameters = {"arch_name": self.name, "mode": "train", "algorithm": "deterministic"}
        return {
            "parameters": parameters,
            "init_cell": init_cell,
            "classification_cell": head,
            "arch": self.body.to_json(),
        }

    def replace_body(self, body: Any) -> NetworkSpec:
        return NetworkSpec(body, self.stem, self.head, self.name)

    @property
    def stem_width(self) -> int:
        """AMLA's C_init: the ``outputs`` of the last stem conv (A.4)."""
        widths = [b.get("outputs") for layer in self.stem for b in layer if b.block == "conv2d"]
        if not widths:
            raise SpecError("stem: has no conv2d, so the stem width (C_init) is undefined")
        return widths[-1]

    def dumps(self, **kwargs) -> str:
        return json.dumps(self.to_json(), **kwargs)


def _initial_body(section: Any, stem_width: int) -> MacroSpec:
    """The initial EnvelopeNet that AMLA's ``envelopenet`` section describes (A.5)."""
    from amla_jax.amla.envelope import EnvelopeSettings, initial_envelopenet  # noqa: PLC0415

    if not isinstance(section, dict):
        raise SpecError("envelopenet: must be an object with AMLA's construction settings")
    try:
        settings = EnvelopeSettings.from_dict(section, stem_width=stem_width)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"envelopenet: {exc}") from None
    return MacroSpec.from_json({"type": "macro", "network": initial_envelopenet(settings)})


def _as_list(value: Any, name: str) -> list:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{name}: must be a non-empty list")
    return value


def load_spec(path: str | Path) -> NetworkSpec:
    """Loads a spec from a JSON file in our format or AMLA's task-config format.

    Raises:
      SpecError: the file is missing, not JSON, or not a valid spec (message names it).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"spec file {str(path)!r}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"spec file {str(path)!r}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    try:
        return NetworkSpec.from_json(data)
    except SpecError as exc:
        raise SpecError(f"spec file {str(path)!r}: {exc}") from None


def save_spec(spec: NetworkSpec, path: str | Path, amla: bool = True) -> None:
    """Writes ``spec`` as JSON; ``amla=True`` writes AMLA's task-config form."""
    data = spec.to_amla() if amla else spec.to_json()
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def count_params(
    spec: NetworkSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    include_aux: bool = False,
) -> int:
    """Trainable parameters of ``spec`` (``params`` collection only), without allocating.

    Args:
      spec: the network.
      input_shape: one image's (H, W, C).
      num_classes: classifier outputs.
      include_aux: count auxiliary heads too (reference counts exclude them).
    """
    from amla_jax.model import count_params as _count  # noqa: PLC0415 (model imports spec)

    return _count(spec, input_shape, num_classes, include_aux=include_aux)
