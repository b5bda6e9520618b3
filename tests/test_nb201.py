"""NAS-Bench-201: the arch string, the spec, and the network as NB201's code builds it."""

from __future__ import annotations

import json

import pytest

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
