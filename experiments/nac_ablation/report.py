"""Turns the run directories of the NAC ablation into a Markdown table.

Every directory under the given paths that holds a ``candidates.jsonl`` is one run; its
algorithm and seed come from ``.hydra/config.yaml``. Per algorithm the table gives the
mean ± sample std over seeds of:

- the *final network*: the network the search returns if it trained it (``random``: the
  best by validation accuracy), else the last network it trained (``nac``, ``nac_worst``:
  AMLA returns ``arch_{iterations}``, constructed but not trained, so the last trained
  one is ``arch_{iterations-1}``): its test accuracy and parameter count;
- the best-by-validation candidate's test accuracy (the same rule for every algorithm);
- the parameters of ``best_spec.json`` (for NAC, the untrained constructed network);
- the wall time of the run's training (train + compile seconds of all candidates).

Synopsis::

    python experiments/nac_ablation/report.py multirun/2026-01-01/12-00-00
    python experiments/nac_ablation/report.py multirun/... --write experiments/nac_ablation/README.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

from amla_jax.algos.base import selection_metric
from amla_jax.spec import NetworkSpec, load_spec

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def read_run(run_dir: Path) -> dict:
    """One run's summary: algorithm, seed and the numbers the table aggregates."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    rows = [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]
    best_spec = load_spec(run_dir / "best_spec.json")
    returned = [r for r in rows if NetworkSpec.from_json(r["spec"]) == best_spec]
    final = returned[-1] if returned else rows[-1]
    by_validation = max(rows, key=lambda r: (selection_metric(r["metrics"]), -r["id"]))
    return {
        "algorithm": cfg.algo.name,
        "seed": int(cfg.seed),
        "candidates": len(rows),
        "final_test": final["metrics"]["test/accuracy"],
        "final_params": final["num_params"],
        "best_val_test": by_validation["metrics"]["test/accuracy"],
        "best_spec_params": _count(best_spec, cfg),
        "seconds": sum(r["train_seconds"] + r["compile_seconds"] for r in rows),
    }


def _count(spec, cfg) -> int:
    from amla_jax.data import DataConfig, load_dataset  # noqa: PLC0415
    from amla_jax.model import count_params  # noqa: PLC0415

    info = load_dataset(DataConfig(**OmegaConf.to_container(cfg.dataset))).info
    return count_params(spec, info.image_shape, info.num_classes)


def _mean_std(values: list[float], fmt: str) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), fmt)} ± {format(std, fmt)}"


def table(runs: list[dict]) -> str:
    """The Markdown table, one row per algorithm (sorted by name)."""
    groups = defaultdict(list)
    for run in runs:
        groups[run["algorithm"]].append(run)
    lines = [
        "| algorithm | runs (seeds) | final net test acc | final net params "
        "| best-val candidate test acc | best_spec.json params | train s / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(groups):
        group = sorted(groups[name], key=lambda r: r["seed"])
        seeds = ",".join(str(r["seed"]) for r in group)
        lines.append(
            f"| {name} | {len(group)} ({seeds}) "
            f"| {_mean_std([100 * r['final_test'] for r in group], '.1f')} % "
            f"| {_mean_std([r['final_params'] for r in group], ',.0f')} "
            f"| {_mean_std([100 * r['best_val_test'] for r in group], '.1f')} % "
            f"| {_mean_std([r['best_spec_params'] for r in group], ',.0f')} "
            f"| {_mean_std([r['seconds'] for r in group], '.0f')} |"
        )
    return "\n".join(lines)


def find_runs(paths: list[Path]) -> list[Path]:
    return sorted({p.parent for path in paths for p in Path(path).rglob("candidates.jsonl")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="multirun or run directories")
    parser.add_argument("--write", type=Path, help=f"replace {BEGIN}...{END} in this file")
    args = parser.parse_args(argv)
    run_dirs = [d for d in find_runs(args.paths) if (d / "best_spec.json").exists()]
    if not run_dirs:
        parser.error(f"no finished run (best_spec.json) under {[str(p) for p in args.paths]}")
    markdown = table([read_run(d) for d in run_dirs])
    print(markdown)
    if args.write:
        text = args.write.read_text()
        if BEGIN not in text or END not in text:
            parser.error(f"{args.write}: needs the markers {BEGIN} and {END}")
        head, rest = text.split(BEGIN, 1)
        args.write.write_text(f"{head}{BEGIN}\n{markdown}\n{END}{rest.split(END, 1)[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
