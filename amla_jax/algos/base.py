"""The search-algorithm interface: a bundle of pure functions over immutable state.

An `Algorithm` is built by a factory that closes over its hyperparameters::

    algorithm = get_algorithm("nac")(algo_cfg, template_spec)
    state = algorithm.init(key)
    spec, state = algorithm.ask(key, state)         # pure: same state + key, same spec
    state = algorithm.tell(state, spec, result)     # result: a `train.TrainResult`
    algorithm.done(state)                           # True once the search has finished
    algorithm.best(state)                           # the network the search returns

Contracts:
- ``state`` is a pytree of numpy arrays, Python scalars and strings (JSON specs), never a
  live object, so that Orbax can checkpoint it and a resumed search continues exactly.
- ``init``, ``ask`` and ``tell`` never mutate their arguments and use no global RNG: every
  random choice comes from the ``key`` passed in.
- ``tell`` reads only ``result.metrics``, ``result.utilities``, ``result.scalars`` and
  ``result.num_params``, so a fake evaluator can drive it in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from amla_jax.config import AlgoConfig
from amla_jax.selection import selection_metric  # noqa: F401 (re-exported for algorithms)
from amla_jax.spec import NetworkSpec

State = dict[str, Any]


class Algorithm(NamedTuple):
    """A search algorithm as pure functions (see the module docstring for contracts).

    Attributes:
      name: the registry name.
      init: ``init(key) -> state``.
      ask: ``ask(key, state) -> (spec, state)``: the next network to evaluate.
      tell: ``tell(state, spec, result) -> state``: learn from its evaluation.
      done: ``done(state) -> bool``: no more networks to ask for.
      best: ``best(state) -> NetworkSpec``: the search's answer.
    """

    name: str
    init: Callable[[Any], State]
    ask: Callable[[Any, State], tuple[NetworkSpec, State]]
    tell: Callable[[State, NetworkSpec, Any], State]
    done: Callable[[State], bool]
    best: Callable[[State], NetworkSpec]


AlgorithmFactory = Callable[[AlgoConfig, NetworkSpec], Algorithm]
ALGORITHMS: dict[str, AlgorithmFactory] = {}


class AlgorithmError(ValueError):
    """An algorithm name or option is invalid; the message says which and what is valid."""


def register(name: str) -> Callable[[AlgorithmFactory], AlgorithmFactory]:
    """Adds a factory to `ALGORITHMS` under ``name``."""

    def add(factory: AlgorithmFactory) -> AlgorithmFactory:
        ALGORITHMS[name] = factory
        return factory

    return add


def get_algorithm(name: str) -> AlgorithmFactory:
    """The factory registered as ``name``; fails listing the valid names."""
    if name not in ALGORITHMS:
        raise AlgorithmError(
            f"algo: unknown algorithm {name!r}; valid: {', '.join(sorted(ALGORITHMS))}"
        )
    return ALGORITHMS[name]


@register("fixed")
def make_fixed(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """AMLA's ``deterministic`` algorithm (train mode): evaluate the given spec once."""

    def init(key) -> State:
        del key
        return {"asked": 0, "told": 0}

    def ask(key, state: State) -> tuple[NetworkSpec, State]:
        del key
        return template, {**state, "asked": state["asked"] + 1}

    def tell(state: State, spec: NetworkSpec, result) -> State:
        del spec, result
        return {**state, "told": state["told"] + 1}

    def done(state: State) -> bool:
        return state["told"] >= max(cfg.iterations, 1)

    def best(state: State) -> NetworkSpec:
        del state
        return template

    return Algorithm("fixed", init, ask, tell, done, best)
