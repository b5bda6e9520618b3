"""The space-search comparison: per algorithm, the accuracy of the returned architecture.

One aggregation for both sources of a comparison of searches on the tabular evaluator:

* ``python -m amla_jax.compare``'s ``summary.json`` (`from_summary`, `read_summary`): every
  trial's best-so-far curve and returned arch, per algorithm;
* run directories of ``python -m amla_jax ... evaluator=tabular`` (`from_records`): each
  run is a trial, grouped by (algorithm, setting) as the runs table groups them.

A `SearchComparison` holds, per group, the trials' *curve* (best-so-far objective after
each query), the objective value of the architecture the search *returned* and that
arch's ``baseline_accuracy``; a group's mean ± std is over its trials (sample std, 0 for
one trial, as ``summary.json`` stores it). The plots are `amla_jax.plots.anytime`'s; the
text and the files are `amla_jax.report.search_write`'s. No JAX, no matplotlib.

A run is tabular when its rows carry the table's columns (``table/<column>``). What it
maximised is ``algo.options.objective`` if that names one column, else the evaluator's
column (``evaluator.column``); runs of different objectives are separate comparisons.
The returned architecture is ``best_spec.json``'s candidate (an unfinished run: its best
so far), its value read from its row.

Synopsis::

    from amla_jax.report.searches import from_records, read_summary
    comparison = read_summary("experiments/nb201_compare/analog")   # or a summary.json
    (comparison,) = from_records(collect(["multirun/x"]))  # one per objective; () if none
    comparison.groups[0].mean, comparison.groups[0].std, comparison.to_markdown()
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from amla_jax.report.runs import ReportError
from amla_jax.report.table import compare
from amla_jax.run_record import RunRecord

SUMMARY = "summary.json"
BASELINE = "baseline_accuracy"
_TABLE = "table/"  # the tabular evaluator's rows carry every column as table/<column>
_DEFAULT_OBJECTIVE = "validation/accuracy"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for one value) of ``values``."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class Trial:
    """One search: its best-so-far objective per query and what it returned."""

    seed: int | None
    curve: tuple[float, ...]
    accuracy: float  # the objective column of the returned arch
    baseline_accuracy: float | None
    arch_string: str | None = None


@dataclasses.dataclass(frozen=True)
class SearchGroup:
    """One algorithm's (and setting's) trials; ``seconds``: their total time, if known."""

    name: str
    trials: tuple[Trial, ...]
    seconds: float | None = None

    @property
    def mean(self) -> float:
        return mean_std([t.accuracy for t in self.trials])[0]

    @property
    def std(self) -> float:
        return mean_std([t.accuracy for t in self.trials])[1]

    @property
    def baseline(self) -> tuple[float, float] | None:
        values = [t.baseline_accuracy for t in self.trials]
        return None if None in values else mean_std(values)


@dataclasses.dataclass(frozen=True)
class SearchComparison:
    """The groups, the objective (a table column) and where the numbers came from.

    ``command`` and ``wall_seconds`` are the comparison's own (``python -m
    amla_jax.compare``), None for run directories.
    """

    objective: str
    source: str
    groups: tuple[SearchGroup, ...]
    command: str | None = None
    wall_seconds: float | None = None

    @property
    def queries(self) -> int:
        return max(len(t.curve) for g in self.groups for t in g.trials)

    @property
    def seeds(self) -> int:
        return max(len(g.trials) for g in self.groups)

    @property
    def has_scatter(self) -> bool:
        """A baseline-vs-objective scatter says something (the objective is not baseline)."""
        return self.objective != BASELINE and all(g.baseline for g in self.groups)

    def to_markdown(self) -> str:
        """The table: mean ± std (percent) of the returned arch's objective per group."""
        scatter = self.has_scatter
        header = ["algorithm", "runs", f"returned arch `{self.objective}` % (mean ± std)"]
        header += [f"its `{BASELINE}` %"] if scatter else []
        header += ["best", "worst", "seconds"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for g in self.groups:
            finals = [100 * t.accuracy for t in g.trials]
            cells = [g.name, str(len(g.trials)), _pm(g.mean, g.std, len(g.trials))]
            if scatter:
                cells.append(_pm(*g.baseline, len(g.trials)))
            seconds = "–" if g.seconds is None else f"{g.seconds:.1f}"
            cells += [f"{max(finals):.2f}", f"{min(finals):.2f}", seconds]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _pm(mean: float, std: float, n: int) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f}"


# ----------------------------------------------------------------- summary.json


def summary_path(path: str | Path) -> Path | None:
    """``path``'s ``summary.json`` if ``path`` is one or a folder holding one, else None."""
    path = Path(path)
    if path.is_file() and path.name == SUMMARY:
        return path
    return path / SUMMARY if (path / SUMMARY).is_file() else None


