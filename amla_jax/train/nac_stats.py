"""What NAC reads of a trained network, under AMLA's names.

The train step accumulates each branch's MeanSSS (sum and count) in the ``nac_stats``
collection; the skip-edge scalars are ordinary parameters named ``scalar_<source>``.

Synopsis::

    from amla_jax.train import read_scalars, read_utilities
    read_utilities(state.nac_stats)   # {"Cell1/Branch2": 0.31, ...}
    read_scalars(state.params)        # {3: {1: 0.52}}: dest cell 3 reads source cell 1
"""

from __future__ import annotations

import jax


def read_utilities(nac_stats) -> dict[str, float]:
    """AMLA's MeanSSS per branch (sum / steps), keyed ``"Cell<k>/Branch<j>"``."""
    cells = jax.device_get(nac_stats).get("body", {})
    return {
        f"{cell}/{branch}": float(v["stats"]["meansss_sum"] / max(v["stats"]["count"], 1.0))
        for cell, branches in cells.items()
        if cell.startswith("Cell")
        for branch, v in branches.items()
    }


def read_scalars(params) -> dict[int, dict[int, float]]:
    """Skip-edge scalars ``{dest cellnumber: {source cellnumber: value}}``."""
    cells = jax.device_get(params).get("body", {})
    out: dict[int, dict[int, float]] = {}
    for cell, leaves in cells.items():
        if not cell.startswith("Cell"):
            continue
        edges = {
            int(name[len("scalar_") :]): float(v)
            for name, v in leaves.items()
            if name.startswith("scalar_")
        }
        if edges:
            out[int(cell[len("Cell") :])] = edges
    return out
