"""Evaluation of a train state: loss, top-1 and top-5 over every example of a split.

Eval batches carry a ``mask`` (padding rows of the last batch are 0), so the totals are
sums over real examples only; `evaluate` divides once at the end.

Synopsis::

    from amla_jax.train import data_mesh, evaluate, make_eval_step
    eval_step = make_eval_step(optim, num_classes=10)
    evaluate(state, eval_step, dataset.eval_batches("test", 256), data_mesh(), "test", 10)
    # {"test/loss": ..., "test/accuracy": ..., "test/top5": ...}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from amla_jax.config import OptimConfig
from amla_jax.train.state import TrainState, model_variables
from amla_jax.train.step import shard_batch


def eval_step(state: TrainState, batch, *, use_ema: bool, num_classes: int) -> dict:
    """Summed loss, correct top-1 and top-5 and the example count of one masked batch."""
    params = state.ema_params if use_ema else state.params
    logits, _ = state.apply_fn(model_variables(state, params), batch["image"], train=False)
    mask = batch["mask"]
    labels = jax.nn.one_hot(batch["label"], num_classes)
    loss = optax.softmax_cross_entropy(logits, labels)
    top5 = jnp.any(jax.lax.top_k(logits, min(5, num_classes))[1] == batch["label"][:, None], -1)
    return {
        "loss": jnp.sum(loss * mask),
        "accuracy": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
        "top5": jnp.sum(top5 * mask),
        "count": jnp.sum(mask),
    }


def make_eval_step(optim: OptimConfig, num_classes: int) -> Callable:
    """``eval_step(state, batch) -> totals``, jitted; it evaluates the EMA weights where
    ``optim`` keeps an EMA, else the trained ones."""
    return jax.jit(
        lambda s, b: eval_step(s, b, use_ema=optim.ema_decay > 0, num_classes=num_classes)
    )


def evaluate(
    state: TrainState,
    eval_step: Callable,
    batches: Iterable[dict],
    mesh: Mesh,
    prefix: str,
    num_classes: int,
) -> dict[str, float]:
    """Loss, top-1 (and top-5 where classes > 5) over every example of ``batches``.

    Returns:
      ``{"<prefix>/loss", "<prefix>/accuracy"[, "<prefix>/top5"]}`` as plain floats.
    """
    totals = None
    for batch in batches:
        out = eval_step(state, shard_batch(batch, mesh))
        totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    metrics = {
        f"{prefix}/loss": totals["loss"] / count,
        f"{prefix}/accuracy": totals["accuracy"] / count,
    }
    if num_classes > 5:
        metrics[f"{prefix}/top5"] = totals["top5"] / count
    return {k: float(v) for k, v in metrics.items()}
