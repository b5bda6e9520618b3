"""Training: determinism, data parallelism, the public train step, compiled-program reuse,
BatchNorm recalibration and NAC statistics (optimisers and schedules: test_optim.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT, TINY_NETWORK

from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.data import DataConfig, load_dataset
from amla_jax.nn import build_model, count_flops
from amla_jax.optim import clip_by_tensor_norm, make_optimizer
from amla_jax.train import (
    BatchSizeError,
    ProgramCache,
    TrainState,
    create_train_state,
    data_mesh,
    make_train_step,
    recalibrate_batch_norm,
    shard_batch,
    train_and_evaluate,
)

FAST = TrainConfig(steps=6, batch_size=16, eval_batch_size=64, log_every=3, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def test_same_seed_gives_identical_metrics_and_statistics(tiny_spec, digits):
    runs = [
        train_and_evaluate(tiny_spec, digits, OptimConfig(), FAST, jax.random.key(7))
        for _ in range(2)
    ]
    assert runs[0].metrics == runs[1].metrics
    assert runs[0].utilities == runs[1].utilities and runs[0].scalars == runs[1].scalars
    other = train_and_evaluate(tiny_spec, digits, OptimConfig(), FAST, jax.random.key(8))
    assert other.metrics != runs[0].metrics


def test_result_carries_amla_statistics_and_metrics(tiny_spec, digits, tmp_path):
    result = train_and_evaluate(
        tiny_spec,
        digits,
        OptimConfig(),
        FAST,
        jax.random.key(0),
        run_dir=tmp_path,
        prefix="candidate_0",
    )
    assert set(result.utilities) == {
        "Cell1/Branch1",
        "Cell1/Branch3",
        "Cell3/Branch2",
        "Cell3/Branch5",
    }
    assert all(v > 0 for v in result.utilities.values())
    assert set(result.scalars) == {3} and set(result.scalars[3]) == {1}
    for key in ("train/loss", "validation/accuracy", "test/accuracy", "test/top5"):
        assert key in result.metrics
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r] == [3, 6]
    assert any("test/accuracy" in r for r in rows)
    assert list((tmp_path / "tb" / "candidate_0").glob("events.out.tfevents.*"))


def test_make_train_step_trains_one_step_from_the_public_api(tiny_spec, digits):
    info = digits.info
    optim = OptimConfig()
    model = build_model(tiny_spec, info.num_classes)
    tx = make_optimizer(optim, steps_per_epoch=10, total_steps=10)
    state = create_train_state(model, jax.random.key(0), info.image_shape, tx)
    before = jax.device_get(state.params)
    mesh = data_mesh()
    batch = shard_batch(next(digits.train_batches(0, 16)), mesh)
    train_step = make_train_step(optim, info.num_classes, steps_per_epoch=10, total_steps=10)
    state, metrics = train_step(state, batch, jax.random.key(1))
    assert int(state.step) == 1
    assert np.isfinite(float(metrics["train/loss"]))
    assert float(metrics["train/learning_rate"]) == pytest.approx(optim.learning_rate)
    changed = jax.tree_util.tree_map(
        lambda a, b: bool(np.any(a != b)), before, jax.device_get(state.params)
    )
    assert all(jax.tree_util.tree_leaves(changed))  # every parameter moved


def test_the_train_step_is_amlas_recipe_written_out(tiny_spec, digits):
    # AMLA's recipe by hand (L2 in the loss, per-tensor clip, Nesterov momentum, the EMA's
    # ramped decay): the train step must give the same loss, weights and EMA weights.
    info, optim = digits.info, OptimConfig()
    model = build_model(tiny_spec, info.num_classes)
    tx = make_optimizer(optim, steps_per_epoch=10, total_steps=10)
    state = create_train_state(model, jax.random.key(0), info.image_shape, tx)
    batch = shard_batch(next(digits.train_batches(0, 16)), data_mesh())
    train_step = make_train_step(optim, info.num_classes, steps_per_epoch=10, total_steps=10)
    start = jax.device_get(state)
    new, metrics = train_step(state, batch, jax.random.key(1))

    leafwise = optax.chain(
        clip_by_tensor_norm(optim.clip_norm),
        optax.sgd(optim.learning_rate, momentum=optim.momentum, nesterov=True),
    )

    def loss_fn(params):
        (logits, _), _ = model.apply(
            {"params": params, "batch_stats": start.batch_stats, "nac_stats": start.nac_stats},
            batch["image"],
            train=True,
            rngs={"dropout": jax.random.fold_in(jax.random.key(1), 0)},
            mutable=["batch_stats", "nac_stats"],
        )
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        squares = sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))
        return ce + optim.l2 * squares

    loss, grads = jax.value_and_grad(loss_fn)(start.params)
    updates, _ = leafwise.update(grads, leafwise.init(start.params), start.params)
    params = optax.apply_updates(start.params, updates)
    ema = optax.incremental_update(params, start.ema_params, 1.0 - 1.0 / 10.0)
    assert float(metrics["train/loss"]) == pytest.approx(float(loss), rel=1e-5)
    for mine, theirs in ((new.params, params), (new.ema_params, ema)):
        for a, b in zip(
            jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_repeated_training_reuses_the_compiled_program(tiny_spec, digits):
    programs = ProgramCache()
    first = train_and_evaluate(
        tiny_spec, digits, OptimConfig(), FAST, jax.random.key(7), programs=programs
    )
    again = train_and_evaluate(
        tiny_spec, digits, OptimConfig(), FAST, jax.random.key(7), programs=programs
    )
    assert first.compile_seconds > 0 and again.compile_seconds == 0.0
    assert len(programs) == 1 and again.metrics == first.metrics
    other = train_and_evaluate(
        tiny_spec, digits, OptimConfig(ema_decay=0.0), FAST, jax.random.key(7), programs=programs
    )
    assert other.compile_seconds > 0 and len(programs) == 2


def test_result_is_frozen_and_carries_flops_when_asked(tiny_spec, digits):
    result = train_and_evaluate(
        tiny_spec, digits, OptimConfig(), FAST, jax.random.key(0), measure_flops=True
    )
    info = digits.info
    assert result.flops == count_flops(tiny_spec, info.image_shape, info.num_classes)
    assert result.flops > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.flops = 1.0


_TWO_DEVICE_SCRIPT = """
import json, jax
from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.data import DataConfig, load_dataset
from amla_jax.spec import NetworkSpec
from amla_jax.train import train_and_evaluate
spec = NetworkSpec.from_json(json.loads({network!r}))
train = TrainConfig(steps=4, batch_size=16, eval_batch_size=64, log_every=1, progress=False)
r = train_and_evaluate(spec, load_dataset(DataConfig(name="digits")), OptimConfig(), train,
                       jax.random.key(3))
