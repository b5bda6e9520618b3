"""Micro-cell specs, ops and bodies: contracts, JSON round trips, AMLA import, errors."""

from __future__ import annotations

import copy
import json
import math

import jax
import jax.numpy as jnp
import pytest
from conftest import AMLA_FIXTURES

from amla_jax import zoo
from amla_jax.amla import from_amla_micro, load_spec, spec_from_json, to_amla
from amla_jax.nn import build_model, count_params
from amla_jax.nn.enas import EnasMacroBody
from amla_jax.nn.micro import MicroBody
from amla_jax.nn.micro_ops import MICRO_OPS, get_op
from amla_jax.spec import EnasMacroSpec, MicroSpec, NetworkSpec, SpecError, split_arc

# The network part of AMLA's amla/configs/config.darts.json (CiscoAI/amla@917d498).
_SEP, _MAX = {"type": "3x3sep"}, {"type": "3x3maxpool", "stride": 2}
AMLA_DARTS = {
    "init_cell": {
        "Layer0": {"Branch0": {"block": "cutout", "size": 16}},
        "Layer1": {"Branch0": {"block": "conv2d", "kernel_size": [1, 1], "outputs": 36}},
    },
    "classification_cell": {
        "Layer0": {"Branch0": {"block": "reduce_mean", "size": [1, 2]}},
        "Layer1": {"Branch0": {"block": "flatten", "size": [3, 3]}},
        "Layer2": {"Branch0": {"block": "dropout", "keep_prob": 0.7}},
        "Layer3": {"Branch0": {"block": "fc-final", "inputs": 192, "outputs": 10}},
    },
    "arch": {
        "type": "micro",
        "normal_cell": {
            "node1": -1,
            "node2": 0,
            **{f"node{n}": {"node": _SEP, "input": ["node2"]} for n in (3, 4, 5)},
            **{f"node{n}": {"node": _SEP, "input": ["node1"]} for n in (6, 7)},
            "node8": {"node": {"type": "concat"}, "input": ["node3", "node1"]},
            "node9": {"node": {"type": "concat"}, "input": ["node4", "node1"]},
            "node10": {"node": {"type": "concat"}, "input": ["node5", "node6"]},
            "node11": {"node": {"type": "concat"}, "input": ["node7", "node10"]},
            "node12": {
                "node": {"type": "concat"},
                "input": ["node8", "node9", "node10", "node11"],
            },
        },
        "reduction_cell": {
            "node1": -1,
            "node2": 0,
            **{f"node{n}": {"node": _MAX, "input": ["node2"]} for n in (3, 4, 5)},
            "node6": {"node": {"type": "3x3avgpool", "stride": 2}, "input": ["node2"]},
            "node7": {"node": _MAX, "input": ["node1"]},
            "node8": {"node": {"type": "concat"}, "input": ["node5", "node7"]},
            "node9": {"node": {"type": "concat"}, "input": ["node3", "node8"]},
            "node10": {"node": {"type": "concat"}, "input": ["node4", "node6"]},
            "node11": {"node": {"type": "concat"}, "input": ["node7", "node8"]},
            "node12": {
                "node": {"type": "concat"},
                "input": ["node8", "node9", "node10", "node11"],
            },
        },
        "auxiliary_classifier": {
            "node1": 0,
            "node2": {"node": {"type": "dense", "outputs": 10}, "input": ["node1"]},
        },
        "network": ["normal_cell"] * 6
        + ["auxiliary_classifier", "reduction_cell"]
        + ["normal_cell"] * 6
        + ["auxiliary_classifier", "reduction_cell"]
        + ["normal_cell"] * 6,
    },
}

TINY = {
    "type": "micro",
    "convention": "darts",
    "channels": 4,
    "cells": {
        "normal": {"nodes": [[["sep_conv_3x3", 0], ["skip_connect", 1]]], "concat": [2]},
        "reduction": {
            "reduction": True,
            "nodes": [[["max_pool_3x3", 0], ["sep_conv_3x3", 1]]],
            "concat": [2],
        },
    },
    "network": ["normal", "reduction", "aux", "normal"],
}


