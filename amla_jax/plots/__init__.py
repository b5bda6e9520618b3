"""Pictures of searches and networks, drawn with matplotlib alone (Agg, no pyplot).

Every function returns a `matplotlib.figure.Figure` bound to the Agg canvas (`figure`);
`save_figure` writes it as a PNG. Searches (`progress`) are drawn from
`amla_jax.run_record.RunRecord`s, space-search comparisons (`anytime`) from a
`amla_jax.report.searches.SearchComparison`, networks (`networks`) from a `NetworkSpec`.
Importing this package imports matplotlib but not JAX.

Synopsis::

    from amla_jax.plots import draw_network, save_figure
    from amla_jax.amla import load_spec
    save_figure(draw_network(load_spec("run/best_spec.json")), "network.png")
"""

from amla_jax.plots.anytime import plot_anytime, plot_returned
from amla_jax.plots.figure import algorithm_colors, new_figure, save_figure
from amla_jax.plots.networks import draw_network
from amla_jax.plots.progress import (
    plot_accuracy_vs_time,
    plot_search_progress,
    plot_training_curves,
)

__all__ = [
    "algorithm_colors",
    "draw_network",
    "new_figure",
    "plot_accuracy_vs_time",
    "plot_anytime",
    "plot_returned",
    "plot_search_progress",
    "plot_training_curves",
    "save_figure",
]
