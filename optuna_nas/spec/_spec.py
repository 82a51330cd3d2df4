"""`ArchitectureSpec`: a frozen, validated, JSON-serialisable DAG of layers.

A spec is data: nodes (id, op, config), edges ``(src, dst)`` forming a DAG, the input shape
``(C, H, W)``, the number of outputs, and free-form JSON metadata. Ops live on nodes; an edge
carries a tensor from ``src`` to ``dst``. The order of a node's incoming edges in ``edges`` is
the order of its inputs (it matters for ``concat``); the same edge may appear twice (``add``
then counts that input twice).

A valid spec has exactly one ``input`` node (no incoming edges) and exactly one output node
(the only node without outgoing edges), whose shape is ``(num_outputs,)``. Validation runs on
construction and infers every node's shape, so a spec that exists can be built.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import functools
import heapq
import json
import re
from types import MappingProxyType
from typing import Any

from optuna_nas.spec._ops import Arity
from optuna_nas.spec._ops import Shape
from optuna_nas.spec._ops import get_op

FORMAT_VERSION = 1

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:/\-]+$")
_SPEC_KEYS = ("format_version", "input_shape", "num_outputs", "nodes", "edges", "metadata")
_NODE_KEYS = ("id", "op", "config")


def _freeze_json(value: Any, where: str) -> Any:
    """Deep-copy JSON data into immutable containers, or raise naming ``where``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where} must be JSON-serialisable, but holds {value!r}.")
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where} must have str keys, but got {list(value)!r}.")
        return MappingProxyType({k: _freeze_json(v, f"{where}[{k!r}]") for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_json(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where} must be JSON-serialisable, but holds {type(value).__name__}.")


def _thaw_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw_json(v) for v in value]
    return value


@dataclass(frozen=True)
class Node:
    """One layer of a spec: a unique ``id``, an ``op`` from the vocabulary, and its config.

    ``config`` is validated against the op's fields and stored with every default filled in,
    so two nodes that mean the same layer compare equal.
    """

    id: str
    op: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.match(self.id):
            raise ValueError(
                f"node id must be a non-empty str of letters, digits and `_.:/-`, "
                f"but got {self.id!r}."
            )
        try:
            opdef = get_op(self.op)
            config = opdef.normalise_config(self.config)
        except (TypeError, ValueError) as e:
            raise type(e)(f"node {self.id!r}: {e}") from None
        object.__setattr__(self, "config", MappingProxyType(config))

    def __hash__(self) -> int:
        return hash((self.id, self.op, tuple(sorted(self.config.items()))))

    def __reduce__(self) -> tuple[Any, ...]:  # mappingproxy does not pickle; rebuild instead
        return (Node, (self.id, self.op, dict(self.config)))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "config": dict(self.config)}


