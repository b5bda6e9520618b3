"""``python -m amla_jax.tasks.supervise --workspace WS ID``: runs one task and records its end.

`amla_jax.tasks.lifecycle.launch` starts this process in a new session with its output
going to the task's log. It starts the run (``python -m amla_jax ...``) in the same
session, records the run's PID, waits, and records the exit: 0 → ``complete``, 143/130
(the search checkpointed and stopped) → ``stopped``, anything else → ``failed`` with the
reason. SIGTERM/SIGINT sent to the supervisor (``amla stop``, a shutdown) are passed on
to the run, which checkpoints and exits; the supervisor then records that.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from amla_jax.tasks import lifecycle, procs
from amla_jax.tasks.store import FAILED, RUNNING, STOPPED, TaskStore


class _Forwarder:
    """Passes SIGTERM/SIGINT to the run once it exists; remembers one that came before."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.pending: int | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.child is None:
            self.pending = signum
        else:
            self.child.send_signal(signum)

    def adopt(self, child: subprocess.Popen) -> None:
        self.child = child
        if self.pending is not None:
            child.send_signal(self.pending)


def supervise(store: TaskStore, task_id: int) -> int:
    """Runs task ``task_id`` to its end; returns the run's exit status (or 0 if the task
    was not ours to run)."""
    forwarder = _Forwarder()
    with store.transaction():  # waits for `launch` to commit
        task = store.get(task_id)
        if task.supervisor_pid != os.getpid() or task.state != RUNNING:
            return 0
        log_offset = _log_size()
        command = lifecycle.task_command(task)
        print(_header(task, command), flush=True)
        if task.stop_requested or forwarder.pending is not None:
            lifecycle.finish(store, task, STOPPED, "stopped before it ran")
            return 128 + signal.SIGTERM
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(command, cwd=task.cwd, env=env, stdin=subprocess.DEVNULL)
        store.update(task_id, pid=child.pid, pid_start=procs.start_time(child.pid))
    forwarder.adopt(child)
    status = procs.exit_status(child.wait())
    task = lifecycle.record_exit(store, task_id, status, log_offset)
    ending = f"{task.state}: {task.message}" if task else procs.describe_exit(status)
    print(f"=== task {task_id} {ending} ===", flush=True)
    return status


def _log_size() -> int:
    """Where this start's output begins in the log (0 if stdout is not a file)."""
    try:
        return os.lseek(sys.stdout.fileno(), 0, os.SEEK_END)
    except OSError:
        return 0


def _header(task, command: list[str]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"=== {when} task {task.id}, start {task.starts}: {' '.join(command)} ==="


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process."""
    parser = argparse.ArgumentParser(prog="python -m amla_jax.tasks.supervise")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("task_id", type=int)
    args = parser.parse_args(argv)
    store = TaskStore(args.workspace)
    try:
        supervise(store, args.task_id)
    except BaseException as exc:
        _record_crash(store, args.task_id, exc)
        raise
    return 0


def _record_crash(store: TaskStore, task_id: int, exc: BaseException) -> None:
    """Marks the task failed when the supervisor itself breaks, unless its run lives on
    (then `lifecycle.refresh` notices when the run ends)."""
    with store.transaction():
        task = store.get(task_id)
        ours = task.supervisor_pid == os.getpid() and task.state == RUNNING
        if ours and not procs.is_alive(task.pid, task.pid_start):
            message = f"supervisor failed: {type(exc).__name__}: {exc}"[: lifecycle.MAX_MESSAGE]
            lifecycle.finish(store, task, FAILED, message)


if __name__ == "__main__":
    sys.exit(main())
