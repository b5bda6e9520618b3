"""The one-shot supernets: shapes, the arch <-> weights maps, and that one-hot weights
compute the discrete cells (amla_jax.oneshot.supernet, nn.supernet_nb201, nn.supernet_darts).

Networks are tiny (channels 4, one cell per stage / 3 layers, 8x8 inputs) and applied
without jit: at this size op-by-op dispatch is cheaper than compiling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amla_jax.errors import UserError
from amla_jax.nn.nb201 import NB201Cell
from amla_jax.nn.supernet_darts import DartsSearchCell
from amla_jax.nn.supernet_nb201 import NB201MixedCell
from amla_jax.oneshot.supernet import SupernetError, make_supernet
from amla_jax.spaces import darts as darts_space
from amla_jax.spaces import nb201 as nb201_space
from amla_jax.spec.nb201 import NB201_EDGES

TINY = {"nb201": {"channels": 4, "cells_per_stage": 1}, "darts": {"channels": 4, "layers": 3}}
NONE_NB201 = nb201_space.OPS.index("none")


def uniform(supernet):
    return {kind: jnp.full(shape, 1.0 / shape[1]) for kind, shape in supernet.alpha_shapes.items()}


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_supernet_logits_and_batch_stats_have_the_right_shapes(space):
    supernet = make_supernet(space, {}, num_classes=10, **TINY[space])
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    weights = uniform(supernet)
    variables = supernet.model.init(jax.random.key(1), x, weights, train=False)
    assert set(variables) == {"params", "batch_stats"}
    logits = supernet.model.apply(variables, x, weights, train=False)
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))
    logits, updates = supernet.model.apply(
        variables, x, weights, train=True, mutable=["batch_stats"]
    )
    assert logits.shape == (2, 10) and set(updates) == {"batch_stats"}
    shapes = {"nb201": {"cell": (6, 5)}, "darts": {"normal": (14, 8), "reduce": (14, 8)}}
    assert dict(supernet.alpha_shapes) == shapes[space]


def reference_weights(space: str, arch) -> dict[str, np.ndarray]:
    """The one-hot weights of ``arch`` written out with loops."""
    if space == "nb201":
        out = np.zeros((6, 5), np.float32)
        for edge, op in enumerate(arch):
            out[edge, op] = 1.0
        return {"cell": out}
    out = {}
    half = len(arch) // 2
    for c, kind in enumerate(("normal", "reduce")):
        cell, rows = arch[c * half : (c + 1) * half], np.zeros((14, 8), np.float32)
        row_of = {}  # (node, input) -> row in DARTS' edge order
        for node in range(4):
            for source in range(node + 2):
                row_of[(node, source)] = len(row_of)
        for node in range(4):
            for source, op in (cell[4 * node : 4 * node + 2], cell[4 * node + 2 : 4 * node + 4]):
                rows[row_of[(node, source)], op] += 1.0
        out[kind] = rows
    return out


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_weights_of_arch_under_jit_equals_the_loop_reference(space):
    supernet = make_supernet(space, {}, num_classes=10, **TINY[space])
    to_weights = jax.jit(supernet.weights_of_arch)
    archs = [supernet.space.sample(jax.random.key(i)) for i in range(8)]
    if space == "darts":  # a node taking one input twice, with one op and with two
        archs.append((0, 3, 0, 3, 2, 4, 2, 5) * 2 + (1, 1, 0, 0) * 4)
    for arch in archs:
        got = to_weights(jnp.asarray(arch))
        want = reference_weights(space, arch)
        assert set(got) == set(want)
        for kind in want:
            np.testing.assert_array_equal(np.asarray(got[kind]), want[kind], err_msg=str(arch))


def copy_discrete_params(mixed: dict, discrete: dict, ops: tuple[str, ...]) -> dict:
    """The mixed cell's params with each chosen op's kernel taken from the discrete cell
    (``edge2_0_conv`` -> row 1 of ``edges/nor_conv_3x3_conv``: edges are stacked in
    `NB201_EDGES` order)."""
    mixed = jax.tree.map(lambda a: a, mixed)
    for e, ((target, source), op) in enumerate(zip(NB201_EDGES, ops, strict=True)):
        if op.startswith("nor_conv"):
            stacked = mixed["edges"][f"{op}_conv"]["kernel"]
            kernel = discrete[f"edge{target}_{source}_conv"]["kernel"]
            mixed["edges"][f"{op}_conv"]["kernel"] = stacked.at[e].set(kernel)
    return mixed


@pytest.mark.parametrize(
    "arch_string",
    [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    ],
)
def test_nb201_mixed_cell_with_one_hot_weights_is_the_discrete_cell(arch_string):
    arch = nb201_space.from_arch_string(arch_string)
    ops = tuple(nb201_space.OPS[i] for i in arch)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 4))
    discrete = NB201Cell(ops, 4)
    d_vars = discrete.init(jax.random.key(1), x, train=False)
    mixed = NB201MixedCell(4)
    weights = make_supernet("nb201", {}, 10, **TINY["nb201"]).weights_of_arch(jnp.asarray(arch))
    m_vars = mixed.init(jax.random.key(2), x, weights["cell"], train=False)
    params = copy_discrete_params(m_vars["params"], d_vars["params"], ops)
    # Both BNs normalise by the batch (training); the discrete one's gamma, beta are 1, 0.
    want, _ = discrete.apply(d_vars, x, train=True, mutable=["batch_stats"])
    got, _ = mixed.apply(
        {**m_vars, "params": params}, x, weights["cell"], train=True, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    # The check can fail: the supernet's own (different) kernels give another output.
    other, _ = mixed.apply(m_vars, x, weights["cell"], train=True, mutable=["batch_stats"])
    if "nor_conv_3x3" in ops:
        assert not np.allclose(np.asarray(other), np.asarray(want), atol=1e-3)


def test_nb201_none_only_weights_give_zeros_from_the_cell():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
    weights = jax.nn.one_hot(jnp.full((6,), NONE_NB201), 5)
    cell = NB201MixedCell(4)
    variables = cell.init(jax.random.key(1), x, weights, train=False)
    out, _ = cell.apply(variables, x, weights, train=True, mutable=["batch_stats"])
    assert out.shape == x.shape and not np.any(np.asarray(out))
    uniform_out, _ = cell.apply(
        variables, x, jnp.full((6, 5), 0.2), train=True, mutable=["batch_stats"]
    )
    assert np.any(np.asarray(uniform_out))


@pytest.mark.parametrize("reduction", [False, True])
def test_darts_none_only_weights_give_zeros_from_the_cell(reduction):
    s = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
    none = darts_space.OPS.index("none")
    weights = jax.nn.one_hot(jnp.full((14,), none), 8)
    cell = DartsSearchCell(darts_space.OPS, 4, reduction, reduction_prev=False)
    variables = cell.init(jax.random.key(1), s, s, weights, train=False)
    out = cell.apply(variables, s, s, weights, train=False)
    size = 4 if reduction else 8
    assert out.shape == (2, size, size, 16) and not np.any(np.asarray(out))
    assert np.any(np.asarray(cell.apply(variables, s, s, jnp.full((14, 8), 0.125), train=False)))


def test_nb201_derive_takes_the_argmax_op_of_every_edge():
    supernet = make_supernet("nb201", {}, 10, **TINY["nb201"])
    alphas = np.zeros((6, 5))
    want = (NONE_NB201, 1, 2, 3, 4, 3)
    for edge, op in enumerate(want):
        alphas[edge, op] = 1.0 + edge
    assert supernet.derive({"cell": alphas}) == want
    assert supernet.derive({"cell": np.zeros((6, 5))}) == (0,) * 6  # ties: the first op


def darts_alphas(strong: dict[tuple[int, int], tuple[int, float]]) -> np.ndarray:
    """(14, 8) alphas, all 0 except ``(node, input) -> (op, value)``, and a large
    ``none`` on every edge (which derive must never pick)."""
    alphas = np.zeros((14, 8))
    alphas[:, darts_space.OPS.index("none")] = 5.0
    row = 0
    for node in range(4):
        for source in range(node + 2):
            if (node, source) in strong:
                op, value = strong[(node, source)]
                alphas[row, op] = value
            row += 1
    return alphas


def test_darts_derive_keeps_two_distinct_strongest_inputs_per_node_never_none():
    supernet = make_supernet("darts", {}, 10, **TINY["darts"])
    normal = darts_alphas(
        {(0, 1): (4, 3.0), (0, 0): (5, 2.0), (1, 2): (7, 4.0), (1, 0): (3, 1.0),
         (2, 3): (1, 2.0), (2, 1): (6, 3.0), (3, 4): (2, 1.5), (3, 2): (4, 1.0)}
    )  # fmt: skip
    reduce = darts_alphas({(k, k + 1): (6, 2.0) for k in range(4)})
    arch = supernet.derive({"normal": normal, "reduce": reduce})
    assert arch[:16] == (1, 4, 0, 5, 2, 7, 0, 3, 1, 6, 3, 1, 4, 2, 2, 4)
    # Reduce: one strong input per node; the second is the lowest other input (ties),
    # with the lowest non-none op (all its non-none weights tie).
    assert arch[16:] == (1, 6, 0, 1, 2, 6, 0, 1, 3, 6, 0, 1, 4, 6, 0, 1)
    for cell in (arch[:16], arch[16:]):
        for node in range(4):
            a, op_a, b, op_b = cell[4 * node : 4 * node + 4]
            assert a != b and 0 <= a < node + 2 and 0 <= b < node + 2
            assert darts_space.OPS[op_a] != "none" and darts_space.OPS[op_b] != "none"
    assert supernet.space.to_spec(arch) is not None  # a trainable genotype


def test_darts_derive_compares_edges_after_the_softmax_as_darts_does():
    # Edge (0, 0) has the larger raw alpha, but a large `none` on it too: after the
    # softmax over its row its best op weighs less than edge (0, 1)'s.
    supernet = make_supernet("darts", {}, 10, **TINY["darts"])
    alphas = np.zeros((14, 8))
    alphas[0, 4], alphas[0, 0] = 3.0, 10.0
    alphas[1, 5] = 2.0
    alphas[2, 6] = 0.5  # node 0 has only two inputs: both are kept
    arch = supernet.derive({"normal": alphas, "reduce": alphas})
    assert arch[:4] == (1, 5, 0, 4)


def darts_search_params(channels: int, layers: int, num_classes: int, in_channels: int) -> int:
    """The parameter count of quark0/darts ``model_search.Network`` from its layer
    shapes: stem conv + affine BN; per cell the two 1x1 preprocessing convs (the
    FactorizedReduce's two halves count the same), per edge sep_conv_3x3 (2 x (9C + C²)),
    sep_conv_5x5 (2 x (25C + C²)), dil_conv_3x3 (9C + C²), dil_conv_5x5 (25C + C²), and a
    FactorizedReduce skip (C²) on stride-2 edges; search BNs are affine=False (no
    parameters); the linear classifier with bias. The alphas are not parameters."""
    c_stem = 3 * channels
    total = 9 * in_channels * c_stem + 2 * c_stem
    c_pp, c_p, c = c_stem, c_stem, channels
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c *= 2 if reduction else 1
        total += (c_pp + c_p) * c
        for node in range(4):
            for source in range(node + 2):
                total += 102 * c + 6 * c * c + (c * c if reduction and source < 2 else 0)
        c_pp, c_p = c_p, 4 * c
    return total + c_p * num_classes + num_classes


def count(supernet, input_shape) -> int:
    x = jnp.zeros((1, *input_shape))
    shapes = jax.eval_shape(
        lambda: supernet.model.init(jax.random.key(0), x, uniform(supernet), train=False)
    )
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))


def test_darts_search_network_has_the_darts_codes_parameter_count():
    # DARTS' CIFAR-10 search log prints "param size = 1.930618MB"
    # (utils.count_parameters_in_MB: parameters / 1e6, alphas excluded), the number the
    # paper's code gives for C=16, 8 layers, 10 classes: 1,930,618 exactly, ours too.
    assert darts_search_params(16, 8, 10, 3) == 1_930_618
    supernet = make_supernet("darts", {}, num_classes=10, channels=16, layers=8)
    assert count(supernet, (8, 8, 3)) == 1_930_618  # the count does not depend on H, W
    tiny = make_supernet("darts", {}, num_classes=10, **TINY["darts"])
    assert count(tiny, (8, 8, 1)) == darts_search_params(4, 3, 10, 1)


@pytest.mark.parametrize(
    ("space", "options", "sizes", "says"),
    [
        ("nasbench101", {}, {}, "no supernet for 'nasbench101'; valid: nb201, darts"),
        ("nb201", {}, {"channels": 0}, "channels must be a positive integer"),
        ("nb201", {}, {"layers": 8}, "unknown size 'layers'"),
        ("darts", {}, {"layers": 2}, "layers must be at least 3"),
        ("darts", {}, {"channels": 2.5}, "channels must be a positive integer"),
        ("darts", {"width": 3}, {}, "search_space darts: bad options"),
    ],
)
def test_bad_supernet_arguments_are_one_line_user_errors(space, options, sizes, says):
    with pytest.raises(SupernetError, match=says) as info:
        make_supernet(space, options, 10, **sizes)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
