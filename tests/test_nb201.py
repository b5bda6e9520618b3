"""NAS-Bench-201: the arch string, the spec, and the network as NB201's code builds it."""

from __future__ import annotations

import json
import math

import pytest
from test_cli import amla

from amla_jax.spec import (
    BODY_TYPES,
    NB201_EDGES,
    NB201_OPS,
    NB201Spec,
    NetworkSpec,
    SpecError,
    arch_string,
    nb201_network,
    parse_arch_string,
)

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
MIXED = "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


@pytest.mark.parametrize(
    "text", [BEST, MIXED, "+".join(["|none~0|", "|none~0|none~1|", "|none~0|none~1|none~2|"])]
)
def test_arch_string_round_trips(text):
    ops = parse_arch_string(text)
    assert len(ops) == len(NB201_EDGES) and set(ops) <= set(NB201_OPS)
    assert arch_string(ops) == text


def test_arch_string_lists_edges_in_nb201_order():
    ops = parse_arch_string(MIXED)
    assert dict(zip(NB201_EDGES, ops, strict=True)) == {
        (1, 0): "nor_conv_1x1",
        (2, 0): "avg_pool_3x3",
        (2, 1): "none",
        (3, 0): "skip_connect",
        (3, 1): "nor_conv_3x3",
        (3, 2): "none",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (42, "must be a string"),
        ("|none~0|+|none~0|none~1|", "needs 3 nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|", "unknown op 'conv'"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "must be 'op~1'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 must look like"),
    ],
)
def test_bad_arch_strings_say_what_is_wrong(text, says):
    with pytest.raises(SpecError, match=says):
        parse_arch_string(text)


def test_arch_string_rejects_bad_op_lists():
    with pytest.raises(SpecError, match="needs 6 op names"):
        arch_string(["none"] * 5)
    with pytest.raises(SpecError, match=r"ops\[2\]: unknown op 'sep_conv_3x3'"):
        arch_string(["none", "none", "sep_conv_3x3", "none", "none", "none"])


def test_spec_json_round_trips_and_reads_the_arch_string():
    spec = nb201_network(BEST, channels=8, cells_per_stage=2, num_classes=10, name="best")
    assert BODY_TYPES["nb201"] is NB201Spec and spec.body.type == "nb201"
    assert spec.body.arch == BEST and spec.stem_width == 8
    data = json.loads(spec.dumps())
    assert NetworkSpec.from_json(data) == spec
    data["arch"] = {"type": "nb201", "arch": BEST, "channels": 8, "cells_per_stage": 2}
    assert NetworkSpec.from_json(data) == spec
    assert nb201_network(list(parse_arch_string(BEST)), 8, 2, name="best") == spec


@pytest.mark.parametrize(
    ("arch", "says"),
    [
        ({"type": "nb201", "ops": ["none"] * 6, "arch": BEST}, "exactly one of 'ops'"),
        ({"type": "nb201"}, "exactly one of 'ops'"),
        ({"type": "nb201", "ops": ["none"] * 6, "width": 3}, "unknown keys"),
        ({"type": "nb201", "ops": ["none"] * 6, "channels": 0}, "arch.channels"),
        ({"type": "nb201", "ops": ["none"] * 6, "cells_per_stage": True}, "cells_per_stage"),
        ({"type": "nb201", "ops": ["none", "max"] + ["none"] * 4}, r"arch.ops\[1\]"),
        ({"type": "nb201", "arch": "|none~0|"}, "needs 3 nodes"),
    ],
)
def test_bad_specs_name_the_field(arch, says):
    data = nb201_network(BEST).to_json()
    data["arch"] = arch
    with pytest.raises(SpecError, match=says):
        NetworkSpec.from_json(data)


