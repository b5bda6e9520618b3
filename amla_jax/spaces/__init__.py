"""Search spaces for the discrete search algorithms, and `SPACES`, a plain dict of factories.

Synopsis::

    from amla_jax.spaces import SPACES, get_space
    sorted(SPACES)                               # ['darts', 'nb201']
    space = get_space("nb201")()                 # factory(**options) -> SearchSpace
    arch = space.sample(jax.random.key(0))

See `amla_jax.spaces.base` for the interface. No module here imports Flax; ``to_spec``
builds plain `amla_jax.spec.NetworkSpec` data.
"""

from __future__ import annotations

from collections.abc import Callable

from amla_jax.spaces.base import Arch, SearchSpace, SpaceError
from amla_jax.spaces.darts import make_darts
from amla_jax.spaces.nb201 import make_nb201

SPACES: dict[str, Callable[..., SearchSpace]] = {"darts": make_darts, "nb201": make_nb201}


def get_space(name: str) -> Callable[..., SearchSpace]:
    """The factory of the space ``name``.

    Raises:
      SpaceError: unknown name; the message lists the valid ones.
    """
    if name not in SPACES:
        raise SpaceError(f"search_space: unknown {name!r}; valid: {', '.join(sorted(SPACES))}")
    return SPACES[name]


__all__ = ["SPACES", "Arch", "SearchSpace", "SpaceError", "get_space"]
