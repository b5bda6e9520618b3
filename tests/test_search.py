"""Tests for amla_jax.search: the checkpointed, resumable ask/evaluate/tell loop."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from conftest import launch_through_kills
from fakes import fake_evaluate, template_spec

from amla_jax.algos import get_algorithm
from amla_jax.amla import layout, load_spec
from amla_jax.config import AlgoConfig
from amla_jax.errors import UserError
from amla_jax.rundir import read_candidates
from amla_jax.search import SearchInterrupted, run_search

KEY = jax.random.key(1)
ROOT = Path(__file__).resolve().parents[1]


def make(name="nac", iterations=4):
    return get_algorithm(name)(AlgoConfig(name, iterations, {}), template_spec())


class Recorder:
    """A fake evaluator that records calls and can fail or signal at one candidate."""

    def __init__(self, fail_at=None, signal_at=None):
        self.calls, self.fail_at, self.signal_at = [], fail_at, signal_at

    def __call__(self, spec, key, candidate_id):
        self.calls.append(candidate_id)
        if candidate_id == self.fail_at:
            raise RuntimeError("evaluator crashed")
        if candidate_id == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        return fake_evaluate(spec, key, candidate_id)


def lines(run_dir):
    return (Path(run_dir) / "candidates.jsonl").read_text().splitlines()


def uninterrupted(tmp_path, name="nac"):
    outcome = run_search(make(name), Recorder(), tmp_path / "reference", KEY, console=False)
    return outcome, read_candidates(tmp_path / "reference" / "candidates.jsonl")


@pytest.mark.parametrize("name", ["nac", "random", "fixed"])
def test_search_writes_rows_checkpoints_and_best_spec(tmp_path, name, capsys):
    evaluate = Recorder()
    outcome = run_search(make(name), evaluate, tmp_path, KEY)
    assert outcome.status == "finished"
    assert evaluate.calls == [0, 1, 2, 3]
    rows = read_candidates(tmp_path / "candidates.jsonl")
    assert [r["id"] for r in rows] == [0, 1, 2, 3] and rows == outcome.rows
    for key in ("spec", "metrics", "num_params", "flops", "train_seconds", "compile_seconds"):
        assert key in rows[0]
    assert ("utilities" in rows[0]) and ("scalars" in rows[0])
    assert load_spec(tmp_path / "best_spec.json") == outcome.best_spec
    assert json.loads((tmp_path / "best_spec.json").read_text())["init_cell"]  # AMLA form
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == ["3", "4"]
    printed = capsys.readouterr().out
    assert "best val" in printed and f"{name}: 4 candidates" in printed


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    reference, reference_rows = uninterrupted(tmp_path)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="evaluator crashed"):
        run_search(make(), Recorder(fail_at=2), run_dir, KEY, console=False)
    assert len(lines(run_dir)) == 2
    evaluate = Recorder()
    outcome = run_search(make(), evaluate, run_dir, KEY, console=False)
    assert evaluate.calls == [2, 3]  # candidates 0 and 1 are not redone
    assert outcome.rows == reference_rows
    assert outcome.best_spec == reference.best_spec
    assert (run_dir / "best_spec.json").read_text() == (
        tmp_path / "reference" / "best_spec.json"
    ).read_text()


def test_sigterm_checkpoints_completed_candidates_and_resumes(tmp_path):
    _, reference_rows = uninterrupted(tmp_path, "random")
    run_dir = tmp_path / "run"
    with pytest.raises(SearchInterrupted) as info:
        run_search(make("random"), Recorder(signal_at=1), run_dir, KEY, console=False)
    assert info.value.completed == 1 and info.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    assert len(lines(run_dir)) == 1
    evaluate = Recorder()
    outcome = run_search(make("random"), evaluate, run_dir, KEY, console=False)
    assert evaluate.calls == [1, 2, 3]
    assert outcome.rows == reference_rows


def crash_after_row(tmp_path, name="nac", row_id=2):
    """A run killed between candidate ``row_id``'s row and its checkpoint (or during the
    checkpoint's write): the checkpoint counts ``row_id`` candidates, the file one more,
    with a half-written line after it."""
    _, reference_rows = uninterrupted(tmp_path, name)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_search(make(name), Recorder(fail_at=row_id), run_dir, KEY, console=False)
    with open(run_dir / "candidates.jsonl", "a") as f:
        f.write(json.dumps(reference_rows[row_id]) + "\n" + '{"id": 3, "spe')
    return run_dir, reference_rows


@pytest.mark.parametrize("name", ["nac", "random", "fixed"])
def test_rows_beyond_the_checkpoint_are_replayed_not_retrained(tmp_path, name, capsys):
    run_dir, reference_rows = crash_after_row(tmp_path, name)
    evaluate = Recorder()
    outcome = run_search(make(name), evaluate, run_dir, KEY)
    assert evaluate.calls == [3]  # candidate 2 has a row: it is told from it, not trained
    assert "recovered candidates 2..2" in capsys.readouterr().out
    assert [json.loads(line)["id"] for line in lines(run_dir)] == [0, 1, 2, 3]
    assert outcome.rows == reference_rows
    reference = tmp_path / "reference" / "best_spec.json"
    assert (run_dir / "best_spec.json").read_text() == reference.read_text()


def test_a_row_of_another_network_is_refused(tmp_path):
    run_dir, reference_rows = crash_after_row(tmp_path)
    text = (run_dir / "candidates.jsonl").read_text().replace('"outputs": 8', '"outputs": 9')
    (run_dir / "candidates.jsonl").write_text(text)
    with pytest.raises(UserError, match="candidate 2's row holds another network"):
        run_search(make(), Recorder(), run_dir, KEY, console=False)


def test_a_finished_run_does_no_work(tmp_path, capsys):
    reference, _ = uninterrupted(tmp_path)
    before = lines(tmp_path / "reference")
    outcome = run_search(make(), Recorder(fail_at=0), tmp_path / "reference", KEY)
    assert outcome.status == "already_finished"
    assert "already finished" in capsys.readouterr().out
    assert lines(tmp_path / "reference") == before
    assert outcome.best_spec == reference.best_spec


def test_a_run_dir_of_another_algorithm_is_refused(tmp_path):
    uninterrupted(tmp_path)
    with pytest.raises(ValueError, match="holds a 'nac' search"):
        run_search(make("random"), Recorder(), tmp_path / "reference", KEY, console=False)


# --- end to end, through the real trainer and entry point ------------------------------

# A tiny budget and a small network (stem width 8, one envelope cell per stage).
TINY = [
    "train.steps=3",
    "train.batch_size=16",
    "algo.iterations=2",
    "train.progress=false",
    "model.network.stem.0.0.outputs=8",
    "algo.options.layers_per_stage=[1,1,1]",
]


def entry_point(run_dir, *extra):
    command = [sys.executable, "-m", "amla_jax", "algo=nac", "dataset=digits", *TINY, *extra]
    return [*command, f"hydra.run.dir={run_dir}"]


def metric_runs(run_dir):
    """The ``run`` of every metrics.jsonl record: candidate 0 trained once shows once."""
    text = (Path(run_dir) / "metrics.jsonl").read_text()
    return [json.loads(line)["run"] for line in text.splitlines()]


def utilities(run_dir):
    return [row["utilities"] for row in read_candidates(Path(run_dir) / "candidates.jsonl")]


@pytest.mark.slow
def test_make_evaluator_trains_a_candidate(tmp_path):
    from amla_jax.config import OptimConfig, TrainConfig
    from amla_jax.data import DataConfig, load_dataset
    from amla_jax.evaluators import make_train_evaluator

    dataset = load_dataset(DataConfig(name="digits"))
    train = TrainConfig(steps=2, batch_size=16, progress=False)
    evaluate = make_train_evaluator(dataset, OptimConfig(), train, tmp_path)
    options = {  # a small construction: 2 stages of one 3-branch cell
        "stages": 2,
        "layers_per_stage": [1, 1],
        "max_layers_per_stage": [2, 2],
        "construction": [True, True],
        "parameter_limits": [False, False],
        "envelopecell": {"Branch1": "1x1", "Branch2": "3x3", "Branch3": "3x3sep"},
    }
    algorithm = get_algorithm("nac")(AlgoConfig("nac", 2, options), template_spec())
    outcome = run_search(algorithm, evaluate, tmp_path, KEY, console=False)
    rows = outcome.rows
    assert rows[0]["flops"] > 0 and rows[0]["num_params"] > 0
    assert set(rows[0]["utilities"]) == {f"Cell{c}/Branch{b}" for c in (1, 3) for b in (1, 2, 3)}
    assert set(rows[1]["utilities"]) == set(layout.branch_names(rows[1]["spec"]["arch"]))
    assert rows[1]["scalars"] and math.isfinite(rows[1]["metrics"]["train/loss"])
    assert {"validation/accuracy", "test/accuracy"} <= set(rows[1]["metrics"])
    assert 0 < rows[1]["metrics"]["test/accuracy"] <= 1  # a real evaluation, not a default
    assert (tmp_path / "checkpoints" / "candidate_1").exists()
    assert evaluate.count_params(outcome.best_spec) > 0


def start(run_dir, env, log):
    """Starts the entry point in the background, its output going to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(
            entry_point(run_dir), cwd=run_dir.parent, env=env, stdout=out, stderr=out
        )


