"""``build_model``: the one way an :class:`~optuna_nas.spec.ArchitectureSpec` becomes a module.

The spec's DAG is compiled once, at build time, into a :mod:`torch.fx` graph: a placeholder for
the input, one ``call_module`` per layer node, ``operator.add`` / ``torch.cat`` for merges,
``Tensor.mul(0.0)`` for ``zero``, nothing at all for ``identity``, in the spec's topological
order. :class:`torch.fx.GraphModule` turns that graph into straight-line Python, so ``forward``
costs what a hand-written module costs (no interpretation of the spec per call, no dicts of
intermediate tensors) and works with :func:`torch.export.export`.

Channels and shapes come from the spec's inferred shapes (``spec.shape(node_id)``), never from
guesses. Parameters are initialised by PyTorch's default per-layer initialisers, in topological
order, so the same spec under the same ``torch.manual_seed`` gives the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import functools
import keyword
import operator
from typing import Any
from typing import cast

import torch
from torch import fx
from torch import nn

from optuna_nas.nn._modules import ActConvBn
from optuna_nas.nn._modules import ActSepConvBn
from optuna_nas.nn._modules import BatchNormAct
from optuna_nas.nn._modules import ConvBnAct
from optuna_nas.nn._modules import GlobalAvgPool
from optuna_nas.nn._modules import GlobalMaxPool
from optuna_nas.nn._modules import LinearAct
from optuna_nas.nn._modules import MBConv
from optuna_nas.nn._modules import SepConvBnAct
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

Shape = tuple[int, ...]

# ----------------------------------------------------------------------------- module names

# Node ids are ``[A-Za-z0-9_.:/-]+``. Submodule names must be attribute names, so `_` becomes
# `__` and each other punctuation mark `_` plus a letter; names that would still not be safe
# attributes (a leading digit, a keyword, an attribute of the model itself) get the prefix
# `_x`. Every escape starts with `_` and no escape is `_x`, so the mapping is injective.
_ESCAPES: Mapping[str, str] = {"_": "__", "/": "_s", ".": "_d", ":": "_c", "-": "_h"}


def module_name(node_id: str) -> str:
    """The attribute name of node ``node_id``'s submodule (and its ``state_dict`` prefix).

    Deterministic and injective: ``"cell/edge_1_0"`` becomes ``"cell_sedge__1__0"``.
    """
    name = "".join(_ESCAPES.get(ch, ch) for ch in node_id)
    if not name.isidentifier() or keyword.iskeyword(name) or name in _reserved_names():
        name = "_x" + name
    return name


def _value_name(node: Node) -> str:
    """A name hint for the variable holding ``node``'s output in the generated ``forward``.

    fx makes names unique and avoids globals such as ``torch``, but not ``self``.
    """
    name = module_name(node.id)
    return "self_" if name == "self" else name


@functools.cache
def _reserved_names() -> frozenset[str]:
    bare = fx.GraphModule(nn.Module(), fx.Graph())
    return frozenset(dir(BuiltModel)) | frozenset(vars(bare)) | {"spec"}


# ----------------------------------------------------------------------------- the model


class BuiltModel(fx.GraphModule):
    """A :class:`torch.fx.GraphModule` compiled from ``spec``, which it keeps as ``.spec``.

    Create it with :func:`build_model`. ``model.code`` shows the generated ``forward``.
    Deep copies keep ``spec``; pickling stores the spec and the ``state_dict``.
    """

    spec: ArchitectureSpec

    def __init__(
        self, modules: Mapping[str, nn.Module], graph: fx.Graph, spec: ArchitectureSpec
    ) -> None:
        super().__init__(dict(modules), graph, class_name="BuiltModel")
        self.spec = spec

    def __deepcopy__(self, memo: dict[int, Any]) -> BuiltModel:
        memo[id(self.spec)] = self.spec  # frozen, so shared rather than copied
        res = cast(BuiltModel, super().__deepcopy__(memo))  # GraphModule keeps type(self)
        res.spec = self.spec
        return res

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickle, (self.spec.to_json(), self.state_dict(), self.training))


def _unpickle(spec_json: str, state: dict[str, torch.Tensor], training: bool) -> BuiltModel:
    # Build on the meta device (no allocation, no RNG draws) and adopt the pickled tensors.
    with torch.device("meta"):
        model = build_model(ArchitectureSpec.from_json(spec_json))
    model.load_state_dict(state, assign=True)
    return model.train(training)


# ----------------------------------------------------------------------------- lowering


class _Lowering:
    """Build state: the fx graph under construction and the submodules it calls."""

    def __init__(self, spec: ArchitectureSpec) -> None:
        self.spec = spec
        self.graph = fx.Graph()
        self.modules: dict[str, nn.Module] = {}

    def call_module(self, node: Node, module: nn.Module, arg: fx.Node) -> fx.Node:
        name = module_name(node.id)
        self.modules[name] = module
        return self.graph.create_node("call_module", name, (arg,), name=_value_name(node))


Lower = Callable[[_Lowering, Node, Sequence[fx.Node]], fx.Node]
ModuleFactory = Callable[[Mapping[str, Any], Shape], nn.Module]


def _module_op(factory: ModuleFactory) -> Lower:
    """Lower a unary op to a submodule made by ``factory(config, input_shape)``."""

    def lower(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
        (src,) = b.spec.inputs(node.id)
        return b.call_module(node, factory(node.config, b.spec.shape(src)), args[0])

    return lower


def _lower_input(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
    return b.graph.placeholder("x")


def _lower_identity(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
    return args[0]


def _lower_zero(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
    # Multiply rather than allocate zeros, so the input stays in the graph (and gets a gradient).
    return b.graph.create_node("call_method", "mul", (args[0], 0.0), name=_value_name(node))


def _lower_add(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
    out = args[0]
    for arg in args[1:]:  # fx makes the repeated node names unique
        out = b.graph.create_node(
            "call_function", operator.add, (out, arg), name=_value_name(node)
        )
    return out


def _lower_concat(b: _Lowering, node: Node, args: Sequence[fx.Node]) -> fx.Node:
    if len(args) == 1:
        return args[0]
    return b.graph.create_node("call_function", torch.cat, (list(args), 1), name=_value_name(node))


def _choose(field: str, value: str, choices: Mapping[str, type[nn.Module]]) -> type[nn.Module]:
    if value not in choices:
        raise ValueError(f"`{field}` must be one of {sorted(choices)}, but got {value!r}.")
    return choices[value]


def _fields(cfg: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The config fields ``names``, as keyword arguments of the op's module."""
    return {name: cfg[name] for name in names}


