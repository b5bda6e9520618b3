"""The macro model: shapes, AMLA's parameter conventions, statistics, fast conv paths."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import AMLA_EXAMPLES, amla_config_paths

from amla_jax import ops
from amla_jax.model import build_model, count_params, init_variables
from amla_jax.spec import NetworkSpec, load_spec


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


@pytest.mark.parametrize(
    "shape, k, stride, dilation",
    [
        ((2, 1, 1, 8), 7, 1, 1),
        ((2, 9, 7, 4), 5, 1, 1),
        ((2, 8, 8, 3), 3, 2, 1),
        ((2, 9, 9, 3), 3, 1, 2),
    ],
)
def test_depthwise_shift_path_equals_xla(shape, k, stride, dilation):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (k, k, 1, shape[-1]))
    fast = ops.depthwise_conv(x, w, stride, dilation, impl="shift")
    ref = ops.depthwise_conv(x, w, stride, dilation, impl="xla")
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw, k", [(1, 5), (2, 5), (2, 3), (4, 7), (3, 1)])
def test_small_map_conv_paths_equal_xla(hw, k):
    x = jax.random.normal(jax.random.key(0), (2, hw, hw, 6))
    w = jax.random.normal(jax.random.key(1), (k, k, 6, 5))
    ref = ops.conv_same(x, w, impl="xla")
    np.testing.assert_allclose(ops.conv_same(x, w, impl="im2col"), ref, rtol=1e-5, atol=1e-5)
    cropped = ops.reachable_taps(w, hw, hw)
    np.testing.assert_allclose(ops.conv_same(x, cropped, impl="xla"), ref, rtol=1e-5, atol=1e-5)


def test_lrn_matches_the_tensorflow_formula():
    x = jax.random.normal(jax.random.key(0), (1, 2, 2, 12))
    out = ops.local_response_norm(x)
    sq = np.pad(np.asarray(x) ** 2, ((0, 0), (0, 0), (0, 0), (4, 4)))
    window = np.stack([sq[..., c : c + 9].sum(-1) for c in range(12)], -1)
    np.testing.assert_allclose(out, np.asarray(x) / (1 + 0.001 / 9 * window) ** 0.75, rtol=1e-5)


def test_batch_cutout_zeroes_one_shared_square():
    x = jnp.ones((3, 8, 8, 2))
    out = np.asarray(ops.batch_cutout(x, jax.random.key(3), 4))
    assert (out[0] == out[1]).all() and (out[1] == out[2]).all()
    zeros = (out[0, :, :, 0] == 0).sum()
    assert 1 <= zeros <= 16


def test_count_params_allocates_nothing_for_a_huge_network():
    spec = NetworkSpec.from_json(json.loads((AMLA_EXAMPLES / "config.run.json").read_text()))
    assert count_params(spec, (224, 224, 3), 1000) > 29_000_000
