"""A space-search comparison on disk: its table as Markdown, ``anytime.png``, ``scatter.png``.

The same text and plots for ``python -m amla_jax.compare``'s ``summary.json``
(`write_summary_report`: a whole ``report.md``) and for tabular run directories
(`search_section`: a section appended to the runs report by `amla_jax.report.write`).
matplotlib is imported only when plots are drawn.

Synopsis::

    from amla_jax.report.search_write import write_summary_report
    from amla_jax.report.searches import read_summary
    write_summary_report(read_summary("experiments/nb201_compare/analog"), "out/")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amla_jax.report.searches import BASELINE, SearchComparison, from_records
from amla_jax.run_record import RunRecord

ANYTIME = "anytime"
SCATTER = "scatter"


def write_search_plots(
    comparison: SearchComparison, out_dir: str | Path, suffix: str = ""
) -> list[Path]:
    """``anytime<suffix>.png`` and, unless the objective is the baseline accuracy,
    ``scatter<suffix>.png``."""
    from amla_jax import plots  # noqa: PLC0415 (matplotlib only when plotting)

    out_dir = Path(out_dir)
    anytime = out_dir / f"{ANYTIME}{suffix}.png"
    written = [plots.save_figure(plots.plot_anytime(comparison), anytime)]
    if comparison.has_scatter:
        scatter = out_dir / f"{SCATTER}{suffix}.png"
        written.append(plots.save_figure(plots.plot_returned(comparison), scatter))
    return written


def search_markdown(comparison: SearchComparison, images: Sequence[Path], out_dir: Path) -> str:
    """The table, what it shows, and the plots' links (no heading)."""
    seeds = {len(g.trials) for g in comparison.groups}
    queries = {len(t.curve) for g in comparison.groups for t in g.trials}
    lines = [
        f"{_span(seeds)} seeds x {_span(queries)} queries per algorithm on "
        f"`{comparison.source}`"
        + (
            f"; wall time {comparison.wall_seconds:.1f} s (imports included)."
            if comparison.wall_seconds is not None
            else "."
        ),
        "",
        comparison.to_markdown(),
        "",
        f"Per algorithm, the mean ± sample standard deviation over seeds of `{comparison.objective}`"
        " of the architecture the search returned (its highest-objective evaluated arch),"
        " best and worst trial, and the seconds of all its trials.",
        "",
    ]
    captions = {
        ANYTIME: "best-so-far objective vs queries, mean ± 1 std over seeds",
        SCATTER: f"`{BASELINE}` vs `{comparison.objective}` of each returned arch",
    }
    for path in images:
        lines += [f"![{path.stem}]({path.relative_to(out_dir).as_posix()})", ""]
        lines += [f"*{captions[path.stem.split('_')[0]]}*", ""]
    return "\n".join(lines)


def _span(values: set[int]) -> str:
    return str(min(values)) if len(values) == 1 else f"{min(values)}-{max(values)}"


def summary_markdown(comparison: SearchComparison, images: Sequence[Path], out_dir: Path) -> str:
    """The whole ``report.md`` of a ``python -m amla_jax.compare`` summary."""
    lines = [f"# NB201 search comparison: objective `{comparison.objective}`", ""]
    if comparison.command:
        lines += [f"`{comparison.command}`", ""]
    return "\n".join(lines) + "\n" + search_markdown(comparison, images, out_dir)


def write_summary_report(
    comparison: SearchComparison, out_dir: str | Path, plots: bool = True
) -> Path:
    """Writes ``out_dir/report.md`` (and the PNGs) of a comparison summary; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_search_plots(comparison, out_dir) if plots else []
    path = out_dir / "report.md"
    path.write_text(summary_markdown(comparison, images, out_dir))
    return path


def search_section(records: Sequence[RunRecord], out_dir: Path, plots: bool) -> str:
    """The runs report's search-comparison sections, one per objective the tabular runs
    maximised ("" when no run used the table); the PNGs of a second objective onwards
    are named ``anytime_<objective>.png``."""
    text = ""
    for i, comparison in enumerate(from_records(records)):
        suffix = f"_{comparison.objective}" if i else ""
        images = write_search_plots(comparison, out_dir, suffix) if plots else []
        text += f"\n## Search comparison (tabular runs), objective `{comparison.objective}`\n\n"
        text += search_markdown(comparison, images, out_dir)
    return text
