"""CellSpace: the NAS-Bench-201 network, exactly, and its configurable generalisation."""

from __future__ import annotations

from typing import Any

import pytest

from optuna_nas.spaces import CELL_OPS
from optuna_nas.spaces import NB201_OPS
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
EDGES = ["1_0", "2_0", "2_1", "3_0", "3_1", "3_2"]


def cfg(spec: ArchitectureSpec, node_id: str) -> tuple[str, dict[str, Any]]:
    node = spec.node(node_id)
    return node.op, dict(node.config)


def same(op: str, **config: Any) -> tuple[str, dict[str, Any]]:
    node = Node("x", op, config)  # defaults filled in, as in a spec
    return node.op, dict(node.config)


def test_nasbench201_parameters_are_the_six_edges_in_benchmark_order() -> None:
    space = CellSpace.nasbench201()
    assert list(space.distributions()) == [f"cell/edge_{e}/op" for e in EDGES]
    for dist in space.distributions().values():
        assert dist.choices == NB201_OPS  # type: ignore[attr-defined]
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_nasbench201_network_is_the_benchmark_network() -> None:
    spec = CellSpace.nasbench201().decode(nb201_arch_to_params(BEST))
    assert spec.input_shape == (3, 32, 32) and spec.num_outputs == 10
    assert cfg(spec, "stem") == same("conv", channels=16, kernel=3, bn=True, activation="none")
    # 3 stages of 5 cells at 16, 32, 64 channels and 32, 16, 8 pixels.
    for s, (channels, size) in enumerate([(16, 32), (32, 16), (64, 8)], start=1):
        for c in range(1, 6):
            assert spec.shape(f"stage{s}/cell{c}/node3") == (channels, size, size)
        assert f"stage{s}/cell6/node3" not in {n.id for n in spec.nodes}
    # Reduction = ResNet basic block: ReLU-Conv-BN 3x3 s2, ReLU-Conv-BN 3x3, avgpool+1x1 shortcut.
    rcb = {"kernel": 3, "order": "act_conv_bn", "activation": "relu", "bn": True}
    assert cfg(spec, "stage2/reduce/conv_a") == same("conv", channels=32, stride=2, **rcb)
    assert cfg(spec, "stage2/reduce/conv_b") == same("conv", channels=32, stride=1, **rcb)
    assert cfg(spec, "stage2/reduce/pool") == same("avg_pool", kernel=2, stride=2)
    proj = same("conv", channels=32, kernel=1, bn=False, activation="none")
    assert cfg(spec, "stage2/reduce/proj") == proj
    assert spec.inputs("stage2/reduce/conv_a") == ("stage1/cell5/node3",)
    assert spec.inputs("stage2/reduce/pool") == ("stage1/cell5/node3",)
    assert spec.inputs("stage2/reduce/add") == ("stage2/reduce/conv_b", "stage2/reduce/proj")
    assert spec.shape("stage3/reduce/add") == (64, 8, 8)
    # Classifier: BN + ReLU, global average pool, linear.
    assert cfg(spec, "lastact") == same("batchnorm", activation="relu")
    assert cfg(spec, "pool") == same("global_pool", mode="avg")
    assert cfg(spec, "classifier") == same("linear", features=10)
    assert spec.inputs("lastact") == ("stage3/cell5/node3",)


def test_a_cell_is_a_sum_of_edge_ops_and_its_last_node_is_the_output() -> None:
    spec = CellSpace.nasbench201().decode(nb201_arch_to_params(BEST))
    p = "stage2/cell3"
    assert spec.inputs(f"{p}/edge_1_0") == ("stage2/cell2/node3",)
    assert spec.inputs(f"{p}/node1") == (f"{p}/edge_1_0",)
    assert spec.inputs(f"{p}/node2") == (f"{p}/edge_2_0", f"{p}/edge_2_1")
    assert spec.inputs(f"{p}/node3") == (f"{p}/edge_3_0", f"{p}/edge_3_1", f"{p}/edge_3_2")
    assert spec.inputs(f"{p}/edge_3_2") == (f"{p}/node2",)
    assert spec.inputs("stage2/cell4/edge_1_0") == (f"{p}/node3",)
    relu_conv_bn = {"order": "act_conv_bn", "activation": "relu", "bn": True}
    assert cfg(spec, f"{p}/edge_1_0") == same("conv", channels=32, kernel=3, **relu_conv_bn)
    assert cfg(spec, f"{p}/edge_3_0") == same("identity")


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("none", same("zero")),
        ("skip_connect", same("identity")),
        ("nor_conv_1x1", same("conv", channels=16, kernel=1, order="act_conv_bn")),
        ("nor_conv_3x3", same("conv", channels=16, kernel=3, order="act_conv_bn")),
        ("nor_conv_5x5", same("conv", channels=16, kernel=5, order="act_conv_bn")),
        ("sep_conv_3x3", same("sep_conv", channels=16, kernel=3, order="act_conv_bn")),
        ("sep_conv_5x5", same("sep_conv", channels=16, kernel=5, order="act_conv_bn")),
        ("avg_pool_3x3", same("avg_pool", kernel=3, stride=1)),
        ("max_pool_3x3", same("max_pool", kernel=3, stride=1)),
    ],
)
def test_every_cell_op_maps_to_its_spec_op(op: str, expected: tuple[str, Any]) -> None:
    space = CellSpace(input_shape=(3, 16, 16), num_outputs=10, ops=CELL_OPS, num_stages=1)
    params = {name: "none" for name in space.distributions()} | {"cell/edge_2_1/op": op}
    assert cfg(space.decode(params), "stage1/cell2/edge_2_1") == expected


