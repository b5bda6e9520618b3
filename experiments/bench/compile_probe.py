"""Issue 14's probe, kept: a train step written in plain JAX, shaped like a digits
EnvelopeNet, beside amla_jax's own step for the same network, compiled the way a search
compiles a candidate. It answers "what makes our programs bigger to compile" one
difference at a time.

Rows (cumulative: each adds to the row above it one thing amla_jax's step does):

- ``plain``: the issue's probe. Stem 1x1 conv, cells of six branches (1x1, 3x3, 3x3sep,
  5x5, 5x5sep, 7x7sep) concatenated, 2x2 max-pool wideners; each branch conv →
  batch-statistics normalisation → bias → ReLU → dropout (its own key); global average
  pool → dense; softmax cross-entropy; Optax global-norm clip 5 + decayed weights +
  Nesterov momentum; a weight EMA. XLA's convolutions (depthwise as a grouped one).
- ``+shift``: amla_jax's CPU depthwise path (`amla_jax.nn.convs.depthwise_shift`).
- ``+matmul1x1``: 1x1 convolutions as matmuls (`amla_jax.nn.convs.conv_general_dilated`).
- ``+taps``: NAC's per-branch mean-square statistics as extra outputs.
- ``+l2``: AMLA's L2 term in the loss instead of decayed weights.
- ``+tensor_clip``: AMLA's per-tensor clip (`amla_jax.optim.clip_by_tensor_norm`) instead
  of the global-norm clip.
- ``amla_jax/branch``: the real thing for the same architecture (a spec written from the
  same widths, no skips, no LRN): `build_model`, `create_train_state`, `make_train_step`
  with ``OptimConfig()``, every branch computed on its own (``fuse_branches=False``).
- ``amla_jax``: the same, as a search runs it: small cells' branches as one convolution
  per kernel size (`amla_jax.nn.envelope_fused`).

Every program is compiled as a search compiles it: XLA -O1 on CPU
(`amla_jax.runner.prefer_fast_compiles`) and `amla_jax.train.compile_options`'s options. Each row prints lower and compile seconds, the compiled program's fusion
count and the median step, and its compile time and fusions as ratios to ``plain``
measured in the same run. XLA:CPU's compile time follows the fusion count (experiments/
bench/README.md), so the fusions column says where the compile goes; compile seconds on a
shared 2-core machine vary by about ±20% run to run.

Synopsis::

    python experiments/bench/compile_probe.py --json probe.json   # 6 cells, 8x8x1, batch 50
    python experiments/bench/compile_probe.py --tiny              # what CI runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from amla_jax.config import OptimConfig
from amla_jax.nn import build_model, convs
from amla_jax.optim import clip_by_tensor_norm, make_optimizer
from amla_jax.runner import prefer_fast_compiles
from amla_jax.spec import NetworkSpec
from amla_jax.train import create_train_state, make_train_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import lower_and_compile, run_steps  # noqa: E402

prefer_fast_compiles()  # XLA -O1 on CPU, as a search compiles (before JAX starts its backend)

OPS = ("1x1", "3x3", "3x3sep", "5x5", "5x5sep", "7x7sep")
FEATURES = ("shift", "matmul1x1", "taps", "l2", "tensor_clip")
NUM_CLASSES = 10
DROPOUT = 0.2


def conv(x, kernel, features: frozenset, groups: int = 1):
    if "matmul1x1" in features and kernel.shape[:2] == (1, 1) and groups == 1:
        return convs.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if "shift" in features and groups > 1:
        pad = (kernel.shape[0] - 1) // 2
        return convs.depthwise_shift(x, kernel, 1, 1, ((pad, pad), (pad, pad)))
    return lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )  # fmt: skip


def init_params(key, channels: int, stem: int, widths: list[int]) -> dict:
    """He-normal kernels and zero biases for the probe network."""

    def normal(key, shape):
        fan_in = np.prod(shape[:-1])
        return jax.random.normal(key, shape) * np.sqrt(2.0 / fan_in)

    keys = iter(jax.random.split(key, 2 + 2 * len(OPS) * len(widths)))
    params, cin = {"stem": normal(next(keys), (1, 1, channels, stem))}, stem
    for cell, width in enumerate(widths):
        per_branch = width // len(OPS)
        for op in OPS:
            k = int(op[0])
            if op.endswith("sep"):
                branch = {"depthwise": normal(next(keys), (k, k, 1, cin))}
                branch["pointwise"] = normal(next(keys), (1, 1, cin, per_branch))
            else:
                branch = {"conv": normal(next(keys), (k, k, cin, per_branch))}
                next(keys)
            branch["bias"] = jnp.zeros((per_branch,))
            params[f"cell{cell}_{op}"] = branch
        cin = per_branch * len(OPS)
    params["dense"] = {"kernel": normal(next(keys), (cin, NUM_CLASSES))}
    params["dense"]["bias"] = jnp.zeros((NUM_CLASSES,))
    return params


def forward(params, x, key, widths, wideners, features):
    x, taps = conv(x, params["stem"], features), []
    for cell in range(len(widths)):
        if cell in wideners:
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
        outs = []
        for op in OPS:
            p = params[f"cell{cell}_{op}"]
            if op.endswith("sep"):
                y = conv(conv(x, p["depthwise"], features, x.shape[-1]), p["pointwise"], features)
            else:
                y = conv(x, p["conv"], features)
            mean = y.mean((0, 1, 2))
            var = jnp.square(y - mean).mean((0, 1, 2))
            y = jax.nn.relu((y - mean) * lax.rsqrt(var + 1e-3) + p["bias"])
            if "taps" in features:
                taps.append(jnp.mean(jnp.square(y), (0, 1, 2)))
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1.0 - DROPOUT, y.shape)
            outs.append(jnp.where(keep, y / (1.0 - DROPOUT), 0.0))
        x = jnp.concatenate(outs, -1)
    return x.mean((1, 2)) @ params["dense"]["kernel"] + params["dense"]["bias"], taps


def probe_step(widths, wideners, features: frozenset):
    """``(tx, step)``: the probe's optimiser and its jitted train step."""
    clip = clip_by_tensor_norm(5.0) if "tensor_clip" in features else optax.clip_by_global_norm(5.0)
    decay = [] if "l2" in features else [optax.add_decayed_weights(3e-4)]
    tx = optax.chain(clip, *decay, optax.sgd(0.1, momentum=0.9, nesterov=True))

    def loss_fn(params, batch, key):
        logits, taps = forward(params, batch["image"], key, widths, wideners, features)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        if "l2" in features:
            loss = loss + 3e-4 * sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))
        return loss, taps

    def step(state, batch, key):
        params, ema, opt_state = state
        (loss, taps), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = optax.incremental_update(params, ema, 0.01)
        return (params, ema, opt_state), {"loss": loss, "taps": taps}

    return tx, jax.jit(step, donate_argnums=0)


