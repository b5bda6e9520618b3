"""BANANAS (White, Neiswanger, Savani 2021): Bayesian optimisation with an ensemble of
neural predictors on the path encoding.

The first ``initial`` archs are uniform samples. Then, whenever its queue of proposals
is empty, an ask trains ``ensemble`` small MLPs (path encoding -> standardised
objective; two hidden layers of ``hidden`` units, Adam, ``epochs`` full-batch steps;
one jitted, vmapped program over the members, the data padded to the next power of two
of rows so it compiles a few times, not once per size) from independent initialisations, proposes ``candidates`` archs by
mutating the ``parents`` best evaluated archs (one change, then a second with
probability 1/2; archs already evaluated are dropped) and queues the ``batch`` archs
with the highest expected improvement over the best so far, under a Gaussian with the
ensemble's mean and standard deviation (BANANAS' independent-Thompson variant aside,
EI is one of the paper's acquisitions). Asks pop the queue. ``best`` is the evaluated
arch with the highest objective.

Options (``algo.options``, plus `amla_jax.algos.space_search`'s): ``initial`` (10),
``ensemble`` (5), ``hidden`` (16), ``epochs`` (100), ``learning_rate`` (0.01),
``candidates`` (100), ``parents`` (10), ``batch`` (10).

Synopsis::

    algorithm = get_algorithm("bananas")(AlgoConfig("bananas", 300, {}), template)
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.algos.space_search import (
    SpaceSearch,
    decode,
    describe_state,
    split_key,
)
from amla_jax.spaces.base import key_to_rng

DEFAULTS = {
    "initial": 10,
    "ensemble": 5,
    "hidden": 16,
    "epochs": 100,
    "learning_rate": 0.01,
    "candidates": 100,
    "parents": 10,
    "batch": 10,
}


class BananasState(NamedTuple):
    """iteration; archs/scores: the history; best_index; queue: proposals still to
    evaluate, one digit per decision."""

    iteration: int
    archs: str
    scores: str
    best_index: int
    queue: str

    def to_json(self) -> dict[str, Any]:
        return describe_state(self)


@functools.lru_cache(maxsize=4)  # one jitted program per setting, shared by every search
def ensemble_program(members: int, hidden: int, epochs: int, learning_rate: float):
    """``fit_predict(key, x, y, mask, candidates) -> (members, n) predictions``: trains
    ``members`` MLPs on the masked rows of (x, y) and predicts the candidates."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import optax  # noqa: PLC0415

    optimizer = optax.adam(learning_rate)

    def init(key, features):
        k1, k2, k3 = jax.random.split(key, 3)

        def dense(k, n_in, n_out):
            return (jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in), jnp.zeros(n_out))

        return [dense(k1, features, hidden), dense(k2, hidden, hidden), dense(k3, hidden, 1)]

    def apply(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return (x @ w + b)[..., 0]

    def fit_one(key, x, y, mask, candidates):
        params = init(key, x.shape[1])

        def loss(p):
            return jnp.sum(mask * (apply(p, x) - y) ** 2) / jnp.sum(mask)

        def epoch(carry, _):
            p, opt = carry
            updates, opt = optimizer.update(jax.grad(loss)(p), opt)
            return (optax.apply_updates(p, updates), opt), None

        (params, _), _ = jax.lax.scan(epoch, (params, optimizer.init(params)), None, epochs)
        return apply(params, candidates)

    @jax.jit
    def fit_predict(key, x, y, mask, candidates):
        keys = jax.random.split(key, members)
        return jax.vmap(fit_one, in_axes=(0, None, None, None, None))(keys, x, y, mask, candidates)

    return fit_predict


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    std = np.maximum(std, 1e-9)
    z = (mean - best) / std
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return (mean - best) * cdf + std * pdf


def make_bananas(cfg, template) -> Algorithm:
    """BANANAS for ``cfg.iterations`` evaluations."""
    search = SpaceSearch.from_config(cfg, template, DEFAULTS)
    o, width, space = search.options, search.width, search.space
    if o["initial"] < 2 or min(o["ensemble"], o["batch"], o["candidates"], o["parents"]) < 1:
        raise AlgorithmError("algo.options: bananas needs initial >= 2 and positive sizes")

    def program():
        return ensemble_program(o["ensemble"], o["hidden"], o["epochs"], o["learning_rate"])

    def propose(key, archs: np.ndarray, scores: np.ndarray) -> str:
        import jax  # noqa: PLC0415

        fit_key, mutate_key = split_key(key)
        rng = key_to_rng(mutate_key)
        seen = {tuple(a) for a in archs.tolist()}
        parents = np.argsort(-scores, kind="stable")[: o["parents"]]
        pool: dict[tuple, None] = {}
        for _ in range(20 * o["candidates"]):
            if len(pool) >= o["candidates"]:
                break
            arch = tuple(archs[parents[int(rng.integers(len(parents)))]].tolist())
            arch = space.mutate(rng.integers(0, 2**32, 2, dtype=np.uint32), arch)
            if rng.random() < 0.5:
                arch = space.mutate(rng.integers(0, 2**32, 2, dtype=np.uint32), arch)
            if arch not in seen:
                pool[arch] = None
        if not pool:  # everything near the parents is known: explore
            pool = {space.sample(rng.integers(0, 2**32, 2, dtype=np.uint32)): None}
        candidates = list(pool)
        n = len(scores)
        rows = 1 << (n - 1).bit_length()
        x = np.zeros((rows, len(space.encode_path(candidates[0]))), np.float32)
        x[:n] = [space.encode_path(tuple(a)) for a in archs.tolist()]
        mu, sd = scores.mean(), scores.std() + 1e-9
        y = np.zeros(rows, np.float32)
        y[:n] = (scores - mu) / sd
        mask = (np.arange(rows) < n).astype(np.float32)
        c = np.zeros((o["candidates"], x.shape[1]), np.float32)  # padded: one compile
        c[: len(candidates)] = [space.encode_path(a) for a in candidates]
        predictions = np.asarray(program()(jax.random.wrap_key_data(fit_key), x, y, mask, c))[
            :, : len(candidates)
        ]
        ei = expected_improvement(predictions.mean(0), predictions.std(0), (scores.max() - mu) / sd)
        chosen = np.argsort(-ei, kind="stable")[: o["batch"]]
        return "".join("".join(map(str, candidates[i])) for i in chosen)

    def init(key) -> BananasState:
        del key
        return BananasState(0, "", "", -1, "")

    def ask(key, state):
        if state.iteration < o["initial"]:
            return search.spec(space.sample(key)), state
        queue = state.queue or propose(key, *decode(state.archs, state.scores, width))
        arch = tuple(int(c) for c in queue[:width])
        return search.spec(arch), state._replace(queue=queue)

    def tell(state, spec, result):
        history = search.record(state, spec, result)
        return BananasState(state.iteration + 1, *history, state.queue[width:])

    return search.algorithm(cfg, init, ask, tell)
