"""Tests for the NAC algorithms (nac, nac_worst) and the random baseline."""

import jax
import numpy as np
import pytest
from fakes import CELL, FakeResult, fake_evaluate, template_spec

from amla_jax.algos import get_algorithm, nac, random_search
from amla_jax.amla import envelope, layout, save_spec
from amla_jax.amla.options import NacOptions, OptionsError
from amla_jax.config import AlgoConfig
from amla_jax.spec import MacroSpec

KEY = jax.random.key(0)


def make(name, iterations=2, **options):
    return get_algorithm(name)(AlgoConfig(name, iterations, options), template_spec(16))


def network_of(spec):
    assert isinstance(spec.body, MacroSpec)
    return spec.body.to_json()["network"]


def hand_made(network, worst=()):
    """Utilities ranked by branch order, with ``worst`` branches lowest; scalars rising
    with the source cellnumber."""
    names = layout.branch_names(network)
    utilities = {n: 1.0 + i for i, n in enumerate(names)}
    utilities.update({n: 0.1 * i for i, n in enumerate(worst)})
    scalars = {
        cell: {src: 0.1 * src for src in entry["inputs"]}
        for cell, entry in enumerate(network, start=1)
        if entry.get("inputs")
    }
    metrics = {"validation/accuracy": 0.5, "test/accuracy": 0.5}
    return FakeResult(metrics, utilities, scalars, num_params=1)


def test_initial_network_is_amlas_envelopenet():
    algorithm = make("nac")
    spec, _ = algorithm.ask(KEY, algorithm.init(KEY))
    settings = NacOptions().settings(template_spec(16).stem_width)
    assert settings.stem_width == 16
    assert network_of(spec) == envelope.initial_envelopenet(settings)
    assert spec.stem == template_spec(16).stem and spec.head == template_spec(16).head


@pytest.mark.parametrize("name, worst_case", [("nac", False), ("nac_worst", True)])
def test_tell_is_construct_amla(name, worst_case):
    algorithm = make(name)
    state = algorithm.init(KEY)
    spec, state = algorithm.ask(KEY, state)
    network = network_of(spec)
    result = hand_made(network, worst=["Cell2/Branch3", "Cell1/Branch6", "Cell5/Branch1"])
    state = algorithm.tell(state, spec, result)
    settings = NacOptions(worst_case=worst_case).settings(16)
    expected = envelope.construct_amla(network, result.utilities, result.scalars, settings)
    assert state.network == expected
    assert network_of(algorithm.ask(KEY, state)[0]) == expected
    record = state.records[0]
    assert record["arch"] == network
    assert record["utilities"] == result.utilities
    assert record["scalars"] == {
        str(d): {str(s): v for s, v in src.items()} for d, src in result.scalars.items()
    }


def test_worst_case_prunes_the_most_useful_branches():
    best_first, worst_first = make("nac"), make("nac_worst")
    spec, _ = best_first.ask(KEY, best_first.init(KEY))
    result = hand_made(network_of(spec))
    grown = {}
    for algorithm in (best_first, worst_first):
        state = algorithm.tell(algorithm.init(KEY), spec, result)
        grown[algorithm.name] = state.network
    # Stage 0 (cells 1, 2; 12 branches, k = 4): utilities rise in branch order, so nac
    # prunes four branches of cell 1 and nac_worst four of cell 2.
    assert sorted(grown["nac"][0]["filters"]) == ["Branch5", "Branch6"]
    assert len(grown["nac"][1]["filters"]) == 6
    assert len(grown["nac_worst"][0]["filters"]) == 6
    assert sorted(grown["nac_worst"][1]["filters"]) == ["Branch1", "Branch2"]
    # The option is forced: nac_worst ignores worst_case=false.
    forced = make("nac_worst", worst_case=False)
    state = forced.tell(forced.init(KEY), spec, result)
    assert state.network == grown["nac_worst"]


def test_options_are_amlas_envelopenet_keys():
    algorithm = make("nac", layers_per_stage=[1, 1, 1], construction=[False, True, False])
    spec, _ = algorithm.ask(KEY, algorithm.init(KEY))
    assert layout.count_branches(network_of(spec)) == [6, 6, 6]
    with pytest.raises(OptionsError, match="^algo.options.blocks: unknown for nac"):
        make("nac", blocks=["3x3"])
    with pytest.raises(OptionsError, match="^algo.options.layers_per_stage: "):
        make("nac", layers_per_stage=[2, 2])


