"""Search algorithms: importing this package fills the `ALGORITHMS` registry.

Synopsis::

    from amla_jax.algos import ALGORITHMS, get_algorithm
    sorted(ALGORITHMS)                       # ['fixed', 'nac', 'nac_worst', 'random']
    algorithm = get_algorithm("nac")(algo_cfg, template_spec)
"""

from amla_jax.algos import nac, random_search  # noqa: F401 (registers the algorithms)
from amla_jax.algos.base import (
    ALGORITHMS,
    Algorithm,
    AlgorithmError,
    get_algorithm,
    register,
    selection_metric,
)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmError",
    "get_algorithm",
    "register",
    "selection_metric",
]
