"""ChainSpace: layers, widths, strides and skip connections."""

from __future__ import annotations

from typing import Any

import pytest

from optuna_nas.spaces import ChainSpace

DIGITS = (1, 8, 8)


def layer(i: int, op: str, skip: str = "none", **more: Any) -> dict[str, Any]:
    return {
        f"layer{i}/op": op,
        f"layer{i}/skip": skip,
        **{f"layer{i}/{k}": v for k, v in more.items()},
    }


def test_the_network_is_stem_layers_pool_classifier() -> None:
    space = ChainSpace(input_shape=DIGITS, num_outputs=10, max_depth=3, stride_layers=())
    params = {
        "depth": 2,
        "activation": "silu",
        **layer(1, "conv_5x5", width=32),
        **layer(2, "max_pool_3x3"),
        **layer(3, "conv_7x7", width=64),  # not read: depth is 2
    }
    spec = space.decode(params)
    assert [n.id for n in spec.nodes] == [
        "input",
        "stem",
        "layer1",
        "layer2",
        "pool",
        "classifier",
    ]
    assert spec.node("stem").config["activation"] == "silu"
    assert spec.node("layer1").op == "conv"
    assert dict(spec.node("layer1").config) | {"channels": 32, "kernel": 5} == dict(
        spec.node("layer1").config
    )
    assert spec.node("layer1").config["activation"] == "silu"
    assert spec.node("layer2").op == "max_pool"
    assert spec.shape("layer2") == (32, 8, 8)  # pooling keeps channels
    assert spec.shape("classifier") == (10,)


def test_width_is_asked_only_for_convolutions_and_stride_only_where_allowed() -> None:
    space = ChainSpace(input_shape=(3, 32, 32), num_outputs=10, max_depth=4, stride_layers=(2,))
    dists = space.distributions()
    assert "layer2/stride" in dists and "layer1/stride" not in dists
    params = {"depth": 3, "activation": "relu"}
    params |= layer(1, "identity") | layer(2, "identity") | layer(3, "sep_conv_3x3", width=16)
    spec = space.decode(params)  # no width or stride needed for identity layers
    assert spec.shape("layer2") == (16, 32, 32)
    params |= layer(2, "avg_pool_3x3", stride=2)
    assert space.decode(params).shape("layer2") == (16, 16, 16)
    del params["layer2/stride"]
    with pytest.raises(ValueError, match="'layer2/stride' is missing"):
        space.decode(params)


def test_residual_adds_the_input_with_a_projection_only_when_shapes_differ() -> None:
    space = ChainSpace(input_shape=(3, 16, 16), num_outputs=10, max_depth=3, stride_layers=(3,))
    params = {"depth": 3, "activation": "relu", **layer(1, "conv_3x3", "residual", width=16)}
    params |= layer(2, "conv_3x3", "residual", width=32)
    params |= layer(3, "max_pool_3x3", "residual", stride=2)
    spec = space.decode(params)
    assert spec.inputs("layer1/add") == ("layer1", "stem")  # 16 -> 16 channels: no projection
    assert "layer1/proj" not in {n.id for n in spec.nodes}
    assert spec.inputs("layer2/add") == ("layer2", "layer2/proj")
    assert spec.inputs("layer2/proj") == ("layer1/add",)
    proj = spec.node("layer2/proj").config
    assert (proj["kernel"], proj["channels"], proj["stride"], proj["activation"]) == (
        1,
        32,
        1,
        "none",
    )
    proj = spec.node("layer3/proj").config  # pooling keeps channels but halves the resolution
    assert (proj["kernel"], proj["channels"], proj["stride"]) == (1, 32, 2)
    assert spec.shape("layer3/add") == (32, 8, 8)