def wait_for(process, condition, timeout=900):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "amla_jax" / "__main__.py").exists(), reason="no entry point")
def test_kill_9_and_sigterm_mid_iteration_resume_to_the_uninterrupted_result(tmp_path):
    # The runs share the persistent compilation cache ($AMLA_JAX_CACHE, see conftest.py):
    # the interrupted and resumed runs load the reference run's programs.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = tmp_path / "reference"
    subprocess.run(entry_point(reference), cwd=tmp_path, env=env, check=True, timeout=1200)
    run_dir = tmp_path / "interrupted"
    # 1. kill -9 once candidate 0 is complete (its row and checkpoint step 1 written),
    #    while candidate 1 compiles or trains.
    process = start(run_dir, env, tmp_path / "first.log")
    wait_for(process, lambda: (run_dir / "search" / "1").exists() and lines(run_dir))
    process.kill()
    process.wait()
    assert len(lines(run_dir)) == 1
    # 2. SIGTERM the resumed run during candidate 1: it stops at once with 128 + 15.
    log = tmp_path / "second.log"
    process = start(run_dir, env, log)
    wait_for(process, lambda: "resuming nac search" in log.read_text())
    # At once: with the compilation cache warm, candidate 1 can finish within a second of
    # "resuming", and a later signal then lands after its row (seen in CI).
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert "stopped: search stopped by SIGTERM after 1 completed candidates" in log.read_text()
    assert len(lines(run_dir)) == 1
    # 3. The third run resumes after candidate 0 and finishes.
    finished = subprocess.run(
        entry_point(run_dir),
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=1200,
        capture_output=True,
        text=True,
    )
    assert "resuming nac search" in finished.stdout
    assert "after 1 candidates" in finished.stdout
    assert [json.loads(line)["id"] for line in lines(run_dir)] == [0, 1]
    assert utilities(run_dir) == utilities(reference)
    assert metric_runs(run_dir).count("candidate_0") == metric_runs(reference).count("candidate_0")
    assert (run_dir / "best_spec.json").read_text() == (reference / "best_spec.json").read_text()
    again = subprocess.run(
        entry_point(run_dir), cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert "already finished" in again.stdout
    assert len(lines(run_dir)) == 2


# The five moments of a NAC search at which a kill -9 must change nothing, in the order a
# run reaches them; each launch dies at one (``$AMLA_JAX_FAULT``, see amla_jax.faults)
# and the next resumes. The comments say what the directory holds after each kill.
KILL_MOMENTS = [
    "train:2",  # candidate 0 at its second step: no row, a partial curve
    "calibrate:1",  # candidate 0's BatchNorm calibration: no row, a whole curve
    "row:1",  # right after candidate 0's row: a row, no checkpoint
    "compile:1",  # candidate 1's compile (row 0 replayed and checkpointed first)
    "checkpoint:1",  # during candidate 1's checkpoint write: rows 0 and 1, checkpoint 1
]
TIMINGS = ("train_seconds", "compile_seconds")


def without_timings(rows):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def curve_times(run_dir, run):
    text = (Path(run_dir) / "metrics.jsonl").read_text()
    return [r["time"] for r in map(json.loads, text.splitlines()) if r["run"] == run]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "amla_jax" / "__main__.py").exists(), reason="no entry point")
