"""One-shot searches: the derived architecture's accuracy against the epoch, and the
share of ``skip_connect`` in it (NAS-Bench-201's paper shows DARTS drifting to skip
connections on its space; this plot shows whether and when a run does).

Reads ``epochs.jsonl`` (`amla_jax.rundir.read_epochs`) of each run that has one: the
derived arch's table accuracy where the row has it (``table/baseline_accuracy``), else
its validation accuracy in the supernet (``validation/accuracy``); the skip share is
counted on the row's genotype (NB201's arch string or DARTS' genotype).

Synopsis::

    from amla_jax.plots.oneshot import plot_oneshot
    from amla_jax.plots import save_figure
    save_figure(plot_oneshot(["runs/darts_nb201"]), "oneshot.png")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from amla_jax.plots.figure import COLORS, new_figure
from amla_jax.rundir import read_epochs

TABLE_KEY = "table/baseline_accuracy"
DERIVED_KEY = "validation/accuracy"
# Op names of the NB201 and DARTS spaces, as their genotype strings spell them.
_OP = re.compile(
    r"none|skip_connect|nor_conv_[0-9]x[0-9]|avg_pool_3x3|max_pool_3x3|sep_conv_[0-9]x[0-9]"
    r"|dil_conv_[0-9]x[0-9]"
)


def skip_fraction(genotype: str) -> float:
    """The share of ``skip_connect`` among the ops named in ``genotype`` (0 if none)."""
    ops = _OP.findall(genotype)
    return ops.count("skip_connect") / len(ops) if ops else 0.0


def oneshot_runs(run_dirs: Sequence[str | Path]) -> list[tuple[Path, list[dict]]]:
    """``(run_dir, epoch rows)`` of the run directories that hold a one-shot search."""
    runs = [(Path(d), read_epochs(d)) for d in run_dirs]
    return [(d, rows) for d, rows in runs if rows]


def _label(run_dir: Path, rows: list[dict]) -> str:
    return f"{rows[0].get('algorithm', '?')}: {run_dir.name}"


def plot_oneshot(run_dirs: Sequence[str | Path]) -> Figure:
    """The derived arch's accuracy per epoch (solid) and its skip share (dashed, right
    axis), one colour per run directory with ``epochs.jsonl``."""
    fig = new_figure(7.2, 4.4)
    ax = fig.add_subplot()
    skip_ax = ax.twinx()
    sources = set()
    for i, (run_dir, rows) in enumerate(oneshot_runs(run_dirs)):
        color = COLORS[i % len(COLORS)]
        key = TABLE_KEY if all(TABLE_KEY in r["metrics"] for r in rows) else DERIVED_KEY
        sources.add("table accuracy" if key == TABLE_KEY else "supernet val accuracy")
        epochs = [r["epoch"] for r in rows]
        ax.plot(
            epochs,
            [100 * r["metrics"][key] for r in rows],
            color=color,
            marker="o",
            markersize=3,
            label=_label(run_dir, rows),
        )
        skips = [100 * skip_fraction(r.get("genotype", "")) for r in rows]
        skip_ax.plot(epochs, skips, color=color, linestyle="--", alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"derived arch: {' / '.join(sorted(sources)) or 'accuracy'} (%)")
    skip_ax.set_ylabel("skip_connect in the derived arch (%, dashed)")
    skip_ax.set_ylim(-5, 105)
    ax.set_title("one-shot searches: the derived architecture per epoch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    return fig