def _key(seed: int = 0) -> jax.Array:
    """An RBG key: XLA's RngBitGenerator compiles far faster on CPU than threefry."""
    return jax.random.key(seed, impl="rbg")


def _init(module, x, **kwargs):
    return module.init({"params": _key()}, x, train=True, **kwargs)


def _num_params(variables) -> int:
    return sum(math.prod(v.shape) for v in jax.tree_util.tree_leaves(variables.get("params", {})))


# --- ops ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MICRO_OPS))
def test_every_op_maps_to_features_at_stride(name):
    x = jnp.ones((2, 8, 8, 6))
    for stride in (1, 2):
        features = 6 if name.startswith("amla_") else 8
        op = get_op(name).build(features, stride, 0.9, name="op")

        def run(op=op):
            variables = _init(op, x)
            rngs = {"dropout": _key(1)}
            return op.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])[0]

        expected = x.shape if name == "amla_identity" else (2, 8 // stride, 8 // stride, features)
        assert jax.eval_shape(run).shape == expected, (name, stride)


@pytest.mark.parametrize(
    ("name", "c_in", "features", "stride", "expected"),
    [
        ("sep_conv_3x3", 8, 8, 1, 2 * (9 * 8 + 64 + 16)),
        ("sep_conv_5x5", 8, 8, 2, 2 * (25 * 8 + 64 + 16)),
        ("dil_conv_3x3", 8, 8, 1, 9 * 8 + 64 + 16),
        ("dil_sep_conv_5x5", 8, 8, 1, 2 * (25 * 8 + 64 + 16)),
        ("skip_connect", 8, 8, 1, 0),
        ("skip_connect", 6, 8, 2, 6 * 8 + 16),  # FactorizedReduce: C_in·C_out + 2·C_out
        ("identity", 8, 8, 2, 8 * 8 + 16),
        ("identity_conv", 6, 8, 1, 6 * 8 + 16),
        ("max_pool_3x3", 8, 8, 2, 0),
        ("avg_pool_3x3", 6, 8, 1, 6 * 8 + 16),  # NASNet's projection when widths differ
        ("conv_1x1", 6, 8, 2, 6 * 8 + 16),
        ("bottleneck_3x3", 8, 16, 2, 8 * 4 + 8 + 9 * 16 + 8 + 4 * 16 + 32),
        ("conv_7x1_1x7", 8, 8, 1, 7 * 64 * 2 + 16),
        ("none", 8, 8, 2, 0),
    ],
)
def test_op_parameter_counts(name, c_in, features, stride, expected):
    op = get_op(name).build(features, stride, 0.9, name="op")
    shapes = jax.eval_shape(lambda: _init(op, jnp.ones((1, 8, 8, c_in))))
    assert _num_params(shapes) == expected


def test_get_op_lists_valid_names():
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        get_op("sep_conv_9x9")


def test_drop_path_rules():
    assert get_op("sep_conv_3x3").drops(1, 8, 8)
    assert not get_op("skip_connect").drops(1, 8, 8)  # DARTS: identities are not dropped
    assert get_op("skip_connect").drops(2, 8, 8)  # ... but FactorizedReduce skips are
    assert not get_op("identity").drops(2, 8, 8)  # ENAS: identity never
    assert not get_op("identity_conv").drops(2, 8, 8)  # NASNet: `none` never


# --- specs ----------------------------------------------------------------------------
def _zoo_bodies():
    return {
        "darts_v2": zoo.darts_v2().body,
        "enas_micro": zoo.enas_micro().body,
        "amoebanet_b": zoo.amoebanet_b().body,
        "enas_macro": zoo.enas_macro().body,
        "amla_darts": spec_from_json(AMLA_DARTS).body,
    }


@pytest.mark.parametrize("name", sorted(_zoo_bodies()))
def test_json_round_trip(name):
    body = _zoo_bodies()[name]
    data = json.loads(json.dumps(body.to_json()))
    again = type(body).from_json(data)
    assert again == body
    assert again.to_json() == data
    assert hash(again) == hash(body)


def test_reduction_strides_default_and_explicit():
    reduce = dict(zoo.darts_v2().body.cells)["reduction"]
    strides = [(e.input, e.stride) for node in reduce.nodes for e in node.edges]
    assert all(stride == (2 if source < 2 else 1) for source, stride in strides)
    data = copy.deepcopy(TINY)
    data["cells"]["reduction"]["nodes"][0][0] = ["max_pool_3x3", 0, 1]
    data["cells"]["reduction"]["nodes"][0][1] = ["sep_conv_3x3", 1, 1]
    spec = MicroSpec.from_json(data)
    assert spec.to_json()["cells"]["reduction"]["nodes"][0][0] == ["max_pool_3x3", 0, 1]


def test_amla_darts_config_imports():
    spec = spec_from_json(AMLA_DARTS)
    body = spec.body
    assert body.type == "micro" and body.convention == "amla" and body.aux_kind == "dense"
    assert body.num_cells == 20 and body.network.count("aux") == 2
    normal = body.cell("normal_cell")
    assert normal.concat == (11,) and normal.nodes[0].edges[0].op == "amla_3x3sep"
    assert normal.nodes[5].combine == "concat"
    reduce = body.cell("reduction_cell")
    assert reduce.reduction and reduce.nodes[3].edges[0].op == "amla_3x3avgpool"
    assert reduce.nodes[0].edges[0].stride == 2
    assert NetworkSpec.from_json(spec.to_json()) == spec
    assert count_params(spec, (32, 32, 3), 10) > 0  # builds (abstractly) at full size


def test_amla_micro_file_reads_as_its_dag():
    # An AMLA micro task config on disk (tests/fixtures, written from amla_spec.md D.2):
    # add and concat nodes, strided and sized ops, an auxiliary head between cells.
    spec = load_spec(AMLA_FIXTURES / "config.micro.json")
    body = spec.body
    assert body.convention == "amla" and body.aux_kind == "dense"
    assert body.num_cells == 6 and body.network.count("aux") == 1
    normal, reduce = body.cell("normal_cell"), body.cell("reduction_cell")
    assert [len(n.edges) for n in normal.nodes] == [1, 1, 2, 1, 1, 2, 2]
    assert normal.nodes[5].combine == "add" and normal.nodes[6].combine == "concat"
    assert normal.concat == (8,) and normal.nodes[3].edges[0].op == "amla_3x3maxpool"
    assert reduce.reduction and reduce.nodes[1].edges[0].op == "amla_3x3dilated"
    assert reduce.nodes[2].edges[0].stride == 2 and reduce.nodes[2].edges[0].filters == 24
    assert spec.stem_width == 20 and spec_from_json(to_amla(spec)) == spec


def test_amla_micro_network_runs():
    data = copy.deepcopy(AMLA_DARTS)
    data["arch"]["network"] = ["normal_cell", "auxiliary_classifier", "reduction_cell"]
    model = build_model(spec_from_json(data), 10)
    x = jnp.ones((2, 16, 16, 3))

    @jax.jit
    def run(key):
        variables = model.init({"params": key}, x, train=True)
        rngs = {"dropout": key}
        return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])[0]

    logits, aux = run(_key())
    assert logits.shape == (2, 10) and len(aux) == 1 and aux[0].shape == (2, 10)
    assert bool(jnp.all(jnp.isfinite(logits)))


