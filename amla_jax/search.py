"""The search loop: ask → evaluate → tell, checkpointed after every candidate.

`run_search` is the only place that drives an `Algorithm`. After every ``tell`` it
appends the candidate's row to ``<run_dir>/candidates.jsonl`` and then saves an Orbax
checkpoint of the search state in ``<run_dir>/search/`` (step = completed candidates).
Rerunning in the same run directory restores the latest checkpoint and continues after
its last candidate; rows beyond the checkpoint (a crash between the two writes) are
dropped, so the file never holds a candidate twice. Candidate ``i`` is asked and trained
with keys derived only from ``(key, i)``, so a resumed search equals an uninterrupted one.
SIGTERM and SIGINT stop the search at once: the candidate in flight is abandoned,
completed ones are kept, and `SearchInterrupted` is raised (``exit_code`` 128 + signal).

Synopsis::

    from amla_jax.evaluators import get_evaluator
    from amla_jax.search import run_search
    algorithm = get_algorithm("nac")(cfg.algo, template)
    evaluate = get_evaluator("train")(dataset, cfg.optim, cfg.train, run_dir)
    outcome = run_search(algorithm, evaluate, run_dir, jax.random.key(cfg.seed))
    outcome.best_spec, outcome.rows[0]["metrics"]["validation/accuracy"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
from rich.console import Console
from rich.table import Table

from amla_jax.algos.base import Algorithm, State, state_from_tree, state_to_tree
from amla_jax.amla import save_spec
from amla_jax.rundir import (
    BEST_SPEC,
    CANDIDATES,
    SEARCH_DIR,
    RunDirError,
    append_row,
    best_candidate,
    replacing,
    returned_candidate,
    sync_candidates,
)
from amla_jax.spec import NetworkSpec

Evaluate = Callable[[NetworkSpec, Any, int], Any]


class SearchInterrupted(Exception):
    """SIGTERM/SIGINT stopped the search; completed candidates are checkpointed.

    Attributes:
      signum: the signal received.
      completed: candidates completed and checkpointed.
      exit_code: what the process should exit with (128 + signum, like a shell).
    """

    def __init__(self, signum: int, completed: int):
        name = signal.Signals(signum).name
        super().__init__(f"search stopped by {name} after {completed} completed candidates")
        self.signum, self.completed, self.exit_code = signum, completed, 128 + signum


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    """What a finished search leaves behind (``status``: "finished" or "already_finished").

    Attributes:
      best_spec: the algorithm's answer (``algorithm.best``), written to ``best_spec_path``.
      best_candidate: the id of the candidate with the best selection metric, or None.
      rows: the ``candidates.jsonl`` rows, in id order.
    """

    status: str
    run_dir: Path
    best_spec: NetworkSpec
    best_spec_path: Path
    best_candidate: int | None
    rows: list[dict]


class _StopOnSignal:
    """Turns SIGTERM/SIGINT into `SearchInterrupted`, deferred while files are written."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.completed = 0
        self._writing = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        del frame
        self.signum = signum
        if not self._writing:
            raise SearchInterrupted(signum, self.completed)

    def check(self) -> None:
        if self.signum is not None:
            raise SearchInterrupted(self.signum, self.completed)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        self.check()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Orbax logs every save step at INFO through absl; keep it to warnings here."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def checkpoint_manager(directory: Path):
    """The Orbax manager of a run's search-state checkpoints (the last two kept)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415 (slow import)

    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def save_search_state(manager, completed: int, algorithm: str, state: State) -> None:
    """Checkpoints ``state`` as step ``completed`` (Orbax writes it atomically)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    tree = {"algorithm": algorithm, "completed": completed, "state": state_to_tree(state)}
    manager.save(completed, args=ocp.args.PyTreeSave(tree), force=True)
    manager.wait_until_finished()


