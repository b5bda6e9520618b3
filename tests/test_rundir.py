"""Tests for amla_jax.rundir: the JSON-lines rows, atomic writes, the answer rules."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_NETWORK

from amla_jax.run_record import read_run, setting_of
from amla_jax.rundir import (
    CANDIDATES,
    append_row,
    best_candidate,
    prune_metrics,
    read_candidates,
    read_jsonl,
    read_metrics,
    replacing,
    returned_candidate,
    write_candidates,
    write_text,
)
from amla_jax.selection import best_index
from amla_jax.spec import NetworkSpec


def row(candidate_id: int, val: float, spec: dict | None = None) -> dict:
    return {"id": candidate_id, "metrics": {"validation/accuracy": val}, "spec": spec}


def test_half_written_lines_are_skipped_wherever_they_are(tmp_path):
    path = tmp_path / "metrics.jsonl"
    # A crash mid-append, then a resumed run appending after the broken line.
    path.write_text('{"step": 1}\n{"step": 2, "lo' + '{"step": 3}\n{"step": 4, "l')
    assert read_jsonl(path) == [{"step": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_read_candidates_keeps_the_first_row_per_id_in_id_order(tmp_path):
    path = tmp_path / CANDIDATES
    for r in (row(1, 0.5), row(0, 0.4), row(1, 0.9)):
        append_row(path, r)
    assert [r["metrics"]["validation/accuracy"] for r in read_candidates(path)] == [0.4, 0.5]
    assert [r["id"] for r in read_candidates(path, completed=1)] == [0]


def test_write_candidates_rewrites_rows_as_strict_json(tmp_path):
    path = tmp_path / CANDIDATES
    path.write_text("".join(json.dumps(row(i, 0.1 * i)) + "\n" for i in range(3)) + '{"id": 3')
    rows = read_candidates(path)
    assert [r["id"] for r in rows] == [0, 1, 2]  # the half-written line is skipped
    write_candidates(path, [*rows[:2], {**rows[2], "metrics": {"train/loss": float("nan")}}])
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text and '"train/loss": null' in text
    assert [json.loads(line)["id"] for line in text.splitlines()] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CANDIDATES]  # no temp file left


def test_append_row_never_writes_bare_nan_or_infinity(tmp_path):
    path = tmp_path / CANDIDATES
    append_row(path, {"id": 0, "metrics": {"a": float("inf"), "b": [float("-inf"), 1.0]}})
    assert json.loads(path.read_text()) == {"id": 0, "metrics": {"a": None, "b": [None, 1.0]}}


def test_failed_rows_are_skipped_by_selection():
    rows = [
        {"id": 0, "metrics": {"validation/accuracy": 0.5}},
        {"id": 1, "status": "failed", "reason": "non-finite", "metrics": {}},
        {"id": 2, "status": "failed", "metrics": {"validation/accuracy": 0.9}},
    ]
    assert best_candidate(rows) == 0
    assert best_candidate(rows[1:]) is None
    assert best_index([0.1, None, float("nan"), 0.1]) == 0
    assert best_index([None]) is None


def test_prune_metrics_keeps_each_completed_candidates_curve_once(tmp_path):
    records = [("candidate_0", 1), ("candidate_1", 1), ("train", 1), ("candidate_10", 2)]
    lines = [json.dumps({"run": run, "step": step}) for run, step in records]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"run": "cand')
    (tmp_path / "tb" / "candidate_1").mkdir(parents=True)
    (tmp_path / "tb" / "candidate_0").mkdir(parents=True)
    prune_metrics(tmp_path, 1)
    assert [r["run"] for r in read_metrics(tmp_path)] == ["candidate_0", "train"]
    assert (tmp_path / "metrics.jsonl").read_text().endswith("}\n")
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["candidate_0"]


def test_replacing_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "spec.json"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]
    with replacing(path) as tmp:
        tmp.write_text("new\n")
    assert path.read_text() == "new\n"


def test_best_is_the_highest_selection_metric_earliest_on_ties():
    rows = [row(0, 0.5), row(1, 0.7), row(2, 0.7)]
    assert best_candidate(rows) == 1
    assert best_candidate([]) is None


def test_returned_is_the_last_candidate_that_trained_the_answer():
    spec = NetworkSpec.from_json(TINY_NETWORK)
    other = dict(TINY_NETWORK, name="other")
    rows = [row(0, 0.1, spec.to_json()), row(1, 0.2, other), row(2, 0.3, spec.to_json())]
    assert returned_candidate(rows, spec) == 2
    assert returned_candidate(rows[1:2], spec) is None
    assert returned_candidate(rows, None) is None


def test_setting_drops_the_run_identity_but_keeps_algo_options():
    overrides = ["seed=3", "algo=nac", "hydra.run.dir=x", "algo.iterations=5", "dataset=digits"]
    assert setting_of(overrides) == ("algo.iterations=5", "dataset=digits")


def test_a_run_without_rows_reads_as_none(tmp_path):
    assert read_run(tmp_path) is None
    append_row(tmp_path / CANDIDATES, {**row(0, 0.5), "algorithm": "random"})
    record = read_run(tmp_path)
    assert (record.algorithm, record.best_id, record.finished) == ("random", 0, False)
