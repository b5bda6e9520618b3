"""AMLA's EnvelopeNet construction (NAC) over its macro network lists (spec A.5, A.7, A.12).

The construction settings (AMLA's ``envelopenet`` section plus the stem width), the
iteration-0 EnvelopeNet, the choice of the branches to prune, and one construction step
(`construct_amla`, AMLA's ``construct_envelopenet_bystages``). Networks are AMLA's lists
(`amla_jax.amla.layout`); arguments are never mutated, results are new JSON data. Pure
Python, no JAX.

Synopsis::

    settings = EnvelopeSettings.from_dict(config["envelopenet"], stem_width=64)
    arch = initial_envelopenet(settings)
    for _ in range(iterations):
        utilities, scalars = train_and_measure(arch)  # MeanSSS per branch, skip scalars
        arch = construct_amla(arch, utilities, scalars, settings)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from amla_jax.amla.layout import (
    Arch,
    Network,
    Section,
    SettingsError,
    assemble,
    branch_names,
    branch_number,
    check_int,
    network_list,
    stage_layout,
    stage_widths,
)

Scalars = Mapping[Any, Mapping[Any, float]]


@dataclasses.dataclass(frozen=True)
class EnvelopeSettings(Section):
    """AMLA's ``envelopenet`` section plus stem width C_init; hashable (tuples, pairs)."""

    stages: int
    layers_per_stage: tuple[int, ...]
    max_layers_per_stage: tuple[int, ...]
    construction: tuple[bool, ...]
    parameter_limits: tuple[bool, ...]
    max_filter_prune: int
    envelopecell: tuple[tuple[str, str], ...]
    stem_width: int
    skip: bool = False
    worst_case: bool = False

    def __post_init__(self) -> None:
        ints = {"layers_per_stage": 1, "max_layers_per_stage": 0}
        self._freeze(ints, ("construction", "parameter_limits"))
        check_int("max_filter_prune", self.max_filter_prune, 0)
        cell = self.envelopecell
        try:
            pairs = tuple(cell.items()) if isinstance(cell, Mapping) else tuple(map(tuple, cell))
            pairs = tuple((key, op) for key, op in pairs)
        except (TypeError, ValueError):  # not a mapping, nor (branch, op) pairs
            pairs = ()
        if not pairs or any(branch_number(k) is None or not op for k, op in pairs):
            raise SettingsError(
                f"envelopecell must map 'Branch<int>' keys to ops, got {cell!r}", "envelopecell"
            )
        object.__setattr__(self, "envelopecell", pairs)

    @property
    def cell(self) -> dict[str, str]:
        """A fresh ``filters`` dict of the full envelope cell."""
        return dict(self.envelopecell)


def initial_envelopenet(settings: EnvelopeSettings) -> Network:
    """The iteration-0 EnvelopeNet (spec A.5): ``layers_per_stage[s]`` full envelope cells
    per stage, widths from ``stage_widths``, wideners between stages (none after the last),
    and dense skip inputs ``[c-2, ..., 1]`` if ``settings.skip``."""
    return assemble([[settings.cell] * n for n in settings.layers_per_stage], settings)


