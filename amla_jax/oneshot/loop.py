"""The one-shot search loop: one supernet, one jitted step, one row and one checkpoint
per epoch. `run_oneshot` drives any `amla_jax.oneshot.base.OneShotMethod`.

The training split is split once (from the key) into halves A and B; every epoch walks
both in a fresh order drawn from ``fold_in(key, epoch)`` and calls ``method.step(state,
batch_a, batch_b, key)``, jitted once per search (compile and mean step seconds are
recorded; with several devices it is data-parallel, like the fixed-network step). The
validation split is used only to score: after each epoch the supernet's validation
accuracy with ``method.eval_weights`` and with the derived arch's weights
(``supernet.weights_of_arch``), and, on NB201 with the ``tabular`` extra installed, the
derived arch's table accuracy. The supernet is scored with batch statistics in its
BatchNorm layers (train mode, statistics discarded), as NB201's one-shot baselines do:
running averages collected under the mixed weights do not fit a derived arch.

Every epoch appends one row to ``<run_dir>/epochs.jsonl`` and then checkpoints the state
with Orbax in ``<run_dir>/search/`` (step = completed epochs). Rerunning restores the
latest checkpoint and continues; an epoch whose row exists is never recorded twice: a
row beyond the checkpoint (a crash between the two writes) is recomputed from the
checkpoint, checked against the row (`records.check_replayed`) and kept. At the end the
last epoch's derived arch becomes ``spec.json``/``best_spec.json`` and the one row of
``candidates.jsonl``, so reports read a one-shot run like any other. SIGTERM/SIGINT stop
at once with `amla_jax.search.SearchInterrupted` (completed epochs kept).

Synopsis::

    supernet = make_supernet("nb201", {}, num_classes=10, channels=8, cells_per_stage=1)
    method = make_darts_method(options)
    outcome = run_oneshot(method, supernet, dataset, options, run_dir, jax.random.key(0))
    outcome.best_spec, read_epochs(run_dir)[-1]["genotype"]
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console

from amla_jax import faults
from amla_jax.errors import UserError
from amla_jax.oneshot import records
from amla_jax.oneshot.base import variables_of
from amla_jax.rundir import EPOCHS, SEARCH_DIR, append_row, read_epochs, write_candidates
from amla_jax.search import SearchOutcome, StopOnSignal
from amla_jax.train.step import data_mesh, replicate, shard_batch

TABLE_COLUMN = "baseline_accuracy"


def split_halves(key, num_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training split's halves A and B (equal sizes), from ``key``."""
    order = np.asarray(jax.random.permutation(key, num_train))
    half = num_train // 2
    return order[:half], order[half : 2 * half]


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Steps of one epoch: full batches of one half of the training split."""
    return (num_train // 2) // batch_size


def _eval_batches(dataset, batch_size: int) -> list[tuple]:
    """The validation split as fixed batches; pad rows repeat real images (masked out of
    the accuracy) so that they do not skew the batch statistics."""
    out = []
    for batch in dataset.eval_batches("validation", batch_size):
        real = int(batch["mask"].sum())
        images = np.resize(batch["image"][:real], batch["image"].shape)
        out.append((jnp.asarray(images), jnp.asarray(batch["label"]), jnp.asarray(batch["mask"])))
    return out


def make_scorer(supernet, batches: list[tuple]):
    """``score(variables, weights) -> accuracy`` on ``batches`` (jitted once)."""

    @jax.jit
    def correct(variables, weights, images, labels, mask):
        logits, _ = supernet.model.apply(
            variables, images, weights, train=True, mutable=["batch_stats"],
            rngs={"dropout": jax.random.key(0)},
        )  # fmt: skip
        hits = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return jnp.sum(hits * mask), jnp.sum(mask)

    def score(variables, weights) -> float:
        totals = [correct(variables, weights, *batch) for batch in batches]
        hits, count = np.sum(jax.device_get(totals), axis=0)
        return float(hits / max(count, 1.0))

    return score


def _table(space):
    """The NB201 table when the space is NB201 and the extra is installed, else None."""
    if space.name != "nb201":
        return None
    try:
        from amla_jax.evaluators.tabular import load_table  # noqa: PLC0415

        return load_table()
    except (UserError, ImportError):
        return None


class _Epochs:
    """Runs epochs of ``method`` (the jitted step compiled on first use)."""

    def __init__(self, method, dataset, options, key):
        split_key, self.order_key, self.step_key = jax.random.split(key, 3)
        self.method, self.dataset, self.options = method, dataset, options
        self.halves = split_halves(split_key, dataset.info.num_train)
        self.steps = steps_per_epoch(dataset.info.num_train, options.batch_size)
        if self.steps < 1:
            raise UserError(
                f"algo.options.batch_size: {options.batch_size} is more than half of the "
                f"{dataset.info.num_train} training examples; lower it"
            )
        self.compiled = None
        # Data-parallel over every device, as the fixed-network step: the state is
        # replicated, the batches split, and XLA inserts the reductions (BatchNorm's
        # statistics and the gradients are those of the whole batch).
        devices = jax.device_count()
        self.mesh = data_mesh() if devices > 1 and options.batch_size % devices == 0 else None

    def _place(self, batch: dict):
        if self.mesh is None:
            return batch["image"], batch["label"]
        placed = shard_batch({"image": batch["image"], "label": batch["label"]}, self.mesh)
        return placed["image"], placed["label"]

    def _batches(self, epoch: int):
        epoch_key = jax.random.fold_in(self.order_key, epoch)
        streams = []
        for half, (positions, key) in enumerate(
            zip(self.halves, jax.random.split(epoch_key), strict=True)
        ):
            order = positions[np.asarray(jax.random.permutation(key, len(positions)))]
            seed = np.asarray(jax.random.key_data(key)).ravel().tolist() + [half]
            streams.append(self.dataset.train_batches_at(order, self.options.batch_size, seed))
        for _, a, b in zip(range(self.steps), *streams, strict=False):
            yield self._place(a), self._place(b)

    def run(self, state, epoch: int):
        """``(state, train metrics, compile seconds, step seconds)`` of one epoch."""
        keys = jax.random.split(jax.random.fold_in(self.step_key, epoch), self.steps)
        compile_seconds, metrics, start = 0.0, [], None
        if self.mesh is not None:
            state = replicate(state, self.mesh)
        for i, (batch_a, batch_b) in enumerate(self._batches(epoch)):
            if self.compiled is None:
                began = time.perf_counter()
                jitted = jax.jit(self.method.step, donate_argnums=0)
                self.compiled = jitted.lower(state, batch_a, batch_b, keys[i]).compile()
                compile_seconds = time.perf_counter() - began
            if i == 1 or self.steps == 1:
                start = time.perf_counter()  # step 0 may wait for the data threads
            state, step_metrics = self.compiled(state, batch_a, batch_b, keys[i])
            metrics.append(step_metrics)
            faults.point("train")
        jax.block_until_ready(state)
        timed = max(1, self.steps - (self.steps > 1))
        step_seconds = (time.perf_counter() - start) / timed
        means = {k: float(np.mean([m[k] for m in jax.device_get(metrics)])) for k in metrics[0]}
        return state, means, compile_seconds, step_seconds


def _epoch_row(method, supernet, state, epoch, train, score, table, key) -> dict:
    """The epoch's row, timings left for the caller."""
    variables = variables_of(method, state)
    arch = tuple(int(a) for a in method.derive(state, key, lambda w: score(variables, w)))
    metrics = dict(train)
    metrics["supernet/validation/accuracy"] = score(variables, method.eval_weights(state))
    metrics["validation/accuracy"] = score(
        variables, supernet.weights_of_arch(jnp.asarray(arch, jnp.int32))
    )
    if table is not None:
        metrics[f"table/{TABLE_COLUMN}"] = table.query(arch, TABLE_COLUMN)
    return {
        "epoch": epoch,
        "algorithm": method.name,
        "arch": list(arch),
        "genotype": supernet.space.describe(arch),
        "metrics": metrics,
        "arch_weights": method.arch_weights(state),
    }


