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
from amla_jax.algos.space_search import SpaceSearch, append, arch_at, best_of, describe_state


class RandomSpaceState(NamedTuple):
    """iteration: archs evaluated; archs/scores: the history (`space_search.append`);
    best_index: the best entry, -1 before the first."""

    iteration: int
    archs: str
    scores: str
    best_index: int

    def to_json(self) -> dict[str, Any]:
        return describe_state(self)


def make_random_space(cfg, template) -> Algorithm:
    """Random search; ``cfg.iterations`` archs are evaluated."""
    search = SpaceSearch.from_config(cfg, template, {})
    iterations, width = int(cfg.iterations), search.width

    def init(key) -> RandomSpaceState:
        del key
        return RandomSpaceState(0, "", "", -1)

    def ask(key, state):
        return search.spec(search.space.sample(key)), state

    def tell(state, spec, result):
        archs, scores = append(
            state.archs, state.scores, search.space.from_spec(spec), search.objective(result)
        )
        return RandomSpaceState(state.iteration + 1, archs, scores, best_of(scores))

    def best(state):
        return search.spec(arch_at(cfg.name, state.archs, width, state.best_index))

    return Algorithm(cfg.name, init, ask, tell, lambda s: s.iteration >= iterations, best)
