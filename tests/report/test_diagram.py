"""Architecture diagrams (SVG) and notes for every built-in space.

The drawing is read back: every spec node is in a box (a folded cell space draws its
skeleton and one cell), every edge joins the right boxes and passes through none, and the
diagram keeps a size at which optuna-dashboard's note shows it legibly.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import optuna
import pytest

from optuna_nas.report import architecture_note
from optuna_nas.report import architecture_svg
from optuna_nas.report import node_label
from optuna_nas.report._dashboard import spec_json_lines
from optuna_nas.report._diagram import DETAIL_PX
from optuna_nas.report._diagram import LABEL_PX
from optuna_nas.report._diagram import layers
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import MixedSpace
from optuna_nas.spaces import MobileSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node
from tests.report.svg_geometry import SVG
from tests.report.svg_geometry import boxes
from tests.report.svg_geometry import edge_points
from tests.report.svg_geometry import inside
from tests.report.svg_geometry import joined

SPACES = {
    "chain": ChainSpace(input_shape=(1, 8, 8), num_outputs=10),
    "cell": CellSpace(input_shape=(1, 8, 8), num_outputs=10),
    "cell5": CellSpace(input_shape=(1, 8, 8), num_outputs=10, num_nodes=5, cells_per_stage=3),
    "mixed": MixedSpace(input_shape=(1, 8, 8), num_outputs=10),
    "mobile": MobileSpace(input_shape=(1, 8, 8), num_outputs=10),
    "nb201": CellSpace.nasbench201(),
}
FOLDED = {"cell", "cell5", "mixed", "nb201"}
VIEW = "block-view:"


def _spec(name: str, seed: int) -> ArchitectureSpec:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return SPACES[name].suggest(study.ask())


def _expected_edges(spec: ArchitectureSpec, root: ET.Element) -> set[tuple[str, str]]:
    """The box pairs the spec's edges imply: between skeleton boxes, and in the drawn cell
    (the first, ``stage1/cell1``; its input comes from outside it)."""
    found = boxes(root)
    owner = {m: k for k, (_, ms) in found.items() if not k.startswith(VIEW) for m in ms}
    view = {m: k for k, (_, ms) in found.items() if k.startswith(VIEW) for m in ms}
    out = {(owner[s], owner[d]) for s, d in spec.edges if owner[s] != owner[d]}
    first = "stage1/cell1/"
    for s, d in spec.edges:
        if d.startswith(first) and d in view:
            out.add((view[s] if s.startswith(first) else VIEW + "<input>", view[d]))
    return out


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("seed", [0, 1])
def test_boxes_cover_the_spec_and_edges_join_the_right_boxes(name: str, seed: int) -> None:
    spec = _spec(name, seed)
    root = ET.fromstring(architecture_svg(spec, title="trial 0"))
    found = boxes(root)
    skeleton = [ms for k, (_, ms) in found.items() if not k.startswith(VIEW)]
    # The skeleton's boxes partition the spec's nodes.
    assert sorted(m for ms in skeleton for m in ms) == sorted(n.id for n in spec.nodes)
    drawn = joined(root)
    assert len(drawn) == len(set(drawn))
    assert set(drawn) == _expected_edges(spec, root)
    if name in FOLDED:
        # One cell is drawn; its boxes stand for that node in every cell of the network.
        view = [k for k in found if k.startswith(VIEW)]
        cells = {m.split("/")[0] + "/" + m.split("/")[1] for k in view for m in found[k][1]}
        leaves = {n.id.split("/", 2)[2] for n in spec.nodes if n.id.startswith("stage1/cell1/")}
        assert {k[len(VIEW) :] for k in view} == leaves | {"<input>"}
        assert len(cells) == sum(1 for n in spec.nodes if re.fullmatch(r".*/node1", n.id))
        assert len(skeleton) < 15
    else:
        assert not any(k.startswith(VIEW) for k in found)
        assert len(drawn) == len(spec.edges)


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_edge_passes_through_a_box_and_the_size_is_bounded(name: str, seed: int) -> None:
    spec = _spec(name, seed)
    root = ET.fromstring(architecture_svg(spec, title="trial 0"))
    rects = [r for r, _ in boxes(root).values()]
    for path in root.iter(f"{SVG}path"):
        if path.get("class") == "edge":
            for point in edge_points(path.get("d", "")):
                assert not any(inside(point, r) for r in rects), (path.get("d"), point)
    # Boxes do not overlap and lie inside the picture.
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    for i, (x, y, w, h) in enumerate(rects):
        assert 0 <= x <= width - w and 0 <= y <= height - h
        for x2, y2, w2, h2 in rects[i + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
    # Before: a cell spec was 721 x 3606 (NB201: 721 x 7710), every cell unrolled.
    assert width <= 900 and height <= (800 if name in FOLDED else 900)
    sizes = {float(t.get("font-size", 0)) for t in root.iter(f"{SVG}text")}
    assert min(sizes) >= 10 and LABEL_PX >= 12 and DETAIL_PX >= 10


@pytest.mark.parametrize("name", sorted(SPACES))
def test_layers_follow_edges_downwards(name: str) -> None:
    spec = _spec(name, 3)
    level = {n: i for i, layer in enumerate(layers(spec)) for n in layer}
    assert len(level) == len(spec.nodes)
    assert all(level[src] < level[dst] for src, dst in spec.edges)
    assert level[spec.input_id] == 0 and level[spec.output_id] == max(level.values())


def test_labels_and_note() -> None:
    conv = Node("c", "conv", {"channels": 32, "kernel": 3, "stride": 2, "activation": "relu"})
    assert node_label(conv) == "conv 3x3 32ch s2 relu"
    mb = Node("m", "mbconv", {"channels": 24, "kernel": 5, "expand": 6, "se": 0.25})
    assert node_label(mb) == "MBConv6 5x5 24ch relu6 SE"
    spec = _spec("chain", 0)
    note = architecture_note(spec, {"params": 12345, "val_accuracy": 0.9}, diagram_url="/a/1")
    assert note.startswith("### Architecture: ")
    assert "parameters: `12,345`" in note and "validation accuracy: `0.9`" in note
    assert "\n![architecture diagram](/a/1)\n" in note
    # The spec's JSON, one node per line, is exactly the spec.
    block = note.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == spec.to_dict()
    assert block == spec_json_lines(spec)
    assert len(block.splitlines()) == len(spec.nodes) + len(spec.edges) + 10
    config = '{"activation": "none", "bias": true, "features": 10}'
    classifier = f'    {{"id": "classifier", "op": "linear", "config": {config}}}'
    assert classifier in [line.rstrip(",") for line in block.splitlines()]
    # A large (cell) spec's JSON stays in the user attr; the folded diagram shows it.
    big = architecture_note(_spec("nb201", 0))
    assert "```" not in big and "`spec` user attr" in big
    assert "the `architecture.svg` artifact below" in big
