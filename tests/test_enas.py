"""ENAS (amla_jax.oneshot.enas, amla_jax.algos.enas) on tiny cases: the controller over
the real spaces, the method over the one-shot tests' toy supernet."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oneshot_toy import make_toy_supernet
from test_cli import amla

from amla_jax.algos.enas import EnasOptions
from amla_jax.data import DataConfig, load_dataset
from amla_jax.errors import UserError
from amla_jax.oneshot.enas import (
    EnasState,
    make_enas_method,
    make_space_controller,
    none_options,
)
from amla_jax.oneshot.loop import run_oneshot
from amla_jax.oneshot.records import TIMINGS
from amla_jax.rundir import read_candidates, read_epochs
from amla_jax.spaces import get_space
from amla_jax.spaces.base import check_arch

KEY = jax.random.key(0)


def toy_batch(key, n=16):
    images = jax.random.normal(key, (n, 4, 4, 1))
    return images, (images.sum((1, 2, 3)) > 0).astype(jnp.int32)


def sample_many(controller, params, n, key=KEY):
    return jax.vmap(controller.sample, (None, 0))(params, jax.random.split(key, n))


@pytest.mark.parametrize("name", ["nb201", "darts"])
@pytest.mark.parametrize("exclude_none", [True, False])
def test_samples_are_deterministic_valid_archs_and_respect_exclude_none(name, exclude_none):
    space = get_space(name)()
    controller = make_space_controller(space, EnasOptions(exclude_none=exclude_none))
    params = controller.init(KEY)
    archs, log_probs, _ = jax.jit(sample_many, static_argnums=(0, 2))(controller, params, 64)
    again, _, _ = sample_many(controller, params, 64)
    np.testing.assert_array_equal(archs, again)
    assert len({tuple(a) for a in np.asarray(archs).tolist()}) > 1  # the key matters
    for arch in np.asarray(archs):
        check_arch(name, space.choices, arch)
    none_picked = any(int(archs[:, d].tolist().count(o)) for d, o in none_options(space))
    assert none_picked is not exclude_none  # 64 samples: 'none' shows up unless masked
    assert np.all(np.asarray(log_probs) < 0)


def test_exclude_none_defaults_to_true_on_darts_only():
    for name, excluded in (("darts", True), ("nb201", False)):
        space = get_space(name)()
        controller = make_space_controller(space, EnasOptions())
        rows = jax.jit(controller.probabilities)(controller.init(KEY))
        assert all(bool(rows[d][o] == 0) is excluded for d, o in none_options(space))


def test_step_is_pure_and_traceable_and_trains_both_parts():
    supernet = make_toy_supernet()
    options = EnasOptions(controller_samples=2, controller_lr=0.01, controller_hidden=16)
    method = make_enas_method(options)
    batch_a, batch_b = toy_batch(jax.random.key(1)), toy_batch(jax.random.key(2))
    state = method.init(KEY, supernet, batch_a[0])
    assert isinstance(state, EnasState)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
    step = jax.jit(method.step)
    one, metrics = step(state, batch_a, batch_b, jax.random.key(3))
    two, metrics2 = step(state, batch_a, batch_b, jax.random.key(3))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(metrics) >= {"train/loss", "train/accuracy", "controller/reward"}
    assert int(one.step) == 1 and float(one.baseline) == float(metrics["controller/reward"])
    for before, after in ((state.params, one.params), (state.controller, one.controller)):
        assert any(
            np.any(a != b)
            for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
        )
    weights = method.eval_weights(one)
    assert weights["cell"].shape == (6, 5)
    rows = method.arch_weights(one)["probabilities"]
    assert len(rows) == 6 and all(abs(sum(r) - 1) < 1e-5 for r in rows)


def test_derive_returns_the_first_best_scoring_sample():
    supernet = make_toy_supernet()
    method = make_enas_method(EnasOptions(derive_samples=12, controller_hidden=16))
    state = method.init(KEY, supernet, toy_batch(KEY)[0])
    seen = []

    def score(weights):
        seen.append(supernet.derive(weights))
        return float(seen[-1].count(3) + seen[-1].count(4) > 2)  # ties on purpose

    arch = method.derive(state, jax.random.key(5), score)
    assert len(seen) == 12
    scores = [float(a.count(3) + a.count(4) > 2) for a in seen]
    assert arch == seen[scores.index(max(scores))]
    assert method.derive(state, jax.random.key(5), lambda w: 0.0) == seen[0]


def test_unknown_or_invalid_option_is_a_user_error():
    with pytest.raises(UserError, match="controller_sample: unknown for enas"):
        EnasOptions.from_config({"controller_sample": 2})
    with pytest.raises(UserError, match="derive_samples"):
        EnasOptions.from_config({"derive_samples": 0})
    with pytest.raises(UserError, match="exclude_none"):
        EnasOptions.from_config({"exclude_none": "yes"})


def enas_search(run_dir, epochs: int):
    options = EnasOptions(
        epochs=epochs, batch_size=64, eval_batch_size=128, controller_hidden=16,
        controller_lr=0.01, derive_samples=3,
    )  # fmt: skip
    method = make_enas_method(dataclasses.replace(options, total_steps=30))
    dataset = load_dataset(DataConfig(name="digits"))
    return run_oneshot(method, make_toy_supernet(), dataset, options, run_dir, KEY, console=False)


def without_timings(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


@pytest.mark.slow  # three short searches on digits (about a minute on 2 busy cores)
def test_the_loop_records_enas_per_epoch_and_resumes_identically(tmp_path):
    enas_search(tmp_path / "straight", 2)
    enas_search(tmp_path / "resumed", 1)
    enas_search(tmp_path / "resumed", 2)
    rows = read_epochs(tmp_path / "straight")
    assert [r["epoch"] for r in rows] == [0, 1]
    probabilities = rows[-1]["arch_weights"]["probabilities"]
    assert np.asarray(probabilities).shape == (6, 5)
    assert {"controller/reward", "controller/entropy"} <= set(rows[-1]["metrics"])
    assert without_timings(read_epochs(tmp_path / "resumed")) == without_timings(rows)


@pytest.mark.slow  # one compile of the NB201 supernet's step (under a minute on 2 cores)
def test_algo_enas_runs_end_to_end_on_digits(tmp_path):
    proc = amla(
        "algo=enas", "search_space=nb201", "dataset=digits", "algo.options.epochs=2",
        "algo.options.derive_samples=2", f"hydra.run.dir={tmp_path}", timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_epochs(tmp_path)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[-1]["algorithm"] == "enas"
    assert np.asarray(rows[-1]["arch_weights"]["probabilities"]).shape == (6, 5)
    assert 0 <= rows[-1]["metrics"]["validation/accuracy"] <= 1
    (candidate,) = read_candidates(tmp_path / "candidates.jsonl")
    assert candidate["spec"]["arch"]["type"] == "nb201"
    assert (tmp_path / "best_spec.json").is_file()
