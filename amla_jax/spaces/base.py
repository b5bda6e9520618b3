"""The search-space interface: a bundle of pure functions over hashable architectures.

An architecture (``arch``) is a tuple of ints: one choice per decision. A space is built
by a factory over its options (`amla_jax.spaces.SPACES` maps names to factories)::

    space = get_space("nb201")()
    arch = space.sample(key)                 # uniform over the space
    child = space.mutate(key, arch)          # exactly one decision changed
    space.neighbours(arch)                   # every arch one decision away, in a fixed order
    space.encode(arch)                       # one-hot decisions, float32 vector
    space.encode_path(arch)                  # path encoding (White et al., BANANAS)
    spec = space.to_spec(arch, template)     # a trainable NetworkSpec
    space.from_spec(spec) == arch

Every random choice comes from the key passed in; nothing here imports Flax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from amla_jax.errors import UserError

Arch = tuple[int, ...]


class SpaceError(UserError):
    """An unknown space, an invalid architecture or a spec from another space."""


class SearchSpace(NamedTuple):
    """A search space as pure functions (see the module docstring).

    Attributes:
      name: the registry name.
      choices: the number of options of each decision (``len(choices)`` decisions).
      sample, mutate, neighbours, encode, encode_path, to_spec, from_spec: see above.
      describe: ``describe(arch) -> str``, a human-readable form (NB201's arch string).
    """

    name: str
    choices: tuple[int, ...]
    sample: Callable[[Any], Arch]
    mutate: Callable[[Any, Arch], Arch]
    neighbours: Callable[[Arch], tuple[Arch, ...]]
    encode: Callable[[Arch], np.ndarray]
    encode_path: Callable[[Arch], np.ndarray]
    to_spec: Callable[[Arch, Any], Any]
    from_spec: Callable[[Any], Arch]
    describe: Callable[[Arch], str]


def key_to_rng(key) -> np.random.Generator:
    """A numpy generator seeded from a JAX key: a typed key, or raw key data (uint32, a
    JAX or numpy array). Numpy draws are far cheaper than JAX dispatches for the few
    integers a discrete space needs; a typed key and its data give the same generator."""
    if isinstance(key, np.ndarray):
        data = key
    else:
        import jax  # noqa: PLC0415 (only for the key's bits)

        is_typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        data = np.asarray(jax.random.key_data(key) if is_typed else key)
    return np.random.default_rng([int(x) for x in data.ravel()])


def uniform_sample(choices: tuple[int, ...], rng: np.random.Generator) -> Arch:
    """One uniform choice per decision."""
    return tuple(int(rng.integers(n)) for n in choices)


def one_change(choices: tuple[int, ...], arch: Arch, rng: np.random.Generator) -> Arch:
    """``arch`` with one decision (uniform over decisions with > 1 option) set to a
    different option, uniformly."""
    decisions = [i for i, n in enumerate(choices) if n > 1]
    i = decisions[int(rng.integers(len(decisions)))]
    new = int(rng.integers(choices[i] - 1))
    new += new >= arch[i]  # skip the current option
    return (*arch[:i], new, *arch[i + 1 :])


def all_one_changes(choices: tuple[int, ...], arch: Arch) -> tuple[Arch, ...]:
    """Every arch that differs from ``arch`` in exactly one decision, decision-major."""
    return tuple(
        (*arch[:i], v, *arch[i + 1 :])
        for i, n in enumerate(choices)
        for v in range(n)
        if v != arch[i]
    )


def one_hot(choices: tuple[int, ...], arch: Arch) -> np.ndarray:
    """Concatenated one-hot vectors of the decisions."""
    out = np.zeros(sum(choices), np.float32)
    offsets = np.cumsum((0, *choices[:-1]))
    out[offsets + np.asarray(arch)] = 1.0
    return out


def check_arch(name: str, choices: tuple[int, ...], arch) -> Arch:
    """``arch`` as a tuple of ints, or `SpaceError` naming what is wrong."""
    arch = tuple(int(a) for a in arch)
    if len(arch) != len(choices) or any(not 0 <= a < n for a, n in zip(arch, choices, strict=True)):
        raise SpaceError(f"search_space {name}: {arch} is not an architecture of {choices}")
    return arch
