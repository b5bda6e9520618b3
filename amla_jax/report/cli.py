"""``amla report PATHS... [--out DIR]`` (also ``python -m amla_jax.report``).

Prints the comparison table and writes the report folder; bad input ends with one
``error: ...`` line on stderr and exit code 2. PATHS are run directories or multirun
roots (tabular runs add the search comparison, `amla_jax.report.searches`), or one
``python -m amla_jax.compare`` output folder (its ``summary.json``): then the report is
that comparison's table, ``anytime.png`` and ``scatter.png``.

Synopsis::

    amla report multirun/2026-01-01/12-00-00 --out report --columns test_accuracy,num_params
    amla report experiments/nb201_compare/analog --out experiments/nb201_compare/analog
    python -c "from amla_jax.report import main; main(['runs/', '--no-plots'])"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amla_jax.errors import USAGE_EXIT, UserError, one_line
from amla_jax.report.runs import ReportError, collect
from amla_jax.report.search_write import write_summary_report
from amla_jax.report.searches import from_records, read_summary, summary_path
from amla_jax.report.table import COLUMNS, DEFAULT_COLUMNS, compare
from amla_jax.report.write import write_records


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as the entry point does
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amla report",
        description="Compare finished searches: a Markdown table (mean ± std over seeds per "
        "algorithm and setting) and plots. Also: python -m amla_jax.report.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="run directories or multirun roots, or one python -m amla_jax.compare --out folder",
    )
    parser.add_argument(
        "--out", type=Path, help="where report.md and the PNGs go (default: <first path>/report)"
    )
    parser.add_argument(
        "--columns",
        default=",".join(DEFAULT_COLUMNS),
        help=f"comma-separated columns from: {', '.join(COLUMNS)}",
    )
    parser.add_argument("--no-plots", action="store_true", help="write report.md only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``amla report PATHS... [--out DIR]``: prints the table, writes the report.

    Returns:
      0 on success; 2 (with one ``error:`` line on stderr) for bad input.
    """
    args = _parser().parse_args(argv)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    first = args.paths[0]
    out_dir = args.out or (first.parent if first.is_file() else first) / "report"
    try:
        if any(summary_path(p) for p in args.paths):
            return _report_summary(args.paths, out_dir, plots=not args.no_plots)
        records = collect(args.paths)
        comparison = compare(records, columns)
        searches = from_records(records)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return USAGE_EXIT
    path = write_records(records, comparison, out_dir, plots=not args.no_plots)
    print(comparison.to_markdown())
    for search in searches:
        print(f"\nsearch comparison, objective {search.objective}:")
        print(search.to_markdown())
    print(f"report: {path}")
    return 0


def _report_summary(paths: list[Path], out_dir: Path, plots: bool) -> int:
    """The report of one ``python -m amla_jax.compare`` summary."""
    if len(paths) > 1:
        raise ReportError(
            f"{len(paths)} paths given with a comparison summary among them; report one "
            "python -m amla_jax.compare folder at a time, or run directories only"
        )
    comparison = read_summary(paths[0])
    path = write_summary_report(comparison, out_dir, plots)
    print(comparison.to_markdown())
    print(f"report: {path}")
    return 0
