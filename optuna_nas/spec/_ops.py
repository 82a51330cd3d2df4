"""The op vocabulary of :class:`~optuna_nas.spec.ArchitectureSpec`, without torch.

Every op a spec may use is declared here once: its config fields (type, default, rule), how
many inputs it takes, how it behaves under canonicalisation, and how it maps input shapes to
its output shape. The torch builder (:mod:`optuna_nas.nn`) implements exactly these ops; the
spec package uses the declarations to validate specs (config fields, shapes) without importing
torch.

Padding is always derived, never configured: convolutions pad ``dilation * (kernel - 1) // 2``
on each side (odd kernels only, so "same" padding is exact) and pools pad ``(kernel - 1) // 2``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import enum
import math
from typing import Any

Shape = tuple[int, ...]

ACTIVATIONS: tuple[str, ...] = ("none", "relu", "relu6", "silu", "gelu", "hardswish", "tanh")
CONV_ORDERS: tuple[str, ...] = ("conv_bn_act", "act_conv_bn")

_REQUIRED: Any = object()


class Arity(enum.Enum):
    """How many inputs an op takes."""

    SOURCE = "source"  # no inputs: the network input
    UNARY = "unary"  # exactly one input
    MERGE = "merge"  # one or more inputs, in edge order


class Role(enum.Enum):
    """How an op behaves under canonicalisation (see :mod:`optuna_nas.spec._canonical`)."""

    INPUT = "input"  # the network input: one term of its own
    IDENTITY = "identity"  # passes its input's terms through
    ZERO = "zero"  # contributes no term
    SUM = "sum"  # the multiset union of its inputs' terms
    TERM = "term"  # one new term op(inputs); zero when every input is zero


@dataclass(frozen=True)
class Field:
    """One config field of an op: its type, default and validity rule."""

    type: type
    default: Any = _REQUIRED
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None  # exclusive
    odd: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, op: str, name: str, value: Any) -> Any:
        """Return ``value`` normalised to the field's type; raise ``TypeError``/``ValueError``."""
        where = f"op {op!r} config field {name!r}"
        if self.type is bool:
            if not isinstance(value, bool):
                raise TypeError(f"{where} must be a bool, but got {value!r}.")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{where} must be an int, but got {value!r}.")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{where} must be a float, but got {value!r}.")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} must be finite, but got {value!r}.")
        elif self.type is str and not isinstance(value, str):
            raise TypeError(f"{where} must be a str, but got {value!r}.")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where} must be one of {list(self.choices)}, but got {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} must be >= {self.minimum}, but got {value!r}.")
        if self.maximum is not None and value >= self.maximum:
            raise ValueError(f"{where} must be < {self.maximum}, but got {value!r}.")
        if self.odd and value % 2 == 0:
            raise ValueError(
                f"{where} must be odd (padding keeps the feature map centred), but got {value!r}."
            )
        return value


ShapeFn = Callable[[str, Mapping[str, Any], Sequence[Shape]], Shape]


