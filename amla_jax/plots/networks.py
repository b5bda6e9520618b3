"""Pictures of networks: a `NetworkSpec` drawn as a graph (matplotlib, Agg canvas).

Macro bodies (and ENAS macro arcs): the stem, one box per layer in order with its
branches as sub-boxes, wideners in orange, skip edges as arcs above, the head. Micro
bodies: each cell's DAG, edges coloured by op.

Synopsis::

    from amla_jax.plots import draw_network, save_figure
    from amla_jax.amla import load_spec
    save_figure(draw_network(load_spec("run/best_spec.json")), "network.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, PathPatch
from matplotlib.path import Path as MplPath

from amla_jax.plots.figure import SKIP_COLOR, WIDENER_COLOR, new_figure
from amla_jax.spec import NB201_EDGES, skip_sources

if TYPE_CHECKING:
    from amla_jax.spec import NetworkSpec

ENAS_OP_NAMES = {
    0: "3x3 conv",
    1: "3x3 sep",
    2: "5x5 conv",
    3: "5x5 sep",
    4: "avg pool",
    5: "max pool",
}


def draw_network(spec: NetworkSpec, title: str | None = None) -> Figure:
    """``spec`` as a graph: layers in order with branches and skips, or cell DAGs."""
    title = title if title is not None else (spec.name or "network")
    body_type = getattr(spec.body, "type", "macro")
    if body_type == "micro":
        return _draw_micro(spec.body, title)
    if body_type == "enas_macro":
        nodes, skips = _enas_chain(spec.body)
    elif body_type == "nb201":
        nodes, skips = _nb201_chain(spec.body), []
    else:
        nodes, skips = _macro_chain(spec.body)
    stem = ("stem", tuple(_block_label(b) for layer in spec.stem for b in layer), "stem")
    head = ("head", tuple(_block_label(b) for b in spec.head), "head")
    return _draw_chain([stem, *nodes, head], skips, title)


def _block_label(block: Any) -> str:
    options = dict(block.options)
    if block.block == "conv2d":
        kernel = options.get("kernel_size", [3, 3])
        return f"conv {kernel[0]}x{kernel[1]}, {options.get('outputs')}"
    if block.block in ("fc", "fc-final"):
        return f"{block.block} {options.get('outputs')}"
    if block.block == "dropout":
        return f"dropout {options.get('keep_prob')}"
    return block.block


def _macro_chain(body: Any) -> tuple[list[tuple], list[tuple[int, int]]]:
    """Nodes ``(title, lines, kind)`` for cellnumbers 1.. and skip edges ``(src, dst)``
    between cellnumbers (0 = stem), the predecessor being the implicit main input."""
    nodes, skips = [], []
    for index, layer in enumerate(body.layers):
        cellnumber = index + 1
        if layer.kind == "filters":
            nodes.append((f"L{cellnumber}: {layer.outputs} ch", layer.ops, "filters"))
        elif layer.kind == "widener":
            nodes.append((f"L{cellnumber}: widener", ("max-pool /2", "‖ 3x3 conv /2"), "widener"))
        elif layer.kind == "widener2":
            nodes.append((f"L{cellnumber}: widener2", ("concat inputs", "max-pool /2"), "widener"))
        else:
            nodes.append((f"L{cellnumber}", ("(pass-through)",), "other"))
        if layer.kind == "filters" or layer.kind == "widener2":
            skips += [(src, cellnumber) for src in skip_sources(layer, cellnumber)]
    return nodes, skips


def _enas_chain(body: Any) -> tuple[list[tuple], list[tuple[int, int]]]:
    """ENAS macro: bit i of layer k selects [stem, layer 0, ..., layer k-2][i]."""
    nodes, skips = [], []
    for k, (op, *bits) in enumerate(body.layers):
        kind = "widener" if k in (body.pool_layers or ()) else "filters"
        lines = (ENAS_OP_NAMES[op],) + (("then pool /2",) if kind == "widener" else ())
        nodes.append((f"L{k}", lines, kind))
        skips += [(i, k + 1) for i, bit in enumerate(bits) if bit]
    return nodes, skips


def _nb201_chain(body: Any) -> list[tuple]:
    """NAS-Bench-201: a box per stage listing the cell's edges, ResNet blocks between."""
    short = {"nor_conv_3x3": "conv 3x3", "nor_conv_1x1": "conv 1x1", "skip_connect": "skip"}
    edges = tuple(
        f"{src}>{to} {short.get(op, op.replace('_3x3', '').replace('_', ' '))}"
        for op, (to, src) in zip(body.ops, NB201_EDGES, strict=True)
    )
    nodes = []
    for stage in range(3):
        width = body.channels * 2**stage
        if stage:
            nodes.append((f"reduce to {width} ch", ("ResNet block /2",), "widener"))
        nodes.append((f"{body.cells_per_stage} cells, {width} ch", edges, "filters"))
    return [*nodes, ("lastact", ("BN, ReLU",), "other")]


