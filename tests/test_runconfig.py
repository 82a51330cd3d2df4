"""Run configs: the device is the user's, checked against the machine before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optuna_nas._runconfig import RunConfig
from optuna_nas._runconfig import artifact_folder
from optuna_nas._runconfig import check_device


def test_cpu_is_always_there() -> None:
    assert check_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("device", ["gpu", "CPU", "cuda:x", "cuda:-1", ""])
def test_strings_that_are_no_device_are_refused(device: str) -> None:
    with pytest.raises(ValueError, match="must name a torch device such as 'cpu'"):
        check_device(device)


def test_a_machine_with_two_cuda_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CUDA lookups are replaced, so this runs on CPU-only machines too.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert check_device("cuda") == torch.device("cuda:0")
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"names cuda device 2, but this machine has 2"):
        check_device("cuda:2")


def test_a_machine_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available here"):
        check_device("cuda:0")


def test_config_checks_device_and_resolves_the_artifact_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`device` must be a string"):
        RunConfig(study_name="s", storage="sqlite:///s.db", device=None)  # type: ignore[arg-type]
    config = RunConfig(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert config.device == "cpu"  # the default is written down, never looked up
    assert artifact_folder(config) == tmp_path / "s.artifacts"
    given = RunConfig(
        study_name="s", storage="postgresql://u:pw@h/db", artifact_dir=str(tmp_path / "a")
    )
    assert artifact_folder(given) == tmp_path / "a"
    with pytest.raises(ValueError, match=r"'postgresql://u:\*\*\*@h/db'"):
        RunConfig(study_name="s", storage="postgresql://u:pw@h/db")
