"""NAS-Bench-201 cells and networks (Dong & Yang 2020) as plain data. No JAX.

A NB201 cell is a DAG of 4 nodes; each of its 6 edges (to, from), `NB201_EDGES`, carries
one of `NB201_OPS`, and node j is the sum of its incoming edges. The network (NB201's
``TinyNetwork``) is a 3x3 conv stem of C channels + BN, three stages of
``cells_per_stage`` cells at C, 2C, 4C joined by ResNet basic reduction blocks, then
BN-ReLU, global average pooling and a linear classifier. The reduction blocks and the
final BN-ReLU are part of the body (`amla_jax.nn.nb201.NB201Body`); the stem conv + BN
and the pool + linear head are ordinary stem/head blocks.

NB201's architecture string lists the edges into node 1, 2, 3 in that order, each as
``op~from``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

Our JSON (``arch`` of a `NetworkSpec`)::

    {"type": "nb201", "ops": [six op names in NB201_EDGES order], "channels": 16,
     "cells_per_stage": 5}

``"arch": "<arch string>"`` may replace ``"ops"``.

Synopsis::

    from amla_jax.spec import arch_string, nb201_network, parse_arch_string
    ops = parse_arch_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    arch_string(ops) == "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    spec = nb201_network(ops, channels=16, cells_per_stage=5, num_classes=10)
    spec.body.ops                                   # the six op names
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amla_jax.spec.base import SpecError, check, is_int

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edge (to, from) in the order the architecture string lists them.
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4


def _check_ops(ops: Any, where: str) -> tuple[str, ...]:
    check(
        isinstance(ops, list | tuple) and len(ops) == len(NB201_EDGES),
        f"{where}: needs {len(NB201_EDGES)} op names (edges {list(NB201_EDGES)}), got {ops!r}",
    )
    for i, op in enumerate(ops):
        check(
            op in NB201_OPS,
            f"{where}[{i}]: unknown op {op!r} on edge {NB201_EDGES[i]}; "
            f"valid: {', '.join(NB201_OPS)}",
        )
    return tuple(ops)


def parse_arch_string(text: Any) -> tuple[str, ...]:
    """The six op names (`NB201_EDGES` order) of a NB201 architecture string."""
    check(isinstance(text, str), f"arch string: must be a string, got {text!r}")
    nodes = text.strip().split("+")
    check(
        len(nodes) == NUM_NODES - 1,
        f"arch string {text!r}: needs {NUM_NODES - 1} nodes joined by '+', got {len(nodes)}",
    )
    ops: list[str] = []
    for to, node in enumerate(nodes, start=1):
        check(
            len(node) > 2 and node.startswith("|") and node.endswith("|"),
            f"arch string {text!r}: node {to} must look like '|op~0|...|', got {node!r}",
        )
        entries = node[1:-1].split("|")
        check(
            len(entries) == to,
            f"arch string {text!r}: node {to} needs {to} edges, got {len(entries)}",
        )
        for source, entry in enumerate(entries):
            op, sep, index = entry.partition("~")
            check(
                sep == "~" and index == str(source),
                f"arch string {text!r}: edge {entry!r} into node {to} must be 'op~{source}'",
            )
            check(
                op in NB201_OPS,
                f"arch string {text!r}: unknown op {op!r}; valid: {', '.join(NB201_OPS)}",
            )
            ops.append(op)
    return tuple(ops)


def arch_string(ops: Any) -> str:
    """NB201's architecture string of six op names (`NB201_EDGES` order)."""
    ops = _check_ops(ops, "ops")
    nodes: dict[int, list[str]] = {}
    for op, (to, source) in zip(ops, NB201_EDGES, strict=True):
        nodes.setdefault(to, []).append(f"{op}~{source}")
    return "+".join("|" + "|".join(nodes[to]) + "|" for to in sorted(nodes))


@dataclass(frozen=True)
class NB201Spec:
    """A NB201 body: one cell (six edge ops) repeated over three stages."""

    ops: tuple[str, ...]
    channels: int = 16
    cells_per_stage: int = 5
    type: str = field(default="nb201", init=False)

    def __post_init__(self):
        object.__setattr__(self, "ops", _check_ops(self.ops, "arch.ops"))
        check(
            is_int(self.channels) and self.channels > 0,
            f"arch.channels: must be a positive integer, got {self.channels!r}",
        )
        check(
            is_int(self.cells_per_stage) and self.cells_per_stage > 0,
            f"arch.cells_per_stage: must be a positive integer, got {self.cells_per_stage!r}",
        )

    @property
    def arch(self) -> str:
        """NB201's architecture string of the cell."""
        return arch_string(self.ops)

    def to_json(self) -> dict:
        return {
            "type": "nb201",
            "ops": list(self.ops),
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
        }

    @classmethod
    def from_json(cls, data: Any) -> NB201Spec:
        if not isinstance(data, dict):
            raise SpecError(f"arch: expected an object, got {data!r}")
        known = {"type", "ops", "arch", "channels", "cells_per_stage"}
        if set(data) - known:
            raise SpecError(
                f"arch: unknown keys {sorted(set(data) - known)}; valid: {sorted(known)}"
            )
        if ("ops" in data) == ("arch" in data):
            raise SpecError("arch: give exactly one of 'ops' (six op names) or 'arch' (string)")
        ops = parse_arch_string(data["arch"]) if "arch" in data else data["ops"]
        return cls(ops, data.get("channels", 16), data.get("cells_per_stage", 5))
