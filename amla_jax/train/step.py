"""The train step: loss, gradients, optimiser update and weight EMA, jitted over a data mesh.

`make_train_step` returns ``train_step(state, batch, key) -> (state, metrics)``, jitted
with the state donated. Per-step randomness (dropout, drop-path) comes from
``fold_in(key, state.step)``, so one key serves a whole training. Batches are sharded
over every local device along a ``data`` mesh axis (``jax.jit`` + ``NamedSharding``);
the state is replicated. NAC's statistics (MeanSSS per branch) are accumulated as a
mutable collection inside the step.

Synopsis::

    from amla_jax.train import create_train_state, data_mesh, make_train_step, shard_batch
    train_step = make_train_step(optim, num_classes=10, steps_per_epoch=100, total_steps=500)
    state = create_train_state(model, jax.random.key(0), (32, 32, 3), tx)
    state, metrics = train_step(state, shard_batch(batch, data_mesh()), jax.random.key(1))
    metrics["train/loss"], metrics["train/accuracy"], metrics["train/learning_rate"]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from amla_jax.config import OptimConfig
from amla_jax.optim import make_schedule
from amla_jax.train.state import TrainState, model_variables


def data_mesh() -> Mesh:
    """A one-axis mesh over every device of every process (`amla_jax.train.distributed`);
    batches are split along ``data``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """``batch``'s arrays placed on ``mesh``, split along their first (batch) axis.

    With several processes every process holds the same global batch and places only
    its own rows (those of its devices), so the global array is the one batch.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    if jax.process_count() == 1:
        return {k: jax.device_put(v, sharding) for k, v in batch.items()}
    return {k: _global_array(np.asarray(v), sharding) for k, v in batch.items()}


def _global_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global ``value`` from this process's part of it (each device's slice)."""
    index = sharding.addressable_devices_indices_map(value.shape)
    shards = [jax.device_put(value[index[d]], d) for d in sharding.addressable_devices]
    return jax.make_array_from_single_device_arrays(value.shape, sharding, shards)


def replicate(tree, mesh: Mesh):
    """``tree`` copied whole onto every device of ``mesh`` (every process passes the same)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree_util.tree_map(lambda x: _global_array(np.asarray(x), sharding), tree)


def replicated_shapes(tree, mesh: Mesh):
    """``tree``'s shapes and dtypes placed as `replicate` places its arrays (for compiling
    ahead of the arrays)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree
    )


def _loss_fn(
    params, state: TrainState, batch, key, optim: OptimConfig, drop_path_rate, num_classes: int
):
    (logits, aux_logits), updates = state.apply_fn(
        model_variables(state, params),
        batch["image"],
        train=True,
        drop_path_rate=drop_path_rate,
        rngs={"dropout": key},
        mutable=["batch_stats", "nac_stats"],
    )
    labels = optax.smooth_labels(jax.nn.one_hot(batch["label"], num_classes), optim.label_smoothing)
    ce = optax.softmax_cross_entropy(logits, labels).mean()
    loss = ce
    for aux in aux_logits:
        loss = loss + optim.aux_weight * optax.softmax_cross_entropy(aux, labels).mean()
    # AMLA's L2 is part of the loss (not decoupled decay), so it is clipped with the data
    # gradient, as in TF.
    if optim.l2:
        l2 = sum(jnp.sum(jnp.square(p)) for p in jax.tree_util.tree_leaves(params))
        loss = loss + optim.l2 * l2
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (
        updates,
        {"train/loss": loss, "train/cross_entropy": ce, "train/accuracy": accuracy},
    )


def train_step(
    state: TrainState,
    batch,
    key,
    *,
    optim: OptimConfig,
    num_classes: int,
    total_steps: int,
    schedule: optax.Schedule,
):
    """One optimiser step on ``batch`` (not jitted; see `make_train_step`).

    Returns:
      ``(new_state, metrics)`` with ``train/loss``, ``train/cross_entropy``,
      ``train/accuracy`` and ``train/learning_rate`` (the rate this step used).
    """
    key = jax.random.fold_in(key, state.step)
    drop_path_rate = optim.drop_path * state.step / max(total_steps, 1)
    grads, (updates, metrics) = jax.grad(_loss_fn, has_aux=True)(
        state.params, state, batch, key, optim, drop_path_rate, num_classes
    )
    new_state = state.apply_gradients(
        grads=grads, batch_stats=updates["batch_stats"], nac_stats=updates["nac_stats"]
    )
    if optim.ema_decay > 0:
        # TF's ExponentialMovingAverage with num_updates: the decay ramps up so that the
        # EMA of a short training is not dominated by the initial weights.
        step = state.step.astype(jnp.float32)
        decay = jnp.minimum(optim.ema_decay, (1.0 + step) / (10.0 + step))
        ema = optax.incremental_update(new_state.params, state.ema_params, 1.0 - decay)
        new_state = new_state.replace(ema_params=ema)
    metrics["train/learning_rate"] = schedule(state.step)
    return new_state, metrics


def make_train_step(
    optim: OptimConfig, num_classes: int, steps_per_epoch: int, total_steps: int
) -> Callable:
    """``train_step(state, batch, key) -> (state, metrics)``, jitted, the state donated.

    Args:
      optim: the recipe; the state's optimiser must be
        ``make_optimizer(optim, steps_per_epoch, total_steps)`` for the reported
        learning rate to be the one applied.
      num_classes: classes of the labels (one-hot width).
      steps_per_epoch: steps of one epoch (epoch-valued schedule settings).
      total_steps: the training length (drop-path ramp, schedule length).

    Returns:
      A `jax.jit` function; lower and compile it ahead of time with
      ``.lower(state, batch, key).compile()``, or call it directly. The state passed in
      is donated: use the returned one.
    """
    schedule = make_schedule(optim, steps_per_epoch, total_steps)
    step = partial(
        train_step,
        optim=optim,
        num_classes=num_classes,
        total_steps=total_steps,
        schedule=schedule,
    )
    return jax.jit(step, donate_argnums=0)
