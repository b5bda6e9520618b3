"""AMLA task configs (``config.*.json``) as Hydra overrides for ``python -m amla_jax``.

An AMLA task config holds the network (``arch``, or the ``envelopenet`` section from
which `amla_jax.amla.load_spec` builds the initial EnvelopeNet), the run's
``parameters`` and the ``child_training`` recipe (amla_spec.md B). `overrides_from_amla`
maps each setting onto our config: the network becomes ``spec=<file>``, the mode and
algorithm pick ``algo=``, the construction settings become ``algo.options.*`` and the
recipe becomes ``optim.*`` over ``optim=amla`` (AMLA's Nesterov momentum, staircase decay
and weight EMA, which its JSON does not spell out). Settings that do not change a run on
one device (``exec``, ``gpus``, ``data_dir``, ``log_stats``, ``eval_interval``,
``image_size``, ...) are dropped; any other setting that cannot be carried over is
reported with an `AmlaConfigWarning`.

Synopsis::

    from amla_jax.amla.task_config import merge_overrides, overrides_from_amla
    overrides = overrides_from_amla("config.nac.construction.test.json")
    # ['spec=/abs/config.nac.construction.test.json', 'algo=nac', 'algo.iterations=3', ...]
    merge_overrides(overrides, ["dataset=digits"])     # the user's settings win
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from amla_jax.amla.options import NacOptions, RandomOptions
from amla_jax.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# Keys that AMLA reads but that do not change what a single-device run computes.
IGNORED_PARAMETERS = frozenset(
    {
        "arch_name",
        "exec",
        "gpus",
        "gpu_usage",
        "data_dir",
        "train_dir",
        "log_stats",
        "eval_interval",
        "image_size",
    }
)
TRANSLATED_PARAMETERS = frozenset(
    {"mode", "algorithm", "steps", "batch_size", "dataset", "iterations"}
)
# Sections that `load_spec` reads (the network) or that are translated here.
NETWORK_SECTIONS = frozenset({"arch", "init_cell", "classification_cell"})
ENVELOPENET_KEYS = NacOptions.keys()
RANDOM_KEYS = RandomOptions.amla_keys()
# Unquoted, Hydra would read these as a bool, null or a number.
RESERVED_WORDS = frozenset({"true", "false", "null", "nan", "inf"})
# AMLA's exponential_decay defaults (amla_spec.md A.9a): x0.999 every 2 epochs.
DEFAULT_DECAY = {"decay": 0.999, "epochs_per_decay": 2.0}


class AmlaConfigError(UserError):
    """The file is not an AMLA task config we can run; the message names the key."""


class AmlaConfigWarning(UserWarning):
    """A setting of the AMLA config that the translated run does not honour."""


def overrides_from_amla(path: str | Path) -> list[str]:
    """The Hydra overrides that run the AMLA task config at ``path``.

    Args:
      path: an AMLA task config (construction configs with an ``envelopenet`` section,
        train configs with an ``arch``).

    Returns:
      Overrides for ``python -m amla_jax``, the network first (``spec=<absolute path>``).

    Raises:
      AmlaConfigError: the file is missing, not JSON, or its mode/algorithm cannot run.
    """
    path = Path(path).absolute()
    config = read_amla_config(path)
    params = _section(config, "parameters")
    _warn_unknown(
        "top-level key",
        set(config) - {"parameters", "child_training", "envelopenet", "random"} - NETWORK_SECTIONS,
    )
    _warn_unknown("parameters", set(params) - IGNORED_PARAMETERS - TRANSLATED_PARAMETERS)
    name = params.get("arch_name")
    if name is not None and not isinstance(name, str):
        raise AmlaConfigError(
            f"AMLA config {str(path)!r}: parameters.arch_name: must be a string, got {name!r}"
        )
    overrides = [f"spec={hydra_value(str(path))}"]
    try:
        overrides += _algorithm(config, params)
        overrides += _budget(params)
        overrides += _optimizer(_section(config, "child_training"))
    except KeyError as exc:
        raise AmlaConfigError(f"AMLA config {str(path)!r}: missing key {exc}") from None
    except AmlaConfigError as exc:
        raise AmlaConfigError(f"AMLA config {str(path)!r}: {exc}") from None
    return overrides


def read_amla_config(path: str | Path) -> dict:
    """The JSON object in ``path``; `AmlaConfigError` names the file if it is not one."""
    try:
        config = json.loads(Path(path).read_text())
    except OSError as exc:
        raise AmlaConfigError(
            f"AMLA config {str(path)!r}: cannot read it ({exc.strerror})"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AmlaConfigError(f"AMLA config {str(path)!r}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise AmlaConfigError(f"AMLA config {str(path)!r}: must hold a JSON object")
    return config


def merge_overrides(base: list[str], user: list[str]) -> list[str]:
    """``base`` then ``user``, dropping the ``base`` overrides of keys that ``user`` sets."""
    keys = {override_key(o) for o in user}
    return [o for o in base if override_key(o) not in keys] + list(user)


def override_key(override: str) -> str:
    """The key an override sets: ``+a.b=1`` → ``a.b``, ``~a`` → ``a``, ``optim=x`` → ``optim``."""
    return override.split("=", 1)[0].lstrip("+~")


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (strings quoted unless plain words/paths)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise AmlaConfigError(f"value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    plain = text.isascii() and text and all(c.isalnum() or c in "_/.-" for c in text)
    if plain and not text[0].isdigit() and text.lower() not in RESERVED_WORDS:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(setting: dict, key: str, where: str, default: Any = None) -> float:
    """``setting[key]`` (or ``default``) if it is a finite JSON number, else an
    `AmlaConfigError` naming ``where.key``."""
    value = setting.get(key, default) if default is not None else setting[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value):
        raise AmlaConfigError(f"{where}.{key}: must be a number, got {value!r}")
    return value


def _section(config: dict, name: str) -> dict:
    section = config.get(name, {})
    if not isinstance(section, dict):
        raise AmlaConfigError(f"{name}: must be an object, not {type(section).__name__}")
    return section


def _warn_unknown(where: str, keys: set[str]) -> None:
    for key in sorted(keys):
        warnings.warn(f"{where} {key!r}: not supported; ignored", AmlaConfigWarning, stacklevel=3)


def _algorithm(config: dict, params: dict) -> list[str]:
    """``algo=`` and its options from ``mode`` and ``algorithm``."""
    mode, algorithm = params.get("mode", "train"), params.get("algorithm", "deterministic")
    if mode not in ("construct", "train"):
        raise AmlaConfigError(f"parameters.mode: {mode!r} is not supported; use construct or train")
    if mode == "train" or algorithm == "deterministic":
        if "envelopenet" in config or "random" in config:
            warnings.warn(
                f"parameters.mode {mode!r}: trains the network once; the construction "
                "settings are not used",
                AmlaConfigWarning,
                stacklevel=3,
            )
        return ["algo=fixed"]
    sections = {"envelopenet": ("nac", ENVELOPENET_KEYS), "random": ("random", RANDOM_KEYS)}
    if algorithm not in sections:
        raise AmlaConfigError(
            f"parameters.algorithm: {algorithm!r} is not supported; use envelopenet, random "
            "or deterministic"
        )
    name, known = sections[algorithm]
    options = _section(config, algorithm)
    _warn_unknown(f"{algorithm}", set(options) - set(known))
    overrides = [f"algo={name}"]
    if "iterations" in params:
        overrides.append(f"algo.iterations={hydra_value(params['iterations'])}")
    for key in known:
        if key not in options:
            continue
        if isinstance(options[key], dict):  # Hydra merges dicts: replace it instead
            overrides.append(f"~algo.options.{key}")
            overrides.append(f"+algo.options.{key}={hydra_value(options[key])}")
        else:
            overrides.append(f"++algo.options.{key}={hydra_value(options[key])}")
    return overrides


def _budget(params: dict) -> list[str]:
    """``train.steps``, ``train.batch_size`` and ``dataset`` (if ``conf/dataset`` has it)."""
    overrides = []
    if "steps" in params:
        overrides.append(f"train.steps={hydra_value(params['steps'])}")
    if "batch_size" in params:
        overrides.append(f"train.batch_size={hydra_value(params['batch_size'])}")
        towers = _num_gpus(params.get("gpus"))
        if towers > 1:
            warnings.warn(
                f"parameters.gpus: AMLA trained {towers} towers of batch_size "
                f"{params['batch_size']}; this run takes one batch of {params['batch_size']} "
                f"(add train.batch_size={towers * params['batch_size']} to match)",
                AmlaConfigWarning,
                stacklevel=3,
            )
    dataset = params.get("dataset")
    if dataset is not None:
        known = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))
        if dataset in known:
            overrides.append(f"dataset={dataset}")
        else:
            warnings.warn(
                f"parameters.dataset {dataset!r}: not one of {', '.join(known)}; the default "
                "dataset is used (pick one with dataset=<name>)",
                AmlaConfigWarning,
                stacklevel=3,
            )
    return overrides


def _num_gpus(gpus: Any) -> int:
    if isinstance(gpus, str):  # config.run.json writes "[]"
        try:
            gpus = json.loads(gpus)
        except json.JSONDecodeError:
            return 1
    return len(gpus) if isinstance(gpus, list) else 1


def _optimizer(training: dict) -> list[str]:
    """``child_training`` as ``optim.*`` overrides over AMLA's recipe (``optim=amla``)."""
    if not training:
        return []
    overrides = ["optim=amla"]
    translators = {
        "optimizer": _optimizer_type,
        "lr": _learning_rate,
        "gradient_clipping": _clipping,
        "regularization": _regularization,
    }
    _warn_unknown("child_training", set(training) - set(translators) - {"label_smoothing"})
    if training.get("label_smoothing"):  # README: every setting not carried over is reported
        warnings.warn(
            f"child_training.label_smoothing {training['label_smoothing']!r}: not carried over "
            "(AMLA's recipe has none); add optim.label_smoothing=<value> to use it",
            AmlaConfigWarning,
            stacklevel=2,
        )
    for key, translate in translators.items():
        setting = training.get(key)
        if setting is None:
            continue
        if not isinstance(setting, dict):
            raise AmlaConfigError(f"child_training.{key}: must be an object")
        overrides += translate(setting)
    return overrides


