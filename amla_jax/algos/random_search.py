"""AMLA's ``random`` baseline: a fresh random network each iteration (spec A.8).

The working semantics of AMLA v0.1 (``envnets/nac_alg.py gen_randomnet``), since AMLA
HEAD's random path is broken: per stage, ``layers_per_stage[s]`` layers each seeded with
one uniform block from ``blocks``, then the other ``num_blocks_per_stage[s] -
layers_per_stage[s]`` uniform blocks dropped into uniform layers (duplicates allowed);
wideners between stages; with ``skip``, dense skip inputs like the EnvelopeNet.

Options (``algo.options``): ``stages``, ``layers_per_stage``, ``num_blocks_per_stage``,
``blocks``, ``parameter_limits``, ``skip``; or ``match: <spec JSON>`` to take the per-stage
layer and block counts from a constructed network (v0.1 matched its random nets to the
constructed "cons-exp-3" net). Without counts, the defaults are those of the network
NAC constructs with its defaults (`amla_jax.algos.nac.DEFAULTS`) in as many iterations
as this search has, so ``algo.iterations`` matches the two in an ablation: with AMLA's 5,
layers [7, 7, 2] and blocks [18, 18, 12]. ``blocks`` defaults to the envelope cell's
ops, so both searches draw from the same ops (v0.1 used {3x3, 3x3sep, 5x5, 5x5sep, 7x7,
7x7sep}). The stem width comes from the template. ``best`` is the trained network with
the best validation accuracy.

Synopsis::

    algorithm = get_algorithm("random")(AlgoConfig("random", iterations=5), template)
    state = algorithm.init(key)
    spec, state = algorithm.ask(jax.random.fold_in(key, 0), state)   # a random network
    state = algorithm.tell(state, spec, result)
    algorithm.best(state)
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np

from amla_jax.algo_options import RANDOM_OPTIONS
from amla_jax.algos.base import Algorithm, AlgorithmError, State, register, selection_metric
from amla_jax.algos.nac import DEFAULTS as NAC_DEFAULTS
from amla_jax.algos.nac import settings_for as nac_settings
from amla_jax.amla.envelope import construct_amla, initial_envelopenet
from amla_jax.amla.layout import branch_names, count_branches, stage_layout
from amla_jax.amla.random_networks import (
    RandomSettings,
    matched_random_settings,
    random_network,
)
from amla_jax.config import AlgoConfig
from amla_jax.spec import MacroSpec, NetworkSpec, SpecError, load_spec

OPTIONS = (*RANDOM_OPTIONS, "match")  # match: copy the counts of a constructed network


def _blocks_default() -> list[str]:
    return list(NAC_DEFAULTS["envelopecell"].values())


def nac_counts(iterations: int, template: NetworkSpec) -> tuple[list[int], list[int]]:
    """Per-stage (layers, blocks) of the network NAC constructs with its defaults in
    ``iterations`` iterations. With the defaults the counts do not depend on the
    statistics (a growing stage always has k prunable branches, loses them and gains one
    cell), so any utilities will do."""
    settings = nac_settings({}, template)
    network = initial_envelopenet(settings)
    for _ in range(iterations):
        utilities = {name: float(i) for i, name in enumerate(branch_names(network))}
        network = construct_amla(network, utilities, {}, settings)
    return [len(cells) for cells in stage_layout(network)], count_branches(network)


def settings_for(
    options: dict[str, Any], template: NetworkSpec, iterations: int = 5
) -> RandomSettings:
    """`RandomSettings` from ``algo.options`` (see the module docstring).

    Raises:
      AlgorithmError: an unknown or contradictory option, or an unreadable ``match`` spec.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise AlgorithmError(
            f"algo.options: unknown keys {unknown} for random; valid: {', '.join(OPTIONS)}"
        )
    blocks = list(options.get("blocks") or _blocks_default())
    skip = bool(options.get("skip", True))
    try:
        if options.get("match"):
            return _matched(options, template, blocks, skip)
        counts = options.get("layers_per_stage"), options.get("num_blocks_per_stage")
        if (counts[0] is None) != (counts[1] is None):
            raise ValueError("give both layers_per_stage and num_blocks_per_stage, or neither")
        layers, num_blocks = counts if counts[0] is not None else nac_counts(iterations, template)
        stages = options.get("stages", len(layers))
        limits = options.get("parameter_limits") or [False] * stages
        return RandomSettings(stages, layers, num_blocks, blocks, limits, template.stem_width, skip)
    except (ValueError, SpecError) as exc:
        raise AlgorithmError(f"algo.options: {exc}") from None


def _matched(options: dict, template: NetworkSpec, blocks: list, skip: bool) -> RandomSettings:
    clash = sorted({"stages", "layers_per_stage", "num_blocks_per_stage"} & set(options))
    if clash:
        raise ValueError(f"match takes the counts from the spec; drop {clash}")
    body = load_spec(options["match"]).body
    if not isinstance(body, MacroSpec):
        raise ValueError(f"match: {options['match']!r} is not a macro (EnvelopeNet) network")
    return matched_random_settings(
        body.to_json(),
        blocks,
        skip,
        parameter_limits=options.get("parameter_limits"),
        stem_width=template.stem_width,
    )


def key_to_seed(key) -> list[int]:
    """A JAX key (typed or raw) as a list of integers for numpy's ``default_rng``."""
    bits = jax.random.bits(key, (4,), dtype=np.uint32)
    return [int(b) for b in np.asarray(bits)]


@register("random")
def make_random(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """AMLA's random baseline; ``cfg.iterations`` random networks are trained."""
    iterations = int(cfg.iterations)
    settings = settings_for(cfg.options, template, iterations)

    def init(key) -> State:
        del key
        return {"iteration": 0, "history": "[]", "best_index": -1}

    def ask(key, state: State) -> tuple[NetworkSpec, State]:
        network = random_network(key_to_seed(key), settings)
        body = MacroSpec.from_json({"type": "macro", "network": network})
        return template.replace_body(body), state

    def tell(state: State, spec: NetworkSpec, result) -> State:
        record = {
            "iteration": state["iteration"],
            "spec": spec.to_json(),
            "metrics": {k: float(v) for k, v in result.metrics.items()},
            "num_params": int(result.num_params),
            "selection": selection_metric(result.metrics),
        }
        history = [*json.loads(state["history"]), record]
        best_index = max(range(len(history)), key=lambda i: (history[i]["selection"], -i))
        return {
            "iteration": state["iteration"] + 1,
            "history": json.dumps(history),
            "best_index": best_index,
        }

    def done(state: State) -> bool:
        return state["iteration"] >= iterations

    def best(state: State) -> NetworkSpec:
        if state["best_index"] < 0:
            raise AlgorithmError("random: no network has been evaluated yet")
        record = json.loads(state["history"])[state["best_index"]]
        return NetworkSpec.from_json(record["spec"])

    return Algorithm("random", init, ask, tell, done, best)
