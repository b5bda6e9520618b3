"""Local search (White, Nolen, Savani 2020, "Local search is state of the art for NAS
benchmarks") over a search space.

The first ``initial`` archs are uniform samples; the best becomes the current arch.
Then every neighbour of the current arch (the space's ``neighbours``: one decision
changed) is evaluated, in the space's order, skipping archs evaluated before; when all
are known the search moves to the best neighbour if it beats the current arch, and
otherwise (a local optimum) restarts from a fresh uniform sample. ``best`` is the
evaluated arch with the highest objective.

Options (``algo.options``, plus `amla_jax.algos.space_search`'s): ``initial`` (10).

Synopsis::

    algorithm = get_algorithm("local_search")(AlgoConfig("local_search", 300, {}), template)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.algos.space_search import (
    SpaceSearch,
    best_of,
    decode,
    describe_state,
)


class LocalSearchState(NamedTuple):
    """iteration; archs/scores: the history; best_index; current: the history index of
    the current arch (-1: restart with a sample); pending: the current arch's neighbours
    still to evaluate, one digit per decision."""

    iteration: int
    archs: str
    scores: str
    best_index: int
    current: int
    pending: str

    def to_json(self) -> dict[str, Any]:
        return describe_state(self)


def make_local_search(cfg, template) -> Algorithm:
    """Local search for ``cfg.iterations`` evaluations."""
    search = SpaceSearch.from_config(cfg, template, {"initial": 10})
    initial, width = search.options["initial"], search.width
    if initial < 1:
        raise AlgorithmError(f"algo.options.initial: {initial} must be at least 1")
    space = search.space

    def settle(current: int, archs, scores) -> tuple[int, str]:
        """The current arch and its unevaluated neighbours, moving while all are known."""
        known = {tuple(a): i for i, a in enumerate(archs.tolist())}
        while current >= 0:
            neighbours = space.neighbours(tuple(archs[current].tolist()))
            pending = [n for n in neighbours if n not in known]
            if pending:
                return current, "".join("".join(map(str, n)) for n in pending)
            best = max((known[n] for n in neighbours), key=lambda i: (scores[i], -i))
            current = best if scores[best] > scores[current] else -1
        return -1, ""

    def init(key) -> LocalSearchState:
        del key
        return LocalSearchState(0, "", "", -1, -1, "")

    def ask(key, state):
        if state.iteration < initial or state.current < 0:
            return search.spec(space.sample(key)), state
        return search.spec(tuple(int(c) for c in state.pending[:width])), state

    def tell(state, spec, result):
        archs_text, scores_text, best_index = search.record(state, spec, result)
        iteration = state.iteration + 1
        archs, scores = decode(archs_text, scores_text, width)
        current, pending = state.current, state.pending[width:]
        if iteration == initial:
            current, pending = best_of(scores_text), ""
        elif iteration > initial and state.current < 0:
            current, pending = iteration - 1, ""  # the restart sample
        if iteration >= initial and not pending:
            current, pending = settle(current, archs, scores)
        return LocalSearchState(iteration, archs_text, scores_text, best_index, current, pending)

    return search.algorithm(cfg, init, ask, tell)
