"""The one-shot (weight-sharing) method interface: a bundle of pure functions over a
pytree state, driven by `amla_jax.oneshot.loop.run_oneshot` around ONE supernet.

A method is built by a factory over its options (``make_darts_method(options)``)::

    method = make_darts_method(options)
    state = method.init(key, supernet, example_images)     # a NamedTuple of arrays
    state, metrics = method.step(state, batch_a, batch_b, key)   # jitted once by the loop
    weights = method.eval_weights(state)                    # Weights per cell kind
    arch = method.derive(state, key, score)                 # the discrete answer
    method.arch_weights(state)                              # JSON for the epoch row

Contracts:
- ``state`` is a NamedTuple of arrays only, so Orbax checkpoints it and restores it
  exactly, and a restored search continues bit-identically on CPU.
- ``step`` is pure and traceable; ``batch_a`` trains the shared weights, ``batch_b``
  is the other half of the training split (DARTS' architecture step, ENAS' controller
  reward). The validation split is never seen by ``step``. Its metrics include
  ``train/loss`` and ``train/accuracy`` (scalars).
- ``derive``'s ``score(weights)`` is the supernet's validation accuracy with those
  weights (provided by the loop); DARTS ignores it, ENAS picks its best sample by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

Batch = tuple[jax.Array, jax.Array]  # (images NHWC float32, integer labels)
Weights = Mapping[str, jax.Array]  # per cell kind, shapes supernet.alpha_shapes
Arch = tuple[int, ...]
State = Any  # a NamedTuple of arrays (see the module docstring)


class OneShotMethod(NamedTuple):
    """A weight-sharing search method as pure functions (contracts: module docstring).

    Attributes:
      name: the registry name.
      init: ``init(key, supernet, example_images) -> state``.
      step: ``step(state, batch_a, batch_b, key) -> (state, metrics)``.
      eval_weights: ``eval_weights(state) -> Weights``: the supernet is evaluated with
        these for the epoch row (DARTS: softmax(alphas)).
      derive: ``derive(state, key, score) -> arch``.
      arch_weights: ``arch_weights(state) -> dict`` of nested lists of floats.
      variables: ``variables(state) -> {"params", "batch_stats"}``, the supernet's
        variables the loop scores with; None (the default) reads the state's ``params``
        and ``batch_stats`` fields.
    """

    name: str
    init: Callable[[jax.Array, Any, jax.Array], State]
    step: Callable[[State, Batch, Batch, jax.Array], tuple[State, dict[str, jax.Array]]]
    eval_weights: Callable[[State], Weights]
    derive: Callable[[State, jax.Array, Callable[[Weights], float]], Arch]
    arch_weights: Callable[[State], dict[str, Any]]
    variables: Callable[[State], dict[str, Any]] | None = None


def variables_of(method: OneShotMethod, state: State) -> dict[str, Any]:
    """The supernet's variables in ``state`` (see `OneShotMethod.variables`)."""
    if method.variables is not None:
        return method.variables(state)
    return {"params": state.params, "batch_stats": state.batch_stats}


__all__ = ["Arch", "Batch", "OneShotMethod", "State", "Weights", "variables_of"]
