"""A test hook: ``AMLA_JAX_FAULT=<point>:<n>`` SIGKILLs the process the n-th time it
reaches ``<point>``, so tests can crash a search at exact moments.

Not a user feature: nothing happens unless the variable is set. Points (``n`` counts
from 1 within one process):

    train       a training step (every step of every candidate counts)
    row         right after a candidate's row reached ``candidates.jsonl``, before the
                search checkpoint is written
    checkpoint  during the search checkpoint's write (killed once Orbax's temporary
                directory exists, before it is renamed into place)
    compile     before a candidate's programs are compiled (or loaded from the cache)
    calibrate   during BatchNorm recalibration, after its first batch

Synopsis::

    AMLA_JAX_FAULT=row:2 python -m amla_jax algo=nac ...   # dies after the 2nd row
    from amla_jax import faults
    faults.point("row")                                     # where the code allows it
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

VARIABLE = "AMLA_JAX_FAULT"
_counts: dict[str, int] = {}


def _armed(name: str) -> bool:
    """Counts one arrival at ``name``; True if this is the one to die at."""
    value = os.environ.get(VARIABLE, "")
    point, _, n = value.partition(":")
    if point != name:
        return False
    _counts[name] = _counts.get(name, 0) + 1
    return _counts[name] == int(n or 1)


def kill() -> None:
    """SIGKILL this process: no handler, no cleanup, like a power cut."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Dies here if ``$AMLA_JAX_FAULT`` names this arrival at ``name``."""
    if _armed(name):
        kill()


def watch_for_temporary(name: str, directory: Path) -> bool:
    """Where ``$AMLA_JAX_FAULT`` names this arrival at ``name``: dies as soon as a
    temporary (``*tmp*``) entry appears in ``directory``, i.e. during a write into it.

    Returns:
      True if armed: the caller calls `kill` after the write, in case it was too quick
      for the watcher to see.
    """
    if not _armed(name):
        return False

    def watch() -> None:
        while True:
            try:
                if any("tmp" in p.name for p in directory.iterdir()):
                    kill()
            except OSError:  # the directory is being created or renamed
                pass
            time.sleep(0.0005)

    threading.Thread(target=watch, daemon=True).start()
    return True
