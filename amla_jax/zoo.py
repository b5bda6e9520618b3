"""The final-network zoo: AMLA's six final networks, built as their papers describe them.

The networks live in ``conf/model/*.yaml`` (our spec format); the published genotypes
below rebuild the paper networks (``--write-configs`` regenerates their YAML, and the
tests check that both agree). ``python -m amla_jax.zoo`` prints, per network, our
parameter count, FLOPs per image, the exact reference count (paramcounts.md), and the
paper's parameter count and error.

Synopsis::

    from amla_jax.zoo import ZOO, load_network, darts_v2
    spec = load_network("darts_v2")              # conf/model/darts_v2.yaml
    spec == darts_v2()                           # True
    python -m amla_jax.zoo [--no-flops] [--write-configs]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from amla_jax.spec import (
    BlockSpec,
    CellSpec,
    EdgeSpec,
    EnasMacroSpec,
    MicroSpec,
    NetworkSpec,
    NodeSpec,
    freeze,
    split_arc,
)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "model"

# --- published genotypes (genotypes.md; data, reproduced as data) ----------------------
DARTS_V2_NORMAL = (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                   ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
                   ("skip_connect", 0), ("dil_conv_3x3", 2))  # fmt: skip
DARTS_V2_REDUCE = (("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
                   ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
                   ("skip_connect", 2), ("max_pool_3x3", 1))  # fmt: skip
# melodyguan/enas scripts/cifar10_micro_final.sh: normal cell, then reduction cell.
ENAS_MICRO_ARC = "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
DARTS_V1_NORMAL = (("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 0), ("skip_connect", 2))  # fmt: skip
DARTS_V1_REDUCE = (("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
                   ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("skip_connect", 2),
                   ("skip_connect", 2), ("avg_pool_3x3", 0))  # fmt: skip
# The ENAS micro cell of the paper's figure (genotypes.md §2.3, DARTS notation).
ENAS_PAPER_NORMAL = (("sep_conv_3x3", 1), ("identity", 1), ("sep_conv_5x5", 1), ("identity", 0),
                     ("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                     ("avg_pool_3x3", 1), ("sep_conv_5x5", 1), ("avg_pool_3x3", 0))  # fmt: skip
ENAS_PAPER_REDUCE = (("sep_conv_5x5", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 1),
                     ("avg_pool_3x3", 1), ("avg_pool_3x3", 1), ("sep_conv_3x3", 1),
                     ("avg_pool_3x3", 1), ("sep_conv_5x5", 4), ("sep_conv_5x5", 0),
                     ("sep_conv_3x3", 5))  # fmt: skip
ENAS_MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
# melodyguan/enas scripts/cifar10_macro_final.sh: fixed_arc, one line per layer.
ENAS_MACRO_ARC = (
    "0",
    "3 0",
    "0 1 0",
    "2 0 0 1",
    "2 0 0 0 0",
    "3 1 1 0 1 0",
    "2 0 0 0 0 0 1",
    "2 0 1 1 0 1 1 1",
    "1 0 1 1 1 0 1 0 1",
    "0 0 0 0 0 0 0 0 0 0",
    "2 0 0 0 0 0 1 0 0 0 0",
    "0 1 0 0 1 1 0 0 0 0 1 1",
    "2 0 1 0 0 0 0 0 1 0 1 1 0",
    "1 0 0 1 0 0 0 1 1 1 0 1 0 1",
    "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
    "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
    "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
    "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
    "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
    "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
    "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
    "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
    "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
    "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0",
)
# tensorflow/tpu model_specs.py amoeba_net_b: (ops, hidden-state inputs, used flags).
AMOEBANET_B_NORMAL = (
    ("1x1", "max_pool_3x3", "none", "separable_3x3_2", "1x1", "separable_3x3_2",
     "1x1", "none", "avg_pool_3x3", "1x1"),
    (1, 1, 1, 0, 1, 0, 2, 2, 1, 5),
    (0, 1, 1, 0, 0, 1, 0),
)  # fmt: skip
AMOEBANET_B_REDUCE = (
    ("max_pool_2x2", "max_pool_3x3", "none", "3x3", "dil_2_separable_5x5_2",
     "max_pool_3x3", "none", "separable_3x3_2", "avg_pool_3x3", "1x1"),
    (0, 0, 2, 1, 2, 2, 3, 1, 4, 3),
    (1, 1, 1, 1, 1, 0, 0),
)  # fmt: skip
NASNET_OPS = {
    "1x1": "conv_1x1", "none": "identity_conv", "3x3": "bottleneck_3x3",
    "1x7_7x1": "bottleneck_1x7_7x1", "max_pool_2x2": "max_pool_2x2",
    "max_pool_3x3": "max_pool_3x3", "avg_pool_3x3": "avg_pool_3x3",
    "separable_3x3_2": "sep_conv_3x3", "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7", "dil_2_separable_5x5_2": "dil_sep_conv_5x5",
}  # fmt: skip


# --- converters from the published encodings ------------------------------------------
def darts_cell(genotype, concat, reduction: bool = False) -> CellSpec:
    """A DARTS genotype ((op, input) pairs, two per node) → `CellSpec`."""
    nodes = tuple(
        NodeSpec(tuple(EdgeSpec(op, i, 2 if reduction and i < 2 else 1) for op, i in pair))
        for pair in zip(genotype[::2], genotype[1::2], strict=True)
    )
    return CellSpec(nodes, tuple(concat), reduction)


def loose_ends(genotype, num_states: int) -> tuple[int, ...]:
    """The states no node reads (ENAS and NASNet concatenate these)."""
    used = {i for _, i in genotype}
    return tuple(i for i in range(num_states) if i not in used)


def enas_micro_cells(arc: str = ENAS_MICRO_ARC) -> tuple[CellSpec, CellSpec]:
    """ENAS's micro arc (20 ints normal + 20 reduction: x_id x_op y_id y_op per node)."""
    values = [int(v) for v in arc.split()]
    cells = []
    for half, reduction in ((values[:20], False), (values[20:], True)):
        genotype = [(ENAS_MICRO_OPS[op], i) for i, op in zip(half[::2], half[1::2], strict=True)]
        cells.append(darts_cell(genotype, loose_ends(genotype, 7), reduction))
    return cells[0], cells[1]


