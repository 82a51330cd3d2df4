"""NAS-Bench-201 arch strings <-> CellSpace params, checked against the real benchmark table."""

from __future__ import annotations

import csv

import pytest

from optuna_nas.spaces import NB201_OPS
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import nb201_arch_to_params
from optuna_nas.spaces import params_to_nb201_arch
from tests.nasbench import nasbench_csv

BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
BEST_PARAMS = {
    "cell/edge_1_0/op": "nor_conv_3x3",
    "cell/edge_2_0/op": "nor_conv_3x3",
    "cell/edge_2_1/op": "nor_conv_3x3",
    "cell/edge_3_0/op": "skip_connect",
    "cell/edge_3_1/op": "nor_conv_3x3",
    "cell/edge_3_2/op": "nor_conv_3x3",
}


def read_table() -> list[dict[str, str]]:
    with nasbench_csv().open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_well_known_cell_converts_both_ways() -> None:
    assert nb201_arch_to_params(BEST) == BEST_PARAMS
    assert params_to_nb201_arch(BEST_PARAMS) == BEST
    assert params_to_nb201_arch({**BEST_PARAMS, "lr": 0.1}) == BEST  # other keys not read


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("", "has 3 '\\+'-separated node groups, but '' has 1"),
        ("|none~0|+|none~0|none~1|", "has 3 '\\+'-separated node groups"),
        (BEST + "+|none~0|", "has 3 '\\+'-separated node groups"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "group 1 .* must start and end with"),
        ("|none~0|+|none~0|none~1+|none~0|none~1|none~2|", "group 2 .* must start and end with"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "group 2 .* must list 2 edge"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "group 3 .* must list 3 edge"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 0 of node group 1 .* 'op~0'"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 0 of node group 1 .* 'none'"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "edge 0 of node group 2"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 1<-0 .* op 'conv', which"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|sep_conv_3x3~2|", "edge 3<-2 .* 'sep_conv_3x3'"),
        (" " + BEST, "group 1 .* must start and end with"),
    ],
)
def test_malformed_arch_strings_say_what_is_wrong(arch: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nb201_arch_to_params(arch)


def test_arch_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="`arch` must be a str"):
        nb201_arch_to_params(None)  # type: ignore[arg-type]


def test_params_to_arch_needs_six_nasbench201_edges() -> None:
    params = {k: v for k, v in BEST_PARAMS.items() if k != "cell/edge_3_1/op"}
    with pytest.raises(ValueError, match="'cell/edge_3_1/op' is missing"):
        params_to_nb201_arch(params)
    with pytest.raises(ValueError, match="'cell/edge_2_0/op' is 'max_pool_3x3', which is not"):
        params_to_nb201_arch({**BEST_PARAMS, "cell/edge_2_0/op": "max_pool_3x3"})
    with pytest.raises(TypeError, match="`params` must be a mapping"):
        params_to_nb201_arch(BEST)  # type: ignore[arg-type]


@pytest.mark.parametrize("part", range(4))
def test_every_benchmark_arch_round_trips_through_a_spec(part: int) -> None:
    """arch -> params -> spec (decode) -> params (encode) -> arch, for all 15,625 cells.

    The round trip concerns the cell, so a one-stage, one-cell skeleton with the NAS-Bench-201
    op set keeps this fast; the full skeleton is checked on the rows of the param-count test
    and in ``test_cell_space.py``. Split in parts so that pytest-xdist can share it out.
    """
    rows = read_table()
    assert len(rows) == 15_625
    space = CellSpace(input_shape=(3, 8, 8), num_outputs=10, num_stages=1, cells_per_stage=1)
    assert space.ops == NB201_OPS
    for row in rows[part::4]:
        params = nb201_arch_to_params(row["arch"])
        spec = space.decode(params)
        assert params_to_nb201_arch(space.encode(spec)) == row["arch"]


def test_the_arch_strings_cover_the_whole_space() -> None:
    rows = read_table()
    cells = {tuple(nb201_arch_to_params(r["arch"]).values()) for r in rows}
    assert len(cells) == len(NB201_OPS) ** 6


def test_built_networks_have_the_benchmark_parameter_counts() -> None:
    """The built NAS-Bench-201 network has the benchmark's ``params_m``, to the parameter.

    Stem, ReLU-Conv-BN with affine BN, the ResNet reduction blocks (bias-free 1x1 shortcut
    convs), BN + ReLU + linear classifier: all as in the benchmark.
    """
    nn = pytest.importorskip("optuna_nas.nn", reason="the torch builder is not available")
    if not hasattr(nn, "build_model"):
        pytest.skip("optuna_nas.nn.build_model is not available")
    rows = {r["arch"]: r for r in read_table()}
    space = CellSpace.nasbench201()
    archs = [BEST, *sorted(rows)[::3125]]
    for arch in archs:
        model = nn.build_model(space.decode(nb201_arch_to_params(arch)))
        count = sum(p.numel() for p in model.parameters())
        expected = round(float(rows[arch]["params_m"]) * 1e6)
        assert count == expected, arch
