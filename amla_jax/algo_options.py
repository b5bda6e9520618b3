"""The option keys of the construction algorithms (``algo.options``), in one place that
imports nothing heavy: `amla_jax.algos.nac` and `amla_jax.algos.random_search` validate
against them, and the task CLI (`amla_jax.tasks.amla_config`) maps AMLA's JSON sections
onto them without loading JAX.
"""

from __future__ import annotations

from typing import Any

# AMLA's config.nac.construction.json ``envelopenet`` section; the stem width comes from
# the template's stem.
NAC_DEFAULTS: dict[str, Any] = {
    "stages": 3,
    "layers_per_stage": [2, 2, 2],
    "max_layers_per_stage": [7, 6, 2],
    "construction": [True, True, False],
    "parameter_limits": [False, False, False],
    "max_filter_prune": 6,
    "envelopecell": {
        "Branch1": "1x1",
        "Branch2": "3x3",
        "Branch3": "3x3sep",
        "Branch4": "5x5",
        "Branch5": "5x5sep",
        "Branch6": "7x7sep",
    },
    "skip": True,
    "worst_case": False,
}

# The keys of AMLA's ``random`` section, as the random baseline reads them.
RANDOM_OPTIONS = (
    "stages",
    "layers_per_stage",
    "num_blocks_per_stage",
    "blocks",
    "parameter_limits",
    "skip",
)
