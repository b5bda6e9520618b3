"""ENAS' architecture controller (Pham et al. 2018): an LSTM that samples a search
space's decisions one per step, each conditioned on the ones before it.

Generic over a space's ``choices`` (NB201: 6 decisions of 5; DARTS: 32 of 2..5 inputs
and 8 ops). Per step the LSTM's output goes through a softmax head sized for that
decision (decisions of the same size share a head and an embedding: in the DARTS space
size 8 is every op, sizes 2..5 the inputs of node 0..3; the heads are column blocks of
one matrix, so one `jax.lax.scan` walks every decision); the logits are ENAS' tempered
``tanh_constant * tanh(logits / temperature)``; the chosen option is embedded as the
next step's input (the first input is a learned ``start`` vector). ``allowed`` masks
options out (ENAS' own space has no ``none``). Every parameter starts uniform in
[-0.1, 0.1], as ENAS.

Synopsis::

    controller = make_controller((5,) * 6, hidden=100)
    params = controller.init(key)
    arch, log_prob, entropy = controller.sample(params, key)   # arch: int32 (6,)
    log_prob, entropy = controller.log_prob(params, arch)
    controller.greedy(params)                                  # the argmax path
    controller.probabilities(params)                           # per decision, greedy path

All functions are pure and traceable (jit and vmap them). The parameters are a plain
dict: ``lstm`` (a Flax ``OptimizedLSTMCell``'s), ``start``, ``head`` and ``embed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

INIT_RANGE = 0.1
MASKED = -1e9  # the logit of an option ``allowed`` excludes


def _uniform(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -INIT_RANGE, INIT_RANGE)


class _Walk(NamedTuple):
    """The per-decision constants of a walk, stacked for `jax.lax.scan`: ``index`` the
    rows of the shared head/embedding table for each option slot, ``mask`` the slots
    that exist and are allowed."""

    index: np.ndarray  # (decisions, widest) int32
    mask: np.ndarray  # (decisions, widest) bool


def _walk_constants(choices, allowed) -> tuple[_Walk, int]:
    sizes = sorted(set(choices))
    offsets = dict(zip(sizes, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    widest = max(choices)
    slots = np.arange(widest)
    index = np.stack([offsets[n] + np.minimum(slots, n - 1) for n in choices])
    mask = np.stack([np.pad(np.asarray(a, bool), (0, widest - len(a))) for a in allowed])
    return _Walk(index.astype(np.int32), mask), int(sum(sizes))


class Controller(NamedTuple):
    """The controller's pure functions (see the module docstring)."""

    choices: tuple[int, ...]
    init: Callable[[jax.Array], Any]
    sample: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]
    log_prob: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
    greedy: Callable[[Any], jax.Array]
    probabilities: Callable[[Any], list[jax.Array]]


def make_controller(
    choices: Sequence[int],
    allowed: Sequence[Sequence[bool]] | None = None,
    hidden: int = 100,
    tanh_constant: float = 2.5,
    temperature: float = 5.0,
) -> Controller:
    """The controller over decisions of ``choices`` options each.

    Args:
      choices: the number of options of each decision (a space's ``choices``).
      allowed: per decision, which options may be chosen (default: all); each decision
        needs at least one.
      hidden: the LSTM's width (ENAS: 100).
      tanh_constant, temperature: the logits are ``tanh_constant * tanh(z / temperature)``.

    Returns:
      a `Controller`.
    """
    choices = tuple(int(n) for n in choices)
    if allowed is None:
        allowed = [[True] * n for n in choices]
    allowed = tuple(tuple(bool(a) for a in row) for row in allowed)
    if [len(a) for a in allowed] != list(choices) or not all(any(a) for a in allowed):
        raise ValueError(f"allowed {allowed} does not fit choices {choices}")
    walk, table = _walk_constants(choices, allowed)
    cell = nn.OptimizedLSTMCell(
        int(hidden), kernel_init=_uniform, recurrent_kernel_init=_uniform, bias_init=_uniform
    )
    zeros = jnp.zeros(int(hidden))

    def init(key):
        k_cell, k_start, k_kernel, k_bias, k_embed = jax.random.split(key, 5)
        return {
            "lstm": cell.init(k_cell, (zeros, zeros), zeros)["params"],
            "start": _uniform(k_start, (int(hidden),)),
            "head": {
                "kernel": _uniform(k_kernel, (int(hidden), table)),
                "bias": _uniform(k_bias, (table,)),
            },
            "embed": _uniform(k_embed, (table, int(hidden))),
        }

    def run(params, key, arch, mode: str):
        """Walks the decisions: ``mode`` "sample" draws with ``key``, "greedy" takes the
        argmax, "given" follows ``arch``."""

        def one(carry, xs):
            lstm_state, x = carry
            i, index, mask, given = xs
            lstm_state, h = cell.apply({"params": params["lstm"]}, lstm_state, x)
            z = h @ params["head"]["kernel"][:, index] + params["head"]["bias"][index]
            logits = tanh_constant * jnp.tanh(z / temperature)
            # a large finite value, not -inf: 0 * -inf in the entropy's gradient is nan
            logp = jax.nn.log_softmax(jnp.where(mask, logits, MASKED))
            if mode == "sample":
                pick = jax.random.categorical(jax.random.fold_in(key, i), logp)
            else:
                pick = jnp.argmax(logp) if mode == "greedy" else given
            p = jnp.exp(logp)
            entropy = -jnp.sum(jnp.where(mask, p * logp, 0.0))
            return (lstm_state, params["embed"][index[pick]]), (pick, logp[pick], entropy, p)

        given = jnp.zeros(len(choices), jnp.int32) if arch is None else jnp.asarray(arch)
        xs = (jnp.arange(len(choices)), walk.index, walk.mask, given.astype(jnp.int32))
        carry = ((zeros, zeros), params["start"])
        _, (picks, log_probs, entropies, probs) = jax.lax.scan(one, carry, xs)
        return picks.astype(jnp.int32), log_probs.sum(), entropies.sum(), probs

    def sample(params, key):
        return run(params, key, None, "sample")[:3]

    def log_prob(params, arch):
        return run(params, None, arch, "given")[1:3]

    def greedy(params):
        return run(params, None, None, "greedy")[0]

    def probabilities(params):
        probs = run(params, None, None, "greedy")[3]
        return [probs[i, :n] for i, n in enumerate(choices)]

    return Controller(choices, init, sample, log_prob, greedy, probabilities)


def allowed_mask(choices: Sequence[int], excluded: Sequence[tuple[int, int]]) -> list[list[bool]]:
    """``allowed`` for `make_controller`: every option but the (decision, option) pairs
    in ``excluded``."""
    out = [list(np.ones(n, bool)) for n in choices]
    for decision, option in excluded:
        out[decision][option] = False
    return out
