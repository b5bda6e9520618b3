"""Supernets of the one-shot searches: one Flax module per search space, with the maps
between discrete architectures and architecture weights.

A `Supernet` bundles the space, the search network and two pure functions:
``weights_of_arch`` (traceable: an arch as the space encodes it -> one-hot weights with
which the supernet computes that arch's cells) and ``derive`` (architecture parameters
-> the discrete arch, by the DARTS / NB201 rule). Weights are a mapping per cell kind:
NB201 ``{"cell": (6, 5)}`` (every cell shares it), DARTS ``{"normal": (14, 8),
"reduce": (14, 8)}``.

Synopsis::

    from amla_jax.oneshot.supernet import make_supernet
    net = make_supernet("nb201", {}, num_classes=10, channels=16, cells_per_stage=5)
    weights = net.weights_of_arch(jnp.asarray(arch))          # or softmax(alphas)
    variables = net.model.init(key, x, weights, train=False)
    logits, updates = net.model.apply(variables, x, weights, train=True,
                                      mutable=["batch_stats"])
    net.derive({"cell": alphas})                              # -> arch tuple
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from amla_jax.errors import UserError
from amla_jax.spaces import darts as darts_space
from amla_jax.spaces import get_space
from amla_jax.spaces import nb201 as nb201_space
from amla_jax.spaces.base import Arch, SearchSpace

Weights = Mapping[str, jax.Array]

# DARTS: node k's incoming edges start at this row of the (14, 8) weights (k + 2 each).
DARTS_NODE_OFFSETS = tuple(sum(j + 2 for j in range(k)) for k in range(darts_space.NODES))
DARTS_EDGES = DARTS_NODE_OFFSETS[-1] + darts_space.NODES + 1
DARTS_CELL_KINDS = ("normal", "reduce")


class SupernetError(UserError):
    """An unknown one-shot space or bad supernet sizes; the message names the fix."""


class Supernet(NamedTuple):
    """A search space's supernet (see the module docstring).

    Attributes:
      space: the `SearchSpace` (``get_space(name)(**space_options)``).
      model: ``model.apply(variables, x, weights, train=bool) -> logits``; variables are
        ``{"params", "batch_stats"}``; with ``train=True`` pass ``mutable=["batch_stats"]``.
      alpha_shapes: the shape of each cell kind's weights (and architecture parameters).
      weights_of_arch: traceable; an int array of ``len(space.choices)`` -> `Weights`,
        the sum of one-hots of the chosen (edge, op) pairs, zeros elsewhere.
      derive: architecture parameters (per-edge logits, ``alpha_shapes``) -> the arch.
    """

    space: SearchSpace
    model: nn.Module
    alpha_shapes: Mapping[str, tuple[int, int]]
    weights_of_arch: Callable[[jax.Array], Weights]
    derive: Callable[[Mapping[str, np.ndarray]], Arch]


def nb201_weights_of_arch(arch: jax.Array) -> Weights:
    """NB201: decision ``e`` is edge ``e``'s op, so the weights are its one-hot rows."""
    arch = jnp.asarray(arch, jnp.int32)
    return {"cell": jax.nn.one_hot(arch, len(nb201_space.OPS), dtype=jnp.float32)}


def nb201_derive(alphas: Mapping[str, Any]) -> Arch:
    """NB201 (its DARTS baseline's ``genotype``): the argmax op per edge, ``none``
    included; ties go to the lower op index."""
    cell = np.asarray(alphas["cell"], np.float64)
    return tuple(int(i) for i in np.argmax(cell, axis=1))


