"""Figures on matplotlib's Agg canvas (no pyplot), and the colours every plot shares.

Every plotting function returns a `matplotlib.figure.Figure` made by `new_figure`, so it
works headless, in threads and in notebooks alike; `save_figure` writes it as a PNG.

Synopsis::

    from amla_jax.plots.figure import new_figure, save_figure
    fig = new_figure(6.4, 4.4)
    fig.add_subplot().plot([0, 1], [1, 0])
    save_figure(fig, "line.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
WIDENER_COLOR = "#f4a259"
SKIP_COLOR = "#5a7bb5"


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (never a GUI window, whatever pyplot's backend is)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as a PNG (parent folders created) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def algorithm_colors(algorithms: Sequence[str]) -> dict[str, str]:
    """A fixed colour per algorithm name (sorted), shared by every plot of a report."""
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(sorted(set(algorithms)))}
