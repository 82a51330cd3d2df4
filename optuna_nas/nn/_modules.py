"""The torch modules behind the ops of :data:`optuna_nas.spec.OPS`, one class per layer kind.

Modules take their channel counts as required arguments (``in_chs``, ``out_chs``): the builder
reads them from the spec's inferred shapes and never guesses. Absent parts (no batch norm, no
expansion, no squeeze-excitation, activation ``"none"``) are ``nn.Identity()``, so every
``forward`` is one straight line with no branches (as in timm's ``_efficientnet_blocks.py``);
the two layer orders of ``conv`` and ``sep_conv`` are two classes with the same parts that
differ only in ``forward``. Activations are never in-place: a node's input may feed other
nodes too, so changing it in place would corrupt them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping

import torch
from torch import nn

_ACTIVATIONS: Mapping[str, Callable[[], nn.Module]] = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for the spec activation ``name`` (``"none"`` is identity)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid activations are {sorted(_ACTIVATIONS)}."
        ) from None


def _same_padding(kernel: int, dilation: int = 1) -> int:
    return dilation * (kernel - 1) // 2


def _depthwise(chs: int, kernel: int, stride: int) -> nn.Conv2d:
    """A depthwise kxk convolution with "same" padding and no bias (batch norm follows)."""
    return nn.Conv2d(
        chs, chs, kernel, stride=stride, padding=_same_padding(kernel), groups=chs, bias=False
    )


class ConvBnAct(nn.Module):
    """The ``conv`` op in ``conv_bn_act`` order: convolution, optional batch norm, activation.

    The convolution has a bias only if ``bias`` (the spec says so explicitly).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        kernel: int,
        stride: int,
        dilation: int,
        groups: int,
        activation: str,
        bn: bool,
        bias: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs,
            out_chs,
            kernel,
            stride=stride,
            padding=_same_padding(kernel, dilation),
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.bn = nn.BatchNorm2d(out_chs) if bn else nn.Identity()
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return x


class ActConvBn(ConvBnAct):
    """The ``conv`` op in ``act_conv_bn`` order: NAS-Bench-201's ReLU-Conv-BN (Dong & Yang,
    2020). The same parts (and ``state_dict`` keys) as :class:`ConvBnAct`, activation first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(self.act(x)))
        return x


class SepConvBnAct(nn.Module):
    """The ``sep_conv`` op in ``conv_bn_act`` order: depthwise kxk, pointwise 1x1, batch norm,
    activation.

    As in MobileNet (Howard et al., 2017) and DARTS's building block; neither convolution has a
    bias because batch norm follows.
    """

    def __init__(
        self, in_chs: int, out_chs: int, *, kernel: int, stride: int, activation: str
    ) -> None:
        super().__init__()
        self.conv_dw = _depthwise(in_chs, kernel, stride)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv_pw(self.conv_dw(x))))
        return x


class ActSepConvBn(SepConvBnAct):
    """The ``sep_conv`` op in ``act_conv_bn`` order: the parts of :class:`SepConvBnAct`,
    activation first (DARTS's ReLU-SepConv-BN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv_pw(self.conv_dw(self.act(x))))
        return x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): channel gates from globally pooled features."""

    def __init__(self, chs: int, reduced_chs: int, *, activation: str) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, reduced_chs, 1, bias=True)
        self.act = make_activation(activation)
        self.conv_expand = nn.Conv2d(reduced_chs, chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        gate: torch.Tensor = self.gate(self.conv_expand(self.act(self.conv_reduce(s))))
        return x * gate


class MBConv(nn.Module):
    """The ``mbconv`` op: the inverted bottleneck of MobileNetV2 / MnasNet (Tan et al., 2019).

    1x1 expansion to ``in_chs * expand`` channels with batch norm and activation (absent when
    ``expand == 1``), depthwise kxk with batch norm and activation, squeeze-excitation to
    ``max(1, int(in_chs * se))`` channels (absent when ``se == 0``), then a linear 1x1
    projection with batch norm. No residual: a spec writes it as an explicit ``add`` node.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        kernel: int,
        stride: int,
        expand: int,
        se: float,
        activation: str,
    ) -> None:
        super().__init__()
        mid_chs = in_chs * expand
        expands = expand > 1
        self.conv_pw = nn.Conv2d(in_chs, mid_chs, 1, bias=False) if expands else nn.Identity()
        self.bn1 = nn.BatchNorm2d(mid_chs) if expands else nn.Identity()
        self.act1 = make_activation(activation) if expands else nn.Identity()
        self.conv_dw = _depthwise(mid_chs, kernel, stride)
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.act2 = make_activation(activation)
        self.se = (
            SqueezeExcite(mid_chs, max(1, int(in_chs * se)), activation=activation)
            if se > 0
            else nn.Identity()
        )
        self.conv_pwl = nn.Conv2d(mid_chs, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        x = self.bn3(self.conv_pwl(self.se(x)))
        return x


class BatchNormAct(nn.Module):
    """The ``batchnorm`` op: batch norm over channels, then an activation."""

    def __init__(self, chs: int, *, activation: str) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(chs)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(x))
        return x


class GlobalAvgPool(nn.Module):
    """The ``global_pool`` op with ``mode="avg"``: mean over H and W, giving ``(N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class GlobalMaxPool(nn.Module):
    """The ``global_pool`` op with ``mode="max"``: max over H and W, giving ``(N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax((2, 3))


class LinearAct(nn.Module):
    """The ``linear`` op: a fully connected layer on ``(N, in_features)``, then an activation."""

    def __init__(
        self, in_features: int, out_features: int, *, bias: bool, activation: str
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=bias)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.fc(x))
        return x
