"""Whole runs under XLA:CPU flag variants: does a compiler flag cut a search's compile time?

Runs ``python -m amla_jax`` (the no-argument run unless ``--`` overrides follow) once per
variant of ``$XLA_FLAGS``, one after the other from this checkout, each with an empty
compilation cache, and prints per variant the wall time, the candidates' summed compile
and training seconds (from ``candidates.jsonl``), each as a ratio to the ``baseline``
variant measured in the same run, and whether the candidates are the ones the baseline
found (same parameter counts and validation accuracies). amla_jax's own choices apply
unless a variant names the flag: ``--xla_backend_optimization_level=1``
(`amla_jax.runner.prefer_fast_compiles`) and XLA's classic fusion emitters
(`amla_jax.train.compile_options`).

A flag this jaxlib does not know makes XLA abort the run: that variant is reported as
failed and the others go on.

Synopsis::

    python experiments/bench/xla_flags.py --json flags.json        # every variant, ~2 min each
    python experiments/bench/xla_flags.py --variants baseline legacy_runtime
    python experiments/bench/xla_flags.py --tiny                   # CI: a tiny network, 3 steps
    python experiments/bench/xla_flags.py -- algo=nac dataset=digits
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_speed import ROOT, TINY, run_one  # noqa: E402

VARIANTS = {  # name -> flags added to $XLA_FLAGS
    "baseline": "",
    # amla_jax compiles small-batch programs (digits) with XLA's classic emitters; this
    # restores XLA:CPU's default, its MLIR fusion emitters
    "mlir_fusion_emitters": "--xla_cpu_use_fusion_emitters=true",
    # and hands only reductions to YNNPACK; this restores XLA:CPU's default YNNPACK fusions
    "ynn_default": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution,reduce",
    "no_expensive_llvm": "--xla_llvm_disable_expensive_passes=true",
    "legacy_runtime": "--xla_cpu_use_thunk_runtime=false",
    "default_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "llvm_O0": "--xla_backend_optimization_level=0",
    # every program at -O1, as before the initialisation, evaluation and calibration
    # programs of small-batch runs asked for -O0 (a level in $XLA_FLAGS overrides theirs)
    "all_O1": "--xla_backend_optimization_level=1",
}
TINY_VARIANTS = ["baseline", "no_expensive_llvm"]


def outcome(record: dict) -> tuple:
    """What a run found: per candidate, its parameter count and validation accuracy."""
    return tuple((c["num_params"], c["validation_accuracy"]) for c in record["candidates"])


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    overrides = list(args.overrides) + (TINY if args.tiny else [])
    base_flags = os.environ.get("XLA_FLAGS", "")
    report = {"overrides": overrides, "xla_flags": base_flags, "variants": {}}
    for name in args.variants:
        os.environ["XLA_FLAGS"] = f"{base_flags} {VARIANTS[name]}".strip()
        print(f"[{name}] XLA_FLAGS={os.environ['XLA_FLAGS']!r} ...", flush=True)
        try:
            record = run_one(sys.executable, {"tree": ROOT}, overrides, workdir, name, args.timeout)
        except RuntimeError as error:  # XLA aborts on a flag it does not know
            record = {"error": str(error).splitlines()[-1][-300:]}
        finally:
            os.environ["XLA_FLAGS"] = base_flags
        record["flags"] = VARIANTS[name]
        report["variants"][name] = record
    return report


def totals(record: dict) -> dict:
    """A run's wall seconds and its candidates' summed compile and training seconds."""
    return {
        "wall_seconds": record["wall_seconds"],
        "compile_seconds": sum(c["compile_seconds"] for c in record["candidates"]),
        "train_seconds": sum(c["train_seconds"] for c in record["candidates"]),
    }


def summarize(report: dict) -> list[dict]:
    base = report["variants"].get("baseline")
    base_totals = totals(base) if base and not base.get("error") else None
    rows = []
    for name, record in report["variants"].items():
        row = {"variant": name, "flags": record["flags"], "error": record.get("error")}
        if not row["error"]:
            row.update(totals(record))
            if base_totals:
                for key, value in base_totals.items():
                    row[f"{key}_vs_baseline"] = row[key] / value if value else None
                row["same_candidates"] = outcome(record) == outcome(base)
        rows.append(row)
    return rows


def _ratio(row: dict, key: str) -> str:
    value = row.get(f"{key}_vs_baseline")
    return "-" if value is None else f"{value:.2f}x"


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'variant':<20} {'wall s':>8} {'(vs base)':>9} {'compile s':>10} {'(vs base)':>9} "
          f"{'train s':>8} {'(vs base)':>9}  same candidates")  # fmt: skip
    for row in rows:
        if row["error"]:
            print(f"{row['variant']:<20} failed: {row['error']}")
            continue
        print(
            f"{row['variant']:<20} {row['wall_seconds']:>8.1f} {_ratio(row, 'wall_seconds'):>9} "
            f"{row['compile_seconds']:>10.1f} {_ratio(row, 'compile_seconds'):>9} "
            f"{row['train_seconds']:>8.1f} {_ratio(row, 'train_seconds'):>9}  "
            f"{row.get('same_candidates', '-')}"
        )
    print("(ratios are variant / baseline: below 1.00x is faster)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    parser.add_argument("--tiny", action="store_true", help="CI: tiny network, 3 steps")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", help="also write every measurement here")
    parser.add_argument("overrides", nargs="*", help="after --: overrides for python -m amla_jax")
    args = parser.parse_args(argv)
    if args.variants is None:
        args.variants = TINY_VARIANTS if args.tiny else list(VARIANTS)
    if "baseline" not in args.variants:
        args.variants.insert(0, "baseline")
    with tempfile.TemporaryDirectory(prefix="xla_flags_") as tmp:
        report = measure(args, Path(tmp))
    report["rows"] = rows = summarize(report)
    print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
