"""A picture of an architecture: a spec drawn as a layered DAG in plain SVG (no graphviz).

The layout is the first two steps of Sugiyama, Tagawa & Toda ("Methods for visual
understanding of hierarchical system structures", IEEE SMC 1981), simplified: each node goes
to the layer of its longest path from the input (its topological depth), and nodes within a
layer are ordered by one top-down barycentre sweep (the mean position of their inputs). There
are no dummy nodes: an edge that skips layers (a residual or dense skip) is drawn round the
right-hand side of the layers it skips, in one of a few side lanes, instead of being routed
between boxes; this keeps the chain, cell and mobile spaces readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN = 190, 42, 24, 34, 20
_LANE, _LANES = 9, 6  # spacing and number of side lanes for edges that skip layers

_COLOURS = {
    "input": "#d9d9d9",
    "conv": "#9ecae1",
    "sep_conv": "#a1d99b",
    "mbconv": "#fdd0a2",
    "avg_pool": "#dadaeb",
    "max_pool": "#bcbddc",
    "identity": "#f0f0f0",
    "zero": "#ffffff",
    "add": "#fff7bc",
    "concat": "#fee391",
    "batchnorm": "#c7e9c0",
    "global_pool": "#d4b9da",
    "dropout": "#f0f0f0",
    "linear": "#fc9272",
}


def _kernel(config: Mapping[str, Any]) -> str:
    k = config.get("kernel")
    return f" {k}x{k}" if k is not None else ""


def _suffix(config: Mapping[str, Any]) -> str:
    parts = []
    if config.get("stride", 1) != 1:
        parts.append(f"s{config['stride']}")
    if config.get("dilation", 1) != 1:
        parts.append(f"d{config['dilation']}")
    if config.get("groups", 1) != 1:
        parts.append(f"g{config['groups']}")
    if config.get("activation", "none") != "none":
        parts.append(str(config["activation"]))
    return (" " + " ".join(parts)) if parts else ""


def node_label(node: Node) -> str:
    """A short label of one layer, e.g. ``conv 3x3 32ch s2 relu`` or ``MBConv6 5x5 24ch SE``."""
    c = node.config
    if node.op in ("conv", "sep_conv"):
        return f"{node.op}{_kernel(c)} {c['channels']}ch{_suffix(c)}"
    if node.op == "mbconv":
        se = " SE" if c.get("se", 0.0) > 0 else ""
        return f"MBConv{c['expand']}{_kernel(c)} {c['channels']}ch{_suffix(c)}{se}"
    if node.op in ("avg_pool", "max_pool"):
        return f"{node.op}{_kernel(c)}{_suffix(c)}"
    if node.op == "linear":
        return f"linear {c['features']}{_suffix(c)}"
    if node.op == "global_pool":
        return f"global {c['mode']} pool"
    if node.op == "dropout":
        return f"dropout p={c['p']:g}"
    if node.op == "batchnorm":
        return f"batchnorm{_suffix(c)}"
    return node.op


def layers(spec: ArchitectureSpec) -> list[list[str]]:
    """Node ids by layer (longest-path depth), each layer ordered by barycentre."""
    depth: dict[str, int] = {}
    for node_id in spec.topological_order:
        inputs = spec.inputs(node_id)
        depth[node_id] = 1 + max((depth[i] for i in inputs), default=-1)
    out: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node_id in spec.topological_order:
        out[depth[node_id]].append(node_id)
    position: dict[str, float] = {}
    for layer in out:
        order = {n: i for i, n in enumerate(layer)}

        def key(n: str, order: dict[str, int] = order) -> tuple[float, int]:
            ins = [position[i] for i in spec.inputs(n)]
            return (sum(ins) / len(ins) if ins else 0.0, order[n])

        layer.sort(key=key)
        for i, n in enumerate(layer):
            position[n] = i - (len(layer) - 1) / 2
    return out


def architecture_svg(spec: ArchitectureSpec, *, title: str | None = None) -> str:
    """The SVG text of ``spec`` drawn top (input) to bottom (output).

    Each box shows the layer's label (:func:`node_label`), its id and output shape; hovering a
    box shows its full config.
    """
    rows = layers(spec)
    width = max(len(r) for r in rows) * (_BOX_W + _GAP_X) - _GAP_X + 2 * _MARGIN
    width += _LANE * (_LANES + 1)  # room for the side lanes
    top = _MARGIN + (28 if title else 0)
    height = top + len(rows) * (_BOX_H + _GAP_Y) - _GAP_Y + _MARGIN
    centre: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        row_w = len(row) * (_BOX_W + _GAP_X) - _GAP_X
        x0 = (width - _LANE * (_LANES + 1) - row_w) / 2
        for i, n in enumerate(row):
            centre[n] = (x0 + i * (_BOX_W + _GAP_X) + _BOX_W / 2, top + r * (_BOX_H + _GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' "
        "fill='#555'/></marker></defs>",
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    if title:
        parts.append(
            f'<text x="{_MARGIN}" y="{_MARGIN + 14}" font-size="15" font-weight="bold">'
            f"{escape(title)}</text>"
        )
    level = {n: r for r, row in enumerate(rows) for n in row}
    right = [centre[row[-1]][0] + _BOX_W / 2 for row in rows]
    lane = 0
    for src, dst in spec.edges:
        (x1, y1), (x2, y2) = centre[src], centre[dst]
        if level[dst] - level[src] == 1:
            y1, mid = y1 + _BOX_H, (y1 + _BOX_H + y2) / 2
            d = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {mid:.1f}, {x2:.1f} {mid:.1f}, {x2:.1f} {y2:.1f}"
        else:  # a long edge goes round the right of the layers it skips
            x = max(right[level[src] : level[dst] + 1]) + _LANE * (1 + lane % _LANES)
            lane += 1
            a, b = x1 + _BOX_W / 2, x2 + _BOX_W / 2
            ya, yb = y1 + _BOX_H / 2, y2 + _BOX_H / 2
            d = (
                f"M {a:.1f} {ya:.1f} C {x:.1f} {ya:.1f}, {x:.1f} {ya:.1f}, {x:.1f} {ya + 12:.1f} "
                f"L {x:.1f} {yb - 12:.1f} C {x:.1f} {yb:.1f}, {x:.1f} {yb:.1f}, {b:.1f} {yb:.1f}"
            )
        parts.append(
            f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.2" '
            'marker-end="url(#arrow)"/>'
        )
    for node in spec.nodes:
        x, y = centre[node.id]
        shape = "x".join(str(s) for s in spec.shape(node.id))
        config = ", ".join(f"{k}={v}" for k, v in node.config.items())
        dash = ' stroke-dasharray="4 3"' if node.op in ("zero", "identity") else ""
        parts += [
            f'<g class="node" id="{escape(node.id)}"><title>'
            f"{escape(node.id)}: {escape(node.op)}({escape(config)}) -> {shape}</title>",
            f'<rect x="{x - _BOX_W / 2:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" '
            f'rx="6" fill="{_COLOURS.get(node.op, "#ffffff")}" stroke="#333"{dash}/>',
            f'<text x="{x:.1f}" y="{y + 17:.1f}" font-size="13" text-anchor="middle">'
            f"{escape(node_label(node))}</text>",
            f'<text x="{x:.1f}" y="{y + 33:.1f}" font-size="10" fill="#444" '
            f'text-anchor="middle">{escape(_short(node.id))} · {shape}</text></g>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _short(node_id: str, limit: int = 24) -> str:
    return node_id if len(node_id) <= limit else "…" + node_id[-(limit - 1) :]
