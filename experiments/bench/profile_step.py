"""Where one jitted amla_jax training step spends its time on CPU, per XLA op.

Compiles the step `train_step.py` times (same network, optimiser, synthetic batch), runs
it twice untraced, then once under ``jax.profiler`` and sums the XLA:CPU thunk events of
the traced step: by op kind (``ynn_fusion`` = YNNPACK convolutions, matmuls and
reductions; ``pad_slice_fusion`` = materialised shifted slices; ...) and the slowest
single ops with the layer they come from. Times are thread time: XLA runs independent
ops on both cores at once, so the total is about cores x step time.

Synopsis::

    python experiments/bench/profile_step.py --network envelopenet            # batch 64
    python experiments/bench/profile_step.py --network run --top 40 --trace-dir /tmp/t
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step as bench  # noqa: E402  (the script beside this one)

from amla_jax.config import OptimConfig  # noqa: E402
from amla_jax.train import data_mesh, make_train_step, shard_batch  # noqa: E402


def traced_ops(trace_dir: str) -> list[tuple[str, int]]:
    """(op name, duration ns) of every XLA:CPU op executed in the trace."""
    path = next(Path(trace_dir).rglob("*.xplane.pb"))
    data = jax.profiler.ProfileData.from_file(str(path))
    events = []
    for plane in data.planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name:  # the intra-op threads that run XLA's thunks
                continue
            for event in line.events:
                if not event.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
                    events.append((event.name, event.duration_ns))
    return events


def op_sources(hlo: str) -> dict[str, str]:
    """Op name -> the JAX source op (``op_name`` metadata) of the fusion's last line."""
    calls = dict(re.findall(r"^\s*%(\S+) = \S+ fusion\(.*?calls=%([\w.-]+)", hlo, re.M))
    sources = {}
    for name, computation in calls.items():
        start = hlo.find(f"%{computation} ")
        body = hlo[start : hlo.find("\n}\n", start)]
        names = re.findall(r'op_name="([^"]+)"', body)
        sources[name] = names[-1].replace("jit(train_step)/", "") if names else ""
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="run", help="run, envelopenet or a spec path")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--top", type=int, default=25, help="slowest single ops to list")
    parser.add_argument("--trace-dir", help="keep the profiler trace here")
    args = parser.parse_args()
    spec = bench.load_network(args.network)
    _, state = bench.fresh_state(spec, 0)
    batch = shard_batch(bench.synthetic_batch(args.batch, 0), data_mesh())
    key = jax.random.key(0)
    step = make_train_step(
        OptimConfig(), bench.NUM_CLASSES, bench.STEPS_PER_EPOCH, bench.TOTAL_STEPS
    )
    started = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    print(f"compile {time.perf_counter() - started:.1f} s")
    for _ in range(2):
        started = time.perf_counter()
        state, metrics = compiled(state, batch, key)
        jax.block_until_ready(metrics)
    print(f"step {time.perf_counter() - started:.2f} s (untraced)")
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="amla_profile_")
    with jax.profiler.trace(trace_dir):
        jax.block_until_ready(compiled(state, batch, key))
    events = traced_ops(trace_dir)
    total = sum(ns for _, ns in events) / 1e6
    kinds, counts = collections.Counter(), collections.Counter()
    for name, ns in events:
        kind = re.sub(r"\.\d+$", "", name)
        kinds[kind] += ns / 1e6
        counts[kind] += 1
    print(f"\nthread time of the traced step: {total:.0f} ms\n\n  ms    share  ops  kind")
    for kind, ms in kinds.most_common(15):
        print(f"{ms:7.0f} {100 * ms / total:5.1f}% {counts[kind]:5d}  {kind}")
    sources = op_sources(compiled.as_text())
    print(f"\nslowest {args.top} ops\n  ms  op  source")
    for name, ns in sorted(events, key=lambda e: -e[1])[: args.top]:
        print(f"{ns / 1e6:7.1f}  {name:<28} {sources.get(name, '')[:110]}")


if __name__ == "__main__":
    main()