def _error(data_change, match):
    data = copy.deepcopy(TINY)
    data_change(data)
    with pytest.raises(SpecError, match=match):
        MicroSpec.from_json(data)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["cells"]["normal"]["nodes"][0][0].__setitem__(0, "sep_conv_9x9"),
         r"cells\.normal\.nodes\[0\]\.edges\[0\]\.op: unknown op 'sep_conv_9x9'; "
         r"valid: .*sep_conv_3x3"),
        (lambda d: d["cells"]["normal"]["nodes"][0][0].__setitem__(1, 5),
         r"nodes\[0\]\.edges\[0\]\.input: state 5 out of range 0\.\.1"),
        (lambda d: d["cells"]["normal"]["nodes"][0][0].append(3), r"stride: must be 1 or 2"),
        (lambda d: d["cells"]["normal"]["nodes"][0].__setitem__(0, ["sep_conv_3x3"]),
         r"edges\[0\]: an edge is \[op, input\]"),
        (lambda d: d["cells"]["normal"].__setitem__("concat", [2, 7]),
         r"cells\.normal\.concat: state 7 out of range 0\.\.2"),
        (lambda d: d["cells"]["normal"].__setitem__("concat", [2, 2]), r"lists a state twice"),
        (lambda d: d["cells"]["normal"].__setitem__("nodes", []), r"cells\.normal\.nodes"),
        (lambda d: d["cells"]["normal"]["nodes"][0][0].extend([2]),
         r"nodes\[0\]: its edges give different resolutions"),
        (lambda d: d["network"].append("reduce"),
         r"network\[4\]: unknown cell 'reduce'; valid: normal, reduction, aux"),
        (lambda d: d["network"].insert(0, "aux"), r"arch\.network: must start with a cell"),
        (lambda d: d.__setitem__("convention", "nasnett"), r"arch\.convention: unknown"),
        (lambda d: d.__setitem__("channels", 0), r"arch\.channels: must be a positive integer"),
        (lambda d: d.__setitem__("celss", {}), r"arch: unknown keys \['celss'\]"),
        (lambda d: d["cells"]["normal"]["nodes"][0][0].__setitem__(0, "amla_3x3"),
         r"amla_\* ops go with the amla convention"),
        (lambda d: d.__setitem__("aux_head", {"kind": "dense2"}), r"aux_head\.kind: unknown"),
        (lambda d: d["cells"].__setitem__("aux", d["cells"]["normal"]), r"reserved"),
    ],
)  # fmt: skip
def test_spec_errors_name_the_field(change, match):
    _error(change, match)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a["normal_cell"].__setitem__("node1", -2),
         r"arch\.normal_cell: node1 must be -1"),
        (lambda a: a["normal_cell"]["node3"]["node"].__setitem__("type", "3x3foo"),
         r"normal_cell\.node3\.node\.type: unknown AMLA op '3x3foo'; valid: .*3x3sep"),
        (lambda a: a["normal_cell"]["node3"].__setitem__("input", ["node1", "node2"]),
         r"an op node takes one input"),
        (lambda a: a["normal_cell"]["node3"].__setitem__("input", ["node5"]),
         r"'node5' is not an earlier node"),
        (lambda a: a["normal_cell"].pop("node4"), r"without gaps"),
        (lambda a: a["network"].append("widener"), r"unknown cell 'widener'"),
    ],
)  # fmt: skip
def test_amla_format_errors(change, match):
    data = copy.deepcopy(AMLA_DARTS["arch"])
    change(data)
    with pytest.raises(SpecError, match=match):
        from_amla_micro(data)


