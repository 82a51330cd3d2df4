"""Export the winner of a study: pick a trial, rebuild its model from the stored spec, and write
the spec JSON, a ``state_dict`` and a ``torch.export`` program.

The model is rebuilt with :func:`~optuna_nas.nn.build_model` from ``user_attrs["spec"]``, so the
study's storage is all that is needed. Its weights are, in order of preference: retrained from
scratch (``retrain_epochs``: the last step of most NAS papers, e.g. DARTS, Liu et al. ICLR 2019,
section 3.2), the weights the study saved with :func:`save_weights`, or none (freshly
initialised, seeded; the manifest says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
import json
import math
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
import torch

from optuna_nas._compat import ArtifactStore
from optuna_nas._validation import check_int
from optuna_nas._validation import is_int
from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.data import load_mnist_5k
from optuna_nas.data import load_source
from optuna_nas.data import make_loader
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.evaluation import isolated_rng
from optuna_nas.nn import build_model
from optuna_nas.report._hypervolume import feasible_complete_trials
from optuna_nas.report._hypervolume import pareto_front
from optuna_nas.report._pareto import stored_spec
from optuna_nas.report._summary import metric_names
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import download_state
from optuna_nas.storage import upload_state

__all__ = ["ExportResult", "export_trial", "load_study_data", "save_weights", "select_trial"]

#: The trial user attr naming the artifact that :func:`save_weights` uploaded.
WEIGHTS_ATTR = "weights_artifact_id"
_DATA = {"digits": load_digits, "mnist_5k": load_mnist_5k}
_MAX_BATCH = 65536  # the exported program's batch dimension is dynamic in [1, _MAX_BATCH]


def save_weights(
    trial: optuna.Trial, model: torch.nn.Module, *, artifact_store: ArtifactStore
) -> str:
    """Upload ``model.state_dict()`` as the trial's ``weights.pt`` artifact; return its id.

    The id is stored in ``trial.user_attrs["weights_artifact_id"]``, where :func:`export_trial`
    finds it. Call it while the trial runs, after training.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    artifact_id = upload_state(trial, artifact_store, state, filename="weights.pt")
    trial.set_user_attr(WEIGHTS_ATTR, artifact_id)
    return artifact_id


def _attr_or_value(trial: FrozenTrial, names: tuple[str, ...], key: str) -> float | None:
    if key in trial.user_attrs:
        return float(trial.user_attrs[key])
    if key in names and trial.values is not None:
        return float(trial.values[names.index(key)])
    return None


def select_trial(
    study: optuna.Study,
    *,
    trial: int | None = None,
    objective: str | int | None = None,
    max_latency_ms: float | None = None,
    max_params: int | None = None,
) -> FrozenTrial:
    """The trial to export: number ``trial``, or the best feasible complete trial.

    "Best" is the best value of ``objective`` (a name from ``study.metric_names`` or an index;
    default the first objective) among the feasible complete trials whose ``latency_ms`` and
    ``params`` (user attrs or objective values) are within ``max_latency_ms`` / ``max_params``;
    ties go to the trial on the Pareto front of those candidates with the lowest number.
    """
    names = metric_names(study)
    if trial is not None:
        if objective is not None or max_latency_ms is not None or max_params is not None:
            raise ValueError(
                "`trial` picks one trial; `objective`, `max_latency_ms` and `max_params` "
                "select the best one instead. Give one or the other."
            )
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise ValueError(
                f"study {study.study_name!r} has no trial {trial}; its trials are numbered "
                f"0..{len(study.trials) - 1}."
            )
        if "spec" not in found[0].user_attrs:
            raise ValueError(f"trial {trial} of study {study.study_name!r} stores no spec.")
        return found[0]
    if objective is None:
        index = 0
    elif is_int(objective):
        if not 0 <= objective < len(names):
            raise ValueError(
                f"`objective` must be an index below {len(names)} or one of {list(names)}, "
                f"but got {objective!r}."
            )
        index = objective
    elif objective in names:
        index = names.index(objective)
    else:
        raise ValueError(f"`objective` must be one of {list(names)}, but got {objective!r}.")
    candidates = [t for t in feasible_complete_trials(study) if "spec" in t.user_attrs]
    for key, limit in (("latency_ms", max_latency_ms), ("params", max_params)):
        if limit is None:
            continue
        measured = [(t, _attr_or_value(t, names, key)) for t in candidates]
        if candidates and all(v is None for _, v in measured):
            raise ValueError(
                f"`max_{key}` was given, but no trial of study {study.study_name!r} stores "
                f"{key!r} (as a user attr or an objective)."
            )
        candidates = [t for t, v in measured if v is not None and v <= limit]
    if not candidates:
        raise ValueError(
            f"no feasible complete trial of study {study.study_name!r} with a stored spec meets "
            f"the limits ({max_latency_ms=}, {max_params=})."
        )
    front = pareto_front(candidates, study.directions)
    sign = 1.0 if study.directions[index] == StudyDirection.MINIMIZE else -1.0
    return min(
        front, key=lambda t: (sign * (t.values or [math.inf] * len(names))[index], t.number)
    )