def restore_search_state(manager, step: int, algorithm: str, like: State) -> State:
    """The algorithm state checkpointed at ``step``, typed as ``like`` (a fresh ``init``)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    tree = manager.restore(step, args=ocp.args.PyTreeRestore())
    if tree["algorithm"] != algorithm:
        raise RunDirError(
            f"run_dir: holds a {tree['algorithm']!r} search, not {algorithm!r}; "
            "use a new run directory"
        )
    return state_from_tree(like, tree["state"])


def _row(candidate_id: int, name: str, spec: NetworkSpec, result, evaluate) -> dict:
    flops = getattr(result, "flops", None)
    count_flops = getattr(evaluate, "count_flops", None)
    if flops is None and count_flops:
        flops = count_flops(spec)
    row = {
        "id": candidate_id,
        "algorithm": name,
        "spec": spec.to_json(),
        "metrics": {k: float(v) for k, v in result.metrics.items()},
        "num_params": int(result.num_params),
        "flops": None if flops is None else float(flops),
        "steps": int(getattr(result, "steps", 0)),
        "train_seconds": float(result.train_seconds),
        "compile_seconds": float(result.compile_seconds),
    }
    if getattr(result, "source", None):  # e.g. a table lookup, not a training run
        row["source"] = result.source
    if result.utilities:
        row["utilities"] = {str(k): float(v) for k, v in result.utilities.items()}
        row["scalars"] = {
            str(d): {str(s): float(v) for s, v in src.items()} for d, src in result.scalars.items()
        }
    return row


def summary_table(rows: list[dict], best_id: int | None, title: str = "candidates") -> Table:
    """A rich table of the candidates (id, params, FLOPs, accuracies, seconds); the row
    with the best validation accuracy is marked."""
    table = Table(title=title)
    for name in ("id", "params", "MFLOPs", "val acc", "test acc", "seconds", ""):
        table.add_column(name, justify="right" if name else "left")
    for row in rows:
        metrics = row["metrics"]
        table.add_row(
            str(row["id"]),
            f"{row['num_params']:,}",
            "-" if row.get("flops") is None else f"{row['flops'] / 1e6:,.1f}",
            f"{metrics.get('validation/accuracy', float('nan')):.4f}",
            f"{metrics.get('test/accuracy', float('nan')):.4f}",
            f"{row['train_seconds'] + row['compile_seconds']:.1f}",
            "best val" if row["id"] == best_id else "",
            style="bold" if row["id"] == best_id else None,
        )
    return table


def run_search(
    algorithm: Algorithm, evaluate: Evaluate, run_dir: str | Path, key, *, console: bool = True
) -> SearchOutcome:
    """Runs (or resumes) ``algorithm`` to the end in ``run_dir``.

    Args:
      algorithm: the search algorithm.
      evaluate: ``evaluate(spec, key, candidate_id) -> TrainResult`` (see `amla_jax.evaluators`);
        each candidate's FLOPs are recorded from the result's ``flops``, or else from
        ``evaluate.count_flops(spec)`` where it has one; ``evaluate.checkpoint_every``
        (default 1) spaces the search-state checkpoints out for cheap evaluators.
      run_dir: the run directory (created; resumed if it holds a search checkpoint).
      key: the search's PRNG key; candidate ``i`` uses ``fold_in(key, i)`` only.
      console: print progress and the summary table.

    Returns:
      A `SearchOutcome`; ``status`` is "already_finished" if nothing was left to do.

    Raises:
      SearchInterrupted: on SIGTERM/SIGINT, after the completed candidates are saved.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = Console(quiet=not console, highlight=False, soft_wrap=True)
    init_key, search_key = jax.random.split(key)
    # An Orbax save costs ~0.1 s: nothing next to training a candidate, everything next to
    # a table lookup, so a cheap evaluator may ask for a checkpoint every n candidates
    # (rows after the last checkpoint are dropped on resume and evaluated again).
    every = max(1, int(getattr(evaluate, "checkpoint_every", 1)))
    with (
        _quiet_absl(),
        checkpoint_manager(run_dir / SEARCH_DIR) as manager,
        _StopOnSignal() as stop,
    ):
        step = manager.latest_step()
        state, completed = algorithm.init(init_key), 0
        if step is not None:
            state, completed = restore_search_state(manager, step, algorithm.name, state), step
        rows = sync_candidates(run_dir / CANDIDATES, completed)
        stop.completed = completed
        if step is not None and algorithm.done(state):
            out.print(
                f"[bold]{algorithm.name} search in {run_dir} is already finished[/] "
                f"({completed} candidates); nothing to do."
            )
            return _finish(algorithm, state, rows, run_dir, out, "already_finished")
        if step is not None:
            out.print(f"resuming {algorithm.name} search in {run_dir} after {completed} candidates")
        while not algorithm.done(state):
            stop.check()
            ask_key, eval_key = jax.random.split(jax.random.fold_in(search_key, completed))
            spec, state = algorithm.ask(ask_key, state)
            result = evaluate(spec, eval_key, completed)
            state = algorithm.tell(state, spec, result)
            row = _row(completed, algorithm.name, spec, result, evaluate)
            with stop.writing():
                append_row(run_dir / CANDIDATES, row)
                if (completed + 1) % every == 0 or algorithm.done(state):
                    save_search_state(manager, completed + 1, algorithm.name, state)
                rows.append(row)
                completed = stop.completed = completed + 1
            _print_candidate(out, row)
    return _finish(algorithm, state, rows, run_dir, out, "finished")


def _print_candidate(out: Console, row: dict) -> None:
    metrics = row["metrics"]
    out.print(
        f"candidate {row['id']}: {row['num_params']:,} params, "
        f"val acc {metrics.get('validation/accuracy', float('nan')):.4f}, "
        f"test acc {metrics.get('test/accuracy', float('nan')):.4f}, "
        f"{row['train_seconds'] + row['compile_seconds']:.1f} s"
    )


def _finish(algorithm, state, rows, run_dir: Path, out: Console, status: str) -> SearchOutcome:
    best = algorithm.best(state)
    path = run_dir / BEST_SPEC
    with replacing(path) as tmp:
        save_spec(best, tmp, amla=True)
    best_id = best_candidate(rows)
    out.print(summary_table(rows, best_id, title=f"{algorithm.name}: {len(rows)} candidates"))
    returned = returned_candidate(rows, best)
    where = "a network the search did not train" if returned is None else f"candidate {returned}"
    out.print(f"best_spec.json ({where}): {path}")
    return SearchOutcome(status, run_dir, best, path, best_id, rows)
