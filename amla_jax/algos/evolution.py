"""Regularized evolution (Real et al. 2019, "aging evolution") over a search space.

The first ``population`` archs are uniform samples. Afterwards each ask draws
``tournament`` members of the population uniformly without replacement, mutates the
best of them (the space's ``mutate``: one decision changed) and, when told, adds the
child and removes the OLDEST member (not the worst: that is the regularisation).
``best`` is the evaluated arch with the highest objective over the whole history.

Options (``algo.options``, plus `amla_jax.algos.space_search`'s): ``population`` (20),
``tournament`` (5).

Synopsis::

    algorithm = get_algorithm("evolution")(AlgoConfig("evolution", 300, {}), template)
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.algos.space_search import SpaceSearch, best_arch, records, told
from amla_jax.spaces.base import key_to_rng


class EvolutionState(NamedTuple):
    """iteration; history: JSON ``[[arch, score], ...]``; population: JSON list of
    history indices, oldest first; best_index."""

    iteration: int
    history: str
    population: str
    best_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            **self._asdict(),
            "history": records(self.history),
            "population": json.loads(self.population),
        }


def make_evolution(cfg, template) -> Algorithm:
    """Regularized evolution for ``cfg.iterations`` evaluations."""
    search = SpaceSearch.from_config(cfg, template, {"population": 20, "tournament": 5})
    size, tournament = search.options["population"], search.options["tournament"]
    if not 1 <= tournament <= size:
        raise AlgorithmError(
            f"algo.options.tournament: {tournament} must be in 1..population ({size})"
        )
    iterations = int(cfg.iterations)

    def init(key) -> EvolutionState:
        del key
        return EvolutionState(0, "[]", "[]", -1)

    def ask(key, state):
        population = json.loads(state.population)
        if len(population) < size:
            return search.spec(search.space.sample(key)), state
        parent_key, child_key = _split(key)
        rng = key_to_rng(parent_key)
        entries = records(state.history)
        drawn = rng.choice(len(population), size=tournament, replace=False)
        # the best of the tournament; the oldest on ties, like best_index
        parent = max(sorted(int(d) for d in drawn), key=lambda d: entries[population[d]][1])
        arch = tuple(entries[population[parent]][0])
        return search.spec(search.space.mutate(child_key, arch)), state

    def tell(state, spec, result):
        arch = search.space.from_spec(spec)
        history, best = told(state.history, arch, search.objective(result))
        population = [*json.loads(state.population), state.iteration]
        if len(population) > size:
            population = population[1:]  # age-based removal
        return EvolutionState(state.iteration + 1, history, json.dumps(population), best)

    def best(state):
        return search.spec(best_arch(cfg.name, state.history, state.best_index))

    return Algorithm(cfg.name, init, ask, tell, lambda s: s.iteration >= iterations, best)


def _split(key):
    import jax  # noqa: PLC0415

    return jax.random.split(key)
