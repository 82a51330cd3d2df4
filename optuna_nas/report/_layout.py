"""A layered drawing of a DAG of labelled boxes: the geometry behind the architecture diagrams.

A simplified Sugiyama, Tagawa & Toda layout ("Methods for visual understanding of hierarchical
system structures", IEEE SMC 1981):

1. each box goes to the layer of its longest path from a source;
2. an edge that skips layers gets a dummy point in every layer it crosses, so it runs between
   the boxes of those layers, never through one;
3. boxes and dummies are ordered within their layer by barycentre sweeps (down, up, down);
4. x coordinates: each layer is pulled towards the mean x of its neighbours, and overlaps are
   resolved by averaging a left-to-right and a right-to-left packing (both keep the order and
   the minimum gap, so their mean does too), in alternating down and up passes.

Simplified against the paper and its successors: no crossing-minimisation beyond the sweeps and
no Brandes-Koepf alignment. Every edge leaves its source's bottom and enters its target's top,
and between two layers it is a curve that stays in the band between them; hence no edge crosses
a box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import itertools

BOX_H = 36.0  # height of a box
GAP_X = 18.0  # least horizontal gap between two boxes (or dummies) of one layer
GAP_Y = 24.0  # vertical gap between layers, where the edges bend
_DUMMY_W = 6.0  # width of the slot a long edge takes in a layer it crosses
_PORT = 12.0  # spacing of the ports of several edges on one box side
_PASSES = 8  # x-placement passes


Point = tuple[float, float]


@dataclass(frozen=True)
class Layout:
    """Box rectangles ``(x, y, w, h)`` by key, one route per edge (in the order given), size."""

    rects: dict[str, tuple[float, float, float, float]]
    routes: list[list[Point]]
    width: float
    height: float


def rank(keys: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """The layer of each key: its longest path from a source. ``keys`` is topologically sorted."""
    preds: dict[str, list[str]] = {k: [] for k in keys}
    for src, dst in edges:
        preds[dst].append(src)
    out: dict[str, int] = {}
    for k in keys:
        out[k] = 1 + max((out[p] for p in preds[k]), default=-1)
    return out


def order_layers(
    keys: Sequence[str], edges: Sequence[tuple[str, str]]
) -> tuple[list[list[str]], list[list[str]]]:
    """The layers (keys and dummy ids, ordered) and, per edge, the chain of slots it passes:
    source, its dummies, target."""
    level = rank(keys, edges)
    rows: list[list[str]] = [[] for _ in range(max(level.values()) + 1)]
    for k in keys:
        rows[level[k]].append(k)
    chains: list[list[str]] = []
    for e, (src, dst) in enumerate(edges):
        dummies = [f"\0{e}:{r}" for r in range(level[src] + 1, level[dst])]
        for r, d in zip(range(level[src] + 1, level[dst]), dummies, strict=True):
            rows[r].append(d)
        chains.append([src, *dummies, dst])
    up: dict[str, list[str]] = {s: [] for row in rows for s in row}
    down: dict[str, list[str]] = {s: [] for row in rows for s in row}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    for sweep, nbrs in enumerate((up, down, up)):
        index = {s: i for row in rows for i, s in enumerate(row)}
        sequence = rows[1:] if sweep != 1 else rows[-2::-1]
        for row in sequence:

            def key(
                s: str, nbrs: dict[str, list[str]] = nbrs, index: dict[str, int] = index
            ) -> float:
                ns = nbrs[s]
                return sum(index[n] for n in ns) / len(ns) if ns else index[s]

            row.sort(key=key)
            index.update({s: i for i, s in enumerate(row)})
    return rows, chains


def _pack(row: list[str], want: dict[str, float], width: dict[str, float]) -> dict[str, float]:
    sep = [(width[a] + width[b]) / 2 + GAP_X for a, b in itertools.pairwise(row)]
    fwd = [want[row[0]]]
    for i, s in enumerate(row[1:]):
        fwd.append(max(want[s], fwd[-1] + sep[i]))
    bwd = [want[row[-1]]]
    for i in range(len(row) - 2, -1, -1):
        bwd.append(min(want[row[i]], bwd[-1] - sep[i]))
    bwd.reverse()
    return {s: (f + b) / 2 for s, f, b in zip(row, fwd, bwd, strict=True)}


def layout(
    keys: Sequence[str], widths: dict[str, float], edges: Sequence[tuple[str, str]]
) -> Layout:
    """Lay out boxes ``keys`` (topologically sorted, of the given widths) joined by ``edges``."""
    rows, chains = order_layers(keys, edges)
    width = {s: widths.get(s, _DUMMY_W) for row in rows for s in row}
    nbrs: dict[str, list[str]] = {s: [] for s in width}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            nbrs[a].append(b)
            nbrs[b].append(a)
    x: dict[str, float] = {}
    for row in rows:
        x.update(_pack(row, dict.fromkeys(row, 0.0), width))
    level = {s: r for r, row in enumerate(rows) for s in row}
    for p in range(_PASSES):
        for row in rows[1:] if p % 2 == 0 else rows[-2::-1]:
            before = level[row[0]] - (1 if p % 2 == 0 else -1)
            want = {}
            for s in row:
                ns = [x[n] for n in nbrs[s] if level[n] == before]
                want[s] = sum(ns) / len(ns) if ns else x[s]
            x.update(_pack(row, want, width))
    left = min(x[s] - width[s] / 2 for s in x)
    x = {s: v - left for s, v in x.items()}
    y = {s: level[s] * (BOX_H + GAP_Y) for s in x}
    routes = [_route(chain, x, y, width, chains) for chain in chains]
    return Layout(
        rects={k: (x[k] - widths[k] / 2, y[k], widths[k], BOX_H) for k in keys},
        routes=routes,
        width=max(x[s] + width[s] / 2 for s in x),
        height=len(rows) * (BOX_H + GAP_Y) - GAP_Y,
    )


def _port(
    s: str, other: str, side: list[str], x: dict[str, float], width: dict[str, float]
) -> float:
    """The x where the edge to ``other`` meets box ``s``: the box's edges on one side are
    spread over its width in the order of the x of their other ends."""
    ends = sorted(side, key=lambda o: x[o])
    step = min(_PORT, (width[s] - 8) / max(len(ends), 1))
    return x[s] + (ends.index(other) - (len(ends) - 1) / 2) * step


def _route(
    chain: list[str],
    x: dict[str, float],
    y: dict[str, float],
    width: dict[str, float],
    chains: list[list[str]],
) -> list[Point]:
    src, dst = chain[0], chain[-1]
    outs = [c[1] for c in chains if c[0] == src]
    ins = [c[-2] for c in chains if c[-1] == dst]
    points = [(_port(src, chain[1], outs, x, width), y[src] + BOX_H)]
    for d in chain[1:-1]:
        points += [(x[d], y[d]), (x[d], y[d] + BOX_H)]
    points.append((_port(dst, chain[-2], ins, x, width), y[dst]))
    return points