@dataclass(frozen=True)
class ArchitectureSpec:
    """A validated DAG of layers; see the module docstring for the rules."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    input_shape: tuple[int, int, int]
    num_outputs: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    # Derived on construction (not part of equality).
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _inputs: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _shapes: Mapping[str, Shape] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        if not nodes or not all(isinstance(n, Node) for n in nodes):
            raise TypeError(
                f"`nodes` must be a non-empty sequence of Node, but got {self.nodes!r}."
            )
        edges = tuple(_check_edge(e) for e in self.edges)
        input_shape = _check_input_shape(self.input_shape)
        if isinstance(self.num_outputs, bool) or not isinstance(self.num_outputs, int):
            raise TypeError(f"`num_outputs` must be an int, but got {self.num_outputs!r}.")
        if self.num_outputs < 1:
            raise ValueError(f"`num_outputs >= 1` must hold, but got {self.num_outputs=}.")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"`metadata` must be a mapping, but got {self.metadata!r}.")
        set_ = object.__setattr__
        set_(self, "nodes", nodes)
        set_(self, "edges", edges)
        set_(self, "input_shape", input_shape)
        set_(self, "metadata", _freeze_json(self.metadata, "`metadata`"))
        inputs, order = _check_graph(nodes, edges)
        set_(self, "_inputs", MappingProxyType(inputs))
        set_(self, "_order", order)
        set_(self, "_shapes", MappingProxyType(self._infer_shapes()))

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and deepcopy through the validated dict
        return (ArchitectureSpec.from_dict, (self.to_dict(),))

    # ------------------------------------------------------------------ graph queries

    @functools.cached_property
    def _by_id(self) -> Mapping[str, Node]:
        return MappingProxyType({n.id: n for n in self.nodes})

    def node(self, node_id: str) -> Node:
        """Return the node with id ``node_id``."""
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(
                f"no node {node_id!r}; nodes are {[n.id for n in self.nodes]}."
            ) from None

    def inputs(self, node_id: str) -> tuple[str, ...]:
        """The ids feeding ``node_id``, in input order."""
        self.node(node_id)
        return self._inputs[node_id]

    def shape(self, node_id: str) -> Shape:
        """The output shape of ``node_id`` for one sample (no batch dimension)."""
        self.node(node_id)
        return self._shapes[node_id]

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Node ids in a deterministic topological order (ties broken by position in ``nodes``)."""
        return self._order

    @property
    def input_id(self) -> str:
        return self._order[0]

    @property
    def output_id(self) -> str:
        return self._order[-1]

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for node_id in self._order:
            node = self._by_id[node_id]
            if node.op == "input":
                shapes[node_id] = self.input_shape
                continue
            opdef = get_op(node.op)
            shapes[node_id] = opdef.infer_shape(
                node_id, node.config, [shapes[i] for i in self._inputs[node_id]]
            )
        out = shapes[self.output_id]
        if out != (self.num_outputs,):
            raise ValueError(
                f"the output node {self.output_id!r} has shape {out}, but num_outputs="
                f"{self.num_outputs} needs shape ({self.num_outputs},); end the graph with "
                f"a 'linear' of {self.num_outputs} features."
            )
        return shapes

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ``format_version``; :meth:`from_dict` inverts it."""
        return {
            "format_version": FORMAT_VERSION,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [list(e) for e in self.edges],
            "metadata": _thaw_json(self.metadata),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (keys sorted, so equal specs give equal text)."""
        sep = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=sep)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchitectureSpec:
        """Rebuild a spec from :meth:`to_dict` output, rejecting unknown keys and versions."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a spec dict must be a mapping, but got {type(data).__name__}.")
        _check_keys(data, _SPEC_KEYS, "spec dict", required=_SPEC_KEYS[:5])
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"unsupported spec format_version {data['format_version']!r}; this version of "
                f"optuna-nas reads format_version {FORMAT_VERSION}."
            )
        nodes = []
        for i, nd in enumerate(_check_list(data["nodes"], "nodes")):
            if not isinstance(nd, Mapping):
                raise TypeError(f"nodes[{i}] must be a mapping, but got {nd!r}.")
            _check_keys(nd, _NODE_KEYS, f"nodes[{i}]", required=_NODE_KEYS[:2])
            nodes.append(Node(id=nd["id"], op=nd["op"], config=nd.get("config", {})))
        edges = [tuple(e) for e in _check_list(data["edges"], "edges")]
        return cls(
            nodes=tuple(nodes),
            edges=tuple(edges),  # checked in __post_init__
            input_shape=tuple(_check_list(data["input_shape"], "input_shape")),
            num_outputs=data["num_outputs"],
            metadata=data.get("metadata", {}),
        )

    @classmethod
    def from_json(cls, text: str) -> ArchitectureSpec:
        """Rebuild a spec from :meth:`to_json` text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"spec JSON is not valid JSON: {e}.") from None
        return cls.from_dict(data)

    def with_metadata(self, **metadata: Any) -> ArchitectureSpec:
        """A copy with ``metadata`` merged into this spec's metadata."""
        merged = {**_thaw_json(self.metadata), **metadata}
        return ArchitectureSpec(self.nodes, self.edges, self.input_shape, self.num_outputs, merged)


# ---------------------------------------------------------------------- validation helpers


def _check_keys(
    data: Mapping[str, Any], valid: Sequence[str], where: str, *, required: Sequence[str]
) -> None:
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; valid keys are {list(valid)}.")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{where} is missing key(s) {missing}; valid keys are {list(valid)}.")


def _check_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"`{where}` must be a list, but got {value!r}.")
    return list(value)


def _check_edge(edge: Any) -> tuple[str, str]:
    if (
        not isinstance(edge, (tuple, list))
        or len(edge) != 2
        or not all(isinstance(x, str) for x in edge)
    ):
        raise TypeError(f"each edge must be a (src, dst) pair of node ids, but got {edge!r}.")
    return edge[0], edge[1]


