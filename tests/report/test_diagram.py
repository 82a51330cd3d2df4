"""Architecture diagrams (SVG) and notes for every built-in space."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import optuna
import pytest

from optuna_nas.report import architecture_note
from optuna_nas.report import architecture_svg
from optuna_nas.report import node_label
from optuna_nas.report._diagram import layers
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import MobileSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

SVG = "{http://www.w3.org/2000/svg}"
SPACES = {
    "chain": ChainSpace(input_shape=(1, 8, 8), num_outputs=10),
    "cell": CellSpace(input_shape=(1, 8, 8), num_outputs=10),
    "mobile": MobileSpace(input_shape=(1, 8, 8), num_outputs=10),
    "nb201": CellSpace.nasbench201(),
}


def _spec(name: str, seed: int) -> ArchitectureSpec:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return SPACES[name].suggest(study.ask())


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("seed", [0, 1])
def test_svg_has_one_box_per_node_and_one_path_per_edge(name: str, seed: int) -> None:
    spec = _spec(name, seed)
    root = ET.fromstring(architecture_svg(spec, title="trial 0"))
    groups = root.findall(f"{SVG}g")
    assert sorted(g.get("id") for g in groups) == sorted(n.id for n in spec.nodes)
    edges = [p for p in root.findall(f"{SVG}path") if p.get("marker-end")]
    assert len(edges) == len(spec.edges)
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    for rect in root.iter(f"{SVG}rect"):
        if rect.get("x") is not None:
            assert float(rect.get("x", -1)) >= 0 and float(rect.get("x", 0)) < width
            assert 0 <= float(rect.get("y", -1)) < height


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
    note = architecture_note(spec, {"params": 12345, "val_accuracy": 0.9})
    assert note.startswith("### Architecture: ")
    assert "parameters: `12,345`" in note and "validation accuracy: `0.9`" in note
    assert "| `classifier` | linear 10 | 10 |" in note