def _op_color(op: str) -> str:
    """Lighter fill for small kernels, sep convs in green, others blue/grey."""
    if "sep" in op:
        return "#cfe8cf"
    if "pool" in op:
        return "#e0e0e0"
    return "#d6e4f5" if op.startswith(("1x1", "3x3")) else "#b9cde8"


_KIND_STYLE = {
    "stem": ("#eeeeee", "#444444"),
    "head": ("#eeeeee", "#444444"),
    "filters": ("#ffffff", "#1f3b73"),
    "widener": (WIDENER_COLOR, "#8a4b12"),
    "other": ("#f8f8f8", "#888888"),
}


def _arc_rise(span: int) -> float:
    """Arc height for a skip over ``span`` boxes: long skips above short ones, compressed."""
    return 0.2 + 0.55 * np.sqrt(span)


def _draw_chain(nodes: list[tuple], skips: list[tuple[int, int]], title: str) -> Figure:
    """Boxes left to right, sub-boxes per branch, arrows between neighbours, skip arcs."""
    dx, box_w, row_h, header = 1.6, 1.35, 0.42, 0.55
    depth = max(len(lines) for _, lines, _ in nodes) * row_h + header + 0.3
    arc_top = 0.75 * max((_arc_rise(dst - src) for src, dst in skips), default=0.0) + 0.2
    data_width = len(nodes) * dx + 0.2
    inches = 0.75  # per data unit; the aspect is equal, so the figure follows the data
    fig = new_figure(max(6.0, data_width * inches), (depth + arc_top) * inches + 1.0)
    ax = fig.add_subplot()
    for i, (label, lines, kind) in enumerate(nodes):
        _draw_box(ax, i * dx, box_w, row_h, header, label, lines, kind)
        if i:
            ax.add_patch(
                FancyArrowPatch(
                    ((i - 1) * dx + box_w / 2, -header / 2),
                    (i * dx - box_w / 2, -header / 2),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="black",
                )
            )
    for src, dst in skips:
        _draw_arc(ax, src * dx, dst * dx, _arc_rise(dst - src))
    ax.set_xlim(-dx / 2 - 0.1, (len(nodes) - 1) * dx + dx / 2 + 0.1)
    ax.set_ylim(-depth, arc_top)
    ax.set_aspect("equal")
    ax.axis("off")
    legend = [
        Line2D([], [], color="black", marker=">", label="main path (previous layer)"),
        Line2D([], [], color=SKIP_COLOR, marker="v", label=f"skip input ({len(skips)} edges)"),
        Line2D([], [], color=WIDENER_COLOR, lw=6, label="widener (/2 resolution)"),
    ]
    fig.legend(handles=legend, loc="outside lower center", fontsize=8, ncol=3, frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


def _draw_box(ax, x, box_w, row_h, header, label, lines, kind) -> None:
    fill, edge = _KIND_STYLE[kind]
    height = header + len(lines) * row_h + 0.1
    ax.add_patch(
        FancyBboxPatch(
            (x - box_w / 2, -height),
            box_w,
            height,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=fill,
            edgecolor=edge,
            lw=1.4,
        )
    )
    ax.text(x, -header / 2, label, ha="center", va="center", fontsize=7.5, weight="bold")
    for j, line in enumerate(lines):
        top = -header - j * row_h
        sub_fill = _op_color(line) if kind == "filters" else "none"
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2 + 0.08, top - row_h + 0.05),
                box_w - 0.16,
                row_h - 0.08,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor=sub_fill,
                edgecolor=edge if kind == "filters" else "none",
                lw=0.6,
            )
        )
        ax.text(x, top - row_h / 2 + 0.01, line, ha="center", va="center", fontsize=7)


def _draw_arc(ax, x0: float, x1: float, rise: float) -> None:
    """A cubic arc from the top of box x0 to the top of box x1, ``rise`` above them."""
    start, end = (x0 + 0.15, 0.0), (x1 - 0.15, 0.0)
    path = MplPath(
        [start, (x0 + 0.15, rise), (x1 - 0.15, rise), end],
        [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4],
    )
    ax.add_patch(PathPatch(path, facecolor="none", edgecolor=SKIP_COLOR, lw=1.0, alpha=0.7))
    ax.plot([end[0]], [end[1] + 0.02], marker="v", ms=4, color=SKIP_COLOR)


