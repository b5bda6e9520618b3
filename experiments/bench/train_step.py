"""One jitted amla_jax training step at CIFAR shape: images/s, step time, compile time,
next to the same network in PyTorch measured in the same run.

The JAX row is the real thing: the network is read with ``amla_jax.spec``, built with
``amla_jax.nn.build_model``, and trained by the step that ``amla_jax.train.make_train_step``
returns (jitted, state donated; what ``train_and_evaluate`` compiles) with
``make_optimizer(OptimConfig())``: momentum 0.9 Nesterov, L2 3e-4 in the loss, per-tensor
clip 5, the weight EMA. Compile time is the wall time of ``.lower(...)`` plus the compile
with the options ``train_and_evaluate`` uses (`amla_jax.train.compile_options`).

The ``xla`` row measures the same step with ``amla_jax.nn.layers``' CPU fast paths turned off
(``depthwise_conv(impl="xla")`` instead of shifted slices, ``conv_same(impl="xla")``
instead of im2col on maps of at most 4x4): the ratio is what those code paths buy.

The PyTorch row runs ``torch_ref.py`` (the same architecture and recipe, eager mode,
``channels_last``) under another Python that has torch, in a subprocess; it is optional.
Before timing, the twin loads amla_jax's initial weights and must reproduce its
evaluation-mode logits, and both parameter counts must be equal.

Step times are medians over ``--steps`` steps after ``--warmup`` steps, on a
device-resident synthetic batch (the model, not the input pipeline, is measured).

Synopsis::

    python experiments/bench/train_step.py                       # AMLA's "run" network, JAX only
    python experiments/bench/train_step.py --batch 2 --steps 1 --warmup 0 --impl auto  # tiny
    python experiments/bench/train_step.py --network run envelopenet --steps 5 \\
        --torch-python /work/torchvenv/bin/python --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import traverse_util

from amla_jax import zoo
from amla_jax.amla import load_spec
from amla_jax.config import OptimConfig
from amla_jax.nn import build_model, convs, layers, macro, param_count
from amla_jax.nn import model as nn_model
from amla_jax.optim import make_optimizer
from amla_jax.spec import NetworkSpec
from amla_jax.train import create_train_state, data_mesh, make_train_step, shard_batch
from amla_jax.train.compile_options import compile_lowered, emitter_options

TORCH_REF = Path(__file__).resolve().with_name("torch_ref.py")
NETWORKS = {  # short name -> conf/model/<name>.yaml
    # AMLA's config.run.json network: stem 1x1 conv 128 + LRN, 12 macro layers, widths to 1024.
    "run": "amla_run",
    # AMLA's initial EnvelopeNet (six-branch cells, dense skips).
    "envelopenet": "envelopenet",
}
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
STEPS_PER_EPOCH = 50_000 // 64
TOTAL_STEPS = 100_000  # config.run.json's steps; only the (constant) schedule sees it


def load_network(name: str) -> NetworkSpec:
    """A network by short name (``run``, ``envelopenet``) or a JSON/YAML spec path."""
    if name in NETWORKS:
        return zoo.load_network(NETWORKS[name])
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text())
        return NetworkSpec.from_json(data.get("network", data))
    return load_spec(path)


@contextlib.contextmanager
def conv_impl(impl: str):
    """Sets the default ``impl`` of ``layers.depthwise_conv`` and ``layers.conv_same``;
    ``xla`` also gives the macro body's and stem's ``nn.Conv`` XLA's convolution instead of
    `convs.conv_general_dilated` (1x1 as a matmul)."""
    saved = layers.depthwise_conv, layers.conv_same, macro.conv_general_dilated
    if impl != "auto":
        layers.depthwise_conv = functools.partial(saved[0], impl=impl)
        layers.conv_same = functools.partial(saved[1], impl=impl)
        macro.conv_general_dilated = nn_model.conv_general_dilated = jax.lax.conv_general_dilated
    try:
        yield
    finally:
        layers.depthwise_conv, layers.conv_same = saved[:2]
        macro.conv_general_dilated = nn_model.conv_general_dilated = saved[2]


def synthetic_batch(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.standard_normal((batch, *IMAGE_SHAPE), dtype=np.float32),
        "label": rng.integers(0, NUM_CLASSES, batch).astype(np.int32),
    }


@functools.cache
def model_and_optimizer(spec: NetworkSpec) -> tuple:
    """One model and optimiser per spec, so every state of it has equal static fields."""
    return build_model(spec, NUM_CLASSES), make_optimizer(
        OptimConfig(), STEPS_PER_EPOCH, TOTAL_STEPS
    )


def fresh_state(spec: NetworkSpec, seed: int):
    """``(model, TrainState)`` from `create_train_state` (itself one jitted program) with
    `OptimConfig()`'s optimiser; every call returns new buffers, so each measurement can
    donate its own."""
    model, tx = model_and_optimizer(spec)
    return model, create_train_state(model, jax.random.key(seed), IMAGE_SHAPE, tx)


def lower_and_compile(step, state, batch, key) -> tuple:
    """``(compiled, lower_s, compile_s)``: the jitted ``step`` lowered, then compiled with
    the options `train_and_evaluate` compiles with (`amla_jax.train.compile_options`)."""
    started = time.perf_counter()
    lowered = step.lower(state, batch, key)
    lowered_at = time.perf_counter()
    compiled = compile_lowered(lowered, emitter_options(batch["image"].shape))
    return compiled, lowered_at - started, time.perf_counter() - lowered_at


def run_steps(compiled, state, batch, key, count: int, progress: bool = False) -> tuple:
    """``(state, metrics, seconds)``: ``count`` steps of ``compiled``, each timed to its
    results being ready; ``progress`` prints each to stderr."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        state, metrics = compiled(state, batch, key)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - started)
        if progress:
            print(f"    step {len(times)}: {times[-1]:.2f} s", file=sys.stderr, flush=True)
    return state, metrics, times


