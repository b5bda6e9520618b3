"""The task store: one SQLite database per workspace (``<workspace>/tasks.db``).

A task is one run of ``python -m amla_jax <overrides> hydra.run.dir=<run_dir>``. Its row
records what to run (overrides, working directory, run directory), where it stands
(``state`` and times) and which processes carry it (the supervisor and the run, each as
a PID plus its start time, so that a recycled PID is not mistaken for the task). The
database is in WAL mode with a busy timeout, so ``amla`` commands, supervisors and
schedulers in other processes can use it at once; every read-modify-write runs inside
`TaskStore.transaction` (``BEGIN IMMEDIATE``), which serialises the writers.

States: ``queued`` → ``running`` → ``complete`` | ``failed`` | ``stopped``; a failed or
stopped task can be started again (it resumes from the search checkpoint).

Synopsis::

    from amla_jax.tasks.store import TaskStore
    store = TaskStore("amla_workspace")
    with store.transaction():
        task = store.insert(overrides=["dataset=digits"], run_dir=None, cwd=".")
    store.get(task.id).state                       # 'queued'
    with store.transaction():
        store.update(task.id, state="stopped", message="stopped before it started")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from amla_jax.errors import UserError

DB_FILE = "tasks.db"
QUEUED, RUNNING, STOPPED, COMPLETE, FAILED = "queued", "running", "stopped", "complete", "failed"
STATES = (QUEUED, RUNNING, STOPPED, COMPLETE, FAILED)
FINISHED_STATES = (STOPPED, COMPLETE, FAILED)
BUSY_TIMEOUT_S = 60.0

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    overrides TEXT NOT NULL,
    amla_config TEXT,
    cwd TEXT NOT NULL,
    run_dir TEXT NOT NULL DEFAULT '',
    algo TEXT,
    iterations INTEGER,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    elapsed REAL NOT NULL DEFAULT 0,
    starts INTEGER NOT NULL DEFAULT 0,
    supervisor_pid INTEGER,
    supervisor_start INTEGER,
    pid INTEGER,
    pid_start INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    message TEXT
)
"""


class TaskError(UserError):
    """A request the task store cannot honour; the message is one line for the user."""


class StoreError(TaskError):
    """The workspace or its ``tasks.db`` cannot be used; the message says what to do."""


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """The one-line `StoreError` for an SQLite failure on the store at ``path``."""
    text = str(exc)
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StoreError(
            f"task store {str(path)!r}: cannot write it ({text}); make the workspace "
            "writable or pick another with --workspace DIR or $AMLA_WORKSPACE"
        )
    return StoreError(
        f"task store {str(path)!r}: unreadable ({text}); it is corrupted or not a task "
        f"store: move it aside (mv {path} {path}.bad) to start an empty one, or pick "
        "another workspace with --workspace DIR"
    )


class UnknownTask(TaskError):
    """No task has this id."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One row of the ``tasks`` table (times are Unix seconds).

    Attributes:
      overrides: the Hydra overrides the task runs with (``hydra.run.dir`` is added).
      amla_config: the task's copy of the AMLA config it was added from, or None.
      cwd: the directory the task runs in (relative paths in overrides resolve there).
      elapsed: seconds spent running in the finished attempts (see `elapsed_now`).
      starts: how many times it was started.
      supervisor_pid, supervisor_start: the process that waits for the run and records
        its end; ``*_start`` is the kernel's start time of the PID (None if unknown).
      pid, pid_start: the run's process (``python -m amla_jax``).
      stop_requested: ``amla stop`` asked the run to stop.
      exit_code: the run's exit status, 128 + N for signal N.
    """

    id: int
    name: str | None
    state: str
    overrides: tuple[str, ...]
    amla_config: str | None
    cwd: str
    run_dir: str
    algo: str | None
    iterations: int | None
    created: float
    started: float | None
    finished: float | None
    elapsed: float
    starts: int
    supervisor_pid: int | None
    supervisor_start: int | None
    pid: int | None
    pid_start: int | None
    stop_requested: bool
    exit_code: int | None
    message: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Task:
        values = dict(row)
        values["overrides"] = tuple(json.loads(values["overrides"]))
        values["stop_requested"] = bool(values["stop_requested"])
        return cls(**values)

    def elapsed_now(self, now: float | None = None) -> float:
        """Seconds spent running, the current attempt included."""
        if self.state == RUNNING and self.started is not None:
            return self.elapsed + max(0.0, (now or time.time()) - self.started)
        return self.elapsed

    def to_json(self) -> dict:
        """The row as JSON values, with ``elapsed`` counting the current attempt."""
        data = dataclasses.asdict(self)
        data["overrides"] = list(self.overrides)
        data["elapsed"] = self.elapsed_now()
        return data


