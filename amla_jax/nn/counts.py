"""Sizes of a network: trainable parameters and forward FLOPs, without allocating.

Auxiliary heads (modules named ``AuxHead*``) are left out of parameter counts by
default, as every reference count does.

Synopsis::

    from amla_jax.nn import count_flops, count_params, param_count
    count_params(spec, (32, 32, 3), num_classes=10)   # jax.eval_shape: no allocation
    count_flops(spec, (32, 32, 3), 10)                # XLA's cost analysis of one image
    param_count(variables["params"])                  # of a tree you already have
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from amla_jax.nn.model import build_model, init_variables
from amla_jax.spec import NetworkSpec

AUX_PREFIX = "AuxHead"


def _drop_aux(tree):
    if not isinstance(tree, dict):
        return tree
    return {k: _drop_aux(v) for k, v in tree.items() if not str(k).startswith(AUX_PREFIX)}


def param_count(params, include_aux: bool = False) -> int:
    """Sums the sizes of the leaves of a ``params`` tree, auxiliary heads excluded."""
    tree = params if include_aux else _drop_aux(_unfreeze(params))
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _unfreeze(tree):
    if hasattr(tree, "items"):
        return {k: _unfreeze(v) for k, v in tree.items()}
    return tree


def count_params(
    spec: NetworkSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    include_aux: bool = False,
) -> int:
    """Trainable parameters of ``spec`` without allocating them (``jax.eval_shape``)."""
    model = build_model(spec, num_classes)
    shapes = jax.eval_shape(
        lambda key: init_variables(model, key, input_shape, 1), jax.random.key(0)
    )
    return param_count(shapes["params"], include_aux)


def count_flops(
    spec: NetworkSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    variables: dict | None = None,
) -> float:
    """FLOPs of one image's forward pass in evaluation mode (XLA's cost analysis).

    Counted with every envelope branch on its own: the network's arithmetic, not that of
    the convolutions small cells run as on CPU (`amla_jax.nn.envelope_fused`).
    ``variables`` (the network's variables, or their shapes) saves tracing the
    initialisation when the caller has them, e.g. after training.
    """
    model = build_model(spec, num_classes, fuse_branches=False)
    if variables is None:
        variables = jax.eval_shape(
            lambda key: init_variables(model, key, input_shape, 1), jax.random.key(0)
        )
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
    cost = lowered.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))
