"""Tests for amla_jax.amla (envelope, layout, random_networks): NAC construction (spec A.5,
A.7, A.12) over AMLA's network lists, and the random baselines."""

import copy
import json
import math

import numpy as np
import pytest
from fakes import AMLA_SECTION, CELL

from amla_jax.amla import envelope as env
from amla_jax.amla import layout
from amla_jax.amla import random_networks as rnd

SECTION = AMLA_SECTION
SETTINGS = env.EnvelopeSettings.from_dict(SECTION, stem_width=64)
W = {"widener": {}}


def cell_without(*keys):
    return {k: v for k, v in CELL.items() if k not in keys}


def layer(filters, outputs, inputs=None):
    entry = {"filters": dict(filters), "outputs": outputs}
    return entry if inputs is None else {**entry, "inputs": inputs}


def utilities_for(arch, low=None):
    """Distinct utilities >= 1 for every branch, except the given low ones."""
    names = layout.branch_names(arch)
    values = {name: 1.0 + i / 100 for i, name in enumerate(names)}
    return {**values, **(low or {})}


def random_stats(arch, rng):
    """Random utilities for every branch and random scalars for every listed skip edge."""
    utilities = {name: float(rng.random()) for name in layout.branch_names(arch)}
    scalars = {
        cell: {src: float(rng.normal(0.5, 0.1)) for src in entry["inputs"]}
        for cell, entry in enumerate(arch, start=1)
        if entry.get("inputs")
    }
    return utilities, scalars


def settings_with(**changes):
    return env.EnvelopeSettings.from_dict({**SECTION, **changes}, stem_width=64)


# Iteration-0 network of spec A.12.
ITER0 = [
    layer(CELL, 64, []),
    layer(CELL, 64, []),
    W,
    layer(CELL, 128, [2, 1]),
    layer(CELL, 128, [3, 2, 1]),
    W,
    layer(CELL, 256, [5, 4, 3, 2, 1]),
    layer(CELL, 256, [6, 5, 4, 3, 2, 1]),
]
# Stage 0 loses 1x1, 5x5sep, 3x3, 3x3sep of cell 1 (in that order); stage 1 loses 3x3,
# 5x5, 7x7sep of cell 4 and 5x5 of cell 5.
ITER0_UTILITIES = utilities_for(
    ITER0,
    {
        "Cell1/Branch1": 0.01,
        "Cell1/Branch5": 0.02,
        "Cell1/Branch2": 0.03,
        "Cell1/Branch3": 0.04,
        "Cell4/Branch2": 0.01,
        "Cell4/Branch4": 0.02,
        "Cell4/Branch6": 0.03,
        "Cell5/Branch4": 0.04,
    },
)
ITER0_SCALARS = {
    4: {2: 0.9, 1: 0.1},
    5: {3: 0.9, 2: 0.1, 1: 0.5},
    7: {5: 0.6, 4: 0.7, 3: 0.2, 2: 0.9, 1: 0.1},
    8: {6: 0.1, 5: 0.2, 4: 0.6, 3: 0.9, 2: 0.3, 1: 0.8},
}
ITER1 = [
    layer({"Branch4": "5x5", "Branch6": "7x7sep"}, 64, []),
    layer(CELL, 64, []),
    layer(CELL, 64, [1]),
    W,
    layer({"Branch1": "1x1", "Branch3": "3x3sep", "Branch5": "5x5sep"}, 128, [2, 3]),
    layer(cell_without("Branch4"), 128, [4, 1, 3]),
    layer(CELL, 128, [5, 4, 3, 2, 1]),
    W,
    layer(CELL, 256, [2, 5, 6, 3, 7]),
    layer(CELL, 256, [4, 1, 5, 3, 7]),
]


