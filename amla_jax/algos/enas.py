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
from typing import ClassVar

from amla_jax.algos.oneshot import OneShotOptions, check_option, oneshot_factory
from amla_jax.amla.options import OptionsError


@dataclasses.dataclass(frozen=True)
class EnasOptions(OneShotOptions):
    """``algo=enas``'s options (see the module docstring); the shared fields and their
    checks are `OneShotOptions`'."""

    ALGORITHM: ClassVar[str] = "enas"

    epochs: int = 150
    batch_size: int = 160
    w_lr: float = 0.05
    w_lr_min: float = 0.0005
    w_weight_decay: float = 1e-4
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

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, high in (("controller_hidden", 1 << 16), ("controller_samples", 1024),
                           ("derive_samples", 1 << 20)):  # fmt: skip
            check_option(name, getattr(self, name), int, 1, high)
        check_option("controller_lr", self.controller_lr, float, 1e-12, 1e3)
        for name in ("controller_b1", "baseline_decay"):
            check_option(name, getattr(self, name), float, 0, 0.999999)
        check_option("entropy_weight", self.entropy_weight, float, 0, 1e3)
        for name in ("tanh_constant", "temperature", "controller_eps"):
            check_option(name, getattr(self, name), float, 1e-12, 1e12)
        if self.exclude_none not in (None, True, False):
            raise OptionsError(
                f"algo.options.exclude_none: {self.exclude_none!r}; it must be true, false "
                "or null (true on the DARTS space only)"
            )


def _enas_method(options: EnasOptions, name: str):
    from amla_jax.oneshot.enas import make_enas_method  # noqa: PLC0415 (Flax, optax)

    return make_enas_method(options, name)


make_enas = oneshot_factory(EnasOptions, _enas_method)
"""ENAS (`amla_jax.oneshot.enas`) with ``cfg.options`` (`EnasOptions`)."""
