"""BatchNorm recalibration: population statistics of the evaluated weights before evaluation.

Short trainings (a search trains many networks for a few hundred steps) leave the running
averages dominated by their initial values and by early weights; evaluating with them
gives near-chance accuracy however well the network trains. `recalibrate_batch_norm`
replaces them with the average over a few training batches.

Synopsis::

    from amla_jax.train import make_calibration_step, recalibrate_batch_norm
    calibrate = make_calibration_step(optim)
    state = recalibrate_batch_norm(state, calibrate, batches, jax.random.key(2))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import jax
import jax.numpy as jnp

from amla_jax import faults
from amla_jax.config import OptimConfig
from amla_jax.train.state import TrainState


def calibration_step(state: TrainState, batch, key, stats, *, use_ema: bool):
    """The BatchNorm running statistics after one training-mode forward pass of the
    evaluated weights over ``batch``, starting from ``stats`` (see `recalibrate_batch_norm`)."""
    params = state.ema_params if use_ema else state.params
    variables = {"params": params, "batch_stats": stats, "nac_stats": state.nac_stats}
    _, updates = state.apply_fn(
        variables,
        batch["image"],
        train=True,
        rngs={"dropout": key},
        mutable=["batch_stats", "nac_stats"],
    )
    return updates["batch_stats"]


def make_calibration_step(optim: OptimConfig) -> Callable:
    """``calibrate(state, batch, key, stats) -> stats``, jitted, for the weights that
    are evaluated (the EMA weights where ``optim`` keeps an EMA)."""
    return jax.jit(partial(calibration_step, use_ema=optim.ema_decay > 0))


# A running statistic fed in as 2**20 comes out as m * 2**20 + (1 - m) * batch: the
# difference from the zero-fed output recovers each BatchNorm's momentum m exactly enough.
_PROBE = float(2**20)


def recalibrate_batch_norm(
    state: TrainState, calibrate: Callable, batches: Iterable[dict], key
) -> TrainState:
    """Replaces the BatchNorm running averages with the population statistics of the
    weights that are evaluated (the EMA weights where there is an EMA), averaged over
    ``batches`` of training data.

    Each BatchNorm updates ``m * running + (1 - m) * batch``; feeding zeros yields
    ``(1 - m) * batch`` and one probe with a large constant yields ``m``, so no module
    needs to expose its momentum.

    Args:
      state: the trained state (not changed).
      calibrate: ``calibrate(state, batch, key, stats) -> stats`` (`make_calibration_step`).
      batches: training batches, already placed on the devices.
      key: dropout key; batch ``i`` uses ``fold_in(key, i)``.

    Returns:
      ``state`` with new ``batch_stats`` (``state`` itself without BatchNorm or batches).
    """
    stats = state.batch_stats
    if not jax.tree_util.tree_leaves(stats):
        return state
    zeros = jax.tree_util.tree_map(jnp.zeros_like, stats)
    probe = jax.tree_util.tree_map(lambda x: jnp.full_like(x, _PROBE), stats)
    total, count, momentum = None, 0, None
    for i, batch in enumerate(batches):
        batch_key = jax.random.fold_in(key, i)
        part = calibrate(state, batch, batch_key, zeros)
        if momentum is None:
            probed = calibrate(state, batch, batch_key, probe)
            momentum = jax.tree_util.tree_map(lambda p, z: (p - z) / _PROBE, probed, part)
        total = part if total is None else jax.tree_util.tree_map(jnp.add, total, part)
        count += 1
        faults.point("calibrate")
    if count == 0:
        return state

    def population(old, summed, m):
        rate = 1.0 - m
        return jnp.where(rate > 1e-6, summed / (count * jnp.maximum(rate, 1e-6)), old)

    return state.replace(batch_stats=jax.tree_util.tree_map(population, stats, total, momentum))
