"""Search speed, old commit against new, side by side: whole ``python -m amla_jax`` runs.

Each side is a source tree: ``--old REV`` is checked out with ``git worktree add
--detach`` into a temporary folder (removed at the end); ``--new`` is the working tree
this script lives in (or a revision, checked out the same way). Every run is a fresh
subprocess of the same Python with ``PYTHONPATH=<tree>`` and ``cwd=<tree>``, so the old
code runs without reinstalling anything (the script checks that ``amla_jax`` and its
``conf/`` really come from that tree), with its own empty compilation cache
(``AMLA_JAX_CACHE=<fresh folder>``) and its own ``hydra.run.dir``. Runs go one at a time,
old then new for each command and repeat, so that both sides see the same machine.

Commands (``--runs``):

- ``default``: ``python -m amla_jax`` (NAC, 2 candidates, digits);
- ``nac``: ``python -m amla_jax algo=nac dataset=digits`` (5 candidates).

For each run it records the wall time of the process, the load average, and per
candidate the ``compile_seconds`` and ``train_seconds`` of ``candidates.jsonl`` with the
compile share ``compile / (compile + train)``. It prints a table with the old/new wall
time ratio (above 1: the new side is faster) and each side's per-candidate shares.

Synopsis::

    python experiments/bench/search_speed.py                        # both commands, once
    python experiments/bench/search_speed.py --runs default --repeat 3 --json speed.json
    python experiments/bench/search_speed.py --old 58a7a12 --new HEAD~1
    python experiments/bench/search_speed.py --tiny                 # CI: a tiny network, 3 steps

Both trees' ``amla_jax`` packages are byte-compiled before timing (``compileall``), so
that neither side pays for writing ``__pycache__``. A user mistake (no git repository, an
unknown revision) ends with one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLD_REV = "58a7a12"  # main before issue 14 (search speed)
WORKING_TREE = "worktree"
COMMANDS = {"default": [], "nac": ["algo=nac", "dataset=digits"]}
# A tiny EnvelopeNet (8-wide stem, one cell per stage of two branch types), 3 steps:
# overrides that both 58a7a12 and later revisions accept (the tests' tiny NAC runs).
TINY = [
    "train.steps=3",
    "train.batch_size=16",
    "train.bn_calibration_batches=1",
    "train.progress=false",
    "model.network.stem.0.0.outputs=8",
    "algo.options.layers_per_stage=[1,1,1]",
    "~algo.options.envelopecell",
    "+algo.options.envelopecell={Branch1:1x1,Branch2:3x3sep}",
]
TINY_COMMANDS = {"default": [], "nac": ["algo=nac", "algo.iterations=3"]}
SHARE_TARGET = 0.25  # issue 14: compile under 25% of a candidate's time from the 2nd on


class BenchError(Exception):
    """A mistake the user can fix (no repository, unknown revision)."""


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def resolve(rev: str) -> str:
    """The full commit id of ``rev``, or a `BenchError` naming it."""
    if not (ROOT / ".git").exists():
        raise BenchError(f"{ROOT} is not a git checkout; --old needs the repository's history")
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except BenchError:
        raise BenchError(f"unknown revision {rev!r} (fetch it, or pass --old/--new)") from None


@contextlib.contextmanager
def source_tree(rev: str, workdir: Path, name: str) -> Iterator[dict]:
    """The tree of ``rev`` (``worktree``: this checkout as it is) and what it is."""
    if rev == WORKING_TREE:
        commit = git("rev-parse", "HEAD") if (ROOT / ".git").exists() else None
        dirty = bool(commit and git("status", "--porcelain", "--untracked-files=no"))
        yield {"rev": rev, "commit": commit, "dirty": dirty, "tree": ROOT}
        return
    commit = resolve(rev)
    tree = workdir / f"tree_{name}"
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        yield {"rev": rev, "commit": commit, "dirty": False, "tree": tree}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT)


def side_env(tree: Path, cache: Path) -> dict[str, str]:
    """The environment of one side's process: its tree first on the path, its own cache,
    and none of the caller's amla_jax switches (fault hooks, several processes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLA_JAX_")}
    env["PYTHONPATH"] = str(tree)
    env["AMLA_JAX_CACHE"] = str(cache)
    return env


