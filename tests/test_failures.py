"""Diverging candidates: recorded as failed rows (strict JSON), skipped by selection, the
search goes on; NAC retries the network once with a fresh key, then stops resumably."""

import json
import shutil
from pathlib import Path

import jax
import pytest
from fakes import fake_evaluate, template_spec

from amla_jax.algos import get_algorithm
from amla_jax.config import AlgoConfig
from amla_jax.errors import CandidateFailed, UserError
from amla_jax.run_record import read_run
from amla_jax.rundir import best_candidate, read_candidates
from amla_jax.search import SearchFailed, run_search

KEY = jax.random.key(1)


def make(name, iterations=4):
    return get_algorithm(name)(AlgoConfig(name, iterations, {}), template_spec())


class Diverging:
    """The fake evaluator, except that candidates in ``at`` diverge."""

    def __init__(self, *at):
        self.at, self.calls = set(at), []

    def __call__(self, spec, key, candidate_id):
        self.calls.append((candidate_id, spec.dumps(sort_keys=True)))
        if candidate_id in self.at:
            raise CandidateFailed("non-finite train/loss (nan) at step 2", steps=2)
        return fake_evaluate(spec, key, candidate_id)

    def count_params(self, spec):
        return 123


def strict_rows(run_dir):
    """The rows, parsed by a strict parser (no NaN/Infinity literals)."""

    def refuse(literal):
        raise ValueError(f"bare {literal} in candidates.jsonl")

    text = (Path(run_dir) / "candidates.jsonl").read_text()
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


@pytest.mark.parametrize("name", ["fixed", "random"])
def test_a_diverging_candidate_is_a_failed_row_and_the_search_goes_on(tmp_path, name, capsys):
    evaluate = Diverging(1)
    outcome = run_search(make(name), evaluate, tmp_path, KEY)
    assert [c for c, _ in evaluate.calls] == [0, 1, 2, 3]
    rows = strict_rows(tmp_path)
    assert rows == outcome.rows and [r.get("status") for r in rows] == [None, "failed", None, None]
    assert rows[1]["reason"] == "non-finite train/loss (nan) at step 2"
    assert rows[1]["metrics"] == {} and rows[1]["num_params"] == 123 and rows[1]["steps"] == 2
    assert outcome.best_candidate == best_candidate(rows) != 1
    assert "candidate 1 failed: non-finite train/loss" in capsys.readouterr().out
    record = read_run(tmp_path)
    assert record.best_id != 1 and record.final_row.get("status") is None


def test_random_never_returns_a_failed_network(tmp_path):
    outcome = run_search(make("random", 2), Diverging(0), tmp_path, KEY, console=False)
    rows = read_candidates(tmp_path / "candidates.jsonl")
    assert outcome.best_spec.to_json() == rows[1]["spec"]
    with pytest.raises(UserError, match="all 2 candidates failed"):
        run_search(make("random", 2), Diverging(0, 1), tmp_path / "all", KEY, console=False)


def test_nac_retries_a_failed_network_once_with_a_fresh_key(tmp_path, capsys):
    reference = run_search(make("nac", 3), Diverging(), tmp_path / "reference", KEY)
    evaluate = Diverging(1)
    outcome = run_search(make("nac", 3), evaluate, tmp_path / "run", KEY)
    assert "candidate 1 failed (non-finite train/loss (nan) at step 2); nac needs" in (
        capsys.readouterr().out
    )
    rows = strict_rows(tmp_path / "run")
    assert [(r["id"], r.get("status"), r.get("retry_of")) for r in rows] == [
        (0, None, None),
        (1, "failed", None),
        (2, None, 1),  # the same network, trained with candidate 2's key
        (3, None, None),
    ]
    assert evaluate.calls[1][1] == evaluate.calls[2][1]
    assert rows[2]["spec"] == reference.rows[1]["spec"]
    cells = [len(o.best_spec.body.to_json()["network"]) for o in (outcome, reference)]
    assert len(outcome.rows) == 4 and cells[0] == cells[1]  # three networks told, as there


def test_nac_stops_after_a_failed_retry_and_resumes_in_the_same_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(SearchFailed, match=r"candidate 2 \(a retry of candidate 1\) failed too"):
        run_search(make("nac", 3), Diverging(1, 2), run_dir, KEY, console=False)
    assert [r.get("status") for r in strict_rows(run_dir)] == [None, "failed", "failed"]
    evaluate = Diverging()  # e.g. rerun with a smaller learning rate
    outcome = run_search(make("nac", 3), evaluate, run_dir, KEY, console=False)
    assert [c for c, _ in evaluate.calls] == [3, 4]  # 0..2 are not trained again
    assert [r.get("retry_of") for r in outcome.rows] == [None, None, 1, 1, None]
    assert outcome.best_candidate in (0, 3, 4)


def test_a_failed_row_beyond_the_checkpoint_is_replayed(tmp_path):
    # Killed right after candidate 1's failed row: the rerun replays it (not retrained)
    # and retries the network as candidate 2, as an undisturbed run does.
    reference = run_search(make("nac", 3), Diverging(1), tmp_path / "reference", KEY, console=False)
    run_dir = tmp_path / "run"

    class Crash(Diverging):
        def __call__(self, spec, key, candidate_id):
            if candidate_id == 2:
                raise RuntimeError("killed")
            return super().__call__(spec, key, candidate_id)

    with pytest.raises(RuntimeError):
        run_search(make("nac", 3), Crash(1), run_dir, KEY, console=False)
    rows = read_candidates(run_dir / "candidates.jsonl")
    # Make the checkpoint lag one row behind: drop the newest checkpoint step.
    shutil.rmtree(run_dir / "search" / "2")
    evaluate = Diverging()
    outcome = run_search(make("nac", 3), evaluate, run_dir, KEY, console=False)
    assert [c for c, _ in evaluate.calls] == [2, 3] and len(rows) == 2
    assert outcome.rows == reference.rows


@pytest.mark.slow
def test_a_real_diverging_run_is_stopped_early_and_recorded_as_failed(tmp_path):
    from amla_jax.config import OptimConfig, TrainConfig
    from amla_jax.data import DataConfig, load_dataset
    from amla_jax.evaluators import make_train_evaluator

    dataset = load_dataset(DataConfig(name="digits"))
    train = TrainConfig(steps=40, batch_size=16, log_every=2, progress=False)
    evaluate = make_train_evaluator(dataset, OptimConfig(learning_rate=1e6), train, tmp_path)
    outcome = run_search(make("fixed", 1), evaluate, tmp_path, KEY, console=False)
    (row,) = strict_rows(tmp_path)
    assert row["status"] == "failed" and row["reason"].startswith("non-finite train/loss")
    assert row["steps"] < 40 and row["num_params"] > 0  # stopped at a logging point
    assert outcome.best_candidate is None
    curve = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert curve[-1]["train/loss"] is None and curve[-1]["step"] == row["steps"]