def darts_weights_of_arch(arch: jax.Array) -> Weights:
    """DARTS: each cell half's ``(input, op)`` pairs of node k land on row
    ``DARTS_NODE_OFFSETS[k] + input``; a node that takes one input twice sums both."""
    arch = jnp.asarray(arch, jnp.int32)
    half = len(darts_space.CHOICES) // 2
    nodes = jnp.repeat(jnp.arange(darts_space.NODES), 2)
    rows_of_node = jnp.asarray(DARTS_NODE_OFFSETS, jnp.int32)[nodes]
    weights = {}
    for c, kind in enumerate(DARTS_CELL_KINDS):
        cell = arch[c * half : (c + 1) * half]
        inputs, ops = cell[0::2], cell[1::2]
        zeros = jnp.zeros((DARTS_EDGES, len(darts_space.OPS)), jnp.float32)
        weights[kind] = zeros.at[rows_of_node + inputs, ops].add(1.0)
    return weights


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def darts_derive(alphas: Mapping[str, Any]) -> Arch:
    """DARTS' ``genotype()`` rule on softmax(alphas) per edge: per node, the 2 incoming
    edges with the largest non-``none`` weight (ties to the lower input), each with its
    best non-``none`` op; stronger edge first. Never ``none``; two distinct inputs."""
    none = darts_space.OPS.index("none")
    arch: list[int] = []
    for kind in DARTS_CELL_KINDS:
        weights = _softmax_rows(alphas[kind])
        weights[:, none] = -np.inf
        for k, offset in enumerate(DARTS_NODE_OFFSETS):
            rows = weights[offset : offset + k + 2]
            strongest = np.argsort(-rows.max(axis=1), kind="stable")[:2]
            for source in strongest:
                arch += [int(source), int(np.argmax(rows[source]))]
    return tuple(arch)


def _sizes(space_name: str, sizes: Mapping[str, Any], defaults: dict[str, int]) -> dict:
    unknown = sorted(set(sizes) - set(defaults))
    if unknown:
        raise SupernetError(
            f"supernet {space_name}: unknown size {unknown[0]!r}; valid: {', '.join(defaults)}"
        )
    out = {**defaults, **sizes}
    for name, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SupernetError(
                f"supernet {space_name}: {name} must be a positive integer, got {value!r}"
            )
    return out


def _nb201(space: SearchSpace, num_classes: int, sizes: Mapping[str, Any]) -> Supernet:
    from amla_jax.nn.supernet_nb201 import NB201Supernet  # noqa: PLC0415 (Flax on use)

    sizes = _sizes("nb201", sizes, {"channels": 16, "cells_per_stage": 5})
    model = NB201Supernet(sizes["channels"], sizes["cells_per_stage"], num_classes)
    shapes = {"cell": (len(nb201_space.EDGES), len(nb201_space.OPS))}
    return Supernet(space, model, shapes, nb201_weights_of_arch, nb201_derive)


def _darts(space: SearchSpace, num_classes: int, sizes: Mapping[str, Any]) -> Supernet:
    from amla_jax.nn.supernet_darts import DartsSupernet  # noqa: PLC0415 (Flax on use)

    sizes = _sizes("darts", sizes, {"channels": 16, "layers": 8})
    if sizes["layers"] < 3:
        raise SupernetError(
            f"supernet darts: layers must be at least 3 (reductions at layers//3 and "
            f"2*layers//3 must be distinct cells), got {sizes['layers']}"
        )
    model = DartsSupernet(darts_space.OPS, sizes["channels"], sizes["layers"], num_classes)
    shapes = {kind: (DARTS_EDGES, len(darts_space.OPS)) for kind in DARTS_CELL_KINDS}
    return Supernet(space, model, shapes, darts_weights_of_arch, darts_derive)


SUPERNETS: dict[str, Callable[[SearchSpace, int, Mapping[str, Any]], Supernet]] = {
    "nb201": _nb201,
    "darts": _darts,
}


def make_supernet(
    space_name: str, space_options: Mapping[str, Any], num_classes: int, **sizes: int
) -> Supernet:
    """The supernet of the space ``space_name``.

    Args:
      space_name: a key of `SUPERNETS` (``nb201`` or ``darts``).
      space_options: the space factory's options (`amla_jax.spaces.get_space`).
      num_classes: the classifier's outputs.
      **sizes: NB201 ``channels=16, cells_per_stage=5`` (NB201's skeleton); DARTS
        ``channels=16, layers=8`` (reductions at layers//3 and 2*layers//3).

    Raises:
      SupernetError: an unknown space or a bad size (`SpaceError` for bad space options).
    """
    if space_name not in SUPERNETS:
        raise SupernetError(
            f"search_space: no supernet for {space_name!r}; valid: {', '.join(SUPERNETS)}"
        )
    try:
        space = get_space(space_name)(**dict(space_options))
    except TypeError as exc:  # an option the space's factory does not take
        raise SupernetError(f"search_space {space_name}: bad options: {exc}") from None
    if not isinstance(num_classes, int) or num_classes < 1:
        raise SupernetError(f"supernet: num_classes must be a positive integer, not {num_classes}")
    return SUPERNETS[space_name](space, num_classes, sizes)
