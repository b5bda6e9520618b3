"""The search loop: ask → evaluate → tell, checkpointed after every candidate.

`run_search` is the only place that drives an `Algorithm`. After every ``tell`` it
appends the candidate's row to ``<run_dir>/candidates.jsonl`` and then saves an Orbax
checkpoint of the search state in ``<run_dir>/search/`` (step = completed candidates).
Rerunning in the same run directory restores the latest checkpoint and continues after
its last candidate. Exactly once: a candidate whose row exists is never trained again;
rows beyond the checkpoint (a crash between the two writes, or during the checkpoint's)
are replayed: ``ask`` again with the same key (the spec must equal the row's) and
``tell`` the row. ``tell`` is always given the row, live or replayed, so both agree.
Candidate ``i`` is asked and trained with keys derived only from ``(key, i)``, so a
resumed search equals an uninterrupted one. Curves of candidates without a row (killed
while training) are dropped from ``metrics.jsonl`` and ``tb/`` on resume.

A candidate whose training diverges (the evaluator raises `CandidateFailed`) is
recorded as a row with ``"status": "failed"`` and its ``reason``; selection skips it. An
algorithm with ``retry_failed`` (NAC) is not told: the same network is trained once more
as the next candidate with a fresh key (``"retry_of"`` in its row); a second failure in
a row ends the search with `SearchFailed`, its rows and checkpoint kept (a rerun tries
once more). ``$AMLA_JAX_FAULT`` kills the process at chosen points (`amla_jax.faults`,
a test hook).
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
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
from rich.console import Console
from rich.table import Table

from amla_jax import faults
from amla_jax.algos.base import Algorithm
from amla_jax.amla import save_spec
from amla_jax.errors import CandidateFailed, UserError
from amla_jax.rundir import (
    BEST_SPEC,
    CANDIDATES,
    FAILED,
    SEARCH_DIR,
    append_row,
    best_candidate,
    is_failed,
    replacing,
    returned_candidate,
)
from amla_jax.search_state import (
    advance,
    ask,
    checkpoint_manager,
    pending_retry,
    quiet_absl,
    restore_search_state,  # noqa: F401 (part of this module's public names, as before)
    resume,  # noqa: F401 (part of this module's public names, as before)
    resume_everywhere,
    save_search_state,
)
from amla_jax.spec import NetworkSpec
from amla_jax.train.distributed import is_primary

Evaluate = Callable[[NetworkSpec, Any, int], Any]


class SearchInterrupted(Exception):
    """SIGTERM/SIGINT stopped the search; completed candidates are checkpointed.

    Attributes:
      signum: the signal received.
      completed: candidates completed and checkpointed.
      exit_code: what the process should exit with (128 + signum, like a shell).
    """

    def __init__(self, signum: int, completed: int, unit: str = "candidates"):
        name = signal.Signals(signum).name
        super().__init__(f"search stopped by {name} after {completed} completed {unit}")
        self.signum, self.completed, self.exit_code = signum, completed, 128 + signum


class SearchFailed(UserError):
    """A candidate that the algorithm cannot do without failed twice in a row; its rows
    and the checkpoint are kept, so a rerun in the same run directory resumes."""


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


class StopOnSignal:
    """Turns SIGTERM/SIGINT into `SearchInterrupted`, deferred while files are written
    (``completed`` counts ``unit``: this loop's candidates, the one-shot loop's epochs)."""

    def __init__(self, unit: str = "candidates") -> None:
        self.unit = unit
        self.signum: int | None = None
        self.completed = 0
        self._writing = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        del frame
        self.signum = signum
        if not self._writing:
            raise SearchInterrupted(signum, self.completed, self.unit)

    def check(self) -> None:
        if self.signum is not None:
            raise SearchInterrupted(self.signum, self.completed, self.unit)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        self.check()

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


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


def _failed_row(candidate_id: int, name: str, spec, failure: CandidateFailed, evaluate) -> dict:
    count_params = getattr(evaluate, "count_params", None)
    return {
        "id": candidate_id,
        "algorithm": name,
        "spec": spec.to_json(),
        "status": FAILED,
        "reason": failure.reason,
        "metrics": {},
        "num_params": int(count_params(spec)) if count_params else 0,
        "flops": None,
        "steps": failure.steps,
        "train_seconds": failure.train_seconds,
        "compile_seconds": failure.compile_seconds,
    }


def _evaluated(algorithm, evaluate, spec, key, candidate_id: int, retry_of) -> dict:
    """The row of candidate ``candidate_id``: trained, or failed with its reason."""
    try:
        result = evaluate(spec, key, candidate_id)
    except CandidateFailed as failure:
        row = _failed_row(candidate_id, algorithm.name, spec, failure, evaluate)
    else:
        row = _row(candidate_id, algorithm.name, spec, result, evaluate)
    return row if retry_of is None else {**row, "retry_of": retry_of}


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
            "best val" if row["id"] == best_id else ("failed" if is_failed(row) else ""),
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
    # With several processes (amla_jax.train.distributed) all train every candidate and
    # only process 0 touches the run directory: rows, checkpoints, spec files, output.
    primary = is_primary()
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
    out = Console(quiet=not (console and primary), highlight=False, soft_wrap=True)
    init_key, search_key = jax.random.split(key)
    # An Orbax save costs ~0.1 s: nothing next to training a candidate, everything next to
    # a table lookup, so a cheap evaluator may ask for a checkpoint every n candidates
    # (rows after the last checkpoint are replayed on resume, not evaluated again).
    every = max(1, int(getattr(evaluate, "checkpoint_every", 1)))
    manager = checkpoint_manager(run_dir / SEARCH_DIR) if primary else contextlib.nullcontext()
    with quiet_absl(), manager as manager, StopOnSignal() as stop:
        state, rows = resume_everywhere(algorithm, manager, init_key, search_key, run_dir, out)
        completed = stop.completed = len(rows)
        if rows and algorithm.done(state):
            out.print(
                f"[bold]{algorithm.name} search in {run_dir} is already finished[/] "
                f"({completed} candidates); nothing to do."
            )
            return _finish(algorithm, state, rows, run_dir, out, "already_finished")
        if rows:
            out.print(f"resuming {algorithm.name} search in {run_dir} after {completed} candidates")
        while not algorithm.done(state):
            stop.check()
            retry_of = pending_retry(algorithm, rows)
            spec, asked, eval_key = ask(algorithm, state, search_key, completed, retry_of)
            row = _evaluated(algorithm, evaluate, spec, eval_key, completed, retry_of)
            told = advance(algorithm, state, asked, spec, row)
            with stop.writing():
                if primary:
                    append_row(run_dir / CANDIDATES, row)
                    faults.point("row")
                    if (completed + 1) % every == 0 or algorithm.done(told):
                        save_search_state(manager, completed + 1, algorithm.name, told)
                rows.append(row)
                state, completed = told, completed + 1
                stop.completed = completed
            _print_candidate(out, row)
            _check_failure(algorithm, row, retry_of, out)
    return _finish(algorithm, state, rows, run_dir, out, "finished")


def _check_failure(algorithm: Algorithm, row: dict, retry_of, out: Console) -> None:
    """Says what happens after a failed candidate that the algorithm retries.

    Raises:
      SearchFailed: it was the retry that failed.
    """
    if not (is_failed(row) and algorithm.retry_failed):
        return
    if retry_of is not None:
        raise SearchFailed(
            f"candidate {row['id']} (a retry of candidate {retry_of}) failed too: "
            f"{row['reason']}; {algorithm.name} cannot grow a network without its "
            "statistics. Lower optim.learning_rate (or optim.clip_norm) and rerun in the "
            "same run directory to try it again (its candidates so far are kept)"
        )
    out.print(
        f"candidate {row['id']} failed ({row['reason']}); {algorithm.name} needs its "
        "statistics: training the same network once more with a fresh key"
    )


def _print_candidate(out: Console, row: dict) -> None:
    if is_failed(row):
        out.print(f"candidate {row['id']} failed: {row['reason']}")
        return
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
    if is_primary():
        with replacing(path) as tmp:
            save_spec(best, tmp, amla=True)
    best_id = best_candidate(rows)
    out.print(summary_table(rows, best_id, title=f"{algorithm.name}: {len(rows)} candidates"))
    returned = returned_candidate(rows, best)
    where = "a network the search did not train" if returned is None else f"candidate {returned}"
    out.print(f"best_spec.json ({where}): {path}")
    return SearchOutcome(status, run_dir, best, path, best_id, rows)
