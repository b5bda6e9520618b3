"""The macro model: shapes, AMLA's parameter conventions, statistics, fast conv paths."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest
from conftest import AMLA_EXAMPLES, amla_config_paths

from amla_jax.amla import load_spec, spec_from_json
from amla_jax.nn import build_model, count_params, init_variables


def _macro_configs():
    out = []
    for path in amla_config_paths():
        config = json.loads(path.read_text())
        if config.get("arch", {}).get("type", "micro") == "macro":
            out.append(path)
    return out


@pytest.mark.parametrize("path", _macro_configs(), ids=lambda p: p.name)
def test_amla_macro_networks_forward_shape(path):
    spec = load_spec(path)
    model = build_model(spec, 10)
    shapes = jax.eval_shape(
        lambda key: model.apply(
            init_variables(model, key, (32, 32, 3), 2), jnp.zeros((2, 32, 32, 3)), train=False
        ),
        jax.random.key(0),
    )
    logits, aux = shapes
    assert logits.shape == (2, 10) and aux == ()


def test_nac_final_parameter_count_matches_amla_conventions():
    # paramcounts.md: 10,942,475 under TF-slim semantics (BN offset only, no conv bias
    # under BN, skip scalars, bottleneck and widener biases, fc head).
    spec = load_spec(AMLA_EXAMPLES / "config.nac.final.json")
    assert count_params(spec, (32, 32, 3), 10) == 10_942_475


def test_tiny_network_one_step_pins_param_count_and_collects_statistics(tiny_spec):
    model = build_model(tiny_spec, 10)
    variables = init_variables(model, jax.random.key(0), (8, 8, 1))
    # By hand, AMLA's conventions: stem 1x1 1->16 + bias = 32. Cell1: bottleneck 16->16 +
    # bias 272, 1x1 16->8 128 + BN offset 8, 3x3sep dw 144 + pw 128 + 8 = 688. Widener
    # 3x3 16->16 + bias = 2320. Cell3: scalar 1, bottleneck (32+16)->32 + bias 1568,
    # 3x3 32->16 4608 + 16, 5x5sep dw 800 + pw 512 + 16 = 7521. fc 32->10 + bias 330.
    assert count_params(tiny_spec, (8, 8, 1), 10) == 32 + 688 + 2320 + 7521 + 330
    assert all(float(leaf) == 0.0 for leaf in jax.tree_util.tree_leaves(variables["nac_stats"])), (
        "initialisation must not count as a statistics step"
    )
    (logits, _), updates = model.apply(
        variables,
        jnp.ones((4, 8, 8, 1)),
        train=True,
        rngs={"dropout": jax.random.key(1)},
        mutable=["batch_stats", "nac_stats"],
    )
    assert logits.shape == (4, 10)
    stats = updates["nac_stats"]["body"]["Cell3"]["Branch5"]["stats"]
    assert float(stats["count"]) == 1.0 and float(stats["meansss_sum"]) > 0.0
    assert "scalar_1" in variables["params"]["body"]["Cell3"]


def test_count_params_allocates_nothing_for_a_huge_network():
    spec = spec_from_json(json.loads((AMLA_EXAMPLES / "config.run.json").read_text()))
    assert count_params(spec, (224, 224, 3), 1000) > 29_000_000