print(json.dumps({{"devices": jax.local_device_count(), "metrics": r.metrics}}))
"""


def _run_on(devices: int) -> dict:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    script = _TWO_DEVICE_SCRIPT.format(network=json.dumps(TINY_NETWORK))
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_simulated_devices_give_the_same_losses_as_one():
    one, two = _run_on(1), _run_on(2)
    assert (one["devices"], two["devices"]) == (1, 2)
    assert one["metrics"].keys() == two["metrics"].keys()
    for key, value in one["metrics"].items():
        assert two["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_batch_must_divide_over_devices(tiny_spec, digits, monkeypatch):
    device = jax.devices()[0]  # the mesh spans every process's devices: jax.devices()
    monkeypatch.setattr(jax, "devices", lambda *args: [device] * 3)
    with pytest.raises(BatchSizeError, match="train.batch_size"):
        train_and_evaluate(tiny_spec, digits, OptimConfig(), FAST, jax.random.key(0))


@pytest.mark.parametrize("momentum", [0.9, 0.99, 0.9997])
def test_recalibrate_batch_norm_gives_population_statistics(momentum):
    import flax.linen as nn  # noqa: PLC0415

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            return nn.BatchNorm(use_running_average=not train, momentum=momentum)(x), ()

    model = Net()
    batches = [
        {"image": 3.0 + 2.0 * jax.random.normal(jax.random.key(i), (64, 5))} for i in range(4)
    ]
    variables = model.init(jax.random.key(0), batches[0]["image"], train=True)
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=make_optimizer(OptimConfig(), 1, 1),
        batch_stats=variables["batch_stats"],
        nac_stats={},
        ema_params=variables["params"],
    )

    def calibrate(s, batch, key, stats):
        _, updates = s.apply_fn(
            {"params": s.params, "batch_stats": stats},
            batch["image"],
            train=True,
            mutable=["batch_stats"],
        )
        return updates["batch_stats"]

    new = recalibrate_batch_norm(state, jax.jit(calibrate), iter(batches), jax.random.key(1))
    images = np.stack([np.asarray(b["image"]) for b in batches])
    stats = new.batch_stats["BatchNorm_0"]
    np.testing.assert_allclose(stats["mean"], images.mean(axis=1).mean(0), rtol=2e-3)
    np.testing.assert_allclose(stats["var"], images.var(axis=1).mean(0), rtol=2e-3)
    assert state.batch_stats["BatchNorm_0"]["mean"].sum() == 0  # the input is not changed
