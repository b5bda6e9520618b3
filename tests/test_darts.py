"""Tests for amla_jax.oneshot.darts: the second-order hypergradient against the exact
derivative through the unrolled step, and DARTS' state and step on a toy supernet."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oneshot_toy import make_toy_supernet

from amla_jax.oneshot.darts import softmax_weights, unrolled_hypergradient

XI = 0.5  # a large virtual step, so that the Hessian term is far above the tolerance


def _problem():
    """A float64 toy supernet's loss, weights, alphas and two batches."""
    supernet = make_toy_supernet()
    keys = jax.random.split(jax.random.key(0), 5)
    images = jax.random.normal(keys[0], (2, 16, 8, 8, 1), jnp.float64)
    labels = jax.random.randint(keys[1], (2, 16), 0, 10)
    alphas = {"cell": 0.5 * jax.random.normal(keys[2], (6, 5), jnp.float64)}
    variables = supernet.model.init(keys[3], images[0], softmax_weights(alphas))
    params = jax.tree.map(lambda x: x.astype(jnp.float64), variables["params"])
    stats = jax.tree.map(lambda x: x.astype(jnp.float64), variables["batch_stats"])

    def loss(params, alphas, batch):
        logits, _ = supernet.model.apply(
            {"params": params, "batch_stats": stats}, batch[0], softmax_weights(alphas),
            train=True, mutable=["batch_stats"],
        )  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    batch_a, batch_b = (images[0], labels[0]), (images[1], labels[1])
    return loss, params, alphas, batch_a, batch_b


def _norm(tree) -> float:
    return float(optax.tree.norm(tree))


def _minus(a, b):
    return jax.tree.map(jnp.subtract, a, b)


def test_second_order_hypergradient_matches_the_exact_unrolled_derivative():
    with jax.enable_x64(True):
        loss, params, alphas, batch_a, batch_b = _problem()

        def unrolled_loss(alphas):
            grad_w = jax.grad(loss)(params, alphas, batch_a)
            unrolled = jax.tree.map(lambda w, g: w - XI * g, params, grad_w)
            return loss(unrolled, alphas, batch_b)

        exact = jax.grad(unrolled_loss)(alphas)
        approx, loss_b = unrolled_hypergradient(loss, params, alphas, batch_a, batch_b, XI)
        assert float(loss_b) == pytest.approx(float(unrolled_loss(alphas)), rel=1e-12)
        # Terms the paper's approximation must not drop: the gradient at w' alone (no
        # Hessian term), and the first-order gradient at w.
        grad_at_unrolled = jax.grad(loss, argnums=1)(
            jax.tree.map(lambda w, g: w - XI * g, params, jax.grad(loss)(params, alphas, batch_a)),
            alphas,
            batch_b,
        )
        first_order = jax.grad(loss, argnums=1)(params, alphas, batch_b)
        scale = _norm(exact)
        error = _norm(_minus(approx, exact)) / scale
        tolerance = 1e-4  # the finite difference is O(eps^2): ~3e-6 here
        assert error < tolerance
        assert _norm(_minus(grad_at_unrolled, exact)) / scale > 10 * tolerance
        assert _norm(_minus(first_order, exact)) / scale > 10 * tolerance


def test_second_order_step_updates_alphas_with_the_hypergradient():
    from fakes import template_spec

    from amla_jax.algos import get_algorithm
    from amla_jax.config import AlgoConfig

    supernet = make_toy_supernet()
    keys = jax.random.split(jax.random.key(1), 4)
    batch_a = (jax.random.normal(keys[0], (8, 8, 8, 1)), jax.random.randint(keys[1], (8,), 0, 10))
    batch_b = (jax.random.normal(keys[2], (8, 8, 8, 1)), jax.random.randint(keys[3], (8,), 0, 10))
    alphas = {}
    for order in (1, 2):
        algorithm = get_algorithm("darts")(
            AlgoConfig("darts", 1, {"order": order}), template_spec()
        )
        method = algorithm.make_method(10)
        state = method.init(keys[0], supernet, batch_a[0])
        state, metrics = jax.jit(method.step)(state, batch_a, batch_b, keys[1])
        assert int(state.step) == 1 and float(metrics["train/learning_rate"]) == pytest.approx(0.025)
        alphas[order] = np.asarray(state.alphas["cell"])
    # Adam's first step moves every alpha by ~lr * sign(gradient): the orders' gradients
    # differ in sign somewhere, and both moved away from the shared initial alphas.
    assert not np.array_equal(alphas[1], alphas[2])
