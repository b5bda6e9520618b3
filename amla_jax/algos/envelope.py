"""EnvelopeNet construction (NAC) and the random baseline, over AMLA's macro network format.

Pure functions over AMLA's JSON (spec A.5, A.7, A.8, B): a network is a list of filter layers
``{"filters": {"Branch1": "1x1", ...}, "outputs": int, "inputs": [...] | "all"}`` and
``{"widener": {}}``, addressed by 1-based cellnumbers (0 = stem); ``inputs`` are skip sources
besides the implicit predecessor; branch j of cell k is ``"Cell<k>/Branch<j>"``. Arguments
are never mutated; results are new, JSON-serialisable data.

Usage::

    settings = EnvelopeSettings.from_dict(config["envelopenet"], stem_width=64)
    arch = initial_envelopenet(settings)
    for _ in range(iterations):
        utilities, scalars = train_and_measure(arch)  # MeanSSS per branch, skip scalars
        arch = construct_amla(arch, utilities, scalars, settings)
    baseline = random_network(0, matched_random_settings(arch, ["3x3", "5x5", "7x7sep"]))
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

Network = list[dict[str, Any]]
Arch = Network | Mapping[str, Any]
Scalars = Mapping[Any, Mapping[Any, float]]
_S = TypeVar("_S", bound="_Section")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class _Section:
    """Validation and AMLA-dict conversion shared by the settings dataclasses."""

    def _freeze(self, ints: Mapping[str, int], bools: Sequence[str]) -> None:
        """Checks fields; stores per-stage lists (``ints``: name -> minimum) as tuples."""
        _check_int("stages", self.stages, 1)
        _check_int("stem_width", self.stem_width, 1)
        for name in (*ints, *bools):
            value = getattr(self, name)
            ok = isinstance(value, Iterable) and not isinstance(value, str | Mapping)
            # AMLA indexes these lists by stage, so entries past the last stage are unused
            # (its own config.nac.construction.test.json has 4 for 3 stages); too few is
            # an error.
            if not ok or len(value := tuple(value)) < self.stages:
                raise ValueError(f"{name} needs a list of one entry per stage, got {value!r}")
            value = value[: self.stages]
            for item in value:
                if name in ints:
                    _check_int(f"{name} entries", item, ints[name])
                elif not isinstance(item, bool):
                    raise ValueError(f"{name} entries must be bools, got {item!r}")
            object.__setattr__(self, name, value)
        for name in ("skip", "worst_case"):
            if not isinstance(getattr(self, name, False), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls: type[_S], d: Mapping[str, Any], *, stem_width: int | None = None) -> _S:
        """Builds settings from AMLA's config section; ``stem_width`` overrides ``d``'s."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {**d, **({} if stem_width is None else {"stem_width": stem_width})}
        unknown = sorted(set(values) - set(fields))
        required = {n for n, f in fields.items() if f.default is dataclasses.MISSING}
        missing = sorted(required - set(values))
        if unknown or missing:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}, missing keys {missing}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The AMLA config section plus ``stem_width``: the inverse of ``from_dict``."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        return {**out, "envelopecell": dict(out["envelopecell"])} if "envelopecell" in out else out


@dataclasses.dataclass(frozen=True)
class EnvelopeSettings(_Section):
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
        _check_int("max_filter_prune", self.max_filter_prune, 0)
        cell = self.envelopecell
        pairs = tuple(cell.items()) if isinstance(cell, Mapping) else tuple(map(tuple, cell))
        if not pairs or any(_branch_number(k) is None or not op for k, op in pairs):
            raise ValueError(f"envelopecell must map 'Branch<int>' keys to ops, got {cell!r}")
        object.__setattr__(self, "envelopecell", pairs)

    @property
    def cell(self) -> dict[str, str]:
        """A fresh ``filters`` dict of the full envelope cell."""
        return dict(self.envelopecell)


@dataclasses.dataclass(frozen=True)
class RandomSettings(_Section):
    """AMLA's ``random`` config section plus the stem width C_init (spec A.8, B)."""

    stages: int
    layers_per_stage: tuple[int, ...]
    num_blocks_per_stage: tuple[int, ...]
    blocks: tuple[str, ...]
    parameter_limits: tuple[bool, ...]
    stem_width: int
    skip: bool = False

    def __post_init__(self) -> None:
        self._freeze({"layers_per_stage": 1, "num_blocks_per_stage": 1}, ("parameter_limits",))
        pairs = zip(self.layers_per_stage, self.num_blocks_per_stage, strict=True)
        if any(blocks < layers for layers, blocks in pairs):
            raise ValueError("num_blocks_per_stage entries must be >= layers_per_stage entries")
        blocks = self.blocks
        if isinstance(blocks, str) or not blocks or not all(isinstance(b, str) for b in blocks):
            raise ValueError(f"blocks must be a non-empty list of op strings, got {blocks!r}")
        object.__setattr__(self, "blocks", tuple(blocks))


