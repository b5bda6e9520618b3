"""AMLA's macro network list: its stages, cells and branches, per-stage widths, and the
assembly of layers that construction (`amla_jax.amla.envelope`) and the random baseline
(`amla_jax.amla.random_networks`) share.

A network is a list of filter layers ``{"filters": {"Branch1": "1x1", ...}, "outputs":
int, "inputs": [...] | "all"}`` and ``{"widener": {}}``, addressed by 1-based
cellnumbers (0 = stem); ``inputs`` are skip sources besides the implicit predecessor;
branch j of cell k is ``"Cell<k>/Branch<j>"`` (spec A.5, B). Arguments are never
mutated. Pure Python, no JAX.

Synopsis::

    from amla_jax.amla.layout import branch_names, count_branches, stage_layout
    stage_layout(network)        # [[1, 2], [4, 5], [7, 8]]: cellnumbers per stage
    branch_names(network)[:2]    # ['Cell1/Branch1', 'Cell1/Branch2']
    count_branches(network)      # [12, 12, 12]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from amla_jax.errors import UserError

Network = list[dict[str, Any]]
Arch = Network | Mapping[str, Any]
_S = TypeVar("_S", bound="Section")


class SettingsError(UserError):
    """An AMLA settings section is invalid. ``key`` names the field (None: the section),
    so that each edge can name it in its own terms (``algo.options.<key>``,
    ``envelopenet: ...``)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def check_int(name: str, value: Any, minimum: int, key: str | None = None) -> None:
    """Raises `SettingsError` (for ``key``, default ``name``) unless ``value`` is an int
    >= ``minimum`` (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{name} must be an int >= {minimum}, got {value!r}", key or name)


class Section:
    """Validation and AMLA-dict conversion shared by the settings dataclasses."""

    def _freeze(self, ints: Mapping[str, int], bools: Sequence[str]) -> None:
        """Checks fields; stores per-stage lists (``ints``: name -> minimum) as tuples."""
        check_int("stages", self.stages, 1)
        check_int("stem_width", self.stem_width, 1)
        for name in (*ints, *bools):
            value = getattr(self, name)
            ok = isinstance(value, Iterable) and not isinstance(value, str | Mapping)
            # AMLA indexes these lists by stage, so entries past the last stage are unused
            # (its own config.nac.construction.test.json has 4 for 3 stages); too few is
            # an error.
            if not ok or len(value := tuple(value)) < self.stages:
                raise SettingsError(
                    f"{name} needs a list of one entry per stage, got {value!r}", name
                )
            value = value[: self.stages]
            for item in value:
                if name in ints:
                    check_int(f"{name} entries", item, ints[name], key=name)
                elif not isinstance(item, bool):
                    raise SettingsError(f"{name} entries must be bools, got {item!r}", name)
            object.__setattr__(self, name, value)
        for name in ("skip", "worst_case"):
            if not isinstance(getattr(self, name, False), bool):
                raise SettingsError(f"{name} must be a bool, got {getattr(self, name)!r}", name)

    @classmethod
    def from_dict(cls: type[_S], d: Mapping[str, Any], *, stem_width: int | None = None) -> _S:
        """Builds settings from AMLA's config section; ``stem_width`` overrides ``d``'s."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {**d, **({} if stem_width is None else {"stem_width": stem_width})}
        unknown = sorted(set(values) - set(fields))
        required = {n for n, f in fields.items() if f.default is dataclasses.MISSING}
        missing = sorted(required - set(values))
        if unknown or missing:
            raise SettingsError(f"{cls.__name__}: unknown keys {unknown}, missing keys {missing}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The AMLA config section plus ``stem_width``: the inverse of ``from_dict``."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        return {**out, "envelopecell": dict(out["envelopecell"])} if "envelopecell" in out else out


def stage_widths(settings: Section, stage: int, num_layers: int) -> list[int]:
    """Returns the N = ``num_layers`` per-layer ``outputs`` of a stage (spec A.5).

    W_s = 2^s * stem_width for every layer, unless ``parameter_limits[stage]``: then all but
    the last get AMLA's ``int(W_s / (N-2) * (sqrt(N-1) - 1))``. AMLA divides by zero at N=2;
    here N=2 gives W_s // 2, the formula's limit and the exact root of 2*W*w = W^2.

    Args:
        settings: ``EnvelopeSettings`` or ``RandomSettings``.
        stage: 0-based stage index.
        num_layers: N >= 0.
    """
    if not 0 <= stage < settings.stages:
        raise ValueError(f"stage must be in [0, {settings.stages}), got {stage}")
    check_int("num_layers", num_layers, 0)
    width = 2**stage * settings.stem_width
    if not settings.parameter_limits[stage] or num_layers <= 1:
        return [width] * num_layers
    if num_layers == 2:
        return [width // 2, width]
    inner = int((width / (num_layers - 2.0)) * (math.pow(num_layers - 1.0, 0.5) - 1))
    return [inner] * (num_layers - 1) + [width]


def branch_number(key: Any) -> int | None:
    """The j of a ``"Branch<j>"`` key, or None for any other key."""
    digits = key[6:] if isinstance(key, str) and key.startswith("Branch") else ""
    # ASCII only: str.isdigit accepts other scripts' digits ("３") and superscripts ("²").
    return int(digits) if digits.isascii() and digits.isdigit() else None


def network_list(arch: Arch) -> Network:
    """The layer list of a network list or of ``{"type": "macro", "network": [...]}``."""
    if isinstance(arch, Mapping):
        if arch.get("type") != "macro" or not isinstance(arch.get("network"), list):
            raise ValueError("arch must be a network list or {'type': 'macro', 'network': [...]}")
        return arch["network"]
    return arch


def stage_layout(arch: Arch) -> list[list[int]]:
    """Cellnumbers of the filter layers of each stage; wideners separate stages. Raises
    ValueError on other entries, empty or non-``Branch<int>`` filters, or empty stages."""
    stages: list[list[int]] = [[]]
    for cell, entry in enumerate(network_list(arch), start=1):
        if "widener" in entry:
            stages.append([])
        elif "filters" in entry:
            if not entry["filters"] or None in map(branch_number, entry["filters"]):
                raise ValueError(f"cell {cell}: filters must be non-empty 'Branch<int>' keys")
            stages[-1].append(cell)
        else:
            raise ValueError(f"cell {cell}: only filter layers and wideners allowed, got {entry}")
    if not all(stages):
        raise ValueError(f"every stage needs a filter layer; layout {stages}")
    return stages


def branch_names(arch: Arch) -> list[str]:
    """``"Cell<k>/Branch<j>"`` of every branch, in layer order, then by branch number."""
    network = network_list(arch)
    return [
        f"Cell{cell}/{key}"
        for cells in stage_layout(network)
        for cell in cells
        for key in sorted(network[cell - 1]["filters"], key=branch_number)
    ]


def count_branches(arch: Arch) -> list[int]:
    """The number of branches in each stage (``sum`` it for the whole network)."""
    network = network_list(arch)
    return [sum(len(network[c - 1]["filters"]) for c in cells) for cells in stage_layout(network)]


def assemble(stages: list[list[dict[str, str]]], settings: Section) -> Network:
    """Filter layers from per-stage ``filters`` dicts, widths from ``stage_widths``,
    wideners between stages and, if ``settings.skip``, dense inputs: every earlier entry
    but the predecessor and the stem, [c-2, ..., 1]."""
    network: Network = []
    for s, cells in enumerate(stages):
        widths = stage_widths(settings, s, len(cells))
        network += [{"widener": {}}][:s]
        network += [{"filters": dict(f), "outputs": w} for f, w in zip(cells, widths, strict=True)]
    for cell, entry in enumerate(network, start=1):
        if settings.skip and "filters" in entry:
            entry["inputs"] = list(range(cell - 2, 0, -1))
    return network
