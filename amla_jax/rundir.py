"""The run directory: its file names, its JSON-lines rows, and reading a run back.

One run of ``python -m amla_jax`` (or a task, or `amla_jax.runner.run`) writes one
directory. This module is the only place that spells its file names and the only reader
of its files, so the search that writes it, the report and plots that compare runs and
the task CLI that shows progress agree on what a run holds. It imports no JAX, Flax or
numpy: the task CLI and the report read runs in a fresh interpreter in milliseconds.

Layout::

    candidates.jsonl   one row per trained candidate (id, spec, metrics, params, seconds;
                       "status": "failed" and a "reason" where it could not be trained)
    best_spec.json     the network the search returns, AMLA's form (written at the end)
    spec.json          the same network in our form (written by the runner at the end)
    metrics.jsonl      training scalars, one record per logged step ("run", "step", "time");
                       each candidate's curve once (a resumed run drops partial ones)
    epochs.jsonl       a one-shot search's rows, one per epoch (derived arch, supernet
                       accuracies, architecture weights, seconds)
    search/            Orbax checkpoints of the search state (a one-shot search: its
                       supernet, architecture parameters and optimiser states)
    checkpoints/       final train states, one folder per candidate
    tb/                TensorBoard event files, one folder per candidate
    .hydra/            the composed config and the overrides (written by Hydra)
    evaluator.json     a table run's evaluator, column and table version

Synopsis::

    from amla_jax import rundir
    rows = rundir.read_candidates(run_dir / rundir.CANDIDATES)
    rows[rundir.best_candidate(rows)]["metrics"]          # ids are 0.. in order

A whole run read back (config, rows, answer, times) is `amla_jax.run_record.read_run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from amla_jax.errors import UserError
from amla_jax.selection import best_index
from amla_jax.strict_json import dumps

CANDIDATES = "candidates.jsonl"
BEST_SPEC = "best_spec.json"
SPEC_FILE = "spec.json"
METRICS = "metrics.jsonl"
EPOCHS = "epochs.jsonl"  # a one-shot search's per-epoch rows
SEARCH_DIR = "search"
CHECKPOINTS_DIR = "checkpoints"
TB_DIR = "tb"
HYDRA_DIR = ".hydra"
EVALUATOR = "evaluator.json"  # a table run's evaluator, column and source
FAILED = "failed"  # a row's "status" when its candidate could not be evaluated


class RunDirError(UserError):
    """A run directory's files contradict each other; the message names the file."""


# --- files ----------------------------------------------------------------------------


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """The records of a JSON-lines file in file order; nothing if it does not exist.

    A line that is not a JSON object is skipped: a crash while appending leaves a
    half-written last line, and a later append may follow it on the same line (bytes that
    are not UTF-8, from a damaged file, make a line undecodable and so skipped too).
    """
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(record, dict):
                yield record


def read_jsonl(path: str | Path) -> list[dict]:
    """All records of a JSON-lines file (see `iter_jsonl`)."""
    return list(iter_jsonl(path))


