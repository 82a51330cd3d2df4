"""optuna-dashboard shows the architecture: a real server, its HTTP API and headless Chromium.

One study attached its diagrams, notes and weights while it ran (attach_architecture,
save_weights); a second, finished without them, is retro-fitted with annotate_study. The
dashboard is started with ``optuna-nas dashboard`` (its default artifact folder next to the
database) and must serve the trials, their attrs and artifacts, and render the diagram on the
trial page.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.distributions import FloatDistribution
import pytest

from optuna_nas.report import DIAGRAM_NAME
from optuna_nas.report import annotate_study
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash
from tests.report.nas_study import STUDY
from tests.report.nas_study import TRIALS
from tests.report.nas_study import nas_study_copy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def _add_retro_study(storage: str) -> optuna.Study:
    """A finished study whose trials store specs but have no diagram or note."""
    study = optuna.create_study(storage=storage, study_name="retro", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy"])
    space = ChainSpace(input_shape=(1, 8, 8), num_outputs=10)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(2):
        spec = space.suggest(sampler.ask())
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5 + i / 10,
                params={"x": 0.1},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"spec": spec.to_json(), "canonical_hash": canonical_hash(spec)},
            )
        )
    return study


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    storage, artifacts = nas_study_copy(tmp)
    retro = _add_retro_study(storage)
    store = FileSystemArtifactStore(str(artifacts))
    assert annotate_study(retro, artifact_store=store) == [0, 1]
    assert annotate_study(retro, artifact_store=store) == []  # already annotated
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optuna_nas.cli",
            "dashboard",
            "--storage",
            storage,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{url}/api/meta")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"optuna-dashboard did not start: {out}")
                time.sleep(0.5)
        yield url, tmp
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def _study_ids(url: str) -> dict[str, int]:
    summaries = json.loads(_get(f"{url}/api/studies"))["study_summaries"]
    return {s["study_name"]: s["study_id"] for s in summaries}


def test_api_serves_trials_attrs_notes_and_artifacts(dashboard: tuple[str, Path]) -> None:
    url, _ = dashboard
    ids = _study_ids(url)
    assert set(ids) == {STUDY, "retro"}
    for name, n_trials in ((STUDY, TRIALS), ("retro", 2)):
        detail = json.loads(_get(f"{url}/api/studies/{ids[name]}?after=0"))
        assert detail["objective_names"][0] == "val_accuracy"
        assert len(detail["trials"]) == n_trials
        for trial in detail["trials"]:
            attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
            assert {"spec", "canonical_hash"} <= set(attrs)
            # The spec is stored as JSON text, which optuna-dashboard serves whole (it cuts
            # only non-string attrs to 1024 characters): it parses back into a valid spec.
            assert ArchitectureSpec.from_json(attrs["spec"]).num_outputs == 10
            assert trial["note"]["body"].startswith("### Architecture: ")
            files = {a["filename"]: a for a in trial["artifacts"]}
            assert DIAGRAM_NAME in files
            assert files[DIAGRAM_NAME]["mimetype"] == "image/svg+xml"
            diagram = _get(
                f"{url}/artifacts/{ids[name]}/{trial['trial_id']}/"
                f"{files[DIAGRAM_NAME]['artifact_id']}"
            )
            assert diagram.startswith(b"<svg") and b'class="node"' in diagram
            if name == STUDY:  # saved by save_weights during the study
                assert "weights.pt" in files


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no chromium binary on PATH (.ci/run installs Debian's chromium package)"
    if os.environ.get("OPTUNA_NAS_REQUIRE_BROWSER"):  # set by .ci/run: never skip there
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize(("name", "number"), [(STUDY, 1), ("retro", 1)])
def test_trial_page_shows_the_diagram(dashboard: tuple[str, Path], name: str, number: int) -> None:
    url, tmp = dashboard
    browser = _chromium()
    page = f"{url}/dashboard/studies/{_study_ids(url)[name]}/trials?numbers={number}"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp / f'chromium-{name}'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    dom = result.stdout.decode()
    assert f"Trial {number}" in dom
    assert f'alt="{DIAGRAM_NAME}"' in dom, "the architecture artifact card is not on the page"
    assert "Architecture: " in dom, "the architecture note is not on the page"
