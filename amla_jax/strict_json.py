"""Strict JSON for every file a run writes: no bare NaN or Infinity.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict parsers
(JavaScript, jq, most other languages) reject. The policy: a non-finite float is written
as ``null`` (a diverged candidate's loss, a metric that does not exist), and anything
else that is not JSON is an error (``allow_nan=False`` guards the policy).

Synopsis::

    from amla_jax.strict_json import dumps, finite
    dumps({"train/loss": float("nan")})          # '{"train/loss": null}'
    finite([1.0, float("inf")])                   # [1.0, None]
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None (JSON null)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` of `finite` ``(data)``, refusing any other non-JSON number."""
    return json.dumps(finite(data), allow_nan=False, **kwargs)
