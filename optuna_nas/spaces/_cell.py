"""The cell (micro) search space: one searched cell, stacked into a fixed network.

The network is the one of NAS-Bench-201 (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020), with the number of stages and cells and the
op set made configurable:

* stem: ``conv`` 3x3 with ``C`` channels and batch norm, no activation;
* ``num_stages`` stages of ``cells_per_stage`` cells with ``C, 2C, 4C, ...`` channels; the stages
  are joined by residual reduction blocks (a ResNet basic block: ReLU-Conv-BN 3x3 stride 2,
  ReLU-Conv-BN 3x3, shortcut 2x2 average pool stride 2 then a 1x1 conv without batch norm, add);
* classifier: batch norm + ReLU, global average pool, ``linear``.

A cell is a DAG of ``num_nodes`` nodes. Node 0 is the cell input; for ``j >= 1``, every edge
``j <- i`` (``i < j``) applies one op to node ``i``, and node ``j`` is the ``add`` of its
incoming edges. The cell output is the last node. The same cell is used everywhere, and the op
of edge ``j <- i`` is the parameter ``cell/edge_{j}_{i}/op``.

With :meth:`CellSpace.nasbench201` this is exactly the NAS-Bench-201 space: 4 nodes, 6 edges,
ops ``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``, 3 stages of 5 cells with
16, 32 and 64 channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution

from optuna_nas._validation import check_typed_int
from optuna_nas.spaces._base import Choose
from optuna_nas.spaces._base import Graph
from optuna_nas.spaces._base import SearchSpace
from optuna_nas.spaces._base import categorical
from optuna_nas.spaces._base import check_choices
from optuna_nas.spaces._base import check_input_shape
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import get_op

# name -> (spec op, kernel); kernel 0 for ops without a spatial extent.
_CELL_OPS: dict[str, tuple[str, int]] = {
    "none": ("zero", 0),
    "skip_connect": ("identity", 0),
    "nor_conv_1x1": ("conv", 1),
    "nor_conv_3x3": ("conv", 3),
    "nor_conv_5x5": ("conv", 5),
    "sep_conv_3x3": ("sep_conv", 3),
    "sep_conv_5x5": ("sep_conv", 5),
    "avg_pool_3x3": ("avg_pool", 3),
    "max_pool_3x3": ("max_pool", 3),
}

CELL_OPS: tuple[str, ...] = tuple(_CELL_OPS)
"""Every op a cell edge may carry. ``none`` is ``zero``, ``skip_connect`` is ``identity``,
``nor_conv_kxk`` is ReLU-Conv-BN, ``sep_conv_kxk`` is one ReLU-depthwise-separable-conv-BN
(DARTS stacks two; this is the simplified single one), pools are stride 1."""

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
"""The NAS-Bench-201 op set, in the benchmark's order."""


def edge_param(j: int, i: int) -> str:
    """The parameter name of the op on cell edge ``j <- i``."""
    return f"cell/edge_{j}_{i}/op"


def cell_edges(num_nodes: int) -> list[tuple[int, int]]:
    """Edges ``(j, i)`` of a cell, in NAS-Bench-201 order: 1<-0, 2<-0, 2<-1, 3<-0, ..."""
    return [(j, i) for j in range(1, num_nodes) for i in range(j)]


def cell_op_node(name: str, channels: int) -> tuple[str, dict[str, Any]]:
    """The spec op and config of cell op ``name`` at ``channels`` channels (stride 1)."""
    op, kernel = _CELL_OPS[name]
    if op in ("conv", "sep_conv"):
        cfg = {"channels": channels, "kernel": kernel}
        return op, {**cfg, "activation": "relu", "order": "act_conv_bn"}
    if op in ("avg_pool", "max_pool"):
        return op, {"kernel": kernel, "stride": 1}
    return op, {}


class Cell:
    """The searched part shared by :class:`CellSpace` and the mixed space: one cell's edge ops."""

    def __init__(self, ops: Any, num_nodes: Any) -> None:
        self.ops: tuple[str, ...] = check_choices("ops", ops, allowed=CELL_OPS)
        self.num_nodes = check_typed_int("num_nodes", num_nodes, minimum=2)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {edge_param(j, i): categorical(self.ops) for j, i in cell_edges(self.num_nodes)}

    def choose(self, choose: Choose) -> dict[tuple[int, int], str]:
        return {(j, i): choose(edge_param(j, i)) for j, i in cell_edges(self.num_nodes)}

    def worst_op(self) -> str:
        """The op with the largest kernel: if it fits everywhere, every op does."""
        return max(self.ops, key=lambda op: _CELL_OPS[op][1])


