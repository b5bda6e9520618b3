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

import numpy as np

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.algos.space_search import HistoryState, SpaceSearch, decode, split_key
from amla_jax.spaces.base import key_to_rng


def make_evolution(cfg, template) -> Algorithm:
    """Regularized evolution for ``cfg.iterations`` evaluations."""
    search = SpaceSearch.from_config(cfg, template, {"population": 20, "tournament": 5})
    size, tournament = search.options["population"], search.options["tournament"]
    if not 1 <= tournament <= size:
        raise AlgorithmError(
            f"algo.options.tournament: {tournament} must be in 1..population ({size})"
        )
    width = search.width

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
        return state.told(search, spec, result)

    return search.algorithm(cfg, HistoryState.empty, ask, tell)
