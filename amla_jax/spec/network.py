"""The whole network as data: stem, body and head, in our JSON format. No JAX.

A `NetworkSpec` is a stem (layers of concatenated blocks), a body (`BODY_TYPES`: AMLA's
macro layers, micro cell DAGs, ENAS macro layers) and a head (sequential blocks ending in
``fc-final``). It validates itself, names the offending field when it is wrong, and is
hashable so that it can be a `jax.jit` static argument and a cache key. Stem and head
blocks are AMLA's ``{"block": name, ...options}`` entries. AMLA's own file layout
(``init_cell``, ``classification_cell``, ``arch``) is read and written by `amla_jax.amla`.

Synopsis::

    from amla_jax.spec import NetworkSpec
    spec = NetworkSpec.from_json(json.loads(text))  # our format: {"format": FORMAT, ...}
    NetworkSpec.from_json(spec.to_json()) == spec   # True
    spec.replace_body(other_body).stem_width
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from amla_jax.spec.base import (
    MAX_KERNEL,
    MAX_STRIDE,
    MAX_WIDTH,
    SpecError,
    freeze,
    positive_int,
    thaw,
)
from amla_jax.spec.enas import EnasMacroSpec
from amla_jax.spec.macro import MacroSpec
from amla_jax.spec.micro import MicroSpec
from amla_jax.spec.nb201 import NB201Spec

FORMAT = "amla_jax.spec/1"

STEM_BLOCKS = ("conv2d", "max_pool", "avg_pool", "lrn", "dropout", "cutout", "batch_norm", "relu")
HEAD_BLOCKS = ("reduce_mean", "flatten", "dropout", "fc", "fc-final")

# Body classes by their JSON ``type``.
BODY_TYPES = {
    "macro": MacroSpec,
    "micro": MicroSpec,
    "enas_macro": EnasMacroSpec,
    "nb201": NB201Spec,
}


def body_from_json(data: Any):
    """A body (`BODY_TYPES`) from its JSON ``arch`` object (``type`` defaults to macro)."""
    if not isinstance(data, dict):
        raise SpecError(f"arch: expected an object with 'type' and 'network', got {data!r}")
    kind = data.get("type", "macro")
    if kind not in BODY_TYPES:
        raise SpecError(f"arch.type: unknown body type {kind!r}; valid: {', '.join(BODY_TYPES)}")
    return BODY_TYPES[kind].from_json(data)


@dataclass(frozen=True)
class BlockSpec:
    """One stem or head block: AMLA's ``{"block": name, ...options}``."""

    block: str
    options: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def to_json(self) -> dict:
        return {"block": self.block, **{k: thaw(v) for k, v in self.options}}

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
            if value is not None:
                positive_int(value, f"{where}.{key}", MAX_STRIDE if key == "stride" else MAX_WIDTH)
        kernel = self.get("kernel_size")
        if kernel is not None:
            sizes = kernel if isinstance(kernel, tuple) and len(kernel) == 2 else (kernel,)
            for size in sizes:
                positive_int(size, f"{where}.kernel_size", MAX_KERNEL)
        if self.block in ("conv2d", "fc", "fc-final") and self.get("outputs") is None:
            raise SpecError(f"{where}: block {self.block!r} needs 'outputs'")
        keep = self.get("keep_prob")
        if keep is not None and not (
            isinstance(keep, int | float) and not isinstance(keep, bool) and 0 < keep <= 1
        ):
            raise SpecError(f"{where}.keep_prob: must be in (0, 1], got {keep!r}")


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
        """Reads our format (``{"format": FORMAT, ...}``); AMLA's JSON networks and
        construction configs are read by `amla_jax.amla.load_spec` / `from_amla`."""
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        if "format" not in data:
            raise SpecError(
                f"format: missing; this reads {FORMAT!r} JSON (AMLA's task and construction "
                "configs are read by amla_jax.amla.load_spec)"
            )
        if "arch" not in data:
            raise SpecError("arch: missing; a network spec needs an 'arch' with the body")
        if data["format"] != FORMAT:
            raise SpecError(f"format: unknown {data['format']!r}; this version reads {FORMAT!r}")
        stem = tuple(
            tuple(
                BlockSpec.from_json(b, f"stem[{i}][{j}]", STEM_BLOCKS) for j, b in enumerate(layer)
            )
            for i, layer in enumerate(as_list(data.get("stem"), "stem"))
        )
        head = tuple(
            BlockSpec.from_json(b, f"head[{i}]", HEAD_BLOCKS)
            for i, b in enumerate(as_list(data.get("head"), "head"))
        )
        return cls(body_from_json(data["arch"]), stem, head, str(data.get("name", "")))

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


def as_list(value: Any, name: str) -> list:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{name}: must be a non-empty list")
    return value
