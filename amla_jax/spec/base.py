"""What every spec body shares: the error type and JSON value helpers. No JAX.

Synopsis::

    from amla_jax.spec.base import SpecError, check, freeze, thaw
    check(isinstance(width, int), "arch.channels: must be an integer")   # raises SpecError
    freeze({"b": [1, 2], "a": 0}) == (("a", 0), ("b", (1, 2)))            # hashable
"""

from __future__ import annotations

from typing import Any

from amla_jax.errors import UserError


class SpecError(UserError):
    """A network spec is malformed or contradictory; the message names the field."""


# Upper bounds on sizes a spec may ask for, checked before anything is allocated: a
# width of 10**12 would otherwise surface as a JAX error or an out-of-memory after
# seconds of work. The zoo's widest layer is 4032 channels (AmoebaNet) and its largest
# kernel 11; these leave room for any network that fits in memory.
MAX_WIDTH = 1 << 16
MAX_KERNEL = 64
MAX_STRIDE = 64
MAX_LAYERS = 10_000


def check(ok: bool, message: str) -> None:
    """Raises `SpecError(message)` unless ``ok``."""
    if not ok:
        raise SpecError(message)


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON's ``true`` is not a width)."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any, where: str, limit: int = MAX_WIDTH) -> int:
    """``value`` if it is an int in 1..limit, else a SpecError naming ``where``."""
    check(
        is_int(value) and 1 <= value <= limit,
        f"{where}: must be an integer in 1..{limit}, got {value!r}",
    )
    return value


def flag(value: Any, where: str) -> bool:
    """``value`` if it is a JSON boolean, else a SpecError naming ``where``."""
    check(isinstance(value, bool), f"{where}: must be true or false, got {value!r}")
    return value


def freeze(value: Any) -> Any:
    """Turns JSON values into hashable ones (lists → tuples, dicts → sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze` for lists (tuples → lists); scalars pass through."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
