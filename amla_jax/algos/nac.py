"""NAC: Neural Architecture Construction with EnvelopeNets, as a search algorithm.

AMLA's ``config.nac.construction.json`` task (spec A.5-A.7): start from the EnvelopeNet
of ``layers_per_stage`` full envelope cells per stage; each iteration trains the current
network from scratch, reads its per-branch MeanSSS utilities and skip scalars, and
constructs the next network with `amla_jax.amla.envelope.construct_amla` (prune the least
useful branches of each growing stage, append one envelope cell, rewire skips).
``nac_worst`` is the ``worst_case`` ablation (prunes the most useful branches). Options
are `amla_jax.amla.options.NacOptions` (AMLA's ``envelopenet`` section).

What the search returns (``best``) follows AMLA: the network constructed by the last
iteration, ``arch_{iterations}``, which the construction task generates but does not
train. The best trained candidate by validation accuracy is kept too (`best_trained`).

Synopsis::

    algorithm = get_algorithm("nac")(AlgoConfig("nac", iterations=5, options={}), template)
    state = algorithm.init(key)
    spec, state = algorithm.ask(key, state)      # the current EnvelopeNet
    state = algorithm.tell(state, spec, result)  # result.utilities / .scalars drive growth
    algorithm.best(state)                        # arch_5, as a NetworkSpec
    state.records                                # per-iteration arch, utilities, scalars, metrics
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from amla_jax.algos.base import Algorithm, AlgorithmError
from amla_jax.amla.envelope import construct_amla, initial_envelopenet
from amla_jax.amla.options import NacOptions
from amla_jax.config import AlgoConfig
from amla_jax.selection import best_index, selection_metric
from amla_jax.spec import MacroSpec, NetworkSpec

__all__ = ["NacState", "best_trained", "make_nac", "make_nac_worst"]


class NacState(NamedTuple):
    """NAC's search state; networks and history are JSON text (fixed pytree structure).

    Attributes:
      iteration: networks trained so far.
      arch: the network to train next (AMLA's list), as JSON.
      history: one record per trained network (``iteration``, ``arch``, ``utilities``,
        ``scalars``, ``metrics``, ``num_params``, ``selection``), as a JSON list.
      best_index: the record with the best selection metric, -1 before the first.
    """

    iteration: int
    arch: str
    history: str
    best_index: int

    @property
    def network(self) -> list[dict[str, Any]]:
        """The network to train next, as AMLA's list."""
        return json.loads(self.arch)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The history records, oldest first."""
        return json.loads(self.history)

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "arch": self.network, "history": self.records}


def best_trained(state: NacState) -> tuple[int, dict] | None:
    """The trained candidate with the highest selection metric (validation accuracy):
    ``(iteration, history record)``, or None before the first ``tell``. Ties go to the
    earliest."""
    history = state.records
    index = best_index([record["selection"] for record in history])
    return None if index is None else (index, history[index])


def _network_spec(template: NetworkSpec, network: list) -> NetworkSpec:
    """The template's stem and head around a macro body built from AMLA's list."""
    return template.replace_body(MacroSpec.from_json({"type": "macro", "network": network}))


def _record(iteration: int, network: list, result) -> dict[str, Any]:
    """The history record of one trained network (what `tell` keeps of ``result``)."""
    return {
        "iteration": iteration,
        "arch": network,
        "utilities": {str(k): float(v) for k, v in result.utilities.items()},
        "scalars": {
            str(dest): {str(src): float(v) for src, v in sources.items()}
            for dest, sources in result.scalars.items()
        },
        "metrics": {k: float(v) for k, v in result.metrics.items()},
        "num_params": int(result.num_params),
        "selection": selection_metric(result.metrics),
    }


def _make(name: str, cfg: AlgoConfig, template: NetworkSpec, **forced) -> Algorithm:
    settings = NacOptions.from_config(cfg.options).settings(template.stem_width, **forced)
    iterations = int(cfg.iterations)
    if iterations < 0:
        raise AlgorithmError(f"algo.iterations: must be >= 0, got {iterations}")

    def init(key) -> NacState:
        del key  # construction is deterministic given the statistics
        return NacState(0, json.dumps(initial_envelopenet(settings)), "[]", -1)

    def ask(key, state: NacState) -> tuple[NetworkSpec, NacState]:
        del key
        return _network_spec(template, state.network), state

    def tell(state: NacState, spec: NetworkSpec, result) -> NacState:
        del spec  # the state's arch is what was asked for
        record = _record(state.iteration, state.network, result)
        history = [*state.records, record]
        arch = construct_amla(state.network, record["utilities"], record["scalars"], settings)
        return NacState(
            iteration=state.iteration + 1,
            arch=json.dumps(arch),
            history=json.dumps(history),
            best_index=best_index([r["selection"] for r in history]),
        )

    def done(state: NacState) -> bool:
        return state.iteration >= iterations

    def best(state: NacState) -> NetworkSpec:
        return _network_spec(template, state.network)

    # NAC grows the network it trained from its statistics: a failed one is retried.
    return Algorithm(name, init, ask, tell, done, best, retry_failed=True)


def make_nac(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """NAC construction; ``cfg.options`` holds AMLA's ``envelopenet`` keys (`NacOptions`),
    ``cfg.iterations`` the number of networks trained (AMLA's ``iterations``)."""
    return _make("nac", cfg, template)


def make_nac_worst(cfg: AlgoConfig, template: NetworkSpec) -> Algorithm:
    """NAC with ``worst_case`` forced on: prunes the highest-utility branches (A.8)."""
    return _make("nac_worst", cfg, template, worst_case=True)