def test_settings_from_amla_section_and_back():
    assert SETTINGS.layers_per_stage == (2, 2, 2)
    assert SETTINGS.cell == CELL
    assert SETTINGS.to_dict() == {**SECTION, "stem_width": 64}
    assert env.EnvelopeSettings.from_dict(SETTINGS.to_dict()) == SETTINGS
    assert hash(SETTINGS) == hash(env.EnvelopeSettings.from_dict(SETTINGS.to_dict()))
    assert not env.EnvelopeSettings.from_dict(
        {k: v for k, v in SECTION.items() if k not in ("skip", "worst_case")}, stem_width=64
    ).skip


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"layers_per_stage": [2, 2]}, "layers_per_stage"),
        ({"max_layers_per_stage": [7, 6]}, "max_layers_per_stage"),
        ({"construction": [True, True]}, "construction"),
        ({"parameter_limits": [False, False]}, "parameter_limits"),
        ({"construction": [1, 1, 0]}, "construction"),
        ({"layers_per_stage": [2, 0, 2]}, "layers_per_stage"),
        ({"max_filter_prune": -1}, "max_filter_prune"),
        ({"envelopecell": {}}, "envelopecell"),
        ({"envelopecell": {"b1": "1x1"}}, "envelopecell"),
        ({"stages": 0}, "stages"),
        ({"skip": "yes"}, "skip"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_settings_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        env.EnvelopeSettings.from_dict({**SECTION, **changes}, stem_width=64)


def test_settings_require_stem_width():
    with pytest.raises(ValueError, match="stem_width"):
        env.EnvelopeSettings.from_dict(SECTION)
    with pytest.raises(ValueError, match="stem_width"):
        env.EnvelopeSettings.from_dict(SECTION, stem_width=0)


def test_initial_envelopenet_matches_worked_example():
    assert env.initial_envelopenet(SETTINGS) == ITER0
    assert layout.stage_layout(ITER0) == [[1, 2], [4, 5], [7, 8]]
    assert layout.count_branches(ITER0) == [12, 12, 12]
    assert layout.branch_names(ITER0)[:7] == [f"Cell1/Branch{j}" for j in range(1, 7)] + [
        "Cell2/Branch1"
    ]
    assert len(layout.branch_names(ITER0)) == 36


def test_initial_envelopenet_without_skip_and_with_parameter_limits():
    settings = settings_with(layers_per_stage=[3, 1, 2], skip=False, parameter_limits=[True] * 3)
    assert env.initial_envelopenet(settings) == [
        layer(CELL, 26),
        layer(CELL, 26),
        layer(CELL, 64),
        W,
        layer(CELL, 128),
        W,
        layer(CELL, 128),
        layer(CELL, 256),
    ]


def test_worked_example_construction():
    assert env.select_pruned_branches(ITER0, ITER0_UTILITIES, SETTINGS) == [
        ["Cell1/Branch1", "Cell1/Branch5", "Cell1/Branch2", "Cell1/Branch3"],
        ["Cell4/Branch2", "Cell4/Branch4", "Cell4/Branch6", "Cell5/Branch4"],
        [],
    ]
    assert env.construct_amla(ITER0, ITER0_UTILITIES, ITER0_SCALARS, SETTINGS) == ITER1


def test_wrapped_arch_and_string_keys_round_trip():
    arch = {"type": "macro", "network": ITER0, "note": "kept"}
    scalars = json.loads(json.dumps(ITER0_SCALARS))
    assert set(scalars) == {"4", "5", "7", "8"}
    out = env.construct_amla(arch, ITER0_UTILITIES, scalars, SETTINGS)
    assert out == {"type": "macro", "network": ITER1, "note": "kept"}
    assert json.loads(json.dumps(out)) == out


def test_second_iteration_remaps_old_cellnumbers():
    utilities = utilities_for(
        ITER1,
        {
            "Cell1/Branch4": 0.001,  # cell 1 has two branches: only one may go
            "Cell1/Branch6": 0.002,
            "Cell2/Branch1": 0.01,
            "Cell2/Branch2": 0.02,
            "Cell2/Branch3": 0.03,
            "Cell5/Branch1": 0.01,
            "Cell7/Branch1": 0.02,
            "Cell7/Branch2": 0.03,
            "Cell7/Branch3": 0.04,
        },
    )
    scalars = {
        3: {1: 0.3},
        5: {2: 0.1, 3: 0.4},
        6: {4: 0.5, 1: 0.2, 3: 0.7},
        7: {5: 0.1, 4: 0.9, 3: 0.8, 2: 0.2, 1: 0.7},
        9: {2: 0.1, 5: 0.9, 6: 0.2, 3: 0.3, 7: 0.8},
        10: {4: 0.9, 1: 0.1, 5: 0.8, 3: 0.2, 7: 0.3},
    }
    assert env.construct_amla(ITER1, utilities, scalars, SETTINGS) == [
        layer({"Branch6": "7x7sep"}, 64, []),
        layer({"Branch4": "5x5", "Branch5": "5x5sep", "Branch6": "7x7sep"}, 64, []),
        layer(CELL, 64, [1]),
        layer(CELL, 64, [2, 1]),
        W,
        layer({"Branch3": "3x3sep", "Branch5": "5x5sep"}, 128, [3, 4]),
        layer(cell_without("Branch4"), 128, [3, 5, 4]),
        layer({"Branch4": "5x5", "Branch5": "5x5sep", "Branch6": "7x7sep"}, 128, [5, 3, 1, 4]),
        layer(CELL, 128, [7, 6, 5, 4, 3, 2, 1]),
        W,
        layer(CELL, 256, [6, 8, 3, 4, 9]),
        layer(CELL, 256, [5, 6, 8, 4, 9]),
    ]


FINAL_INPUT_LENGTHS = [0, 0, 1, 1, 1, 2, 5, None, 2, 3, 3, 3, 4, 7, 13, None, 5, 5]


def test_worked_check_five_iterations():
    """A.7: 12 -> 14 -> 16 -> 17 -> 18 -> 18 and the shape of config.nac.final.json."""
    rng = np.random.default_rng(0)
    arch, history = env.initial_envelopenet(SETTINGS), []
    for _ in range(5):
        history.append(layout.count_branches(arch))
        arch = env.construct_amla(arch, *random_stats(arch, rng), SETTINGS)
    history.append(layout.count_branches(arch))
    assert [counts[0] for counts in history] == [12, 14, 16, 17, 18, 18]
    assert [counts[1] for counts in history] == [12, 14, 16, 17, 18, 18]
    assert [counts[2] for counts in history] == [12] * 6
    assert [len(cells) for cells in layout.stage_layout(arch)] == [7, 7, 2]
    assert [e["outputs"] for e in arch if "filters" in e] == [64] * 7 + [128] * 7 + [256] * 2
    # The skip-list lengths depend on structure only; they match AMLA's final network.
    assert [len(e["inputs"]) if "inputs" in e else None for e in arch] == FINAL_INPUT_LENGTHS
    for cell, entry in enumerate(arch, start=1):
        sources = entry.get("inputs", [])
        assert len(set(sources)) == len(sources)
        assert all(1 <= src < cell - 1 for src in sources)


def test_final_config_input_lengths_reference():
    final = [
        [], [], [1], [1], [1], [2, 4], [5, 4, 3, 2, 1], None,
        [1, 7], [1, 8, 7], [9, 6, 7], [9, 1, 7], [1, 6, 10, 7],
        [9, 1, 3, 8, 10, 12, 7], list(range(13, 0, -1)), None,
        [9, 1, 6, 7, 15], [12, 16, 14, 7, 15],
    ]  # fmt: skip
    assert [None if s is None else len(s) for s in final] == FINAL_INPUT_LENGTHS


def test_stage_at_max_grows_and_over_max_is_copied():
    at_max = settings_with(max_layers_per_stage=[2, 1, 2], construction=[True, True, True])
    out = env.construct_amla(ITER0, utilities_for(ITER0), ITER0_SCALARS, at_max)
    assert [len(cells) for cells in layout.stage_layout(out)] == [3, 2, 3]
    assert out[4:6] == [layer(CELL, 128, [2, 3]), layer(CELL, 128, [4, 1, 3])]


def test_construction_false_copies_every_stage():
    settings = settings_with(construction=[False] * 3)
    assert env.construct_amla(ITER1, {}, {}, settings) == ITER1
    # Skip rewiring still halves every logged list, as AMLA's (and A.12's stage 3).
    out = env.construct_amla(ITER0, {}, ITER0_SCALARS, settings)
    assert [{**e, "inputs": None} for e in out] == [{**e, "inputs": None} for e in ITER0]
    assert [e.get("inputs") for e in out] == [[], [], None, [2], [3, 1], None, [2, 4, 5], [3, 1, 4]]


def test_ties_keep_layer_then_branch_order():
    ties = {name: 0.5 for name in layout.branch_names(ITER0)}
    expected = [
        [f"Cell1/Branch{j}" for j in (1, 2, 3, 4)],
        [f"Cell4/Branch{j}" for j in (1, 2, 3, 4)],
        [],
    ]
    assert env.select_pruned_branches(ITER0, ties, SETTINGS) == expected
    worst = settings_with(worst_case=True)
    assert env.select_pruned_branches(ITER0, ties, worst) == expected


def test_worst_case_prunes_the_most_useful():
    utilities = utilities_for(ITER0)  # increasing in layer then branch order
    assert env.select_pruned_branches(ITER0, utilities, settings_with(worst_case=True))[:2] == [
        ["Cell2/Branch6", "Cell2/Branch5", "Cell2/Branch4", "Cell2/Branch3"],
        ["Cell5/Branch6", "Cell5/Branch5", "Cell5/Branch4", "Cell5/Branch3"],
    ]


def test_zero_budget_still_prunes_one():
    small = [layer({"Branch1": "1x1", "Branch2": "3x3"}, 64, [])]
    settings = settings_with(
        stages=1, **{k: [v[0]] for k, v in SECTION.items() if isinstance(v, list)}
    )
    utilities = {"Cell1/Branch1": 0.9, "Cell1/Branch2": 0.1}
    assert env.select_pruned_branches(small, utilities, settings) == [["Cell1/Branch2"]]
    no_budget = settings_with(max_filter_prune=0)
    assert env.select_pruned_branches(ITER0, ITER0_UTILITIES, no_budget)[:2] == [
        ["Cell1/Branch1"],
        ["Cell4/Branch2"],
    ]


def test_nothing_prunable_raises():
    singles = [layer({"Branch1": "1x1"}, 64, []), layer({"Branch3": "3x3sep"}, 64, [])]
    settings = settings_with(
        stages=1, **{k: [v[0]] for k, v in SECTION.items() if isinstance(v, list)}
    )
    with pytest.raises(ValueError, match="stage 0: no branch can be pruned"):
        env.construct_amla(singles, {"Cell1/Branch1": 1.0, "Cell2/Branch3": 2.0}, {}, settings)


def test_missing_utility_names_the_branch():
    utilities = dict(ITER0_UTILITIES)
    del utilities["Cell5/Branch3"]
    with pytest.raises(ValueError, match="Cell5/Branch3"):
        env.construct_amla(ITER0, utilities, ITER0_SCALARS, SETTINGS)


def test_bad_arch_raises():
    with pytest.raises(ValueError, match="stages"):
        env.construct_amla(ITER0[:5], ITER0_UTILITIES, {}, SETTINGS)
    with pytest.raises(ValueError, match="cell 2"):
        layout.stage_layout([layer(CELL, 64), {"outputs": 3}])
    with pytest.raises(ValueError, match="skip source 9"):
        env.construct_amla(ITER0, ITER0_UTILITIES, {4: {9: 1.0}}, SETTINGS)


def test_unlogged_lists_are_renumbered_not_pruned():
    out = env.construct_amla(ITER0, ITER0_UTILITIES, {}, SETTINGS)
    assert [e.get("inputs") for e in out] == [
        [], [], [1], None, [2, 1], [4, 2, 1], [5, 4, 3, 2, 1], None,
        [6, 5, 4, 2, 1], [8, 6, 5, 4, 2, 1],
    ]  # fmt: skip


def test_without_skip_new_layers_have_no_inputs():
    settings = settings_with(skip=False)
    arch = env.initial_envelopenet(settings)
    out = env.construct_amla(arch, utilities_for(arch), {}, settings)
    assert all("inputs" not in entry for entry in out)
    assert [len(cells) for cells in layout.stage_layout(out)] == [3, 3, 2]


def test_inputs_are_never_mutated():
    arch = {"type": "macro", "network": ITER0}
    utilities, scalars = dict(ITER0_UTILITIES), copy.deepcopy(ITER0_SCALARS)
    before = copy.deepcopy((arch, utilities, scalars, ITER1))
    out = env.construct_amla(arch, utilities, scalars, SETTINGS)
    out["network"][1]["filters"]["Branch9"] = "9x9"
    out["network"][4]["inputs"].append(99)
    env.construct_amla(ITER1, utilities_for(ITER1), {}, SETTINGS)
    rnd.matched_random_settings(ITER1, ["3x3"])
    assert (arch, utilities, scalars, ITER1) == before
    first = env.initial_envelopenet(SETTINGS)
    first[0]["filters"]["Branch1"] = "changed"
    assert SETTINGS.cell == CELL and env.initial_envelopenet(SETTINGS) == ITER0


def test_stage_widths_parameter_limits():
    settings = settings_with(parameter_limits=[True, True, False])
    katib = [layout.stage_widths(settings, s, 3) for s in range(2)]
    assert katib == [[26, 26, 64], [53, 53, 128]]
    katib_stage2 = settings_with(parameter_limits=[True] * 3)
    assert layout.stage_widths(katib_stage2, 2, 3) == [106, 106, 256]
    assert layout.stage_widths(settings, 2, 3) == [256, 256, 256]
    assert layout.stage_widths(settings, 0, 7) == [18] * 6 + [64]  # int(64 / 5 * (sqrt 6 - 1))
    assert layout.stage_widths(settings, 0, 1) == [64]
    assert layout.stage_widths(settings, 0, 0) == []
    with pytest.raises(ValueError, match="stage"):
        layout.stage_widths(settings, 3, 2)


def test_stage_widths_two_layer_guard_is_the_formula_limit():
    settings = settings_with(parameter_limits=[True] * 3)
    assert layout.stage_widths(settings, 0, 2) == [32, 64]
    assert layout.stage_widths(settings, 1, 2) == [64, 128]
    near = 2 + 1e-9  # the formula's limit as N -> 2 is W / 2
    assert math.isclose(64 / (near - 2) * (math.sqrt(near - 1) - 1), 32, rel_tol=1e-6)


RANDOM = {
    "stages": 4,
    "layers_per_stage": [15, 6, 4, 4],
    "num_blocks_per_stage": [60, 17, 15, 15],
    "blocks": ["3x3", "3x3sep", "5x5", "5x5sep", "7x7", "7x7sep"],
    "parameter_limits": [False] * 4,
    "skip": False,
}


def test_random_network_is_deterministic_and_counts_match():
    settings = rnd.RandomSettings.from_dict(RANDOM, stem_width=128)
    net = rnd.random_network(3, settings)
    assert net == rnd.random_network(3, settings)
    assert net != rnd.random_network(4, settings)
    assert net == rnd.random_network(np.array([3]), settings)
    assert [len(cells) for cells in layout.stage_layout(net)] == [15, 6, 4, 4]
    assert layout.count_branches(net) == [60, 17, 15, 15]
    assert [e["outputs"] for e in net if "filters" in e] == [128] * 15 + [256] * 6 + [512] * 4 + [
        1024
    ] * 4
    for entry in net:
        if "filters" in entry:
            assert list(entry["filters"]) == [
                f"Branch{j}" for j in range(1, len(entry["filters"]) + 1)
            ]
            assert set(entry["filters"].values()) <= set(RANDOM["blocks"])
            assert "inputs" not in entry
    assert json.loads(json.dumps(net)) == net
    assert rnd.RandomSettings.from_dict(settings.to_dict()) == settings


def test_random_network_allows_duplicates_and_skips():
    settings = rnd.RandomSettings.from_dict(
        {**RANDOM, "stages": 1, "layers_per_stage": [1], "num_blocks_per_stage": [4],
         "blocks": ["3x3"], "parameter_limits": [True], "skip": True},
        stem_width=64,
    )  # fmt: skip
    assert rnd.random_network(0, settings) == [
        layer({f"Branch{j}": "3x3" for j in (1, 2, 3, 4)}, 64, [])
    ]


def test_matched_random_settings():
    settings = rnd.matched_random_settings(ITER1, ["3x3", "5x5"], skip=True)
    assert settings.layers_per_stage == (3, 3, 2)
    assert settings.num_blocks_per_stage == (14, 14, 12)
    assert settings.stem_width == 64 and settings.parameter_limits == (False,) * 3
    net = rnd.random_network(7, settings)
    assert layout.count_branches(net) == layout.count_branches(ITER1)
    assert [e.get("inputs") for e in net][:5] == [[], [], [1], None, [3, 2, 1]]
    with pytest.raises(ValueError, match="num_blocks_per_stage"):
        rnd.RandomSettings.from_dict(
            {**RANDOM, "num_blocks_per_stage": [1, 17, 15, 15]}, stem_width=8
        )


def test_scalar_ties_keep_the_later_source_as_amla_and_all_lists_become_explicit():
    # AMLA sorts the layer's log (in ``inputs`` order) ascending with a stable sort and
    # takes from the end: of equal scalars the source LATER in that order is kept.
    scalars = {5: {1: 0.5, 2: 0.5, 3: 0.5}, 7: {1: 0.2, 2: 0.2, 3: 0.2, 4: 0.2, 5: 0.2}}
    out = env.construct_amla(ITER0, ITER0_UTILITIES, scalars, SETTINGS)
    assert out[5]["inputs"] == [1, 2, 3]  # of old [3, 2, 1]: 1 and 2 kept, then new cell 3
    assert out[8]["inputs"] == [1, 2, 4, 3, 7]  # of old [5..1]: 1, 2, 3 (now 4); new 3, 7
    # One tie among distinct values: cell 5 logs [3, 2, 1] as 0.9, 0.1, 0.1 and keeps 2.
    out = env.construct_amla(ITER0, ITER0_UTILITIES, {5: {3: 0.9, 2: 0.1, 1: 0.1}}, SETTINGS)
    assert out[5]["inputs"] == [4, 1, 3]
    arch = copy.deepcopy(ITER0)
    arch[4]["inputs"] = "all"  # sources 0..3, none listed: logged latest first
    out = env.construct_amla(arch, ITER0_UTILITIES, {5: dict.fromkeys(range(4), 1.0)}, SETTINGS)
    assert out[5]["inputs"] == [0, 1, 3]
    out = env.construct_amla(arch, ITER0_UTILITIES, {}, SETTINGS)
    assert out[5]["inputs"] == "all"


def test_invalid_seeds_and_layouts_raise():
    settings = rnd.RandomSettings.from_dict(RANDOM, stem_width=8)
    with pytest.raises(TypeError, match="key_or_seed"):
        rnd.random_network(1.5, settings)
    with pytest.raises(ValueError, match="every stage"):
        layout.stage_layout([W, layer(CELL, 64)])
    with pytest.raises(ValueError, match="stem_width"):
        rnd.matched_random_settings([{"filters": CELL}], ["3x3"])
    with pytest.raises(ValueError, match="NaN"):
        env.construct_amla(ITER0, {**ITER0_UTILITIES, "Cell1/Branch1": math.nan}, {}, SETTINGS)


def test_random_network_draw_order_and_spread():
    """v0.1's order: one seed block per layer (all stages), then (layer, block) per extra."""
    settings = rnd.RandomSettings.from_dict(RANDOM, stem_width=8)
    net = rnd.random_network(11, settings)
    rng, blocks = np.random.default_rng(11), RANDOM["blocks"]
    ops = [[[blocks[rng.integers(6)]] for _ in range(n)] for n in RANDOM["layers_per_stage"]]
    for layers, total in zip(ops, RANDOM["num_blocks_per_stage"], strict=True):
        for _ in range(total - len(layers)):
            where = rng.integers(len(layers))
            layers[where].append(blocks[rng.integers(6)])
    layers = [list(e["filters"].values()) for e in net if "filters" in e]
    assert layers == [layer for stage in ops for layer in stage]
    assert sum(len(layer) > 1 for layer in layers[:15]) >= 10  # 45 extras spread over 15


def test_per_stage_lists_longer_than_stages_are_read_as_amla_reads_them():
    # AMLA's own config.nac.construction.test.json lists 4 entries for 3 stages; AMLA
    # indexes by stage, so the extra entry is unused.
    settings = settings_with(construction=[True, True, True, True])
    assert settings.construction == (True, True, True)
