"""Soak test: tasks through ``amla scheduler -j 2`` under random SIGKILLs of runs and of
the scheduler, restarted until every task is complete; then every run is checked.

Checks: every task ends ``complete``; no candidate completed training twice (each
``candidate <i>: `` line appears once in the task's log over all its launches; a killed
candidate without a row is retrained, as it must be); every run's rows (timings aside)
and ``best_spec.json`` equal those of an undisturbed run of the same task.

Usage::

    python experiments/soak/soak.py [--tasks 20] [--kills 12] [--gap 20] [--seed 0] [--workdir DIR]

Prints one line per event and a summary; exit 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from amla_jax.rundir import read_candidates  # noqa: E402

AMLA = [sys.executable, "-m", "amla_jax.tasks.cli"]
TINY_NAC = [
    "algo=nac",
    "debug=smoke",
    "train.steps=3",
    "model.network.stem.0.0.outputs=8",
    "algo.options.layers_per_stage=[1,1,1]",
]
# Four distinct tasks, each queued tasks/4 times (the undisturbed reference runs once).
CONFIGS = [
    ["algo=fixed", "debug=smoke", "seed=0"],
    ["algo=fixed", "debug=smoke", "seed=1"],
    [*TINY_NAC, "seed=0"],
    [*TINY_NAC, "seed=1"],
]
TIMINGS = ("train_seconds", "compile_seconds")


def amla(workspace: Path, *args: str, check: bool = True) -> str:
    command = [*AMLA, *args, "--workspace", str(workspace)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def tasks(workspace: Path) -> list[dict]:
    return json.loads(amla(workspace, "list", "--json"))


def rows_of(run_dir: Path) -> list[dict]:
    rows = read_candidates(Path(run_dir) / "candidates.jsonl")
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def final_records(run_dir: Path) -> list[str]:
    """The ``run`` of every final-evaluation record in ``metrics.jsonl``: a candidate
    trained again after its row was written would have two."""
    text = (run_dir / "metrics.jsonl").read_text()
    return [r["run"] for r in map(json.loads, text.splitlines()) if "test/accuracy" in r]


def references(workdir: Path) -> list[Path]:
    """One undisturbed run of each config."""
    runs = []
    for i, overrides in enumerate(CONFIGS):
        run_dir = workdir / "reference" / str(i)
        if not (run_dir / "best_spec.json").exists():
            command = [sys.executable, "-m", "amla_jax", *overrides, f"hydra.run.dir={run_dir}"]
            subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        runs.append(run_dir)
    return runs


def start_scheduler(workspace: Path, log) -> subprocess.Popen:
    command = [*AMLA, "scheduler", "-j", "2", "--poll", "0.5", "--workspace", str(workspace)]
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)


def soak(workspace: Path, kills: int, gap: float, rng: random.Random, say) -> None:
    """Kills runs and the scheduler ``kills`` times, ``gap`` seconds apart on average (at
    random), restarting what died, until every task is complete."""
    log = open(workspace / "scheduler.log", "a")  # noqa: SIM115
    scheduler = start_scheduler(workspace, log)
    done_kills, next_kill = 0, time.monotonic() + rng.uniform(0.2, 1.8) * gap
    while True:
        time.sleep(2.0)
        listed = tasks(workspace)
        for task in listed:  # a killed run is 'failed': start it again (it resumes)
            if task["state"] in ("failed", "stopped"):
                amla(workspace, "start", str(task["id"]), check=False)
                say(f"restarted task {task['id']} ({task['message']})")
        if all(t["state"] == "complete" for t in listed):
            break
        if scheduler.poll() is not None:
            scheduler = start_scheduler(workspace, log)
            say("restarted the scheduler")
        if done_kills >= kills or time.monotonic() < next_kill:
            continue
        next_kill = time.monotonic() + rng.uniform(0.2, 1.8) * gap
        running = [t for t in listed if t["state"] == "running" and t["pid"]]
        if rng.random() < 0.25 or not running:
            os.kill(scheduler.pid, signal.SIGKILL)
            scheduler.wait()
            say("SIGKILL the scheduler")
        else:
            task = rng.choice(running)
            try:
                os.kill(task["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            say(f"SIGKILL task {task['id']}'s run (pid {task['pid']})")
        done_kills += 1
    os.kill(scheduler.pid, signal.SIGKILL)
    scheduler.wait()
    log.close()


def check(workspace: Path, refs: list[Path], n: int) -> list[str]:
    """The problems found (none when the soak passed)."""
    problems = []
    for task in tasks(workspace):
        i = task["id"] - 1
        if task["state"] != "complete":
            problems.append(f"task {task['id']}: {task['state']}")
        text = amla(workspace, "logs", str(task["id"]), check=False)
        rows = rows_of(task["run_dir"])
        finals = final_records(Path(task["run_dir"]))
        for row in rows:
            # A launch killed after its row may lose the buffered print: at most once.
            printed = text.count(f"candidate {row['id']}: ")
            trained = finals.count(f"candidate_{row['id']}")
            if printed > 1 or trained != 1:
                problems.append(
                    f"task {task['id']}: candidate {row['id']} printed {printed}x, "
                    f"{trained} final evaluations in metrics.jsonl"
                )
        ref = refs[i % len(CONFIGS)]
        if rows != rows_of(ref):
            problems.append(f"task {task['id']}: rows differ from the undisturbed run")
        best = Path(task["run_dir"]) / "best_spec.json"
        if not best.exists() or best.read_text() != (ref / "best_spec.json").read_text():
            problems.append(f"task {task['id']}: best_spec.json differs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--gap", type=float, default=20.0, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--check-only", action="store_true", help="check a finished soak")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="amla_soak_"))
    workspace = workdir / "workspace"
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    refs = references(workdir)
    if not args.check_only:
        say(f"{len(refs)} undisturbed reference runs in {workdir / 'reference'}")
        for i in range(args.tasks):
            amla(workspace, "add", *CONFIGS[i % len(CONFIGS)])
        say(f"queued {args.tasks} tasks in {workspace}")
        soak(workspace, args.kills, args.gap, random.Random(args.seed), say)
    problems = check(workspace, refs, args.tasks)
    for problem in problems:
        print("FAIL", problem)
    outcome = "PASS" if not problems else f"FAIL ({len(problems)} problems)"
    say(f"{outcome}: {args.tasks} tasks, {args.kills} SIGKILLs")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