def check_imports(python: str, tree: Path, env: dict[str, str]) -> dict:
    """Where ``python -m amla_jax`` finds its package and conf/ when run in ``tree``;
    a `BenchError` unless both lie inside ``tree`` (an installed copy must not win)."""
    probe = (
        "import json, amla_jax, amla_jax.__main__ as main;"
        "print(json.dumps({'package': amla_jax.__file__, 'conf': str(main.CONF_DIR)}))"
    )
    done = subprocess.run(
        [python, "-c", probe], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode:
        raise BenchError(f"importing amla_jax from {tree} failed: {done.stderr.strip()[-500:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for what in ("package", "conf"):
        if not Path(found[what]).resolve().is_relative_to(tree.resolve()):
            raise BenchError(f"{what} of {tree} comes from {found[what]}, not from the tree")
    if not (tree / "conf" / "config.yaml").exists():
        raise BenchError(f"{tree}/conf/config.yaml is missing")
    return found


def read_candidates(run_dir: Path) -> list[dict]:
    """Per candidate of ``run_dir/candidates.jsonl``: id, compile and train seconds, share."""
    path = run_dir / "candidates.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for row in rows:
        compile_s, train_s = float(row["compile_seconds"]), float(row["train_seconds"])
        total = compile_s + train_s
        out.append(
            {
                "id": row["id"],
                "compile_seconds": compile_s,
                "train_seconds": train_s,
                "compile_share": compile_s / total if total > 0 else None,
                "num_params": row.get("num_params"),
                "validation_accuracy": row.get("metrics", {}).get("validation/accuracy"),
            }
        )
    return out


def run_one(python: str, side: dict, overrides: list[str], workdir: Path, tag: str, timeout):
    """One ``python -m amla_jax`` process of ``side``, timed; its record."""
    cache, run_dir = workdir / f"cache_{tag}", workdir / f"run_{tag}"
    cache.mkdir(parents=True)  # fresh and empty: every program compiles from scratch
    env = side_env(side["tree"], cache)
    command = [python, "-m", "amla_jax", *overrides, f"hydra.run.dir={run_dir}"]
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=side["tree"], env=env, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - start
    (workdir / f"log_{tag}.txt").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode:
        raise RuntimeError(f"{tag} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return {
        "wall_seconds": wall,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "overrides": overrides,
        "candidates": read_candidates(run_dir),
    }


def print_run(record: dict) -> None:
    old, new = record["old"], record["new"]
    print(
        f"\n{record['command']} (repeat {record['repeat']}): old {old['wall_seconds']:.1f} s, "
        f"new {new['wall_seconds']:.1f} s, old/new {record['speedup']:.2f}x "
        f"(load {old['load_before'][0]:.1f} / {new['load_before'][0]:.1f})",
        flush=True,
    )
    print(f"  {'cand':>4} | {'old compile':>11} {'train':>7} {'share':>6} | "
          f"{'new compile':>11} {'train':>7} {'share':>6}")  # fmt: skip
    for o, n in zip(old["candidates"], new["candidates"], strict=False):
        print(f"  {o['id']:>4} | {cell(o)} | {cell(n)}")
    for o in old["candidates"][len(new["candidates"]) :]:
        print(f"  {o['id']:>4} | {cell(o)} |")
    for n in new["candidates"][len(old["candidates"]) :]:
        print(f"  {n['id']:>4} | {'':>26} | {cell(n)}")


def cell(candidate: dict) -> str:
    share = candidate["compile_share"]
    share_text = "-" if share is None else f"{100 * share:.0f}%"
    return (
        f"{candidate['compile_seconds']:>11.1f} {candidate['train_seconds']:>7.1f} {share_text:>6}"
    )


def later_share(side: dict) -> float | None:
    """The largest compile share from the second candidate on (the issue's target)."""
    shares = [c["compile_share"] for c in side["candidates"][1:] if c["compile_share"] is not None]
    return max(shares) if shares else None


def summarize(records: list[dict]) -> dict:
    """Per command: median wall seconds of each side, their ratio, the worst later share."""
    summary = {}
    for command in dict.fromkeys(r["command"] for r in records):
        mine = [r for r in records if r["command"] == command]
        walls = {s: statistics.median(r[s]["wall_seconds"] for r in mine) for s in ("old", "new")}
        shares = {s: [later_share(r[s]) for r in mine] for s in ("old", "new")}
        summary[command] = {
            "old_wall_seconds": walls["old"],
            "new_wall_seconds": walls["new"],
            "speedup": walls["old"] / walls["new"],
            "max_later_compile_share": {
                s: max((v for v in shares[s] if v is not None), default=None) for s in shares
            },
        }
    return summary


def print_summary(summary: dict) -> None:
    print(f"\n{'command':<8} {'old s':>8} {'new s':>8} {'old/new':>8}   "
          f"compile share from 2nd candidate (old / new; target < {SHARE_TARGET:.0%})")  # fmt: skip
    for command, row in summary.items():
        shares = " / ".join(
            "-" if v is None else f"{100 * v:.0f}%" for v in row["max_later_compile_share"].values()
        )
        print(
            f"{command:<8} {row['old_wall_seconds']:>8.1f} {row['new_wall_seconds']:>8.1f} "
            f"{row['speedup']:>7.2f}x   {shares}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=OLD_REV, help=f"old revision (default {OLD_REV})")
    parser.add_argument(
        "--new", default=WORKING_TREE, help="new revision (default: this working tree as is)"
    )
    parser.add_argument("--runs", nargs="+", choices=sorted(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per command and side")
    parser.add_argument("--tiny", action="store_true", help="CI: tiny network, 3 steps")
    parser.add_argument("--json", help="also write every number here")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of both sides")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--keep", help="keep run dirs, caches and logs in this folder")
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, workdir: Path) -> dict:
    """Every run of ``args``, old then new, one at a time; the report."""
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": args.python,
        "tiny": args.tiny,
        "runs": [],
    }
    with (
        source_tree(args.old, workdir, "old") as old,
        source_tree(args.new, workdir, "new") as new,
    ):
        sides = {"old": old, "new": new}
        for name, side in sides.items():
            compileall.compile_dir(side["tree"] / "amla_jax", quiet=1)
            found = check_imports(args.python, side["tree"], side_env(side["tree"], workdir))
            report[name] = {**side, "tree": str(side["tree"]), **found}
            print(f"{name}: {side['rev']} {side['commit']} from {side['tree']}", flush=True)
        commands = TINY_COMMANDS if args.tiny else COMMANDS
        for repeat in range(args.repeat):
            for command in args.runs:
                overrides = commands[command] + (TINY if args.tiny else [])
                record = {"command": command, "repeat": repeat}
                for name, side in sides.items():
                    tag = f"{command}_{repeat}_{name}"
                    record[name] = run_one(args.python, side, overrides, workdir, tag, args.timeout)
                record["speedup"] = record["old"]["wall_seconds"] / record["new"]["wall_seconds"]
                report["runs"].append(record)
                print_run(record)
                write_json(args.json, report)  # a long benchmark keeps what it measured
    report["summary"] = summarize(report["runs"])
    print_summary(report["summary"])
    write_json(args.json, report)
    return report


def write_json(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="search_speed_")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        bench(args, workdir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
