"""A progress bar for long loops (rich), silent when disabled or not on a terminal.

Synopsis::

    with progress_bar("training", total=1000) as advance:
        for step in range(1, 1001):
            advance(step, "loss 0.31")
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True
) -> Iterator[Callable[[int, str], None]]:
    """Yields ``advance(completed, status)``; draws on stderr only when it is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda completed, status="": None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=total, status="")
        yield lambda completed, status="": progress.update(task, completed=completed, status=status)