def test_best_is_the_untrained_constructed_network_and_best_trained_is_kept():
    algorithm = make("nac", iterations=3)
    state = algorithm.init(KEY)
    validation = [0.7, 0.9, 0.8]
    for accuracy in validation:
        spec, state = algorithm.ask(KEY, state)
        result = hand_made(network_of(spec))
        result.metrics["validation/accuracy"] = accuracy
        state = algorithm.tell(state, spec, result)
    assert algorithm.done(state)
    history = state.records
    assert [r["iteration"] for r in history] == [0, 1, 2]
    best = network_of(algorithm.best(state))
    assert best == state.network  # arch_3: constructed, never trained
    assert best not in [r["arch"] for r in history]
    index, record = nac.best_trained(state)
    assert index == state.best_index == 1 and record["selection"] == 0.9


def test_zero_iterations_returns_the_initial_network():
    algorithm = make("nac", iterations=0)
    state = algorithm.init(KEY)
    assert algorithm.done(state)
    assert network_of(algorithm.best(state)) == state.network
    assert nac.best_trained(state) is None


def test_random_defaults_are_the_counts_nac_reaches():
    # AMLA's 5 iterations: 12 -> 14 -> 16 -> 17 -> 18 -> 18 branches in a growing stage
    # (A.7's worked check), one more layer per iteration until max_layers_per_stage.
    assert random_search.nac_counts(5, template_spec(16)) == ([7, 7, 2], [18, 18, 12])
    assert random_search.nac_counts(3, template_spec(16)) == ([5, 5, 2], [17, 17, 12])
    settings = NacOptions().settings(16)
    network = envelope.initial_envelopenet(settings)
    rng = np.random.default_rng(0)
    for _ in range(5):  # other statistics, same counts
        utilities = {n: float(rng.random()) for n in layout.branch_names(network)}
        network = envelope.construct_amla(network, utilities, {}, settings)
    assert [len(c) for c in layout.stage_layout(network)] == [7, 7, 2]
    assert layout.count_branches(network) == [18, 18, 12]
    algorithm = make("random", iterations=3)
    network = network_of(algorithm.ask(KEY, algorithm.init(KEY))[0])
    assert layout.count_branches(network) == [17, 17, 12]


def test_random_draws_a_fresh_network_per_key():
    algorithm = make("random", iterations=5)
    state = algorithm.init(KEY)
    networks = [network_of(algorithm.ask(jax.random.key(i), state)[0]) for i in range(3)]
    assert networks[0] != networks[1] != networks[2]
    for network in networks:
        assert [len(c) for c in layout.stage_layout(network)] == [7, 7, 2]
        assert layout.count_branches(network) == [18, 18, 12]
        ops = {op for entry in network for op in entry.get("filters", {}).values()}
        assert ops <= set(CELL.values())
        assert network[2]["inputs"] == [1]  # dense skips, as the EnvelopeNet's
    raw = jax.random.PRNGKey(1)
    assert random_search.key_to_seed(raw) == random_search.key_to_seed(
        jax.random.wrap_key_data(raw)
    )


def test_random_best_is_the_best_validation_candidate():
    algorithm = make("random", iterations=3)
    state = algorithm.init(KEY)
    specs = []
    for i, accuracy in enumerate([0.6, 0.8, 0.8]):
        spec, state = algorithm.ask(jax.random.key(i), state)
        result = fake_evaluate(spec, KEY, i)
        result.metrics["validation/accuracy"] = accuracy
        state = algorithm.tell(state, spec, result)
        specs.append(spec)
    assert algorithm.done(state)
    assert algorithm.best(state) == specs[1]  # ties go to the earliest


def test_random_options(tmp_path):
    algorithm = make(
        "random", layers_per_stage=[2, 1], num_blocks_per_stage=[3, 2], blocks=["3x3"], skip=False
    )
    network = network_of(algorithm.ask(KEY, algorithm.init(KEY))[0])
    assert layout.count_branches(network) == [3, 2]
    assert all("inputs" not in e for e in network)
    assert [e["outputs"] for e in network if "filters" in e] == [16, 16, 32]
    # match: counts from a constructed network's spec file (ours or AMLA's format).
    constructed = [
        {"filters": dict(CELL), "outputs": 16},
        {"filters": {"Branch1": "1x1"}, "outputs": 16},
    ]
    path = tmp_path / "best_spec.json"
    save_spec(template_spec(16).replace_body(MacroSpec.from_json({"network": constructed})), path)
    algorithm = make("random", match=str(path))
    network = network_of(algorithm.ask(KEY, algorithm.init(KEY))[0])
    assert layout.count_branches(network) == [7]
    assert np.array_equal([len(c) for c in layout.stage_layout(network)], [2])
    with pytest.raises(OptionsError, match="^algo.options.match: .*drop \\['layers_per_stage'\\]"):
        make("random", match=str(path), layers_per_stage=[1])
    with pytest.raises(OptionsError, match="^algo.options.num_blocks_per_stage: give both"):
        make("random", layers_per_stage=[1])
    with pytest.raises(OptionsError, match="^algo.options.max_filter_prune: unknown for random"):
        make("random", max_filter_prune=3)
