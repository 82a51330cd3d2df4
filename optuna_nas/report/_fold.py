"""Folding repeated blocks of a spec: the macro skeleton plus the repeated block drawn once.

A block is the set of nodes whose ids share their first two path segments (``stage2/cell1`` for
``stage2/cell1/edge_2_0``), provided it has one input from outside and one output to outside.
Two blocks are the same when their nodes (by the rest of their id), ops, configs (channels
aside) and edges are. The block repeated most often (at least twice) is the one drawn once;
every foldable block becomes one box of the skeleton, and a run of identical blocks in a row
(``stage1/cell1 -> stage1/cell2``) becomes one ``2 x cell`` box. The cell space gives
``stem -> 2 x cell -> reduce -> 2 x cell -> ... -> classifier`` and its cell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
import json

from optuna_nas.spec import ArchitectureSpec

#: The id of the block's outside input in the drawing of the block.
BLOCK_INPUT = "<input>"


@dataclass(frozen=True)
class Block:
    """One foldable block: its key, member ids (topological order), outside input, output."""

    key: str
    members: tuple[str, ...]
    source: str
    exit: str

    def leaf(self, node_id: str) -> str:
        return node_id[len(self.key) + 1 :]


@dataclass(frozen=True)
class Folded:
    """A spec with its repeated block folded.

    ``skeleton``: the macro graph's items in topological order, each a spec node id or a run of
    blocks; ``edges``: between item indices; ``shown``: the blocks of the repeated kind (the
    first is drawn); ``kind``: the :func:`signature` of each block, by key.
    """

    skeleton: list[str | tuple[Block, ...]]
    edges: list[tuple[int, int]]
    shown: list[Block]
    kind: dict[str, Hashable]


def _key(node_id: str) -> str | None:
    parts = node_id.split("/")
    return "/".join(parts[:2]) if len(parts) >= 3 else None


def blocks(spec: ArchitectureSpec) -> list[Block]:
    """The foldable blocks of ``spec``, in topological order of their first node."""
    members: dict[str, list[str]] = {}
    for node_id in spec.topological_order:
        key = _key(node_id)
        if key is not None:
            members.setdefault(key, []).append(node_id)
    succs: dict[str, list[str]] = {n.id: [] for n in spec.nodes}
    for src, dst in spec.edges:
        succs[src].append(dst)
    out = []
    for key, ids in members.items():
        inside = set(ids)
        sources = {p for m in ids for p in spec.inputs(m) if p not in inside}
        exits = [
            m
            for m in ids
            if m == spec.output_id or any(s not in inside for s in succs[m]) or not succs[m]
        ]
        if len(sources) == 1 and len(exits) == 1 and spec.output_id not in inside:
            out.append(Block(key, tuple(ids), sources.pop(), exits[0]))
    return out


def signature(spec: ArchitectureSpec, block: Block) -> Hashable:
    """What makes two blocks the same: leaves, ops, configs without channels, edges."""
    nodes = []
    for m in block.members:
        node = spec.node(m)
        config = {k: v for k, v in node.config.items() if k != "channels"}
        nodes.append((block.leaf(m), node.op, json.dumps(config, sort_keys=True)))
    edges = sorted(
        (BLOCK_INPUT if p == block.source else block.leaf(p), block.leaf(m))
        for m in block.members
        for p in spec.inputs(m)
    )
    return (tuple(nodes), tuple(edges), block.leaf(block.exit))


def fold(spec: ArchitectureSpec) -> Folded | None:
    """``spec`` folded as the module docstring says, or None if no block repeats."""
    found = blocks(spec)
    kind = {b.key: signature(spec, b) for b in found}
    counts = Counter(kind.values())
    if not counts or max(counts.values()) < 2:
        return None
    size = {kind[b.key]: len(b.members) for b in found}
    shown_kind = max(counts, key=lambda k: (counts[k], size[k]))
    by_node = {m: b for b in found for m in b.members}
    items: list[str | tuple[Block, ...]] = []
    index: dict[str, int] = {}
    for node_id in spec.topological_order:
        b = by_node.get(node_id)
        if b is None:
            index[node_id] = len(items)
            items.append(node_id)
        elif b.key not in index:
            index[b.key] = len(items)
            items.append((b,))
    item_of = {
        n.id: index[by_node[n.id].key] if n.id in by_node else index[n.id] for n in spec.nodes
    }
    edges = sorted({(item_of[s], item_of[d]) for s, d in spec.edges if item_of[s] != item_of[d]})
    items, edges = _merge_runs(items, edges, kind)
    shown = [b for item in items if isinstance(item, tuple) for b in item]
    return Folded(items, edges, [b for b in shown if kind[b.key] == shown_kind], kind)


def _merge_runs(
    items: list[str | tuple[Block, ...]],
    edges: list[tuple[int, int]],
    kind: dict[str, Hashable],
) -> tuple[list[str | tuple[Block, ...]], list[tuple[int, int]]]:
    """Merge ``a -> b`` where a and b are blocks of one kind, a's only successor is b and b's
    only predecessor is a."""
    succ: dict[int, list[int]] = {i: [] for i in range(len(items))}
    pred: dict[int, list[int]] = {i: [] for i in range(len(items))}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    head = list(range(len(items)))  # the item each item is merged into
    for a, b in edges:
        ia, ib = items[a], items[b]
        if (
            isinstance(ia, tuple)
            and isinstance(ib, tuple)
            and succ[a] == [b]
            and pred[b] == [a]
            and kind[ia[0].key] == kind[ib[0].key]
        ):
            head[b] = head[a]
    runs: dict[int, list[Block]] = {}
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            runs.setdefault(head[i], []).extend(item)
    kept = [i for i in range(len(items)) if head[i] == i]
    new_index = {i: kept.index(head[i]) for i in range(len(items))}
    merged: list[str | tuple[Block, ...]] = [
        tuple(runs[i]) if isinstance(items[i], tuple) else items[i] for i in kept
    ]
    new_edges = sorted(
        {(new_index[a], new_index[b]) for a, b in edges if new_index[a] != new_index[b]}
    )
    return merged, new_edges
