"""NAC: Neural Architecture Construction with EnvelopeNets, as a search algorithm.

AMLA's ``config.nac.construction.json`` task (spec A.5-A.7): start from the EnvelopeNet
of ``layers_per_stage`` full envelope cells per stage; each iteration trains the current
network from scratch, reads its per-branch MeanSSS utilities and skip scalars, and
constructs the next network with `construct_amla` (prune the least useful branches of
each growing stage, append one envelope cell, rewire skips). ``nac_worst`` is the
``worst_case`` ablation (prunes the most useful branches).

What the search returns (``best``) follows AMLA: the network constructed by the last
iteration, ``arch_{iterations}``, which the construction task generates but does not
train. The best trained candidate by validation accuracy is kept too (`best_trained`).

Synopsis::

    algorithm = get_algorithm("nac")(AlgoConfig("nac", iterations=5, options={}), template)
    state = algorithm.init(key)
    spec, state = algorithm.ask(key, state)      # the current EnvelopeNet
    state = algorithm.tell(state, spec, result)  # result.utilities / .scalars drive growth
    algorithm.best(state)                        # arch_5, as a NetworkSpec
    json.loads(state["history"])                 # per-iteration arch, utilities, scalars, metrics
"""

from __future__ import annotations

import json

from amla_jax.algos.base import Algorithm, AlgorithmError, State, register, selection_metric
from amla_jax.amla.envelope import construct_amla, initial_envelopenet
from amla_jax.amla.options import NacOptions
from amla_jax.config import AlgoConfig
from amla_jax.selection import best_index
from amla_jax.spec import MacroSpec, NetworkSpec

__all__ = ["best_trained", "make_nac", "make_nac_worst"]


def _network_spec(template: NetworkSpec, network: list) -> NetworkSpec:
    """The template's stem and head around a macro body built from AMLA's list."""
    return template.replace_body(MacroSpec.from_json({"type": "macro", "network": network}))


def best_trained(state: State) -> tuple[int, dict] | None:
    """The trained candidate with the highest selection metric (validation accuracy):
    ``(iteration, history record)``, or None before the first ``tell``. Ties go to the
    earliest."""
    history = json.loads(state["history"])
    index = best_index([record["selection"] for record in history])
    return None if index is None else (index, history[index])


def _make(name: str, cfg: AlgoConfig, template: NetworkSpec, **forced) -> Algorithm:
    settings = NacOptions.from_config(cfg.options).settings(template.stem_width, **forced)
    iterations = int(cfg.iterations)
    if iterations < 0:
        raise AlgorithmError(f"algo.iterations: must be >= 0, got {iterations}")

    def init(key) -> State:
        del key  # construction is deterministic given the statistics
        network = initial_envelopenet(settings)
        return {"iteration": 0, "arch": json.dumps(network), "history": "[]", "best_index": -1}

    def ask(key, state: State) -> tuple[NetworkSpec, State]:
        del key
        return _network_spec(template, json.loads(state["arch"])), state

    def tell(state: State, spec: NetworkSpec, result) -> State:
        del spec  # the state's arch is what was asked for
        network = json.loads(state["arch"])
        utilities = {str(k): float(v) for k, v in result.utilities.items()}
        scalars = {
            str(dest): {str(src): float(v) for src, v in sources.items()}
            for dest, sources in result.scalars.items()
        }
        record = {
            "iteration": state["iteration"],
            "arch": network,
            "utilities": utilities,
            "scalars": scalars,
            "metrics": {k: float(v) for k, v in result.metrics.items()},
            "num_params": int(result.num_params),
            "selection": selection_metric(result.metrics),
        }
        history = [*json.loads(state["history"]), record]
        new = {
            "iteration": state["iteration"] + 1,
            "arch": json.dumps(construct_amla(network, utilities, scalars, settings)),
            "history": json.dumps(history),
        }
        return {**new, "best_index": best_trained(new)[0]}

    def done(state: State) -> bool:
        return state["iteration"] >= iterations

    def best(state: State) -> NetworkSpec:
        return _network_spec(template, json.loads(state["arch"]))

    return Algorithm(name, init, ask, tell, done, best)


@register("nac")
def make_nac(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """NAC construction; ``cfg.options`` holds AMLA's ``envelopenet`` keys (`NacOptions`),
    ``cfg.iterations`` the number of networks trained (AMLA's ``iterations``)."""
    return _make("nac", cfg, template)


@register("nac_worst")
def make_nac_worst(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """NAC with ``worst_case`` forced on: prunes the highest-utility branches (A.8)."""
    return _make("nac_worst", cfg, template, worst_case=True)