def nasnet_cell(ops, inputs, used, reduction: bool = False) -> CellSpec:
    """A NASNet/AmoebaNet cell (TF ``model_specs`` triple) → `CellSpec` (nasnet convention)."""
    genotype = [(NASNET_OPS[op], i) for op, i in zip(ops, inputs, strict=True)]
    cell = darts_cell(genotype, (), reduction)
    return CellSpec(cell.nodes, tuple(i for i, flag in enumerate(used) if not flag), reduction)


# --- the networks -----------------------------------------------------------------------
def conv_bn_stem(width: int) -> tuple:
    """The CIFAR stem of the micro-cell papers: 3x3 conv (no bias) + BatchNorm, no ReLU."""
    options = {
        "kernel_size": [3, 3],
        "outputs": width,
        "batch_norm": True,
        "use_bias": False,
        "activation": "none",
    }
    return ((BlockSpec("conv2d", freeze(options)),),)


def _head(keep_prob: float | None = None, fc_bias: bool = True) -> tuple:
    blocks = [BlockSpec("reduce_mean")]
    if keep_prob is not None:
        blocks.append(BlockSpec("dropout", freeze({"keep_prob": keep_prob})))
    fc = {"outputs": 10} if fc_bias else {"outputs": 10, "use_bias": False}
    return (*blocks, BlockSpec("fc-final", freeze(fc)))


def _sequence(num_normal: int, aux_after: int) -> tuple[str, ...]:
    """N normal, R, N normal, R, N normal; "aux" after sequence index ``aux_after``."""
    cells = (["normal"] * num_normal + ["reduction"]) * 2 + ["normal"] * num_normal
    return tuple(cells[: aux_after + 1] + ["aux"] + cells[aux_after + 1 :])


def darts_v2(channels: int = 36, num_normal: int = 6, genotype=None) -> NetworkSpec:
    """DARTS (V2) on CIFAR-10: 20 cells, C=36, aux head on cell 13 (genotypes.md §1).

    ``genotype`` (normal, reduce) replaces DARTS_V2's, e.g. (DARTS_V1_NORMAL, ...).
    """
    normal, reduce = genotype or (DARTS_V2_NORMAL, DARTS_V2_REDUCE)
    cells = (
        ("normal", darts_cell(normal, (2, 3, 4, 5))),
        ("reduction", darts_cell(reduce, (2, 3, 4, 5), True)),
    )
    body = MicroSpec(cells, _sequence(num_normal, 2 * num_normal + 1), channels, "darts")
    return NetworkSpec(body, conv_bn_stem(3 * channels), _head(), "darts_v2")


