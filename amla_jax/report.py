"""Compare finished searches: read run directories, aggregate over seeds, write a report.

A run directory is one that holds ``candidates.jsonl``; its ``.hydra/config.yaml``
(written by the entry point) gives the algorithm, seed and dataset, and
``.hydra/overrides.yaml`` the *setting*: the command-line overrides other than ``seed``,
``algo`` and ``hydra.*``. Runs are grouped by (algorithm, setting) and every column is
the mean ± sample standard deviation over the group's runs (seeds).

Which network a run is judged by: the *selected candidate* is the trained candidate with
the best validation accuracy (`amla_jax.search.best_candidate`, the same rule for every
algorithm; the test split is never used to choose). That is also what ``random``
returns. NAC returns ``arch_{iterations}`` (``best_spec.json``), which it constructs but
does not train, so its accuracy is unknown; the *final net* columns give the network the
search returns if it trained it, else the last network it trained.

Synopsis::

    from amla_jax.report import collect, compare, write_report
    records = collect(["multirun/2026-01-01/12-00-00"])   # sweep roots or run dirs
    print(compare(records).to_markdown())
    write_report(["multirun/2026-01-01/12-00-00"], "report/")  # report.md + PNGs

    python -m amla_jax.report multirun/2026-01-01/12-00-00 --out report   # or: amla report
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from amla_jax.rundir import BEST_SPEC, CANDIDATES, best_candidate, read_candidates

USAGE_EXIT = 2
HIDDEN_OVERRIDES = ("seed", "algo", "run_dir", "hydra")


class ReportError(ValueError):
    """Bad input to the report (a missing path, no runs); the message is one line."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run directory, read back.

    Attributes:
      run_dir: the run directory.
      algorithm: ``algo.name`` (or the rows' ``algorithm`` without a Hydra config).
      seed: the run's seed, or None if unknown.
      dataset: ``dataset.name``, or None if unknown.
      setting: the overrides that define the experiment, sorted ("key=value").
      rows: the ``candidates.jsonl`` rows in id order.
      best_id: the selected candidate (best validation accuracy).
      returned_id: the last candidate that trained ``best_spec.json``'s network, or None
        (not trained, as NAC's constructed answer, or no ``best_spec.json`` yet).
      finished: ``best_spec.json`` exists (the search ran to its end).
      wall_seconds: from the run's first launch to the last write of ``candidates.jsonl``
        (file times; pauses between launches of a resumed run included); None if unknown.
      config: the composed config as plain data ({} without ``.hydra/config.yaml``).
    """

    run_dir: Path
    algorithm: str
    seed: int | None
    dataset: str | None
    setting: tuple[str, ...]
    rows: tuple[dict, ...]
    best_id: int | None
    returned_id: int | None
    finished: bool
    wall_seconds: float | None
    config: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def row(self, candidate_id: int) -> dict:
        """The ``candidates.jsonl`` row of candidate ``candidate_id``."""
        return next(r for r in self.rows if r["id"] == candidate_id)

    @property
    def best_row(self) -> dict:
        """The selected candidate's row (best validation accuracy)."""
        return self.row(self.best_id)

    @property
    def final_row(self) -> dict:
        """The returned network's row if it was trained, else the last trained network's."""
        return self.row(self.returned_id) if self.returned_id is not None else self.rows[-1]

    @property
    def test_accuracy(self) -> float | None:
        return self.best_row["metrics"].get("test/accuracy")

    @property
    def validation_accuracy(self) -> float | None:
        return self.best_row["metrics"].get("validation/accuracy")

    @property
    def num_params(self) -> int:
        return self.best_row["num_params"]

    @property
    def flops(self) -> float | None:
        return self.best_row.get("flops")

    @property
    def final_test_accuracy(self) -> float | None:
        return self.final_row["metrics"].get("test/accuracy")

    @property
    def final_num_params(self) -> int:
        return self.final_row["num_params"]

    @property
    def num_candidates(self) -> int:
        return len(self.rows)

    @property
    def search_seconds(self) -> float:
        """Train + compile seconds summed over the candidates."""
        return sum(row["train_seconds"] + row["compile_seconds"] for row in self.rows)

    def best_spec(self):
        """The network the search returned (``best_spec.json``) as a `NetworkSpec`, or None."""
        from amla_jax.spec import load_spec  # noqa: PLC0415

        path = self.run_dir / BEST_SPEC
        return load_spec(path) if path.exists() else None

    @functools.cached_property
    def returned_params(self) -> int | None:
        """Parameters of ``best_spec.json``'s network; counted (shapes only) when the search
        did not train it, which needs the dataset's image shape."""
        if self.returned_id is not None:
            return int(self.row(self.returned_id)["num_params"])
        spec = self.best_spec()
        if spec is None or "dataset" not in self.config:
            return None
        from amla_jax.data import DataConfig, load_dataset  # noqa: PLC0415
        from amla_jax.model import count_params  # noqa: PLC0415

        info = load_dataset(DataConfig(**self.config["dataset"])).info
        return count_params(spec, info.image_shape, info.num_classes)


# --- reading runs ---------------------------------------------------------------------


def find_run_dirs(path: str | Path) -> list[Path]:
    """``path`` itself if it is a run directory, plus every run directory below it."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    found = {p.parent for p in path.rglob(CANDIDATES)}
    if (path / CANDIDATES).exists():
        found.add(path)
    return sorted(d for d in found if ".submitit" not in d.parts)


def _setting(overrides: Sequence[str]) -> tuple[str, ...]:
    """The overrides minus seed, algo, run_dir and hydra.* (the run's identity, not its
    experiment)."""
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("/")[0] in HIDDEN_OVERRIDES and not key.startswith("algo."):
            continue
        kept.append(override)
    return tuple(sorted(kept))


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _wall_seconds(run_dir: Path, rows: Sequence[dict]) -> float | None:
    """From the run's start to the last write of ``candidates.jsonl``.

    The start is the earlier of ``.hydra/config.yaml``'s time (rewritten by every launch)
    and the first ``metrics.jsonl`` record minus the first candidate's seconds (kept
    across launches), so a relaunched or resumed run still counts from its first launch.
    """
    starts = []
    config = run_dir / ".hydra" / "config.yaml"
    if config.exists():
        starts.append(config.stat().st_mtime)
    first = _first_metrics_time(run_dir / "metrics.jsonl")
    if first is not None:
        starts.append(first - rows[0]["train_seconds"] - rows[0]["compile_seconds"])
    if not starts:
        return None
    seconds = (run_dir / CANDIDATES).stat().st_mtime - min(starts)
    return seconds if seconds > 0 else None


def _first_metrics_time(path: Path) -> float | None:
    if not path.exists():
        return None
    with open(path) as f:
        for line in f:
            try:
                return float(json.loads(line)["time"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return None


def _returned_id(run_dir: Path, rows: Sequence[dict]) -> int | None:
    from amla_jax.spec import NetworkSpec, SpecError, load_spec  # noqa: PLC0415

    try:
        returned = load_spec(run_dir / BEST_SPEC)
    except SpecError:
        return None
    trained = [r["id"] for r in rows if NetworkSpec.from_json(r["spec"]) == returned]
    return trained[-1] if trained else None


def read_run(run_dir: str | Path) -> RunRecord | None:
    """One run directory as a `RunRecord`, or None if it has no completed candidate."""
    run_dir = Path(run_dir)
    rows = read_candidates(run_dir / CANDIDATES)
    if not rows:
        return None
    config = _load_yaml(run_dir / ".hydra" / "config.yaml") or {}
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml") or []
    seed = config.get("seed")
    return RunRecord(
        run_dir=run_dir,
        algorithm=str(config.get("algo", {}).get("name") or rows[0].get("algorithm", "?")),
        seed=None if seed is None else int(seed),
        dataset=config.get("dataset", {}).get("name"),
        setting=_setting(overrides),
        rows=tuple(rows),
        best_id=best_candidate(rows),
        returned_id=_returned_id(run_dir, rows),
        finished=(run_dir / BEST_SPEC).exists(),
        wall_seconds=_wall_seconds(run_dir, rows),
        config=config,
    )


def collect(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Every run under ``paths`` (run directories or multirun sweep roots), by directory.

    Raises:
      ReportError: a path does not exist, or no run with a completed candidate is found.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    run_dirs = sorted({d for path in paths for d in find_run_dirs(path)})
    records = [r for r in map(read_run, run_dirs) if r is not None]
    if not records:
        where = ", ".join(str(p) for p in paths)
        raise ReportError(f"no runs (a candidates.jsonl with a completed candidate) under {where}")
    return records


# --- aggregation ----------------------------------------------------------------------


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
# Keyed by the `RunRecord` attribute that gives the value.
COLUMNS: dict[str, Column] = {
    name: dataclasses.replace(column, value=name)
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


# --- the report -----------------------------------------------------------------------


def _slug(record: RunRecord, root: Path) -> str:
    name = str(record.run_dir.resolve().relative_to(root))
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "run"


def _common_root(records: Sequence[RunRecord]) -> Path:
    """The deepest folder holding every run (a lone run's parent)."""
    dirs = [str(r.run_dir.resolve()) for r in records]
    return Path(os.path.commonpath(dirs)) if len(dirs) > 1 else Path(dirs[0]).parent


def runs_markdown(records: Sequence[RunRecord], root: Path) -> str:
    """One line per run: where it is, its selected candidate and what it returned."""
    lines = [
        "| run | algorithm | seed | candidates | selected (best val) | test acc % "
        "| returned (best_spec.json) | search s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        where = r.run_dir.resolve().relative_to(root)
        if not r.finished:
            returned = "unfinished"
        elif r.returned_id is None:
            returned = "constructed, not trained"
        else:
            returned = f"candidate {r.returned_id}"
        acc = "–" if r.test_accuracy is None else f"{100 * r.test_accuracy:.1f}"
        lines.append(
            f"| `{where}` | {r.algorithm} | {r.seed} | {len(r.rows)} | {r.best_id} "
            f"| {acc} | {returned} | {r.search_seconds:,.0f} |"
        )
    return "\n".join(lines)


def write_plots(records: Sequence[RunRecord], out_dir: str | Path) -> dict[str, list[Path]]:
    """The report's PNGs in ``out_dir``: accuracy vs time, progress, one network per run."""
    from amla_jax import plots  # noqa: PLC0415 (matplotlib only when plotting)

    out_dir = Path(out_dir)
    root = _common_root(records)
    written = {
        "accuracy": [
            plots.save_figure(
                plots.plot_accuracy_vs_time(records), out_dir / "accuracy_vs_time.png"
            )
        ],
        "progress": [
            plots.save_figure(plots.plot_search_progress(records), out_dir / "search_progress.png")
        ],
        "networks": [],
    }
    for record in records:
        spec = record.best_spec()
        if spec is None:
            spec, what = _spec_of(record.best_row), f"unfinished, best so far: {record.best_id}"
        elif record.returned_id is None:
            what = "best_spec.json, constructed, not trained"
        else:
            what = f"best_spec.json = candidate {record.returned_id}"
        figure = plots.draw_network(spec, f"{record.algorithm}, seed {record.seed}: {what}")
        path = out_dir / "networks" / f"{_slug(record, root)}.png"
        written["networks"].append(plots.save_figure(figure, path))
    return written


def _spec_of(row: dict):
    from amla_jax.spec import NetworkSpec  # noqa: PLC0415

    return NetworkSpec.from_json(row["spec"])


def report_markdown(
    comparison: Comparison,
    records: Sequence[RunRecord],
    images: dict[str, list[Path]],
    out_dir: Path,
) -> str:
    """The text of ``report.md``: the table, what the columns mean, the runs, the plots."""
    root = _common_root(records)
    shared = comparison.shared_setting()
    datasets = sorted({r.dataset or "?" for r in records})
    lines = [
        "# Search report",
        "",
        f"{len(records)} runs under `{root}`; dataset: {', '.join(datasets)}.",
        "Settings shared by all runs: "
        + (" ".join(f"`{s}`" for s in shared) if shared else "none")
        + ".",
        "",
        comparison.to_markdown(),
        "",
        "Mean ± sample standard deviation over the runs (seeds) of each row; (n=k): only k"
        " runs had the value. The *selected candidate* of a run is the network it trained"
        " with the best validation accuracy (the same rule for every algorithm; the test"
        " split never chooses). NAC returns a network it constructs but does not train"
        " (`best_spec.json`), so its accuracy is unknown; *final net* is the returned"
        " network if trained, else the last network the search trained.",
        "",
    ]
    lines += [f"- **{c.label}**: {c.help}" for _, c in comparison.columns if c.help]
    lines += ["", "## Runs", "", runs_markdown(records, root), "", "## Plots", ""]
    for key in ("accuracy", "progress"):
        for path in images.get(key, []):
            lines.append(f"![{path.stem}]({path.relative_to(out_dir).as_posix()})")
            lines.append("")
    if images.get("networks"):
        lines += ["### Networks returned (best_spec.json)", ""]
        for path in images["networks"]:
            rel = path.relative_to(out_dir).as_posix()
            lines.append(f"- [{path.stem}]({rel})")
    return "\n".join(lines) + "\n"


def write_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    plots: bool = True,
) -> Path:
    """Writes ``out_dir/report.md`` (table, runs, plot links) and its PNGs.

    Args:
      paths: run directories or multirun sweep roots (searched recursively).
      out_dir: the report folder (created).
      columns: the table's columns (names in `COLUMNS`).
      plots: also draw the PNGs.

    Returns:
      The path of ``report.md``.

    Raises:
      ReportError: no runs under ``paths`` (or a path is missing).
    """
    records = collect(paths)
    return _write(records, compare(records, columns), Path(out_dir), plots)


def _write(
    records: Sequence[RunRecord], comparison: Comparison, out_dir: Path, plots: bool
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(records, out_dir) if plots else {}
    path = out_dir / "report.md"
    path.write_text(report_markdown(comparison, records, images, out_dir))
    return path


# --- command line ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as the entry point does
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amla report",
        description="Compare finished searches: a Markdown table (mean ± std over seeds per "
        "algorithm and setting) and plots. Also: python -m amla_jax.report.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or multirun roots")
    parser.add_argument(
        "--out", type=Path, help="where report.md and the PNGs go (default: <first path>/report)"
    )
    parser.add_argument(
        "--columns",
        default=",".join(DEFAULT_COLUMNS),
        help=f"comma-separated columns from: {', '.join(COLUMNS)}",
    )
    parser.add_argument("--no-plots", action="store_true", help="write report.md only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``amla report PATHS... [--out DIR]``: prints the table, writes the report.

    Returns:
      0 on success; 2 (with one ``error:`` line on stderr) for bad input.
    """
    args = _parser().parse_args(argv)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    out_dir = args.out or args.paths[0] / "report"
    try:
        records = collect(args.paths)
        comparison = compare(records, columns)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    path = _write(records, comparison, out_dir, plots=not args.no_plots)
    print(comparison.to_markdown())
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
