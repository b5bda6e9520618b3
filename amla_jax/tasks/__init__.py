"""AMLA's task system for ``amla_jax``: a SQLite task store, background runs, a scheduler.

A task is one ``python -m amla_jax`` run (overrides, optionally from an AMLA task config)
that a supervisor process runs in the background in its own run directory. The ``amla``
command (`amla_jax.tasks.cli`) and the `Scheduler` class share one store per workspace.

Synopsis::

    from amla_jax.tasks import Scheduler
    scheduler = Scheduler("amla_workspace")
    task = scheduler.add(["dataset=digits"], amla_config="config.nac.construction.test.json")
    scheduler.start(task.id)
    scheduler.wait(task.id).state                  # 'complete'
    scheduler.status(task.id).best_val
"""

from amla_jax.amla.task_config import AmlaConfigError, AmlaConfigWarning, overrides_from_amla
from amla_jax.tasks.scheduler import NothingToDo, Scheduler, TaskStatus, resolve_workspace
from amla_jax.tasks.store import STATES, Task, TaskError, TaskStore, UnknownTask

__all__ = [
    "STATES",
    "AmlaConfigError",
    "AmlaConfigWarning",
    "NothingToDo",
    "Scheduler",
    "Task",
    "TaskError",
    "TaskStatus",
    "TaskStore",
    "UnknownTask",
    "overrides_from_amla",
    "resolve_workspace",
]