def enas_micro(channels: int = 36, num_normal: int = 5, paper_cell: bool = False) -> NetworkSpec:
    """ENAS micro as the released final script builds it (genotypes.md §2.2, §2.5);
    ``paper_cell`` swaps in the cell of the paper's figure (§2.3)."""
    normal, reduction = enas_micro_cells()
    if paper_cell:
        normal = darts_cell(ENAS_PAPER_NORMAL, loose_ends(ENAS_PAPER_NORMAL, 7))
        reduction = darts_cell(ENAS_PAPER_REDUCE, loose_ends(ENAS_PAPER_REDUCE, 7), True)
    cells = (("normal", normal), ("reduction", reduction))
    body = MicroSpec(
        cells,
        _sequence(num_normal, 2 * num_normal + 2),
        channels,
        "enas",
        aux_fc_bias=False,
        drop_path_by_depth=True,
        final_relu=True,
    )
    return NetworkSpec(body, conv_bn_stem(3 * channels), _head(0.8, fc_bias=False), "enas_micro")


def amoebanet_b(channels: int = 128, num_normal: int = 6) -> NetworkSpec:
    """AmoebaNet-B (N=6) in the NASNet CIFAR skeleton (genotypes.md §4)."""
    cells = (
        ("normal", nasnet_cell(*AMOEBANET_B_NORMAL)),
        ("reduction", nasnet_cell(*AMOEBANET_B_REDUCE, reduction=True)),
    )
    body = MicroSpec(
        cells,
        _sequence(num_normal, 2 * num_normal),
        channels,
        "nasnet",
        drop_path_by_depth=True,
        final_relu=True,
    )
    return NetworkSpec(body, conv_bn_stem(3 * channels), _head(1.0), "amoebanet_b")


def enas_macro(sep_as_conv: bool = True) -> NetworkSpec:
    """ENAS macro as the released 24-layer final script builds it (genotypes.md §3)."""
    body = EnasMacroSpec(split_arc(" ".join(ENAS_MACRO_ARC)), 96, sep_as_conv=sep_as_conv)
    return NetworkSpec(body, conv_bn_stem(96), _head(0.5, fc_bias=False), "enas_macro")


# --- the table ------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooEntry:
    """One row of the zoo table.

    Attributes:
      name: the row label.
      build: returns the network (most read ``conf/model/<config>.yaml``).
      input_shape: one image's (H, W, C).
      num_classes: classifier outputs.
      reference: the exact reference count (paramcounts.md; aux heads excluded).
      paper_params: the paper's parameter count in millions (None: none published).
      paper_error: the paper's test error, as published.
      note: where ours or the reference cannot match the paper, why.
    """

    name: str
    build: Callable[[], NetworkSpec]
    input_shape: tuple[int, int, int]
    num_classes: int
    reference: int
    paper_params: float | None
    paper_error: str
    note: str = ""


def load_network(config: str) -> NetworkSpec:
    """The network of ``conf/model/<config>.yaml`` (its ``network:`` key)."""
    data = yaml.safe_load((CONF_DIR / f"{config}.yaml").read_text())
    return NetworkSpec.from_json(data["network"])


CIFAR, IMAGENET = (32, 32, 3), (224, 224, 3)
ZOO = (
    ZooEntry("darts_v2", lambda: load_network("darts_v2"), CIFAR, 10, 3_349_342, 3.3,
             "2.76 ± 0.09 %"),
    ZooEntry("amoebanet_b (N=6, F=128)", lambda: load_network("amoebanet_b"), CIFAR, 10,
             34_874_506, 34.9, "2.13 ± 0.04 %"),
    ZooEntry("amoebanet_b (N=6, F=36)", lambda: amoebanet_b(36), CIFAR, 10, 2_839_186, 2.8,
             "2.55 ± 0.05 %"),
    ZooEntry("enas_micro", lambda: load_network("enas_micro"), CIFAR, 10, 3_894_372, 4.6,
             "2.89 %", "paper's 4.6M not reachable: the released arc and script build 3.89M "
             "(4.39M with the aux head); no variant gives 4.6M (paramcounts.md §2)"),
    ZooEntry("enas_micro (paper-figure cell)", lambda: enas_micro(paper_cell=True), CIFAR, 10,
             3_435_660, 4.6, "2.89 %", "genotypes.md §2.3 cell in the ENAS code; not the "
             "released net"),
    ZooEntry("darts_v1 (reference)", lambda: darts_v2(genotype=(DARTS_V1_NORMAL,
             DARTS_V1_REDUCE)), CIFAR, 10, 3_169_414, 3.3, "3.00 ± 0.14 %"),
    ZooEntry("enas_macro", lambda: load_network("enas_macro"), CIFAR, 10, 42_559_392, 21.3,
             "4.23 %", "the released script is a 24-layer F=96 net, not the paper's 12-layer "
             "net (its width is unpublished); sep built as a full conv as the code does"),
    ZooEntry("enas_macro (true sep)", lambda: enas_macro(sep_as_conv=False), CIFAR, 10,
             30_947_424, 21.3, "4.23 %", "the same arc with depthwise-separable sep layers"),
    ZooEntry("nac_cifar10", lambda: load_network("nac_cifar10"), CIFAR, 10, 10_942_475, None,
             "3.33 %", "no published count; reference = AMLA's TF-slim semantics"),
    ZooEntry("nac_imagenet", lambda: load_network("nac_imagenet"), IMAGENET, 1001, 9_955_262,
             None, "15.36 % (AMLA 11.77 %), metric unstated",
             "no published count; AMLA's config as encoded (aux placeholders keep their "
             "cellnumbers)"),
)  # fmt: skip


