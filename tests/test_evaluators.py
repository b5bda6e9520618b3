"""Evaluators: the registry and the train-and-evaluate evaluator's contract with the search."""

from __future__ import annotations

import json

import jax
import pytest

from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.data import DataConfig, load_dataset
from amla_jax.errors import UserError
from amla_jax.evaluators import EVALUATORS, get_evaluator, make_train_evaluator
from amla_jax.nn import count_flops


def test_registry_names_the_train_evaluator():
    assert get_evaluator("train") is make_train_evaluator
    assert set(EVALUATORS) == {"train", "tabular"}


def test_unknown_evaluator_is_a_user_error_listing_the_valid_names():
    with pytest.raises(UserError, match=r"evaluator: unknown 'nope'; valid: tabular, train$"):
        get_evaluator("nope")


def test_train_evaluator_returns_flops_and_checkpoints_the_candidate(tiny_spec, tmp_path):
    dataset = load_dataset(DataConfig(name="digits"))
    train = TrainConfig(steps=2, batch_size=16, eval_batch_size=64, progress=False)
    evaluate = make_train_evaluator(dataset, OptimConfig(), train, tmp_path)
    result = evaluate(tiny_spec, jax.random.key(0), 4)
    info = dataset.info
    assert result.flops == count_flops(tiny_spec, info.image_shape, info.num_classes)
    assert result.flops == evaluate.count_flops(tiny_spec)
    assert result.num_params == evaluate.count_params(tiny_spec) == 10_891
    assert (tmp_path / "checkpoints" / "candidate_4").is_dir()
    assert set(_metric_runs(tmp_path)) == {"candidate_4"}


def _metric_runs(run_dir) -> list[str]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["run"] for line in lines]