def test_kill_9_at_five_moments_changes_nothing_and_trains_no_candidate_twice(tmp_path):
    # Unbuffered, so what a launch printed before its SIGKILL is in its output.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("AMLA_JAX_FAULT", None)
    reference = tmp_path / "reference"
    subprocess.run(entry_point(reference), cwd=tmp_path, env=env, check=True, timeout=1200)
    run_dir = tmp_path / "killed"
    logs, starts = launch_through_kills(entry_point(run_dir), tmp_path, env, KILL_MOMENTS)
    # Rows written before a kill were recovered by the next launch, not retrained: the
    # curve kept for candidate 0 (row in launch 3) predates launch 4, candidate 1's (row
    # in launch 5) predates launch 6, and launch 6 trained nothing.
    assert "recovered candidates 0..0" in logs[3] and "recovered candidates 1..1" in logs[5]
    assert max(curve_times(run_dir, "candidate_0")) < starts[3]
    assert starts[4] < min(curve_times(run_dir, "candidate_1"))
    assert max(curve_times(run_dir, "candidate_1")) < starts[5]
    assert "candidate 0: " not in logs[5] and "candidate 1: " not in logs[5]
    killed_rows = read_candidates(run_dir / "candidates.jsonl")
    assert without_timings(killed_rows) == without_timings(
        read_candidates(reference / "candidates.jsonl")
    )
    assert (run_dir / "best_spec.json").read_text() == (reference / "best_spec.json").read_text()
    assert sorted(metric_runs(run_dir)) == sorted(metric_runs(reference))  # each curve once
    assert sorted(p.name for p in (run_dir / "tb").iterdir()) == ["candidate_0", "candidate_1"]
