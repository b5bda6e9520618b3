"""End-to-end one-shot searches through ``python -m amla_jax`` on digits (slow): the run
directory a DARTS search writes, and kill -9 at three moments changing nothing."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, launch_through_kills

from amla_jax.oneshot.records import TIMINGS
from amla_jax.rundir import read_candidates, read_epochs

# A tiny NB201 supernet for 3 short epochs (20 steps each on digits' halves).
TINY = (
    "algo.options.epochs=3",
    "algo.options.supernet.channels=4",
    "algo.options.supernet.cells_per_stage=1",
)
# Where each launch dies ($AMLA_JAX_FAULT, see amla_jax.faults), in the order a run
# reaches them; the next launch resumes. What the directory holds after each kill:
KILL_MOMENTS = [
    "train:25",  # epoch 1's 5th step: row and checkpoint of epoch 0
    "row:1",  # right after epoch 1's row: no checkpoint for it
    "checkpoint:1",  # epoch 1 recomputed, checked against its row, killed while saving
]


def entry_point(run_dir, *extra):
    command = [sys.executable, "-m", "amla_jax", "algo=darts", "search_space=nb201"]
    return [*command, "dataset=digits", *TINY, *extra, f"hydra.run.dir={run_dir}"]


def without_timings(rows):
    return [{k: v for k, v in r.items() if k not in (*TIMINGS, "train_seconds")} for r in rows]


@pytest.mark.slow
def test_darts_on_nb201_writes_epoch_rows_and_survives_kill_9(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("AMLA_JAX_FAULT", None)
    reference = tmp_path / "reference"
    subprocess.run(entry_point(reference), cwd=tmp_path, env=env, check=True, timeout=1200)
    rows = read_epochs(reference)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert len(row["arch"]) == 6 and row["genotype"].startswith("|")
        assert {"train/loss", "train/accuracy", "supernet/validation/accuracy"} <= set(
            row["metrics"]
        )
        assert len(row["arch_weights"]["cell"]) == 6 and row["steps"] > 0
    assert rows[0]["compile_seconds"] > 0 and rows[0]["step_seconds"] > 0
    (candidate,) = read_candidates(reference / "candidates.jsonl")
    assert candidate["algorithm"] == "darts" and candidate["num_params"] > 0
    assert json.loads((reference / "spec.json").read_text())["arch"]["ops"]

    run_dir = tmp_path / "killed"
    logs, _ = launch_through_kills(entry_point(run_dir), tmp_path, env, KILL_MOMENTS)
    assert "resuming darts search" in logs[1] and "after 1 epochs" in logs[1]
    killed = read_epochs(run_dir)
    assert without_timings(killed) == without_timings(rows)  # genotypes and arch weights
    assert (run_dir / "best_spec.json").read_text() == (reference / "best_spec.json").read_text()
    assert without_timings(read_candidates(run_dir / "candidates.jsonl")) == without_timings(
        [candidate]
    )
    again = subprocess.run(
        entry_point(run_dir), cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert len(read_epochs(run_dir)) == 3 and "already finished" in again.stdout
