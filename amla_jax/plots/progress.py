"""Pictures of searches: accuracy against time, best-so-far progress, training curves.

The data come from `amla_jax.run_record.RunRecord` (one run directory each, see
`amla_jax.run_record.read_run`); training curves read ``metrics.jsonl`` through
`amla_jax.rundir.read_metrics`.

* `plot_accuracy_vs_time`: one point per run, test accuracy of the selected candidate
  against the search's training time, one colour per algorithm.
* `plot_search_progress`: best-so-far validation accuracy against the candidate index
  and against the cumulative training time, one line per run.
* `plot_training_curves`: one run's training loss per candidate (``metrics.jsonl``) and
  the validation/test accuracy of each candidate.

Synopsis::

    from amla_jax.plots import plot_search_progress, save_figure
    from amla_jax.report import collect
    save_figure(plot_search_progress(collect(["multirun/x"])), "progress.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from amla_jax.plots.figure import COLORS, algorithm_colors, new_figure
from amla_jax.rundir import read_metrics
from amla_jax.selection import selection_metric

if TYPE_CHECKING:
    from amla_jax.run_record import RunRecord


def plot_accuracy_vs_time(records: Sequence[RunRecord]) -> Figure:
    """Test accuracy of each run's selected candidate against its search time."""
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    colors = algorithm_colors([r.algorithm for r in records])
    for name, color in colors.items():
        runs = [r for r in records if r.algorithm == name and r.test_accuracy is not None]
        x = [r.search_seconds for r in runs]
        y = [100 * r.test_accuracy for r in runs]
        ax.scatter(x, y, color=color, s=50, alpha=0.8, edgecolor="black", label=name)
        for run, xi, yi in zip(runs, x, y, strict=True):
            ax.annotate(
                f"s{run.seed}" if run.seed is not None else "",
                (xi, yi),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                color=color,
            )
    ax.set_xlabel("search time: train + compile seconds, all candidates")
    ax.set_ylabel("test accuracy of the selected candidate (%)")
    ax.set_title("accuracy vs. search time (one point per run, sN = seed)")
    ax.grid(alpha=0.3)
    ax.margins(0.08)
    ax.legend(title="algorithm", fontsize=8)
    return fig


def _best_so_far(values: Sequence[float]) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(values, dtype=float))


def plot_search_progress(records: Sequence[RunRecord]) -> Figure:
    """Best-so-far validation accuracy per run, against candidates and against time."""
    fig = new_figure(11, 4.2)
    by_index, by_time = fig.subplots(1, 2, sharey=True)
    colors = algorithm_colors([r.algorithm for r in records])
    # Runs often tie; earlier algorithms are drawn wider, so a covered line shows as a rim.
    widths = {name: 1.5 + 1.5 * (len(colors) - 1 - i) for i, name in enumerate(colors)}
    for record in records:
        selection = [_selection(row) for row in record.rows]
        if not selection:
            continue
        best = 100 * _best_so_far(selection)
        ids = [row["id"] for row in record.rows]
        times = np.cumsum([_seconds(row) for row in record.rows])
        style = {"color": colors[record.algorithm], "lw": widths[record.algorithm]}
        style |= {"where": "post", "alpha": 0.8, "marker": "o", "ms": 2 + style["lw"]}
        by_index.step(ids, best, **style)
        by_time.step(times, best, **style)
    last = max((len(r.rows) for r in records), default=1) - 1
    by_index.set_xlim(-0.5, last + 0.5)
    by_index.set_xlabel("candidate index")
    by_index.xaxis.get_major_locator().set_params(integer=True)
    by_time.set_xlabel("cumulative train + compile seconds")
    by_index.set_ylabel("best validation accuracy so far (%)")
    for ax in (by_index, by_time):
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker="o", label=n) for n, c in colors.items()]
    by_index.legend(handles=handles, title="algorithm (one line per run)", fontsize=8)
    fig.suptitle("search progress: best-so-far validation accuracy")
    return fig


def _selection(row: dict) -> float:
    return selection_metric(row["metrics"])


def _seconds(row: dict) -> float:
    return float(row.get("train_seconds", 0.0)) + float(row.get("compile_seconds", 0.0))


def plot_training_curves(record: RunRecord) -> Figure:
    """One run: training loss per candidate (left) and each candidate's accuracies (right)."""
    fig = new_figure(11, 4.0)
    loss_ax, acc_ax = fig.subplots(1, 2)
    runs: dict[str, list[tuple[int, float]]] = {}
    for entry in read_metrics(record.run_dir):
        if "train/loss" in entry:
            runs.setdefault(entry["run"], []).append((entry["step"], entry["train/loss"]))
    for i, (name, points) in enumerate(runs.items()):
        steps, losses = zip(*sorted(points), strict=True)
        loss_ax.plot(steps, losses, marker=".", color=COLORS[i % len(COLORS)], label=name)
    loss_ax.set(xlabel="training step", ylabel="training loss", title="training loss")
    if runs:
        loss_ax.legend(fontsize=7, ncol=2)
    ids = [row["id"] for row in record.rows]
    for key, marker in (("validation/accuracy", "o"), ("test/accuracy", "s")):
        values = [100 * row["metrics"].get(key, np.nan) for row in record.rows]
        acc_ax.plot(ids, values, marker=marker, label=key.split("/")[0])
    if record.best_id is not None:
        acc_ax.axvline(record.best_id, color="gray", ls="--", label="selected (best val)")
    acc_ax.set(xlabel="candidate", ylabel="accuracy (%)", title="accuracy per candidate")
    acc_ax.xaxis.get_major_locator().set_params(integer=True)
    acc_ax.legend(fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{record.algorithm}, seed {record.seed}: {record.run_dir.name}")
    return fig
