"""Evaluators: how the search turns a candidate spec into a `TrainResult`.

``EVALUATORS`` maps a name to a factory ``make(dataset, optim, train, run_dir)`` that
returns ``evaluate(spec, key, candidate_id) -> TrainResult``; `get_evaluator` looks one
up by name: ``train`` (train from scratch, then evaluate) and ``tabular`` (NB201 cells
looked up in the analog-nasbench table, `amla_jax.evaluators.tabular`; its factory
takes the same arguments and ``column=``, and needs no dataset).

Synopsis::

    from amla_jax.evaluators import get_evaluator
    evaluate = get_evaluator("train")(dataset, cfg.optim, cfg.train, run_dir)
    outcome = run_search(algorithm, evaluate, run_dir, key)
"""

from __future__ import annotations

from collections.abc import Callable

from amla_jax.errors import UserError
from amla_jax.evaluators.train import TrainEvaluator, make_train_evaluator


def make_tabular(dataset=None, optim=None, train=None, run_dir=None, *, column="baseline_accuracy"):
    """`amla_jax.evaluators.tabular.make_tabular_evaluator` with the registry's signature
    (the table needs no dataset, recipe or run directory); imported on first use."""
    del dataset, optim, train, run_dir
    from amla_jax.evaluators.tabular import make_tabular_evaluator  # noqa: PLC0415

    return make_tabular_evaluator(column)


EVALUATORS: dict[str, Callable] = {"train": make_train_evaluator, "tabular": make_tabular}


class EvaluatorError(UserError):
    """An unknown evaluator name; the message lists the valid ones."""


def get_evaluator(name: str) -> Callable:
    """The evaluator factory registered as ``name``.

    Raises:
      EvaluatorError: ``name`` is not in `EVALUATORS`.
    """
    if name not in EVALUATORS:
        raise EvaluatorError(f"evaluator: unknown {name!r}; valid: {', '.join(sorted(EVALUATORS))}")
    return EVALUATORS[name]


__all__ = [
    "EVALUATORS",
    "EvaluatorError",
    "TrainEvaluator",
    "get_evaluator",
    "make_train_evaluator",
]
