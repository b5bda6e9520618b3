"""A tiny `Supernet` for the one-shot tests: a 2-layer MLP (smooth: no kinks, so that finite
differences of its gradients converge) whose hidden layer is a chain
of 6 mixed ops (5 candidates each), over the NB201 space's encoding (6 decisions x 5).

It follows `amla_jax.oneshot.supernet`'s interface exactly (model.apply(variables, x,
weights, train=...), alpha_shapes, weights_of_arch, derive), so the loop and the
methods can be tested without the real supernets' compile times.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amla_jax.spaces import get_space

EDGES, OPS = 6, 5
HIDDEN = 16


class ToySupernet(NamedTuple):
    space: object
    model: nn.Module
    alpha_shapes: dict
    weights_of_arch: object
    derive: object


class MixedMLP(nn.Module):
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, weights, train: bool = False):
        h = nn.Dense(HIDDEN)(x.reshape((x.shape[0], -1)))
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        h = jnp.tanh(h)
        w = weights["cell"]
        for i in range(EDGES):
            candidates = (
                jnp.zeros_like(h),  # none
                h,  # skip
                jnp.tanh(nn.Dense(HIDDEN, name=f"edge{i}_a")(h)),
                nn.softplus(nn.Dense(HIDDEN, name=f"edge{i}_b")(h)),
                jnp.sin(h),
            )
            h = sum(w[i, j] * op for j, op in enumerate(candidates))
        return nn.Dense(self.num_classes)(h)


def make_toy_supernet(num_classes: int = 10) -> ToySupernet:
    space = get_space("nb201")(channels=4, cells_per_stage=1, num_classes=num_classes)

    def weights_of_arch(arch):
        return {"cell": jax.nn.one_hot(jnp.asarray(arch), OPS)}

    def derive(alphas):
        return tuple(int(i) for i in np.argmax(np.asarray(alphas["cell"]), axis=-1))

    return ToySupernet(
        space, MixedMLP(num_classes), {"cell": (EDGES, OPS)}, weights_of_arch, derive
    )
