"""Runs >= 100 bad inputs through the real entry points and prints a Markdown table.

Usage (from the repository root)::

    python experiments/bad_inputs/run.py [-j 2] [--no-run-dirs] > table.md

Each input runs in its own subprocess (``python -m amla_jax ...``, ``amla ...``,
``python -m amla_jax.report ...``) in a scratch directory, with a tiny budget. The goal:
every row exits 2, prints no traceback, and (for ``python -m amla_jax``) creates no run
directory. ``--no-run-dirs`` skips the two cases that need one finished tiny run (the
only training this script does, once, before the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "amla"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES, TINY, Case  # noqa: E402

TIMEOUT_S = 120


def command(case: Case, scratch: Path) -> list[str]:
    if case.tool == "main":
        return [sys.executable, "-m", "amla_jax", *case.args, f"hydra.run.dir={scratch / 'run'}"]
    if case.tool == "report":
        return [sys.executable, "-m", "amla_jax.report", *case.args]
    code = "import sys; from amla_jax.tasks.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, *case.args]


def run_case(case: Case, base: Path, shared: dict) -> dict:
    scratch = base / f"case{case.index:03d}"
    scratch.mkdir()
    if case.setup:
        case.setup(scratch, shared)
    env = {
        **os.environ,
        "HYDRA_FULL_ERROR": "0",
        "AMLA_WORKSPACE": str(scratch / "ws"),
        "AMLA_JAX_CACHE": "",
    }
    args = [
        a.replace("{dir}", str(scratch)).replace("{tiny}", str(shared.get("tiny")))
        for a in command(case, scratch)
    ]
    try:
        proc = subprocess.run(
            args, cwd=scratch, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = "timeout", (exc.stderr or b"").decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    created = case.tool == "main" and (scratch / "run").exists() and not case.keeps_run_dir
    return {
        "input": case.label,
        "exit": code,
        "traceback": "Traceback" in err,
        "run_dir": created,
        "message": lines[0] if lines else "",
        "lines": len(lines),
    }


def finished_run(base: Path, shared: dict) -> Path | None:
    """One tiny finished `algo=fixed` run (the only training here), or None on failure."""
    run_dir = base / "finished"
    args = [
        sys.executable, "-m", "amla_jax", "algo=fixed", f"spec={shared['tiny']}", "debug=smoke",
        "train.steps=1", "train.bn_calibration_batches=0", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"setup run failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return run_dir


def markdown(rows: list[dict]) -> str:
    out = [
        "| # | input | exit | traceback | run dir | first line of stderr |",
        "|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows, 1):
        message = row["message"].replace("|", "\\|")[:160]
        label = row["input"].replace("|", "\\|")
        out.append(
            f"| {i} | `{label}` | {row['exit']} | {'yes' if row['traceback'] else 'no'} | "
            f"{'created' if row['run_dir'] else '-'} | {message} |"
        )
    good = sum(r["exit"] == 2 and not r["traceback"] and not r["run_dir"] for r in rows)
    out.append("")
    out.append(f"{good} of {len(rows)} inputs: exit 2, no traceback, no run directory.")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--no-run-dirs", action="store_true")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    shared = {"examples": EXAMPLES}
    cases = CASES
    if args.no_run_dirs:
        cases = [c for c in cases if not c.needs_run]
    elif any(c.needs_run for c in cases):
        shared["tiny"] = base / "tiny.json"
        shared["tiny"].write_text(json.dumps(TINY))
        shared["finished"] = finished_run(base, shared)
        cases = [c for c in cases if not c.needs_run or shared["finished"]]
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda c: run_case(c, base, shared), cases))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    return 0 if all(r["exit"] == 2 and not r["traceback"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