def _conv(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    orders = {"conv_bn_act": ConvBnAct, "act_conv_bn": ActConvBn}
    fields = _fields(cfg, "kernel", "stride", "dilation", "groups", "activation", "bn", "bias")
    return _choose("order", cfg["order"], orders)(in_shape[0], cfg["channels"], **fields)


def _sep_conv(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    orders = {"conv_bn_act": SepConvBnAct, "act_conv_bn": ActSepConvBn}
    fields = _fields(cfg, "kernel", "stride", "activation")
    return _choose("order", cfg["order"], orders)(in_shape[0], cfg["channels"], **fields)


def _mbconv(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    fields = _fields(cfg, "kernel", "stride", "expand", "se", "activation")
    return MBConv(in_shape[0], cfg["channels"], **fields)


def _avg_pool(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    k = cfg["kernel"]
    return nn.AvgPool2d(k, cfg["stride"], padding=(k - 1) // 2, count_include_pad=False)


def _max_pool(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    k = cfg["kernel"]
    return nn.MaxPool2d(k, cfg["stride"], padding=(k - 1) // 2)


def _batchnorm(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    return BatchNormAct(in_shape[0], activation=cfg["activation"])


def _global_pool(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    return _choose("mode", cfg["mode"], {"avg": GlobalAvgPool, "max": GlobalMaxPool})()


def _dropout(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    return nn.Dropout(cfg["p"])


def _linear(cfg: Mapping[str, Any], in_shape: Shape) -> nn.Module:
    return LinearAct(in_shape[0], cfg["features"], bias=cfg["bias"], activation=cfg["activation"])


# How each op of the vocabulary becomes graph nodes; tests check it covers `spec.OPS` exactly.
LOWERINGS: Mapping[str, Lower] = {
    "input": _lower_input,
    "conv": _module_op(_conv),
    "sep_conv": _module_op(_sep_conv),
    "mbconv": _module_op(_mbconv),
    "avg_pool": _module_op(_avg_pool),
    "max_pool": _module_op(_max_pool),
    "identity": _lower_identity,
    "zero": _lower_zero,
    "add": _lower_add,
    "concat": _lower_concat,
    "batchnorm": _module_op(_batchnorm),
    "global_pool": _module_op(_global_pool),
    "dropout": _module_op(_dropout),
    "linear": _module_op(_linear),
}


def build_model(spec: ArchitectureSpec) -> BuiltModel:
    """Compile ``spec`` into a :class:`BuiltModel` mapping ``(N, *spec.input_shape)`` inputs to
    ``(N, spec.num_outputs)`` outputs.

    A pure function of ``spec`` (and of torch's RNG, for the initial weights; build under
    ``torch.device("meta")`` to skip allocation). Raises ``ValueError`` naming the node if an
    op has no torch implementation.
    """
    if not isinstance(spec, ArchitectureSpec):
        raise TypeError(f"`spec` must be an ArchitectureSpec, but got {type(spec).__name__}.")
    b = _Lowering(spec)
    values: dict[str, fx.Node] = {}
    for node_id in spec.topological_order:
        node = spec.node(node_id)
        lower = LOWERINGS.get(node.op)
        if lower is None:
            raise ValueError(
                f"node {node_id!r}: op {node.op!r} has no torch implementation in "
                f"optuna_nas.nn; implemented ops are {sorted(LOWERINGS)}."
            )
        values[node_id] = lower(b, node, [values[i] for i in spec.inputs(node_id)])
    b.graph.output(values[spec.output_id])
    b.graph.lint()
    return BuiltModel(b.modules, b.graph, spec)
