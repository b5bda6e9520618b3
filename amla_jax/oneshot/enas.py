"""ENAS (Pham et al. 2018, micro search) as a `OneShotMethod`: shared child weights
trained on architectures an LSTM controller samples, the controller trained by REINFORCE.

Each ``step(state, batch_a, batch_b, key)``:
  1. samples an arch from the controller and takes one SGD step of the supernet's
     shared weights on ``batch_a`` with ``supernet.weights_of_arch(arch)``;
  2. samples ``controller_samples`` archs; each one's reward is the supernet's accuracy
     on ``batch_b`` with its weights (evaluation mode: no BN-statistics update); one Adam
     step on ``mean(-(reward - baseline) * log_prob - entropy_weight * entropy)``; the
     baseline is the rewards' moving average (``baseline_decay``; it starts at the first
     mean reward rather than ENAS' 0, so the first updates do not reward every sample).

``eval_weights`` are the weights of the controller's greedy (argmax) arch; ``derive``
samples ``derive_samples`` archs and returns the best by the loop's ``score`` (the
earliest on ties; ENAS sampled 1000 at full scale, the default 10 suits short runs);
``arch_weights`` records the controller's probabilities per decision along the greedy
path.

Options (`amla_jax.algos.enas.EnasOptions`; ENAS micro's values): the controller's
``controller_hidden`` (100), ``tanh_constant`` (2.5), ``temperature`` (5.0),
``exclude_none`` (None: true on the DARTS space, whose ENAS counterpart has no ``none``;
false on NB201, whose ``none`` is part of the space), ``controller_lr`` (3.5e-4; Adam with
ENAS' ``controller_b1`` 0.0 and ``controller_eps`` 1e-3), ``baseline_decay`` (0.99),
``entropy_weight`` (1e-4), ``controller_samples`` (1), ``derive_samples`` (10); the
shared weights' SGD: ``w_lr`` (0.05) cosine to ``w_lr_min`` (0.0005) over ``total_steps``
(set by the runner), ``w_momentum`` (0.9, Nesterov), ``w_weight_decay`` (1e-4, ENAS' L2
term: added to the gradient before clipping), ``w_grad_clip`` (5.0, global norm).

The rewards, like the loop's validation scores, use batch statistics in the BatchNorm
layers (train mode, statistics discarded): running averages gathered over many sampled
archs do not fit any one of them.

Synopsis::

    method = make_enas_method(EnasOptions(space="nb201", total_steps=1000))
    state = method.init(key, supernet, images)
    state, metrics = jax.jit(method.step)(state, batch_a, batch_b, key)
    arch = method.derive(state, key, score)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from amla_jax.errors import UserError
from amla_jax.nn.controller import Controller, allowed_mask, make_controller
from amla_jax.oneshot.base import OneShotMethod


class EnasState(NamedTuple):
    """The search state, arrays only: the supernet's shared ``params`` and
    ``batch_stats`` and their SGD state, the ``controller``'s parameters and Adam state,
    the reward ``baseline`` and the ``step`` count."""

    params: Any
    batch_stats: Any
    opt_state: Any
    controller: Any
    controller_opt_state: Any
    baseline: jax.Array
    step: jax.Array


def none_options(space) -> list[tuple[int, int]]:
    """The (decision, option) pairs of the op ``none`` in ``space`` (DARTS: every op
    decision, option 0; NB201: every decision, its ``none``)."""
    if space.name == "darts":
        from amla_jax.spaces.darts import OPS  # noqa: PLC0415

        return [(i, OPS.index("none")) for i in range(len(space.choices)) if i % 2 == 1]
    if space.name == "nb201":
        from amla_jax.spaces.nb201 import OPS  # noqa: PLC0415

        return [(i, OPS.index("none")) for i in range(len(space.choices))]
    return []


def make_space_controller(space, options) -> Controller:
    """The controller over ``space``'s decisions with ``options`` (an `EnasOptions`).

    Raises:
      UserError: ``exclude_none`` on a space without a ``none`` op.
    """
    exclude = options.exclude_none
    exclude = space.name == "darts" if exclude is None else bool(exclude)
    if exclude and not none_options(space):
        raise UserError(
            f"algo.options.exclude_none: search space {space.name!r} has no 'none' op; "
            "set it to false"
        )
    return make_controller(
        space.choices,
        allowed_mask(space.choices, none_options(space) if exclude else []),
        hidden=options.controller_hidden,
        tanh_constant=options.tanh_constant,
        temperature=options.temperature,
    )


def _optimizers(o) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(the shared weights' SGD, the controller's Adam), as ENAS' ``get_train_ops``."""
    schedule = optax.cosine_decay_schedule(
        o.w_lr, max(1, int(o.total_steps)), alpha=o.w_lr_min / o.w_lr
    )
    shared = optax.chain(
        # before the clip, as ENAS adds its L2 term to the loss (its l2_reg * sum(w**2)
        # has gradient 2 * l2_reg * w; w_weight_decay is that gradient's coefficient)
        optax.add_decayed_weights(o.w_weight_decay),
        optax.clip_by_global_norm(o.w_grad_clip),
        optax.sgd(schedule, momentum=o.w_momentum, nesterov=True),
    )
    return shared, optax.adam(o.controller_lr, b1=o.controller_b1, eps=o.controller_eps)


