"""Contract tests run over every registered algorithm (amla_jax.algos.ALGORITHMS)."""

import copy
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from fakes import fake_evaluate, template_spec

from amla_jax.algos import ALGORITHMS, Algorithm, AlgorithmError, get_algorithm
from amla_jax.config import AlgoConfig
from amla_jax.errors import UserError
from amla_jax.search import checkpoint_manager, restore_search_state, save_search_state
from amla_jax.spec import NetworkSpec

ITERATIONS = 3
KEY = jax.random.key(7)
# The specs `ask` returned for nac, nac_worst and random before the package moved
# (3 iterations, the search loop's keys from KEY, the fake evaluator): the move must
# not change a single network.
GOLDEN = Path(__file__).parent / "golden" / "algo_specs.json"


def make(name: str, iterations: int = ITERATIONS):
    return get_algorithm(name)(AlgoConfig(name, iterations, {}), template_spec())


# The ask/tell algorithms; the one-shot ones (OneShotAlgorithm) have their own contract
# tests in test_oneshot.py.
ASK_TELL = sorted(name for name in ALGORITHMS if isinstance(make(name), Algorithm))


def step(algorithm, state, i, key=KEY):
    """One ask/evaluate/tell round with the keys the search loop would use."""
    ask_key, eval_key = jax.random.split(jax.random.fold_in(key, i))
    spec, state = algorithm.ask(ask_key, state)
    return spec, algorithm.tell(state, spec, fake_evaluate(spec, eval_key, i))


def assert_serialisable(state):
    assert isinstance(state, tuple) and hasattr(state, "_fields"), type(state)  # NamedTuple
    for leaf in jax.tree_util.tree_leaves(state):
        assert isinstance(leaf, int | float | str), type(leaf)
    json.dumps(state.to_json())  # a description for logs


def assert_same(a, b):
    """Equal trees with equal leaf types (bit-identical states)."""
    assert type(a) is type(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert type(x) is type(y)
        np.testing.assert_array_equal(x, y)


def test_registry_is_a_plain_dict_of_every_algorithm():
    assert type(ALGORITHMS) is dict
    assert set(ALGORITHMS) == {
        *("bananas", "evolution", "fixed", "local_search", "nac", "nac_worst", "random"),
        *("random_space", "reinforce", "darts", "enas"),
    }
    assert set(ALGORITHMS) - set(ASK_TELL) == {"darts", "enas"}


def test_unknown_algorithm_is_a_user_error_listing_the_valid_names():
    with pytest.raises(
        AlgorithmError,
        match="'nope'; valid: bananas, darts, enas, evolution, fixed, local_search, nac, nac_worst, random, random_space, reinforce$",
    ):
        get_algorithm("nope")
    assert issubclass(AlgorithmError, UserError)


@pytest.mark.parametrize("name", ASK_TELL)
def test_rounds_until_done(name):
    algorithm = make(name)
    assert algorithm.name == name
    state = algorithm.init(KEY)
    assert_serialisable(state)
    for i in range(ITERATIONS):
        assert not algorithm.done(state)
        spec, state = step(algorithm, state, i)
        assert isinstance(spec, NetworkSpec)
        assert_serialisable(state)
    assert algorithm.done(state)
    assert isinstance(algorithm.best(state), NetworkSpec)


@pytest.mark.parametrize("name", ASK_TELL)
def test_ask_and_tell_are_pure(name):
    algorithm = make(name)
    state = algorithm.init(KEY)
    _, state = step(algorithm, state, 0)
    frozen = copy.deepcopy(state)
    key = jax.random.key(3)
    spec_a, next_a = algorithm.ask(key, state)
    spec_b, next_b = algorithm.ask(key, state)
    assert spec_a == spec_b
    assert_same(next_a, next_b)
    result = fake_evaluate(spec_a, key, 1)
    told_a = algorithm.tell(next_a, spec_a, result)
    assert_same(told_a, algorithm.tell(next_b, spec_b, result))
    assert told_a != next_a  # tell records the evaluation
    assert_same(state, frozen)  # nothing was mutated
    assert_same(algorithm.init(KEY), algorithm.init(KEY))


@pytest.mark.parametrize("name", ASK_TELL)
def test_state_survives_orbax_and_continues_identically(name, tmp_path):
    algorithm = make(name)
    state = algorithm.init(KEY)
    _, state = step(algorithm, state, 0)
    with checkpoint_manager(tmp_path / "search") as manager:
        save_search_state(manager, 1, name, state)
    with checkpoint_manager(tmp_path / "search") as manager:
        like = algorithm.init(KEY)
        restored = restore_search_state(manager, manager.latest_step(), name, like)
    assert_same(restored, state)
    assert restored != like  # the restore did not just hand back the fresh state
    for i in range(1, ITERATIONS):
        spec_a, state = step(algorithm, state, i)
        spec_b, restored = step(algorithm, restored, i)
        assert spec_a == spec_b
        assert_same(restored, state)
    assert algorithm.done(restored)
    assert algorithm.best(state) == algorithm.best(restored)


def test_a_checkpoint_of_another_algorithm_is_refused(tmp_path):
    nac, fixed = make("nac"), make("fixed")
    with checkpoint_manager(tmp_path / "search") as manager:
        save_search_state(manager, 0, "fixed", fixed.init(KEY))
        with pytest.raises(ValueError, match="holds a 'fixed' search, not 'nac'"):
            restore_search_state(manager, 0, "nac", nac.init(KEY))
        with pytest.raises(AlgorithmError, match="state fields"):
            restore_search_state(manager, 0, "fixed", nac.init(KEY))


@pytest.mark.parametrize("name", ["nac", "nac_worst", "random"])
def test_specs_are_those_before_the_move(name):
    golden = json.loads(GOLDEN.read_text())[name]
    algorithm = make(name)
    init_key, search_key = jax.random.split(KEY)  # as run_search splits its key
    state, asked = algorithm.init(init_key), []
    while not algorithm.done(state):
        spec, state = step(algorithm, state, len(asked), key=search_key)
        asked.append(spec.to_json())
    assert asked == golden["asked"]
    assert algorithm.best(state).to_json() == golden["best"]
