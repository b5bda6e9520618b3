"""The comparison table: runs grouped by (algorithm, setting), mean ± std over seeds.

Runs are grouped by (algorithm, setting), the setting being the command-line overrides
other than ``seed``, ``algo`` and ``hydra.*``; every column is the mean ± sample standard
deviation over the group's runs (seeds). A column reads one number per run from a
`amla_jax.run_record.RunRecord`: by default the *selected candidate* (best validation
accuracy, the same rule for every algorithm; the test split never chooses), and the
*final net* (the returned network if the search trained it, else the last one trained).

Synopsis::

    from amla_jax.report import collect, compare
    table = compare(collect(["multirun/2026-01-01/12-00-00"]), ["test_accuracy", "num_params"])
    print(table.to_markdown())
    table.groups[0].stats["test_accuracy"].mean
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence

from amla_jax.report.runs import ReportError
from amla_jax.run_record import RunRecord


def returned_params(record: RunRecord) -> int | None:
    """Parameters of ``best_spec.json``'s network; counted (shapes only) when the search
    did not train it, which needs the dataset's image shape; None without either."""
    if record.returned_id is not None:
        return int(record.row(record.returned_id)["num_params"])
    spec = record.best_spec()
    if spec is None or "dataset" not in record.config:
        return None
    # Counting builds the network: JAX is imported only for this column.
    from amla_jax.data import DataConfig, load_dataset  # noqa: PLC0415
    from amla_jax.nn import count_params  # noqa: PLC0415

    info = load_dataset(DataConfig(**record.config["dataset"])).info
    return count_params(spec, info.image_shape, info.num_classes)


@dataclasses.dataclass(frozen=True)
class Column:
    """A number per run, shown as ``scale * value`` with ``fmt``.

    Attributes:
      label: the table header.
      fmt: a format spec (``".1f"``).
      scale: multiplies the value (100 for percentages).
      help: what the number is, for the report's legend.
      value: a `RunRecord` attribute name, or ``value(record) -> float | None``.
    """

    label: str
    fmt: str
    scale: float = 1.0
    help: str = ""
    value: str | Callable[[RunRecord], float | None] = ""

    def of(self, record: RunRecord) -> float | None:
        return self.value(record) if callable(self.value) else getattr(record, self.value)


_SELECTED = "the selected candidate"
# Keyed by the `RunRecord` attribute that gives the value, where one does.
COLUMNS: dict[str, Column] = {
    name: column if column.value else dataclasses.replace(column, value=name)
    for name, column in {
        "test_accuracy": Column("test acc %", ".1f", 100, f"test accuracy of {_SELECTED}"),
        "validation_accuracy": Column("val acc %", ".1f", 100, f"validation accuracy of {_SELECTED}"),
        "num_params": Column("params", ",.0f", 1, f"parameters of {_SELECTED}"),
        "flops": Column("MFLOPs", ",.2f", 1e-6, f"forward FLOPs of one image, {_SELECTED}"),
        "final_test_accuracy": Column(
            "final net test acc %", ".1f", 100,
            "the returned network if the search trained it, else the last trained network",
        ),
        "final_num_params": Column("final net params", ",.0f", 1, "parameters of the final net"),
        "returned_params": Column(
            "best_spec.json params", ",.0f", 1,
            "the network the search returns (NAC: constructed, not trained)",
            returned_params,
        ),
        "num_candidates": Column("candidates", ".0f", 1, "networks trained per run"),
        "search_seconds": Column(
            "search s", ",.0f", 1,
            "train + compile seconds of all candidates (compiles found in the cache are cheap)",
        ),
        "wall_seconds": Column(
            "wall s", ",.0f", 1,
            "wall-clock seconds from the run's start to its last candidate (file times)",
        ),
    }.items()
}  # fmt: skip
DEFAULT_COLUMNS = (
    "test_accuracy",
    "validation_accuracy",
    "num_params",
    "flops",
    "final_test_accuracy",
    "search_seconds",
    "wall_seconds",
)


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (NaN for one value) of ``n`` values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None], scale: float = 1.0) -> Stat | None:
        known = [scale * float(v) for v in values if v is not None and not math.isnan(v)]
        if not known:
            return None
        std = statistics.stdev(known) if len(known) > 1 else math.nan
        return cls(statistics.fmean(known), std, len(known))

    def format(self, fmt: str, runs: int) -> str:
        text = format(self.mean, fmt)
        if self.n > 1:
            text += f" ± {format(self.std, fmt)}"
        return text + (f" (n={self.n})" if self.n != runs else "")


@dataclasses.dataclass(frozen=True)
class Group:
    """The runs of one (algorithm, setting) and their column statistics."""

    algorithm: str
    setting: tuple[str, ...]
    records: tuple[RunRecord, ...]
    stats: dict[str, Stat | None]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.records]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """`compare`'s table: one `Group` per (algorithm, setting), sorted by name."""

    columns: tuple[tuple[str, Column], ...]
    groups: tuple[Group, ...]

    def shared_setting(self) -> tuple[str, ...]:
        """Overrides common to every group (shown once instead of on every row)."""
        settings = [set(g.setting) for g in self.groups]
        return tuple(sorted(set.intersection(*settings))) if settings else ()

    def to_markdown(self) -> str:
        """A GitHub Markdown table: algorithm, setting (minus shared), runs, columns."""
        shared = set(self.shared_setting())
        header = ["algorithm", "setting", "runs (seeds)", *(c.label for _, c in self.columns)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for group in self.groups:
            setting = " ".join(f"`{s}`" for s in group.setting if s not in shared) or "–"
            seeds = ",".join("?" if s is None else str(s) for s in group.seeds)
            cells = [group.algorithm, setting, f"{len(group.records)} ({seeds})"]
            for name, column in self.columns:
                stat = group.stats[name]
                cells.append("–" if stat is None else stat.format(column.fmt, len(group.records)))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare(
    records: Sequence[RunRecord], columns: Sequence[str | tuple[str, Column]] = DEFAULT_COLUMNS
) -> Comparison:
    """Groups ``records`` by (algorithm, setting); mean ± std over seeds per column.

    Args:
      records: runs from `collect`.
      columns: names in `COLUMNS`, or ``(name, Column)`` pairs for custom columns.
    """
    resolved = tuple(c if isinstance(c, tuple) else (c, _column(c)) for c in columns)
    grouped: dict[tuple[str, tuple[str, ...]], list[RunRecord]] = {}
    for record in records:
        grouped.setdefault((record.algorithm, record.setting), []).append(record)
    groups = []
    for (algorithm, setting), runs in sorted(grouped.items()):
        runs = sorted(runs, key=lambda r: (r.seed is None, r.seed or 0, str(r.run_dir)))
        stats = {
            name: Stat.of([column.of(r) for r in runs], column.scale) for name, column in resolved
        }
        groups.append(Group(algorithm, setting, tuple(runs), stats))
    return Comparison(resolved, tuple(groups))


def _column(name: str) -> Column:
    if name not in COLUMNS:
        raise ReportError(f"unknown column {name!r}; valid: {', '.join(COLUMNS)}")
    return COLUMNS[name]
