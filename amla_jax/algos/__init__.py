"""Search algorithms, and `ALGORITHMS`: the registry of their factories, a plain dict.

Synopsis::

    from amla_jax.algos import ALGORITHMS, get_algorithm
    sorted(ALGORITHMS)                       # ['evolution', 'fixed', 'nac', ...]
    algorithm = get_algorithm("nac")(algo_cfg, template_spec)

To add an algorithm, write its factory ``make_<name>(cfg, template) -> Algorithm`` in its
own module (see `amla_jax.algos.base` for the contract) and add it below. One-shot
(weight-sharing) searches return a `OneShotAlgorithm` instead (`amla_jax.algos.oneshot`),
which the runner drives with `amla_jax.oneshot.loop.run_oneshot`.
"""

from amla_jax.algos.bananas import make_bananas
from amla_jax.algos.base import Algorithm, AlgorithmError, AlgorithmFactory
from amla_jax.algos.enas import make_enas
from amla_jax.algos.evolution import make_evolution
from amla_jax.algos.fixed import make_fixed
from amla_jax.algos.local_search import make_local_search
from amla_jax.algos.nac import make_nac, make_nac_worst
from amla_jax.algos.oneshot import OneShotAlgorithm, is_oneshot, make_darts
from amla_jax.algos.random_search import make_random
from amla_jax.algos.random_space import make_random_space
from amla_jax.algos.reinforce import make_reinforce

ALGORITHMS: dict[str, AlgorithmFactory] = {
    "bananas": make_bananas,
    # One-shot searches (OneShotAlgorithm, amla_jax.algos.oneshot and .enas).
    "darts": make_darts,
    "enas": make_enas,
    "evolution": make_evolution,
    "fixed": make_fixed,
    "local_search": make_local_search,
    "nac": make_nac,
    "nac_worst": make_nac_worst,
    "random": make_random,
    "random_space": make_random_space,
    "reinforce": make_reinforce,
}


def get_algorithm(name: str) -> AlgorithmFactory:
    """The factory registered as ``name``.

    Raises:
      AlgorithmError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in ALGORITHMS:
        raise AlgorithmError(
            f"algo: unknown algorithm {name!r}; valid: {', '.join(sorted(ALGORITHMS))}"
        )
    return ALGORITHMS[name]


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmError",
    "OneShotAlgorithm",
    "get_algorithm",
    "is_oneshot",
]