def test_our_format_rejects_amla_micro_dags():
    with pytest.raises(SpecError, match=r"AMLA's micro DAG format .* amla_jax\.amla\.load_spec"):
        MicroSpec.from_json(copy.deepcopy(AMLA_DARTS["arch"]))


def test_enas_macro_spec_forms_and_errors():
    layers = split_arc(" ".join(zoo.ENAS_MACRO_ARC))
    assert len(layers) == 24 and layers[5] == (3, 1, 1, 0, 1, 0)
    spec = EnasMacroSpec.from_json({"channels": 96, "arc": " ".join(zoo.ENAS_MACRO_ARC)})
    assert spec == zoo.enas_macro().body and spec.pool_layers == (7, 15)
    bad = [
        ({"channels": 8, "arc": "0 1"}, r"arch\.arc: 2 integers is not 1 \+ 2"),
        ({"channels": 8, "layers": [[0], [1]]}, r"arch\.layers\[1\]: needs an op id and 1 skip"),
        ({"channels": 8, "layers": [[7]]}, r"arch\.layers\[0\]: unknown op id 7; valid: 0 conv"),
        ({"channels": 8, "layers": [[0], [1, 2]]}, r"skip bits must be 0 or 1"),
        ({"channels": 8, "layers": [[0]], "pool_layers": [3]}, r"arch\.pool_layers"),
        ({"layers": [[0]]}, r"arch\.channels"),
    ]
    for data, match in bad:
        with pytest.raises(SpecError, match=match):
            EnasMacroSpec.from_json(data)


