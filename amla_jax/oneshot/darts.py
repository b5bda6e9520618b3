"""DARTS (Liu et al. 2019): a continuous relaxation of the cell, searched by alternating
gradient steps on the architecture parameters (alphas) and the supernet's weights.

Each step first updates the alphas on ``batch_b`` (the other half of the training
split), then the weights on ``batch_a`` with the updated ``softmax(alphas)``:
- first order: the gradient of ``L_b(w, alpha)`` with respect to alpha;
- second order: the paper's unrolled hypergradient (`unrolled_hypergradient`),
  ``w' = w - xi grad_w L_a(w, alpha)``, ``grad_alpha L_b(w', alpha)`` minus ``xi`` times
  the finite-difference Hessian-vector product ``(grad_alpha L_a(w+) -
  grad_alpha L_a(w-)) / (2 eps)``, ``w± = w ± eps grad_w' L_b(w', alpha)``, ``eps =
  0.01 / ||grad_w' L_b||``, ``xi`` = the current weight learning rate.
The paper's recipe is the options' default: weights by SGD (momentum 0.9, learning rate
cosine from 0.025 to 0.001 over the search, weight decay 3e-4, global-norm clip 5);
alphas by Adam (3e-4, betas (0.5, 0.999), weight decay 1e-3), initialised as 1e-3 times
a standard normal draw.

Synopsis::

    method = make_darts_method(options)       # options: amla_jax.algos.oneshot.DartsOptions
    state = method.init(key, supernet, images)
    state, metrics = jax.jit(method.step)(state, batch_a, batch_b, key)
    arch = method.derive(state, key, score)   # supernet.derive(alphas)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amla_jax.oneshot.base import OneShotMethod


class DartsState(NamedTuple):
    """step: weight updates done; params/batch_stats: the supernet's variables; alphas:
    the architecture parameters per cell kind; the two optax states."""

    step: jax.Array
    params: Any
    batch_stats: Any
    alphas: dict[str, jax.Array]
    weight_opt: Any
    alpha_opt: Any


def softmax_weights(alphas) -> dict[str, jax.Array]:
    """The mixed ops' weights: softmax over the ops of each edge."""
    return {kind: jax.nn.softmax(a, axis=-1) for kind, a in alphas.items()}


def unrolled_hypergradient(loss: Callable, params, alphas, batch_a, batch_b, xi):
    """DARTS' second-order architecture gradient (the paper's eq. 7 with its
    finite-difference Hessian-vector product).

    Args:
      loss: ``loss(params, alphas, batch) -> scalar``.
      params, alphas: the current weights and architecture parameters (pytrees).
      batch_a: trains the weights (the virtual step); batch_b: the architecture's batch.
      xi: the virtual step's learning rate.

    Returns:
      The approximate ``d/d alpha L_b(w - xi grad_w L_a(w, alpha), alpha)`` and ``L_b``.
    """
    grad_w_a = jax.grad(loss)(params, alphas, batch_a)
    unrolled = jax.tree.map(lambda w, g: w - xi * g, params, grad_w_a)
    loss_b, (grad_w_b, grad_alpha_b) = jax.value_and_grad(loss, argnums=(0, 1))(
        unrolled, alphas, batch_b
    )
    norm = optax.tree.norm(grad_w_b)
    eps = 0.01 / jnp.maximum(norm, 1e-12)
    plus = jax.tree.map(lambda w, v: w + eps * v, params, grad_w_b)
    minus = jax.tree.map(lambda w, v: w - eps * v, params, grad_w_b)
    grad_alpha = jax.grad(loss, argnums=1)
    hessian = jax.tree.map(
        lambda p, m: (p - m) / (2 * eps),
        grad_alpha(plus, alphas, batch_a),
        grad_alpha(minus, alphas, batch_a),
    )
    return jax.tree.map(lambda g, h: g - xi * h, grad_alpha_b, hessian), loss_b


