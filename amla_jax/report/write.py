"""The report folder: ``report.md`` and its PNGs (accuracy vs time, progress, networks;
for tabular runs also the search comparison of `amla_jax.report.search_write`).

matplotlib is imported only when plots are drawn (`amla_jax.plots`), so the table alone
needs neither it nor JAX.

Synopsis::

    from amla_jax.report import write_report
    write_report(["multirun/2026-01-01/12-00-00"], "report/")   # report.md + PNGs
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from amla_jax.report.markdown import common_root, report_markdown
from amla_jax.report.runs import collect
from amla_jax.report.search_write import search_section
from amla_jax.report.table import DEFAULT_COLUMNS, Comparison, compare
from amla_jax.run_record import RunRecord


def _slug(record: RunRecord, root: Path) -> str:
    name = str(record.run_dir.resolve().relative_to(root))
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "run"


def write_plots(records: Sequence[RunRecord], out_dir: str | Path) -> dict[str, list[Path]]:
    """The report's PNGs in ``out_dir``: accuracy vs time, progress, one network per run."""
    from amla_jax import plots  # noqa: PLC0415 (matplotlib only when plotting)

    out_dir = Path(out_dir)
    root = common_root(records)
    written = {
        "accuracy": [
            plots.save_figure(
                plots.plot_accuracy_vs_time(records), out_dir / "accuracy_vs_time.png"
            )
        ],
        "progress": [
            plots.save_figure(plots.plot_search_progress(records), out_dir / "search_progress.png")
        ],
        "networks": [],
    }
    from amla_jax.plots.oneshot import oneshot_runs, plot_oneshot  # noqa: PLC0415

    oneshot = [r.run_dir for r in records]
    if oneshot_runs(oneshot):  # one-shot searches: derived arch per epoch (epochs.jsonl)
        figure = plot_oneshot(oneshot)
        written["progress"].append(plots.save_figure(figure, out_dir / "oneshot_epochs.png"))
    for record in records:
        spec = record.best_spec()
        if spec is None:
            spec, what = _spec_of(record.best_row), f"unfinished, best so far: {record.best_id}"
        elif record.returned_id is None:
            what = "best_spec.json, constructed, not trained"
        else:
            what = f"best_spec.json = candidate {record.returned_id}"
        figure = plots.draw_network(spec, f"{record.algorithm}, seed {record.seed}: {what}")
        path = out_dir / "networks" / f"{_slug(record, root)}.png"
        written["networks"].append(plots.save_figure(figure, path))
    return written


def _spec_of(row: dict):
    from amla_jax.spec import NetworkSpec  # noqa: PLC0415 (a drawing needs the spec class)

    return NetworkSpec.from_json(row["spec"])


def write_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    plots: bool = True,
) -> Path:
    """Writes ``out_dir/report.md`` (table, runs, plot links) and its PNGs.

    Args:
      paths: run directories or multirun sweep roots (searched recursively).
      out_dir: the report folder (created).
      columns: the table's columns (names in `COLUMNS`).
      plots: also draw the PNGs.

    Returns:
      The path of ``report.md``.

    Raises:
      ReportError: no runs under ``paths`` (or a path is missing).
    """
    records = collect(paths)
    return write_records(records, compare(records, columns), Path(out_dir), plots)


def write_records(
    records: Sequence[RunRecord], comparison: Comparison, out_dir: Path, plots: bool
) -> Path:
    """`write_report` for runs already collected and compared; returns ``report.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(records, out_dir) if plots else {}
    path = out_dir / "report.md"
    text = report_markdown(comparison, records, images, out_dir)
    path.write_text(text + search_section(records, out_dir, plots))  # "" unless tabular runs
    return path