def network_spec(channels_stem: int, widths, wideners) -> NetworkSpec:
    """The probe's architecture as an amla_jax spec (six-branch cells, no skips, no LRN)."""
    body = []
    for cell, width in enumerate(widths):
        if cell in wideners:
            body.append({"widener": {}})
        body.append(
            {"filters": {f"Branch{i + 1}": op for i, op in enumerate(OPS)}, "outputs": width}
        )
    return NetworkSpec.from_json({
        "format": "amla_jax.spec/1", "name": "probe",
        "stem": [[{"block": "conv2d", "kernel_size": [1, 1], "outputs": channels_stem}]],
        "arch": {"type": "macro", "network": body},
        "head": [{"block": "reduce_mean"}, {"block": "fc-final", "outputs": NUM_CLASSES}],
    })  # fmt: skip


def measure(step, state, batch, args) -> dict:
    key = jax.random.key(args.seed)
    compiled, lower_s, compile_s = lower_and_compile(step, state, batch, key)
    fusions = compiled.as_text().count(" fusion(")
    state, metrics, times = run_steps(compiled, state, batch, key, args.warmup + args.steps)
    loss = float(metrics["loss"] if "loss" in metrics else metrics["train/loss"])
    if not np.isfinite(loss):
        raise SystemExit(f"compile_probe: the loss is {loss}")
    return {
        "loss": loss,
        "lower_s": lower_s,
        "compile_s": compile_s,
        "fusions": fusions,
        "step_ms": 1000 * statistics.median(times[args.warmup :]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 64, 128, 128, 256, 256])
    parser.add_argument("--wideners", type=int, nargs="*", default=[2, 4],
                        help="cells preceded by a 2x2 max-pool")  # fmt: skip
    parser.add_argument("--stem", type=int, default=32)
    parser.add_argument("--image", type=int, nargs=3, default=[8, 8, 1])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="1 cell of width 6, batch 2, 1 step")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.widths, args.wideners, args.stem, args.batch = [6], [], 4, 2
        args.steps, args.warmup = 1, 0
    rng = np.random.default_rng(args.seed)
    batch = {
        "image": jnp.asarray(rng.standard_normal((args.batch, *args.image), dtype=np.float32)),
        "label": jnp.asarray(rng.integers(0, NUM_CLASSES, args.batch).astype(np.int32)),
    }
    wideners = frozenset(args.wideners)
    rows = []
    for n in range(len(FEATURES) + 1):
        features = frozenset(FEATURES[:n])
        tx, step = probe_step(args.widths, wideners, features)
        params = init_params(jax.random.key(args.seed), args.image[-1], args.stem, args.widths)
        state = (params, jax.tree.map(jnp.copy, params), tx.init(params))
        rows.append({"row": f"+{FEATURES[n - 1]}" if n else "plain",
                     **measure(step, state, batch, args)})  # fmt: skip
        print(_line(rows[-1], rows[0]), flush=True)
    spec = network_spec(args.stem, args.widths, wideners)
    # amla_jax's own step, per branch (the probe's structure), then as it runs: small
    # cells' branches as one convolution per kernel size (`amla_jax.nn.envelope_fused`).
    for row, fuse in (("amla_jax/branch", False), ("amla_jax", True)):
        model = build_model(spec, NUM_CLASSES, fuse_branches=fuse)
        tx = make_optimizer(OptimConfig(), 100, 1000)
        state = create_train_state(model, jax.random.key(args.seed), tuple(args.image), tx)
        step = make_train_step(OptimConfig(), NUM_CLASSES, 100, 1000)
        rows.append({"row": row, **measure(step, state, batch, args)})
        print(_line(rows[-1], rows[0]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args) | {"wideners": sorted(wideners)}, "rows": rows}, f,
                      indent=1)  # fmt: skip
    return 0


def _line(row: dict, plain: dict) -> str:
    return (
        f"{row['row']:>13}  lower {row['lower_s']:5.1f} s  compile {row['compile_s']:6.1f} s "
        f"({row['compile_s'] / plain['compile_s']:4.2f}x)  fusions {row['fusions']:5d} "
        f"({row['fusions'] / plain['fusions']:4.2f}x)  step {row['step_ms']:7.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
