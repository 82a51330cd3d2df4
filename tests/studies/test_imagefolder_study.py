"""``studies/imagefolder.py`` on a folder of PNGs the test writes: it runs, and it resumes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest

from tests.data.own_data import write_png_tree

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "imagefolder.py"


def _main(argv: list[str]) -> optuna.Study:
    spec = importlib.util.spec_from_file_location("study_imagefolder", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study: optuna.Study = module.main(argv)
    return study


@pytest.mark.parametrize("space", ["chain", "cell"])
def test_imagefolder_study_runs_any_space_and_resumes(space: str, tmp_path: Path) -> None:
    root = write_png_tree(tmp_path / "pngs")
    common = [
        "--data-dir", str(root), "--image-size", "8", "--grayscale", "--epochs", "1",
        "--space", space, "--sampler", "random", "--device", "cpu", "--in-memory",
        "--storage", f"sqlite:///{tmp_path / 'f.db'}",
    ]  # fmt: skip
    first = _main([*common, "--trials", "2"])
    assert [t.state for t in first.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    again = _main([*common, "--trials", "3"])
    assert len(again.trials) == 3
    assert again.user_attrs["data_source"]["loader"] == "image_folder"


def test_imagefolder_study_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"imagefolder: no image folder at .*absent"):
        _main(["--data-dir", str(tmp_path / "absent")])