def _resume(method, manager, fresh, run_dir: Path, epochs: int, out: Console):
    """``(state, rows, completed epochs)`` where the run directory left off."""
    path = run_dir / EPOCHS
    state, done = records.restore_state(manager, method.name, fresh)
    rows = read_epochs(run_dir)
    if [r["epoch"] for r in rows[:done]] != list(range(done)):
        raise records.RunDirError(f"{path}: rows do not cover epochs 0..{done - 1}")
    write_candidates(path, rows)  # drops a half-written last line
    if done >= epochs:
        out.print(f"{method.name} search in {run_dir} is already finished; nothing to do.")
    elif done:
        out.print(f"resuming {method.name} search in {run_dir} after {done} epochs")
    return state, rows, done


def run_oneshot(
    method, supernet, dataset, options, run_dir, key, *, template=None, console: bool = True
) -> SearchOutcome:
    """Runs (or resumes) a one-shot search to the end in ``run_dir``.

    Args:
      method: the `OneShotMethod`.
      supernet: the `Supernet` it trains (its space turns the answer into a spec).
      dataset: a loaded `amla_jax.data.Dataset` (train split halved, validation scores).
      options: has ``epochs``, ``batch_size`` and ``eval_batch_size``.
      run_dir: the run directory (created; resumed if it holds a checkpoint).
      key: the search's PRNG key: halves, orders, step keys and ``init`` derive from it.
      template: passed to ``space.to_spec`` (a micro template keeps its skeleton).
      console: print a line per epoch.

    Returns:
      A `SearchOutcome` whose rows are the one ``candidates.jsonl`` row.

    Raises:
      SearchInterrupted: on SIGTERM/SIGINT, completed epochs checkpointed.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = Console(quiet=not console, highlight=False, soft_wrap=True)
    init_key, loop_key, derive_key = jax.random.split(key, 3)
    epochs = _Epochs(method, dataset, options, loop_key)
    example = jnp.zeros((options.batch_size, *dataset.info.image_shape), jnp.float32)
    score = make_scorer(supernet, _eval_batches(dataset, options.eval_batch_size))
    table, path = _table(supernet.space), run_dir / EPOCHS
    with (
        records.quiet_absl(),
        records.checkpoint_manager(run_dir / SEARCH_DIR) as manager,
        StopOnSignal("epochs") as stop,
    ):
        fresh = method.init(init_key, supernet, example)
        state, rows, done = _resume(method, manager, fresh, run_dir, options.epochs, out)
        stop.completed = done
        for epoch in range(done, options.epochs):
            stop.check()
            began = time.perf_counter()
            state, train, compile_s, step_s = epochs.run(state, epoch)
            row = _epoch_row(
                method, supernet, state, epoch, train, score, table,
                jax.random.fold_in(derive_key, epoch),
            )  # fmt: skip
            row.update(steps=epochs.steps, compile_seconds=compile_s, step_seconds=step_s)
            row["epoch_seconds"] = time.perf_counter() - began
            with stop.writing():
                if epoch < len(rows):  # recorded before a crash: recomputed, not rewritten
                    records.check_replayed(path, rows[epoch], row)
                    row = rows[epoch]
                else:
                    append_row(path, row)
                    rows.append(row)
                faults.point("row")
                records.save_state(manager, epoch + 1, method.name, state)
                stop.completed = epoch + 1
            _print_epoch(out, row)
    status = "already_finished" if done >= options.epochs else "finished"
    rows = rows[: options.epochs]
    return _finish(method, supernet, dataset, run_dir, rows, template, out, status)


def _print_epoch(out: Console, row: dict) -> None:
    metrics = row["metrics"]
    table = metrics.get(f"table/{TABLE_COLUMN}")
    out.print(
        f"epoch {row['epoch']}: train acc {metrics['train/accuracy']:.4f}, supernet val acc "
        f"{metrics['supernet/validation/accuracy']:.4f}, derived val acc "
        f"{metrics['validation/accuracy']:.4f}"
        + ("" if table is None else f", table {table:.4f}")
        + f", {row['genotype']} ({row['epoch_seconds']:.1f} s, step {row['step_seconds']:.3f} s"
        + (f", compile {row['compile_seconds']:.1f} s)" if row["compile_seconds"] else ")")
    )


def _finish(method, supernet, dataset, run_dir: Path, rows, template, out, status: str):
    from amla_jax.nn import count_params  # noqa: PLC0415

    arch = tuple(rows[-1]["arch"])
    spec = supernet.space.to_spec(arch, template)
    info = dataset.info
    row = records.write_answer(
        run_dir, method.name, spec, rows,
        lambda: count_params(spec, info.image_shape, num_classes=info.num_classes),
    )  # fmt: skip
    out.print(
        f"{method.name}: derived {rows[-1]['genotype']} after {len(rows)} epochs "
        f"({row['num_params']:,} params as a network); best_spec.json in {run_dir}"
    )
    path = run_dir / records.BEST_SPEC
    return SearchOutcome(status, run_dir, spec, path, 0, [row])
