"""MobileSpace: MBConv stages with a fixed schedule and searched blocks."""

from __future__ import annotations

from typing import Any

import pytest

from optuna_nas.spaces import DEFAULT_MOBILE_STAGES
from optuna_nas.spaces import MobileSpace
from optuna_nas.spaces import MobileStage

DIGITS = (1, 8, 8)


def block(s: int, b: int, kernel: int = 3, expand: int = 3, se: bool = False) -> dict[str, Any]:
    p = f"stage{s}/block{b}"
    return {f"{p}/kernel": kernel, f"{p}/expand": expand, f"{p}/se": se}


def test_parameter_names() -> None:
    space = MobileSpace(input_shape=DIGITS, num_outputs=10)
    names = list(space.distributions())
    assert names[:7] == [
        "stage1/depth",
        "stage1/block1/kernel",
        "stage1/block1/expand",
        "stage1/block1/se",
        "stage1/block2/kernel",
        "stage1/block2/expand",
        "stage1/block2/se",
    ]
    assert "stage1/block3/kernel" not in names  # the first default stage has at most 2 blocks
    assert "stage3/block2/se" in names


def test_the_network_follows_the_schedule() -> None:
    space = MobileSpace(
        input_shape=(3, 32, 32),
        num_outputs=7,
        stages=(
            MobileStage(channels=16, max_depth=2),
            MobileStage(channels=24, stride=2, max_depth=2),
        ),
        stem_channels=16,
        stem_stride=2,
        head_channels=64,
        se_ratio=0.5,
        activation="hardswish",
    )
    params = {"stage1/depth": 2, "stage2/depth": 2}
    params |= block(1, 1, kernel=5, expand=6, se=True) | block(1, 2) | block(2, 1, 7) | block(2, 2)
    spec = space.decode(params)
    ids = [n.id for n in spec.nodes]
    assert ids == [
        "input",
        "stem",
        "stage1/block1",
        "stage1/block1/add",  # stride 1, 16 -> 16 channels: residual
        "stage1/block2",
        "stage1/block2/add",
        "stage2/block1",  # stride 2: no residual
        "stage2/block2",
        "stage2/block2/add",
        "head",
        "pool",
        "classifier",
    ]
    stem = spec.node("stem").config
    assert (stem["kernel"], stem["stride"], stem["channels"]) == (3, 2, 16)
    b11 = spec.node("stage1/block1").config
    assert (b11["kernel"], b11["expand"], b11["se"], b11["stride"]) == (5, 6, 0.5, 1)
    assert b11["activation"] == "hardswish"
    assert spec.node("stage1/block2").config["se"] == 0.0
    assert spec.node("stage2/block1").config["stride"] == 2
    assert spec.node("stage2/block2").config["stride"] == 1  # stride only on a stage's first block
    assert spec.shape("stage2/block2/add") == (24, 8, 8)
    head = spec.node("head").config
    assert (head["kernel"], head["channels"]) == (1, 64)
    assert spec.inputs("stage1/block1/add") == ("stage1/block1", "stem")
    assert spec.shape("classifier") == (7,)


def test_a_stride_one_block_that_changes_channels_has_no_residual() -> None:
    space = MobileSpace(
        input_shape=DIGITS, num_outputs=10, stages=(MobileStage(channels=24, max_depth=1),)
    )
    spec = space.decode({"stage1/depth": 1, **block(1, 1)})
    assert "stage1/block1/add" not in {n.id for n in spec.nodes}  # 16 -> 24 channels


def test_the_default_stages_fit_digits() -> None:
    space = MobileSpace(input_shape=DIGITS, num_outputs=10)
    assert space.stages == DEFAULT_MOBILE_STAGES
    params = {f"stage{s}/depth": 2 for s in (1, 2, 3)}
    for s, k in [(1, 7), (2, 7), (3, 3)]:
        params |= block(s, 1, kernel=k) | block(s, 2, kernel=k)
    assert space.decode(params).shape("stage3/block2/add") == (40, 2, 2)


def test_a_worst_case_that_does_not_fit_raises_at_construction() -> None:
    stages = (MobileStage(channels=16, stride=2), MobileStage(channels=24, stride=2))
    with pytest.raises(
        ValueError, match=r"MobileSpace does not fit .*'stage2/block2'.*kernel of 7"
    ):
        MobileSpace(input_shape=DIGITS, num_outputs=10, stages=stages)
    with pytest.raises(ValueError, match=r"MobileSpace does not fit .*'stem'"):
        MobileSpace(input_shape=(1, 1, 1), num_outputs=10, stages=(MobileStage(channels=8),))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"channels": 0}, ValueError, "`channels >= 1` must hold"),
        ({"stride": 0}, ValueError, "`stride >= 1` must hold"),
        ({"kernels": ()}, ValueError, "`kernels` must hold at least one choice"),
        ({"kernels": (3, 4)}, ValueError, "every choice in `kernels` must be an odd positive int"),
        ({"expansions": []}, ValueError, "`expansions` must hold at least one choice"),
        ({"expansions": (0,)}, ValueError, "`expansions` must be a positive int, but got 0"),
        ({"min_depth": 0}, ValueError, "`min_depth >= 1` must hold"),
        ({"min_depth": 3, "max_depth": 2}, ValueError, r"\(min_depth=3, max_depth=2\)"),
    ],
)
def test_stage_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        MobileStage(**({"channels": 16} | kwargs))


def test_a_stage_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        MobileStage(16)  # type: ignore[call-arg]
    stage = MobileStage(channels=16, kernels=[3, 5])
    assert stage.kernels == (3, 5)
    with pytest.raises(AttributeError):
        stage.channels = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stages": ()}, ValueError, "`stages` must be a non-empty sequence of MobileStage"),
        ({"stages": [(16, 1)]}, TypeError, "every entry of `stages` must be a MobileStage"),
        ({"se": ()}, ValueError, "`se` must hold at least one choice"),
        ({"se": (0, 1)}, ValueError, "every choice in `se` must be a bool"),
        ({"se_ratio": 0.0}, ValueError, "`0 < se_ratio < 1` must hold, but got se_ratio=0.0"),
        ({"se_ratio": 1}, ValueError, "`0 < se_ratio < 1` must hold"),
        ({"activation": "swish"}, ValueError, "`activation` holds 'swish', which is not one of"),
        ({"stem_stride": 0}, ValueError, "`stem_stride >= 1` must hold"),
        ({"stem_channels": 0}, ValueError, "`stem_channels >= 1` must hold"),
        ({"head_channels": 0}, ValueError, "`head_channels >= 1` must hold"),
    ],
)
def test_constructor_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {"input_shape": DIGITS, "num_outputs": 10}
    with pytest.raises(error, match=message):
        MobileSpace(**(args | kwargs))
