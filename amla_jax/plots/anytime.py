"""Pictures of a space-search comparison (`amla_jax.report.searches.SearchComparison`).

* `plot_anytime`: best-so-far objective against queries, per algorithm the mean over its
  trials with a ±1 std band (trials of unequal length: over those that reached a query).
* `plot_returned`: baseline accuracy against the objective of the architecture each
  trial returned, one colour per algorithm (for objectives other than the baseline).

Synopsis::

    from amla_jax.plots import plot_anytime, save_figure
    from amla_jax.report.searches import read_summary
    save_figure(plot_anytime(read_summary("experiments/nb201_compare/analog")), "anytime.png")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from amla_jax.plots.figure import algorithm_colors, new_figure

if TYPE_CHECKING:
    from amla_jax.report.searches import SearchComparison, SearchGroup


def _curves(group: SearchGroup) -> np.ndarray:
    """(trials, queries) best-so-far values in percent, NaN after a short trial's end."""
    length = max(len(t.curve) for t in group.trials)
    curves = np.full((len(group.trials), length), np.nan)
    for i, trial in enumerate(group.trials):
        curves[i, : len(trial.curve)] = trial.curve
    return 100 * curves


def plot_anytime(comparison: SearchComparison) -> Figure:
    """Best-so-far objective vs queries: per group the mean and a ±1 std band."""
    groups = comparison.groups
    colors = algorithm_colors([g.name for g in groups])
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    lows, highs = [], []
    for group in groups:
        curves = _curves(group)
        mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=colors[group.name], label=group.name)
        ax.fill_between(x, mean - std, mean + std, color=colors[group.name], alpha=0.15)
        lows.append(mean[min(9, len(mean) - 1)])
        highs.append(max(100 * t.curve[-1] for t in group.trials))
    ax.set(xlabel="queries", ylabel=f"best-so-far {comparison.objective} (%)")
    # From the 10th query's mean up: the first queries' wide bands would flatten the rest.
    ax.set_ylim(min(lows) - 1, max(highs) + 0.3)
    ax.legend(loc="lower right")
    return fig


def plot_returned(comparison: SearchComparison) -> Figure:
    """Baseline accuracy vs the objective of each trial's returned architecture."""
    colors = algorithm_colors([g.name for g in comparison.groups])
    fig = new_figure(5.2, 4.6)
    ax = fig.add_subplot()
    for group in comparison.groups:
        ax.scatter(
            [100 * t.baseline_accuracy for t in group.trials],
            [100 * t.accuracy for t in group.trials],
            s=12,
            alpha=0.6,
            color=colors[group.name],
            label=group.name,
        )
    ax.set(
        xlabel="baseline accuracy (%)",
        ylabel=f"{comparison.objective} (%)",
        title="returned architectures",
    )
    ax.legend(loc="lower right")
    return fig