def test_more_nodes_give_more_edges() -> None:
    space = CellSpace(input_shape=(1, 8, 8), num_outputs=10, num_nodes=5)
    names = list(space.distributions())
    assert len(names) == 10
    assert names[-4:] == [f"cell/edge_4_{i}/op" for i in range(4)]


def test_encode_inverts_decode() -> None:
    space = CellSpace(
        input_shape=(1, 8, 8), num_outputs=10, ops=CELL_OPS, num_nodes=3, num_stages=2
    )
    params = {
        "cell/edge_1_0/op": "sep_conv_5x5",
        "cell/edge_2_0/op": "max_pool_3x3",
        "cell/edge_2_1/op": "nor_conv_1x1",
    }
    assert space.encode(space.decode(params)) == params


def test_encode_rejects_specs_from_elsewhere() -> None:
    space = CellSpace.nasbench201(cells_per_stage=1)
    chain = ChainSpace(input_shape=(3, 32, 32), num_outputs=10)
    params = {"depth": 2, "activation": "relu"}
    params |= {
        f"layer{i}/{k}": v for i in (1, 2) for k, v in [("op", "identity"), ("skip", "none")]
    }
    with pytest.raises(ValueError, match="no node 'stage1/cell1/edge_1_0'"):
        space.encode(chain.decode(params))
    other = CellSpace.nasbench201(cells_per_stage=2).decode(nb201_arch_to_params(BEST))
    with pytest.raises(ValueError, match="not an architecture of this CellSpace"):
        space.encode(other)
    wide = CellSpace.nasbench201(cells_per_stage=1, init_channels=8).decode(
        nb201_arch_to_params(BEST)
    )
    with pytest.raises(ValueError, match=r"node 'stage1/cell1/edge_1_0' \('conv'.* is none of"):
        space.encode(wide)


def test_the_default_space_fits_digits_with_three_stages() -> None:
    spec = CellSpace(input_shape=(1, 8, 8), num_outputs=10).decode(nb201_arch_to_params(BEST))
    assert spec.shape("stage3/cell2/node3") == (64, 2, 2)


def test_reductions_need_even_feature_maps() -> None:
    with pytest.raises(ValueError, match=r"before stage 3 needs an even feature map.* gets 5x5"):
        CellSpace(input_shape=(3, 10, 10), num_outputs=10)
    CellSpace(input_shape=(3, 10, 10), num_outputs=10, num_stages=2)


def test_a_worst_case_that_does_not_fit_raises_at_construction() -> None:
    # The third stage of an 8x8 input is 2x2: a padded 5x5 kernel would have weights that
    # only ever see padding there.
    with pytest.raises(ValueError, match=r"CellSpace does not fit .*'nor_conv_5x5'.*2x2"):
        CellSpace(input_shape=(1, 8, 8), num_outputs=10, ops=CELL_OPS)
    CellSpace(input_shape=(1, 8, 8), num_outputs=10, ops=CELL_OPS, num_stages=2)
    with pytest.raises(ValueError, match=r"CellSpace does not fit .*'stage3/reduce/conv_b'"):
        CellSpace(input_shape=(1, 4, 4), num_outputs=10, ops=("none",))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ops": ()}, ValueError, "`ops` must hold at least one choice"),
        ({"ops": ("conv_3x3",)}, ValueError, "`ops` holds 'conv_3x3', which is not one of"),
        ({"num_nodes": 1}, ValueError, "`num_nodes >= 2` must hold, but got num_nodes=1"),
        ({"init_channels": 0}, ValueError, "`init_channels >= 1` must hold"),
        ({"num_stages": 0}, ValueError, "`num_stages >= 1` must hold"),
        ({"cells_per_stage": 0}, ValueError, "`cells_per_stage >= 1` must hold"),
        ({"cells_per_stage": "5"}, TypeError, "`cells_per_stage` must be an int"),
        ({"input_shape": (3, 32, 0)}, ValueError, "`input_shape` must be"),
    ],
)
def test_constructor_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {"input_shape": (3, 32, 32), "num_outputs": 10}
    with pytest.raises(error, match=message):
        CellSpace(**(args | kwargs))
