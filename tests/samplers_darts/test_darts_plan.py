from __future__ import annotations

from typing import Any

import pytest

from optuna_nas.samplers._darts import make_plan
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace


def _chain(**kwargs: Any) -> ChainSpace:
    return ChainSpace(input_shape=(1, 8, 8), num_outputs=10, min_depth=3, max_depth=3, **kwargs)


def _chain_fixed(width: int = 16, stride: int = 1) -> dict[str, Any]:
    fixed: dict[str, Any] = {"depth": 3, "activation": "relu", "layer3/stride": stride}
    for i in (1, 2, 3):
        fixed[f"layer{i}/width"] = width
        fixed[f"layer{i}/skip"] = "none"
    return fixed


def test_cell_space_edges_become_mixed_nodes_in_every_cell() -> None:
    space = CellSpace(input_shape=(1, 8, 8), num_outputs=10, num_stages=2, cells_per_stage=2)
    plan = make_plan(space, None, None)
    assert [p.name for p in plan.params] == list(space.distributions())
    edge = plan.params[0]
    assert edge.name == "cell/edge_1_0/op"
    assert set(edge.nodes) == {f"stage{s}/cell{c}/edge_1_0" for s in (1, 2) for c in (1, 2)}
    assert edge.skip == tuple(op == "skip_connect" for op in space.ops)
    assert plan.fixed == {}
    assert plan.decode({p.name: "nor_conv_3x3" for p in plan.params}) == space.decode(
        {p.name: "nor_conv_3x3" for p in plan.params}
    )


def test_chain_space_searches_ops_at_fixed_depth_and_width() -> None:
    plan = make_plan(_chain(), _chain_fixed(), None)
    assert [p.name for p in plan.params] == ["layer1/op", "layer2/op", "layer3/op"]
    assert [p.nodes for p in plan.params] == [("layer1",), ("layer2",), ("layer3",)]
    assert plan.params[0].skip[plan.params[0].choices.index("identity")]
    assert set(plan.distributions()) == {p.name for p in plan.params} | set(_chain_fixed())


def test_missing_fixed_param_is_named() -> None:
    fixed = _chain_fixed()
    del fixed["layer2/width"]
    with pytest.raises(ValueError, match="lacks 'layer2/width'"):
        make_plan(_chain(), fixed, None)


def test_unknown_fixed_param_is_named() -> None:
    with pytest.raises(ValueError, match="'bogus'"):
        make_plan(_chain(), {**_chain_fixed(), "bogus": 1}, None)


def test_choices_of_different_shapes_are_refused() -> None:
    # Pooling keeps the stem's 16 channels, a 32-wide conv does not: no mix possible.
    with pytest.raises(ValueError, match="changes the shape of node"):
        make_plan(_chain(), _chain_fixed(width=32), None)
    with pytest.raises(ValueError, match="changes the shape of node"):
        make_plan(_chain(), _chain_fixed(stride=2), None)


def test_a_param_that_changes_the_graph_is_refused() -> None:
    fixed = _chain_fixed()
    del fixed["layer2/skip"]
    with pytest.raises(ValueError, match="changes the network's graph"):
        ops = {f"layer{i}/op": "conv_3x3" for i in (1, 2, 3)}
        make_plan(_chain(), {**fixed, **ops}, ["layer2/skip"])


def test_searched_params_must_be_categorical_and_not_fixed() -> None:
    with pytest.raises(ValueError, match="'depth' is not one"):
        make_plan(_chain(), _chain_fixed(), ["depth"])
    with pytest.raises(ValueError, match="both searched and in `fixed_params`"):
        make_plan(_chain(), {**_chain_fixed(), "layer1/op": "conv_3x3"}, ["layer1/op"])
