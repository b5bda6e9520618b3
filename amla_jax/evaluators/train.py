"""The train-and-evaluate evaluator: each candidate trained from scratch.

An evaluator is what the search loop calls for every candidate:
``evaluate(spec, key, candidate_id) -> TrainResult``. This one trains the candidate with
`amla_jax.train.train_and_evaluate` under the metric prefix ``candidate_<id>``, measures
its FLOPs from the trained variables, and with ``train.checkpoint`` saves the final train
state to ``<run_dir>/checkpoints/candidate_<id>``.

Synopsis::

    from amla_jax.evaluators import make_train_evaluator
    evaluate = make_train_evaluator(dataset, cfg.optim, cfg.train, run_dir)
    result = evaluate(spec, jax.random.key(0), 0)
    result.metrics["validation/accuracy"], result.flops
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from amla_jax.config import OptimConfig, TrainConfig
from amla_jax.nn import count_flops, count_params
from amla_jax.rundir import CHECKPOINTS_DIR, candidate_run
from amla_jax.spec import NetworkSpec
from amla_jax.train import TrainResult, save_train_state, train_and_evaluate
from amla_jax.train.distributed import is_primary


@dataclasses.dataclass(frozen=True)
class TrainEvaluator:
    """Trains a candidate from scratch (see `make_train_evaluator`)."""

    dataset: Any
    optim: OptimConfig
    train: TrainConfig
    run_dir: Path | None

    def __call__(self, spec: NetworkSpec, key, candidate_id: int) -> TrainResult:
        prefix = candidate_run(candidate_id)
        result = train_and_evaluate(
            spec,
            self.dataset,
            self.optim,
            self.train,
            key,
            self.run_dir,
            prefix=prefix,
            measure_flops=True,
        )
        if self.train.checkpoint and self.run_dir is not None and is_primary():
            save_train_state(result.state, Path(self.run_dir) / CHECKPOINTS_DIR / prefix)
        return result

    def count_flops(self, spec: NetworkSpec) -> float:
        """Forward FLOPs of one image of ``spec`` at the dataset's shape, untrained."""
        info = self.dataset.info
        return count_flops(spec, info.image_shape, info.num_classes)

    def count_params(self, spec: NetworkSpec) -> int:
        """Trainable parameters of ``spec`` for the dataset, without allocating them."""
        return count_params(spec, self.dataset.info.image_shape, self.dataset.info.num_classes)


def make_train_evaluator(
    dataset, optim: OptimConfig, train: TrainConfig, run_dir: str | Path | None
) -> TrainEvaluator:
    """``evaluate(spec, key, candidate_id) -> TrainResult`` for `run_search`.

    Args:
      dataset: an `amla_jax.data.Dataset`.
      optim: the training recipe of every candidate.
      train: the training budget and logging of every candidate.
      run_dir: where metrics, TensorBoard events and checkpoints go (None: nowhere).
    """
    return TrainEvaluator(dataset, optim, train, None if run_dir is None else Path(run_dir))