# --- the network -------------------------------------------------------------------------
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"  # fmt: skip
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"  # fmt: skip
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def reference_params(ops, channels=16, cells_per_stage=5, num_classes=10, in_channels=3) -> int:
    """NB201's parameter count, layer by layer from the reference code's shapes.

    D-X-Y/AutoDL-Projects xautodl/models/cell_infers/tiny_network.py (TinyNetwork),
    cells.py (InferCell) and cell_operations.py (ReLUConvBN with bias=not affine, i.e.
    none; affine BN = 2·C; Identity, Zero and POOLING at C_in == C_out have none;
    ResNetBasicblock: conv_a 3x3 + BN, conv_b 3x3 + BN, downsample avgpool + 1x1 conv
    without bias or BN). Stem: Conv2d(3, C, 3, bias=False) + BN(C); lastact BN(4C);
    classifier Linear(4C, classes) with bias.
    """
    edge = {"nor_conv_3x3": lambda c: 9 * c * c + 2 * c, "nor_conv_1x1": lambda c: c * c + 2 * c}
    total = in_channels * 9 * channels + 2 * channels  # stem
    for stage in range(3):
        c = channels * 2**stage
        if stage:  # ResNetBasicblock(c // 2, c, stride 2)
            total += (9 * (c // 2) * c + 2 * c) + (9 * c * c + 2 * c) + (c // 2) * c
        total += cells_per_stage * sum(edge.get(op, lambda c: 0)(c) for op in ops)
    c = 4 * channels
    return total + 2 * c + c * num_classes + num_classes


# NB201's published sizes (the NAS-Bench-201-v1_1-096897 data, e.g. as EvoXBench's and
# HPOBench's NB201 tables list them): 0.073306 MB (smallest cell) to 1.531546 MB (the
# all-3x3 cell) on CIFAR-10; 0.079156 / 1.537396 on CIFAR-100, 0.080456 / 1.538696 on
# ImageNet16-120 (only the classifier differs: 100 and 120 classes).
@pytest.mark.parametrize(
    ("arch", "shape", "classes", "params"),
    [
        (ALL_CONV3, (32, 32, 3), 10, 1_531_546),  # published max, CIFAR-10
        (ALL_NONE, (32, 32, 3), 10, 73_306),  # published min, CIFAR-10
        (ALL_SKIP, (32, 32, 3), 10, 73_306),
        (BEST, (32, 32, 3), 10, 1_288_506),
        (MIXED, (32, 32, 3), 10, 344_346),
        (ALL_CONV3, (32, 32, 3), 100, 1_537_396),  # published max, CIFAR-100
        (ALL_NONE, (16, 16, 3), 120, 80_456),  # published min, ImageNet16-120
    ],
)
def test_param_counts_equal_the_reference_implementation(arch, shape, classes, params):
    from amla_jax.nn import count_params  # noqa: PLC0415  (JAX only where needed)

    ops = parse_arch_string(arch)
    assert reference_params(ops, num_classes=classes) == params
    assert count_params(nb201_network(arch, num_classes=classes), shape, classes) == params


@pytest.mark.parametrize("shape", [(32, 32, 3), (8, 8, 1)])
def test_forward_shapes(shape):
    import jax  # noqa: PLC0415

    from amla_jax.nn import build_model, init_variables  # noqa: PLC0415

    model = build_model(nb201_network(MIXED), num_classes=10)

    def forward(key, x):
        variables = init_variables(model, key, shape)
        return model.apply(variables, x, train=False)

    x = jax.ShapeDtypeStruct((3, *shape), jax.numpy.float32)
    logits, aux = jax.eval_shape(forward, jax.random.key(0), x)  # traced, not compiled
    assert logits.shape == (3, 10) and aux == ()


def test_stem_must_match_the_cell_width():
    from amla_jax.nn import count_params  # noqa: PLC0415

    data = nb201_network(BEST).to_json()
    data["stem"][0][0]["outputs"] = 8
    with pytest.raises(SpecError, match="arch.channels"):
        count_params(NetworkSpec.from_json(data), (8, 8, 1), 10)


@pytest.mark.parametrize(
    ("arch", "cut_off"),
    [
        (ALL_NONE, True),
        ("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", True),
        (MIXED, False),  # the control: a connected cell's logits do depend on the image
    ],
)
def test_a_cell_whose_output_is_cut_off_ignores_the_input(arch, cut_off):
    """NB201's ``Zero`` returns ``x.mul(0.)``, so a cell whose output node has no nonzero
    path from its input outputs zeros; the reduction blocks and lastact then see only
    zeros and the logits are the same for every image (NB201 scores it 10%)."""
    import jax  # noqa: PLC0415

    from amla_jax.nn import build_model, init_variables  # noqa: PLC0415

    model = build_model(nb201_network(arch, channels=4, cells_per_stage=1), num_classes=10)

    @jax.jit
    def logits(key, x):
        variables = init_variables(model, key, (8, 8, 1))
        train_logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])[0]
        return train_logits, model.apply(variables, x, train=False)[0]

    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    for out in logits(jax.random.key(0), x):
        assert bool(jax.numpy.allclose(out, out[0], atol=1e-6)) == cut_off, out


@pytest.mark.slow
def test_model_nb201_trains_end_to_end_on_digits(tmp_path):
    """``python -m amla_jax algo=fixed model=nb201 optim=nb201 dataset=digits``, a few
    steps, one cell per stage: the same code path as the 15-cell network, which compiled
    1.6x slower (cold cache, 2 busy cores: 113 s against 70 s for the train step)."""
    proc = amla(
        "algo=fixed",
        "model=nb201",
        "optim=nb201",
        "dataset=digits",
        "debug=smoke",
        "algo.iterations=1",
        "model.network.arch.cells_per_stage=1",
        f"hydra.run.dir={tmp_path}",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    spec = NetworkSpec.from_json(row["spec"])
    assert spec.body == NB201Spec(parse_arch_string(BEST), 16, 1)
    assert row["num_params"] == reference_params(spec.body.ops, 16, 1, 10, in_channels=1)
    assert row["steps"] == 4 and row["compile_seconds"] > 0
    metrics = row["metrics"]
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["test/loss"]), metrics


def test_model_nb201_takes_any_cell_from_the_command_line():
    from omegaconf import OmegaConf  # noqa: PLC0415

    from amla_jax.compose import compose_config  # noqa: PLC0415

    config = compose_config(["model=nb201", f'model.network.arch.arch="{MIXED}"'])
    spec = NetworkSpec.from_json(OmegaConf.to_container(config.model.network))
    assert spec == nb201_network(MIXED, name="nb201")
    default = compose_config(["model=nb201"]).model.network
    assert NetworkSpec.from_json(OmegaConf.to_container(default)) == nb201_network(
        BEST, name="nb201"
    )
