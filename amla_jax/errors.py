"""The one base class of user mistakes.

Every error that a user can cause and fix (a bad override, a malformed spec or AMLA
config, an unknown dataset, algorithm or task, an unusable workspace) derives from
`UserError`. The entry points (`python -m amla_jax`, `amla`, `amla report`) catch it and
print ``error: <first line of the message>``, exit code 2, no traceback; library callers
catch it like any exception. The message names the file, key or field that is wrong and
says how to fix it. This module imports nothing, so every layer can use it.

Synopsis::

    from amla_jax.errors import UserError

    class SpecError(UserError):
        "A network spec is malformed; the message names the field."

    try:
        run(cfg)
    except UserError as exc:
        print(f"error: {exc}"); sys.exit(USAGE_EXIT)
"""

from __future__ import annotations

USAGE_EXIT = 2


class UserError(ValueError):
    """A mistake in what the user gave (config, file, name, workspace): exit 2, one line.

    It is a `ValueError` so that code that validated with ``except ValueError`` before
    keeps working.
    """


def one_line(exc: BaseException) -> str:
    """The message an entry point prints: the first line, or the class name if empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CandidateFailed(Exception):
    """A candidate could not be evaluated (its training diverged): the search records it
    as a ``failed`` row with ``reason`` and goes on. Not a user mistake by itself.

    Attributes:
      reason: one line, e.g. "non-finite train/loss (nan) at step 20".
      steps: training steps run before it stopped.
      train_seconds, compile_seconds: time spent on it.
    """

    def __init__(self, reason: str, steps: int = 0, train_seconds=0.0, compile_seconds=0.0):
        super().__init__(reason)
        self.reason, self.steps = reason, int(steps)
        self.train_seconds, self.compile_seconds = float(train_seconds), float(compile_seconds)
