"""AMLA's ``deterministic`` algorithm (train mode): evaluate the given network once.

Synopsis::

    algorithm = get_algorithm("fixed")(AlgoConfig("fixed", iterations=1), template)
    state = algorithm.init(key)                  # FixedState(asked=0, told=0)
    spec, state = algorithm.ask(key, state)      # the template, as given
"""

from __future__ import annotations

from typing import NamedTuple

from amla_jax.algos.base import Algorithm
from amla_jax.config import AlgoConfig
from amla_jax.spec import NetworkSpec


class FixedState(NamedTuple):
    """How often the template was asked for and evaluated."""

    asked: int
    told: int

    def to_json(self) -> dict:
        return dict(self._asdict())


def make_fixed(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """Evaluates ``template`` ``max(cfg.iterations, 1)`` times; ``best`` is the template."""
    iterations = max(int(cfg.iterations), 1)

    def init(key) -> FixedState:
        del key
        return FixedState(asked=0, told=0)

    def ask(key, state: FixedState) -> tuple[NetworkSpec, FixedState]:
        del key
        return template, state._replace(asked=state.asked + 1)

    def tell(state: FixedState, spec: NetworkSpec, result) -> FixedState:
        del spec, result
        return state._replace(told=state.told + 1)

    def done(state: FixedState) -> bool:
        return state.told >= iterations

    def best(state: FixedState) -> NetworkSpec:
        del state
        return template

    return Algorithm("fixed", init, ask, tell, done, best)
