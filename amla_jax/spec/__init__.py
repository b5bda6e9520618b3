"""Network specifications: frozen, hashable, JSON-serialisable data. Imports no JAX.

A `NetworkSpec` is a stem, a body and a head; the body is one of `BODY_TYPES`: AMLA's
*macro* layers (`amla_jax.spec.macro`), *micro* cell DAGs (`amla_jax.spec.micro`),
ENAS macro layers (`amla_jax.spec.enas`) or NAS-Bench-201 cells (`amla_jax.spec.nb201`). Specs validate themselves and name the
offending field (`SpecError`); they are hashable, so a spec is a `jax.jit` static
argument and a cache key. `amla_jax.nn.build_model` turns one into a Flax module;
`amla_jax.amla.load_spec` / `save_spec` read and write files in our format or AMLA's.

Synopsis::

    from amla_jax.spec import NetworkSpec
    spec = NetworkSpec.from_json(row["spec"])       # our JSON format
    spec.body.type                                  # "macro" | "micro" | "enas_macro" | "nb201"
    NetworkSpec.from_json(spec.to_json()) == spec   # True
"""

from amla_jax.spec.base import SpecError, freeze, thaw
from amla_jax.spec.enas import ENAS_MACRO_OPS, EnasMacroSpec, split_arc
from amla_jax.spec.macro import BRANCH_OPS, LayerSpec, MacroSpec, parse_macro_op, skip_sources
from amla_jax.spec.micro import AUX, MICRO_OPS, CellSpec, EdgeSpec, MicroSpec, NodeSpec
from amla_jax.spec.nb201 import (
    NB201_EDGES,
    NB201_OPS,
    NB201Spec,
    arch_string,
    parse_arch_string,
)
from amla_jax.spec.nb201_network import nb201_network
from amla_jax.spec.network import (
    BODY_TYPES,
    DEFAULT_HEAD,
    DEFAULT_STEM,
    FORMAT,
    HEAD_BLOCKS,
    STEM_BLOCKS,
    BlockSpec,
    NetworkSpec,
    body_from_json,
)

__all__ = [
    "AUX",
    "BODY_TYPES",
    "BRANCH_OPS",
    "DEFAULT_HEAD",
    "DEFAULT_STEM",
    "ENAS_MACRO_OPS",
    "FORMAT",
    "HEAD_BLOCKS",
    "MICRO_OPS",
    "NB201_EDGES",
    "NB201_OPS",
    "STEM_BLOCKS",
    "BlockSpec",
    "CellSpec",
    "EdgeSpec",
    "EnasMacroSpec",
    "LayerSpec",
    "MacroSpec",
    "MicroSpec",
    "NB201Spec",
    "NetworkSpec",
    "NodeSpec",
    "SpecError",
    "arch_string",
    "body_from_json",
    "freeze",
    "nb201_network",
    "parse_arch_string",
    "parse_macro_op",
    "skip_sources",
    "split_arc",
    "thaw",
]
