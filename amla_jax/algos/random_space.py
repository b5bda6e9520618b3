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

from amla_jax.algos.base import Algorithm
from amla_jax.algos.space_search import HistoryState, SpaceSearch


def make_random_space(cfg, template) -> Algorithm:
    """Random search; ``cfg.iterations`` archs are evaluated."""
    search = SpaceSearch.from_config(cfg, template, {})

    def ask(key, state):
        return search.spec(search.space.sample(key)), state

    def tell(state, spec, result):
        return state.told(search, spec, result)

    return search.algorithm(cfg, HistoryState.empty, ask, tell)