@dataclass(frozen=True)
class OpDef:
    """The declaration of one op: config fields, arity, canonical role and shape rule."""

    name: str
    fields: Mapping[str, Field]
    arity: Arity
    role: Role
    infer_shape: ShapeFn
    doc: str

    def normalise_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``config`` and return it with every default filled in."""
        if not isinstance(config, Mapping):
            raise TypeError(f"op {self.name!r} config must be a mapping, but got {config!r}.")
        unknown = sorted(set(config) - set(self.fields))
        if unknown:
            raise ValueError(
                f"op {self.name!r} has no config field(s) {unknown}; "
                f"valid fields are {sorted(self.fields)}."
            )
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            if name in config:
                out[name] = field.check(self.name, name, config[name])
            elif field.required:
                raise ValueError(
                    f"op {self.name!r} requires config field {name!r}; "
                    f"valid fields are {sorted(self.fields)}."
                )
            else:
                out[name] = field.default
        return out


# ----------------------------------------------------------------------------- shape rules


def _image(node: str, op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"node {node!r}: op {op!r} needs a (C, H, W) feature map, but its input has shape "
            f"{shape}; put it before the global pool."
        )
    return shape[0], shape[1], shape[2]


def _spatial(
    node: str, op: str, hw: tuple[int, int], kernel: int, stride: int, pad: int
) -> tuple[int, int]:
    h, w = hw
    # With `pad` on each side, every kernel tap touches the input somewhere iff pad <= size - 1;
    # beyond that, weights only ever see padding (a 3x3 conv on a 1x1 map).
    if kernel > min(h, w) + 2 * pad or pad > min(h, w) - 1:
        raise ValueError(
            f"node {node!r}: op {op!r} has an effective kernel of {kernel}, larger than its "
            f"{h}x{w} input feature map can use (padding {pad}: some weights would only ever "
            "see padding); use a smaller kernel or fewer strided layers before it."
        )
    if h // stride == 0 or w // stride == 0:
        raise ValueError(
            f"node {node!r}: op {op!r} with stride {stride} shrinks its {h}x{w} input feature "
            f"map to zero ({h} // {stride} = {h // stride}); use stride 1 here or fewer strided "
            "layers before it."
        )
    return (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1


def _conv_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    c, h, w = _image(node, op, inputs[0])
    groups = cfg.get("groups", 1)
    if c % groups or cfg["channels"] % groups:
        raise ValueError(
            f"node {node!r}: op {op!r} groups={groups} must divide both its input channels "
            f"({c}) and its output channels ({cfg['channels']})."
        )
    dilation = cfg.get("dilation", 1)
    kernel = dilation * (cfg["kernel"] - 1) + 1
    oh, ow = _spatial(node, op, (h, w), kernel, cfg["stride"], (kernel - 1) // 2)
    return cfg["channels"], oh, ow


def _pool_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    c, h, w = _image(node, op, inputs[0])
    kernel = cfg["kernel"]
    oh, ow = _spatial(node, op, (h, w), kernel, cfg["stride"], (kernel - 1) // 2)
    return c, oh, ow


def _same_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    return inputs[0]


def _image_same_shape(
    node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str
) -> Shape:
    return _image(node, op, inputs[0])


def _add_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    if any(s != inputs[0] for s in inputs):
        raise ValueError(
            f"node {node!r}: op 'add' sums inputs of different shapes {list(inputs)}; "
            "put an explicit projection (e.g. a 1x1 'conv' with the right stride and channels) "
            "on the inputs that differ."
        )
    return inputs[0]


def _concat_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    images = [_image(node, op, s) for s in inputs]
    if any(s[1:] != images[0][1:] for s in images):
        raise ValueError(
            f"node {node!r}: op 'concat' joins feature maps of different spatial sizes "
            f"{list(inputs)}; concatenation needs equal H and W."
        )
    return sum(s[0] for s in images), images[0][1], images[0][2]


def _global_pool_shape(
    node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str
) -> Shape:
    return (_image(node, op, inputs[0])[0],)


def _linear_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    if len(inputs[0]) != 1:
        raise ValueError(
            f"node {node!r}: op 'linear' needs a flat (features,) input, but its input has shape "
            f"{inputs[0]}; put a 'global_pool' before it."
        )
    return (cfg["features"],)


def _no_input_shape(node: str, cfg: Mapping[str, Any], inputs: Sequence[Shape], op: str) -> Shape:
    raise AssertionError("the input node's shape is the spec's input_shape")  # pragma: no cover


# ----------------------------------------------------------------------------- vocabulary

_ACT = Field(str, "relu", choices=ACTIVATIONS)
_STRIDE = Field(int, 1, minimum=1)


def _op(name: str, arity: Arity, role: Role, shape: Any, doc: str, **fields: Field) -> OpDef:
    return OpDef(
        name=name,
        fields=fields,
        arity=arity,
        role=role,
        infer_shape=lambda node, cfg, ins: shape(node, cfg, ins, name),
        doc=doc,
    )


def _conv_op(name: str, doc: str, **fields: Field) -> OpDef:
    """A convolution-like op: ``channels``, an odd ``kernel`` and ``stride`` come first."""
    return _op(
        name,
        Arity.UNARY,
        Role.TERM,
        _conv_shape,
        doc,
        channels=Field(int, minimum=1),
        kernel=Field(int, minimum=1, odd=True),
        stride=_STRIDE,
        **fields,
    )


def _pool_op(name: str, doc: str) -> OpDef:
    """A pooling op: ``kernel`` and ``stride``, channels kept."""
    return _op(
        name,
        Arity.UNARY,
        Role.TERM,
        _pool_shape,
        doc,
        kernel=Field(int, minimum=1),
        stride=_STRIDE,
    )


OPS: Mapping[str, OpDef] = {
    op.name: op
    for op in (
        _op("input", Arity.SOURCE, Role.INPUT, _no_input_shape, "The network input."),
        _conv_op(
            "conv",
            "Convolution with optional batch norm and activation, in `order` "
            "(conv_bn_act, or act_conv_bn: NAS-Bench-201's ReLU-Conv-BN); the convolution has "
            "a bias only if `bias` is true.",
            dilation=Field(int, 1, minimum=1),
            groups=Field(int, 1, minimum=1),
            activation=_ACT,
            bn=Field(bool, True),
            bias=Field(bool, False),
            order=Field(str, "conv_bn_act", choices=CONV_ORDERS),
        ),
        _conv_op(
            "sep_conv",
            "Depthwise-separable convolution: depthwise kxk, pointwise 1x1, batch norm, "
            "activation in `order`.",
            activation=_ACT,
            order=Field(str, "conv_bn_act", choices=CONV_ORDERS),
        ),
        _conv_op(
            "mbconv",
            "Inverted bottleneck (MobileNetV2/MnasNet): 1x1 expansion (if expand > 1), depthwise "
            "kxk, squeeze-excitation (if se > 0, ratio of the input channels), 1x1 linear "
            "projection. The residual, if any, is an explicit 'add' node.",
            expand=Field(int, 6, minimum=1),
            se=Field(float, 0.0, minimum=0.0, maximum=1.0),
            activation=Field(str, "relu6", choices=ACTIVATIONS),
        ),
        _pool_op("avg_pool", "Average pooling (padding excluded from the average)."),
        _pool_op("max_pool", "Max pooling."),
        _op("identity", Arity.UNARY, Role.IDENTITY, _same_shape, "Passes its input through."),
        _op("zero", Arity.UNARY, Role.ZERO, _same_shape, "Zeros of its input's shape ('none')."),
        _op("add", Arity.MERGE, Role.SUM, _add_shape, "Sum of inputs of equal shape."),
        _op("concat", Arity.MERGE, Role.TERM, _concat_shape, "Channel concatenation."),
        _op(
            "batchnorm",
            Arity.UNARY,
            Role.TERM,
            _image_same_shape,
            "Batch norm followed by an activation.",
            activation=Field(str, "none", choices=ACTIVATIONS),
        ),
        _op(
            "global_pool",
            Arity.UNARY,
            Role.TERM,
            _global_pool_shape,
            "Global pooling to a (C,) vector.",
            mode=Field(str, "avg", choices=("avg", "max")),
        ),
        _op(
            "dropout",
            Arity.UNARY,
            Role.TERM,
            _same_shape,
            "Dropout with probability p.",
            p=Field(float, 0.0, minimum=0.0, maximum=1.0),
        ),
        _op(
            "linear",
            Arity.UNARY,
            Role.TERM,
            _linear_shape,
            "Fully connected layer on a flat input, then an activation.",
            features=Field(int, minimum=1),
            bias=Field(bool, True),
            activation=Field(str, "none", choices=ACTIVATIONS),
        ),
    )
}


def get_op(name: str) -> OpDef:
    """Return the declaration of op ``name``, or raise a ``ValueError`` listing the valid ops."""
    if not isinstance(name, str) or name not in OPS:
        raise ValueError(f"unknown op {name!r}; valid ops are {sorted(OPS)}.")
    return OPS[name]
