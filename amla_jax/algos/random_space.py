"""Random search over any search space: a uniform sample each iteration.

The baseline every discrete search is compared against (the space's ``sample``);
``best`` is the evaluated arch with the highest objective (earliest on ties). AMLA's
``random`` (`amla_jax.algos.random_search`) draws EnvelopeNets instead.

Synopsis::

    algorithm = get_algorithm("random_space")(AlgoConfig("random_space", 300, {}), template)
    state = algorithm.init(key)
    spec, state = algorithm.ask(key, state)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from amla_jax.algos.base import Algorithm
from amla_jax.algos.space_search import SpaceSearch, best_arch, records, told


class RandomSpaceState(NamedTuple):
    """iteration: archs evaluated; history: JSON ``[[arch, score], ...]``; best_index."""

    iteration: int
    history: str
    best_index: int

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "history": records(self.history)}


def make_random_space(cfg, template) -> Algorithm:
    """Random search; ``cfg.iterations`` archs are evaluated."""
    search = SpaceSearch.from_config(cfg, template, {})
    iterations = int(cfg.iterations)

    def init(key) -> RandomSpaceState:
        del key
        return RandomSpaceState(0, "[]", -1)

    def ask(key, state):
        return search.spec(search.space.sample(key)), state

    def tell(state, spec, result):
        history, best = told(state.history, search.space.from_spec(spec), search.objective(result))
        return RandomSpaceState(state.iteration + 1, history, best)

    def best(state):
        return search.spec(best_arch(cfg.name, state.history, state.best_index))

    return Algorithm(
        cfg.name, init, ask, tell, lambda s: s.iteration >= iterations, best
    )
