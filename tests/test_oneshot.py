"""Contract tests over every one-shot algorithm in the registry (a `OneShotAlgorithm`'s
method on a toy supernet), and the one-shot loop's run directory, resume and replay."""

import copy
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fakes import template_spec
from oneshot_toy import make_toy_supernet

from amla_jax.algos import ALGORITHMS, OneShotAlgorithm, get_algorithm
from amla_jax.algos.oneshot import DartsOptions
from amla_jax.config import AlgoConfig
from amla_jax.data import DataConfig, load_dataset
from amla_jax.errors import UserError
from amla_jax.oneshot.base import OneShotMethod
from amla_jax.oneshot.loop import run_oneshot
from amla_jax.oneshot.records import TIMINGS, checkpoint_manager, restore_state, save_state
from amla_jax.rundir import read_candidates, read_epochs

KEY = jax.random.key(3)
ONESHOT = sorted(
    n
    for n in ALGORITHMS
    if isinstance(get_algorithm(n)(AlgoConfig(n), template_spec()), OneShotAlgorithm)
)


def make(name: str, **options):
    algorithm = get_algorithm(name)(AlgoConfig(name, 1, options), None)
    return algorithm.make_method(20), make_toy_supernet()


def batches(i: int):
    keys = jax.random.split(jax.random.fold_in(KEY, i), 4)
    images = [jax.random.normal(k, (8, 8, 8, 1)) for k in keys[:2]]
    labels = [jax.random.randint(k, (8,), 0, 10) for k in keys[2:]]
    return (images[0], labels[0]), (images[1], labels[1])


def started(method, supernet, steps: int = 1):
    state = method.init(KEY, supernet, jnp.zeros((8, 8, 8, 1)))
    step = jax.jit(method.step)
    for i in range(steps):
        state, _ = step(state, *batches(i), jax.random.fold_in(KEY, 100 + i))
    return state, step


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_oneshot_entries_are_found():
    assert ONESHOT == ["darts", "enas"]


@pytest.mark.parametrize("name", ONESHOT)
def test_init_and_step_are_pure(name):
    method, supernet = make(name)
    assert isinstance(method, OneShotMethod) and method.name == name
    state, step = started(method, supernet)
    assert isinstance(state, tuple) and hasattr(state, "_fields")  # a NamedTuple
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))
    assert_same(
        method.init(KEY, supernet, jnp.zeros((8, 8, 8, 1))),
        method.init(KEY, supernet, jnp.zeros((8, 8, 8, 1))),
    )
    frozen = copy.deepcopy(jax.device_get(state))
    key = jax.random.key(9)
    next_a, metrics_a = step(state, *batches(5), key)
    next_b, metrics_b = step(state, *batches(5), key)
    assert_same(next_a, next_b)
    assert_same(metrics_a, metrics_b)
    assert_same(state, frozen)  # nothing was mutated
    assert {"train/loss", "train/accuracy"} <= set(metrics_a)
    assert all(np.shape(v) == () for v in metrics_a.values())


@pytest.mark.parametrize("name", ONESHOT)
def test_views_of_the_state(name):
    method, supernet = make(name)
    state, _ = started(method, supernet)
    weights = method.eval_weights(state)
    assert {k: tuple(v.shape) for k, v in weights.items()} == dict(supernet.alpha_shapes)
    json.dumps(method.arch_weights(state))
    arch = method.derive(state, KEY, lambda w: 0.5)
    assert len(arch) == len(supernet.space.choices)
    assert all(0 <= a < n for a, n in zip(arch, supernet.space.choices, strict=True))


@pytest.mark.parametrize("name", ONESHOT)
def test_state_survives_orbax_and_continues_identically(name, tmp_path):
    method, supernet = make(name)
    state, step = started(method, supernet, steps=2)
    with checkpoint_manager(tmp_path / "search") as manager:
        save_state(manager, 1, name, state)
    like = method.init(KEY, supernet, jnp.zeros((8, 8, 8, 1)))
    with checkpoint_manager(tmp_path / "search") as manager:
        restored, epochs = restore_state(manager, name, like)
        with pytest.raises(UserError, match="holds a"):
            restore_state(manager, "other", like)
    assert epochs == 1 and type(restored) is type(state)
    assert_same(restored, state)
    for i in range(2, 4):
        key = jax.random.fold_in(KEY, 100 + i)
        state, _ = step(state, *batches(i), key)
        restored, _ = step(restored, *batches(i), key)
        assert_same(restored, state)


