"""AMLA's random baseline networks, with v0.1's working semantics (spec A.8).

The random-network settings (AMLA's ``random`` section plus the stem width), one random
network per seed, and settings that copy the per-stage counts of a constructed network
(v0.1 matched its random nets to the constructed "cons-exp-3" net). Networks are AMLA's
lists (`amla_jax.amla.layout`). Pure Python and numpy, no JAX.

Synopsis::

    settings = matched_random_settings(arch, ["3x3", "5x5", "7x7sep"], skip=True)
    network = random_network(0, settings)      # the same seed gives the same network
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from amla_jax.amla.layout import (
    Arch,
    Network,
    Section,
    SettingsError,
    assemble,
    count_branches,
    network_list,
    stage_layout,
)


@dataclasses.dataclass(frozen=True)
class RandomSettings(Section):
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
            raise SettingsError(
                "num_blocks_per_stage entries must be >= layers_per_stage entries",
                "num_blocks_per_stage",
            )
        blocks = self.blocks
        if isinstance(blocks, str) or not blocks or not all(isinstance(b, str) for b in blocks):
            raise SettingsError(
                f"blocks must be a non-empty list of op strings, got {blocks!r}", "blocks"
            )
        object.__setattr__(self, "blocks", tuple(blocks))


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
    return assemble(named, settings)


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
    network = network_list(arch)
    layout = stage_layout(network)
    stem_width = stem_width or network[layout[0][-1] - 1].get("outputs")  # W_0 = C_init
    counts = (len(layout), tuple(map(len, layout)), tuple(count_branches(network)))
    limits = tuple(parameter_limits or (False,) * len(layout))
    return RandomSettings(*counts, tuple(blocks), limits, stem_width, skip)
