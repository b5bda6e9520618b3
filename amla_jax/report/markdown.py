"""The text of ``report.md``: the comparison table, the runs, links to the plots.

Plain string building over `RunRecord`s and a `Comparison`; nothing here reads or writes
files (see `amla_jax.report.write`).

Synopsis::

    from amla_jax.report.markdown import report_markdown, runs_markdown
    text = report_markdown(compare(records), records, {"accuracy": [png]}, out_dir)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from amla_jax.report.table import Comparison
from amla_jax.run_record import RunRecord


def common_root(records: Sequence[RunRecord]) -> Path:
    """The deepest folder holding every run (a lone run's parent)."""
    dirs = [str(r.run_dir.resolve()) for r in records]
    return Path(os.path.commonpath(dirs)) if len(dirs) > 1 else Path(dirs[0]).parent


def runs_markdown(records: Sequence[RunRecord], root: Path) -> str:
    """One line per run: where it is, its selected candidate and what it returned."""
    lines = [
        "| run | algorithm | seed | candidates | selected (best val) | test acc % "
        "| returned (best_spec.json) | search s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        where = r.run_dir.resolve().relative_to(root)
        if not r.finished:
            returned = "unfinished"
        elif r.returned_id is None:
            returned = "constructed, not trained"
        else:
            returned = f"candidate {r.returned_id}"
        acc = "–" if r.test_accuracy is None else f"{100 * r.test_accuracy:.1f}"
        lines.append(
            f"| `{where}` | {r.algorithm} | {r.seed} | {len(r.rows)} | {r.best_id} "
            f"| {acc} | {returned} | {r.search_seconds:,.0f} |"
        )
    return "\n".join(lines)


def report_markdown(
    comparison: Comparison,
    records: Sequence[RunRecord],
    images: dict[str, list[Path]],
    out_dir: Path,
) -> str:
    """The text of ``report.md``: the table, what the columns mean, the runs, the plots."""
    root = common_root(records)
    shared = comparison.shared_setting()
    datasets = sorted({r.dataset or "?" for r in records})
    lines = [
        "# Search report",
        "",
        f"{len(records)} runs under `{root}`; dataset: {', '.join(datasets)}.",
        "Settings shared by all runs: "
        + (" ".join(f"`{s}`" for s in shared) if shared else "none")
        + ".",
        "",
        comparison.to_markdown(),
        "",
        "Mean ± sample standard deviation over the runs (seeds) of each row; (n=k): only k"
        " runs had the value. The *selected candidate* of a run is the network it trained"
        " with the best validation accuracy (the same rule for every algorithm; the test"
        " split never chooses). NAC returns a network it constructs but does not train"
        " (`best_spec.json`), so its accuracy is unknown; *final net* is the returned"
        " network if trained, else the last network the search trained.",
        "",
    ]
    lines += [f"- **{c.label}**: {c.help}" for _, c in comparison.columns if c.help]
    lines += ["", "## Runs", "", runs_markdown(records, root), "", "## Plots", ""]
    for key in ("accuracy", "progress"):
        for path in images.get(key, []):
            lines.append(f"![{path.stem}]({path.relative_to(out_dir).as_posix()})")
            lines.append("")
    if images.get("networks"):
        lines += ["### Networks returned (best_spec.json)", ""]
        for path in images["networks"]:
            rel = path.relative_to(out_dir).as_posix()
            lines.append(f"- [{path.stem}]({rel})")
    return "\n".join(lines) + "\n"
