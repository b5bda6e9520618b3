"""The search's state on disk: Orbax checkpoints of it, and recovery from rows.

`amla_jax.search` checkpoints the algorithm's state after every candidate (step =
completed candidates). `resume` restores the latest checkpoint and replays the
``candidates.jsonl`` rows written after it (a crash between the row and the checkpoint,
or during the checkpoint's write): each is asked again with its key, its spec checked
against the row's, and told from the row, so no candidate is trained twice. ``tell`` is
always given a `RowResult` (live or replayed), so both paths agree exactly.

Synopsis::

    with checkpoint_manager(run_dir / SEARCH_DIR) as manager:
        state, rows = resume(algorithm, manager, init_key, search_key, run_dir, console)
        ...
        save_search_state(manager, len(rows), algorithm.name, state)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import jax
from rich.console import Console

from amla_jax import faults
from amla_jax.algos.base import Algorithm, State, state_from_tree, state_to_tree
from amla_jax.rundir import (
    CANDIDATES,
    RunDirError,
    is_failed,
    prune_metrics,
    read_candidates,
    write_candidates,
)
from amla_jax.train.distributed import broadcast_json, checkpoint_processes, is_primary


@dataclasses.dataclass(frozen=True)
class RowResult:
    """What ``tell`` reads, taken from a candidate's row (null metrics left out)."""

    metrics: dict
    utilities: dict
    scalars: dict
    num_params: int

    @classmethod
    def of(cls, row: dict) -> RowResult:
        metrics = {k: v for k, v in row["metrics"].items() if v is not None}
        return cls(metrics, row.get("utilities", {}), row.get("scalars", {}), row["num_params"])


@contextlib.contextmanager
def quiet_absl() -> Iterator[None]:
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

    # Created here: Orbax refuses to create it when only some processes take part.
    directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2,
        create=False,
        enable_async_checkpointing=False,
        multiprocessing_options=checkpoint_processes(),
    )
    return ocp.CheckpointManager(directory.absolute(), options=options)


def save_search_state(manager, completed: int, algorithm: str, state: State) -> None:
    """Checkpoints ``state`` as step ``completed`` (Orbax writes it atomically)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    tree = {"algorithm": algorithm, "completed": completed, "state": state_to_tree(state)}
    armed = faults.watch_for_temporary("checkpoint", Path(manager.directory))
    manager.save(completed, args=ocp.args.PyTreeSave(tree), force=True)
    manager.wait_until_finished()
    if armed:  # the write was quicker than the test hook's watcher
        faults.kill()


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


def pending_retry(algorithm: Algorithm, rows: list[dict]) -> int | None:
    """The first attempt's id when the next candidate retries a failed one, else None."""
    if algorithm.retry_failed and rows and is_failed(rows[-1]):
        return rows[-1].get("retry_of", rows[-1]["id"])
    return None


def ask(algorithm: Algorithm, state, search_key, candidate_id: int, retry_of):
    """``(spec, asked state, eval key)``: a retry asks with its first attempt's key, so
    it gets the same network, and trains with its own (fresh) key."""
    ask_key, eval_key = jax.random.split(jax.random.fold_in(search_key, candidate_id))
    if retry_of is not None:
        ask_key, _ = jax.random.split(jax.random.fold_in(search_key, retry_of))
    spec, asked = algorithm.ask(ask_key, state)
    return spec, asked, eval_key


def advance(algorithm: Algorithm, state, asked, spec, row: dict):
    """The state after ``row``: ``tell`` the row, except a failure to be retried (the
    state before the ask, so the retry asks again)."""
    if is_failed(row) and algorithm.retry_failed:
        return state
    return algorithm.tell(asked, spec, RowResult.of(row))


def _replay(algorithm: Algorithm, state, search_key, rows: list[dict], completed: int, path):
    """Tells the rows beyond the checkpoint (``completed``) without training them again;
    returns ``(state, completed)``.

    Raises:
      RunDirError: a row holds another network than the search asks for there.
    """
    for row in rows[completed:]:
        if algorithm.done(state) or row["id"] != completed:
            break
        retry_of = pending_retry(algorithm, rows[:completed])
        spec, asked, _ = ask(algorithm, state, search_key, completed, retry_of)
        if type(spec).from_json(row["spec"]) != spec or row.get("retry_of") != retry_of:
            raise RunDirError(
                f"{path}: candidate {completed}'s row holds another network than this "
                "search asks for (another config or seed?); use a new run directory"
            )
        state, completed = advance(algorithm, state, asked, spec, row), completed + 1
    return state, completed


def resume(algorithm, manager, init_key, search_key, run_dir: Path, out: Console):
    """``(state, rows)`` where the run directory left off: the checkpoint, then any rows
    written after it replayed (and checkpointed); partial curves dropped."""
    path = run_dir / CANDIDATES
    step = manager.latest_step()
    state, completed = algorithm.init(init_key), 0
    if step is not None:
        state, completed = restore_search_state(manager, step, algorithm.name, state), step
    rows = read_candidates(path)
    if [r["id"] for r in rows[:completed]] != list(range(completed)):
        raise RunDirError(
            f"{path}: rows {[r['id'] for r in rows]} do not cover 0..{completed - 1}; "
            "use a new run directory"
        )
    state, replayed = _replay(algorithm, state, search_key, rows, completed, path)
    rows = rows[:replayed]
    write_candidates(path, rows)
    if replayed > completed:
        save_search_state(manager, replayed, algorithm.name, state)
        out.print(f"recovered candidates {completed}..{replayed - 1} from {path} (not retrained)")
    prune_metrics(run_dir, replayed)
    return state, rows


def resume_everywhere(algorithm, manager, init_key, search_key, run_dir: Path, out: Console):
    """`resume` on process 0 (``manager`` is None elsewhere); with several processes
    (`amla_jax.train.distributed`) the others receive its rows and replay them, so every
    process continues the search from the same state without reading the run directory."""
    rows = None
    if is_primary():
        state, rows = resume(algorithm, manager, init_key, search_key, run_dir, out)
    rows = broadcast_json(rows)
    if not is_primary():
        state = algorithm.init(init_key)
        state, _ = _replay(algorithm, state, search_key, rows, 0, run_dir / CANDIDATES)
    return state, rows
