"""One-shot (weight-sharing) algorithms in the registry: typed options and the object
`amla_jax.runner` drives with `amla_jax.oneshot.loop.run_oneshot` instead of
`amla_jax.search.run_search`.

A `OneShotAlgorithm` is not an ask/tell `Algorithm`: it trains one supernet for the
whole search. Its factory has the registry's signature ``make(cfg, template)``,
validates ``algo.options`` at once (pure Python, no JAX) and defers the supernet and
the method (Flax, optax) to ``make_supernet(num_classes)`` and
``make_method(total_steps)``, called once the dataset is known.

``algo=darts`` options (``conf/algo/darts.yaml``; ``search_space=`` sets ``space`` and
``space_options``, the sizes of the network the derived cell is trained in)::

    order: 1 | 2             first order, or the unrolled second-order hypergradient
    epochs, batch_size, eval_batch_size
    supernet: {channels, cells_per_stage, layers}   the supernet's sizes; each space
                             takes its own (NB201: channels, cells_per_stage; DARTS:
                             channels, layers), so one config serves both spaces
    w_lr, w_lr_min, w_momentum, w_weight_decay, w_grad_clip        the weights' SGD
    alpha_lr, alpha_b1, alpha_b2, alpha_weight_decay               the alphas' Adam

Synopsis::

    algorithm = get_algorithm("darts")(AlgoConfig("darts", 1, {"order": 2}), template)
    isinstance(algorithm, OneShotAlgorithm)      # the runner's test
    supernet = algorithm.make_supernet(10)
    method = algorithm.make_method(total_steps=1000)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from amla_jax.amla.options import OptionsError
from amla_jax.spaces import get_space


class OneShotAlgorithm(NamedTuple):
    """A weight-sharing search, driven by `amla_jax.oneshot.loop.run_oneshot`.

    Attributes:
      name: the registry name.
      options: the validated options (``epochs``, ``batch_size``, ``eval_batch_size``...).
      template: the run's network, passed to ``space.to_spec`` for the answer.
      make_supernet: ``make_supernet(num_classes) -> Supernet``.
      make_method: ``make_method(total_steps) -> OneShotMethod``.
    """

    name: str
    options: Any
    template: Any
    make_supernet: Callable[[int], Any]
    make_method: Callable[[int], Any]


def check_option(name: str, value: Any, kind: type, low: float, high: float = math.inf) -> None:
    """`OptionsError` unless ``algo.options.<name>`` is a finite ``kind`` in [low, high]."""
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and low <= value <= high):
        what = "an integer" if kind is int else "a number"
        raise OptionsError(
            f"algo.options.{name}: {value!r} is out of range; it must be {what} in "
            f"[{low:g}, {high:g}]"
        )


@dataclasses.dataclass(frozen=True)
class OneShotOptions:
    """What every one-shot search's options hold: the space, the supernet's sizes, the
    budget and the shared weights' SGD. A method's options subclass it, add their own
    fields and checks and may override the defaults; ``ALGORITHM`` names it in errors."""

    ALGORITHM: ClassVar[str] = "oneshot"

    space: str = "nb201"
    space_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    supernet: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 64
    eval_batch_size: int = 256
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    total_steps: int = 0  # the weights' cosine schedule length; set by make_method

    def __post_init__(self) -> None:
        for name, high in (("epochs", 100_000), ("batch_size", 1 << 20)):
            check_option(name, getattr(self, name), int, 1, high)
        check_option("eval_batch_size", self.eval_batch_size, int, 1, 1 << 20)
        check_option("w_lr", self.w_lr, float, 1e-12, 1e3)
        check_option("w_lr_min", self.w_lr_min, float, 0, self.w_lr)
        check_option("w_momentum", self.w_momentum, float, 0, 0.999999)
        check_option("w_weight_decay", self.w_weight_decay, float, 0, 1e3)
        check_option("w_grad_clip", self.w_grad_clip, float, 1e-12, 1e12)
        for name in ("space_options", "supernet"):
            if not isinstance(getattr(self, name), Mapping):
                raise OptionsError(f"algo.options.{name}: must be a mapping of sizes")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None):
        """The options of ``algo.options``; unknown keys fail, listing the valid ones."""
        given = dict(options or {})
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "total_steps"]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise OptionsError(
                f"algo.options.{unknown[0]}: unknown for {cls.ALGORITHM}; valid: {', '.join(valid)}"
            )
        for name in ("space_options", "supernet"):
            if isinstance(given.get(name), Mapping):
                given[name] = dict(given[name])
        return cls(**given)


@dataclasses.dataclass(frozen=True)
class DartsOptions(OneShotOptions):
    """``algo=darts``'s options (see the module docstring); the defaults are the paper's
    recipe except the budget (``epochs``), which the config sets."""

    ALGORITHM: ClassVar[str] = "darts"

    order: int = 1
    alpha_lr: float = 3e-4
    alpha_b1: float = 0.5
    alpha_b2: float = 0.999
    alpha_weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise OptionsError(f"algo.options.order: {self.order!r}; it must be 1 or 2")
        super().__post_init__()
        check_option("alpha_lr", self.alpha_lr, float, 1e-12, 1e3)
        for name in ("alpha_b1", "alpha_b2"):
            check_option(name, getattr(self, name), float, 0, 0.999999)
        check_option("alpha_weight_decay", self.alpha_weight_decay, float, 0, 1e3)

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> DartsOptions:
        given = dict(options or {})
        if isinstance(given.get("order"), float) and given["order"].is_integer():
            given["order"] = int(given["order"])
        return super().from_config(given)


# The supernet sizes each space's `make_supernet` takes (the rest of ``supernet`` is for
# the other space).
SUPERNET_SIZES = {"nb201": ("channels", "cells_per_stage"), "darts": ("channels", "layers")}


def supernet_sizes(options: OneShotOptions) -> dict[str, Any]:
    """The ``supernet`` sizes that ``options.space``'s supernet takes.

    Raises:
      OptionsError: a size no space takes.
    """
    known = {k for sizes in SUPERNET_SIZES.values() for k in sizes}
    unknown = sorted(set(options.supernet) - known)
    if unknown:
        raise OptionsError(
            f"algo.options.supernet.{unknown[0]}: unknown size; valid: {', '.join(sorted(known))}"
        )
    for name, value in options.supernet.items():
        check_option(f"supernet.{name}", value, int, 1, 4096)
    wanted = SUPERNET_SIZES.get(options.space, ())
    return {k: v for k, v in options.supernet.items() if k in wanted}


def oneshot_factory(options_type: type[OneShotOptions], make_method: Callable):
    """The registry factory ``make(cfg, template) -> OneShotAlgorithm`` of a one-shot
    method: ``cfg.options`` read as ``options_type`` at once (an `OptionsError` names a bad
    option, the space or its sizes), the supernet and ``make_method(options, name)``
    (Flax; imported by it, when the runner asks) deferred."""

    def make(cfg, template) -> OneShotAlgorithm:
        options = options_type.from_config(cfg.options)
        sizes = supernet_sizes(options)
        try:
            get_space(options.space)(**dict(options.space_options))
        except TypeError as exc:
            raise OptionsError(f"algo.options.space_options: {exc}") from None

        def make_supernet(num_classes: int):
            from amla_jax.oneshot.supernet import make_supernet as build  # noqa: PLC0415

            return build(options.space, options.space_options, num_classes, **sizes)

        def method(total_steps: int):
            return make_method(dataclasses.replace(options, total_steps=total_steps), cfg.name)

        return OneShotAlgorithm(cfg.name, options, template, make_supernet, method)

    return make


def _darts_method(options: DartsOptions, name: str):
    from amla_jax.oneshot.darts import make_darts_method  # noqa: PLC0415 (Flax, optax)

    return make_darts_method(options, name)


make_darts = oneshot_factory(DartsOptions, _darts_method)
"""DARTS (`amla_jax.oneshot.darts`) with ``cfg.options`` (`DartsOptions`)."""


def is_oneshot(algorithm: Any) -> bool:
    """Whether the runner drives ``algorithm`` with the one-shot loop."""
    return isinstance(algorithm, OneShotAlgorithm)