def measure_jax(spec: NetworkSpec, impl: str, args) -> dict:
    """Compile and time amla_jax's train step for ``spec`` with conv paths ``impl``."""
    _, state = fresh_state(spec, args.seed)
    batch = shard_batch(synthetic_batch(args.batch, args.seed), data_mesh())
    key = jax.random.key(args.seed)
    step = make_train_step(OptimConfig(), NUM_CLASSES, STEPS_PER_EPOCH, TOTAL_STEPS)
    with conv_impl(impl):
        compiled, lower_s, compile_s = lower_and_compile(step, state, batch, key)
    print(f"    compiled in {lower_s + compile_s:.1f} s", file=sys.stderr, flush=True)
    result = {
        "num_params": param_count(state.params),
        "lower_s": lower_s,
        "compile_s": lower_s + compile_s,  # lower + compile
    }
    state, metrics, times = run_steps(compiled, state, batch, key, args.warmup + args.steps, True)
    measured = times[args.warmup :]
    loss = float(metrics["train/loss"])
    if not np.isfinite(loss):
        raise SystemExit(f"train_step: JAX loss is {loss}")
    result.update(
        first_step_s=times[0],
        step_s_median=statistics.median(measured),
        step_s_min=min(measured),
        step_s_max=max(measured),
        steps=len(measured),
        final_loss=loss,
    )
    peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    if peak:
        result["peak_gib"] = peak / 2**30
    result["images_per_s"] = args.batch / result["step_s_median"]
    return result


def write_check(spec: NetworkSpec, args, directory: Path) -> Path:
    """amla_jax's initial variables and their evaluation-mode logits on a few images,
    for the PyTorch twin to reproduce (names ``params/...``, ``batch_stats/...``)."""
    model, state = fresh_state(spec, args.seed)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
    weights = directory / "weights.npz"
    np.savez(weights, **{k: np.asarray(v, np.float32) for k, v in flat.items()})
    images = synthetic_batch(4, args.seed + 1)["image"]
    logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(
        {**variables, "nac_stats": state.nac_stats}, jnp.asarray(images)
    )
    np.savez(directory / "weights_io.npz", image=images, logits=np.asarray(logits))
    return weights


