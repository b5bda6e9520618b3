"""The task API behind ``amla``: add, start, stop, wait, status, delete and run the queue.

A `Scheduler` works on one workspace (``$AMLA_WORKSPACE`` or ``./amla_workspace``). Every
call reads and writes the shared SQLite store, so several `Scheduler` objects, ``amla``
commands and supervisors in other processes see one consistent set of tasks. A started
task runs in its own session and outlives the process that started it; the concurrency
limit of `start_queued`/`run_queued` counts every running task of the workspace.

Synopsis (a notebook)::

    from amla_jax.tasks import Scheduler
    scheduler = Scheduler("amla_workspace")
    task = scheduler.add(["dataset=digits", "debug=smoke"])
    scheduler.add(["algo=random", "dataset=digits"], amla_config=None)
    scheduler.run_queued(max_concurrent=2, until_empty=True)   # blocks until both end
    scheduler.status(task.id).best_val                         # best validation accuracy
    scheduler.start(task.id)                                   # already complete: raises
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from amla_jax.amla.task_config import (
    AmlaConfigWarning,
    merge_overrides,
    override_key,
    overrides_from_amla,
    read_amla_config,
)
from amla_jax.compose import compose_config
from amla_jax.errors import UserError, one_line
from amla_jax.rundir import CANDIDATES, best_candidate, read_candidates
from amla_jax.tasks import lifecycle, procs
from amla_jax.tasks.store import (
    COMPLETE,
    FINISHED_STATES,
    QUEUED,
    RUNNING,
    STOPPED,
    Task,
    TaskError,
    TaskStore,
)
from amla_jax.validate import check_run_dir

DEFAULT_WORKSPACE = "amla_workspace"
RUN_DIR_KEY = "hydra.run.dir"


class NothingToDo(TaskError):
    """The request needs no action (starting a complete or running task)."""


@dataclasses.dataclass(frozen=True)
class TaskStatus:
    """A task with the progress its run directory shows.

    Attributes:
      completed: candidates trained and checkpointed (rows of ``candidates.jsonl``).
      total: candidates the search trains (``algo.iterations``), if known.
      best_id: the candidate with the best validation accuracy, or None.
      best_val, best_test: that candidate's validation and test accuracy.
    """

    task: Task
    completed: int
    total: int | None
    best_id: int | None
    best_val: float | None
    best_test: float | None

    def to_json(self) -> dict:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "task"}
        return {**self.task.to_json(), **data}


def resolve_workspace(workspace: str | Path | None = None) -> Path:
    """``workspace``, else ``$AMLA_WORKSPACE``, else ``./amla_workspace`` (absolute)."""
    chosen = workspace or os.environ.get("AMLA_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().absolute()


class Scheduler:
    """Tasks of one workspace: the library form of the ``amla`` commands."""

    def __init__(self, workspace: str | Path | None = None):
        self.store = TaskStore(resolve_workspace(workspace))
        self._supervisors: dict[int, subprocess.Popen] = {}

    @property
    def workspace(self) -> Path:
        return self.store.workspace

    # --- adding -------------------------------------------------------------------------

    def add(
        self,
        overrides: Sequence[str] = (),
        amla_config: str | Path | None = None,
        run_dir: str | Path | None = None,
        name: str | None = None,
        cwd: str | Path | None = None,
    ) -> Task:
        """Queues a run of ``python -m amla_jax <overrides>``, checked by composing it.

        Args:
          overrides: Hydra overrides; they win over those from ``amla_config``. A
            ``hydra.run.dir=`` among them sets the run directory.
          amla_config: an AMLA task config (JSON), translated by `overrides_from_amla`; the
            task keeps a copy, so later edits of the file do not change it.
          run_dir: where the run writes (default ``<workspace>/runs/<id>``).
          name: a label (default: the AMLA config's ``arch_name``).
          cwd: the directory the run starts in (default: the current one).

        Raises:
          TaskError: a bad override, config file or spec (one-line message).
        """
        cwd = Path(cwd or os.getcwd()).absolute()
        user = [o for o in overrides if override_key(o) != RUN_DIR_KEY]
        for override in overrides:
            if override.startswith("-"):
                raise TaskError(f"{override!r}: not a Hydra override (key=value)")
            if override_key(override) == RUN_DIR_KEY:
                run_dir = override.split("=", 1)[1].strip("'\"")
        merged = merge_overrides(overrides_from_amla(amla_config) if amla_config else [], user)
        cfg = _check(merged, cwd)
        if amla_config and name is None:
            name = read_amla_config(amla_config).get("parameters", {}).get("arch_name")
        run_dir = (cwd / run_dir) if run_dir else None
        try:
            check_run_dir(run_dir)
        except UserError as exc:
            raise TaskError(one_line(exc)) from None
        with self.store.transaction():
            algo, iterations = cfg.algo.name, cfg.algo.iterations
            task = self.store.insert(merged, cwd, run_dir, name, algo, iterations)
            if amla_config:
                task = self._keep_copy(task, Path(amla_config), user)
        return task

    def _keep_copy(self, task: Task, amla_config: Path, user: list[str]) -> Task:
        """Copies the AMLA config into the task directory and points the task at it."""
        copy = self.store.task_dir(task.id) / amla_config.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(amla_config, copy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AmlaConfigWarning)  # already shown once
            overrides = merge_overrides(overrides_from_amla(copy), user)
        return self.store.update(task.id, overrides=overrides, amla_config=str(copy))

    # --- reading ------------------------------------------------------------------------

    def get(self, task_id: int) -> Task:
        """The task, with dead processes noticed (see `lifecycle.refresh`)."""
        self._reap()
        return lifecycle.refresh(self.store, self.store.get(task_id))

    def list(self, states: Sequence[str] | None = None) -> list[Task]:
        """All tasks (or those in ``states``) in id order, dead processes noticed."""
        self._reap()
        tasks = [lifecycle.refresh(self.store, t) for t in self.store.all()]
        return [t for t in tasks if states is None or t.state in states]

    def status(self, task_id: int) -> TaskStatus:
        """The task and its search's progress (from ``candidates.jsonl``)."""
        return task_status(self.get(task_id))

    def log_path(self, task_id: int) -> Path:
        """The task's combined stdout/stderr."""
        self.store.get(task_id)
        return self.store.log_path(task_id)

    def follow_log(
        self, task_id: int, lines: int | None = None, poll: float = 0.5
    ) -> Iterator[str]:
        """The log's last ``lines`` lines (all if None), then what the task writes until it
        is no longer queued or running."""
        path = self.log_path(task_id)
        data = path.read_bytes() if path.exists() else b""
        yield tail(data.decode(errors="replace"), lines)
        offset = len(data)
        while True:
            active = self.get(task_id).state in (QUEUED, RUNNING)
            if path.exists() and path.stat().st_size > offset:
                with open(path, "rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                offset += len(chunk)
                yield chunk.decode(errors="replace")
            elif not active:
                return
            else:
                time.sleep(poll)

    # --- running ------------------------------------------------------------------------

    def start(self, task_id: int) -> Task:
        """Starts (or resumes, after a stop or failure) the task in the background.

        Raises:
          NothingToDo: the task is already running or complete.
        """
        with self.store.transaction():
            task = self.get(task_id)
            if task.state == RUNNING:
                raise NothingToDo(f"task {task_id} is already running (pid {task.pid})")
            if task.state == COMPLETE:
                raise NothingToDo(f"task {task_id} is already complete; nothing to do")
            return self._launch(task)

    def _launch(self, task: Task) -> Task:
        """Starts ``task`` (inside a transaction) unless another task runs in its run dir."""
        for other in self.list([RUNNING]):
            if other.run_dir == task.run_dir:
                raise TaskError(f"task {other.id} is running in {task.run_dir}; stop it first")
        task, process = lifecycle.launch(self.store, task)
        if process is not None:
            self._supervisors[task.id] = process
        return task

    def stop(self, task_id: int, timeout: float = 120.0, kill: bool = False) -> Task:
        """Asks the task to stop (SIGTERM: it checkpoints and exits) and waits for it.

        A queued task just becomes ``stopped``. After ``timeout`` seconds the task is
        left running, or with ``kill`` it is killed (SIGKILL) and marked stopped; the
        candidate in flight is lost either way, completed ones are checkpointed.
        """
        with self.store.transaction():
            task = self.get(task_id)
            if task.state == QUEUED:
                return lifecycle.finish(self.store, task, STOPPED, "stopped before it started")
            if task.state != RUNNING:
                return task
            self.store.update(task_id, stop_requested=True)
            self._signal(task, signal.SIGTERM)
        task = self.wait(task_id, timeout=timeout)
        if task.state == RUNNING and kill:
            self._signal(task, signal.SIGKILL)
            task = self.wait(task_id, timeout=30)
        return task

    @staticmethod
    def _signal(task: Task, signum: int) -> None:
        """SIGTERM goes to the supervisor, which passes it on (even before the run has
        started); SIGKILL goes to the run, so that the supervisor records it. Whichever
        is gone, the other gets it."""
        supervisor = (task.supervisor_pid, task.supervisor_start)
        run = (task.pid, task.pid_start)
        first, second = (run, supervisor) if signum == signal.SIGKILL else (supervisor, run)
        if not procs.send_signal(*first, signum):
            procs.send_signal(*second, signum)

    def wait(self, task_id: int, timeout: float | None = None, poll: float = 0.5) -> Task:
        """Waits until the task is stopped, complete or failed (or ``timeout`` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task.state in FINISHED_STATES:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                return task
            time.sleep(poll)

    def delete(self, task_id: int, force: bool = False, purge: bool = False) -> Task:
        """Removes the task and its task directory; ``purge`` also removes its run directory.

        Raises:
          TaskError: the task is running and ``force`` is not set, or it would not stop,
            or ``purge`` would remove the workspace or the current directory.
        """
        task = self.get(task_id)
        if purge:
            _check_purge(Path(task.run_dir), self.workspace)
        if task.state == RUNNING:
            if not force:
                raise TaskError(f"task {task_id} is running; stop it first or use --force")
            task = self.stop(task_id, timeout=60, kill=True)
            if task.state == RUNNING:
                raise TaskError(f"task {task_id} did not stop; not deleted")
        with self.store.transaction():
            self.store.delete(task_id)
        shutil.rmtree(self.store.task_dir(task_id), ignore_errors=True)
        if purge:
            shutil.rmtree(task.run_dir, ignore_errors=True)
        return task

    def start_queued(self, max_concurrent: int = 1) -> list[Task]:
        """Starts the oldest queued tasks while fewer than ``max_concurrent`` run."""
        started: list[Task] = []
        with self.store.transaction():
            running = self.list([RUNNING])
            busy = {t.run_dir for t in running}
            for task in self.store.all((QUEUED,)):
                if len(running) + len(started) >= max_concurrent:
                    break
                if task.run_dir not in busy:  # else it waits for the task in its run dir
                    started.append(self._launch(task))
                    busy.add(task.run_dir)
        return started

    def run_queued(
        self,
        max_concurrent: int = 1,
        poll: float = 2.0,
        until_empty: bool = False,
        on_event: Callable[[str, Task], None] | None = None,
    ) -> None:
        """Runs queued tasks, at most ``max_concurrent`` at a time, until interrupted
        (KeyboardInterrupt) or, with ``until_empty``, until none is queued and the tasks it
        started have ended. ``on_event(kind, task)`` hears "started" and "ended"."""
        if max_concurrent < 1:
            raise TaskError(f"max_concurrent: {max_concurrent} must be at least 1")
        mine: set[int] = set()
        while True:
            for task in self.start_queued(max_concurrent):
                mine.add(task.id)
                if on_event:
                    on_event("started", task)
            for task_id in sorted(mine):
                task = self.get(task_id)
                if task.state != RUNNING:
                    mine.discard(task_id)
                    if on_event:
                        on_event("ended", task)
            if until_empty and not mine and not self.store.all((QUEUED,)):
                return
            time.sleep(poll)

    def _reap(self) -> None:
        """Collects the exit of supervisors this object started (no zombies)."""
        for task_id, process in list(self._supervisors.items()):
            if process.poll() is not None:
                del self._supervisors[task_id]


def _check(overrides: list[str], cwd: Path):
    """Validates ``overrides`` as the entry point does (`amla_jax.validate`: keys, values,
    the network, with spec files relative to ``cwd``).

    Returns:
      The checked `RunConfig`. Raises `TaskError` with a one-line reason otherwise.
    """
    from amla_jax.validate import network_of, run_config  # noqa: PLC0415

    try:
        cfg = run_config(compose_config(overrides), run_dir=".")
        network_of(cfg, cwd)
    except UserError as exc:
        raise TaskError(one_line(exc)) from None
    return cfg


def _check_purge(run_dir: Path, workspace: Path) -> None:
    """Refuses to purge a directory that holds the workspace, the current one or home."""
    run_dir = run_dir.resolve()
    for guarded in (workspace.resolve(), Path.cwd().resolve(), Path.home().resolve()):
        if guarded == run_dir or run_dir in guarded.parents:
            raise TaskError(f"--purge: refusing to remove {run_dir}, which holds {guarded}")


def task_status(task: Task) -> TaskStatus:
    """The progress of ``task``'s search from its ``candidates.jsonl``."""
    rows = read_candidates(Path(task.run_dir) / CANDIDATES)
    best = best_candidate(rows)
    metrics = next((r["metrics"] for r in rows if r["id"] == best), {})
    return TaskStatus(
        task,
        len(rows),
        task.iterations,
        best,
        metrics.get("validation/accuracy"),
        metrics.get("test/accuracy"),
    )


def tail(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all of it if None)."""
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)
