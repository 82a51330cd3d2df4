"""The chain (macro) search space: a searched sequence of layers with skip connections.

A macro space in the style of the ENAS / NASNet "macro" spaces (Zoph & Le, ICLR 2017; Pham et
al., ICML 2018), with ResNet residuals (He et al., CVPR 2016) and DenseNet concatenations (Huang
et al., CVPR 2017) as per-layer choices. The network is

* ``stem``: ``conv`` 3x3 with ``stem_channels`` channels, batch norm and the activation;
* ``layer1 .. layer{depth}``, each one op of ``ops`` with its skip connection;
* ``pool`` (global average pool) and ``classifier`` (``linear`` to ``num_outputs``).

Parameters (``i`` counts layers from 1; ``layer{i}/*`` exists only when ``depth >= i``):

* ``depth``: int in ``[min_depth, max_depth]``;
* ``activation``: one activation for the whole network (stem, conv and sep_conv layers);
* ``layer{i}/op``: one of ``ops``;
* ``layer{i}/width``: output channels, one of ``widths``; asked only for convolution ops
  (``conv_*``, ``sep_conv_*``). Pooling and ``identity`` keep their input's channels;
* ``layer{i}/stride``: 1 or 2; asked only for layers listed in ``stride_layers`` whose op is
  not ``identity``. Every other layer has stride 1, so downsampling happens only where the
  space was configured to allow it, and the constructor checks that the worst case (every
  stride layer at stride 2 with the largest kernel after it) fits ``input_shape``;
* ``layer{i}/skip``: ``none``, ``residual`` or ``dense``:

  - ``none``: the layer applies its op to the previous layer's output;
  - ``residual``: the op's output plus the layer's input, through an explicit 1x1 ``conv``
    projection (batch norm, no activation) when channels or resolution differ;
  - ``dense``: the op reads the ``concat`` of every feature map of the current resolution so
    far (the stage input and the outputs of the stage's earlier layers, DenseNet-style). A
    stride-2 layer starts a new resolution. With a single such map no ``concat`` node is made,
    so ``dense`` then computes the same as ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import IntDistribution

from optuna_nas._validation import check_typed_int
from optuna_nas.spaces._base import Choose
from optuna_nas.spaces._base import Graph
from optuna_nas.spaces._base import SearchSpace
from optuna_nas.spaces._base import any_value
from optuna_nas.spaces._base import categorical
from optuna_nas.spaces._base import check_choices
from optuna_nas.spaces._base import check_input_shape
from optuna_nas.spaces._base import check_range
from optuna_nas.spaces._base import positive_int
from optuna_nas.spec import ACTIVATIONS
from optuna_nas.spec import ArchitectureSpec

# name -> (spec op, kernel); kernel 0 for identity.
_CHAIN_OPS: dict[str, tuple[str, int]] = {
    "conv_3x3": ("conv", 3),
    "conv_5x5": ("conv", 5),
    "conv_7x7": ("conv", 7),
    "sep_conv_3x3": ("sep_conv", 3),
    "sep_conv_5x5": ("sep_conv", 5),
    "max_pool_3x3": ("max_pool", 3),
    "avg_pool_3x3": ("avg_pool", 3),
    "identity": ("identity", 0),
}

CHAIN_OPS: tuple[str, ...] = tuple(_CHAIN_OPS)
"""Every op a chain layer may apply: convolutions (conv-BN-activation) 3x3/5x5/7x7,
depthwise-separable convolutions 3x3/5x5, 3x3 max and average pooling, and identity."""

SKIPS: tuple[str, ...] = ("none", "residual", "dense")
"""The skip connections a chain layer may choose."""

_CONV_LIKE = ("conv", "sep_conv")


class ChainSpace(SearchSpace):
    """A searched chain of layers with per-layer op, width, stride and skip connection.

    See the module docstring for the network and its parameters.

    Args:
        input_shape: ``(C, H, W)`` of the data.
        num_outputs: number of classes.
        min_depth: fewest layers.
        max_depth: most layers.
        ops: the ops a layer may apply, a subset of :data:`CHAIN_OPS`.
        widths: output channels a convolution layer may choose.
        skips: the skip connections a layer may choose, a subset of :data:`SKIPS`.
        activations: the activations the network may choose (one for the whole network).
        stride_layers: the layers (counted from 1, at most ``max_depth``) that may downsample.
        stem_channels: output channels of the stem convolution.

    The defaults suit 8x8 images such as digits: layer 3 may halve the feature map to 4x4,
    where 7x7 kernels still fit. For 32x32 images, e.g. ``stride_layers=(3, 5)``.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        min_depth: int = 2,
        max_depth: int = 6,
        ops: Sequence[str] = CHAIN_OPS,
        widths: Sequence[int] = (16, 32, 64),
        skips: Sequence[str] = SKIPS,
        activations: Sequence[str] = ("relu", "silu"),
        stride_layers: Sequence[int] = (3,),
        stem_channels: int = 16,
    ) -> None:
        self.input_shape = check_input_shape(input_shape)
        self.num_outputs = check_typed_int("num_outputs", num_outputs, minimum=1)
        self.min_depth = check_typed_int("min_depth", min_depth, minimum=1)
        self.max_depth = check_typed_int("max_depth", max_depth, minimum=1)
        check_range("min_depth", min_depth, "max_depth", max_depth)
        self.ops = check_choices("ops", ops, allowed=CHAIN_OPS)
        self.widths = check_choices("widths", widths, rule=("a positive int", positive_int))
        self.skips = check_choices("skips", skips, allowed=SKIPS)
        self.activations = check_choices("activations", activations, allowed=ACTIVATIONS)
        if isinstance(stride_layers, (str, bytes)) or not isinstance(stride_layers, Sequence):
            raise TypeError(
                f"`stride_layers` must be a sequence of ints, but got {stride_layers!r}."
            )
        for layer in stride_layers:
            if not positive_int(layer) or layer > max_depth:
                raise ValueError(
                    "every entry of `stride_layers` must be a layer in "
                    f"[1, max_depth={max_depth}], but got {layer!r}."
                )
        if len(set(stride_layers)) != len(stride_layers):
            raise ValueError(
                f"`stride_layers` must not repeat a layer, but got {stride_layers!r}."
            )
        self.stride_layers = tuple(sorted(stride_layers))
        self.stem_channels = check_typed_int("stem_channels", stem_channels, minimum=1)
        self._distributions = self._declare()
        self._check_fits(
            self._worst,
            "the worst case (max_depth layers with the largest kernel, stride 2 where allowed)",
        )

    @property
    def name(self) -> str:
        return "chain"

    def _declare(self) -> dict[str, BaseDistribution]:
        dists: dict[str, BaseDistribution] = {
            "depth": IntDistribution(self.min_depth, self.max_depth),
            "activation": categorical(self.activations),
        }
        conv_like = any(_CHAIN_OPS[op][0] in _CONV_LIKE for op in self.ops)
        can_stride = any(_CHAIN_OPS[op][0] != "identity" for op in self.ops)
        for i in range(1, self.max_depth + 1):
            dists[f"layer{i}/op"] = categorical(self.ops)
            if conv_like:
                dists[f"layer{i}/width"] = categorical(self.widths)
            if can_stride and i in self.stride_layers:
                dists[f"layer{i}/stride"] = categorical((1, 2))
            dists[f"layer{i}/skip"] = categorical(self.skips)
        return dists

    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def _worst(self, name: str, dist: BaseDistribution) -> Any:
        if name == "depth":
            return self.max_depth
        if name.endswith("/op"):
            return max(self.ops, key=lambda op: _CHAIN_OPS[op][1])
        if name.endswith("/stride"):
            return 2
        return any_value(dist)

    def build(self, choose: Choose) -> ArchitectureSpec:
        g = Graph(self.input_shape)
        act = choose("activation")
        stem = {"channels": self.stem_channels, "kernel": 3, "activation": act}
        x = g.add("stem", "conv", stem, ["input"])
        stage = [x]  # the feature maps at the current resolution, oldest first
        for i in range(1, choose("depth") + 1):
            layer = f"layer{i}"
            op, kernel = _CHAIN_OPS[choose(f"{layer}/op")]
            config: dict[str, Any] = {}
            if op in _CONV_LIKE:
                config = {
                    "channels": choose(f"{layer}/width"),
                    "kernel": kernel,
                    "activation": act,
                }
            elif op != "identity":
                config = {"kernel": kernel}
            stride = 1
            if op != "identity" and i in self.stride_layers:
                stride = choose(f"{layer}/stride")
                config["stride"] = stride
            skip = choose(f"{layer}/skip")
            src = x
            if skip == "dense" and len(stage) > 1:
                src = g.add(f"{layer}/concat", "concat", {}, stage)
            out = g.add(layer, op, config, [src])
            if skip == "residual":
                shortcut = x
                if g.shape(x) != g.shape(out):
                    proj = {"channels": g.shape(out)[0], "kernel": 1, "stride": stride}
                    shortcut = g.add(f"{layer}/proj", "conv", {**proj, "activation": "none"}, [x])
                out = g.add(f"{layer}/add", "add", {}, [out, shortcut])
            stage = [out] if stride > 1 else [*stage, out]
            x = out
        x = g.add("pool", "global_pool", {"mode": "avg"}, [x])
        g.add("classifier", "linear", {"features": self.num_outputs}, [x])
        return g.spec(num_outputs=self.num_outputs, metadata=self._metadata())