# Convolutions of config.run.json at CIFAR shape (batch 64) where ops' CPU paths apply.
OP_CASES = (
    ("depthwise 7x7, 256 ch, 16x16 (Cell5 7x7sep)", "depthwise", (64, 16, 16, 256), (7, 7, 1, 256)),
    ("depthwise 7x7, 1022 ch, 4x4 (Cell11 7x7sep)", "depthwise", (64, 4, 4, 1022), (7, 7, 1, 1022)),
    ("depthwise 7x7, 1024 ch, 1x1", "depthwise", (64, 1, 1, 1024), (7, 7, 1, 1024)),
    ("conv 5x5 1022->256, 4x4 (Cell11 5x5)", "conv", (64, 4, 4, 1022), (5, 5, 1022, 256)),
    ("conv 3x3 1024->341, 4x4 (Cell12 3x3)", "conv", (64, 4, 4, 1024), (3, 3, 1024, 341)),
    ("conv 1x1 128->128, 32x32 (Cell2/3 1x1)", "pointwise", (64, 32, 32, 128), (1, 1, 128, 128)),
    ("conv 1x1 256->85, 16x16 (Cell5 1x1)", "pointwise", (64, 16, 16, 256), (1, 1, 256, 85)),
    ("conv 1x1 1022->256, 4x4 (Cell11 1x1)", "pointwise", (64, 4, 4, 1022), (1, 1, 1022, 256)),
)
FAST_IMPL = {"depthwise": "shift", "conv": "im2col", "pointwise": "matmul"}


def _op(kind: str, impl: str):
    """The convolution of an OP_CASES row under ``impl`` (its fast path or "xla")."""
    if kind == "pointwise":
        conv = convs.conv_general_dilated if impl == "matmul" else jax.lax.conv_general_dilated
        return lambda a, b: conv(a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    fn = layers.depthwise_conv if kind == "depthwise" else layers.conv_same
    return functools.partial(fn, impl=impl)


def op_bench(reps: int) -> list[dict]:
    """Forward + backward (gradients of input and kernel) of single convolutions: the
    CPU paths (shifted slices / im2col / 1x1 as a matmul) against XLA's convolution."""
    rows = []
    for label, kind, x_shape, k_shape in OP_CASES:
        fast = FAST_IMPL[kind]
        x = jax.random.normal(jax.random.key(1), x_shape)
        k = jax.random.normal(jax.random.key(2), k_shape) * 0.05
        row = {"op": label, "fast_impl": fast}
        for impl in (fast, "xla"):
            loss = functools.partial(lambda f, a, b: jnp.sum(f(a, b) ** 2), _op(kind, impl))
            compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, k).compile()
            jax.block_until_ready(compiled(x, k))
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                jax.block_until_ready(compiled(x, k))
                times.append(time.perf_counter() - started)
            row[f"{'fast' if impl == fast else 'xla'}_ms"] = 1e3 * statistics.median(times)
        row["xla_over_fast"] = row["xla_ms"] / row["fast_ms"]
        print(
            f"  {label:<46} {fast:>7} {row['fast_ms']:9.2f} ms   xla {row['xla_ms']:9.2f} ms"
            f"   xla/{fast} {row['xla_over_fast']:6.1f}x",
            flush=True,
        )
        rows.append(row)
    return rows