def check_even_reductions(input_shape: tuple[int, int, int], num_stages: int) -> None:
    """Raise unless every reduction block gets an even feature map.

    The block's 2x2 average-pool shortcut floors odd sizes while its strided 3x3 conv rounds
    them up, so their sum only exists for even sizes (as in NAS-Bench-201).
    """
    h, w = input_shape[1:]
    for s in range(2, num_stages + 1):
        if h % 2 or w % 2:
            raise ValueError(
                f"`num_stages`={num_stages} does not fit `input_shape`={input_shape}: the "
                f"reduction block before stage {s} needs an even feature map (its 2x2 "
                f"average-pool shortcut and strided 3x3 conv must agree), but gets {h}x{w}."
            )
        h, w = h // 2, w // 2


def build_cell_network(
    cell: Mapping[tuple[int, int], str],
    *,
    num_nodes: int,
    input_shape: tuple[int, int, int],
    num_outputs: int,
    init_channels: int,
    num_stages: int,
    cells_per_stage: int,
    metadata: Mapping[str, Any],
) -> ArchitectureSpec:
    """The NAS-Bench-201 network skeleton around ``cell`` (see the module docstring)."""
    g = Graph(input_shape)
    x = g.add(
        "stem", "conv", {"channels": init_channels, "kernel": 3, "activation": "none"}, ["input"]
    )
    channels = init_channels
    for s in range(1, num_stages + 1):
        if s > 1:
            x = _reduction(g, f"stage{s}/reduce", x, 2 * channels)
            channels *= 2
        for c in range(1, cells_per_stage + 1):
            x = _cell(g, f"stage{s}/cell{c}", x, cell, num_nodes, channels)
    x = g.add("lastact", "batchnorm", {"activation": "relu"}, [x])
    x = g.add("pool", "global_pool", {"mode": "avg"}, [x])
    g.add("classifier", "linear", {"features": num_outputs}, [x])
    return g.spec(num_outputs=num_outputs, metadata=metadata)


def _cell(
    g: Graph,
    prefix: str,
    x: str,
    ops: Mapping[tuple[int, int], str],
    num_nodes: int,
    channels: int,
) -> str:
    nodes = [x]
    for j in range(1, num_nodes):
        edges = []
        for i in range(j):
            op, cfg = cell_op_node(ops[j, i], channels)
            edges.append(g.add(f"{prefix}/edge_{j}_{i}", op, cfg, [nodes[i]]))
        nodes.append(g.add(f"{prefix}/node{j}", "add", {}, edges))
    return nodes[-1]


def _reduction(g: Graph, prefix: str, x: str, channels: int) -> str:
    """NAS-Bench-201's ``ResNetBasicblock(C_in, C_out, stride=2)``."""
    rcb = {"channels": channels, "kernel": 3, "order": "act_conv_bn", "activation": "relu"}
    a = g.add(f"{prefix}/conv_a", "conv", {**rcb, "stride": 2}, [x])
    b = g.add(f"{prefix}/conv_b", "conv", rcb, [a])
    p = g.add(f"{prefix}/pool", "avg_pool", {"kernel": 2, "stride": 2}, [x])
    proj = {"channels": channels, "kernel": 1, "bn": False, "activation": "none"}
    q = g.add(f"{prefix}/proj", "conv", proj, [p])
    return g.add(f"{prefix}/add", "add", {}, [b, q])


class CellBasedSpace(SearchSpace):
    """A space whose searched part includes one :class:`Cell` (``self._cell``), with the
    distributions in ``self._distributions``: the cell and mixed spaces."""

    _cell: Cell
    _distributions: dict[str, BaseDistribution]

    @property
    def ops(self) -> tuple[str, ...]:
        return self._cell.ops

    @property
    def num_nodes(self) -> int:
        return self._cell.num_nodes

    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._distributions)


