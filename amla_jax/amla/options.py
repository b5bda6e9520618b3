"""The typed ``algo.options`` of the construction algorithms, validated once at the edge.

`NacOptions` (``nac``, ``nac_worst``) is AMLA's ``envelopenet`` section with the
defaults of its ``config.nac.construction.json``; `RandomOptions` (``random``) is AMLA's
``random`` section plus ``match``. ``from_config`` turns the config's dict into a frozen
dataclass or raises `OptionsError` naming ``algo.options.<key>``; nothing downstream
validates again. Pure Python, no JAX: the task CLI's AMLA-config mapping
(`amla_jax.amla.task_config`) reads the key lists here.

Synopsis::

    from amla_jax.amla.options import NacOptions, RandomOptions
    options = NacOptions.from_config({"max_filter_prune": 4})   # AMLA's defaults otherwise
    settings = options.settings(stem_width=64)                  # amla.envelope.EnvelopeSettings
    NacOptions.keys()              # ('stages', 'layers_per_stage', ..., 'worst_case')
    RandomOptions.from_config({"match": "runs/nac/best_spec.json"})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from amla_jax.amla.envelope import EnvelopeSettings
from amla_jax.amla.layout import SettingsError, check_int
from amla_jax.errors import UserError

_O = TypeVar("_O", "NacOptions", "RandomOptions")

# AMLA's envelope cell (config.nac.construction.json); the random baseline's default
# ``blocks`` are its ops, so that both searches draw from the same ops.
ENVELOPE_CELL = (
    ("Branch1", "1x1"),
    ("Branch2", "3x3"),
    ("Branch3", "3x3sep"),
    ("Branch4", "5x5"),
    ("Branch5", "5x5sep"),
    ("Branch6", "7x7sep"),
)


class OptionsError(UserError):
    """An ``algo.options`` key is unknown, mistyped or out of range; the message names it."""


def options_error(exc: SettingsError) -> OptionsError:
    """``exc`` (from building AMLA settings out of options) as the option it is about."""
    where = f"algo.options.{exc.key}" if exc.key else "algo.options"
    return OptionsError(f"{where}: {exc}")


def _parse(cls: type[_O], options: Mapping[str, Any] | _O | None, algorithm: str) -> _O:
    """``cls`` from the config's dict: unknown keys fail; None values mean the default."""
    if isinstance(options, cls):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise OptionsError(f"algo.options: must be a mapping of keys, got {options!r}")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    valid = cls.keys()
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise OptionsError(
            f"algo.options.{unknown[0]}: unknown for {algorithm} (unknown keys {unknown}); "
            f"valid: {', '.join(valid)}"
        )
    return cls(**given)


