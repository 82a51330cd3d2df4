"""A picture of an architecture: a spec drawn as a layered DAG in plain SVG (no graphviz).

The geometry is :mod:`optuna_nas.report._layout` (a simplified Sugiyama layout whose edges never
cross a box). A spec with a repeated block, such as the cell space's cells, is drawn folded
(:mod:`optuna_nas.report._fold`): the macro skeleton on the left, with each run of identical
blocks as one ``2 x cell`` box, and the block drawn once on the right. The text is sized to be
read where optuna-dashboard shows the diagram at its own size: in the trial's note.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import re
from typing import Any
from xml.sax.saxutils import escape
from xml.sax.saxutils import quoteattr

from optuna_nas.report._fold import BLOCK_INPUT
from optuna_nas.report._fold import Block
from optuna_nas.report._fold import Folded
from optuna_nas.report._fold import fold
from optuna_nas.report._layout import BOX_H
from optuna_nas.report._layout import Layout
from optuna_nas.report._layout import layout
from optuna_nas.report._layout import order_layers
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

LABEL_PX = 13  # font size of a box's label (the op)
DETAIL_PX = 11  # font size of its second line (id and shape)
_TITLE_PX, _HEADING_PX = 15, 13
_MARGIN, _PANEL_GAP, _PAD = 16, 28, 12
_CHAR = 0.62  # a generous mean advance of DejaVu Sans / Arial, in ems
_BLOCK_COLOUR = "#3182bd"

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
    return _label(node.op, node.config)


def _label(op: str, c: Mapping[str, Any]) -> str:
    """:func:`node_label` of ``op`` with config ``c``; without ``channels`` (a folded block whose
    width differs by stage) it leaves them out."""
    ch = f" {c['channels']}ch" if "channels" in c else ""
    if op in ("conv", "sep_conv"):
        return f"{op}{_kernel(c)}{ch}{_suffix(c)}"
    if op == "mbconv":
        se = " SE" if c.get("se", 0.0) > 0 else ""
        return f"MBConv{c['expand']}{_kernel(c)}{ch}{_suffix(c)}{se}"
    if op in ("avg_pool", "max_pool"):
        return f"{op}{_kernel(c)}{_suffix(c)}"
    if op == "linear":
        return f"linear {c['features']}{_suffix(c)}"
    if op == "global_pool":
        return f"global {c['mode']} pool"
    if op == "dropout":
        return f"dropout p={c['p']:g}"
    if op == "batchnorm":
        return f"batchnorm{_suffix(c)}"
    return op


def layers(spec: ArchitectureSpec) -> list[list[str]]:
    """Node ids by layer (longest-path depth) in drawing order, as in the unfolded diagram."""
    rows, _ = order_layers(spec.topological_order, list(spec.edges))
    return [[n for n in row if not n.startswith("\0")] for row in rows]


@dataclass(frozen=True)
class _Box:
    key: str
    label: str
    detail: str
    title: str
    fill: str
    members: tuple[str, ...]
    dashed: bool = False
    block: bool = False  # a box of the folded block's kind

    @property
    def width(self) -> float:
        text = max(_text_w(self.label, LABEL_PX), _text_w(self.detail, DETAIL_PX))
        return max(64.0, text + 16)


def _text_w(text: str, px: int) -> float:
    return len(text) * px * _CHAR


def _short(node_id: str, limit: int = 24) -> str:
    return node_id if len(node_id) <= limit else "…" + node_id[-(limit - 1) :]


def _shape(spec: ArchitectureSpec, node_id: str) -> str:
    return "x".join(str(s) for s in spec.shape(node_id))


def _node_box(spec: ArchitectureSpec, node: Node) -> _Box:
    config = ", ".join(f"{k}={v}" for k, v in node.config.items())
    return _Box(
        key=node.id,
        label=node_label(node),
        detail=f"{_short(node.id)} · {_shape(spec, node.id)}",
        title=f"{node.id}: {node.op}({config}) -> {_shape(spec, node.id)}",
        fill=_COLOURS.get(node.op, "#ffffff"),
        members=(node.id,),
        dashed=node.op in ("zero", "identity"),
    )


def _block_name(block: Block) -> str:
    return re.sub(r"\d+$", "", block.key.split("/")[1]) or block.key


def _run_box(spec: ArchitectureSpec, run: tuple[Block, ...], shown: bool) -> _Box:
    first, last = run[0], run[-1]
    name = _block_name(first)
    label = f"{len(run)} \u00d7 {name}" if len(run) > 1 else name
    if not shown:
        label += f" ({len(first.members)} nodes)"
    stages = dict.fromkeys(b.key.split("/")[0] for b in run)
    where = "\u2013".join([*stages][:: max(len(stages) - 1, 1)])
    lines = [f"{b.key}: " + ", ".join(node_label(spec.node(m)) for m in b.members) for b in run]
    return _Box(
        key=first.key,
        label=label,
        detail=f"{where} · {_shape(spec, last.exit)}",
        title="\n".join(lines),
        fill="#deebf7" if shown else "#f2f2f2",
        members=tuple(m for b in run for m in b.members),
        block=shown,
    )


def _skeleton(spec: ArchitectureSpec, folded: Folded) -> tuple[list[_Box], list[tuple[str, str]]]:
    shown_kind = folded.kind[folded.shown[0].key]
    boxes = [
        _node_box(spec, spec.node(item))
        if isinstance(item, str)
        else _run_box(spec, item, folded.kind[item[0].key] == shown_kind)
        for item in folded.skeleton
    ]
    return boxes, [(boxes[a].key, boxes[b].key) for a, b in folded.edges]


def _block_view(
    spec: ArchitectureSpec, shown: list[Block]
) -> tuple[list[_Box], list[tuple[str, str]], str]:
    """The repeated block drawn once, and its heading."""
    first = shown[0]
    name = _block_name(first)
    prefix = "block-view:"
    boxes = [_Box(prefix + BLOCK_INPUT, f"{name} input", "", "the block's input", "#d9d9d9", ())]
    for m in first.members:
        leaf = first.leaf(m)
        node = spec.node(m)
        same = len({spec.node(f"{b.key}/{leaf}").config.get("channels") for b in shown}) == 1
        config = node.config if same else {k: v for k, v in node.config.items() if k != "channels"}
        box = _node_box(spec, node)
        boxes.append(
            _Box(
                prefix + leaf,
                _label(node.op, config),
                leaf + (" · output" if m == first.exit else ""),
                box.title,
                box.fill,
                tuple(f"{b.key}/{leaf}" for b in shown),
                box.dashed,
            )
        )
    edges = [
        (prefix + (BLOCK_INPUT if p == first.source else first.leaf(p)), prefix + first.leaf(m))
        for m in first.members
        for p in spec.inputs(m)
    ]
    heading = f"{name}, drawn once ({len(shown)} in the network"
    channels = sorted({spec.shape(b.exit)[0] for b in shown})
    if len(channels) > 1:
        heading += "; " + "/".join(map(str, channels)) + " channels by stage"
    return boxes, edges, heading + ")"


def _draw_box(parts: list[str], box: _Box, x: float, y: float) -> None:
    stroke = f'stroke="{_BLOCK_COLOUR}" stroke-width="2"' if box.block else 'stroke="#333"'
    dash = ' stroke-dasharray="4 3"' if box.dashed else ""
    cx = x + box.width / 2
    label_y = y + (16 if box.detail else BOX_H / 2 + LABEL_PX * 0.35)
    weight = ' font-weight="bold"' if box.block else ""
    parts += [
        f'<g class="node" id={quoteattr(box.key)} data-members={quoteattr(" ".join(box.members))}>'
        f"<title>{escape(box.title)}</title>",
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.width:.1f}" height="{BOX_H:.0f}" rx="6" '
        f'fill="{box.fill}" {stroke}{dash}/>',
        f'<text x="{cx:.1f}" y="{label_y:.1f}" font-size="{LABEL_PX}" text-anchor="middle"'
        f"{weight}>{escape(box.label)}</text>",
    ]
    if box.detail:
        parts.append(
            f'<text x="{cx:.1f}" y="{y + 30:.1f}" font-size="{DETAIL_PX}" fill="#444" '
            f'text-anchor="middle">{escape(box.detail)}</text>'
        )
    parts.append("</g>")


def _path(points: Sequence[tuple[float, float]], dx: float, dy: float) -> str:
    (x0, y0), rest = points[0], points[1:]
    d = [f"M {x0 + dx:.1f} {y0 + dy:.1f}"]
    for i, (x, y) in enumerate(rest):
        px, py = points[i]
        if x == px and i % 2 == 1:  # through a dummy: straight down
            d.append(f"L {x + dx:.1f} {y + dy:.1f}")
        else:
            mid = (py + y) / 2 + dy
            d.append(
                f"C {px + dx:.1f} {mid:.1f}, {x + dx:.1f} {mid:.1f}, {x + dx:.1f} {y + dy:.1f}"
            )
    return " ".join(d)


def _draw_panel(parts: list[str], lay: Layout, boxes: list[_Box], dx: float, dy: float) -> None:
    for points in lay.routes:
        parts.append(
            f'<path class="edge" d="{_path(points, dx, dy)}" fill="none" stroke="#555" '
            'stroke-width="1.2" marker-end="url(#arrow)"/>'
        )
    for box in boxes:
        x, y, _, _ = lay.rects[box.key]
        _draw_box(parts, box, x + dx, y + dy)


def _panel(boxes: list[_Box], edges: list[tuple[str, str]]) -> Layout:
    return layout([b.key for b in boxes], {b.key: b.width for b in boxes}, edges)


def architecture_svg(spec: ArchitectureSpec, *, title: str | None = None) -> str:
    """The SVG text of ``spec`` drawn top (input) to bottom (output).

    Each box shows the layer's label (:func:`node_label`), its id and output shape; hovering a
    box shows its full config. A spec with a repeated block is drawn folded (module docstring).
    """
    folded = fold(spec)
    top = _MARGIN + (_TITLE_PX + 12 if title else 0)
    if folded is None:
        boxes = [_node_box(spec, n) for n in spec.nodes]
        main_edges = list(spec.edges)
    else:
        boxes, main_edges = _skeleton(spec, folded)
    main = _panel(boxes, main_edges)
    width, height = _MARGIN + main.width + _MARGIN, top + main.height + _MARGIN
    body: list[str] = []
    _draw_panel(body, main, boxes, _MARGIN, top)
    if folded is not None:
        cell_boxes, cell_edges, heading = _block_view(spec, folded.shown)
        cell = _panel(cell_boxes, cell_edges)
        inner = max(cell.width, _text_w(heading, _HEADING_PX))
        fx, fw = width - _MARGIN + _PANEL_GAP, inner + 2 * _PAD
        fh = _HEADING_PX + 14 + cell.height + 2 * _PAD
        body.append(
            f'<rect class="block-frame" x="{fx:.1f}" y="{top:.1f}" width="{fw:.1f}" '
            f'height="{fh:.1f}" rx="8" fill="#f7fbff" stroke="{_BLOCK_COLOUR}" stroke-width="2"/>'
        )
        body.append(
            f'<text x="{fx + _PAD:.1f}" y="{top + _PAD + _HEADING_PX:.1f}" '
            f'font-size="{_HEADING_PX}" font-weight="bold" fill="{_BLOCK_COLOUR}">'
            f"{escape(heading)}</text>"
        )
        cx = fx + _PAD + (inner - cell.width) / 2
        _draw_panel(body, cell, cell_boxes, cx, top + _PAD + _HEADING_PX + 14)
        width = fx + fw + _MARGIN
        height = max(height, top + fh + _MARGIN)
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
            f'<text x="{_MARGIN}" y="{_MARGIN + _TITLE_PX:.0f}" font-size="{_TITLE_PX}" '
            f'font-weight="bold">{escape(title)}</text>'
        )
    parts += [*body, "</svg>"]
    return "\n".join(parts) + "\n"
