"""An envelope cell's branches as one convolution per kernel size
(`amla_jax.nn.envelope_fused`, issue 14):
the same variables and the same function as the per-branch cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fakes import CELL

from amla_jax.nn import build_model, count_flops, envelope_fused
from amla_jax.nn.envelope_fused import FUSED_MAX_MACS, GROUP_MIN_MACS, fused_kernel, fuses
from amla_jax.nn.macro import MacroBody
from amla_jax.spec import MacroSpec, NetworkSpec
from amla_jax.train.compile_options import CLASSIC_EMITTERS, compile_lowered

ENVELOPE = CELL  # AMLA's full envelope cell
# NAC's digits network in small: 8x8, 4x4 and 2x2 maps (the last crops 5x5 and 7x7 to
# 3x3), a pruned cell, skips, and a cell whose kernel sizes interleave.
ARCH = {
    "type": "macro",
    "network": [
        {"filters": ENVELOPE, "outputs": 12, "inputs": []},
        {"widener": {}},
        {"filters": {"Branch2": "3x3", "Branch6": "7x7sep"}, "outputs": 8, "inputs": [1]},
        {"widener": {}},
        {"filters": ENVELOPE, "outputs": 12, "inputs": [3]},
        # sizes 3, 1, 3: one convolution per size, the outputs put back in branch order
        {"filters": {"Branch1": "3x3", "Branch2": "1x1", "Branch3": "3x3sep"}, "outputs": 9},
    ],
}
BODY = MacroSpec.from_json(ARCH)


def _run(fuse: bool, x: jax.Array, group_min_macs: int = envelope_fused.GROUP_MIN_MACS):
    body = MacroBody(BODY, stem_width=8, fuse_branches=fuse)

    def run(x):
        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        variables = body.init(rngs, x, train=True)
        evaluated, _ = body.apply(variables, x, train=False)

        def loss(params):
            out, _ = body.apply({**variables, "params": params}, x, train=False)
            return jnp.sum(jnp.sin(out))

        rngs = {"dropout": jax.random.key(2)}
        _, updates = body.apply(variables, x, train=True, rngs=rngs, mutable=True)
        return variables, evaluated, jax.grad(loss)(variables["params"]), updates

    # One program (op by op, the per-branch cells compile for minutes), at -O0: seconds.
    saved, envelope_fused.GROUP_MIN_MACS = envelope_fused.GROUP_MIN_MACS, group_min_macs
    try:
        lowered = jax.jit(run).lower(x)
    finally:
        envelope_fused.GROUP_MIN_MACS = saved
    return compile_lowered(lowered, {"xla_backend_optimization_level": 0, **CLASSIC_EMITTERS})(x)


def _flat(tree) -> dict:
    return {
        jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)
    }


@pytest.fixture(scope="module", params=["padded", "by_size"])
def both(request):
    """The per-branch run and a fused one: every cell's kernels padded to one convolution
    (these cells are all below ``GROUP_MIN_MACS``), or one convolution per kernel size."""
    x = jax.random.normal(jax.random.key(3), (4, 8, 8, 8))
    group_min_macs = envelope_fused.GROUP_MIN_MACS if request.param == "padded" else 0
    return _run(False, x), _run(True, x, group_min_macs)


def test_the_fused_cells_have_the_per_branch_variables_names_shapes_and_values(both):
    (variables, *_), (fused_variables, *_) = both
    a, b = _flat(variables), _flat(fused_variables)
    assert a.keys() == b.keys()
    assert "['params']['Cell1']['Branch3']['pointwise']['kernel']" in a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_the_fused_cells_compute_the_per_branch_function_and_gradients(both):
    (_, evaluated, grads, _), (_, fused_evaluated, fused_grads, _) = both
    np.testing.assert_allclose(fused_evaluated, evaluated, rtol=1e-4, atol=1e-5)
    a, b = _flat(grads), _flat(fused_grads)
    assert a.keys() == b.keys()
    for name in a:
        scale = float(np.max(np.abs(a[name]))) + 1e-6
        np.testing.assert_allclose(b[name], a[name], atol=1e-4 * scale, err_msg=name)


def test_the_first_cells_statistics_match_before_dropout_draws_differ(both):
    # BatchNorm running averages and MeanSSS are taken before dropout, so the first cell's
    # agree; later cells see a different (equally distributed) dropout mask.
    (*_, updates), (*_, fused_updates) = both
    for collection in ("batch_stats", "nac_stats"):
        a, b = _flat(updates[collection]["Cell1"]), _flat(fused_updates[collection]["Cell1"])
        assert a.keys() == b.keys() and len(a) == 12  # 6 branches x (mean, var) / (sum, count)
        for name in a:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_only_cells_of_measured_sizes_with_odd_kernels_run_fused():
    envelope = tuple(ENVELOPE.items())
    assert fused_kernel(envelope, 8, 8) == 7
    assert fused_kernel(envelope, 2, 2) == 3  # 5x5 and 7x7 reach only 3x3 of a 2x2 map
    assert fused_kernel((("Branch1", "1x1"), ("Branch2", "4x4")), 8, 8) is None
    assert fuses(envelope, 8, 8, 16, 12)  # digits' first cell
    assert fuses(envelope, 2, 2, 76, 60)  # and its last
    assert fuses(envelope, 8, 8, 254, 252)  # AMLA's CIFAR-10 EnvelopeNet's largest cell
    assert not fuses(envelope, 56, 56, 128, 126)  # unmeasured: per branch
    assert not fuses(envelope, 8, 2, 16, 12)  # not square: 7x7 crops to 7x3
    assert 8 * 8 * 49 * 254 * 252 <= FUSED_MAX_MACS < 56 * 56 * 49 * 128 * 126
    # digits' cells (AMLA's widths) are one padded convolution, CIFAR-10's one per size
    assert 8 * 8 * 49 * 64 * 60 < GROUP_MIN_MACS <= 32 * 32 * 49 * 64 * 60


def test_off_cpu_cells_run_per_branch(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not fuses(tuple(ENVELOPE.items()), 8, 8, 16, 12)


def test_flops_are_the_networks_own_not_the_fused_convolutions():
    spec = NetworkSpec.from_json(
        {
            "format": "amla_jax.spec/1",
            "name": "digits-like",
            "stem": [[{"block": "conv2d", "kernel_size": [1, 1], "outputs": 8}]],
            "arch": ARCH,
            "head": [{"block": "reduce_mean"}, {"block": "fc-final", "outputs": 10}],
        }
    )

    def flops(model) -> float:
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))))
        x = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
        cost = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, x).cost_analysis()
        return float(cost["flops"])

    per_branch = flops(build_model(spec, 10, fuse_branches=False))
    assert count_flops(spec, (8, 8, 1), 10) == per_branch
    assert flops(build_model(spec, 10)) > 1.2 * per_branch  # separable branches run dense


@pytest.mark.parametrize(
    ("size", "channels", "outputs", "convolutions"),
    [(8, 16, 12, 1), (32, 64, 60, 3)],  # digits' first cell; CIFAR-10's first (192M)
)
def test_a_cell_from_group_min_macs_on_runs_one_convolution_per_kernel_size(
    size, channels, outputs, convolutions
):
    # One padded 7x7 convolution below GROUP_MIN_MACS; from it 3x3, 5x5 and 7x7 ones (the
    # 1x1 branch is a matmul on CPU).
    body = MacroBody(
        MacroSpec.from_json(
            {"type": "macro", "network": [{"filters": ENVELOPE, "outputs": outputs}]}
        ),
        stem_width=channels,
    )
    x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
    variables = jax.eval_shape(lambda x: body.init(jax.random.key(0), x, train=False), x)
    jaxpr = jax.make_jaxpr(lambda v, x: body.apply(v, x, train=False))(variables, x)
    found = [str(e) for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
    assert len(found) == convolutions
