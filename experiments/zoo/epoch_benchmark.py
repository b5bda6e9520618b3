"""One training epoch of a zoo network on CIFAR-10-shaped data: images/s and peak memory.

Times the whole training step as the recipe runs it (drop-path, auxiliary loss, L2,
global-norm clip, SGD with momentum) on a device-resident synthetic batch, so it measures
the model, not the input pipeline. Prints one JSON line.

With ``--torch-python PY`` (DARTS V2 only) it then runs ``torch_darts.py``, DARTS' own
PyTorch network and step, under PY on the same device with the same batch, steps and
warm-up, and prints a second line with both rows and the images/s ratio (JAX / PyTorch).

Synopsis::

    python experiments/zoo/epoch_benchmark.py --network darts_v2 --batch 96 --steps 521
    python experiments/zoo/epoch_benchmark.py --network darts_v2 --batch 96 --steps 521 \
        --warmup 5 --torch-python python3 --json darts_epoch.json
    python experiments/zoo/epoch_benchmark.py --network my_spec.json --batch 2 --steps 1  # tiny
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from amla_jax.amla import load_spec
from amla_jax.nn import build_model, init_variables, param_count
from amla_jax.zoo import load_network


def make_step(model, tx, images, labels, l2: float, aux_weight: float):
    """The jitted training step (state donated)."""
    ce = optax.softmax_cross_entropy_with_integer_labels

    def loss_fn(params, batch_stats, key, rate):
        variables = {"params": params, "batch_stats": batch_stats}
        (logits, aux), updates = model.apply(
            variables,
            images,
            train=True,
            drop_path_rate=rate,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        loss = ce(logits, labels).mean() + aux_weight * sum(ce(a, labels).mean() for a in aux)
        loss = loss + l2 * sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))
        return loss, updates["batch_stats"]

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, batch_stats, opt_state, key, rate):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, batch_stats), grads = grad_fn(params, batch_stats, key, rate)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    return step


TORCH_TWIN = Path(__file__).with_name("torch_darts.py")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--network", default="darts_v2", help="a conf/model name, or a spec JSON file"
    )
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--steps", type=int, default=521, help="50,000 // 96 + 1 = one epoch")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps after compiling")
    parser.add_argument("--epochs", type=int, default=600, help="for the lr and drop-path ramps")
    parser.add_argument(
        "--torch-python", help="also time torch_darts.py (PyTorch) under this Python"
    )
    parser.add_argument("--json", help="also write every row here (one JSON line each)")
    args = parser.parse_args()
    if args.torch_python and args.network != "darts_v2":
        fail(f"--torch-python needs --network darts_v2 (the twin is DARTS V2), not {args.network}")
    return args


def fail(message: str) -> None:
    """A user mistake: one line, exit 2 (the project's convention for entry points)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def measure_jax(args: argparse.Namespace) -> dict:
    """The JAX row: compile (the first step), ``--warmup`` steps, then ``--steps`` timed."""
    path = Path(args.network)
    spec = load_spec(path) if path.suffix == ".json" else load_network(args.network)
    model = build_model(spec, 10)
    key = jax.random.key(0)
    variables = init_variables(model, key, (32, 32, 3), args.batch)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    total = args.epochs * args.steps
    tx = optax.chain(
        optax.clip_by_global_norm(5.0),
        optax.sgd(optax.cosine_decay_schedule(0.025, total), momentum=0.9),
    )
    opt_state = tx.init(params)
    images = jax.random.normal(key, (args.batch, 32, 32, 3))
    labels = jax.random.randint(key, (args.batch,), 0, 10)
    step = make_step(model, tx, images, labels, l2=1.5e-4, aux_weight=0.4)
    started = time.perf_counter()
    state = step(params, batch_stats, opt_state, key, jnp.float32(0.0))
    jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - started
    print(f"compiled (and ran the first step) in {compile_seconds:.1f} s", file=sys.stderr)
    for i in range(args.warmup):
        state = step(*state[:3], jax.random.fold_in(key, i), jnp.float32(0.2 * i / total))
    jax.block_until_ready(state)
    started = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        rate = jnp.float32(0.2 * i / total)
        state = step(*state[:3], jax.random.fold_in(key, i), rate)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - started
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "network": args.network,
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "params": param_count(state[0]),
        "batch": args.batch,
        "steps": args.steps,
        "compile_s": round(compile_seconds, 1),
        "epoch_s": round(seconds, 2),
        "step_ms": round(1e3 * seconds / args.steps, 2),
        "images_per_s": round(args.steps * args.batch / seconds, 1),
        "peak_gib": round(stats.get("peak_bytes_in_use", 0) / 2**30, 3),
        "final_loss": float(state[3]),
        "warmup": args.warmup,
    }


def measure_torch(args: argparse.Namespace) -> dict:
    """Runs torch_darts.py under ``--torch-python`` on JAX's kind of device; its JSON line."""
    device = "cuda" if jax.default_backend() == "gpu" else "cpu"
    command = [
        args.torch_python,
        str(TORCH_TWIN),
        *(f"--device={device}", f"--batch={args.batch}", f"--steps={args.steps}"),
        *(f"--warmup={args.warmup}", f"--epochs={args.epochs}"),
    ]
    # libgomp's busy-waiting threads collapse on a shared CPU (as in bench/train_step.py).
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as error:
        fail(f"--torch-python {args.torch_python} does not run: {error}")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        fail(f"torch_darts.py under {args.torch_python} failed: {lines[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(jax_row: dict, torch_row: dict) -> dict:
    """The combined line: both rows and the ratios the README table needs."""
    return {
        "network": "darts_v2",
        "batch": jax_row["batch"],
        "steps": jax_row["steps"],
        "warmup": jax_row["warmup"],
        "jax_images_per_s_over_torch": round(
            jax_row["images_per_s"] / torch_row["images_per_s"], 3
        ),
        "jax_compile_s": jax_row["compile_s"],
        "torch_first_step_s": torch_row["first_step_s"],
        "params_equal": jax_row["params"] == torch_row["params"],
        "jax": jax_row,
        "torch": torch_row,
    }


def main() -> None:
    args = parse_args()
    rows = [measure_jax(args)]
    print(json.dumps(rows[0]), flush=True)  # the last line when there is no twin
    if args.torch_python:
        rows.append(measure_torch(args))
        rows.append(compare(*rows))
        print(json.dumps(rows[-1]))
    if args.json:
        Path(args.json).write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
