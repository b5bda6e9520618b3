"""One jitted SGD step of each one-shot supernet on CPU: images/s, compile and step
seconds, next to one discrete network of the same skeleton measured in the same run.

The supernet step is first-order-DARTS-like: the loss is the cross-entropy of
``supernet.model`` applied with ``softmax(alphas)`` weights (training-mode BatchNorm),
gradients are taken w.r.t. the network parameters AND the alphas, and both take a plain
SGD step (lr 0.025). The baseline is the discrete network of the same skeleton and
sizes (the supernet's cost is what one-shot search pays over training one candidate):

- NB201: ``space.to_spec(arch)`` (NB201's ``TinyNetwork`` with one op per edge) built by
  `amla_jax.nn.build_model`;
- DARTS: the DARTS evaluation network (`amla_jax.zoo.darts_v2`) with (layers - 2) // 3
  normal cells per stage, so 8 layers for ``--layers 8`` with reductions at cells 2 and
  5 as the search network, without its auxiliary head;

both at a fixed arch (seed 0 of the space's ``sample``) and trained by the same SGD
step on the parameters only. Compile time is the wall time of ``.lower()`` plus
``.compile()``; step time is the median over ``--steps`` steps after ``--warmup``, on a
device-resident synthetic batch. As a search does (`amla_jax.runner.prefer_fast_compiles`),
XLA's CPU backend runs at optimisation level 1 unless ``$XLA_FLAGS`` names one.

Synopsis::

    python experiments/bench/supernet_step.py                   # both spaces, both shapes
    python experiments/bench/supernet_step.py --space darts --shape cifar --steps 3
    python experiments/bench/supernet_step.py --tiny            # CI: tiny sizes, one step
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from amla_jax.runner import prefer_fast_compiles

prefer_fast_compiles()  # before JAX starts its backend

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from amla_jax import zoo  # noqa: E402
from amla_jax.nn import build_model  # noqa: E402
from amla_jax.oneshot.supernet import make_supernet  # noqa: E402

SHAPES = {"digits": (8, 8, 1), "cifar": (32, 32, 3)}
NUM_CLASSES = 10
LR = 0.025


def make_sgd_step(apply_logits):
    """``step(params, batch_stats, alphas, x, y)``: plain SGD on params and alphas
    (``alphas`` may be ``{}``), jitted with the state donated."""

    def step(params, batch_stats, alphas, x, y):
        def loss_fn(params, alphas):
            logits, updates = apply_logits(params, batch_stats, alphas, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

        grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
        (loss, updates), (g_params, g_alphas) = grad_fn(params, alphas)
        params = jax.tree.map(lambda p, g: p - LR * g, params, g_params)
        alphas = jax.tree.map(lambda a, g: a - LR * g, alphas, g_alphas)
        return params, updates["batch_stats"], alphas, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def supernet_case(space: str, sizes: dict, shape: tuple):
    """(variables, alphas, apply_logits) of the supernet."""
    supernet = make_supernet(space, {}, NUM_CLASSES, **sizes)
    alphas = {k: 1e-3 * jnp.ones(s) for k, s in supernet.alpha_shapes.items()}
    weights = {k: jax.nn.softmax(a, -1) for k, a in alphas.items()}
    # Initialised op by op: jitting init (hundreds of initialisers) compiles for minutes.
    variables = supernet.model.init(jax.random.key(0), jnp.zeros((1, *shape)), weights)

    def apply_logits(params, batch_stats, alphas, x):
        weights = {k: jax.nn.softmax(a, -1) for k, a in alphas.items()}
        variables = {"params": params, "batch_stats": batch_stats}
        return supernet.model.apply(variables, x, weights, train=True, mutable=["batch_stats"])

    return variables, alphas, apply_logits


def discrete_spec(space: str, sizes: dict):
    supernet = make_supernet(space, {}, NUM_CLASSES, **sizes)
    arch = supernet.space.sample(jax.random.key(0))
    if space == "nb201":
        from amla_jax.spaces.nb201 import make_nb201  # noqa: PLC0415

        return make_nb201(sizes["channels"], sizes["cells_per_stage"], NUM_CLASSES).to_spec(arch)
    from amla_jax.spaces.darts import genotype  # noqa: PLC0415

    spec = zoo.darts_v2(sizes["channels"], max(1, (sizes["layers"] - 2) // 3), genotype(arch))
    network = tuple(name for name in spec.body.network if name != "aux")
    return spec.replace_body(dataclasses.replace(spec.body, network=network))


def discrete_case(space: str, sizes: dict, shape: tuple):
    model = build_model(discrete_spec(space, sizes), NUM_CLASSES)
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = model.init(keys, jnp.zeros((1, *shape)), train=False)

    def apply_logits(params, batch_stats, alphas, x):
        del alphas
        variables = {"params": params, "batch_stats": batch_stats}
        (logits, _), updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return logits, updates

    return variables, {}, apply_logits


def time_step(case, shape: tuple, batch: int, steps: int, warmup: int) -> dict:
    variables, alphas, apply_logits = case
    x = jax.random.normal(jax.random.key(1), (batch, *shape))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, NUM_CLASSES)
    params, stats = variables["params"], variables["batch_stats"]
    num_params = sum(a.size for a in jax.tree.leaves(params))
    step = make_sgd_step(apply_logits)
    start = time.perf_counter()
    compiled = step.lower(params, stats, alphas, x, y).compile()
    compile_s = time.perf_counter() - start
    state = compiled(params, stats, alphas, x, y)
    jax.block_until_ready(state)
    for _ in range(warmup):
        state = jax.block_until_ready(compiled(*state[:3], x, y))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state = jax.block_until_ready(compiled(*state[:3], x, y))
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"params": int(num_params), "compile_s": compile_s, "step_s": step_s,
            "images_per_s": batch / step_s}  # fmt: skip


def run(space: str, shape_name: str, sizes: dict, args) -> dict:
    shape = SHAPES[shape_name]
    row = {"space": space, "shape": shape_name, "batch": args.batch, **sizes}
    row["supernet"] = time_step(supernet_case(space, sizes, shape), shape, args.batch,
                                args.steps, args.warmup)  # fmt: skip
    row["discrete"] = time_step(discrete_case(space, sizes, shape), shape, args.batch,
                                args.steps, args.warmup)  # fmt: skip
    row["step_ratio"] = row["supernet"]["step_s"] / row["discrete"]["step_s"]
    row["compile_ratio"] = row["supernet"]["compile_s"] / row["discrete"]["compile_s"]
    return row


def print_row(row: dict) -> None:
    for kind in ("supernet", "discrete"):
        r = row[kind]
        print(f"{row['space']:5} {row['shape']:6} {kind:8} params {r['params']:>9,}  "
              f"compile {r['compile_s']:7.1f} s  step {r['step_s']:8.4f} s  "
              f"{r['images_per_s']:8.1f} images/s", flush=True)  # fmt: skip
    print(f"{row['space']:5} {row['shape']:6} supernet / discrete: step x{row['step_ratio']:.1f}"
          f", compile x{row['compile_ratio']:.1f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", nargs="+", default=["nb201", "darts"])
    parser.add_argument("--shape", nargs="+", default=["digits", "cifar"], choices=SHAPES)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells-per-stage", type=int, default=5, help="NB201")
    parser.add_argument("--layers", type=int, default=8, help="DARTS")
    parser.add_argument("--tiny", action="store_true", help="channels 4, 1 cell/stage, 3 "
                        "layers, digits shape, batch 2, one step (CI)")  # fmt: skip
    parser.add_argument("--json", help="append one JSON line per row to this file")
    args = parser.parse_args()
    if args.tiny:
        args.channels, args.cells_per_stage, args.layers = 4, 1, 3
        args.shape, args.batch, args.steps, args.warmup = ["digits"], 2, 1, 0
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}", flush=True)
    for space in args.space:
        sizes = {"channels": args.channels}
        sizes.update(
            {"cells_per_stage": args.cells_per_stage}
            if space == "nb201"
            else {"layers": args.layers}
        )
        for shape_name in args.shape:
            row = run(space, shape_name, sizes, args)
            print_row(row)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
