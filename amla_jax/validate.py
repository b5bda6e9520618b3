"""The one validation of a run config, before any work starts. No JAX.

The entry point (`amla_jax.__main__`, before Hydra creates the run directory), ``amla add``
(`amla_jax.tasks`, before a task is queued) and library callers (`amla_jax.runner.run`)
all pass through here, so a bad value fails the same way everywhere: a `ConfigError`
whose one-line message names the key and says what is allowed.

Two layers: `run_config` turns a composed OmegaConf config into the `RunConfig`
dataclasses, rejecting keys the schema does not know (Hydra's ``+key=value`` appends a
key even to a structured config, so the schema alone does not catch ``+foo=bar``);
`check_config` checks the values that types cannot (ranges, int32 budgets, finite
numbers, known optimiser and schedule names).

Synopsis::

    from amla_jax.compose import compose_config
    from amla_jax.validate import check_config, run_config
    cfg = run_config(compose_config(["train.steps=10"]), run_dir="runs/x")  # checked
    check_config(RunConfig())            # a hand-built config (raises ConfigError)
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from amla_jax.config import ConfigError, RunConfig

INT32_MAX = 2**31 - 1
# Batches of more examples than this cannot fit in memory for any network here.
MAX_BATCH = 1 << 20
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "exponential", "cosine", "sgdr")
# Fields of type Any or dict whose keys belong to someone else (a spec, an algorithm).
OPEN_FIELDS = frozenset({"model.network", "algo.options"})


def run_config(composed: Any, run_dir: str | None = None) -> RunConfig:
    """The checked `RunConfig` of a composed Hydra config (an OmegaConf ``DictConfig``).

    Args:
      composed: the config that `amla_jax.compose.compose_config` or Hydra composed.
      run_dir: replaces ``run_dir`` (which interpolates Hydra's output directory, unset
        outside a Hydra run); None keeps it.

    Raises:
      ConfigError: an unknown key, a wrongly typed or out-of-range value.
    """
    from omegaconf import OmegaConf  # noqa: PLC0415 (only composed configs need it)
    from omegaconf.errors import OmegaConfBaseException  # noqa: PLC0415

    check_keys(composed, RunConfig)
    try:
        plain = OmegaConf.to_container(composed, resolve=False)
        if run_dir is not None:
            plain["run_dir"] = run_dir
        node = OmegaConf.merge(OmegaConf.structured(RunConfig), plain)
        cfg = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"config: {message}") from None
    check_config(cfg)
    return cfg


def check_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Raises `ConfigError` for a key of ``node`` that the dataclass ``schema`` lacks."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys() if hasattr(node, "keys") else ():
        name = f"{prefix}{key}"
        if key not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"{name}: unknown key (a '+' override adds keys the schema does not have); "
                f"valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {valid}"
            )
        child_type = _dataclass_type(fields[key])
        if child_type is not None and name not in OPEN_FIELDS:
            check_keys(node[key], child_type, f"{name}.")


def _dataclass_type(field: dataclasses.Field) -> type | None:
    factory = field.default_factory
    if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
        return factory
    return None


def check_config(cfg: RunConfig) -> None:
    """Checks the values of ``cfg`` that the schema's types cannot.

    Raises:
      ConfigError: the first bad value, as ``<key>: <value> <what is wrong>; <allowed>``.
    """
    train, optim, algo = cfg.train, cfg.optim, cfg.algo
    _int("train.steps", train.steps, 0 if train.epochs > 0 else 1)
    _number("train.epochs", train.epochs, 0, 1e6)
    _int("train.batch_size", train.batch_size, 1, MAX_BATCH)
    _int("train.eval_batch_size", train.eval_batch_size, 1, MAX_BATCH)
    _int("train.eval_every", train.eval_every, 0)
    _int("train.log_every", train.log_every, 0)
    _int("train.bn_calibration_batches", train.bn_calibration_batches, 0)
    _int("algo.iterations", algo.iterations, 1, 100_000)
    _int("seed", cfg.seed, 0, 2**32 - 1)
    if optim.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optim.optimizer: unknown {optim.optimizer!r}; valid: {OPTIMIZERS}")
    if optim.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule: unknown {optim.schedule!r}; valid: {SCHEDULES}")
    _number("optim.learning_rate", optim.learning_rate, 0, 1e6, low_open=True)
    _number("optim.min_learning_rate", optim.min_learning_rate, 0, optim.learning_rate)
    _number("optim.momentum", optim.momentum, 0, 1, high_open=True)
    _number("optim.b1", optim.b1, 0, 1, high_open=True)
    _number("optim.b2", optim.b2, 0, 1, high_open=True)
    _number("optim.decay_rate", optim.decay_rate, 0, 1, low_open=True)
    _number("optim.decay_epochs", optim.decay_epochs, 0, 1e6, low_open=True)
    _number("optim.sgdr_t0", optim.sgdr_t0, 0, 1e6, low_open=True)
    _number("optim.sgdr_t_mul", optim.sgdr_t_mul, 1, 1e3)
    _number("optim.warmup_epochs", optim.warmup_epochs, 0, 1e6)
    _number("optim.l2", optim.l2, 0, 1e3)
    _number("optim.weight_decay", optim.weight_decay, 0, 1e3)
    _number("optim.label_smoothing", optim.label_smoothing, 0, 1, high_open=True)
    _number("optim.ema_decay", optim.ema_decay, 0, 1, high_open=True)
    _number("optim.aux_weight", optim.aux_weight, 0, 1e3)
    _number("optim.drop_path", optim.drop_path, 0, 1, high_open=True)
    for key in ("clip_norm", "global_clip_norm"):
        value = getattr(optim, key)
        if value is not None:  # null disables clipping; 0 or less would zero every gradient
            _number(f"optim.{key}", value, 0, 1e12, low_open=True, hint="or null to disable")
    _number("dataset.validation_size", cfg.dataset.validation_size, 0, 1e9)


def _int(key: str, value: Any, low: int, high: int = INT32_MAX) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{key}: {value!r} is out of range; it must be an integer in {low}..{high}"
        )


def _number(
    key: str,
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = number and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        extra = f" ({hint})" if hint else ""
        raise ConfigError(f"{key}: {value!r} is out of range; it must be in {interval}{extra}")


def network_of(cfg: RunConfig, cwd: str | Path | None = None):
    """The template network of ``cfg``: ``spec=`` / ``model.path`` (a JSON file, relative
    to ``cwd``) or ``model.network``; checked, so size and type errors come before work.

    Raises:
      SpecError: no network, or a malformed one (the message names the file and field).
    """
    from amla_jax.amla import load_spec, spec_from_json  # noqa: PLC0415
    from amla_jax.spec import SpecError  # noqa: PLC0415

    path = cfg.spec or cfg.model.path
    if path:
        return load_spec(Path(cwd or ".") / path)
    if cfg.model.network is None:
        raise SpecError("model: no network; pick one with model=<name> or spec=<file.json>")
    plain = json.loads(json.dumps(cfg.model.network, default=dataclasses.asdict))
    try:
        return spec_from_json(plain)
    except SpecError as exc:
        raise SpecError(f"model.network: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise SpecError(
            f"model.network: malformed ({type(exc).__name__}: {exc}); check its field types"
        ) from None


def check_run_dir(run_dir: str | Path | None) -> None:
    """Raises `ConfigError` if ``run_dir`` (``hydra.run.dir=``) exists but is not a
    directory, or its nearest existing parent is not one (so it cannot be created)."""
    if not run_dir:
        return
    path = Path(run_dir)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise ConfigError(
                    f"hydra.run.dir: {str(candidate)!r} is a file, not a directory; "
                    "pick another run directory"
                )
            return
