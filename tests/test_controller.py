"""The ENAS controller (amla_jax.nn.controller): sampling, log-probabilities, the greedy
path and a REINFORCE update (amla_jax.oneshot.enas.reinforce_update) on tiny cases."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amla_jax.nn.controller import allowed_mask, make_controller
from amla_jax.oneshot.enas import reinforce_update
from amla_jax.spaces import get_space

KEY = jax.random.key(0)


def sample_many(controller, params, n, key=KEY):
    return jax.vmap(controller.sample, (None, 0))(params, jax.random.split(key, n))


def test_log_prob_of_a_sample_equals_the_one_sample_returned():
    controller = make_controller(get_space("darts")().choices)
    params = controller.init(KEY)
    archs, log_probs, entropies = sample_many(controller, params, 4)
    again = jax.vmap(controller.log_prob, (None, 0))(params, archs)
    np.testing.assert_allclose(again[0], log_probs, rtol=1e-5)
    np.testing.assert_allclose(again[1], entropies, rtol=1e-5)


def test_greedy_is_the_argmax_of_the_probabilities():
    controller = make_controller((3, 4, 2), hidden=8)
    params = controller.init(KEY)
    greedy = np.asarray(controller.greedy(params))
    assert greedy.tolist() == [int(np.argmax(p)) for p in controller.probabilities(params)]


def test_reinforce_raises_the_probability_of_the_rewarded_op():
    controller = make_controller((3, 3), hidden=8, temperature=1.0)
    params = controller.init(KEY)
    tx = optax.adam(0.05)

    @jax.jit
    def update(params, opt, key):
        archs, _, _ = sample_many(controller, params, 8, key)
        rewards = (archs[:, 0] == 2).astype(jnp.float32)
        return reinforce_update(controller, tx, params, opt, archs, rewards, rewards.mean(), 1e-4)

    opt = tx.init(params)
    before = float(controller.probabilities(params)[0][2])
    for i in range(20):
        params, opt, _ = update(params, opt, jax.random.fold_in(KEY, i))
    after = float(controller.probabilities(params)[0][2])
    assert before < 0.5 < after, (before, after)


def test_allowed_masks_options_and_must_leave_one():
    controller = make_controller((3, 2), allowed_mask((3, 2), [(0, 0), (0, 2)]), hidden=8)
    archs, _, _ = sample_many(controller, controller.init(KEY), 32)
    assert set(np.asarray(archs[:, 0]).tolist()) == {1}
    assert set(np.asarray(archs[:, 1]).tolist()) == {0, 1}
    try:
        make_controller((2,), [[False, False]])
    except ValueError as exc:
        assert "allowed" in str(exc)
    else:
        raise AssertionError("an all-masked decision was accepted")