def _check_input_shape(shape: Any) -> tuple[int, int, int]:
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) == 3
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in shape)
    )
    if not ok:
        raise ValueError(
            f"`input_shape` must be (C, H, W) with three positive ints, but got {shape!r}."
        )
    return shape[0], shape[1], shape[2]


def _check_graph(
    nodes: tuple[Node, ...], edges: tuple[tuple[str, str], ...]
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Check ids, edges, arity, acyclicity, one input and one output; return inputs and order."""
    position: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.id in position:
            raise ValueError(f"duplicate node id {n.id!r}; node ids must be unique.")
        position[n.id] = i
    ids = list(position)
    inputs: dict[str, list[str]] = {n: [] for n in ids}
    consumers: dict[str, list[str]] = {n: [] for n in ids}
    for src, dst in edges:
        for end in (src, dst):
            if end not in position:
                raise ValueError(
                    f"edge ({src!r}, {dst!r}) refers to node {end!r}, which is not in the spec; "
                    f"nodes are {ids}."
                )
        if src == dst:
            raise ValueError(f"edge ({src!r}, {dst!r}) is a self-loop; a spec must be a DAG.")
        inputs[dst].append(src)
        consumers[src].append(dst)

    sources = [n.id for n in nodes if n.op == "input"]
    if len(sources) != 1:
        raise ValueError(f"a spec needs exactly one 'input' node, but has {sources}.")
    for n in nodes:
        arity = get_op(n.op).arity
        k = len(inputs[n.id])
        if arity is Arity.SOURCE and k:
            raise ValueError(f"the input node {n.id!r} must have no incoming edges, but has {k}.")
        if arity is Arity.UNARY and k != 1:
            raise ValueError(f"node {n.id!r}: op {n.op!r} takes exactly 1 input, but has {k}.")
        if arity is Arity.MERGE and k < 1:
            raise ValueError(f"node {n.id!r}: op {n.op!r} takes 1 or more inputs, but has none.")
    sinks = [n for n in ids if not consumers[n]]
    if len(sinks) != 1:
        raise ValueError(
            f"a spec needs exactly one output node (a node nothing consumes), but {sinks} have "
            "no outgoing edges; connect or remove the extra ones."
        )

    indegree = {n: len(inputs[n]) for n in ids}
    ready = [position[n] for n in ids if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = ids[heapq.heappop(ready)]
        order.append(node)
        for dst in consumers[node]:
            indegree[dst] -= 1
            if indegree[dst] == 0:
                heapq.heappush(ready, position[dst])
    if len(order) != len(ids):
        cyclic = _on_cycles({n for n in ids if indegree[n] > 0}, consumers)
        raise ValueError(f"the edges form a cycle through nodes {cyclic}; a spec must be a DAG.")
    if order[-1] != sinks[0]:  # pragma: no cover - a DAG's unique sink is last in Kahn order
        raise AssertionError("unique sink must come last")
    return {n: tuple(v) for n, v in inputs.items()}, tuple(order)


def _on_cycles(left: set[str], consumers: Mapping[str, list[str]]) -> list[str]:
    """Of the nodes Kahn's algorithm could not order, those on (or between) cycles."""
    changed = True
    while changed:
        changed = False
        for n in sorted(left):
            if not any(c in left for c in consumers[n]):
                left.discard(n)
                changed = True
    return sorted(left)


def spec_from_layers(
    layers: Iterable[tuple[str, str, Mapping[str, Any], Sequence[str]]],
    *,
    input_shape: tuple[int, int, int],
    num_outputs: int,
    input_id: str = "input",
    metadata: Mapping[str, Any] | None = None,
) -> ArchitectureSpec:
    """Build a spec from ``(id, op, config, input_ids)`` rows, after an ``input`` node.

    A convenience for spaces and tests: edges are derived from each row's ``input_ids``.
    """
    nodes = [Node(input_id, "input")]
    edges: list[tuple[str, str]] = []
    for node_id, op, config, ins in layers:
        nodes.append(Node(node_id, op, config))
        edges.extend((src, node_id) for src in ins)
    return ArchitectureSpec(tuple(nodes), tuple(edges), input_shape, num_outputs, metadata or {})
