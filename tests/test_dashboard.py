"""optuna-dashboard shows the architecture: a real server, its HTTP API and headless Chromium.

One study attached its diagrams, notes and weights while it ran (attach_architecture,
save_weights); a second, finished without them, is retro-fitted with annotate_study; a third
has a chain-space and a cell-space trial. The dashboard is started with ``optuna-nas dashboard``
(its default artifact folder next to the database) and must serve the trials, their attrs and
artifacts, and show the diagram legibly on the trial page: in the trial's note, since the
artifact card is a 200x150 thumbnail.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.distributions import FloatDistribution
from PIL import Image
import pytest

from optuna_nas.report import DIAGRAM_NAME
from optuna_nas.report import annotate_study
from optuna_nas.report import attach_architecture
from optuna_nas.report._dashboard import DIAGRAM_ALT
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import canonical_hash
from tests.report.chromium import Browser
from tests.report.chromium import headless_chromium
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


def _add_diagram_study(storage: str, artifacts: Path) -> None:
    """A running study's trial 0 is a chain-space spec, trial 1 a cell-space one (no training)."""
    study = optuna.create_study(storage=storage, study_name="diagrams")
    store = FileSystemArtifactStore(str(artifacts))
    for space in (
        ChainSpace(input_shape=(1, 8, 8), num_outputs=10),
        CellSpace(input_shape=(1, 8, 8), num_outputs=10),
    ):
        trial = study.ask()
        spec = space.suggest(trial)
        trial.set_user_attr("spec", spec.to_json())
        trial.set_user_attr("canonical_hash", canonical_hash(spec))
        attach_architecture(trial, spec, artifact_store=store)
        study.tell(trial, 0.5)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    storage, artifacts = nas_study_copy(tmp)
    retro = _add_retro_study(storage)
    store = FileSystemArtifactStore(str(artifacts))
    assert annotate_study(retro, artifact_store=store) == [0, 1]
    assert annotate_study(retro, artifact_store=store) == []  # already annotated
    _add_diagram_study(storage, artifacts)
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
    assert set(ids) == {STUDY, "retro", "diagrams"}
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


@pytest.fixture(scope="module")
def study_ids(dashboard: tuple[str, Path]) -> dict[str, int]:
    return _study_ids(dashboard[0])


@pytest.fixture(scope="module")
def browser(dashboard: tuple[str, Path], study_ids: dict[str, int]) -> Iterator[Browser]:
    """One page for all tests; taken after the study ids, as the dashboard's single-threaded
    server waits on the idle connections Chromium opens ahead of time."""
    with headless_chromium(dashboard[1] / "chromium", width=1280, height=_VIEW_H) as b:
        yield b


_VIEW_H = 1400
# The note's diagram image: where it is, its size on the page and its own size.
_MEASURE_IMG = f"""(() => {{
  const img = document.querySelector('img[alt="{DIAGRAM_ALT}"]');
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  const r = img.getBoundingClientRect();
  return {{src: img.getAttribute("src"), x: r.x, y: r.y, width: r.width, height: r.height,
          naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
          card: !!document.querySelector('img[alt="{DIAGRAM_NAME}"]'),
          text: document.body.innerText}};
}})()"""
# In the SVG itself: each box's label and detail text heights, and any text wider than its box.
_MEASURE_SVG = """(() => {
  if (!document.querySelector("g.node")) return null;
  const out = {label: [], detail: [], overflow: []};
  for (const g of document.querySelectorAll("g.node")) {
    const box = g.querySelector("rect").getBBox();
    const texts = g.querySelectorAll("text");
    texts.forEach((t, i) => {
      const b = t.getBBox();
      (i === 0 ? out.label : out.detail).push(b.height);
      if (b.x < box.x || b.x + b.width > box.x + box.width) out.overflow.push(t.textContent);
    });
  }
  return out;
})()"""


@pytest.mark.parametrize(
    ("name", "number", "cell"),
    [(STUDY, 1, False), ("retro", 1, False), ("diagrams", 0, False), ("diagrams", 1, True)],
)
def test_trial_page_shows_the_diagram_legibly(
    dashboard: tuple[str, Path],
    study_ids: dict[str, int],
    browser: Browser,
    name: str,
    number: int,
    cell: bool,
) -> None:
    url, tmp = dashboard
    page = f"{url}/dashboard/studies/{study_ids[name]}/trials?numbers={number}"
    browser.call("Page.navigate", url=page)
    img = browser.wait_for(_MEASURE_IMG)
    assert f"Trial {number}" in img["text"] and "Architecture: " in img["text"]
    assert img["card"], "the architecture artifact card is not on the page"
    # The note shows the diagram at its own size, whole, on screen.
    scale = img["width"] / img["naturalWidth"]
    assert scale == pytest.approx(1.0, abs=0.01)
    assert img["y"] >= 0 and img["y"] + img["height"] <= _VIEW_H
    if cell:  # the cell once plus the skeleton, not every cell unrolled (before: 721 x 3606)
        assert img["naturalHeight"] < 800 and img["naturalWidth"] < 900
    shot = browser.screenshot(tmp / f"trial-{name}-{number}.png")
    with Image.open(shot) as image:
        crop = image.convert("RGB").crop(
            tuple(
                round(v)
                for v in (img["x"], img["y"], img["x"] + img["width"], img["y"] + img["height"])
            )
        )
        colours = {c: n for n, c in crop.getcolors(1 << 20) or []}
    # Painted on the page: the input box (grey) and the classifier box (salmon) of the diagram.
    assert colours.get((0xD9, 0xD9, 0xD9), 0) > 500 and colours.get((0xFC, 0x92, 0x72), 0) > 500
    # Its node labels, in the SVG as served, times the scale on the page.
    browser.call("Page.navigate", url=url + img["src"])
    text = browser.wait_for(_MEASURE_SVG)
    assert not text["overflow"], f"text wider than its box: {text['overflow']}"
    assert min(text["label"]) * scale >= 10 and min(text["detail"]) * scale >= 10
