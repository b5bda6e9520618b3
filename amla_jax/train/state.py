"""The train state of one network and its creation from a key.

Synopsis::

    from amla_jax.train import create_train_state
    state = create_train_state(model, jax.random.key(0), (32, 32, 3), tx)
    state.params, state.batch_stats, state.nac_stats, state.ema_params
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from amla_jax.nn import init_variables
from amla_jax.train.compile_options import CLASSIC_EMITTERS, compile_lowered
from amla_jax.train.host_prng import host_key


class TrainState(train_state.TrainState):
    """Flax's TrainState plus BatchNorm statistics, NAC statistics and the weight EMA."""

    batch_stats: Any = None
    nac_stats: Any = None
    ema_params: Any = None


# The initialisation runs once per network, so it is compiled at XLA's -O0: seconds less
# to compile than at -O1, and its run time does not matter. (Not the BatchNorm calibration
# step: it runs a forward pass per calibration batch, which -O0 would slow on big networks.)
# XLA:CPU's classic fusion emitters compile faster (`amla_jax.train.compile_options`).
_RUN_ONCE = {"xla_backend_optimization_level": 0, **CLASSIC_EMITTERS}


def create_train_state(
    model, key: jax.Array, input_shape: tuple[int, ...], tx: optax.GradientTransformation
) -> TrainState:
    """Initialises parameters, optimiser state, statistics and the EMA from ``key``.

    The initialisation is one jitted program, compiled at -O0: run eagerly, each of its
    hundreds of small ops would be compiled on its own, which took longer than compiling
    the train step.

    Args:
      model: a Flax module from `build_model`.
      key: the initialisation key; its data seed the host's Philox
        (`amla_jax.train.host_prng`), which draws every initial value.
      input_shape: one image's shape (height, width, channels).
      tx: the optimiser (`amla_jax.optim.make_optimizer`).

    Returns:
      A `TrainState` at step 0 whose EMA weights equal its parameters.
    """

    return run_initialisation(lower_initialisation(model, key, input_shape, tx), key)


def lower_initialisation(
    model, key: jax.Array, input_shape: tuple[int, ...], tx: optax.GradientTransformation
) -> jax.stages.Lowered:
    """`create_train_state`'s initialisation traced and lowered, not yet compiled: its
    ``out_info`` (the state's shapes and dtypes) is enough to compile the steps while
    `run_initialisation` compiles it."""
    return jax.jit(_init_fn(model, input_shape, tx)).lower(key)


def run_initialisation(lowered: jax.stages.Lowered, key: jax.Array) -> TrainState:
    """Compiles a `lower_initialisation` result (at -O0) and runs it on ``key``."""
    return compile_lowered(lowered, _RUN_ONCE)(key)


def _init_fn(model, input_shape: tuple[int, ...], tx: optax.GradientTransformation):
    def init(key):
        # Drawn on the host: Threefry compiled per parameter cost seconds (host_prng).
        variables = init_variables(model, host_key(key), input_shape)
        params = variables["params"]
        return TrainState.create(
            apply_fn=model.apply,
            params=params,
            tx=tx,
            batch_stats=variables.get("batch_stats", {}),
            nac_stats=variables.get("nac_stats", {}),
            ema_params=jax.tree_util.tree_map(jnp.copy, params),
        )

    return init


def model_variables(state: TrainState, params=None) -> dict:
    """The variables ``state.apply_fn`` takes: ``params`` (default: the state's own)
    with the state's BatchNorm and NAC statistics."""
    return {
        "params": state.params if params is None else params,
        "batch_stats": state.batch_stats,
        "nac_stats": state.nac_stats,
    }