# --- bodies ---------------------------------------------------------------------------
def test_micro_body_drop_path_aux_and_batch_norm():
    body = MicroBody(MicroSpec.from_json(TINY), num_classes=10)
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 12))
    variables = jax.jit(lambda: _init(body, x))()
    assert set(variables) == {"params", "batch_stats"}
    assert "AuxHead0" in variables["params"] and "pre0" in variables["params"]["cell0"]

    @jax.jit
    def run(rate, key):
        def loss(params):
            (out, aux), updates = body.apply(
                {**variables, "params": params},
                x,
                train=True,
                drop_path_rate=rate,
                rngs={"dropout": key},
                mutable=["batch_stats"],
            )
            return jnp.mean(out**2) + jnp.mean(aux[0] ** 2), (out, aux, updates)

        (_, (out, aux, updates)), grads = jax.value_and_grad(loss, has_aux=True)(
            variables["params"]
        )
        out_eval, aux_eval = body.apply(variables, x, train=False)
        return out, aux, updates, out_eval, aux_eval, grads

    out0, aux, updates, out_eval, aux_eval, grads = run(0.0, _key(1))  # traced rate, as in training
    grads = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert sum(float(jnp.sum(jnp.abs(g))) > 0 for g in grads) > len(grads) // 2
    assert out0.shape == (4, 8, 8, 8) and len(aux) == 1 and aux[0].shape == (4, 10)
    assert aux_eval == () and not jnp.allclose(out_eval, out0)  # running vs batch statistics
    stats = ("cell0", "pre0", "BatchNorm_0", "mean")
    old, new = variables["batch_stats"], updates["batch_stats"]
    for key in stats:
        old, new = old[key], new[key]
    assert not jnp.allclose(old, new)
    out1, out2 = run(0.5, _key(1))[0], run(0.5, _key(2))[0]
    assert not jnp.allclose(out1, out2) and not jnp.allclose(out0, out1)
    # a Python 0.0 rate needs no dropout RNG at all
    plain = jax.eval_shape(lambda: body.apply(variables, x, train=True, mutable=["batch_stats"]))
    assert plain[0][0].shape == out0.shape


def test_conventions_preprocess_inputs_as_the_papers():
    def cell_params(spec, index):
        shapes = jax.eval_shape(lambda: _init(MicroBody(spec, 10), jnp.ones((1, 32, 32, 12))))
        return shapes["params"][f"cell{index}"]

    nasnet = zoo.amoebanet_b(4, 1).body
    assert "pre1" not in cell_params(nasnet, 0)  # h1 = the raw stem in the first cell
    assert "pre1" in cell_params(nasnet, 1)
    enas = zoo.enas_micro(4, 1).body
    assert {"pre0", "pre1", "layer_base"} <= set(cell_params(enas, 0))
    darts = zoo.darts_v2(4, 1).body
    first_after_reduction = cell_params(darts, 2)["pre0"]
    assert {"path1", "path2"} <= set(first_after_reduction)  # FactorizedReduce


def test_enas_macro_body_pools_every_kept_tensor():
    spec = EnasMacroSpec(split_arc(" ".join(zoo.ENAS_MACRO_ARC))[:6], 4)
    assert spec.pool_layers == (1, 3)
    body = EnasMacroBody(spec, num_classes=10)
    x = jnp.ones((2, 16, 16, 4))
    variables = jax.eval_shape(lambda: _init(body, x))
    pooled = [k for k in variables["params"] if k.startswith("pool")]
    assert len(pooled) == 3 + 5  # stem + 2 layers, then stem + 4 layers
    out, aux = jax.eval_shape(lambda: body.apply(_init(body, x), x, train=False))
    assert out.shape == (2, 4, 4, 16) and aux == ()


def test_every_spec_op_name_has_a_flax_op():
    # The spec (no JAX) lists the names an edge may use; nn builds each, and no more.
    from amla_jax.spec import MICRO_OPS as SPEC_OPS

    assert tuple(MICRO_OPS) == SPEC_OPS