def _optimizers(options):
    """(weight optimizer, alpha optimizer, weight learning-rate schedule)."""
    total = max(1, int(options.total_steps))
    schedule = optax.cosine_decay_schedule(
        options.w_lr, total, alpha=options.w_lr_min / options.w_lr
    )
    weights = optax.chain(
        optax.clip_by_global_norm(options.w_grad_clip),
        optax.add_decayed_weights(options.w_weight_decay),  # L2 before momentum, as torch SGD
        optax.sgd(schedule, momentum=options.w_momentum),
    )
    alphas = optax.chain(
        optax.add_decayed_weights(options.alpha_weight_decay),  # torch Adam's L2 penalty
        optax.adam(options.alpha_lr, b1=options.alpha_b1, b2=options.alpha_b2),
    )
    return weights, alphas, schedule


def make_darts_method(options, name: str = "darts") -> OneShotMethod:
    """DARTS over any `Supernet`.

    Args:
      options: ``order`` (1 or 2), ``total_steps`` (the cosine schedule's length), the
        weights' ``w_lr``, ``w_lr_min``, ``w_momentum``, ``w_weight_decay``,
        ``w_grad_clip`` and the alphas' ``alpha_lr``, ``alpha_b1``, ``alpha_b2``,
        ``alpha_weight_decay`` (`amla_jax.algos.oneshot.DartsOptions`).
      name: the registry name recorded in the run directory.
    """
    weight_opt, alpha_opt, schedule = _optimizers(options)
    second_order = int(options.order) == 2
    bound: dict[str, Any] = {}  # the supernet, bound by init (the step is traced after it)

    def apply(params, batch_stats, alphas, batch):
        images, labels = batch
        logits, updates = bound["supernet"].model.apply(
            {"params": params, "batch_stats": batch_stats}, images, softmax_weights(alphas),
            train=True, mutable=["batch_stats"],
        )  # fmt: skip
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return loss, (updates["batch_stats"], accuracy)

    def init(key, supernet, example_images) -> DartsState:
        bound["supernet"] = supernet
        model_key, alpha_key = jax.random.split(key)
        alphas = {
            kind: 1e-3 * jax.random.normal(jax.random.fold_in(alpha_key, i), shape)
            for i, (kind, shape) in enumerate(sorted(supernet.alpha_shapes.items()))
        }
        variables = supernet.model.init(
            {"params": model_key, "dropout": model_key},
            example_images, softmax_weights(alphas), train=False,
        )  # fmt: skip
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        return DartsState(
            jnp.zeros((), jnp.int32), params, batch_stats, alphas,
            weight_opt.init(params), alpha_opt.init(alphas),
        )  # fmt: skip

    def step(state: DartsState, batch_a, batch_b, key):
        del key  # DARTS' step is deterministic given its batches
        stats = state.batch_stats

        def loss(params, alphas, batch):
            return apply(params, stats, alphas, batch)[0]

        if second_order:
            xi = schedule(state.step)
            grad_alpha, loss_b = unrolled_hypergradient(
                loss, state.params, state.alphas, batch_a, batch_b, xi
            )
        else:
            loss_b, grad_alpha = jax.value_and_grad(loss, argnums=1)(
                state.params, state.alphas, batch_b
            )
        updates, alpha_opt_state = alpha_opt.update(grad_alpha, state.alpha_opt, state.alphas)
        alphas = optax.apply_updates(state.alphas, updates)
        (loss_a, (batch_stats, accuracy)), grads = jax.value_and_grad(apply, has_aux=True)(
            state.params, stats, alphas, batch_a
        )
        updates, weight_opt_state = weight_opt.update(grads, state.weight_opt, state.params)
        params = optax.apply_updates(state.params, updates)
        new = DartsState(
            state.step + 1, params, batch_stats, alphas, weight_opt_state, alpha_opt_state
        )
        metrics = {
            "train/loss": loss_a,
            "train/accuracy": accuracy,
            "arch/loss": loss_b,
            "train/learning_rate": schedule(state.step),
        }
        return new, metrics

    def derive(state, key, score):
        del key, score  # the alphas alone decide (DARTS' genotype rule)
        return bound["supernet"].derive(
            {k: np.asarray(v) for k, v in jax.device_get(state.alphas).items()}
        )

    def arch_weights(state) -> dict[str, Any]:
        weights = jax.device_get(softmax_weights(state.alphas))
        return {kind: np.asarray(w, np.float64).round(6).tolist() for kind, w in weights.items()}

    return OneShotMethod(
        name, init, step, lambda s: softmax_weights(s.alphas), derive, arch_weights
    )