def _micro_summary(network: Sequence[str]) -> str:
    """``normal x6, reduction, normal x6, aux, ...``: the cell sequence, run-length coded."""
    parts: list[list] = []
    for name in network:
        if parts and parts[-1][0] == name:
            parts[-1][1] += 1
        else:
            parts.append([name, 1])
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in parts)


def _draw_micro(body: Any, title: str) -> Figure:
    """Each distinct cell as a DAG: inputs left, nodes by depth, the concat output right;
    edges coloured by op (legend below), dashed where they downsample."""
    cells = list(body.cells)
    ops = sorted({e.op for _, cell in cells for node in cell.nodes for e in node.edges})
    colors = {op: OP_COLORS[i % len(OP_COLORS)] for i, op in enumerate(ops)}
    fig = new_figure(6.0 * len(cells), 5.0)
    axes = np.atleast_1d(fig.subplots(1, len(cells)))
    inputs = ("c[k-1]", "c[k-2]") if body.convention == "nasnet" else ("c[k-2]", "c[k-1]")
    for ax, (name, cell) in zip(axes, cells, strict=True):
        _draw_cell(ax, cell, inputs, colors)
        kind = "reduction" if cell.reduction else "normal"
        ax.set_title(f"cell {name!r} ({kind})", fontsize=10)
    handles = [Line2D([], [], color=c, lw=2, label=op) for op, c in colors.items()]
    handles.append(Line2D([], [], color="black", ls="--", label="stride 2"))
    handles.append(Line2D([], [], color="#999999", label="into the output concat"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=8)
    summary = _micro_summary(body.network)
    fig.suptitle(f"{title}: {body.convention} cells, C={body.channels}\n{summary}", fontsize=9)
    return fig


OP_COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
OP_COLORS += ("#e377c2", "#bcbd22", "#7f7f7f")


def _cell_layout(cell: Any) -> dict[int, tuple[float, float]]:
    """State positions: inputs at depth 0, node = 1 + its deepest input, output last."""
    depth = {0: 0, 1: 0}
    for i, node in enumerate(cell.nodes):
        depth[i + 2] = 1 + max(depth[e.input] for e in node.edges)
    columns: dict[int, list[int]] = {}
    for state, d in depth.items():
        columns.setdefault(d, []).append(state)
    pos = {}
    for d, states in columns.items():
        for j, state in enumerate(states):
            pos[state] = (2.6 * d, 1.5 * ((len(states) - 1) / 2 - j) + 0.25 * (d % 2))
    pos[-1] = (2.6 * (max(depth.values()) + 1), 0.0)
    return pos


def _edge_rad(start, end, index: int, count: int) -> float:
    """Curvature: parallel edges fan out; edges over a column bow away from the middle."""
    rad = 0.2 * (index - (count - 1) / 2)
    if end[0] - start[0] > 2.7:  # skips a column: bow up if above the middle, else down
        rad += -0.3 if (start[1] + end[1]) >= 0 else 0.3
    return rad


def _draw_cell(ax, cell: Any, inputs: tuple[str, str], colors: dict[str, str]) -> None:
    pos = _cell_layout(cell)
    for i, node in enumerate(cell.nodes):
        target = pos[i + 2]
        for j, edge in enumerate(node.edges):
            same = [k for k, e in enumerate(node.edges) if e.input == edge.input]
            rad = _edge_rad(pos[edge.input], target, same.index(j), len(same))
            style = "--" if edge.stride == 2 else "-"
            _cell_edge(ax, pos[edge.input], target, rad, colors[edge.op], style)
    for state in cell.concat:
        _cell_edge(ax, pos[state], pos[-1], _edge_rad(pos[state], pos[-1], 0, 1), "#999999")
    labels = {0: inputs[0], 1: inputs[1], -1: "output\nconcat"}
    for state, (x, y) in pos.items():
        if state >= 2:
            combine = cell.nodes[state - 2].combine
            text, color = f"{state}" + ("" if combine == "add" else f" ({combine})"), "#d6e4f5"
        else:
            text, color = labels[state], "#eeeeee"
        bbox = {"boxstyle": "round", "facecolor": color, "edgecolor": "#1f3b73"}
        ax.text(x, y, text, ha="center", va="center", fontsize=8, bbox=bbox, zorder=3)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    ax.set_ylim(min(ys) - 1.2, max(ys) + 1.2)
    ax.axis("off")


def _cell_edge(ax, start, end, rad: float, color: str, style: str = "-") -> None:
    arrow = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=11,
        connectionstyle=f"arc3,rad={rad}",
        color=color,
        linestyle=style,
        lw=1.4,
        shrinkA=13,
        shrinkB=13,
        zorder=1,
    )
    ax.add_patch(arrow)