def zoo_rows(entries=ZOO, flops: bool = True) -> list[dict]:
    """Counts (and FLOPs) of each entry, with ratios to the reference and the paper."""
    from amla_jax.nn import count_flops, count_params  # noqa: PLC0415 (heavy import)

    rows = []
    for entry in entries:
        spec = entry.build()
        params = count_params(spec, entry.input_shape, entry.num_classes)
        row = {"entry": entry, "params": params, "ratio": params / entry.reference}
        row["paper_ratio"] = params / (entry.paper_params * 1e6) if entry.paper_params else None
        row["flops"] = count_flops(spec, entry.input_shape, entry.num_classes) if flops else None
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `zoo_rows` (notes as footnotes)."""
    lines = [
        "| network | input | params (ours) | reference | ours − ref | ours/ref | paper params | "
        "ours/paper | paper error | GFLOPs/image |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    notes = []
    for row in rows:
        entry = row["entry"]
        mark = ""
        if entry.note:
            notes.append(entry.note)
            mark = f" [{len(notes)}]"
        paper = f"{entry.paper_params}M" if entry.paper_params else "—"
        paper_ratio = f"{row['paper_ratio']:.3f}" if row["paper_ratio"] else "—"
        flops = f"{row['flops'] / 1e9:.3f}" if row["flops"] is not None else "—"
        shape = "x".join(map(str, entry.input_shape[:2]))
        lines.append(
            f"| {entry.name}{mark} | {shape} | {row['params']:,} | {entry.reference:,} | "
            f"{row['params'] - entry.reference:+,} | {row['ratio']:.6f} | {paper} | "
            f"{paper_ratio} | {entry.paper_error} | {flops} |"
        )
    lines += ["", "GFLOPs: XLA's cost analysis of one image's eval forward pass (a multiply-add"]
    lines += ["counts 2). Reference: paramcounts.md (params only, aux heads excluded).", ""]
    lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)


# --- regenerating conf/model from the genotypes ----------------------------------------
GENERATED = {
    "darts_v2": (darts_v2, "DARTS (V2), CIFAR-10: quark0/darts genotype DARTS_V2, 20 cells, C=36."),
    "enas_micro": (enas_micro, "ENAS micro, CIFAR-10: the arc of scripts/cifar10_micro_final.sh."),
    "amoebanet_b": (amoebanet_b, "AmoebaNet-B (N=6, F=128), CIFAR-10: tensorflow/tpu cell."),
    "enas_macro": (enas_macro, "ENAS macro, CIFAR-10: scripts/cifar10_macro_final.sh (24 layers)."),
}  # fmt: skip


class _Dumper(yaml.SafeDumper):
    """Flow style for lists of scalars and for nodes (a few edges), block for the rest."""


def _flat(value) -> bool:
    return not isinstance(value, dict | list) or (
        isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)
    )


_Dumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq",
        data,
        flow_style=all(not isinstance(v, dict | list) for v in data)
        or (len(data) <= 4 and all(_flat(v) for v in data)),
    ),
)


def model_yaml(name: str, spec: NetworkSpec, comment: str) -> str:
    """A ``conf/model`` group file holding ``spec`` in our format."""
    data = {"name": name, "network": spec.to_json()}
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
    return "".join(f"# {line}\n" for line in comment.splitlines()) + body


def write_configs(directory: Path = CONF_DIR) -> list[Path]:
    """Writes the genotype-derived ``conf/model`` files (NAC files are converted from
    AMLA's JSON instead)."""
    paths = []
    for name, (build, comment) in GENERATED.items():
        path = directory / f"{name}.yaml"
        note = f"{comment}\nGenerated by `python -m amla_jax.zoo --write-configs`."
        path.write_text(model_yaml(name, build(), note))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """``python -m amla_jax.zoo``: prints the zoo table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOPs column")
    parser.add_argument("--write-configs", action="store_true", help="regenerate conf/model")
    args = parser.parse_args(argv)
    if args.write_configs:
        for path in write_configs():
            print(f"wrote {path}")
        return
    print(format_table(zoo_rows(flops=not args.no_flops)))


if __name__ == "__main__":
    main()
