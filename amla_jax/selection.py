"""The one rule that picks a search's answer: best selection metric, earliest on ties.

Every search, report and task status judges candidates the same way: by validation
accuracy (training accuracy where a run has no validation split), never by the test set;
among equal values the candidate evaluated first wins. Plain Python, no JAX.

Synopsis::

    from amla_jax.selection import best_index, selection_metric
    selection_metric({"validation/accuracy": 0.97, "test/accuracy": 0.99})   # 0.97
    best_index([row["metrics"] for row in rows])                              # 0-based, or None
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

SELECTION_METRICS = ("validation/accuracy", "train/accuracy")


def selection_metric(metrics: Mapping[str, float]) -> float:
    """What a search ranks candidates by: validation accuracy, never the test set
    (training accuracy when the run has no validation split; -inf when neither is there
    or it is null, as in a failed candidate's row)."""
    for name in SELECTION_METRICS:
        if metrics.get(name) is not None:
            return float(metrics[name])
    return float("-inf")


def best_index(scores: Sequence[float | Mapping[str, float]]) -> int | None:
    """The position of the best entry (earliest on ties), or None when there is none.

    Args:
      scores: selection values, or metrics dicts (ranked by `selection_metric`), in the
        order the candidates were evaluated. None or NaN (a failed candidate) is never
        chosen.
    """
    values = [s if s is None or isinstance(s, int | float) else selection_metric(s) for s in scores]
    valid = [i for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    return max(valid, key=lambda i: (values[i], -i)) if valid else None
