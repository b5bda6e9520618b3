"""A fake evaluator for algorithm and search tests: made-up, deterministic TrainResults."""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import numpy as np

from amla_jax.amla import layout as env
from amla_jax.spec import MacroSpec, NetworkSpec

CELL = {
    "Branch1": "1x1",
    "Branch2": "3x3",
    "Branch3": "3x3sep",
    "Branch4": "5x5",
    "Branch5": "5x5sep",
    "Branch6": "7x7sep",
}
# AMLA's config.nac.construction.json "envelopenet" section (conf/algo/nac.yaml).
AMLA_SECTION = {
    "stages": 3,
    "layers_per_stage": [2, 2, 2],
    "max_layers_per_stage": [7, 6, 2],
    "construction": [True, True, False],
    "parameter_limits": [False, False, False],
    "max_filter_prune": 6,
    "envelopecell": CELL,
    "skip": True,
    "worst_case": False,
}


@dataclasses.dataclass
class FakeResult:
    """What `tell` reads of a `train.TrainResult`, plus the timings the search records."""

    metrics: dict
    utilities: dict
    scalars: dict
    num_params: int
    steps: int = 1
    train_seconds: float = 0.5
    compile_seconds: float = 0.25
    state: object = None


def template_spec(stem_width: int = 8) -> NetworkSpec:
    """A small EnvelopeNet template: AMLA's stem and head, stem width ``stem_width``."""
    network = [
        {"filters": dict(CELL), "outputs": stem_width},
        {"widener": {}},
        {"filters": dict(CELL), "outputs": 2 * stem_width},
    ]
    return NetworkSpec.from_json(
        {
            "format": "amla_jax.spec/1",
            "name": "template",
            "stem": [
                [{"block": "conv2d", "kernel_size": [1, 1], "outputs": stem_width}],
                [{"block": "lrn"}],
            ],
            "arch": {"type": "macro", "network": network},
            "head": [
                {"block": "reduce_mean"},
                {"block": "dropout", "keep_prob": 0.8},
                {"block": "fc-final", "outputs": 10},
            ],
        }
    )


def _uniform(*parts) -> float:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def fake_evaluate(spec: NetworkSpec, key, candidate_id: int) -> FakeResult:
    """Deterministic made-up statistics from (spec, key): utilities for every branch of a
    macro body, a scalar for every listed skip edge, accuracies in (0.5, 1)."""
    seed = tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel())
    text = spec.dumps(sort_keys=True)
    utilities, scalars = {}, {}
    if isinstance(spec.body, MacroSpec):
        network = spec.body.to_json()["network"]
        utilities = {n: _uniform(seed, text, n) for n in env.branch_names(network)}
        for cell, entry in enumerate(network, start=1):
            if entry.get("inputs") and isinstance(entry["inputs"], list):
                scalars[cell] = {s: _uniform(seed, text, cell, s) for s in entry["inputs"]}
    validation = 0.5 + _uniform(seed, text, "validation") / 2
    metrics = {
        "train/loss": 1.0 - validation / 2,
        "validation/accuracy": validation,
        "test/accuracy": 0.5 + _uniform(seed, text, "test") / 2,
    }
    return FakeResult(metrics, utilities, scalars, num_params=len(text) * 10)