def read_summary(path: str | Path) -> SearchComparison:
    """``python -m amla_jax.compare``'s ``summary.json`` (or its folder) as a comparison.

    Raises:
      ReportError: no summary there, or it is not JSON of the comparison's shape.
    """
    found = summary_path(path)
    if found is None:
        raise ReportError(f"{path}: no {SUMMARY} (python -m amla_jax.compare --out writes it)")
    try:
        return from_summary(json.loads(found.read_text()))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ReportError(
            f"{found}: not a comparison summary of python -m amla_jax.compare "
            f"({type(exc).__name__}: {exc}); point amla report at its --out folder"
        ) from None


def from_summary(summary: dict) -> SearchComparison:
    """The comparison in ``summary`` (the dict ``python -m amla_jax.compare`` writes).

    Raises:
      KeyError, TypeError, ValueError: ``summary`` is not of that shape.
    """
    groups = []
    for name, entry in summary["algorithms"].items():
        trials = tuple(
            Trial(
                seed=t.get("seed"),
                curve=tuple(float(v) for v in t["curve"]),
                accuracy=float(t["accuracy"]),
                baseline_accuracy=float(t["baseline_accuracy"]),
                arch_string=t.get("arch_string"),
            )
            for t in entry["trials"]
        )
        if not trials or not all(t.curve for t in trials):
            raise ValueError(f"algorithm {name!r} has no trials or an empty curve")
        seconds = entry.get("seconds")
        groups.append(SearchGroup(str(name), trials, None if seconds is None else float(seconds)))
    if not groups:
        raise ValueError("no algorithms")
    return SearchComparison(
        objective=str(summary["objective"]),
        source=str(summary["source"]),
        groups=tuple(groups),
        command=summary.get("command"),
        wall_seconds=summary.get("wall_seconds"),
    )


# ----------------------------------------------------------------- run directories


def is_tabular(record: RunRecord) -> bool:
    """The run's candidates were answered from the table (rows carry ``table/*``)."""
    return any(k.startswith(_TABLE) for k in record.rows[0].get("metrics", {}))


def objective_of(record: RunRecord) -> tuple[str, str]:
    """(column, metric key) a tabular run maximised.

    ``algo.options.objective`` when it names one table column (``analog_accuracy`` or
    ``table/analog_accuracy``), else the evaluator's column (what ``validation/accuracy``
    answers). A combination (``a - 0.5*b``) is shown as the evaluator's column, which is
    what its rows' validation accuracy holds.
    """
    options = record.config.get("algo", {}).get("options") or {}
    column = str(options.get("objective") or _DEFAULT_OBJECTIVE).strip().removeprefix(_TABLE)
    metrics = record.rows[0].get("metrics", {})
    if _TABLE + column not in metrics:
        column = _evaluator_column(record)
    return column, _TABLE + column if _TABLE + column in metrics else _DEFAULT_OBJECTIVE


def _evaluator_column(record: RunRecord) -> str:
    column = (record.config.get("evaluator") or {}).get("column")
    if column:
        return str(column)
    # Without .hydra/config.yaml: the rows' source ends in the column.
    return str(record.rows[0].get("source", "table:?:validation/accuracy")).rsplit(":", 1)[-1]


def run_trial(record: RunRecord, metric: str) -> Trial:
    """A tabular run as a trial: best-so-far ``metric`` per candidate; the returned arch
    is ``best_spec.json``'s candidate, or (unfinished run) the best one so far."""
    values = np.array([r.get("metrics", {}).get(metric, np.nan) for r in record.rows], float)
    curve = np.fmax.accumulate(values)
    if record.returned_id is not None:
        row = record.row(record.returned_id)
    else:
        row = record.rows[int(np.nanargmax(values))]
    return Trial(
        seed=record.seed,
        curve=tuple(float(v) for v in curve),
        accuracy=float(row["metrics"][metric]),
        baseline_accuracy=row["metrics"].get(_TABLE + BASELINE),
        arch_string=row.get("spec", {}).get("name"),
    )


def from_records(records: Sequence[RunRecord]) -> tuple[SearchComparison, ...]:
    """The tabular runs among ``records`` compared: one comparison per objective they
    maximised (sorted by column), none without tabular runs.

    Grouped by (algorithm, setting) as `amla_jax.report.compare` groups them; a group is
    named by its algorithm and the setting its groups do not share.
    """
    by_objective: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if is_tabular(record):
            by_objective.setdefault(objective_of(record), []).append(record)
    return tuple(_comparison(c, m, runs) for (c, m), runs in sorted(by_objective.items()))


def _comparison(column: str, metric: str, runs: Sequence[RunRecord]) -> SearchComparison:
    table = compare(runs, ())
    shared = set(table.shared_setting())
    groups = []
    for group in table.groups:
        label = " ".join([group.algorithm, *(s for s in group.setting if s not in shared)])
        seconds = [r.wall_seconds for r in group.records]
        total = None if None in seconds else float(sum(seconds))
        trials = tuple(run_trial(r, metric) for r in group.records)
        groups.append(SearchGroup(label, trials, total))
    sources = sorted({str(r.rows[0].get("source", "table")) for r in runs})
    return SearchComparison(column, ", ".join(sources), tuple(groups))
