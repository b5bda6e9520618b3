"""Finding the runs to compare: every run directory under the given paths, read back.

A run directory is one that holds ``candidates.jsonl``; `amla_jax.run_record.read_run` reads
it (algorithm, seed, setting, rows, the selected and the returned candidate). This module
only finds them and fails in one line when there is nothing to read.

Synopsis::

    from amla_jax.report.runs import collect
    records = collect(["multirun/2026-01-01/12-00-00"])   # sweep roots or run dirs
    records[0].best_id, records[0].test_accuracy
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amla_jax.errors import UserError
from amla_jax.run_record import RunRecord, read_run
from amla_jax.rundir import CANDIDATES


class ReportError(UserError):
    """Bad input to the report (a missing path, no runs, an unknown column); one line."""


def find_run_dirs(path: str | Path) -> list[Path]:
    """``path`` itself if it is a run directory, plus every run directory below it.

    Raises:
      ReportError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    found = {p.parent for p in path.rglob(CANDIDATES)}
    if (path / CANDIDATES).exists():
        found.add(path)
    # submitit keeps copies of a job's files beside it; they are not runs.
    return sorted(d for d in found if ".submitit" not in d.parts)


def collect(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Every run under ``paths`` (run directories or multirun sweep roots), by directory.

    Raises:
      ReportError: a path does not exist, or no run with a completed candidate is found.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    run_dirs = sorted({d for path in paths for d in find_run_dirs(path)})
    records = [r for r in map(_read_run, run_dirs) if r is not None]
    if not records:
        where = ", ".join(str(p) for p in paths)
        raise ReportError(f"no runs (a candidates.jsonl with a completed candidate) under {where}")
    return records


def _read_run(run_dir: Path) -> RunRecord | None:
    """`read_run`, with a damaged or foreign ``candidates.jsonl`` as a `ReportError`."""
    try:
        return read_run(run_dir)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ReportError):
            raise
        raise ReportError(
            f"{run_dir / CANDIDATES}: not a candidates file this version reads "
            f"({type(exc).__name__}: {exc}); remove it or point amla report elsewhere"
        ) from None