def _per_stage(name: str, value: Any, item: type) -> tuple:
    """A list option as a tuple of ``item``s (bools are not ints here)."""
    ok = isinstance(value, list | tuple) and all(
        isinstance(v, item) and (item is bool or not isinstance(v, bool)) for v in value
    )
    if not ok:
        raise OptionsError(
            f"algo.options.{name}: must be a list of {item.__name__}s, got {value!r}"
        )
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class NacOptions:
    """``algo.options`` of ``nac`` / ``nac_worst``: AMLA's ``envelopenet`` section.

    Per-stage lists are stored as tuples cut to ``stages`` entries (AMLA ignores the
    rest); ``envelopecell`` as (branch, op) pairs. The stem width comes from the
    template network, not from here.
    """

    stages: int = 3
    layers_per_stage: tuple[int, ...] = (2, 2, 2)
    max_layers_per_stage: tuple[int, ...] = (7, 6, 2)
    construction: tuple[bool, ...] = (True, True, False)
    parameter_limits: tuple[bool, ...] = (False, False, False)
    max_filter_prune: int = 6
    envelopecell: tuple[tuple[str, str], ...] = ENVELOPE_CELL
    skip: bool = True
    worst_case: bool = False

    def __post_init__(self) -> None:
        # EnvelopeSettings holds AMLA's rules for these fields; a placeholder stem width
        # lets it check them before the template's is known.
        try:
            settings = EnvelopeSettings(**dataclasses.asdict(self), stem_width=1)
        except SettingsError as exc:
            raise options_error(exc) from None
        for name in self.keys():
            object.__setattr__(self, name, getattr(settings, name))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The option keys, in AMLA's order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | NacOptions | None) -> NacOptions:
        """The options of ``algo.options`` over AMLA's defaults.

        Raises:
          OptionsError: an unknown key, a value of the wrong type or out of range.
        """
        return _parse(cls, options, "nac")

    def to_dict(self) -> dict[str, Any]:
        """AMLA's ``envelopenet`` section (lists and an ``envelopecell`` dict)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        return {**out, "envelopecell": dict(self.envelopecell)}

    def settings(self, stem_width: int, **forced: Any) -> EnvelopeSettings:
        """The construction settings for a template of stem width ``stem_width``;
        ``forced`` overrides options (``worst_case=True`` for ``nac_worst``)."""
        return EnvelopeSettings(**{**vars(self), **forced}, stem_width=stem_width)


@dataclasses.dataclass(frozen=True)
class RandomOptions:
    """``algo.options`` of ``random``: AMLA's ``random`` section, plus ``match``.

    Give both ``layers_per_stage`` and ``num_blocks_per_stage`` or neither (then the
    counts NAC reaches, see `amla_jax.algos.random_search`); ``match`` (a spec file)
    takes the counts from a constructed network instead. Counts and ``parameter_limits``
    are checked against each other when the algorithm builds its settings.
    """

    stages: int | None = None
    layers_per_stage: tuple[int, ...] | None = None
    num_blocks_per_stage: tuple[int, ...] | None = None
    blocks: tuple[str, ...] = tuple(op for _, op in ENVELOPE_CELL)
    parameter_limits: tuple[bool, ...] | None = None
    skip: bool = True
    match: str | None = None

    def __post_init__(self) -> None:
        if self.stages is not None:
            try:
                check_int("stages", self.stages, 1)
            except SettingsError as exc:
                raise options_error(exc) from None
        items = {"layers_per_stage": int, "num_blocks_per_stage": int}
        for name, item in {**items, "parameter_limits": bool, "blocks": str}.items():
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _per_stage(name, getattr(self, name), item))
        if not self.blocks:
            raise OptionsError("algo.options.blocks: must name at least one op")
        if not isinstance(self.skip, bool):
            raise OptionsError(f"algo.options.skip: must be true or false, got {self.skip!r}")
        self._check_counts()

    def _check_counts(self) -> None:
        counts = {
            "layers_per_stage": self.layers_per_stage,
            "num_blocks_per_stage": self.num_blocks_per_stage,
        }
        if self.match is not None:
            if not isinstance(self.match, str) or not self.match:
                raise OptionsError(f"algo.options.match: must be a spec file, got {self.match!r}")
            clash = sorted(k for k, v in {**counts, "stages": self.stages}.items() if v is not None)
            if clash:
                raise OptionsError(
                    f"algo.options.match: takes the counts from the spec; drop {clash}"
                )
        elif (self.layers_per_stage is None) != (self.num_blocks_per_stage is None):
            missing = next(k for k, v in counts.items() if v is None)
            raise OptionsError(
                f"algo.options.{missing}: give both layers_per_stage and "
                "num_blocks_per_stage, or neither"
            )

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The option keys: AMLA's ``random`` section (`amla_keys`), then ``match``."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def amla_keys(cls) -> tuple[str, ...]:
        """The keys of AMLA's ``random`` section (every key but ``match``)."""
        return tuple(k for k in cls.keys() if k != "match")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | RandomOptions | None) -> RandomOptions:
        """The options of ``algo.options``; absent or None keys take the defaults.

        Raises:
          OptionsError: an unknown key, a value of the wrong type, or contradictory keys.
        """
        return _parse(cls, options, "random")
