"""Optimisers, learning-rate schedules, per-tensor clipping and step counts (amla_jax.optim)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from amla_jax.config import OptimConfig
from amla_jax.errors import UserError
from amla_jax.optim import (
    ConfigError,
    clip_by_tensor_norm,
    make_optimizer,
    make_schedule,
    steps_for,
)


def rates(schedule, steps) -> list[float]:
    return [float(schedule(s)) for s in steps]


def test_constant_schedule_keeps_the_rate():
    schedule = make_schedule(OptimConfig(schedule="constant", learning_rate=0.04), 10, 100)
    assert rates(schedule, (0, 50, 99)) == pytest.approx([0.04, 0.04, 0.04])


def test_staircase_exponential_decays_once_per_period():
    cfg = OptimConfig(schedule="exponential", learning_rate=0.04, decay_rate=0.5, decay_epochs=1)
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert rates(schedule, (0, 9, 10, 25)) == pytest.approx([0.04, 0.04, 0.02, 0.01])


def test_smooth_exponential_decays_every_step():
    cfg = OptimConfig(
        schedule="exponential", learning_rate=0.04, decay_rate=0.5, decay_epochs=1, staircase=False
    )
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert rates(schedule, (5, 10)) == pytest.approx([0.04 * 0.5**0.5, 0.02])


def test_cosine_decays_to_the_floor():
    cfg = OptimConfig(schedule="cosine", learning_rate=1.0, min_learning_rate=0.1)
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert rates(schedule, (0, 50, 100)) == pytest.approx([1.0, 0.55, 0.1])


def test_sgdr_restarts_on_integer_epochs():
    cfg = OptimConfig(
        schedule="sgdr", learning_rate=0.05, min_learning_rate=0.001, sgdr_t0=2, sgdr_t_mul=2
    )
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=200)
    lrs = rates(schedule, range(0, 200, 10))
    assert lrs[0] == pytest.approx(0.05) and lrs[2] == pytest.approx(0.05)  # restart at 2
    assert lrs[1] == pytest.approx(0.001 + 0.5 * 0.049 * (1 + np.cos(np.pi / 2)))
    assert lrs[3] == pytest.approx(0.001 + 0.5 * 0.049 * (1 + np.cos(np.pi / 4)))
    assert lrs[6] == pytest.approx(0.05)  # next restart after 2 + 4 epochs
    assert float(schedule(15)) == lrs[1]  # constant within an epoch


def test_warmup_ramps_linearly_then_hands_over():
    cfg = OptimConfig(schedule="constant", learning_rate=0.1, warmup_epochs=1)
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert rates(schedule, (0, 5, 10, 50)) == pytest.approx([0.0, 0.05, 0.1, 0.1])


def test_unknown_schedule_and_optimizer_are_user_errors():
    with pytest.raises(ConfigError, match="optim.schedule: unknown 'linear'; valid: constant"):
        make_schedule(OptimConfig(schedule="linear"), 10, 100)
    with pytest.raises(ConfigError, match="optim.optimizer: unknown 'lion'; valid: sgd"):
        make_optimizer(OptimConfig(optimizer="lion"), 5, 10)
    assert issubclass(ConfigError, UserError)


def test_clipping_is_per_tensor():
    tx = clip_by_tensor_norm(1.0)
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
    clipped, _ = tx.update(grads, tx.init(grads))
    np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [0.3, 0.4], rtol=1e-6)


def sgd_update(cfg: OptimConfig, grads: dict) -> dict:
    tx = make_optimizer(cfg, steps_per_epoch=5, total_steps=10)
    params = {k: jnp.zeros_like(v) for k, v in grads.items()}
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_optimizer_clips_each_tensor_before_the_update():
    grads = {"a": jnp.array([30.0, 40.0]), "b": jnp.array([0.3, 0.4])}
    cfg = OptimConfig(optimizer="sgd", learning_rate=0.1, clip_norm=5.0)
    updates = sgd_update(cfg, grads)
    np.testing.assert_allclose(updates["a"], [-0.3, -0.4], rtol=1e-6)  # norm 50 -> 5
    np.testing.assert_allclose(updates["b"], [-0.03, -0.04], rtol=1e-6)  # untouched
    unclipped = sgd_update(OptimConfig(optimizer="sgd", learning_rate=0.1, clip_norm=None), grads)
    np.testing.assert_allclose(unclipped["a"], [-3.0, -4.0], rtol=1e-6)


def test_global_clip_scales_the_whole_gradient():
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([0.0, 4.0])}  # global norm 5
    cfg = OptimConfig(optimizer="sgd", learning_rate=1.0, clip_norm=None, global_clip_norm=1.0)
    updates = sgd_update(cfg, grads)
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [0.0, -0.8], rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_every_optimizer_steps_downhill(name):
    updates = sgd_update(OptimConfig(optimizer=name, clip_norm=None), {"w": jnp.ones(3)})
    assert jnp.all(updates["w"] < 0)


def test_nesterov_and_plain_momentum_differ_as_optax_does():
    grads = {"w": jnp.ones(2)}
    plain = OptimConfig(optimizer="momentum", nesterov=False, clip_norm=None, learning_rate=0.1)
    nesterov = OptimConfig(optimizer="nesterov", clip_norm=None, learning_rate=0.1)
    np.testing.assert_allclose(sgd_update(plain, grads)["w"], [-0.1, -0.1], rtol=1e-6)
    # Nesterov's first step looks ahead: lr * (1 + momentum) * g
    np.testing.assert_allclose(sgd_update(nesterov, grads)["w"], [-0.19, -0.19], rtol=1e-6)


def test_adamw_decays_weights_adam_does_not():
    params, grads = {"w": jnp.full(2, 2.0)}, {"w": jnp.zeros(2)}

    def update(cfg):
        tx = make_optimizer(cfg, 5, 10)
        return tx.update(grads, tx.init(params), params)[0]["w"]

    base = dict(learning_rate=0.1, clip_norm=None)
    np.testing.assert_allclose(update(OptimConfig(optimizer="adam", **base)), [0.0, 0.0])
    decayed = update(OptimConfig(optimizer="adamw", weight_decay=0.5, **base))
    np.testing.assert_allclose(decayed, [-0.1, -0.1], rtol=1e-6)  # -lr * wd * w


def test_steps_for_converts_epochs_or_keeps_steps():
    assert steps_for(epochs=0.0, steps=123, num_train=1000, batch_size=50) == 123
    assert steps_for(epochs=1.0, steps=123, num_train=1000, batch_size=50) == 20
    assert steps_for(epochs=0.5, steps=123, num_train=1000, batch_size=64) == 8  # ceil(7.8)
    assert steps_for(epochs=1e-6, steps=123, num_train=10, batch_size=50) == 1