def reinforce_update(
    controller: Controller,
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    archs: jax.Array,
    rewards: jax.Array,
    baseline: jax.Array,
    entropy_weight: float,
):
    """One REINFORCE step of the controller: the gradient of
    ``mean(-(reward - baseline) * log_prob(arch) - entropy_weight * entropy)`` over the
    sampled ``archs`` (rows) and their ``rewards``, applied by ``tx``.

    Returns:
      ``(params, opt_state, metrics)``.
    """

    def loss_fn(cparams):
        log_probs, entropies = jax.vmap(controller.log_prob, (None, 0))(cparams, archs)
        advantage = jax.lax.stop_gradient(rewards - baseline)
        loss = -advantage * log_probs - entropy_weight * entropies
        return loss.mean(), entropies.mean()

    (loss, entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    metrics = {"controller/reward": rewards.mean(), "controller/entropy": entropy,
               "controller/loss": loss}  # fmt: skip
    return optax.apply_updates(params, updates), opt_state, metrics


def make_enas_method(options, name: str = "enas") -> OneShotMethod:
    """ENAS over any `Supernet` (bound by ``init``, as the loop traces ``step`` after it).

    Args:
      options: an `amla_jax.algos.enas.EnasOptions` (see the module docstring).
      name: the registry name recorded in the run directory.
    """
    o = options
    shared_tx, controller_tx = _optimizers(o)
    bound: dict[str, Any] = {}  # supernet, controller and jitted helpers, set by init

    def init(key, supernet, images) -> EnasState:
        controller = make_space_controller(supernet.space, o)
        bound.update(supernet=supernet, controller=controller, **_host_helpers(controller, o))
        k_model, k_dropout, k_controller = jax.random.split(key, 3)
        weights = supernet.weights_of_arch(jnp.zeros(len(supernet.space.choices), jnp.int32))
        variables = supernet.model.init(
            {"params": k_model, "dropout": k_dropout}, images, weights, train=False
        )
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        cparams = controller.init(k_controller)
        return EnasState(
            params, batch_stats, shared_tx.init(params),
            cparams, controller_tx.init(cparams),
            jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
        )  # fmt: skip

    def apply(state: EnasState, batch, arch, key):
        """(logits, new batch statistics) in train mode with ``arch``'s weights."""
        logits, updates = bound["supernet"].model.apply(
            {"params": state.params, "batch_stats": state.batch_stats},
            batch[0], bound["supernet"].weights_of_arch(arch),
            train=True, mutable=["batch_stats"], rngs={"dropout": key},
        )  # fmt: skip
        return logits, updates.get("batch_stats", state.batch_stats)

    def train_shared(state: EnasState, batch, key):
        k_arch, k_dropout = jax.random.split(key)
        arch, _, _ = bound["controller"].sample(state.controller, k_arch)
        labels = batch[1]

        def loss_fn(params):
            logits, stats = apply(state._replace(params=params), batch, arch, k_dropout)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, stats)

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = shared_tx.update(grads, state.opt_state, state.params)
        state = state._replace(
            params=optax.apply_updates(state.params, updates), batch_stats=stats,
            opt_state=opt_state,
        )  # fmt: skip
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return state, {"train/loss": loss, "train/accuracy": accuracy}

    def train_controller(state: EnasState, batch, key):
        k_archs, k_dropout = jax.random.split(key)
        keys = jax.random.split(k_archs, int(o.controller_samples))
        archs = jax.vmap(lambda k: bound["controller"].sample(state.controller, k)[0])(keys)

        def reward(arch):  # batch statistics, discarded: as the loop's validation score
            logits, _ = apply(state, batch, arch, k_dropout)
            return jnp.mean(jnp.argmax(logits, -1) == batch[1])

        if len(keys) == 1:  # no loop around the supernet: a smaller program to compile
            rewards = reward(archs[0])[None]
        else:  # one arch at a time: a batch of supernets would multiply the peak memory
            rewards = jax.lax.map(reward, archs)
        mean = rewards.mean()
        baseline = jnp.where(state.step == 0, mean, state.baseline)
        cparams, copt, metrics = reinforce_update(
            bound["controller"], controller_tx, state.controller, state.controller_opt_state,
            archs, rewards, baseline, o.entropy_weight,
        )  # fmt: skip
        decay = o.baseline_decay
        state = state._replace(
            controller=cparams, controller_opt_state=copt,
            baseline=decay * baseline + (1 - decay) * mean,
        )  # fmt: skip
        return state, {**metrics, "controller/baseline": state.baseline}

    def step(state: EnasState, batch_a, batch_b, key):
        k_shared, k_controller = jax.random.split(key)
        state, metrics = train_shared(state, batch_a, k_shared)
        state, controller_metrics = train_controller(state, batch_b, k_controller)
        return state._replace(step=state.step + 1), {**metrics, **controller_metrics}

    def eval_weights(state: EnasState):
        return bound["supernet"].weights_of_arch(bound["greedy"](state.controller))

    def derive(state: EnasState, key, score: Callable[[Any], float]):
        archs = np.asarray(bound["sample_many"](state.controller, key))
        weights_of = bound["supernet"].weights_of_arch
        scores = [float(score(weights_of(jnp.asarray(a)))) for a in archs]
        return tuple(int(v) for v in archs[int(np.argmax(scores))])  # argmax: earliest tie

    def arch_weights(state: EnasState) -> dict[str, Any]:
        rows = bound["probabilities"](state.controller)
        return {"probabilities": [np.asarray(p, np.float64).round(6).tolist() for p in rows]}

    return OneShotMethod(name, init, step, eval_weights, derive, arch_weights)


def _host_helpers(controller: Controller, o) -> dict[str, Callable]:
    """The controller's functions the loop calls between epochs, jitted once."""
    samples = int(o.derive_samples)
    return {
        "greedy": jax.jit(controller.greedy),
        "probabilities": jax.jit(controller.probabilities),
        "sample_many": jax.jit(
            lambda params, key: jax.vmap(lambda k: controller.sample(params, k)[0])(
                jax.random.split(key, samples)
            )
        ),
    }
