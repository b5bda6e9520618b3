"""Typed configuration: the schema dataclasses behind Hydra's ``conf/`` groups.

Hydra composes ``conf/config.yaml`` with the ``algo``, ``dataset``, ``model``, ``optim``
(+ ``experiment``, ``debug``) groups; `register_configs` puts these dataclasses in
Hydra's ConfigStore as the schema, so an unknown or mistyped key fails at composition.
Everything downstream receives plain dataclass instances (``OmegaConf.to_object``) and
never sees Hydra.

Synopsis::

    from amla_jax.config import RunConfig, OptimConfig
    cfg = RunConfig()                     # the defaults, without Hydra
    cfg.optim.learning_rate = 0.05
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amla_jax.data import DataConfig
from amla_jax.errors import UserError


class ConfigError(UserError):
    """A config value is invalid or out of range; the message names the key and the fix."""


@dataclass
class ModelConfig:
    """The network to train: a spec inline (our JSON format as YAML) or a JSON file.

    Attributes:
      name: a label for the network.
      network: our spec format (``stem``, ``arch``, ``head``), or None with ``path``.
      path: a JSON spec file (our format or an AMLA task config); wins over ``network``.
      width_multiplier: reserved for search spaces that scale widths.
    """

    name: str = "custom"
    network: Any = None
    path: str | None = None


@dataclass
class OptimConfig:
    """Optimiser, schedule and regularisation: one training recipe.

    Epoch-valued fields are converted to steps with ``num_train // batch_size``.
    """

    name: str = "default"
    optimizer: str = "momentum"  # sgd | momentum | nesterov | adam | adamw
    learning_rate: float = 0.04
    momentum: float = 0.9
    nesterov: bool = True
    b1: float = 0.9
    b2: float = 0.999
    schedule: str = "constant"  # constant | exponential | cosine | sgdr
    decay_rate: float = 0.999  # exponential: factor per decay period
    decay_epochs: float = 2.0  # exponential: epochs per decay period
    staircase: bool = True
    min_learning_rate: float = 0.0  # cosine / sgdr floor
    sgdr_t0: float = 10.0  # sgdr: first period in epochs
    sgdr_t_mul: float = 2.0  # sgdr: period multiplier after each restart
    warmup_epochs: float = 0.0
    l2: float = 3e-4  # AMLA: l2 * sum(v**2) over all trainable variables, added to the loss
    weight_decay: float = 0.0  # decoupled (adamw) weight decay
    clip_norm: float | None = 5.0  # per-tensor clip-by-norm (AMLA); None disables
    global_clip_norm: float | None = None  # whole-gradient clip (DARTS); None disables
    label_smoothing: float = 0.0
    ema_decay: float = 0.9999  # 0 disables; ramps as min(d, (1+t)/(10+t)) like TF
    aux_weight: float = 0.4  # auxiliary-head loss weight (micro nets with aux heads)
    drop_path: float = 0.0  # final drop-path rate, ramped linearly over training


@dataclass
class TrainConfig:
    """How long and how to train one network."""

    steps: int = 500
    epochs: float = 0.0  # if > 0, overrides steps: ceil(epochs * num_train / batch_size)
    batch_size: int = 50
    eval_batch_size: int = 256
    eval_every: int = 0  # 0: evaluate only at the end
    log_every: int = 50
    progress: bool = True
    checkpoint: bool = True  # Orbax checkpoint of the final train state
    # Before evaluating, BatchNorm statistics are recomputed for the evaluated (EMA)
    # weights over this many training batches; 0 keeps the running averages.
    bn_calibration_batches: int = 10


@dataclass
class AlgoConfig:
    """The search algorithm; each algorithm reads its own keys from ``options``."""

    name: str = "fixed"
    iterations: int = 1
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluatorConfig:
    """How candidates are evaluated: ``train`` (from scratch) or ``tabular`` (looked up).

    Attributes:
      name: a key of `amla_jax.evaluators.EVALUATORS`.
      column: ``tabular`` only: the table column answered as ``validation/accuracy``.
    """

    name: str = "train"
    column: str = "baseline_accuracy"


@dataclass
class RunConfig:
    """The root config composed by Hydra."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    dataset: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    seed: int = 0
    spec: str | None = None  # a JSON spec file; short for model.path
    run_dir: str = "."


def register_configs() -> None:
    """Registers the schema in Hydra's ConfigStore (called by the entry point only)."""
    from hydra.core.config_store import ConfigStore  # noqa: PLC0415 (Hydra at the edge)

    from amla_jax.launchers import register_resolvers  # noqa: PLC0415

    register_resolvers()  # ${amla.cpus:N} in the launcher presets

    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
