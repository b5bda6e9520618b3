"""Times the DARTS supernet's search step (one jitted program) at CIFAR-10's shape.

    python experiments/oneshot/bench_step.py                       # C=16, 8 cells, batch 64
    python experiments/oneshot/bench_step.py --order 1 2 --layers 5

For each order: the compile seconds of the step (architecture step on batch_b, weight
step on batch_a), then the mean seconds of ``--steps`` steps after one warm-up, and the
training images per second (batch_a's images: those the weights learn from; the paper's
epoch is 25k of them) with the epoch time this gives. With two orders, the ratio of
their step times (second / first) is printed, measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import jax

from amla_jax.algos.oneshot import DartsOptions
from amla_jax.oneshot.darts import make_darts_method
from amla_jax.oneshot.supernet import make_supernet
from amla_jax.runner import prefer_fast_compiles


def time_order(order: int, args) -> float:
    supernet = make_supernet("darts", {}, 10, channels=args.channels, layers=args.layers)
    options = DartsOptions(order=order, total_steps=1000)
    method = make_darts_method(options)
    keys = jax.random.split(jax.random.key(0), 4)
    shape = (args.batch, 32, 32, 3)
    batch_a = (jax.random.normal(keys[0], shape), jax.random.randint(keys[1], shape[:1], 0, 10))
    batch_b = (jax.random.normal(keys[2], shape), jax.random.randint(keys[3], shape[:1], 0, 10))
    state = method.init(jax.random.key(1), supernet, batch_a[0])
    began = time.perf_counter()
    step = jax.jit(method.step, donate_argnums=0).lower(state, batch_a, batch_b, keys[0]).compile()
    compile_seconds = time.perf_counter() - began
    state, _ = step(state, batch_a, batch_b, keys[0])  # warm-up
    jax.block_until_ready(state)
    began = time.perf_counter()
    for i in range(args.steps):
        state, metrics = step(state, batch_a, batch_b, jax.random.fold_in(keys[0], i))
    jax.block_until_ready(state)
    seconds = (time.perf_counter() - began) / args.steps
    per_epoch = 25_000 // args.batch
    print(
        f"order {order}: {jax.devices()[0].device_kind}, C={args.channels}, {args.layers} cells, "
        f"batch {args.batch}: compile {compile_seconds:.1f} s, step {seconds:.3f} s, "
        f"{args.batch / seconds:.1f} images/s, an epoch of {per_epoch} steps "
        f"{per_epoch * seconds / 60:.1f} min, 50 epochs {50 * per_epoch * seconds / 86400:.2f} days"
    )
    return seconds


def main() -> None:
    prefer_fast_compiles()  # XLA -O1 on CPU, as a search compiles it (the runner's choice)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, nargs="+", default=[1])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    times = {order: time_order(order, args) for order in args.order}
    if len(times) == 2:
        print(f"second / first order step time: {times[2] / times[1]:.2f}")


if __name__ == "__main__":
    main()