class TaskStore:
    """The ``tasks`` table of ``<workspace>/tasks.db`` (created on first use).

    One connection per instance, in autocommit mode: reads see the latest committed
    state, and writes go through `transaction`.
    """

    def __init__(self, workspace: str | Path):
        self.workspace = Path(workspace).absolute()
        self.path = self.workspace / DB_FILE
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"workspace {str(self.workspace)!r}: cannot create it ({exc.strerror}); "
                "pick another with --workspace DIR or $AMLA_WORKSPACE"
            ) from None
        self._in_transaction = False
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _retry_locked(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
            with self.transaction():
                self._db.execute(SCHEMA)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[TaskStore]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on an exception); nests as one."""
        if self._in_transaction:
            yield self
            return
        _retry_locked(lambda: self._db.execute("BEGIN IMMEDIATE"))
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    def insert(
        self,
        overrides: list[str],
        cwd: str | Path,
        run_dir: str | Path | None = None,
        name: str | None = None,
        algo: str | None = None,
        iterations: int | None = None,
    ) -> Task:
        """Adds a queued task; without ``run_dir`` it runs in ``<workspace>/runs/<id>``."""
        self._require_transaction()
        cursor = self._db.execute(
            "INSERT INTO tasks (name, state, overrides, cwd, algo, iterations, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, QUEUED, json.dumps(overrides), str(cwd), algo, iterations, time.time()),
        )
        task_id = int(cursor.lastrowid)
        run_dir = Path(run_dir) if run_dir else self.workspace / "runs" / str(task_id)
        return self.update(task_id, run_dir=str(run_dir.absolute()))

    def get(self, task_id: int) -> Task:
        """The task with ``task_id``; `UnknownTask` if there is none."""
        row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(f"no task {task_id} in {self.workspace} (see amla list)")
        return Task.from_row(row)

    def all(self, states: tuple[str, ...] = STATES) -> list[Task]:
        """The tasks in ``states``, in id order."""
        marks = ", ".join("?" * len(states))
        rows = self._db.execute(
            f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY id", states
        ).fetchall()
        return [Task.from_row(row) for row in rows]

    def update(self, task_id: int, **fields) -> Task:
        """Sets ``fields`` of the task (inside a `transaction`) and returns the new row."""
        self._require_transaction()
        unknown = set(fields) - ({f.name for f in dataclasses.fields(Task)} - {"id"})
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}")
        if "overrides" in fields:
            fields["overrides"] = json.dumps(list(fields["overrides"]))
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state: {fields['state']!r} is not one of {STATES}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE tasks SET {assignments} WHERE id = ?", (*fields.values(), task_id)
        )
        return self.get(task_id)

    def delete(self, task_id: int) -> None:
        """Removes the task's row (ids are never reused)."""
        self._require_transaction()
        self._db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def task_dir(self, task_id: int) -> Path:
        """``<workspace>/tasks/<id>``: the task's log and its copy of the AMLA config."""
        return self.workspace / "tasks" / str(task_id)

    def log_path(self, task_id: int) -> Path:
        """The task's combined stdout/stderr, appended to by every start."""
        return self.task_dir(task_id) / "output.log"

    def _require_transaction(self) -> None:
        if not self._in_transaction:
            raise RuntimeError("task store writes must run inside store.transaction()")


def _retry_locked(statement, attempts: int = 50) -> None:
    """Runs ``statement``; retries while another process holds a lock SQLite's busy
    handler does not wait for (switching to WAL, BEGIN IMMEDIATE in a WAL race)."""
    for attempt in range(attempts):
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
