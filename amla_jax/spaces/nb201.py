"""The NAS-Bench-201 cell space: 6 edges x 5 ops, an arch is 6 op indices.

Decision ``i`` is edge ``NB201_EDGES[i]`` (``(to, from)``, in the order of NB201's arch
string ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|``) and its value indexes ``NB201_OPS``. So
``(3, 0, 0, 3, 3, 3)`` is ``|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|...``.
(The tabular evaluator's package numbers edges and ops differently; it converts.)

Synopsis::

    from amla_jax.spaces import get_space
    space = get_space("nb201")(channels=16, cells_per_stage=5, num_classes=10)
    arch = space.sample(key); space.describe(arch)      # NB201's arch string
    spec = space.to_spec(arch, template)                # via spec.nb201.nb201_network
"""

from __future__ import annotations

import itertools

import numpy as np

from amla_jax.spaces.base import (
    Arch,
    SearchSpace,
    SpaceError,
    all_one_changes,
    check_arch,
    key_to_rng,
    one_change,
    one_hot,
    uniform_sample,
)
from amla_jax.spec.nb201 import NB201_EDGES, NB201_OPS, arch_string, parse_arch_string
from amla_jax.spec.nb201_network import nb201_network

OPS, EDGES = NB201_OPS, NB201_EDGES
CHOICES = (len(OPS),) * len(EDGES)
NONE = OPS.index("none")
# Every input -> output path, as decision indices (shortest first): BANANAS' path encoding
# has one feature per (path, sequence of non-none ops on it).
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
_LIVE = tuple(i for i in range(len(OPS)) if i != NONE)
PATH_FEATURES = tuple(
    (path, ops) for path in PATHS for ops in itertools.product(_LIVE, repeat=len(path))
)
_FEATURE = {feature: i for i, feature in enumerate(PATH_FEATURES)}


def describe(arch: Arch) -> str:
    """NB201's arch string of ``arch``."""
    return arch_string([OPS[i] for i in arch])


def from_arch_string(text: str) -> Arch:
    """The arch of NB201's arch string ``text`` (a `SpecError` if it is not one)."""
    return tuple(OPS.index(op) for op in parse_arch_string(text))


def connected(arch: Arch) -> bool:
    """Whether a path of non-``none`` edges joins the input (node 0) to the output (3)."""
    reach = {0}
    for (to, src), op in zip(EDGES, arch, strict=True):
        if op != NONE and src in reach:
            reach.add(to)
    return 3 in reach


def encode_path(arch: Arch) -> np.ndarray:
    """One feature per input -> output path and op sequence on it (100 features)."""
    out = np.zeros(len(PATH_FEATURES), np.float32)
    for path in PATHS:
        ops = tuple(arch[i] for i in path)
        if NONE not in ops:
            out[_FEATURE[(path, ops)]] = 1.0
    return out


def make_nb201(channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10) -> SearchSpace:
    """The NB201 space; ``to_spec`` builds NB201's network with these sizes."""

    def sample(key) -> Arch:
        return uniform_sample(CHOICES, key_to_rng(key))

    def mutate(key, arch: Arch) -> Arch:
        return one_change(CHOICES, arch, key_to_rng(key))

    def to_spec(arch: Arch, template=None):
        del template  # NB201's skeleton is fixed; its sizes are this space's options
        ops = tuple(OPS[i] for i in check_arch("nb201", CHOICES, arch))
        return nb201_network(ops, channels, cells_per_stage, num_classes, name=describe(arch))

    def from_spec(spec) -> Arch:
        ops = getattr(spec.body, "ops", None)
        if ops is None:
            raise SpaceError(f"search_space nb201: {type(spec.body).__name__} is not an NB201 body")
        return check_arch("nb201", CHOICES, [OPS.index(op) for op in ops])

    return SearchSpace(
        "nb201",
        CHOICES,
        sample,
        mutate,
        lambda arch: all_one_changes(CHOICES, arch),
        lambda arch: one_hot(CHOICES, arch),
        encode_path,
        to_spec,
        from_spec,
        describe,
    )
