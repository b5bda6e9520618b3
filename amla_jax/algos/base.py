"""The search-algorithm interface: a bundle of pure functions over immutable, typed state.

An `Algorithm` is built by a factory that closes over its hyperparameters (the registry
`amla_jax.algos.ALGORITHMS` maps names to factories)::

    algorithm = get_algorithm("nac")(algo_cfg, template_spec)
    state = algorithm.init(key)
    spec, state = algorithm.ask(key, state)         # pure: same state + key, same spec
    state = algorithm.tell(state, spec, result)     # result: a `train.TrainResult`
    algorithm.done(state)                           # True once the search has finished
    algorithm.best(state)                           # the network the search returns
    state.to_json()                                 # the state as JSON data, for logs

Contracts:
- ``state`` is a NamedTuple (so a JAX pytree) of Python ints, floats and strings (JSON
  text for networks and histories), never a live object, with a ``to_json()``
  description. Its structure does not change as the search runs, so `state_to_tree` /
  `state_from_tree` give Orbax a plain dict to checkpoint and a resumed search continues
  exactly.
- ``init``, ``ask`` and ``tell`` never mutate their arguments and use no global RNG: every
  random choice comes from the ``key`` passed in.
- ``tell`` is always given the candidate's recorded row (`amla_jax.search`), so a search
  resumed from rows equals one that saw the live results; it reads only ``result.metrics``, ``result.utilities``, ``result.scalars`` and
  ``result.num_params``, so a fake evaluator can drive it in tests.
- Options are validated once, when the factory runs (`amla_jax.amla.options`); a bad
  name or option raises a `amla_jax.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from amla_jax.errors import UserError

if TYPE_CHECKING:
    from amla_jax.config import AlgoConfig
    from amla_jax.spec import NetworkSpec

State = Any  # a NamedTuple of ints, floats and JSON strings (see the module docstring)


class Algorithm(NamedTuple):
    """A search algorithm as pure functions (see the module docstring for contracts).

    Attributes:
      name: the registry name.
      init: ``init(key) -> state``.
      ask: ``ask(key, state) -> (spec, state)``: the next network to evaluate.
      tell: ``tell(state, spec, result) -> state``: learn from its evaluation.
      done: ``done(state) -> bool``: no more networks to ask for.
      best: ``best(state) -> NetworkSpec``: the search's answer.
      retry_failed: what the search does with a failed candidate (non-finite loss).
        False: ``tell`` it as a result with no finite metrics, utilities or scalars
        (selection skips it). True, for algorithms that cannot learn without its
        statistics (NAC): do not tell it; ask again with the same key and train the same
        network once more with a fresh key; a second failure in a row stops the search.
    """

    name: str
    init: Callable[[Any], State]
    ask: Callable[[Any, State], tuple[NetworkSpec, State]]
    tell: Callable[[State, NetworkSpec, Any], State]
    done: Callable[[State], bool]
    best: Callable[[State], NetworkSpec]
    retry_failed: bool = False


AlgorithmFactory = Callable[["AlgoConfig", "NetworkSpec"], Algorithm]


class AlgorithmError(UserError):
    """An algorithm name or setting is invalid; the message says which and what is valid."""


def state_to_tree(state: State) -> dict[str, Any]:
    """The state as the plain dict that Orbax checkpoints (one entry per field)."""
    return dict(state._asdict())


def state_from_tree(like: State, tree: Mapping[str, Any]) -> State:
    """The state of ``like``'s type with ``tree``'s values (from `state_to_tree`, restored
    by Orbax), each leaf converted back to the type it has in ``like``.

    Raises:
      AlgorithmError: the tree holds other fields (a checkpoint of another algorithm).
    """
    fields = type(like)._fields
    if set(tree) != set(fields):
        raise AlgorithmError(
            f"run_dir: the search checkpoint holds state fields {sorted(tree)}, not "
            f"{sorted(fields)}; use a new run directory"
        )
    return type(like)(**{name: type(getattr(like, name))(tree[name]) for name in fields})
