"""How `amla` shows tasks: one table row, state and ending lines, and the small formats
(progress, accuracy, dates, durations) they share. Plain text, no JAX.

Synopsis::

    from amla_jax.tasks import display
    display.list_row(scheduler.status(1))        # the `amla list` columns of task 1
    display.duration(3725.0)                      # "1:02:05"
"""

from __future__ import annotations

import time

from amla_jax.tasks.scheduler import TaskStatus
from amla_jax.tasks.store import RUNNING, Task


def list_row(status: TaskStatus) -> tuple[str, ...]:
    task = status.task
    return (
        str(task.id),
        task.name or "-",
        task.state,
        task.algo or "-",
        progress(status),
        accuracy(status.best_val),
        when(task.created),
        duration(task.elapsed_now()),
        task.run_dir,
    )


def state_line(task: Task) -> str:
    if task.state == RUNNING:
        return f"running (pid {task.pid or '-'}, supervisor pid {task.supervisor_pid})"
    return task.state


def ending(status: TaskStatus) -> str:
    task = status.task
    text = f"task {task.id} {task.state}: {task.message or '-'}"
    if status.best_id is not None:
        text += f"; best val acc {accuracy(status.best_val)} (candidate {status.best_id})"
    return text + f"; run dir {task.run_dir}"


def progress(status: TaskStatus) -> str:
    return f"{status.completed}/{status.total if status.total is not None else '?'}"


def accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
