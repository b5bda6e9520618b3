"""What the discrete searches over a `amla_jax.spaces` space share: options, the objective,
and a history state kept as JSON text (so the state is a fixed-structure pytree).

Every such algorithm reads ``algo.options``::

    space: nb201            # a name in amla_jax.spaces.SPACES (search_space=<name> sets it)
    space_options: {}       # the space factory's keyword arguments (network sizes)
    objective: validation/accuracy   # what is maximised (grammar below)

Objective grammar: terms joined by ``+`` or ``-``, each ``[<number>*]<name>``, where a
name is a metric of the result (``validation/accuracy``, ``table/analog_accuracy``), a
bare table column (``analog_accuracy`` reads ``table/analog_accuracy``) or
``num_params``. Examples: ``analog_accuracy``, ``analog_accuracy - 0.5*noisy_accuracy``,
``validation/accuracy - 1e-7*num_params``.

Synopsis::

    search = SpaceSearch.from_config(cfg, template, known={"population"})
    score = search.objective(result)              # a float
    arch = search.space.from_spec(spec)
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from amla_jax.algos.base import AlgorithmError
from amla_jax.selection import best_index
from amla_jax.spaces import SearchSpace, get_space

COMMON_OPTIONS = ("space", "space_options", "objective")
_TERM = re.compile(r"\s*([+-]?)\s*(?:([0-9.eE+-]+)\s*\*\s*)?([A-Za-z_][\w/]*)\s*")


def parse_objective(text: str) -> tuple[tuple[float, str], ...]:
    """``text`` as (coefficient, name) terms.

    Raises:
      AlgorithmError: ``text`` does not follow the grammar (module docstring).
    """
    terms, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or (terms and not match.group(1)):
            raise AlgorithmError(
                f"algo.options.objective: cannot read {text!r} at {text[pos:]!r}; "
                "write terms like 'analog_accuracy - 0.5*noisy_accuracy'"
            )
        sign = -1.0 if match.group(1) == "-" else 1.0
        try:
            coefficient = float(match.group(2) or 1.0)
        except ValueError:
            raise AlgorithmError(
                f"algo.options.objective: {match.group(2)!r} in {text!r} is not a number"
            ) from None
        terms.append((sign * coefficient, match.group(3)))
        pos = match.end()
    if not terms:
        raise AlgorithmError("algo.options.objective: empty; e.g. validation/accuracy")
    return tuple(terms)


def _value(result, name: str) -> float:
    if name == "num_params":
        return float(result.num_params)
    metrics = result.metrics
    for key in (name, f"table/{name}"):
        if key in metrics:
            return float(metrics[key])
    raise AlgorithmError(
        f"algo.options.objective: the evaluation has no metric {name!r}; "
        f"it has {', '.join(sorted(metrics))}, num_params"
    )


@dataclasses.dataclass(frozen=True)
class SpaceSearch:
    """The validated common options of a search over a space."""

    space: SearchSpace
    terms: tuple[tuple[float, str], ...]
    options: Mapping[str, Any]  # the algorithm's own options (defaults filled in)
    template: Any

    @classmethod
    def from_config(cls, cfg, template, defaults: Mapping[str, Any]) -> SpaceSearch:
        """Options of ``cfg.algo`` over ``defaults`` (the algorithm's own keys).

        Raises:
          AlgorithmError: an unknown key or space, or a bad objective.
        """
        given = dict(cfg.options or {})
        unknown = sorted(set(given) - set(COMMON_OPTIONS) - set(defaults))
        if unknown:
            raise AlgorithmError(
                f"algo.options.{unknown[0]}: unknown for {cfg.name}; valid: "
                f"{', '.join(sorted((*COMMON_OPTIONS, *defaults)))}"
            )
        space = get_space(str(given.get("space", "nb201")))(**dict(given.get("space_options") or {}))
        terms = parse_objective(str(given.get("objective", "validation/accuracy")))
        options = {k: type(v)(given.get(k, v)) for k, v in defaults.items()}
        return cls(space, terms, options, template)

    def objective(self, result) -> float:
        return sum(c * _value(result, name) for c, name in self.terms)

    def spec(self, arch):
        return self.space.to_spec(arch, self.template)


def records(history: str) -> list[list]:
    """The history JSON as ``[[arch list, score], ...]``, oldest first."""
    return json.loads(history)


def told(history: str, arch, score: float) -> tuple[str, int]:
    """The history with ``(arch, score)`` appended, and the best entry's index."""
    entries = [*records(history), [list(arch), float(score)]]
    return json.dumps(entries), best_index([s for _, s in entries])


def best_arch(name: str, history: str, index: int) -> tuple[int, ...]:
    """The arch at ``index`` of the history (the best), or `AlgorithmError` if empty."""
    if index < 0:
        raise AlgorithmError(f"{name}: no network has been evaluated yet")
    return tuple(records(history)[index][0])
