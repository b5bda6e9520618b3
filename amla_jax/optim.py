"""Optimisers, learning-rate schedules and gradient clipping from an `OptimConfig`.

Everything is Optax; the one transformation written here is AMLA's per-tensor
clip-by-norm (TF's ``clip_by_norm`` applied to each gradient separately), which Optax
does not ship.

Synopsis::

    from amla_jax.optim import make_optimizer, make_schedule
    schedule = make_schedule(cfg.optim, steps_per_epoch=1000, total_steps=50_000)
    tx = make_optimizer(cfg.optim, steps_per_epoch=1000, total_steps=50_000)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from amla_jax.config import ConfigError, OptimConfig


def clip_by_tensor_norm(max_norm: float) -> optax.GradientTransformation:
    """Scales each gradient tensor separately so that its L2 norm is at most ``max_norm``."""

    def update_fn(updates, state, params=None):
        del params

        def clip(g):
            norm = jnp.sqrt(jnp.sum(jnp.square(g)))
            return g * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))

        return jax.tree_util.tree_map(clip, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def _sgdr(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """SGDR with an integer epoch counter, as AMLA computes it (amla_spec.md A.13):
    lr = min + ½(max − min)(1 + cos(π·T_cur/T_i)); T_i *= T_mul at each restart."""
    boundaries, periods, start, period = [], [], 0.0, cfg.sgdr_t0
    total_epochs = total_steps / max(steps_per_epoch, 1)
    while start < total_epochs:
        periods.append(period)
        start += period
        boundaries.append(start)
        period *= cfg.sgdr_t_mul
    starts = jnp.asarray([0.0] + boundaries[:-1])
    lengths = jnp.asarray(periods)
    low, high = cfg.min_learning_rate, cfg.learning_rate

    def schedule(count):
        epoch = jnp.floor(count / steps_per_epoch)
        cycle = jnp.clip(
            jnp.searchsorted(jnp.asarray(boundaries), epoch, side="right"), 0, len(periods) - 1
        )
        t_cur = epoch - starts[cycle]
        return low + 0.5 * (high - low) * (1.0 + jnp.cos(jnp.pi * t_cur / lengths[cycle]))

    return schedule


def make_schedule(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """The learning-rate schedule named by ``cfg.schedule`` (with optional warm-up)."""
    lr = cfg.learning_rate
    total_steps = max(total_steps, 1)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    builders: dict[str, Callable[[], optax.Schedule]] = {
        "constant": lambda: optax.constant_schedule(lr),
        "exponential": lambda: optax.exponential_decay(
            lr,
            max(1, int(round(cfg.decay_epochs * steps_per_epoch))),
            cfg.decay_rate,
            staircase=cfg.staircase,
        ),
        "cosine": lambda: optax.cosine_decay_schedule(
            lr, max(1, total_steps - warmup), alpha=cfg.min_learning_rate / lr if lr else 0.0
        ),
        "sgdr": lambda: _sgdr(cfg, steps_per_epoch, total_steps),
    }
    if cfg.schedule not in builders:
        raise ConfigError(f"optim.schedule: unknown {cfg.schedule!r}; valid: {', '.join(builders)}")
    schedule = builders[cfg.schedule]()
    if warmup > 0:
        ramp = optax.linear_schedule(0.0, lr, warmup)
        schedule = optax.join_schedules([ramp, schedule], [warmup])
    return schedule


def make_optimizer(
    cfg: OptimConfig, steps_per_epoch: int, total_steps: int
) -> optax.GradientTransformation:
    """Clipping → optimiser with the schedule, as named in ``cfg``.

    L2 regularisation is not here: AMLA adds ``l2 · Σ v²`` to the loss (see `amla_jax.train.step`), so
    it is clipped along with the data gradient, as in TF.
    """
    schedule = make_schedule(cfg, steps_per_epoch, total_steps)
    optimizers: dict[str, Callable[[], optax.GradientTransformation]] = {
        "sgd": lambda: optax.sgd(schedule),
        "momentum": lambda: optax.sgd(schedule, momentum=cfg.momentum, nesterov=cfg.nesterov),
        "nesterov": lambda: optax.sgd(schedule, momentum=cfg.momentum, nesterov=True),
        "adam": lambda: optax.adam(schedule, b1=cfg.b1, b2=cfg.b2),
        "adamw": lambda: optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay),
    }
    if cfg.optimizer not in optimizers:
        raise ConfigError(
            f"optim.optimizer: unknown {cfg.optimizer!r}; valid: {', '.join(optimizers)}"
        )
    chain = []
    if cfg.clip_norm:
        chain.append(clip_by_tensor_norm(cfg.clip_norm))
    if cfg.global_clip_norm:
        chain.append(optax.clip_by_global_norm(cfg.global_clip_norm))
    chain.append(optimizers[cfg.optimizer]())
    return optax.chain(*chain)


def steps_for(epochs: float, steps: int, num_train: int, batch_size: int) -> int:
    """Training steps: ``epochs`` converted with the dataset size when set, else ``steps``."""
    if epochs > 0:
        return max(1, math.ceil(epochs * num_train / batch_size))
    return steps
