"""How a task's processes start, end and are noticed dead.

`launch` starts ``python -m amla_jax.tasks.supervise`` in a new session, so the task
outlives the command that started it; the supervisor starts the run
(`task_command`), waits for it and records its end with `record_exit`. If the
supervisor itself dies (SIGKILL, a reboot) nobody records anything: `refresh` notices a
``running`` task whose processes are gone and marks it ``failed`` (or ``complete`` if
its run directory shows the search finished), so that ``amla start`` can resume it.

Synopsis::

    from amla_jax.tasks import lifecycle
    with store.transaction():
        task, process = lifecycle.launch(store, task)   # 'running', supervisor PID set
    task = lifecycle.refresh(store, store.get(task.id))
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from amla_jax.amla.task_config import hydra_value
from amla_jax.rundir import SPEC_FILE
from amla_jax.tasks import procs
from amla_jax.tasks.store import COMPLETE, FAILED, RUNNING, STOPPED, Task, TaskStore

STOP_STATUSES = (128 + signal.SIGTERM, 128 + signal.SIGINT)
MAX_MESSAGE = 300


def task_command(task: Task) -> list[str]:
    """The run: ``python -m amla_jax <overrides> hydra.run.dir=<run_dir>``."""
    run_dir = f"hydra.run.dir={hydra_value(task.run_dir)}"
    return [sys.executable, "-m", "amla_jax", *task.overrides, run_dir]


def launch(store: TaskStore, task: Task) -> tuple[Task, subprocess.Popen | None]:
    """Starts the task's supervisor (inside ``store.transaction()``) and marks it running.

    The supervisor waits for this transaction to commit before it reads the task, so
    the row names it before it can act.

    Returns:
      The updated task and the supervisor's `subprocess.Popen` (poll or wait on it to
      reap it; it runs on if dropped), or None if it could not start (task ``failed``).
    """
    log_path = store.log_path(task.id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "amla_jax.tasks.supervise",
        "--workspace",
        str(store.workspace),
        str(task.id),
    ]
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=task.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:  # e.g. its working directory was removed
        return finish(store, task, FAILED, f"cannot start: {exc}"), None
    return store.update(
        task.id,
        state=RUNNING,
        started=time.time(),
        finished=None,
        starts=task.starts + 1,
        supervisor_pid=process.pid,
        supervisor_start=procs.start_time(process.pid),
        pid=None,
        pid_start=None,
        stop_requested=False,
        exit_code=None,
        message=None,
    ), process


def is_running(task: Task) -> bool:
    """Whether the task's supervisor or run process is still alive."""
    return procs.is_alive(task.supervisor_pid, task.supervisor_start) or procs.is_alive(
        task.pid, task.pid_start
    )


def refresh(store: TaskStore, task: Task) -> Task:
    """``task`` as it really is: a ``running`` task whose processes have all gone without
    recording an end becomes ``failed`` (or ``complete`` if its search finished)."""
    if task.state != RUNNING or is_running(task):
        return task
    with store.transaction():
        task = store.get(task.id)  # the supervisor may have recorded the end meanwhile
        if task.state != RUNNING or is_running(task):
            return task
        pid = task.pid or task.supervisor_pid
        if _search_finished(task):
            state, message = COMPLETE, f"process {pid} ended without recording its exit"
        elif task.stop_requested:
            state, message = STOPPED, f"process {pid} ended after amla stop; amla start resumes it"
        else:
            state = FAILED
            message = (
                f"process {pid} died without recording its exit "
                "(killed by SIGKILL? machine restarted?); amla start resumes it"
            )
        return finish(store, task, state, message, exit_code=None)


def record_exit(store: TaskStore, task_id: int, status: int, log_offset: int = 0) -> Task | None:
    """Records the run's exit ``status`` (shell-style); None if another start took over."""
    with store.transaction():
        task = store.get(task_id)
        if task.supervisor_pid != os.getpid() or task.state != RUNNING:
            return None
        state, message = classify_exit(task, status, store.log_path(task_id), log_offset)
        return finish(store, task, state, message, exit_code=status)


def classify_exit(task: Task, status: int, log_path: Path, log_offset: int) -> tuple[str, str]:
    """The state and message that the run's exit ``status`` means."""
    if status == 0:
        return COMPLETE, "finished"
    sig = procs.signal_of(status)
    by = "amla stop" if task.stop_requested else (sig.name if sig else "a signal")
    if status in STOP_STATUSES:
        return STOPPED, f"stopped by {by}; amla start resumes it"
    if task.stop_requested and sig is not None:
        return STOPPED, f"{procs.describe_exit(status)} after amla stop; amla start resumes it"
    if sig is not None:
        return FAILED, f"{procs.describe_exit(status)}; amla start resumes it"
    reason = last_error(log_path, log_offset)
    return FAILED, f"exit code {status}" + (f": {reason}" if reason else "")


def last_error(log_path: Path, offset: int = 0) -> str | None:
    """The last ``error: ...`` line the run wrote after ``offset`` (else its last line)."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    line = errors[-1].removeprefix("error: ") if errors else (lines[-1] if lines else None)
    return line[:MAX_MESSAGE] if line else None


def finish(
    store: TaskStore, task: Task, state: str, message: str, exit_code: int | None = None
) -> Task:
    """Ends the current attempt (inside a transaction): ``state``, times and the message."""
    now = time.time()
    return store.update(
        task.id,
        state=state,
        finished=now,
        elapsed=task.elapsed_now(now),
        exit_code=exit_code,
        message=message,
    )


def _search_finished(task: Task) -> bool:
    """Whether the run wrote its final ``spec.json`` during the current attempt."""
    path = Path(task.run_dir) / SPEC_FILE
    return path.exists() and task.started is not None and path.stat().st_mtime >= task.started
