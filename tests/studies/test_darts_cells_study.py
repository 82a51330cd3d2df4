"""Smoke run of ``studies/darts_cells.py`` with tiny budgets: both studies, the table, a resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import re
import statistics
from types import ModuleType

import optuna
import pytest

STUDY = Path(__file__).resolve().parents[2] / "studies" / "darts_cells.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("study_darts_cells", STUDY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(study: optuna.Study, proposal: str | None = None) -> list[float]:
    return [
        float(t.value)
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None
        and (proposal is None or t.system_attrs.get("darts:proposal") == proposal)
    ]


def test_darts_cells_searches_once_trains_both_studies_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _load()
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    tiny = ["--epochs", "1", "--search-epochs", "1", "--storage", storage, "--study-name", "dc"]
    darts, random = module.main(["--trials", "2", *tiny])
    out = capsys.readouterr().out

    assert (darts.study_name, random.study_name) == ("dc", "dc-random")
    for study in (darts, random):
        assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
        assert all(t.intermediate_values for t in study.trials)  # curves for the dashboard
    assert [t.system_attrs["darts:proposal"] for t in darts.trials] == ["argmax", "softmax"]
    attrs = module.search_attrs(darts)
    history, result = attrs["darts:history"], attrs["darts:result"]
    assert len(history) == 1 and result["epochs"] == 1
    assert (tmp_path / "d.artifacts").is_dir()

    # The table holds the studies' numbers, and the rank is the argmax's place among random.
    argmax, rand = _values(darts, "argmax")[0], _values(random)
    assert "Running the DARTS search" in out
    assert re.search(rf"DARTS argmax\s+1\s+{argmax:.4f}\s+{argmax:.4f}", out)
    assert re.search(
        rf"random \(RandomSampler\)\s+2\s+{max(rand):.4f}\s+{statistics.median(rand):.4f}", out
    )
    higher = sum(v > argmax for v in rand)
    assert f"it ranks {higher + 1} of 3 among them" in out

    # A rerun with more trials continues both studies and reads alpha from the study.
    darts, random = module.main(["--trials", "3", *tiny])
    out = capsys.readouterr().out
    assert "DARTS search: read from the study." in out and "Running the DARTS" not in out
    for study in (darts, random):
        assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    attrs = module.search_attrs(darts)
    assert attrs["darts:history"] == history and attrs["darts:result"] == result
    assert [t.system_attrs["darts:proposal"] for t in darts.trials] == ["argmax"] + ["softmax"] * 2
    assert len({tuple(sorted(t.params.items())) for t in darts.trials}) == 3
    assert re.search(r"DARTS softmax draws\s+2\s", out)

    # Other search settings on the same study are refused, not searched again silently.
    with pytest.raises(ValueError, match="other settings"):
        module.main(["--trials", "3", *tiny[:2], "--search-epochs", "2", *tiny[4:]])
