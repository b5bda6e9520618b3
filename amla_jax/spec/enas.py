"""ENAS macro networks (Pham et al. 2018) as the released fixed-arc code builds them.

The arc is a list of layers; layer k holds one op id and k skip bits (genotypes.md
§3.1). Op ids: 0 conv 3×3, 1 sep 3×3, 2 conv 5×5, 3 sep 5×5, 4 avg pool, 5 max pool.
Skip bit i of layer k selects ``kept[i]``, where ``kept`` is [stem, layer 0, ...,
layer k−2] (the previous layer is always the op's input and is not encoded). A conv
layer is ReLU → 1×1 → BN → ReLU → k×k → BN; every layer after the first concatenates
its selected skips with its output → ReLU → 1×1 → BN. After each pool layer the width
doubles and every kept tensor goes through a FactorizedReduce (no ReLU).

The released code builds "sep" as a full k×k conv (``sep_as_conv``, the default, which
reproduces its 42,559,392 parameters); ``sep_as_conv: false`` builds depthwise +
pointwise (30,947,424). Pools follow the search path (1×1 → BN → ReLU → 3×3 pool),
since the fixed path never implemented them.

Our JSON (``arch`` of a `NetworkSpec`)::

    {"type": "enas_macro", "channels": 96, "layers": [[0], [3, 0], [0, 1, 0], ...],
     "pool_layers": [7, 15], "sep_as_conv": true}

``"arc"`` (the script's flat string of integers) may replace ``"layers"``; the default
``pool_layers`` is [L//3 − 1, 2·(L//3) − 1].

The Flax body is `amla_jax.nn.enas.EnasMacroBody`.

Synopsis::

    from amla_jax.spec.enas import EnasMacroSpec
    spec = EnasMacroSpec.from_json({"type": "enas_macro", "channels": 96, "arc": "0 3 0"})
    spec.pool_layers                                   # (0, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amla_jax.spec.base import MAX_WIDTH, SpecError, is_int

# op id → (kind, kernel)
ENAS_MACRO_OPS = {
    0: ("conv", 3),
    1: ("sep", 3),
    2: ("conv", 5),
    3: ("sep", 5),
    4: ("avg", 3),
    5: ("max", 3),
}


def split_arc(arc: Any) -> tuple[tuple[int, ...], ...]:
    """The flat arc (string or list of ints) → per-layer tuples (op id, skip bits...)."""
    tokens = arc.split() if isinstance(arc, str) else arc
    try:
        values = [int(t) for t in tokens]
    except (TypeError, ValueError):
        raise SpecError(f"arch.arc: must be integers, got {arc!r}") from None
    layers, start, k = [], 0, 0
    while start < len(values):
        layers.append(tuple(values[start : start + k + 1]))
        start, k = start + k + 1, k + 1
    if not layers or len(layers[-1]) != k:
        raise SpecError(f"arch.arc: {len(values)} integers is not 1 + 2 + ... + L for any L")
    return tuple(layers)


@dataclass(frozen=True)
class EnasMacroSpec:
    """An ENAS macro body: ``layers`` (op id + skip bits), initial width, pool layers."""

    layers: tuple[tuple[int, ...], ...]
    channels: int
    pool_layers: tuple[int, ...] | None = None
    sep_as_conv: bool = True
    type: str = field(default="enas_macro", init=False)

    def __post_init__(self):
        if not self.layers:
            raise SpecError("arch.layers: needs at least one layer")
        for k, layer in enumerate(self.layers):
            if len(layer) != k + 1:
                raise SpecError(
                    f"arch.layers[{k}]: needs an op id and {k} skip bits, got {list(layer)}"
                )
            if layer[0] not in ENAS_MACRO_OPS:
                raise SpecError(
                    f"arch.layers[{k}]: unknown op id {layer[0]!r}; valid: "
                    + ", ".join(
                        f"{i} {kind} {size}x{size}" for i, (kind, size) in ENAS_MACRO_OPS.items()
                    )
                )
            if any(bit not in (0, 1) for bit in layer[1:]):
                raise SpecError(
                    f"arch.layers[{k}]: skip bits must be 0 or 1, got {list(layer[1:])}"
                )
        if not is_int(self.channels) or not 0 < self.channels <= MAX_WIDTH:
            raise SpecError(
                f"arch.channels: must be an integer in 1..{MAX_WIDTH}, got {self.channels!r}"
            )
        if self.pool_layers is None:
            distance = len(self.layers) // 3
            object.__setattr__(self, "pool_layers", (distance - 1, 2 * distance - 1))
        pools = self.pool_layers
        if list(pools) != sorted(set(pools)) or any(not 0 <= p < len(self.layers) for p in pools):
            raise SpecError(
                f"arch.pool_layers: must be increasing layer ids in 0..{len(self.layers) - 1}, "
                f"got {list(pools)}"
            )

    def to_json(self) -> dict:
        return {
            "type": "enas_macro",
            "channels": self.channels,
            "layers": [list(layer) for layer in self.layers],
            "pool_layers": list(self.pool_layers),
            "sep_as_conv": self.sep_as_conv,
        }

    @classmethod
    def from_json(cls, data: Any) -> EnasMacroSpec:
        if not isinstance(data, dict):
            raise SpecError(f"arch: expected an object, got {data!r}")
        known = {"type", "channels", "layers", "arc", "pool_layers", "sep_as_conv"}
        if set(data) - known:
            raise SpecError(
                f"arch: unknown keys {sorted(set(data) - known)}; valid: {sorted(known)}"
            )
        if ("layers" in data) == ("arc" in data):
            raise SpecError("arch: give exactly one of 'layers' (per-layer lists) or 'arc'")
        if "arc" in data:
            layers = split_arc(data["arc"])
        elif isinstance(data["layers"], list) and all(isinstance(x, list) for x in data["layers"]):
            layers = tuple(tuple(layer) for layer in data["layers"])
        else:
            raise SpecError("arch.layers: must be a list of [op id, skip bits...] lists")
        pools = data.get("pool_layers")
        sep_as_conv = data.get("sep_as_conv", True)
        if not isinstance(sep_as_conv, bool):
            raise SpecError(f"arch.sep_as_conv: must be true or false, got {sep_as_conv!r}")
        return cls(
            layers, data.get("channels"), None if pools is None else tuple(pools), sep_as_conv
        )
