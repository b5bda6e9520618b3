"""The searches over a space (evolution, local search, REINFORCE, BANANAS, random) past
their warm-up, on a made-up NB201 objective (tiny sizes; the contract tests in
test_algos.py cover purity and Orbax restores for every algorithm)."""

import jax
import pytest
from fakes import FakeResult

from amla_jax.algos import get_algorithm
from amla_jax.algos.base import AlgorithmError
from amla_jax.algos.space_search import parse_objective
from amla_jax.config import AlgoConfig
from amla_jax.spaces import get_space

SPACE = get_space("nb201")()
TINY = {
    "evolution": {"population": 4, "tournament": 2},
    "local_search": {"initial": 3},
    "reinforce": {"learning_rate": 0.1},
    "bananas": {
        "initial": 4,
        "ensemble": 2,
        "hidden": 4,
        "epochs": 3,
        "candidates": 8,
        "parents": 2,
        "batch": 3,
    },
    "random_space": {},
}


def conv_count(spec, key, candidate_id):
    """More 3x3 convolutions score higher; a deterministic made-up table."""
    arch = SPACE.from_spec(spec)
    score = (sum(a == 3 for a in arch) + 0.1 * sum(a == 2 for a in arch)) / 7
    return FakeResult(
        {"validation/accuracy": score, "table/analog_accuracy": 1 - score},
        {},
        {},
        num_params=100 * sum(arch),
    )


def search(name, iterations=24, **options):
    algorithm = get_algorithm(name)(AlgoConfig(name, iterations, {**TINY[name], **options}), None)
    key = jax.random.key(1)
    state, asked = algorithm.init(key), []
    while not algorithm.done(state):
        ask_key, eval_key = jax.random.split(jax.random.fold_in(key, len(asked)))
        spec, state = algorithm.ask(ask_key, state)
        asked.append(SPACE.from_spec(spec))
        state = algorithm.tell(state, spec, conv_count(spec, eval_key, len(asked)))
    return algorithm, state, asked


@pytest.mark.parametrize("name", sorted(TINY))
def test_runs_past_its_warm_up_and_returns_its_best(name):
    algorithm, state, asked = search(name)
    best = SPACE.from_spec(algorithm.best(state))
    assert best in asked
    score = lambda a: conv_count(SPACE.to_spec(a, None), None, 0).metrics["validation/accuracy"]  # noqa: E731
    assert score(best) == max(score(a) for a in asked)
    assert state.to_json()["history"][0][0] == list(asked[0])


def test_evolution_children_are_one_mutation_from_the_population():
    _, _, asked = search("evolution")
    for i in range(4, len(asked)):
        population = asked[i - 4 : i]
        assert any(sum(x != y for x, y in zip(p, asked[i], strict=True)) == 1 for p in population)


def test_local_search_walks_neighbourhoods_and_never_repeats_one():
    _, _, asked = search("local_search", iterations=40)
    after = asked[3:]
    steps = [
        sum(x != y for x, y in zip(a, b, strict=True))
        for a, b in zip(after, after[1:], strict=False)
    ]
    assert steps.count(1) + steps.count(2) > len(steps) // 2  # siblings differ in <= 2
    assert len(set(asked[3:])) == len(asked[3:])


def test_search_maximises_the_objective_not_validation_accuracy():
    algorithm, state, asked = search("random_space", objective="analog_accuracy")
    best = SPACE.from_spec(algorithm.best(state))
    validation = lambda a: conv_count(SPACE.to_spec(a, None), None, 0).metrics[  # noqa: E731
        "validation/accuracy"
    ]
    assert validation(best) == min(validation(a) for a in asked)  # analog = 1 - validation
    assert parse_objective("analog_accuracy - 0.5*noisy_accuracy + 1e-7*num_params") == (
        (1.0, "analog_accuracy"),
        (-0.5, "noisy_accuracy"),
        (1e-7, "num_params"),
    )


@pytest.mark.parametrize("bad", ["", "0.5*", "a b", "acc + + x"])
def test_a_bad_objective_is_a_user_error(bad):
    with pytest.raises(AlgorithmError, match="objective"):
        parse_objective(bad)


def test_an_unknown_option_names_the_key():
    with pytest.raises(AlgorithmError, match="algo.options.populaton: unknown for evolution"):
        get_algorithm("evolution")(AlgoConfig("evolution", 3, {"populaton": 3}), None)


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_search_runs_on_the_darts_space(name):
    from fakes import fake_evaluate

    darts = get_space("darts")(channels=8, num_normal=1)
    options = {**TINY[name], "space": "darts", "space_options": {"channels": 8, "num_normal": 1}}
    algorithm = get_algorithm(name)(AlgoConfig(name, 8, options), None)
    key, state, i = jax.random.key(2), None, 0
    state = algorithm.init(key)
    while not algorithm.done(state):
        spec, state = algorithm.ask(jax.random.fold_in(key, i), state)
        state = algorithm.tell(state, spec, fake_evaluate(spec, key, i))
        i += 1
    assert len(darts.from_spec(algorithm.best(state))) == 32


@pytest.mark.parametrize("name", sorted(TINY))
def test_past_the_warm_up_a_restored_state_continues_identically(name, tmp_path):
    from amla_jax.search import checkpoint_manager, restore_search_state, save_search_state

    algorithm, state, _ = search(name, iterations=10)  # past every warm-up in TINY
    with checkpoint_manager(tmp_path / "search") as manager:
        save_search_state(manager, 10, name, state)
    with checkpoint_manager(tmp_path / "search") as manager:
        restored = restore_search_state(manager, 10, name, algorithm.init(jax.random.key(0)))
    assert restored == state
    key = jax.random.key(5)
    assert algorithm.ask(key, restored)[0] == algorithm.ask(key, state)[0]
