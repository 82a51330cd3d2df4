"""MixedSpace: the cell and its macro skeleton searched together."""

from __future__ import annotations

from typing import Any

import pytest

from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import MixedSpace
from optuna_nas.spaces import nb201_arch_to_params

DIGITS = (1, 8, 8)
BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def test_parameters_are_the_macro_choices_and_the_cell_edges() -> None:
    space = MixedSpace(input_shape=DIGITS, num_outputs=10, init_channels=(8, 16))
    dists = space.distributions()
    assert list(dists)[:2] == ["macro/init_channels", "macro/cells_per_stage"]
    assert dists["macro/init_channels"].choices == (8, 16)  # type: ignore[attr-defined]
    cell = CellSpace(input_shape=DIGITS, num_outputs=10).distributions()
    assert {k: v for k, v in dists.items() if k.startswith("cell/")} == cell


def test_the_macro_choices_shape_the_network_around_the_same_cell() -> None:
    space = MixedSpace(input_shape=(3, 32, 32), num_outputs=10, max_cells_per_stage=5)
    params = nb201_arch_to_params(BEST) | {"macro/init_channels": 16, "macro/cells_per_stage": 5}
    spec = space.decode(params)
    # With 16 channels and 5 cells per stage it is the NAS-Bench-201 network.
    nb201 = CellSpace.nasbench201().decode(nb201_arch_to_params(BEST))
    assert spec.nodes == nb201.nodes and spec.edges == nb201.edges
    assert dict(spec.metadata) == {"space": "mixed"}
    small = space.decode(params | {"macro/init_channels": 8, "macro/cells_per_stage": 2})
    assert small.shape("stage3/cell2/node3") == (32, 8, 8)
    assert "stage3/cell3/node3" not in {n.id for n in small.nodes}


def test_a_worst_case_that_does_not_fit_raises_at_construction() -> None:
    with pytest.raises(ValueError, match=r"MixedSpace does not fit .*'stage3/reduce/conv_b'"):
        MixedSpace(input_shape=(1, 4, 4), num_outputs=10)
    with pytest.raises(ValueError, match="before stage 2 needs an even feature map"):
        MixedSpace(input_shape=(1, 7, 8), num_outputs=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"init_channels": ()}, ValueError, "`init_channels` must hold at least one choice"),
        ({"init_channels": (8, 8)}, ValueError, "`init_channels` must not repeat a choice"),
        ({"init_channels": (0,)}, ValueError, "`init_channels` must be a positive int"),
        ({"ops": []}, ValueError, "`ops` must hold at least one choice"),
        ({"min_cells_per_stage": 0}, ValueError, "`min_cells_per_stage >= 1` must hold"),
        (
            {"min_cells_per_stage": 4},
            ValueError,
            r"`min_cells_per_stage <= max_cells_per_stage` must hold, but got "
            r"\(min_cells_per_stage=4, max_cells_per_stage=3\)",
        ),
        ({"num_stages": 0}, ValueError, "`num_stages >= 1` must hold"),
        ({"num_nodes": 1}, ValueError, "`num_nodes >= 2` must hold"),
    ],
)
def test_constructor_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args: dict[str, Any] = {"input_shape": DIGITS, "num_outputs": 10}
    with pytest.raises(error, match=message):
        MixedSpace(**(args | kwargs))
