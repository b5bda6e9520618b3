"""End-to-end runs through the public entry point on real (digits) data; marked slow."""

from __future__ import annotations

import json

import pytest
from conftest import amla_config_paths
from test_cli import amla

pytestmark = pytest.mark.slow


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]


def test_amla_run_network_reaches_95_percent_on_digits(tmp_path):
    config = amla_config_paths()[0].parent / "config.run.json"
    proc = amla("algo=fixed", f"spec={config}", "train.steps=200", "train.progress=false",
                f"hydra.run.dir={tmp_path}", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = _rows(tmp_path)
    assert row["metrics"]["test/accuracy"] >= 0.95, row["metrics"]
    assert row["num_params"] > 20_000_000
    for name in (".hydra/config.yaml", "metrics.jsonl", "spec.json", "best_spec.json"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "candidate_0").is_dir()
    # Rerunning the finished run says so and trains nothing.
    again = amla("algo=fixed", f"spec={config}", "train.steps=200", "train.progress=false",
                 f"hydra.run.dir={tmp_path}", timeout=600)
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
    assert len(_rows(tmp_path)) == 1
