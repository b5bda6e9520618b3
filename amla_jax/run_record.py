"""A whole run read back: its config, rows, answer and times, as one `RunRecord`.

The report compares runs through this, and the task CLI shows progress with it; the
files themselves are read through `amla_jax.rundir`. No JAX.

Synopsis::

    from amla_jax.run_record import read_run
    record = read_run(run_dir)                      # RunRecord, or None: no rows yet
    record.best_id, record.returned_id, record.wall_seconds
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amla_jax.rundir import (
    BEST_SPEC,
    CANDIDATES,
    HYDRA_DIR,
    METRICS,
    best_candidate,
    is_failed,
    iter_jsonl,
    read_best_spec,
    read_candidates,
    returned_candidate,
)

# Overrides that name a run (its seed, algorithm, output folder), not its experiment;
# ``algo.*`` options do define the experiment and are kept.
HIDDEN_OVERRIDES = ("seed", "algo", "run_dir", "hydra")


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
        """The returned network's row if it was trained, else the last trained network's
        (failed rows skipped)."""
        if self.returned_id is not None:
            return self.row(self.returned_id)
        return next((r for r in reversed(self.rows) if not is_failed(r)), self.rows[-1])

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
        """Candidates trained (failed ones are not counted, see `num_failed`)."""
        return len(self.rows) - self.num_failed

    @property
    def num_failed(self) -> int:
        return sum(map(is_failed, self.rows))

    @property
    def search_seconds(self) -> float:
        """Train + compile seconds summed over the candidates."""
        return sum(row["train_seconds"] + row["compile_seconds"] for row in self.rows)

    def best_spec(self):
        """The network the search returned (``best_spec.json``) as a `NetworkSpec`, or None."""
        return read_best_spec(self.run_dir)


def setting_of(overrides: Sequence[str]) -> tuple[str, ...]:
    """The overrides minus seed, algo, run_dir and hydra.* (the run's identity, not its
    experiment), sorted."""
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("/")[0] in HIDDEN_OVERRIDES and not key.startswith("algo."):
            continue
        kept.append(override)
    return tuple(sorted(kept))


def _load_yaml(path: Path) -> Any:
    import yaml  # noqa: PLC0415 (only a whole run needs it; task status does not)

    return yaml.safe_load(path.read_text()) if path.exists() else None


def _wall_seconds(run_dir: Path, rows: Sequence[dict]) -> float | None:
    """From the run's start to the last write of ``candidates.jsonl``.

    The start is the earlier of ``.hydra/config.yaml``'s time (rewritten by every launch)
    and the first ``metrics.jsonl`` record minus the first candidate's seconds (kept
    across launches), so a relaunched or resumed run still counts from its first launch.
    """
    starts = []
    config = run_dir / HYDRA_DIR / "config.yaml"
    if config.exists():
        starts.append(config.stat().st_mtime)
    first = _first_metrics_time(run_dir)
    if first is not None:
        starts.append(first - rows[0]["train_seconds"] - rows[0]["compile_seconds"])
    if not starts:
        return None
    seconds = (run_dir / CANDIDATES).stat().st_mtime - min(starts)
    return seconds if seconds > 0 else None


def _first_metrics_time(run_dir: Path) -> float | None:
    """The time of the first ``metrics.jsonl`` record that has one (the file is long;
    only its head is read)."""
    for record in iter_jsonl(run_dir / METRICS):
        try:
            return float(record["time"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _returned_id(run_dir: Path, rows: Sequence[dict]) -> int | None:
    """`returned_candidate` of ``best_spec.json``; None if it is missing or unreadable."""
    from amla_jax.spec import SpecError  # noqa: PLC0415

    try:
        return returned_candidate(rows, read_best_spec(run_dir))
    except SpecError:
        return None


def read_run(run_dir: str | Path) -> RunRecord | None:
    """One run directory as a `RunRecord`, or None if it has no completed candidate."""
    run_dir = Path(run_dir)
    rows = read_candidates(run_dir / CANDIDATES)
    if not rows:
        return None
    config = _load_yaml(run_dir / HYDRA_DIR / "config.yaml") or {}
    overrides = _load_yaml(run_dir / HYDRA_DIR / "overrides.yaml") or []
    seed = config.get("seed")
    return RunRecord(
        run_dir=run_dir,
        algorithm=str(config.get("algo", {}).get("name") or rows[0].get("algorithm", "?")),
        seed=None if seed is None else int(seed),
        dataset=config.get("dataset", {}).get("name"),
        setting=setting_of(overrides),
        rows=tuple(rows),
        best_id=best_candidate(rows),
        returned_id=_returned_id(run_dir, rows),
        finished=(run_dir / BEST_SPEC).exists(),
        wall_seconds=_wall_seconds(run_dir, rows),
        config=config,
    )