def test_dense_concatenates_every_map_of_the_current_resolution() -> None:
    space = ChainSpace(input_shape=(3, 16, 16), num_outputs=10, max_depth=5, stride_layers=(3,))
    params = {"depth": 5, "activation": "relu", **layer(1, "conv_3x3", "dense", width=16)}
    params |= layer(2, "identity", "dense")
    params |= layer(3, "conv_3x3", "dense", width=32, stride=2)
    params |= layer(4, "conv_3x3", "dense", width=16)
    params |= layer(5, "identity", "dense")
    spec = space.decode(params)
    ids = {n.id for n in spec.nodes}
    assert "layer1/concat" not in ids  # only the stem's map: dense is plain
    assert spec.inputs("layer2/concat") == ("stem", "layer1")
    assert spec.shape("layer2") == (32, 16, 16)  # identity of the concat
    assert spec.inputs("layer3/concat") == ("stem", "layer1", "layer2")
    assert spec.shape("layer3") == (32, 8, 8)
    assert "layer4/concat" not in ids  # layer 3 started a new resolution
    assert spec.inputs("layer5/concat") == ("layer3", "layer4")
    assert spec.shape("layer5") == (48, 8, 8)


def test_the_default_space_fits_digits() -> None:
    space = ChainSpace(input_shape=DIGITS, num_outputs=10)
    assert space.stride_layers == (3,)
    assert {"depth", "activation", "layer6/op"} <= set(space.distributions())
    assert "layer7/op" not in space.distributions()


def test_a_worst_case_that_does_not_fit_raises_at_construction() -> None:
    # 8x8 -> 4x4 -> 2x2: a 7x7 kernel on 2x2 would have weights that only ever see padding.
    with pytest.raises(ValueError, match=r"ChainSpace does not fit .*'layer4'.* kernel of 7"):
        ChainSpace(input_shape=DIGITS, num_outputs=10, stride_layers=(2, 3))
    # Without 5x5 and 7x7 kernels the same strides fit.
    ChainSpace(
        input_shape=DIGITS, num_outputs=10, stride_layers=(2, 3), ops=("conv_3x3", "identity")
    )
    with pytest.raises(ValueError, match=r"ChainSpace does not fit .*'stem'"):
        ChainSpace(input_shape=(1, 1, 1), num_outputs=10, ops=("identity",))  # 3x3 stem


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ops": []}, ValueError, "`ops` must hold at least one choice"),
        ({"ops": "conv_3x3"}, TypeError, "`ops` must be a sequence"),
        ({"ops": ["conv_9x9"]}, ValueError, "`ops` holds 'conv_9x9', which is not one of"),
        ({"ops": ["identity", "identity"]}, ValueError, "`ops` must not repeat a choice"),
        ({"widths": ()}, ValueError, "`widths` must hold at least one choice"),
        ({"widths": (16, 0)}, ValueError, "every choice in `widths` must be a positive int"),
        ({"skips": ("highway",)}, ValueError, "`skips` holds 'highway'"),
        ({"activations": ("swish",)}, ValueError, "`activations` holds 'swish'"),
        ({"min_depth": 0}, ValueError, "`min_depth >= 1` must hold, but got min_depth=0"),
        ({"min_depth": 4, "max_depth": 3}, ValueError, r"\(min_depth=4, max_depth=3\)"),
        ({"max_depth": 2.5}, TypeError, "`max_depth` must be an int"),
        ({"stride_layers": (7,)}, ValueError, r"\[1, max_depth=6\], but got 7"),
        ({"stride_layers": (0,)}, ValueError, "but got 0"),
        ({"stride_layers": 2}, TypeError, "`stride_layers` must be a sequence"),
        ({"stride_layers": (1, 1)}, ValueError, "must not repeat a layer"),
        ({"stem_channels": 0}, ValueError, "`stem_channels >= 1` must hold"),
        ({"num_outputs": 0}, ValueError, "`num_outputs >= 1` must hold"),
        ({"input_shape": (8, 8)}, ValueError, r"`input_shape` must be \(C, H, W\)"),
    ],
)
def test_constructor_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {"input_shape": DIGITS, "num_outputs": 10, "ops": ("conv_3x3",)}
    with pytest.raises(error, match=message):
        ChainSpace(**(args | kwargs))