def load_study_data(
    study: optuna.Study, *, seed: int = 0, root: str | os.PathLike[str] | None = None
) -> DataSplits:
    """The data the study searched on, loaded again.

    ``study.user_attrs["data_source"]`` (recorded by :class:`~optuna_nas.objective.NASObjective`
    for data from the bundled and folder loaders) says how, with ``root`` replacing its folder
    (the data may live elsewhere on this machine). Studies without it name a bundled set in
    ``user_attrs["data"]`` (``digits`` by default), split with ``seed``.

    Raises:
        ValueError: If the study's data came from a user's own ``Dataset`` (pass it to
            :func:`export_trial` as ``data``), or ``root`` is given for bundled data.
    """
    source = study.user_attrs.get("data_source")
    if source is not None:
        return load_source(source, root=root)
    name = study.user_attrs.get("data", "digits")
    if name not in _DATA:
        raise ValueError(
            f"study {study.study_name!r} searched on data {name!r}, which records no source to "
            "load it from (your own Dataset); retrain from Python instead: "
            "export_trial(study, trial, out_dir, retrain_epochs=N, data=<your DataSplits>)."
        )
    if root is not None:
        raise ValueError(f"study {study.study_name!r} uses the bundled {name!r}; drop the root.")
    return _DATA[name](seed=seed)


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What :func:`export_trial` wrote, and where the weights came from."""

    trial: int
    out_dir: Path
    files: dict[str, Path]
    weights: str
    test_accuracy: float | None


def export_trial(
    study: optuna.Study,
    trial: FrozenTrial,
    out_dir: str | os.PathLike[str],
    *,
    artifact_store: ArtifactStore | None = None,
    retrain_epochs: int | None = None,
    data: DataSplits | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_root: str | os.PathLike[str] | None = None,
    training: TrainingConfig | None = None,
) -> ExportResult:
    """Rebuild ``trial``'s model and write ``spec.json``, ``state_dict.pt``, ``model.pt2``
    (:func:`torch.export.save` of the model in eval mode, with a dynamic batch dimension) and
    ``export.json`` (a manifest) into ``out_dir``.

    Args:
        study: The study ``trial`` belongs to.
        trial: A trial with ``user_attrs["spec"]`` (see :func:`select_trial`).
        out_dir: The output folder (created if missing).
        artifact_store: Where :func:`save_weights` put the trial's weights, if it did.
        retrain_epochs: Retrain from scratch for this many epochs with
            :class:`~optuna_nas.evaluation.FullTraining` instead of using stored weights.
        data: The data to retrain on (any :class:`~optuna_nas.data.DataSplits`); default
            :func:`load_study_data`.
        seed: Seeds initialisation and retraining.
        device: Where to retrain (never chosen automatically).
        data_root: With the default data, the folder that replaces the recorded one.
        training: The retraining recipe (optimiser, learning rate, precision, channels_last,
            compile, ...), as for :class:`~optuna_nas.evaluation.FullTraining`; its
            ``epochs`` is replaced by ``retrain_epochs``. Default: ``TrainingConfig()``.

    The exported program is checked: it is reloaded and must reproduce the model's outputs.
    """
    if retrain_epochs is not None:
        check_int("retrain_epochs", retrain_epochs, minimum=1)
    if training is not None and not isinstance(training, TrainingConfig):
        raise TypeError(f"`training` must be a TrainingConfig, but got {type(training).__name__}.")
    spec = stored_spec(trial)
    if spec is None:
        raise ValueError(f"trial {trial.number} of study {study.study_name!r} stores no spec.")
    if retrain_epochs is not None:
        splits = data if data is not None else load_study_data(study, seed=seed, root=data_root)
        recipe = (
            TrainingConfig(epochs=retrain_epochs)
            if training is None
            else replace(training, epochs=retrain_epochs)
        )
        weights = _retrain(trial, spec, splits, recipe, seed=seed, device=device)
    else:
        weights = _stored_or_fresh(study, trial, spec, artifact_store, seed=seed)
    model = weights.model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "spec": out / "spec.json",
        "state_dict": out / "state_dict.pt",
        "program": out / "model.pt2",
        "manifest": out / "export.json",
    }
    files["spec"].write_text(spec.to_json(indent=2) + "\n")
    torch.save(model.state_dict(), files["state_dict"])
    _export_program(model, spec.input_shape, files["program"])
    manifest = _manifest(study, trial, spec, weights, files)
    files["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportResult(
        trial=trial.number,
        out_dir=out,
        files=files,
        weights=weights.origin,
        test_accuracy=weights.test_accuracy,
    )


@dataclass(frozen=True, kw_only=True)
class _Weights:
    """The model to export, where its weights came from, and its test accuracy if measured."""

    model: torch.nn.Module
    origin: str
    test_accuracy: float | None = None


def _retrain(
    trial: FrozenTrial,
    spec: ArchitectureSpec,
    splits: DataSplits,
    training: TrainingConfig,
    *,
    seed: int,
    device: str | torch.device,
) -> _Weights:
    """Train ``spec`` from scratch on ``splits`` with :class:`FullTraining`; measure its test
    accuracy if the data has a test split."""
    if (splits.input_shape, splits.num_classes) != (spec.input_shape, spec.num_outputs):
        raise ValueError(
            f"trial {trial.number} was built for input {spec.input_shape} and "
            f"{spec.num_outputs} outputs, but the data {splits.name!r} has "
            f"{splits.input_shape} and {splits.num_classes} classes."
        )
    evaluator = FullTraining(splits, training=training, device=device)
    result = evaluator.evaluate(spec, report=None, seed=seed)
    if result.model is None:
        raise RuntimeError("FullTraining returned no model.")  # its contract says it does
    test_accuracy = None
    if splits.test is not None:
        test = make_loader(splits, "test", seed=seed, device=device)
        precision = training.precision
        test_accuracy = evaluate_accuracy(result.model, test, device=device, precision=precision)
    epochs = training.epochs
    plural = f"{epochs} epoch" + ("s" if epochs > 1 else "")
    return _Weights(
        # Back to the standard layout: channels-last training leaves 4-D weights channels-last.
        model=result.model.cpu().to(memory_format=torch.contiguous_format),  # type: ignore[call-overload]
        origin=f"retrained from scratch for {plural} on {splits.name!r}",
        test_accuracy=test_accuracy,
    )


def _stored_or_fresh(
    study: optuna.Study,
    trial: FrozenTrial,
    spec: ArchitectureSpec,
    artifact_store: ArtifactStore | None,
    *,
    seed: int,
) -> _Weights:
    """``spec`` built with ``seed``, with the weights :func:`save_weights` stored if the trial
    has them and ``artifact_store`` is given; otherwise freshly initialised."""
    with isolated_rng(seed):  # the same weights as torch.manual_seed(seed) + a build
        model = build_model(spec)
    artifact_id = trial.user_attrs.get(WEIGHTS_ATTR)
    if artifact_id is None or artifact_store is None:
        why = "no artifact store given" if artifact_id is not None else "the study saved none"
        return _Weights(
            model=model, origin=f"untrained: freshly initialised with seed {seed} ({why})"
        )
    state = download_state(
        artifact_store,
        artifact_id,
        what=f"the weights of trial {trial.number} of study {study.study_name!r}",
        fix="export with --retrain EPOCHS (retrain_epochs=) instead, or point "
        "--artifact-dir (artifact_store=) at the store that holds them",
    )
    model.load_state_dict(state)
    return _Weights(model=model, origin=f"trained in the study (artifact {artifact_id})")


def _export_program(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path) -> None:
    """Save ``model`` (in eval mode) as a ``torch.export`` program with a dynamic batch
    dimension, then reload it and check that it reproduces the model at two batch sizes."""
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    program = torch.export.export(
        model, (torch.randn(2, *input_shape),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, path)
    reloaded = torch.export.load(path).module()
    with torch.no_grad():
        for n in (1, 3):  # any batch size runs, and matches the model
            example = torch.randn(n, *input_shape)
            torch.testing.assert_close(reloaded(example), model(example))


def _manifest(
    study: optuna.Study,
    trial: FrozenTrial,
    spec: ArchitectureSpec,
    weights: _Weights,
    files: dict[str, Path],
) -> dict[str, Any]:
    """The contents of ``export.json``: where the model came from and what was written."""
    return {
        "study_name": study.study_name,
        "trial": trial.number,
        "values": dict(zip(metric_names(study), trial.values or (), strict=False)),
        "canonical_hash": trial.user_attrs.get("canonical_hash"),
        "weights": weights.origin,
        "test_accuracy": weights.test_accuracy,
        "input_shape": list(spec.input_shape),
        "files": {k: p.name for k, p in files.items()},
        "torch": torch.__version__,
    }