def find_torch_python(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("TORCH_PYTHON"):
        return os.environ["TORCH_PYTHON"]
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return None


def measure_torch(spec: NetworkSpec, python: str, args) -> dict:
    """Runs torch_ref.py under ``python`` and returns its JSON line."""
    optim = OptimConfig()
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(spec.dumps())
        command = [
            python,
            str(TORCH_REF),
            f"--spec={spec_path}",
            f"--batch={args.batch}",
            f"--steps={args.steps}",
            f"--warmup={args.warmup}",
            f"--num-classes={NUM_CLASSES}",
            f"--lr={optim.learning_rate}",
            f"--momentum={optim.momentum}",
            f"--l2={optim.l2}",
            f"--clip={optim.clip_norm}",
            f"--ema-decay={optim.ema_decay}",
            f"--seed={args.seed}",
            # the twin runs where JAX runs: the same GPU, or this CPU
            f"--device={'cuda' if jax.default_backend() == 'gpu' else 'cpu'}",
        ]
        if args.check:
            command.append(f"--check={write_check(spec, args, Path(tmp))}")
        # libgomp's busy-waiting threads collapse on a shared machine (10x on a loaded
        # 2-core box); passive waiting is what a fair baseline there needs.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"train_step: torch_ref.py failed:\n{done.stderr.strip()}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["omp_wait_policy"] = env["OMP_WAIT_POLICY"]
    return result


def _progress(row: dict) -> None:
    row["load_average"] = os.getloadavg()
    summary = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    print(f"  {summary}", file=sys.stderr, flush=True)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(network: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{network}")
    print(
        f"  {'row':<22} {'params':>11} {'compile s':>10} {'1st step s':>10} "
        f"{'step s (median, min-max)':>26} {'images/s':>9}"
    )
    for label, r in rows:
        spread = f"{r['step_s_median']:.3f} ({r['step_s_min']:.3f}-{r['step_s_max']:.3f})"
        print(
            f"  {label:<22} {r['num_params']:>11,} {_fmt(r.get('compile_s'), '.1f'):>10} "
            f"{r['first_step_s']:>10.2f} {spread:>26} {r['images_per_s']:>9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--network",
        nargs="*",
        default=["run"],
        help="short names (run: AMLA's config.run.json network; envelopenet) or spec paths; "
        "none with --op-bench to time only the single convolutions",
    )
    parser.add_argument(
        "--op-bench",
        action="store_true",
        help="also time single convolutions (fwd+bwd): ops' CPU paths against XLA's",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
    parser.add_argument(
        "--impl",
        nargs="+",
        default=["auto", "xla"],
        choices=["auto", "xla"],
        help="conv code paths: auto (ops' CPU fast paths) and/or xla (XLA's convolution)",
    )
    parser.add_argument("--torch-python", help="a Python with torch (else $TORCH_PYTHON)")
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the PyTorch twin's logits check against amla_jax's",
    )
    parser.add_argument("--json", help="also write every measurement here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch_python = find_torch_python(args.torch_python)
    report = {
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": jax.local_device_count(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_start": os.getloadavg(),
        "networks": {},
    }
    for name in args.network:
        spec = load_network(name)
        rows: dict[str, dict] = {}
        for impl in args.impl:
            print(f"[{name}] JAX impl={impl} ...", file=sys.stderr, flush=True)
            rows[f"jax ({impl})"] = measure_jax(spec, impl, args)
            _progress(rows[f"jax ({impl})"])
        if torch_python:
            print(f"[{name}] PyTorch ({torch_python}) ...", file=sys.stderr, flush=True)
            rows["torch (eager, CL)"] = measure_torch(spec, torch_python, args)
            _progress(rows["torch (eager, CL)"])
        report["networks"][name] = rows
        if args.json:  # after each network, so a long run keeps what it measured
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print_table(
            f"{name} (batch {args.batch}, {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}x3)", list(rows.items())
        )
        counts = {label: r["num_params"] for label, r in rows.items()}
        if len(set(counts.values())) != 1:
            raise SystemExit(f"train_step: parameter counts differ: {counts}")
        throughput = {label: r["images_per_s"] for label, r in rows.items()}
        if "jax (auto)" in rows and "jax (xla)" in rows:
            ratio = throughput["jax (auto)"] / throughput["jax (xla)"]
            print(f"  fast paths vs XLA's conv (jax auto / jax xla images/s): {ratio:.2f}x")
        torch_row = rows.get("torch (eager, CL)")
        if torch_row:
            for label in (k for k in rows if k.startswith("jax")):
                ratio = throughput[label] / torch_row["images_per_s"]
                print(f"  {label} / torch images/s: {ratio:.2f}x")
            print(
                f"  parameters equal: {torch_row['num_params']:,}; torch {torch_row['torch']}, "
                f"{torch_row['threads']} threads, OMP_WAIT_POLICY={torch_row['omp_wait_policy']}"
            )
            if "check_max_abs_diff" in torch_row:
                diff, scale = torch_row["check_max_abs_diff"], torch_row["check_logits_scale"]
                print(f"  eval logits, torch vs amla_jax: max |diff| {diff:.2e} (max {scale:.2e})")
                if diff > 1e-3 * max(scale, 1.0):
                    raise SystemExit("train_step: the PyTorch twin does not match amla_jax")
    if args.op_bench:
        print(f"\nsingle convolutions, forward + backward, median of {args.steps}")
        report["ops"] = op_bench(args.steps)
    if args.network and not torch_python:
        print(
            "\nPyTorch baseline skipped: no --torch-python, $TORCH_PYTHON, or torch here. "
            "Make one with: python3 -m venv /tmp/torchvenv && "
            "/tmp/torchvenv/bin/pip install torch numpy"
        )
    report["load_average_end"] = os.getloadavg()
    print(
        f"\nload average (1, 5, 15 min): start {report['load_average_start']}, "
        f"end {report['load_average_end']} on {report['cpus']} CPUs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
