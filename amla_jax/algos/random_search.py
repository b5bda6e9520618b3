"""AMLA's ``random`` baseline: a fresh random network each iteration (spec A.8).

The working semantics of AMLA v0.1 (``envnets/nac_alg.py gen_randomnet``), since AMLA
HEAD's random path is broken: `amla_jax.amla.random_networks.random_network`, seeded from
the ask key. Options are `amla_jax.amla.options.RandomOptions`: ``stages``,
``layers_per_stage``, ``num_blocks_per_stage``, ``blocks``, ``parameter_limits``,
``skip``; or ``match: <spec JSON>`` to take the per-stage layer and block counts from a
constructed network (v0.1 matched its random nets to the constructed "cons-exp-3" net).
Without counts, the defaults are those of the network NAC constructs with its defaults
(`NacOptions()`) in as many iterations as this search has, so ``algo.iterations``
matches the two in an ablation: with AMLA's 5, layers [7, 7, 2] and blocks [18, 18, 12].
``blocks`` defaults to the envelope cell's ops, so both searches draw from the same ops
(v0.1 used {3x3, 3x3sep, 5x5, 5x5sep, 7x7, 7x7sep}). The stem width comes from the
template. ``best`` is the trained network with the best validation accuracy.

Synopsis::

    algorithm = get_algorithm("random")(AlgoConfig("random", iterations=5), template)
    state = algorithm.init(key)
    spec, state = algorithm.ask(jax.random.fold_in(key, 0), state)   # a random network
    state = algorithm.tell(state, spec, result)
    algorithm.best(state)
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import jax
import numpy as np

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.amla import load_spec
from amla_jax.amla.envelope import construct_amla, initial_envelopenet
from amla_jax.amla.layout import SettingsError, branch_names, count_branches, stage_layout
from amla_jax.amla.options import NacOptions, OptionsError, RandomOptions, options_error
from amla_jax.amla.random_networks import (
    RandomSettings,
    matched_random_settings,
    random_network,
)
from amla_jax.config import AlgoConfig
from amla_jax.selection import best_index, selection_metric
from amla_jax.spec import MacroSpec, NetworkSpec, SpecError

__all__ = ["RandomState", "key_to_seed", "make_random", "nac_counts", "settings_for"]


class RandomState(NamedTuple):
    """The random search's state; the history is JSON text (fixed pytree structure).

    Attributes:
      iteration: networks trained so far.
      history: one record per trained network (``iteration``, ``spec``, ``metrics``,
        ``num_params``, ``selection``), as a JSON list.
      best_index: the record with the best selection metric, -1 before the first.
    """

    iteration: int
    history: str
    best_index: int

    @property
    def records(self) -> list[dict[str, Any]]:
        """The history records, oldest first."""
        return json.loads(self.history)

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "history": self.records}


def nac_counts(iterations: int, template: NetworkSpec) -> tuple[list[int], list[int]]:
    """Per-stage (layers, blocks) of the network NAC constructs with its defaults in
    ``iterations`` iterations. With the defaults the counts do not depend on the
    statistics (a growing stage always has k prunable branches, loses them and gains one
    cell), so any utilities will do."""
    settings = NacOptions().settings(template.stem_width)
    network = initial_envelopenet(settings)
    for _ in range(iterations):
        utilities = {name: float(i) for i, name in enumerate(branch_names(network))}
        network = construct_amla(network, utilities, {}, settings)
    return [len(cells) for cells in stage_layout(network)], count_branches(network)


def settings_for(options: RandomOptions, template: NetworkSpec, iterations: int) -> RandomSettings:
    """`RandomSettings` from the validated options (see the module docstring).

    Raises:
      OptionsError: counts that contradict each other, or an unreadable ``match`` spec.
    """
    try:
        if options.match is not None:
            return _matched(options, template)
        if options.layers_per_stage is not None:
            layers, num_blocks = options.layers_per_stage, options.num_blocks_per_stage
        else:
            layers, num_blocks = nac_counts(iterations, template)
        stages = len(layers) if options.stages is None else options.stages
        limits = options.parameter_limits or [False] * stages
        return RandomSettings(
            stages, layers, num_blocks, options.blocks, limits, template.stem_width, options.skip
        )
    except SettingsError as exc:
        raise options_error(exc) from None


def _matched(options: RandomOptions, template: NetworkSpec) -> RandomSettings:
    try:
        body = load_spec(options.match).body
    except SpecError as exc:
        raise OptionsError(f"algo.options.match: {exc}") from None
    if not isinstance(body, MacroSpec):
        raise OptionsError(
            f"algo.options.match: {options.match!r} is not a macro (EnvelopeNet) network"
        )
    try:
        return matched_random_settings(
            body.to_json(),
            options.blocks,
            options.skip,
            parameter_limits=options.parameter_limits,
            stem_width=template.stem_width,
        )
    except SettingsError:
        raise
    except ValueError as exc:  # its layout is not AMLA's (stage_layout says why)
        raise OptionsError(f"algo.options.match: {exc}") from None


def key_to_seed(key) -> list[int]:
    """A JAX key (typed or raw) as a list of integers for numpy's ``default_rng``."""
    bits = jax.random.bits(key, (4,), dtype=np.uint32)
    return [int(b) for b in np.asarray(bits)]


def _selection(metrics) -> float | None:
    """The record's selection value; None (never selected) for a failed candidate, whose
    metrics hold no finite accuracy."""
    value = selection_metric(metrics)
    return value if math.isfinite(value) else None


def make_random(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """AMLA's random baseline; ``cfg.iterations`` random networks are trained."""
    iterations = int(cfg.iterations)
    settings = settings_for(RandomOptions.from_config(cfg.options), template, iterations)

    def init(key) -> RandomState:
        del key
        return RandomState(0, "[]", -1)

    def ask(key, state: RandomState) -> tuple[NetworkSpec, RandomState]:
        network = random_network(key_to_seed(key), settings)
        body = MacroSpec.from_json({"type": "macro", "network": network})
        return template.replace_body(body), state

    def tell(state: RandomState, spec: NetworkSpec, result) -> RandomState:
        record = {
            "iteration": state.iteration,
            "spec": spec.to_json(),
            "metrics": {k: float(v) for k, v in result.metrics.items()},
            "num_params": int(result.num_params),
            "selection": _selection(result.metrics),
        }
        history = [*state.records, record]
        index = best_index([r["selection"] for r in history])
        return RandomState(
            iteration=state.iteration + 1,
            history=json.dumps(history),
            best_index=-1 if index is None else index,
        )

    def done(state: RandomState) -> bool:
        return state.iteration >= iterations

    def best(state: RandomState) -> NetworkSpec:
        if state.best_index < 0 and state.iteration:
            raise AlgorithmError(
                f"random: all {state.iteration} candidates failed (see candidates.jsonl's "
                "reasons); lower optim.learning_rate and use a new run directory"
            )
        if state.best_index < 0:
            raise AlgorithmError("random: no network has been evaluated yet")
        return NetworkSpec.from_json(state.records[state.best_index]["spec"])

    return Algorithm("random", init, ask, tell, done, best)
