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
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.spaces import SearchSpace, get_space
from amla_jax.spaces.base import key_to_rng

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
        space = get_space(str(given.get("space", "nb201")))(
            **dict(given.get("space_options") or {})
        )
        terms = parse_objective(str(given.get("objective", "validation/accuracy")))
        options = {k: type(v)(given.get(k, v)) for k, v in defaults.items()}
        check_digits(space)
        return cls(space, terms, options, template)

    def objective(self, result) -> float:
        return sum(c * _value(result, name) for c, name in self.terms)

    def spec(self, arch):
        return self.space.to_spec(arch, self.template)

    @property
    def width(self) -> int:
        return len(self.space.choices)

    def record(self, state, spec, result) -> tuple[str, str, int]:
        """``state``'s history with the told ``(spec, result)`` appended: ``(archs, scores,
        best_index)``, the three history fields every space search's state starts with."""
        archs, scores = append(
            state.archs, state.scores, self.space.from_spec(spec), self.objective(result)
        )
        return archs, scores, best_of(scores)

    def algorithm(self, cfg, init, ask, tell) -> Algorithm:
        """An `Algorithm` over ``init``/``ask``/``tell`` that is done after
        ``cfg.iterations`` evaluations and returns the best arch of the history."""
        iterations = int(cfg.iterations)

        def best(state):
            return self.spec(arch_at(cfg.name, state.archs, self.width, state.best_index))

        return Algorithm(cfg.name, init, ask, tell, lambda s: s.iteration >= iterations, best)


class HistoryState(NamedTuple):
    """The state of a search that needs only its history (random, evolution): iteration
    (archs evaluated); archs/scores (`append`); best_index (-1 before the first)."""

    iteration: int
    archs: str
    scores: str
    best_index: int

    def to_json(self) -> dict[str, Any]:
        return describe_state(self)

    @classmethod
    def empty(cls, key=None) -> HistoryState:
        del key  # the history starts empty whatever the key
        return cls(0, "", "", -1)

    def told(self, search: SpaceSearch, spec, result) -> HistoryState:
        """This history with ``(spec, result)`` recorded."""
        return HistoryState(self.iteration + 1, *search.record(self, spec, result))


# The history is two strings, so the state stays a fixed pytree of str leaves and reading
# it back is C-speed (a JSON list of 300 entries, parsed at every ask, was most of a
# table-driven search's time): ``archs`` is one digit per decision (every space's
# options number < 10), ``scores`` the float64 bytes of the objective values, in hex.


def check_digits(space) -> None:
    if max(space.choices) > 10:
        raise AlgorithmError(f"space {space.name}: a decision with > 10 options")


def append(archs: str, scores: str, arch, score: float) -> tuple[str, str]:
    """The history with ``(arch, score)`` appended."""
    return archs + "".join(map(str, arch)), scores + np.float64(score).tobytes().hex()


def decode(archs: str, scores: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The history as an (n, width) int array of archs and an (n,) float array of scores."""
    codes = np.frombuffer(archs.encode(), np.uint8).astype(np.int64) - ord("0")
    return codes.reshape(-1, width), np.frombuffer(bytes.fromhex(scores), np.float64)


def best_of(scores: str) -> int:
    """The index of the best score (earliest on ties, as `amla_jax.selection`), -1 if none."""
    values = np.frombuffer(bytes.fromhex(scores), np.float64)
    return int(np.argmax(values)) if len(values) else -1


def history_json(archs: str, scores: str, width: int) -> list:
    """The history as ``[[arch, score], ...]`` for logs."""
    codes, values = decode(archs, scores, width)
    return [[c.tolist(), float(v)] for c, v in zip(codes, values, strict=True)]


def describe_state(state) -> dict[str, Any]:
    """``state`` as JSON data for logs, its history decoded into ``[[arch, score], ...]``."""
    out = {k: v for k, v in state._asdict().items() if k not in ("archs", "scores")}
    width = len(state.archs) // max(1, len(state.scores) // 16)
    out["history"] = history_json(state.archs, state.scores, width) if state.scores else []
    return out


def arch_at(name: str, archs: str, width: int, index: int) -> tuple[int, ...]:
    """The arch at ``index`` of the history, or `AlgorithmError` if there is none."""
    if index < 0:
        raise AlgorithmError(f"{name}: no network has been evaluated yet")
    return tuple(int(c) for c in archs[index * width : (index + 1) * width])


def split_key(key, n: int = 2) -> list:
    """``n`` raw (uint32[2]) keys drawn from ``key`` with numpy: a JAX split costs a
    dispatch (~0.1 ms), a table lookup a microsecond."""
    rng = key_to_rng(key)
    return [rng.integers(0, 2**32, size=2, dtype=np.uint32) for _ in range(n)]