def stage_widths(settings: _Section, stage: int, num_layers: int) -> list[int]:
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
    _check_int("num_layers", num_layers, 0)
    width = 2**stage * settings.stem_width
    if not settings.parameter_limits[stage] or num_layers <= 1:
        return [width] * num_layers
    if num_layers == 2:
        return [width // 2, width]
    inner = int((width / (num_layers - 2.0)) * (math.pow(num_layers - 1.0, 0.5) - 1))
    return [inner] * (num_layers - 1) + [width]


def _branch_number(key: Any) -> int | None:
    digits = key[6:] if isinstance(key, str) and key.startswith("Branch") else ""
    return int(digits) if digits.isdigit() else None


def _network(arch: Arch) -> Network:
    if isinstance(arch, Mapping):
        if arch.get("type") != "macro" or not isinstance(arch.get("network"), list):
            raise ValueError("arch must be a network list or {'type': 'macro', 'network': [...]}")
        return arch["network"]
    return arch


def stage_layout(arch: Arch) -> list[list[int]]:
    """Cellnumbers of the filter layers of each stage; wideners separate stages. Raises
    ValueError on other entries, empty or non-``Branch<int>`` filters, or empty stages."""
    stages: list[list[int]] = [[]]
    for cell, entry in enumerate(_network(arch), start=1):
        if "widener" in entry:
            stages.append([])
        elif "filters" in entry:
            if not entry["filters"] or None in map(_branch_number, entry["filters"]):
                raise ValueError(f"cell {cell}: filters must be non-empty 'Branch<int>' keys")
            stages[-1].append(cell)
        else:
            raise ValueError(f"cell {cell}: only filter layers and wideners allowed, got {entry}")
    if not all(stages):
        raise ValueError(f"every stage needs a filter layer; layout {stages}")
    return stages


def branch_names(arch: Arch) -> list[str]:
    """``"Cell<k>/Branch<j>"`` of every branch, in layer order, then by branch number."""
    network = _network(arch)
    return [
        f"Cell{cell}/{key}"
        for cells in stage_layout(network)
        for cell in cells
        for key in sorted(network[cell - 1]["filters"], key=_branch_number)
    ]


def count_branches(arch: Arch) -> list[int]:
    """The number of branches in each stage (``sum`` it for the whole network)."""
    network = _network(arch)
    return [sum(len(network[c - 1]["filters"]) for c in cells) for cells in stage_layout(network)]


def _assemble(stages: list[list[dict[str, str]]], settings: _Section) -> Network:
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


def initial_envelopenet(settings: EnvelopeSettings) -> Network:
    """The iteration-0 EnvelopeNet (spec A.5): ``layers_per_stage[s]`` full envelope cells
    per stage, widths from ``stage_widths``, wideners between stages (none after the last),
    and dense skip inputs ``[c-2, ..., 1]`` if ``settings.skip``."""
    return _assemble([[settings.cell] * n for n in settings.layers_per_stage], settings)


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
    network = _network(arch)
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
    """The ceil(n/2) logged sources with the largest signed scalar, renumbered. Ties keep
    the order of the layer's ``inputs`` list; unlisted sources follow, latest first."""
    listed = inputs if isinstance(inputs, list) else []
    ordered = sorted(logged, key=lambda s: (listed.index(s) if s in listed else len(listed), -s))
    kept = sorted(ordered, key=logged.__getitem__, reverse=True)[: len(logged) - len(logged) // 2]
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
    logged scalars keeps the ceil(n/2) sources with the largest signed scalar (ties in
    ``inputs`` order), renumbered, then every new layer before it; an old layer with none
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
    network = copy.deepcopy(_network(arch))
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


def random_network(key_or_seed: int | Sequence[int], settings: RandomSettings) -> Network:
    """A random baseline network, with v0.1's working semantics (spec A.8).

    Per stage, ``layers_per_stage[s]`` layers get one uniform block each, then the other
    ``num_blocks_per_stage[s] - layers_per_stage[s]`` uniform blocks go to uniform layers
    (duplicates allowed), all seeds first as in v0.1. Branches are ``Branch1..N`` in draw
    order; ``skip`` gives dense inputs ``[c-2, ..., 1]`` like the EnvelopeNet (not "all").

    Args:
        key_or_seed: an int, or an integer array such as a raw JAX PRNGKey, seeding
            ``numpy.random.default_rng``; the same seed gives the same network.
        settings: the random-network settings.
    """
    seed = np.asarray(key_or_seed)
    if seed.dtype.kind not in "iu" or seed.size == 0:
        raise TypeError(f"key_or_seed must be an int or an integer key array, got {key_or_seed!r}")
    rng = np.random.default_rng(seed.ravel().tolist())  # an int n seeds as [n]
    blocks = settings.blocks
    stages = [
        [[blocks[rng.integers(len(blocks))]] for _ in range(n)] for n in settings.layers_per_stage
    ]
    for layers, total in zip(stages, settings.num_blocks_per_stage, strict=True):
        for _ in range(total - len(layers)):
            layers[rng.integers(len(layers))].append(blocks[rng.integers(len(blocks))])
    named = [[{f"Branch{j}": op for j, op in enumerate(ops, 1)} for ops in s] for s in stages]
    return _assemble(named, settings)


def matched_random_settings(
    arch: Arch,
    blocks: Sequence[str],
    skip: bool = False,
    *,
    parameter_limits: Sequence[bool] | None = None,
    stem_width: int | None = None,
) -> RandomSettings:
    """``RandomSettings`` with ``arch``'s per-stage layer and block counts (spec A.8). By
    default no parameter limits and C_init = ``outputs`` of the last layer of stage 0."""
    network = _network(arch)
    layout = stage_layout(network)
    stem_width = stem_width or network[layout[0][-1] - 1].get("outputs")  # W_0 = C_init
    counts = (len(layout), tuple(map(len, layout)), tuple(count_branches(network)))
    limits = tuple(parameter_limits or (False,) * len(layout))
    return RandomSettings(*counts, tuple(blocks), limits, stem_width, skip)