def test_darts_options_are_checked_at_the_edge():
    with pytest.raises(UserError, match=r"^algo.options.order: 3; it must be 1 or 2$"):
        DartsOptions.from_config({"order": 3})
    with pytest.raises(UserError, match="algo.options.epoch: unknown for darts; valid: space"):
        DartsOptions.from_config({"epoch": 3})
    with pytest.raises(UserError, match="algo.options.w_lr: 'x' is out of range"):
        DartsOptions.from_config({"w_lr": "x"})
    with pytest.raises(UserError, match="algo.options.supernet.width: unknown size"):
        get_algorithm("darts")(AlgoConfig("darts", 1, {"supernet": {"width": 3}}), None)
    assert DartsOptions.from_config({}).w_lr == 0.025  # the paper's recipe by default


# --- the loop, on the toy supernet and digits ------------------------------------------


def search(run_dir, epochs: int):
    options = DartsOptions(epochs=epochs, batch_size=64, eval_batch_size=128)
    method = get_algorithm("darts")(AlgoConfig("darts"), None).make_method(30)
    dataset = load_dataset(DataConfig(name="digits"))
    return run_oneshot(method, make_toy_supernet(), dataset, options, run_dir, KEY, console=False)


def without_timings(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    search(run_dir, 3)
    return run_dir


def test_a_search_writes_a_row_per_epoch_and_one_candidate(reference):
    rows = read_epochs(reference)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    metrics = rows[-1]["metrics"]
    for key in (
        "train/loss",
        "train/accuracy",
        "supernet/validation/accuracy",
        "validation/accuracy",
    ):
        assert 0 <= metrics[key] < 10
    assert "table/baseline_accuracy" in metrics or True  # present where the extra is installed
    assert np.asarray(rows[-1]["arch_weights"]["cell"]).shape == (6, 5)
    assert rows[0]["compile_seconds"] > 0 and rows[1]["compile_seconds"] == 0
    assert rows[0]["steps"] == (load_dataset(DataConfig(name="digits")).info.num_train // 2) // 64
    candidates = read_candidates(reference / "candidates.jsonl")
    assert len(candidates) == 1 and candidates[0]["metrics"] == metrics
    assert candidates[0]["spec"]["arch"]["type"] == "nb201" and candidates[0]["num_params"] > 0
    assert (reference / "spec.json").exists() and (reference / "best_spec.json").exists()


def test_a_resumed_search_equals_an_uninterrupted_one(reference, tmp_path):
    search(tmp_path, 1)  # stopped after one epoch, as a kill after its checkpoint would
    outcome = search(tmp_path, 3)
    assert without_timings(read_epochs(tmp_path)) == without_timings(read_epochs(reference))
    assert (tmp_path / "best_spec.json").read_text() == (reference / "best_spec.json").read_text()
    assert outcome.best_spec.to_json() == read_candidates(reference / "candidates.jsonl")[0]["spec"]


def test_a_row_beyond_the_checkpoint_is_recomputed_checked_and_kept(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    shutil.rmtree(run_dir / "search" / "3")  # a crash between epoch 2's row and checkpoint
    (run_dir / "candidates.jsonl").unlink()
    before = (run_dir / "epochs.jsonl").read_text()
    with open(run_dir / "epochs.jsonl", "a") as f:
        f.write('{"epoch": 3, "arc')  # and a half-written line
    search(run_dir, 3)
    assert (run_dir / "epochs.jsonl").read_text() == before  # the row was kept, not rewritten
    assert (run_dir / "search" / "3").exists()
    rows = read_epochs(run_dir)
    rows[2]["metrics"]["train/loss"] += 1.0  # a row the checkpoint cannot reproduce
    (run_dir / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.rmtree(run_dir / "search" / "3")
    with pytest.raises(UserError, match="epoch 2's row differs"):
        search(run_dir, 3)


def test_the_report_draws_the_derived_arch_per_epoch(reference, tmp_path):
    from amla_jax.plots.oneshot import skip_fraction
    from amla_jax.report import write_report

    assert (
        skip_fraction(
            "|skip_connect~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|"
        )
        == 0.5
    )
    genotype = "normal=[('skip_connect', 0), ('sep_conv_3x3', 1)] reduce=[('max_pool_3x3', 0)]"
    assert skip_fraction(genotype) == pytest.approx(1 / 3)
    report = write_report([reference], tmp_path / "report")
    assert (tmp_path / "report" / "oneshot_epochs.png").stat().st_size > 0
    assert "![oneshot_epochs](oneshot_epochs.png)" in report.read_text()


def test_a_darts_space_answer_can_be_built_on_digits():
    # The derived DARTS-space network (darts_v2 with an aux head) on 8x8 digits has 2x2
    # maps at its aux head; it used to fail to build (a 0x0 conv).
    from amla_jax.nn import count_params
    from amla_jax.spaces import get_space

    space = get_space("darts")(channels=8, num_normal=1)
    spec = space.to_spec(space.sample(KEY), None)
    assert count_params(spec, (8, 8, 1), num_classes=10) > 0