def append_row(path: str | Path, row: dict) -> None:
    """Appends ``row`` as one strict-JSON line and forces it to disk before returning, so
    that a checkpoint saved afterwards never counts a row the file lost."""
    with open(path, "a") as f:
        f.write(dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it replaces ``path`` in one
    step, so a reader sees the old file or the new one, never half of it.

    Example::

        with replacing(run_dir / BEST_SPEC) as tmp:
            save_spec(spec, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see `replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(text)


# --- candidates -----------------------------------------------------------------------


def read_candidates(path: str | Path, completed: int | None = None) -> list[dict]:
    """The rows of a ``candidates.jsonl`` in id order: one per id (the first), ids below
    ``completed`` if given, half-written lines skipped."""
    rows: dict[int, dict] = {}
    for row in iter_jsonl(path):
        if not isinstance(row.get("id"), int) or isinstance(row["id"], bool):
            continue  # not a candidate row (a damaged or foreign file)
        if completed is None or row["id"] < completed:
            rows.setdefault(row["id"], row)
    return [rows[i] for i in sorted(rows)]


def write_candidates(path: str | Path, rows: Sequence[dict]) -> None:
    """Rewrites ``path`` (atomically) to hold exactly ``rows``, one strict-JSON line each
    (a half-written last line of a crash goes); unchanged files are not touched."""
    path = Path(path)
    text = "".join(dumps(row) + "\n" for row in rows)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)


def is_failed(row: dict) -> bool:
    """Whether a row records a failed candidate (``"status": "failed"``, with a
    ``reason``): it has no usable metrics and selection skips it."""
    return row.get("status") == FAILED


def candidate_run(candidate_id: int) -> str:
    """The name of candidate ``candidate_id``'s curve in ``metrics.jsonl`` and ``tb/``."""
    return f"candidate_{candidate_id}"


def prune_metrics(run_dir: str | Path, completed: int) -> None:
    """Drops the curves of candidates ``completed`` and later (a crashed run's partial
    ones) from ``metrics.jsonl`` and ``tb/``, so a resumed run shows each curve once."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if path.exists():
        records = read_jsonl(path)
        kept = [r for r in records if _candidate_of(r.get("run")) < completed]
        if len(kept) != len(path.read_text().splitlines()):
            write_text(path, "".join(dumps(r) + "\n" for r in kept))
    for folder in (run_dir / TB_DIR).glob("candidate_*"):
        if _candidate_of(folder.name) >= completed:
            shutil.rmtree(folder, ignore_errors=True)


def _candidate_of(run: Any) -> int:
    """The candidate id of a curve named `candidate_run`, or -1 for any other curve."""
    match = re.fullmatch(r"candidate_([0-9]+)", str(run), flags=re.ASCII)
    return int(match.group(1)) if match else -1


def best_candidate(rows: Sequence[dict]) -> int | None:
    """The id of the row with the best selection metric (earliest on ties), or None;
    failed rows are skipped."""
    ok = [r for r in rows if not is_failed(r)]
    index = best_index([r["metrics"] for r in ok])
    return None if index is None else ok[index]["id"]


def returned_candidate(rows: Sequence[dict], returned: Any) -> int | None:
    """The candidate that trained the network the search returns, or None if it trained
    none (NAC constructs its answer without training it; failed rows do not count).

    Args:
      rows: ``candidates.jsonl`` rows in id order.
      returned: the returned network (a `NetworkSpec`; rows are parsed with its class's
        ``from_json``), or None.

    Returns:
      The last such candidate's id: a network trained twice is judged by its last run.
    """
    if returned is None:
        return None
    parse = type(returned).from_json
    trained = [r["id"] for r in rows if not is_failed(r) and parse(r["spec"]) == returned]
    return trained[-1] if trained else None


def read_best_spec(run_dir: str | Path):
    """``best_spec.json`` as a `NetworkSpec`, or None if there is none yet.

    Raises:
      SpecError: the file is not a valid spec.
    """
    # The spec package is imported only when a run's answer is needed.
    from amla_jax.amla import load_spec  # noqa: PLC0415

    path = Path(run_dir) / BEST_SPEC
    return load_spec(path) if path.exists() else None


def read_epochs(run_dir: str | Path) -> list[dict]:
    """The rows of ``<run_dir>/epochs.jsonl`` (a one-shot search) in epoch order: one per
    epoch (the first), half-written lines skipped; empty for other runs."""
    rows: dict[int, dict] = {}
    for row in iter_jsonl(Path(run_dir) / EPOCHS):
        if isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool):
            rows.setdefault(row["epoch"], row)
    return [rows[e] for e in sorted(rows)]


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``<run_dir>/metrics.jsonl`` (half-written lines skipped)."""
    return read_jsonl(Path(run_dir) / METRICS)
