"""``algo=enas``: ENAS weight sharing (Pham et al. 2018, micro search) in the registry, a
`amla_jax.algos.oneshot.OneShotAlgorithm` that the runner drives with
`amla_jax.oneshot.loop.run_oneshot`; the method is `amla_jax.oneshot.enas`.

``algo=enas`` options (``conf/algo/enas.yaml``; ``search_space=`` sets ``space`` and
``space_options``)::

    epochs, batch_size, eval_batch_size
    supernet: {channels, cells_per_stage, layers}   the supernet's sizes (as algo=darts)
    w_lr, w_lr_min, w_momentum, w_weight_decay, w_grad_clip   the shared weights' SGD
    controller_hidden, tanh_constant, temperature, exclude_none   the LSTM controller
    controller_lr, controller_b1, controller_eps                  its Adam
    baseline_decay, entropy_weight, controller_samples            REINFORCE
    derive_samples           the final arch is the best of this many controller samples

The defaults are the ENAS paper's (`amla_jax.oneshot.enas` lists them) except the budget
(``epochs``, ``batch_size``), which the config sets.

Synopsis::

    algorithm = get_algorithm("enas")(AlgoConfig("enas", 1, {"epochs": 2}), template)
    supernet = algorithm.make_supernet(10)
    method = algorithm.make_method(total_steps=1000)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from amla_jax.algos.oneshot import OneShotAlgorithm, _check, supernet_sizes
from amla_jax.amla.options import OptionsError
from amla_jax.spaces import get_space


@dataclasses.dataclass(frozen=True)
class EnasOptions:
    """``algo=enas``'s options (see the module docstring)."""

    space: str = "nb201"
    space_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    supernet: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 150
    batch_size: int = 160
    eval_batch_size: int = 256
    w_lr: float = 0.05
    w_lr_min: float = 0.0005
    w_momentum: float = 0.9
    w_weight_decay: float = 1e-4
    w_grad_clip: float = 5.0
    controller_hidden: int = 100
    tanh_constant: float = 2.5
    temperature: float = 5.0
    exclude_none: bool | None = None  # None: true on the DARTS space only
    controller_lr: float = 3.5e-4
    controller_b1: float = 0.0
    controller_eps: float = 1e-3
    baseline_decay: float = 0.99
    entropy_weight: float = 1e-4
    controller_samples: int = 1
    derive_samples: int = 10
    total_steps: int = 0  # the shared weights' cosine schedule length; set by make_method

    def __post_init__(self) -> None:
        for name, high in (("epochs", 100_000), ("batch_size", 1 << 20),
                           ("eval_batch_size", 1 << 20), ("controller_hidden", 1 << 16),
                           ("controller_samples", 1024), ("derive_samples", 1 << 20)):  # fmt: skip
            _check(name, getattr(self, name), int, 1, high)
        _check("w_lr", self.w_lr, float, 1e-12, 1e3)
        _check("w_lr_min", self.w_lr_min, float, 0, self.w_lr)
        _check("controller_lr", self.controller_lr, float, 1e-12, 1e3)
        for name in ("w_momentum", "controller_b1", "baseline_decay"):
            _check(name, getattr(self, name), float, 0, 0.999999)
        for name in ("w_weight_decay", "entropy_weight"):
            _check(name, getattr(self, name), float, 0, 1e3)
        for name in ("w_grad_clip", "tanh_constant", "temperature", "controller_eps"):
            _check(name, getattr(self, name), float, 1e-12, 1e12)
        if self.exclude_none not in (None, True, False):
            raise OptionsError(
                f"algo.options.exclude_none: {self.exclude_none!r}; it must be true, false "
                "or null (true on the DARTS space only)"
            )
        for name in ("space_options", "supernet"):
            if not isinstance(getattr(self, name), Mapping):
                raise OptionsError(f"algo.options.{name}: must be a mapping of sizes")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> EnasOptions:
        """The options of ``algo.options``; unknown keys fail, listing the valid ones."""
        given = dict(options or {})
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "total_steps"]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise OptionsError(
                f"algo.options.{unknown[0]}: unknown for enas; valid: {', '.join(valid)}"
            )
        for name in ("space_options", "supernet"):
            if isinstance(given.get(name), Mapping):
                given[name] = dict(given[name])
        return cls(**given)


def make_enas(cfg, template) -> OneShotAlgorithm:
    """ENAS (`amla_jax.oneshot.enas`) with ``cfg.options`` (`EnasOptions`).

    Raises:
      OptionsError: an unknown, mistyped or out-of-range option.
    """
    options = EnasOptions.from_config(cfg.options)
    sizes = supernet_sizes(options)
    try:
        get_space(options.space)(**dict(options.space_options))
    except TypeError as exc:
        raise OptionsError(f"algo.options.space_options: {exc}") from None

    def make_supernet(num_classes: int):
        from amla_jax.oneshot.supernet import make_supernet as build  # noqa: PLC0415

        return build(options.space, options.space_options, num_classes, **sizes)

    def make_method(total_steps: int):
        from amla_jax.oneshot.enas import make_enas_method  # noqa: PLC0415

        return make_enas_method(dataclasses.replace(options, total_steps=total_steps), cfg.name)

    return OneShotAlgorithm(cfg.name, options, template, make_supernet, make_method)
