"""Show architectures in optuna-dashboard: a diagram artifact and a Markdown note per trial.

Inside a study, :func:`attach_architecture` uploads the trial's diagram
(``architecture.svg``, :func:`~optuna_nas.report.architecture_svg`) to the artifact store and
saves a note with :func:`optuna_dashboard.save_note` that shows the diagram as an image served
by the dashboard (the artifact card alone is a 200x150 thumbnail) and the spec's JSON, indented.

Optuna's storage refuses new trial system attrs once a trial has finished, so
:func:`annotate_study` (the retro-fit for a finished study) records the diagram of a finished
trial where optuna-dashboard also looks for a trial's artifacts: the study system attr
``dashboard:artifacts:<trial_id>:<artifact_id>`` (the key the dashboard's own uploads used
before Optuna had artifacts). The dashboard shows it in the trial's artifact cards exactly like
an uploaded one; ``optuna.artifacts.get_all_artifact_meta(trial)`` does not list it.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import os
from pathlib import Path
import tempfile
from typing import Any
import uuid

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial
import optuna_dashboard
from optuna_dashboard.artifact import get_artifact_path

from optuna_nas import _compat
from optuna_nas._compat import ArtifactStore
from optuna_nas._validation import is_int
from optuna_nas.report._diagram import architecture_svg
from optuna_nas.report._pareto import describe_spec
from optuna_nas.report._pareto import stored_spec
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import upload_bytes

#: The file name of the diagram artifact.
DIAGRAM_NAME = "architecture.svg"
# Given, not guessed: ``mimetypes`` answers from the platform's tables (on some, ".pt" is
# "application/vnd.snesdev-page-table"), so every upload names its type.
_DIAGRAM_MIMETYPE = "image/svg+xml"
_LEGACY_PREFIX = "dashboard:artifacts:"
_NOTE_SPEC_CHARS = 6000
#: The alt text of the diagram image in a trial's note.
DIAGRAM_ALT = "architecture diagram"


def default_artifact_dir(storage: str) -> Path:
    """The artifact folder that goes with a storage URL: ``X.artifacts/`` next to ``X.db``.

    Only ``sqlite:///`` URLs have a default; other storages need an explicit folder.
    """
    prefix = "sqlite:///"
    if not storage.startswith(prefix) or storage == prefix:
        raise ValueError(
            f"`artifact_dir` has a default only for sqlite:/// storage URLs, but got "
            f"{storage!r}; pass --artifact-dir."
        )
    db = Path(storage[len(prefix) :])
    return db.with_name(db.stem + ".artifacts")


def spec_json_lines(spec: ArchitectureSpec) -> str:
    """The JSON of ``spec`` with one node or edge per line: the same data as the ``spec`` user
    attr (``json.loads`` gives ``spec.to_dict()``), laid out to be read."""
    data = spec.to_dict()
    nodes, edges = data.pop("nodes"), data.pop("edges")
    lines = ["{"] + [
        f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}," for k, v in data.items()
    ]
    lines.append('  "nodes": [')
    lines += [
        f'    {{"id": {json.dumps(n["id"])}, "op": {json.dumps(n["op"])}, '
        f'"config": {json.dumps(n["config"], sort_keys=True)}}},'
        for n in nodes
    ]
    lines[-1] = lines[-1].rstrip(",")
    lines += ["  ],", '  "edges": [']
    lines += [f"    {json.dumps(e)}," for e in edges]
    lines[-1] = lines[-1].rstrip(",")
    lines += ["  ]", "}"]
    return "\n".join(lines)


def architecture_note(
    spec: ArchitectureSpec,
    attrs: Mapping[str, Any] | None = None,
    *,
    diagram_url: str | None = None,
) -> str:
    """The Markdown note of an architecture: summary, cost, hash, diagram and the spec's JSON.

    ``attrs`` (a trial's user attrs) adds the numbers it holds (params, FLOPs, accuracy, ...).
    ``diagram_url`` (where the dashboard serves the ``architecture.svg`` artifact,
    :func:`optuna_dashboard.artifact.get_artifact_path`) shows the diagram in the note, at its
    own size: the note renders Markdown images whose URL is a path or http(s), but neither
    ``data:`` URIs nor inline SVG/HTML (optuna-dashboard 0.21, checked in headless Chromium by
    tests/test_dashboard.py), and the artifact card shows only a 200x150 thumbnail.
    The JSON is left out when longer than ``_NOTE_SPEC_CHARS`` (a note is stored in study
    system attrs, 2045 characters each): the folded diagram shows such (cell) specs.
    """
    attrs = attrs or {}
    lines = [
        f"### Architecture: {describe_spec(spec) or 'no layers'}",
        "",
        f"- space: `{spec.metadata.get('space', 'unknown')}`; input "
        f"{'x'.join(map(str, spec.input_shape))}, {spec.num_outputs} outputs, "
        f"{len(spec.nodes)} nodes, {len(spec.edges)} edges",
    ]
    for key, label in (
        ("canonical_hash", "canonical hash"),
        ("params", "parameters"),
        ("flops", "FLOPs"),
        ("val_accuracy", "validation accuracy"),
        ("latency_ms", "latency (ms)"),
        ("duplicate_of", "duplicate of trial"),
    ):
        if key in attrs:
            value = attrs[key]
            if is_int(value):
                text = f"{value:,}"
            elif isinstance(value, float):
                text = f"{value:.4g}"
            else:
                text = str(value)
            lines.append(f"- {label}: `{text}`")
    lines.append("")
    if diagram_url is not None:
        lines += [f"![{DIAGRAM_ALT}]({diagram_url})", ""]
    else:
        lines += [f"Diagram: the `{DIAGRAM_NAME}` artifact below.", ""]
    text = spec_json_lines(spec)
    if len(text) <= _NOTE_SPEC_CHARS:
        lines += ["Spec (the `spec` user attr):", "", "```json", text, "```"]
    else:
        lines.append(
            f"Spec: the `spec` user attr ({len(text):,} characters of JSON; "
            "`ArchitectureSpec.from_json` reads it)."
        )
    return "\n".join(lines) + "\n"


def _write_diagram(spec: ArchitectureSpec, title: str, folder: str) -> str:
    path = os.path.join(folder, DIAGRAM_NAME)
    Path(path).write_text(architecture_svg(spec, title=title))
    return path


def attach_architecture(
    trial: optuna.Trial,
    spec: ArchitectureSpec,
    *,
    artifact_store: ArtifactStore,
) -> str:
    """Upload the diagram of ``spec`` to ``trial`` and save its Markdown note; return the
    artifact id. Call it while the trial runs (e.g. from the objective, after the spec is
    known); the note reads the trial's user attrs stored so far.
    """
    if not isinstance(spec, ArchitectureSpec):
        raise TypeError(f"`spec` must be an ArchitectureSpec, but got {type(spec).__name__}.")
    svg = architecture_svg(spec, title=f"trial {trial.number}")
    artifact_id = upload_bytes(
        trial, artifact_store, svg.encode(), filename=DIAGRAM_NAME, mimetype=_DIAGRAM_MIMETYPE
    )
    note = architecture_note(
        spec, trial.user_attrs, diagram_url=get_artifact_path(trial, artifact_id)
    )
    optuna_dashboard.save_note(trial, note)
    return artifact_id


def _has_diagram(study: optuna.Study, trial: FrozenTrial, study_attrs: Mapping[str, Any]) -> bool:
    metas = [v for k, v in trial.system_attrs.items() if k.startswith("artifacts:")]
    legacy = f"{_LEGACY_PREFIX}{_compat.trial_id(trial)}:"
    metas += [v for k, v in study_attrs.items() if k.startswith(legacy)]
    return any(m and json.loads(m).get("filename") == DIAGRAM_NAME for m in metas)


def annotate_study(
    study: optuna.Study, *, artifact_store: ArtifactStore, overwrite: bool = False
) -> list[int]:
    """Add the diagram artifact and the note to every trial of ``study`` that stores a spec.

    Trials that already have an ``architecture.svg`` artifact are left alone unless
    ``overwrite``. Finished trials get their artifact recorded as the module docstring says.
    Returns the numbers of the trials annotated.
    """
    storage = _compat.study_storage(study)
    # A fresh handle with a sampler that does nothing in before_trial: the notes need an
    # optuna.Trial, and constructing one must not touch the study's real sampler state.
    handle = optuna.load_study(
        study_name=study.study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    study_attrs = storage.get_study_system_attrs(_compat.study_id(study))
    done: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        for frozen in study.get_trials(deepcopy=False):
            spec = stored_spec(frozen)
            if spec is None or (not overwrite and _has_diagram(study, frozen, study_attrs)):
                continue
            if not frozen.state.is_finished():
                attach_architecture(
                    optuna.Trial(handle, _compat.trial_id(frozen)),
                    spec,
                    artifact_store=artifact_store,
                )
                done.append(frozen.number)
                continue
            path = _write_diagram(spec, f"trial {frozen.number}", tmp)
            artifact_id = str(uuid.uuid4())
            with open(path, "rb") as f:
                artifact_store.write(artifact_id, f)
            meta = {
                "artifact_id": artifact_id,
                "filename": DIAGRAM_NAME,
                "mimetype": _DIAGRAM_MIMETYPE,
                "encoding": None,
            }
            storage.set_study_system_attr(
                _compat.study_id(study),
                f"{_LEGACY_PREFIX}{_compat.trial_id(frozen)}:{artifact_id}",
                json.dumps(meta),
            )
            values = dict(zip(study.metric_names or (), frozen.values or (), strict=False))
            trial = optuna.Trial(handle, _compat.trial_id(frozen))
            url = get_artifact_path(trial, artifact_id)
            note = architecture_note(spec, values | frozen.user_attrs, diagram_url=url)
            optuna_dashboard.save_note(trial, note)
            done.append(frozen.number)
    return done


def run_dashboard(
    storage: str,
    *,
    artifact_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Serve optuna-dashboard for ``storage`` with the artifact store at ``artifact_dir``.

    Blocks until the server stops (Ctrl-C).
    """
    folder = Path(artifact_dir)
    folder.mkdir(parents=True, exist_ok=True)
    optuna_dashboard.run_server(
        storage, host=host, port=port, artifact_store=FileSystemArtifactStore(str(folder))
    )
