"""Composing the run config from ``conf/`` and overrides, without running anything.

The Hydra entry point (`amla_jax.__main__`) checks overrides with it before Hydra runs,
and ``amla add`` (`amla_jax.tasks`) checks a task's overrides with it before queueing.
Hydra and the config schema are imported only when a config is composed, so importing
this module costs nothing.

Synopsis::

    from amla_jax.compose import compose_config
    cfg = compose_config(["algo=random", "dataset=digits"])
    cfg.algo.name, cfg.algo.iterations
"""

from __future__ import annotations

from pathlib import Path

from amla_jax.errors import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class OverrideError(UserError):
    """An override does not compose (unknown group option or key, wrongly typed value)."""


def compose_config(overrides: list[str], hydra: bool = False):
    """The config that ``overrides`` compose to (not resolved; the ``hydra`` node only
    where ``hydra`` is true).

    Raises:
      OverrideError: a bad override (an unknown group option or key, a wrongly typed
        value), with Hydra's message folded into one line.
    """
    from hydra import compose, initialize_config_dir  # noqa: PLC0415
    from hydra.errors import HydraException  # noqa: PLC0415
    from omegaconf.errors import OmegaConfBaseException  # noqa: PLC0415

    from amla_jax.config import register_configs  # noqa: PLC0415

    register_configs()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        # "Error merging override x=abc" alone does not say why; the cause does.
        cause = exc.__cause__
        reason = f": {str(cause).splitlines()[0]}" if cause and str(cause).strip() else ""
        raise OverrideError(_one_line(str(exc)) + reason) from None


def _one_line(message: str) -> str:
    """Hydra's multi-line messages (with their option lists) folded into one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = " ".join(lines).split(" Config search path")[0]
    return text.replace("Available options in", "; available options in")
