"""Process identity and exit statuses for task processes, without third-party packages.

A PID alone does not name a process for long: after a crash or a reboot the number can
belong to someone else. A process is therefore named by its PID plus its start time
(field 22 of ``/proc/<pid>/stat``, clock ticks since boot); where ``/proc`` is missing the
start time is None and only the PID is checked.

Synopsis::

    from amla_jax.tasks import procs
    start = procs.start_time(pid)
    procs.is_alive(pid, start)          # False once it exits (a zombie counts as exited)
    procs.describe_exit(137)            # 'killed by SIGKILL'
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if unknown."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int | None, started: int | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs (not a zombie)."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[0] not in ("Z", "X") and (started is None or int(fields[19]) == started)
    if Path("/proc/self/stat").exists():
        return False  # /proc works but has no such pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (state) on; None if it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 is the command name in parentheses and may itself hold spaces or ")".
    return text[text.rindex(")") + 2 :].split()


def exit_status(returncode: int) -> int:
    """A shell-style exit status: ``Popen.returncode`` -N (killed by signal N) → 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_of(status: int) -> signal.Signals | None:
    """The signal behind a shell-style status 129..159, or None."""
    try:
        return signal.Signals(status - 128) if status > 128 else None
    except ValueError:
        return None


def describe_exit(status: int) -> str:
    """``status`` in words: 'exit code 0', 'killed by SIGKILL', ..."""
    sig = signal_of(status)
    return f"killed by {sig.name}" if sig else f"exit code {status}"


def send_signal(pid: int | None, started: int | None, signum: int) -> bool:
    """Sends ``signum`` to the process if it is still the one that started at ``started``."""
    if not is_alive(pid, started):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True
