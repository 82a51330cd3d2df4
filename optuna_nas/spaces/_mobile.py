"""The mobile search space: stages of inverted-bottleneck (MBConv) blocks.

The block-wise space of MnasNet (Tan et al., "MnasNet: Platform-Aware Neural Architecture
Search for Mobile", CVPR 2019), ProxylessNAS (Cai et al., "ProxylessNAS: Direct Neural
Architecture Search on Target Task and Hardware", ICLR 2019) and FBNet (Wu et al., "FBNet:
Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture Search", CVPR
2019): a fixed channel / stride schedule, and per block a searched kernel, expansion ratio and
squeeze-excitation, with a searched depth per stage. The network is

* ``stem``: ``conv`` 3x3, ``stem_channels`` channels, stride ``stem_stride``, batch norm,
  activation;
* for each stage ``s`` of ``stages``, ``stage{s}/depth`` ``mbconv`` blocks with the stage's
  channels; only the first block of a stage has the stage's stride, and a block of stride 1
  whose input has its output channels gets an explicit residual ``add`` (MobileNetV2);
* ``head``: ``conv`` 1x1 to ``head_channels``, then global average pool and ``linear``.

Parameters (``s`` and ``b`` count from 1; ``stage{s}/block{b}/*`` exists only when
``stage{s}/depth >= b``): ``stage{s}/depth`` (int in the stage's ``[min_depth, max_depth]``),
``stage{s}/block{b}/kernel`` (one of the stage's ``kernels``), ``stage{s}/block{b}/expand``
(one of the stage's ``expansions``) and ``stage{s}/block{b}/se`` (one of ``se``: squeeze-
excitation with ratio ``se_ratio`` if True).

Simplified from the papers: MnasNet also searches the skip op and the number of filters per
stage, and FBNet has grouped convolutions and a "skip" block; here the channels are fixed and
a skipped block is a smaller depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
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
from optuna_nas.spaces._base import odd_positive_int
from optuna_nas.spaces._base import positive_int
from optuna_nas.spec import ACTIVATIONS
from optuna_nas.spec import ArchitectureSpec


@dataclass(frozen=True, kw_only=True)
class MobileStage:
    """One stage of :class:`MobileSpace`: fixed channels and stride, searched blocks.

    ``kernels`` are per stage because a kernel must fit the stage's feature map: the spec
    rejects a kernel some of whose weights would only ever see padding, so a 2x2 stage of a
    small image takes 3x3 kernels but not the 5x5 and 7x7 ones of its 8x8 predecessors.
    """

    channels: int
    stride: int = 1
    kernels: Sequence[int] = (3, 5, 7)
    expansions: Sequence[int] = (3, 6)
    min_depth: int = 1
    max_depth: int = 3

    def __post_init__(self) -> None:
        check_typed_int("channels", self.channels, minimum=1)
        check_typed_int("stride", self.stride, minimum=1)
        kernels = check_choices(
            "kernels", self.kernels, rule=("an odd positive int", odd_positive_int)
        )
        expansions = check_choices(
            "expansions", self.expansions, rule=("a positive int", positive_int)
        )
        check_typed_int("min_depth", self.min_depth, minimum=1)
        check_typed_int("max_depth", self.max_depth, minimum=1)
        check_range("min_depth", self.min_depth, "max_depth", self.max_depth)
        object.__setattr__(self, "kernels", kernels)
        object.__setattr__(self, "expansions", expansions)


DEFAULT_MOBILE_STAGES: tuple[MobileStage, ...] = (
    MobileStage(channels=16, stride=1, max_depth=2),
    MobileStage(channels=24, stride=2),
    MobileStage(channels=40, stride=2, kernels=(3,), max_depth=2),
)
"""Stages for 8x8 images such as digits: at 8x8 and 4x4 (kernels 3/5/7), at 2x2 (kernel 3)."""


class MobileSpace(SearchSpace):
    """MBConv stages in the MnasNet / ProxylessNAS / FBNet family; see the module docstring.

    Args:
        input_shape: ``(C, H, W)`` of the data.
        num_outputs: number of classes.
        stages: the channel / stride schedule and per-stage choices.
        stem_channels: output channels of the stem convolution.
        stem_stride: stride of the stem convolution.
        head_channels: output channels of the 1x1 head convolution.
        se: the squeeze-excitation choices of a block (``False`` and/or ``True``).
        se_ratio: squeeze-excitation ratio of a block's input channels when ``se`` is True.
        activation: the activation of every block, the stem and the head.

    The constructor builds the worst case (every stage at its largest depth and kernel) and
    raises if it does not fit ``input_shape``.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        stages: Sequence[MobileStage] = DEFAULT_MOBILE_STAGES,
        stem_channels: int = 16,
        stem_stride: int = 1,
        head_channels: int = 128,
        se: Sequence[bool] = (False, True),
        se_ratio: float = 0.25,
        activation: str = "relu",
    ) -> None:
        self.input_shape = check_input_shape(input_shape)
        self.num_outputs = check_typed_int("num_outputs", num_outputs, minimum=1)
        if not isinstance(stages, Sequence) or not stages:
            raise ValueError(
                f"`stages` must be a non-empty sequence of MobileStage, but got {stages!r}."
            )
        for stage in stages:
            if not isinstance(stage, MobileStage):
                raise TypeError(
                    f"every entry of `stages` must be a MobileStage, but got {stage!r}."
                )
        self.stages = tuple(stages)
        self.stem_channels = check_typed_int("stem_channels", stem_channels, minimum=1)
        self.stem_stride = check_typed_int("stem_stride", stem_stride, minimum=1)
        self.head_channels = check_typed_int("head_channels", head_channels, minimum=1)
        self.se = check_choices("se", se, rule=("a bool", lambda v: isinstance(v, bool)))
        if (
            isinstance(se_ratio, bool)
            or not isinstance(se_ratio, (int, float))
            or not 0.0 < se_ratio < 1.0
        ):
            raise ValueError(f"`0 < se_ratio < 1` must hold, but got {se_ratio=!r}.")
        self.se_ratio = float(se_ratio)
        self.activation = check_choices("activation", [activation], allowed=ACTIVATIONS)[0]
        self._distributions = self._declare()
        self._check_fits(
            self._worst, "the worst case (every stage at its largest depth and kernel)"
        )

    @property
    def name(self) -> str:
        return "mobile"

    def _declare(self) -> dict[str, BaseDistribution]:
        dists: dict[str, BaseDistribution] = {}
        for s, stage in enumerate(self.stages, start=1):
            dists[f"stage{s}/depth"] = IntDistribution(stage.min_depth, stage.max_depth)
            for b in range(1, stage.max_depth + 1):
                dists[f"stage{s}/block{b}/kernel"] = categorical(stage.kernels)
                dists[f"stage{s}/block{b}/expand"] = categorical(stage.expansions)
                dists[f"stage{s}/block{b}/se"] = categorical(self.se)
        return dists

    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def _worst(self, name: str, dist: BaseDistribution) -> Any:
        if isinstance(dist, IntDistribution):  # a stage's depth
            return dist.high
        if name.endswith("/kernel") and isinstance(dist, CategoricalDistribution):
            return max(k for k in dist.choices if isinstance(k, int))
        return any_value(dist)

    def build(self, choose: Choose) -> ArchitectureSpec:
        g = Graph(self.input_shape)
        act = self.activation
        stem = {"channels": self.stem_channels, "kernel": 3, "stride": self.stem_stride}
        x = g.add("stem", "conv", {**stem, "activation": act}, ["input"])
        for s, stage in enumerate(self.stages, start=1):
            for b in range(1, choose(f"stage{s}/depth") + 1):
                block = f"stage{s}/block{b}"
                stride = stage.stride if b == 1 else 1
                config = {
                    "channels": stage.channels,
                    "kernel": choose(f"{block}/kernel"),
                    "stride": stride,
                    "expand": choose(f"{block}/expand"),
                    "se": self.se_ratio if choose(f"{block}/se") else 0.0,
                    "activation": act,
                }
                out = g.add(block, "mbconv", config, [x])
                if stride == 1 and g.shape(x)[0] == stage.channels:
                    out = g.add(f"{block}/add", "add", {}, [out, x])
                x = out
        head = {"channels": self.head_channels, "kernel": 1, "activation": act}
        x = g.add("head", "conv", head, [x])
        x = g.add("pool", "global_pool", {"mode": "avg"}, [x])
        g.add("classifier", "linear", {"features": self.num_outputs}, [x])
        return g.spec(num_outputs=self.num_outputs, metadata=self._metadata())
