"""Training: determinism, data parallelism, schedules, clipping and NAC statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, TINY_NETWORK

from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.data import DataConfig, load_dataset
from amla_jax.optim import ConfigError, clip_by_tensor_norm, make_optimizer, make_schedule
from amla_jax.train import train_and_evaluate

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
    monkeypatch.setattr(jax, "local_devices", lambda: [jax.devices()[0]] * 3)
    with pytest.raises(ValueError, match="train.batch_size"):
        train_and_evaluate(tiny_spec, digits, OptimConfig(), FAST, jax.random.key(0))


def test_sgdr_restarts_on_integer_epochs():
    cfg = OptimConfig(
        schedule="sgdr", learning_rate=0.05, min_learning_rate=0.001, sgdr_t0=2, sgdr_t_mul=2
    )
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=200)
    lrs = [float(schedule(s)) for s in range(0, 200, 10)]
    assert lrs[0] == pytest.approx(0.05) and lrs[2] == pytest.approx(0.05)  # restart at 2
    assert lrs[1] == pytest.approx(0.001 + 0.5 * 0.049 * (1 + np.cos(np.pi / 2)))
    assert lrs[6] == pytest.approx(0.05)  # next restart after 2 + 4 epochs
    assert float(schedule(15)) == lrs[1]  # constant within an epoch


def test_staircase_exponential_and_cosine_schedules():
    cfg = OptimConfig(schedule="exponential", learning_rate=0.04, decay_rate=0.5, decay_epochs=1)
    schedule = make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert [float(schedule(s)) for s in (0, 9, 10, 25)] == pytest.approx([0.04, 0.04, 0.02, 0.01])
    cosine = make_schedule(OptimConfig(schedule="cosine", learning_rate=1.0), 10, 100)
    assert float(cosine(50)) == pytest.approx(0.5) and float(cosine(100)) == pytest.approx(0)
    with pytest.raises(ConfigError, match="optim.schedule"):
        make_schedule(OptimConfig(schedule="linear"), 10, 100)


def test_clipping_is_per_tensor():
    tx = clip_by_tensor_norm(1.0)
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
    clipped, _ = tx.update(grads, tx.init(grads))
    np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [0.3, 0.4], rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_every_optimizer_builds_and_steps(name):
    tx = make_optimizer(OptimConfig(optimizer=name), steps_per_epoch=5, total_steps=10)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    assert jnp.all(updates["w"] < 0)
    with pytest.raises(ConfigError, match="optim.optimizer"):
        make_optimizer(OptimConfig(optimizer="lion"), 5, 10)


@pytest.mark.parametrize("momentum", [0.9, 0.99, 0.9997])
def test_recalibrate_batch_norm_gives_population_statistics(momentum):
    import flax.linen as nn  # noqa: PLC0415

    from amla_jax.train import TrainState, recalibrate_batch_norm  # noqa: PLC0415

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
