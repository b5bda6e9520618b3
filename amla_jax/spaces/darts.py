"""The DARTS cell space (Liu et al. 2019): a normal and a reduction cell, each of 4
nodes that take 2 inputs from earlier states, each input through one of 8 ops.

An arch is 32 decisions: for the normal cell and then the reduction cell, for node
k = 0..3, ``(input, op, input, op)`` with ``input`` in ``0..k+1`` (states 0, 1 are the
cell's inputs, state k+2 is node k) and ``op`` indexing `OPS` (DARTS' PRIMITIVES). Both
inputs of a node may be the same state (the DARTS derivation picks two distinct ones;
the space keeps the product form so mutate and neighbours stay uniform). Every node is
concatenated into the cell output.

``to_spec`` builds the cells with `amla_jax.zoo.darts_cell`: into the template when it
has a micro (DARTS-style) body (its skeleton and widths kept), otherwise a small
`amla_jax.zoo.darts_v2` network (space options ``channels``, ``num_normal``).
``encode_path`` is BANANAS' path encoding truncated to paths of length <= 2 (cell input
-> op [-> node -> op]), per cell and input: 2 x 2 x (8 + 64) = 288 features.

Synopsis::

    space = get_space("darts")(channels=8, num_normal=1)
    arch = space.sample(key); spec = space.to_spec(arch, template)
"""

from __future__ import annotations

import dataclasses

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

OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")  # fmt: skip
NODES = 4
_CELL = tuple(n for k in range(NODES) for n in (k + 2, len(OPS), k + 2, len(OPS)))
CHOICES = _CELL + _CELL
CONCAT = tuple(range(2, 2 + NODES))
_PATHS = len(OPS) + len(OPS) ** 2


def genotype(arch: Arch) -> tuple[tuple, tuple]:
    """(normal, reduce) as DARTS genotypes: ((op name, input), ...) two per node."""
    cells = []
    for half in (arch[: len(_CELL)], arch[len(_CELL) :]):
        cells.append(tuple((OPS[half[i + 1]], half[i]) for i in range(0, len(half), 2)))
    return cells[0], cells[1]


def describe(arch: Arch) -> str:
    normal, reduce = genotype(arch)
    return f"normal={list(normal)} reduce={list(reduce)}"


def encode_path(arch: Arch) -> np.ndarray:
    out = np.zeros((2, 2, _PATHS), np.float32)
    for c, cell in enumerate(genotype(arch)):
        edges = [cell[2 * k : 2 * k + 2] for k in range(NODES)]
        for k in range(NODES):
            for op, src in edges[k]:
                if op == "none":
                    continue
                o = OPS.index(op)
                if src < 2:
                    out[c, src, o] = 1.0
                    continue
                for op0, src0 in edges[src - 2]:
                    if src0 < 2 and op0 != "none":
                        out[c, src0, len(OPS) + OPS.index(op0) * len(OPS) + o] = 1.0
    return out.ravel()


def make_darts(channels: int = 16, num_normal: int = 2) -> SearchSpace:
    """The DARTS space; without a micro template, ``to_spec`` builds ``darts_v2`` at
    these sizes."""

    def to_spec(arch: Arch, template=None):
        from amla_jax.spec import MicroSpec  # noqa: PLC0415
        from amla_jax.zoo import darts_cell, darts_v2  # noqa: PLC0415

        normal, reduce = genotype(check_arch("darts", CHOICES, arch))
        if template is None or not isinstance(template.body, MicroSpec):
            return darts_v2(channels, num_normal, genotype=(normal, reduce))
        cells = tuple(
            (name, darts_cell(reduce if cell.reduction else normal, CONCAT, cell.reduction))
            for name, cell in template.body.cells
        )
        return template.replace_body(dataclasses.replace(template.body, cells=cells))

    def from_spec(spec) -> Arch:
        cells = dict(getattr(spec.body, "cells", ()))
        halves = {}
        for cell in cells.values():
            edges = [e for node in cell.nodes for e in node.edges]
            halves[cell.reduction] = [v for e in edges for v in (e.input, OPS.index(e.op))]
        if set(halves) != {False, True}:
            raise SpaceError("search_space darts: the spec needs a normal and a reduction cell")
        return check_arch("darts", CHOICES, halves[False] + halves[True])

    return SearchSpace(
        "darts",
        CHOICES,
        lambda key: uniform_sample(CHOICES, key_to_rng(key)),
        lambda key, arch: one_change(CHOICES, arch, key_to_rng(key)),
        lambda arch: all_one_changes(CHOICES, arch),
        lambda arch: one_hot(CHOICES, arch),
        encode_path,
        to_spec,
        from_spec,
        describe,
    )