def _select_stage(names: list[str], utilities: Mapping, settings: EnvelopeSettings) -> list[str]:
    for name in names:
        if name not in utilities or math.isnan(float(utilities[name])):
            raise ValueError(f"missing or NaN utility for branch {name!r}")
    ranked = sorted(names, key=lambda name: float(utilities[name]), reverse=settings.worst_case)
    budget = min(settings.max_filter_prune, len(names) // 3)
    sizes, taken, pruned = Counter(n.split("/")[0] for n in names), Counter(), []
    for name in ranked:
        cell = name.split("/")[0]
        if taken[cell] + 1 < sizes[cell]:
            pruned.append(name)
            taken[cell] += 1
            if len(pruned) >= budget:  # checked after the append: k = 0 still prunes one
                break
    return pruned


def select_pruned_branches(
    arch: Arch, utilities: Mapping[str, float], settings: EnvelopeSettings
) -> list[list[str]]:
    """The branches one construction step prunes, per stage (spec A.7 steps 1-4).

    A stage grows iff ``construction[s]`` and it has <= ``max_layers_per_stage[s]`` layers
    (so it can end one above); other stages get []. A growing stage's branches are ranked
    jointly by utility, ascending (descending if ``worst_case``), ties in ``branch_names``
    order (stable sort). The walk skips a branch that would empty its layer and stops once
    k = min(max_filter_prune, branches // 3) are pruned, checked after each prune (k = 0
    still prunes one). ``utilities`` maps ``"Cell<k>/Branch<j>"`` to MeanSSS for every
    branch of each growing stage. Raises ValueError on a missing or NaN utility, a stage
    count other than ``settings.stages``, or a growing stage of one-branch layers.
    """
    network = network_list(arch)
    layout, names = stage_layout(network), branch_names(network)
    if len(layout) != settings.stages:
        raise ValueError(f"arch has {len(layout)} stages but settings.stages={settings.stages}")
    plan: list[list[str]] = [[] for _ in layout]
    for stage, cells in enumerate(layout):
        if settings.construction[stage] and len(cells) <= settings.max_layers_per_stage[stage]:
            plan[stage] = _select_stage(
                [n for n in names if int(n[4:].split("/")[0]) in cells], utilities, settings
            )
            if not plan[stage]:
                raise ValueError(f"stage {stage}: no branch can be pruned, all layers have one")
    return plan


def _source(renumber: dict[int, int], dest: int, src: int) -> int:
    if src not in renumber or src >= dest - 1:
        raise ValueError(f"cell {dest}: skip source {src} is not an earlier non-predecessor")
    return renumber[src]


def _kept_sources(dest: int, logged: dict[int, float], inputs: Any, renumber: dict) -> list[int]:
    """The ceil(n/2) logged sources with the largest signed scalar, renumbered, largest
    first. As AMLA: the log is in the order of the layer's ``inputs`` list (unlisted
    sources after it, latest first), sorted ascending by a stable sort, and the sources
    are taken from its end, so among equal scalars the one LATER in that order is kept
    (and comes first)."""
    listed = inputs if isinstance(inputs, list) else []
    ordered = sorted(logged, key=lambda s: (listed.index(s) if s in listed else len(listed), -s))
    ascending = sorted(ordered, key=logged.__getitem__)
    kept = ascending[len(logged) // 2 :][::-1]
    return [_source(renumber, dest, src) for src in kept]


def _rewire(entries: list[tuple[int | None, dict]], scalars: Mapping, skip: bool) -> Network:
    """Skip rewiring (spec A.7 step 7) of ``(old cellnumber or None if new, entry)`` pairs."""
    renumber = {0: 0} | {old: new for new, (old, _) in enumerate(entries, 1) if old is not None}
    logged = {
        int(dest): {int(src): float(v) for src, v in sources.items()}
        for dest, sources in ((scalars or {}).items() if skip else ())
    }
    if any(math.isnan(v) for sources in logged.values() for v in sources.values()):
        raise ValueError("skip scalars contain NaN")
    added: list[int] = []
    for cell, (old, layer) in enumerate(entries, start=1):
        if "filters" in layer and old is None:
            layer.update({"inputs": list(range(cell - 2, 0, -1))} if skip else {})
            added.append(cell)
        elif "filters" in layer and logged.get(old):
            layer["inputs"] = _kept_sources(old, logged[old], layer.get("inputs"), renumber) + added
        elif "filters" in layer and isinstance(layer.get("inputs"), list):
            layer["inputs"] = [_source(renumber, old, src) for src in layer["inputs"]]
    return [layer for _, layer in entries]


def construct_amla(
    arch: Arch, utilities: Mapping[str, float], scalars: Scalars, settings: EnvelopeSettings
) -> Network | dict[str, Any]:
    """One NAC construction step: AMLA's ``construct_envelopenet_bystages`` (spec A.7).

    Growing stages lose the branches ``select_pruned_branches`` picks and gain a full
    envelope cell at their end; others are copied. All widths are recomputed and wideners
    re-inserted. With ``settings.skip`` every filter layer, in copied stages too, is
    rewired: a new layer gets dense inputs ``[c-2, ..., 1]``; an old layer with n > 0
    logged scalars keeps the ceil(n/2) sources with the largest signed scalar (of equal
    ones, the later in ``inputs`` order, as AMLA), renumbered, then every new layer before it; an old layer with none
    logged keeps its sources, renumbered (AMLA leaves them stale), and gains nothing.
    Without ``skip`` new layers get no ``inputs``; old lists are only renumbered.

    Args:
        arch: the network list or ``{"type": "macro", "network": [...]}``.
        utilities: ``"Cell<k>/Branch<j>"`` -> final MeanSSS, cellnumbers of ``arch``.
        scalars: dest -> {source -> final skip scalar}, cellnumbers of ``arch`` (or strs).
        settings: the construction settings.

    Returns:
        The new network, in the shape of ``arch``.

    Raises:
        ValueError: as ``select_pruned_branches``; on a bad skip source; on a NaN scalar.
    """
    network = copy.deepcopy(network_list(arch))
    plan = select_pruned_branches(network, utilities, settings)
    for cell, key in (name[4:].split("/") for names in plan for name in names):
        del network[int(cell) - 1]["filters"][key]
    entries: list[tuple[int | None, dict]] = []
    for stage, cells in enumerate(stage_layout(network)):
        entries += [(cells[0] - 1, {"widener": {}})] if stage else []
        layers = [(c, network[c - 1]) for c in cells]
        layers += [(None, {"filters": settings.cell})] if plan[stage] else []  # grows
        for (_, layer), w in zip(layers, stage_widths(settings, stage, len(layers)), strict=True):
            layer["outputs"] = w
        entries += layers
    new_network = _rewire(entries, scalars, settings.skip)
    if isinstance(arch, Mapping):
        return {**copy.deepcopy(dict(arch)), "network": new_network}
    return new_network
