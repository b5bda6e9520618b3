"""REINFORCE over a search space's decisions (Williams 1992; NAS-Bench-201's baseline).

A policy of independent categorical distributions, one per decision (logits, zero at
the start: uniform). Each ask samples an arch from it; each tell takes one policy
gradient step on ``-(reward - baseline) * log p(arch)`` with optax Adam, where the
reward is the objective in percent and the baseline its exponential moving average
(``baseline_decay``; it starts at the first reward). ``best`` is the evaluated arch with
the highest objective.

Options (``algo.options``, plus `amla_jax.algos.space_search`'s): ``learning_rate``
(0.01), ``baseline_decay`` (0.9).

Synopsis::

    algorithm = get_algorithm("reinforce")(AlgoConfig("reinforce", 300, {}), template)
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np

from amla_jax.algos.base import Algorithm
from amla_jax.algos.space_search import SpaceSearch, describe_state
from amla_jax.spaces.base import key_to_rng


class ReinforceState(NamedTuple):
    """iteration; archs/scores: the history; best_index; policy: JSON of the logits and
    the Adam state (``[logits, count, mu, nu]``); baseline: the reward average."""

    iteration: int
    archs: str
    scores: str
    best_index: int
    policy: str
    baseline: float

    def to_json(self) -> dict[str, Any]:
        return {**describe_state(self), "policy": json.loads(self.policy)}


def make_reinforce(cfg, template) -> Algorithm:
    """REINFORCE for ``cfg.iterations`` evaluations."""
    import jax  # noqa: PLC0415
    import optax  # noqa: PLC0415 (only the algorithm needs it)

    search = SpaceSearch.from_config(cfg, template, {"learning_rate": 0.01, "baseline_decay": 0.9})
    decay, width = search.options["baseline_decay"], search.width
    optimizer = optax.adam(search.options["learning_rate"])

    @jax.jit  # one dispatch per tell instead of one per Adam operation
    def step(grad, opt, logits):
        updates, opt = optimizer.update(grad, opt)
        return optax.apply_updates(logits, updates), opt

    choices = search.space.choices
    offsets = np.cumsum((0, *choices))

    def probabilities(logits: np.ndarray) -> list[np.ndarray]:
        out = []
        for i in range(width):
            z = logits[offsets[i] : offsets[i + 1]]
            e = np.exp(z - z.max())
            out.append(e / e.sum())
        return out

    def init(key) -> ReinforceState:
        del key
        zeros = np.zeros(offsets[-1], np.float32)
        opt = optimizer.init(zeros)[0]
        policy = [
            zeros.tolist(),
            int(opt.count),
            np.asarray(opt.mu).tolist(),
            np.asarray(opt.nu).tolist(),
        ]
        return ReinforceState(0, "", "", -1, json.dumps(policy), 0.0)

    def ask(key, state):
        logits = np.asarray(json.loads(state.policy)[0], np.float64)
        rng = key_to_rng(key)
        arch = tuple(int(rng.choice(len(p), p=p)) for p in probabilities(logits))
        return search.spec(arch), state

    def tell(state, spec, result):
        arch = search.space.from_spec(spec)
        reward = 100.0 * search.objective(result)
        baseline = reward if state.iteration == 0 else state.baseline
        logits, count, mu, nu = json.loads(state.policy)
        logits = np.asarray(logits, np.float32)
        # d(-advantage * log p(arch)) / d logits = -advantage * (onehot - p), per decision
        grad = np.concatenate(probabilities(logits.astype(np.float64))).astype(np.float32)
        grad[offsets[:-1] + np.asarray(arch)] -= 1.0
        grad *= reward - baseline
        opt = optax.ScaleByAdamState(np.int32(count), np.float32(mu), np.float32(nu))
        logits, (opt, *_) = step(grad, (opt, optax.EmptyState()), logits)
        logits = np.asarray(logits)
        policy = [
            logits.tolist(),
            int(opt.count),
            np.asarray(opt.mu).tolist(),
            np.asarray(opt.nu).tolist(),
        ]
        return ReinforceState(
            state.iteration + 1,
            *search.record(state, spec, result),
            json.dumps(policy),
            float(decay * baseline + (1 - decay) * reward),
        )

    return search.algorithm(cfg, init, ask, tell)