class CellSpace(CellBasedSpace):
    """The NAS-Bench-201-style cell space (Dong & Yang, ICLR 2020); see the module docstring.

    Args:
        input_shape: ``(C, H, W)`` of the data.
        num_outputs: number of classes.
        ops: the ops an edge may carry, a subset of :data:`CELL_OPS` (default: NAS-Bench-201's).
        num_nodes: nodes of the cell, including its input node (4 gives 6 edges).
        init_channels: channels of the stem and the first stage; stage ``s`` has
            ``init_channels * 2 ** (s - 1)``.
        num_stages: stages, joined by stride-2 reduction blocks.
        cells_per_stage: cells in each stage.

    The defaults suit 8x8 images such as the digits data set (3 stages: 8x8, 4x4, 2x2). The
    constructor builds the worst case (every edge carrying the op with the largest kernel) and
    raises if it does not fit ``input_shape``; e.g. a reduction needs an even feature map, as
    in NAS-Bench-201 the 2x2 average-pool shortcut and the strided 3x3 conv must agree.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        ops: Sequence[str] = NB201_OPS,
        num_nodes: int = 4,
        init_channels: int = 16,
        num_stages: int = 3,
        cells_per_stage: int = 2,
    ) -> None:
        self.input_shape = check_input_shape(input_shape)
        self.num_outputs = check_typed_int("num_outputs", num_outputs, minimum=1)
        self._cell = Cell(ops, num_nodes)
        self.init_channels = check_typed_int("init_channels", init_channels, minimum=1)
        self.num_stages = check_typed_int("num_stages", num_stages, minimum=1)
        self.cells_per_stage = check_typed_int("cells_per_stage", cells_per_stage, minimum=1)
        check_even_reductions(self.input_shape, self.num_stages)
        self._distributions = self._cell.distributions()
        worst = self._cell.worst_op()
        self._check_fits(
            lambda name, dist: worst, f"the worst case (every edge carrying {worst!r})"
        )

    @classmethod
    def nasbench201(
        cls,
        *,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        num_outputs: int = 10,
        init_channels: int = 16,
        cells_per_stage: int = 5,
    ) -> CellSpace:
        """The NAS-Bench-201 space: its op set, 4-node cells and 3 stages (CIFAR-10 defaults).

        Built with :func:`optuna_nas.nn.build_model`, the CIFAR-10 network has exactly the
        benchmark's parameter count (``params_m``), checked on its table.
        """
        return cls(
            input_shape=input_shape,
            num_outputs=num_outputs,
            ops=NB201_OPS,
            num_nodes=4,
            init_channels=init_channels,
            num_stages=3,
            cells_per_stage=cells_per_stage,
        )

    @property
    def name(self) -> str:
        return "cell"

    def build(self, choose: Choose) -> ArchitectureSpec:
        return build_cell_network(
            self._cell.choose(choose),
            num_nodes=self.num_nodes,
            input_shape=self.input_shape,
            num_outputs=self.num_outputs,
            init_channels=self.init_channels,
            num_stages=self.num_stages,
            cells_per_stage=self.cells_per_stage,
            metadata=self._metadata(),
        )

    def encode(self, spec: ArchitectureSpec) -> dict[str, str]:
        """The params that :meth:`decode` turns into ``spec``; the inverse of :meth:`decode`.

        Reads the first cell's edges and checks that decoding them rebuilds ``spec`` exactly;
        raises ``ValueError`` if ``spec`` is not an architecture of this space.
        """
        params: dict[str, str] = {}
        for j, i in cell_edges(self.num_nodes):
            node_id = f"stage1/cell1/edge_{j}_{i}"
            try:
                node = spec.node(node_id)
            except KeyError:
                raise ValueError(
                    f"`spec` has no node {node_id!r}; it is not a cell-space spec."
                ) from None
            params[edge_param(j, i)] = self._op_name(node_id, node.op, node.config)
        if self.decode(params) != spec:
            raise ValueError(
                "`spec` is not an architecture of this CellSpace: its cells differ from one "
                "another or its skeleton differs from the space's configuration."
            )
        return params

    def _op_name(self, node_id: str, op: str, config: Mapping[str, Any]) -> str:
        for name in self.ops:
            want_op, want_cfg = cell_op_node(name, self.init_channels)
            if op == want_op and get_op(op).normalise_config(want_cfg) == dict(config):
                return name
        raise ValueError(
            f"node {node_id!r} ({op!r} with {dict(config)}) is none of this space's ops "
            f"{list(self.ops)}."
        )
