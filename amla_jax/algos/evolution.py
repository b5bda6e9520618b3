"""Regularized evolution (Real et al. 2019, "aging evolution") over a search space.

The first ``population`` archs are uniform samples. Afterwards each ask draws
``tournament`` members of the population uniformly without replacement, mutates the
best of them (the space's ``mutate``: one decision changed) and, when told, adds the
child and removes the OLDEST member (not the worst: that is the regularisation). The
population is always the last ``population`` archs evaluated, so the state needs only
the history. ``best`` is the evaluated arch with the highest objective.

Options (``algo.options``, plus `amla_jax.algos.space_search`'s): ``population`` (20),
``tournament`` (5).

Synopsis::

    algorithm = get_algorithm("evolution")(AlgoConfig("evolution", 300, {}), template)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.algos.space_search import (
    SpaceSearch,
    append,
    arch_at,
    best_of,
    decode,
    describe_state,
    split_key,
)
from amla_jax.spaces.base import key_to_rng


class EvolutionState(NamedTuple):
    """iteration; archs/scores: the history (`space_search.append`), whose last
    ``population`` entries are the population; best_index."""

    iteration: int
    archs: str
    scores: str
    best_index: int

    def to_json(self) -> dict[str, Any]:
        return describe_state(self)


def make_evolution(cfg, template) -> Algorithm:
    """Regularized evolution for ``cfg.iterations`` evaluations."""
    search = SpaceSearch.from_config(cfg, template, {"population": 20, "tournament": 5})
    size, tournament = search.options["population"], search.options["tournament"]
    if not 1 <= tournament <= size:
        raise AlgorithmError(
            f"algo.options.tournament: {tournament} must be in 1..population ({size})"
        )
    iterations, width = int(cfg.iterations), search.width

    def init(key) -> EvolutionState:
        del key
        return EvolutionState(0, "", "", -1)

    def ask(key, state):
        if state.iteration < size:
            return search.spec(search.space.sample(key)), state
        parent_key, child_key = split_key(key)
        archs, scores = decode(state.archs, state.scores, width)
        start = state.iteration - size  # the population: the last `size` evaluated
        drawn = np.sort(key_to_rng(parent_key).choice(size, size=tournament, replace=False))
        parent = start + drawn[int(np.argmax(scores[start + drawn]))]  # oldest on ties
        arch = tuple(int(a) for a in archs[parent])
        return search.spec(search.space.mutate(child_key, arch)), state

    def tell(state, spec, result):
        arch = search.space.from_spec(spec)
        archs, scores = append(state.archs, state.scores, arch, search.objective(result))
        return EvolutionState(state.iteration + 1, archs, scores, best_of(scores))

    def best(state):
        return search.spec(arch_at(cfg.name, state.archs, width, state.best_index))

    return Algorithm(cfg.name, init, ask, tell, lambda s: s.iteration >= iterations, best)