def _unsupported(key: str, setting: dict) -> list[str]:
    warnings.warn(
        f"child_training.{key}: type {setting.get('type')!r} is not supported; "
        "AMLA's recipe (optim=amla) is used",
        AmlaConfigWarning,
        stacklevel=4,
    )
    return []


def _optimizer_type(setting: dict) -> list[str]:
    kind = setting.get("type")
    if kind == "sgd":
        return ["optim.optimizer=sgd"]
    if kind == "momentum":  # AMLA's momentum optimiser is Nesterov's (amla_spec.md A.9a)
        momentum = _number(setting, "momentum", "child_training.optimizer", 0.9)
        return ["optim.optimizer=momentum", f"optim.momentum={hydra_value(momentum)}"]
    return _unsupported("optimizer", setting)


def _learning_rate(setting: dict) -> list[str]:
    kind = setting.get("type")
    if kind == "exponential_decay":
        decay = {**DEFAULT_DECAY, **setting}
        where = "child_training.lr"
        return [
            "optim.schedule=exponential",
            f"optim.learning_rate={hydra_value(_number(decay, 'initial', where))}",
            f"optim.decay_rate={hydra_value(_number(decay, 'decay', where))}",
            f"optim.decay_epochs={hydra_value(float(_number(decay, 'epochs_per_decay', where)))}",
        ]
    if kind == "cosine_decay":  # SGDR with AMLA's integer epoch counter
        where = "child_training.lr"
        return [
            "optim.schedule=sgdr",
            f"optim.learning_rate={hydra_value(_number(setting, 'max', where))}",
            f"optim.min_learning_rate={hydra_value(_number(setting, 'min', where, 0.0))}",
            f"optim.sgdr_t0={hydra_value(float(_number(setting, 'T_0', where, 10)))}",
            f"optim.sgdr_t_mul={hydra_value(float(_number(setting, 'T_mul', where, 2)))}",
        ]
    return _unsupported("lr", setting)


def _clipping(setting: dict) -> list[str]:
    if setting.get("type") == "norm":
        value = _number(setting, "value", "child_training.gradient_clipping")
        return [f"optim.clip_norm={hydra_value(value)}"]
    return _unsupported("gradient_clipping", setting)


def _regularization(setting: dict) -> list[str]:
    if setting.get("type") == "l2":
        value = _number(setting, "value", "child_training.regularization")
        return [f"optim.l2={hydra_value(value)}"]
    return _unsupported("regularization", setting)
