"""AMLA's JSON task configs as networks: read (`load_spec`, `from_amla`) and write
(`save_spec`, `to_amla`). Imports no JAX.

AMLA keeps a network in a task config: ``init_cell`` (the stem, ``{"LayerK":
{"BranchJ": block}}``), ``classification_cell`` (the head) and ``arch`` (the body; our
macro format keeps AMLA's layer entries verbatim, its micro DAGs are read by
`amla_jax.amla.micro_dag`). A *construction* config has no ``arch``: its ``envelopenet``
section describes NAC's initial EnvelopeNet (amla_spec.md A.5), which `from_amla` builds.
`load_spec` reads our format too, so every command that takes a network file takes either.

Synopsis::

    from amla_jax.amla import load_spec, save_spec, to_amla
    spec = load_spec("config.run.json")        # AMLA's task config, or our own JSON
    save_spec(spec, "best_spec.json")          # AMLA's form (amla=False: ours)
    to_amla(spec)["arch"] == spec.body.to_json()
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from amla_jax.amla.envelope import EnvelopeSettings, initial_envelopenet
from amla_jax.amla.micro_dag import from_amla_micro
from amla_jax.spec import (
    DEFAULT_HEAD,
    DEFAULT_STEM,
    HEAD_BLOCKS,
    STEM_BLOCKS,
    BlockSpec,
    MacroSpec,
    NetworkSpec,
    SpecError,
    body_from_json,
)


def _blocks_from_amla(cell: Any, name: str, allowed: tuple[str, ...]) -> list[list[BlockSpec]]:
    """AMLA's ``{"LayerK": {"BranchJ": {...}}}`` → layers (sorted keys) of branches."""
    if not isinstance(cell, dict):
        raise SpecError(f"{name}: expected an object of LayerK entries")
    layers = []
    for layer_key in sorted(cell):
        branches = cell[layer_key]
        if not isinstance(branches, dict) or not branches:
            raise SpecError(f"{name}.{layer_key}: expected an object of BranchJ entries")
        layers.append(
            [
                BlockSpec.from_json(branches[b], f"{name}.{layer_key}.{b}", allowed)
                for b in sorted(branches)
            ]
        )
    return layers


def _body_from_amla(arch: Any):
    """AMLA's ``arch``: its micro DAG format, or a body in ours (macro is the same)."""
    if (
        isinstance(arch, dict)
        and "cells" not in arch
        and ("normal_cell" in arch or "reduction_cell" in arch)
    ):
        return from_amla_micro(arch)
    return body_from_json(arch)


def _initial_body(section: Any, stem_width: int) -> MacroSpec:
    """The initial EnvelopeNet that AMLA's ``envelopenet`` section describes (A.5)."""
    if not isinstance(section, dict):
        raise SpecError("envelopenet: must be an object with AMLA's construction settings")
    try:
        settings = EnvelopeSettings.from_dict(section, stem_width=stem_width)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"envelopenet: {exc}") from None
    return MacroSpec.from_json({"type": "macro", "network": initial_envelopenet(settings)})


def from_amla(config: Any) -> NetworkSpec:
    """The network of an AMLA task config (``init_cell``, ``arch``, ``classification_cell``),
    or a construction config's initial EnvelopeNet (no ``arch``, an ``envelopenet``)."""
    if not isinstance(config, dict):
        raise SpecError(f"config: expected a JSON object, got {type(config).__name__}")
    if "arch" not in config and "envelopenet" not in config:
        raise SpecError("arch: missing; a network spec needs an 'arch' with the body")
    stem = DEFAULT_STEM
    if "init_cell" in config:
        cell = _blocks_from_amla(config["init_cell"], "init_cell", STEM_BLOCKS)
        stem = tuple(tuple(layer) for layer in cell)
    head = DEFAULT_HEAD
    if "classification_cell" in config:
        layers = _blocks_from_amla(
            config["classification_cell"], "classification_cell", HEAD_BLOCKS
        )
        head = tuple(block for layer in layers for block in layer)
    parameters = config.get("parameters", {})
    if not isinstance(parameters, dict):
        raise SpecError(f"parameters: must be an object, got {type(parameters).__name__}")
    name = parameters.get("arch_name", "")
    if not isinstance(name, str):
        raise SpecError(f"parameters.arch_name: must be a string, got {name!r}")
    if "arch" not in config:  # construction config: NAC's initial EnvelopeNet (A.5)
        widths = [b.get("outputs") for layer in stem for b in layer if b.block == "conv2d"]
        if not widths:
            raise SpecError("init_cell: has no conv2d, so the stem width (C_init) is undefined")
        return NetworkSpec(_initial_body(config["envelopenet"], widths[-1]), stem, head, name)
    return NetworkSpec(_body_from_amla(config["arch"]), stem, head, name)


def to_amla(spec: NetworkSpec) -> dict:
    """AMLA's task-config form: ``parameters`` (deterministic train mode), ``init_cell``,
    ``classification_cell`` and ``arch``; `load_spec` and AMLA both read it."""
    init_cell = {
        f"Layer{i}": {f"Branch{j}": b.to_json() for j, b in enumerate(layer)}
        for i, layer in enumerate(spec.stem)
    }
    head = {f"Layer{i}": {"Branch0": b.to_json()} for i, b in enumerate(spec.head)}
    parameters = {"arch_name": spec.name, "mode": "train", "algorithm": "deterministic"}
    return {
        "parameters": parameters,
        "init_cell": init_cell,
        "classification_cell": head,
        "arch": spec.body.to_json(),
    }


def spec_from_json(data: Any) -> NetworkSpec:
    """Our format (it has a ``format`` key) or AMLA's task/construction config."""
    if isinstance(data, dict) and "format" in data:
        return NetworkSpec.from_json(data)
    return from_amla(data)


def load_spec(path: str | Path) -> NetworkSpec:
    """Loads a network from a JSON file in our format or AMLA's task-config format.

    Raises:
      SpecError: the file is missing, not JSON, or not a valid spec (message names it).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"spec file {str(path)!r}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecError(f"spec file {str(path)!r}: not a text (UTF-8) JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"spec file {str(path)!r}: not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise SpecError(f"spec file {str(path)!r}: JSON nested too deeply") from None
    try:
        return spec_from_json(data)
    except SpecError as exc:
        raise SpecError(f"spec file {str(path)!r}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # A value of the wrong JSON type that no field check caught: still the file's fault.
        raise SpecError(
            f"spec file {str(path)!r}: malformed network ({type(exc).__name__}: {exc}); "
            "check the types of its fields"
        ) from None


def save_spec(spec: NetworkSpec, path: str | Path, amla: bool = True) -> None:
    """Writes ``spec`` as JSON, atomically; ``amla=True`` writes AMLA's task-config form."""
    data = to_amla(spec) if amla else spec.to_json()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
