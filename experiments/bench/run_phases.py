"""Where one ``python -m amla_jax`` run's wall time goes: a timer around each phase.

Runs the entry point in this process (``python -m amla_jax OVERRIDES``) with wall-clock
timers wrapped around the functions of each phase: imports, the config checks, the
dataset, per candidate the train state's initialisation, compiling, the training loop,
BatchNorm recalibration, the final evaluation, counting FLOPs and the Orbax checkpoints,
then the search-state checkpoints and the summary. It prints one line per phase (calls,
seconds, share of the process's wall time) and what no phase covers.

The timers wrap module attributes by name (some of them private); a name that a later
revision renamed or moved is skipped with a note, so the script keeps running while
``amla_jax/train/`` changes. Set ``AMLA_JAX_CACHE`` to a fresh empty folder to measure an
empty compilation cache, as the search-speed benchmark does.

Synopsis::

    AMLA_JAX_CACHE=$(mktemp -d) python experiments/bench/run_phases.py --json phases.json \\
        -- hydra.run.dir=/tmp/phases
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import json
import sys
import time

STARTED = time.perf_counter()
EVENTS: list[tuple[str, float, float]] = []  # (phase, start, seconds)

# (label, module, attribute, depth): depth 1 phases lie inside the candidate's
# evaluation, depth 2 inside train_and_evaluate; depth 0 ones do not overlap.
PHASES = [
    ("config checks before Hydra (precheck)", "amla_jax.__main__", "precheck", 0),
    ("load_dataset", "amla_jax.runner", "load_dataset", 0),
    ("search state: checkpoint manager", "amla_jax.search", "checkpoint_manager", 0),
    ("search state: resume", "amla_jax.search", "resume_everywhere", 0),
    ("ask", "amla_jax.search", "ask", 0),
    ("evaluate one candidate (all)", "amla_jax.search", "_evaluated", 0),
    ("train_and_evaluate (all)", "amla_jax.evaluators.train", "train_and_evaluate", 1),
    ("create_train_state", "amla_jax.train.loop", "create_train_state", 2),
    ("compile train/eval/calibration steps", "amla_jax.train.loop.PROGRAMS", "compile", 2),
    ("training loop", "amla_jax.train.loop", "_train_loop", 2),
    ("BatchNorm recalibration", "amla_jax.train.loop", "recalibrate_batch_norm", 2),
    ("final evaluation", "amla_jax.train.loop", "_final_metrics", 2),
    ("count_flops", "amla_jax.train.loop", "_measure_flops", 2),
    ("MetricWriter (TensorBoard)", "amla_jax.train.loop", "MetricWriter", 2),
    ("save_train_state (Orbax)", "amla_jax.evaluators.train", "save_train_state", 1),
    ("tell", "amla_jax.search", "advance", 0),
    ("save_search_state (Orbax)", "amla_jax.search", "save_search_state", 0),
    ("summary, best_spec.json", "amla_jax.search", "_finish", 0),
]


def _wrap(label: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            EVENTS.append((label, start - STARTED, time.perf_counter() - start))

    return timed


def _owner(path: str):
    """The module (or an object in it, ``module.NAME``) that holds a phase's function."""
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def install_timers() -> list[str]:
    """Wraps every phase that exists in this revision; returns the skipped ones."""
    skipped = []
    for label, path, attribute, _ in PHASES:
        try:
            owner = _owner(path)
            setattr(owner, attribute, _wrap(label, getattr(owner, attribute)))
        except (ImportError, AttributeError):
            skipped.append(f"{label} ({path}.{attribute})")
    return skipped


def _row(phase: str, calls: int, seconds: float, depth: int = 0) -> dict:
    return {"phase": phase, "calls": calls, "seconds": seconds, "depth": depth}


def report(imports: float, skipped: list[str]) -> dict:
    """Per phase: calls, seconds and share of the wall time so far; also printed."""
    wall = time.perf_counter() - STARTED
    rows = [_row("imports (amla_jax.runner: jax, flax, ...)", 1, imports)]
    for label, _, _, depth in PHASES:
        times = [seconds for name, _, seconds in EVENTS if name == label]
        if times:
            rows.append(_row(label, len(times), sum(times), depth))
    covered = sum(row["seconds"] for row in rows if row["depth"] == 0)
    rows.append(_row("not in any phase (Hydra, startup, ...)", 1, wall - covered))
    print(f"\n{'phase':<46} {'calls':>5} {'seconds':>9} {'share':>6}", file=sys.stderr)
    for row in rows:
        name, share = "  " * row["depth"] + row["phase"], 100 * row["seconds"] / wall
        line = f"{name:<46} {row['calls']:>5} {row['seconds']:>9.2f} {share:>5.1f}%"
        print(line, file=sys.stderr)
    print(f"{'wall time in this process':<46} {'':>5} {wall:>9.2f}", file=sys.stderr)
    for name in skipped:
        print(f"not timed (not in this revision): {name}", file=sys.stderr)
    heavy = ("sklearn", "scipy", "matplotlib", "tensorflow", "orbax.checkpoint", "tensorboardX")
    loaded = {module: module in sys.modules for module in heavy}
    return {"wall_seconds": wall, "phases": rows, "skipped": skipped, "modules_loaded": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the phases here")
    parser.add_argument("overrides", nargs="*", help="the run's overrides (after --)")
    args = parser.parse_args()
    start = time.perf_counter()
    import amla_jax.__main__ as entry  # noqa: PLC0415
    from amla_jax.runner import prefer_fast_compiles  # noqa: PLC0415 (imports JAX)

    prefer_fast_compiles()  # as `python -m amla_jax` does, before JAX's backend starts
    imports = time.perf_counter() - start
    skipped = install_timers()

    def at_exit() -> None:  # after Hydra's job ends, even when it exits the process
        found = report(imports, skipped)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(found, out, indent=1)

    atexit.register(at_exit)
    sys.argv = ["amla_jax", *args.overrides]
    entry.main()


if __name__ == "__main__":
    main()
