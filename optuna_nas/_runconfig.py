"""``optuna-nas run CONFIG.toml``: a study described by a small TOML or JSON file.

Keys (all but ``study_name`` and ``storage`` optional)::

    study_name = "cells"                       # the Optuna study (created or resumed)
    storage = "sqlite:///cells.db"             # an Optuna storage URL
    space = "chain"                            # chain | cell | mobile
    sampler = "tpe"                            # a name for optuna_nas.samplers.create_sampler
    objectives = ["val_accuracy", "params"]    # names from optuna_nas.objective.OBJECTIVES
    data = "digits"                            # digits | mnist_5k
    device = "cpu"                             # where candidates train and latency is timed
    epochs = 5                                 # training epochs per candidate
    batch_size = 64
    seed = 0
    trials = 20                                # finished trials wanted in the study in total
    timeout = 600                              # seconds for this run (optional)
    artifact_dir = "cells.artifacts"           # architecture diagrams (optional for sqlite)

``device`` is always the one written in the config (default ``"cpu"``), never picked by
looking at the machine; one that this machine lacks is an error before anything runs. Every
trial gets its architecture diagram and note for optuna-dashboard
(:func:`~optuna_nas.report.attach_architecture`, through ``NASObjective(artifact_store=...)``)
in ``artifact_dir``, by default ``X.artifacts`` next to a ``sqlite:///X.db`` storage; other
storages have no default folder, so they need the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields
import json
from pathlib import Path
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
import tomllib
import torch

from optuna_nas._validation import check_choice
from optuna_nas._validation import check_int
from optuna_nas.data import load_digits
from optuna_nas.data import load_mnist_5k
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import check_device as check_torch_device
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import MobileSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

_SPACES: dict[str, Callable[..., SearchSpace]] = {
    "chain": ChainSpace,
    "cell": CellSpace,
    "mobile": MobileSpace,
}
_DATA = {"digits": load_digits, "mnist_5k": load_mnist_5k}


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A study described by a config file; see the module docstring."""

    study_name: str
    storage: str
    space: str = "chain"
    sampler: str = "tpe"
    objectives: tuple[str, ...] = ("val_accuracy", "params")
    data: str = "digits"
    device: str = "cpu"
    epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    trials: int = 20
    timeout: float | None = None
    artifact_dir: str | None = None

    def __post_init__(self) -> None:
        check_choice("space", self.space, sorted(_SPACES))
        check_choice("sampler", self.sampler, list(SAMPLER_NAMES))
        check_choice("data", self.data, sorted(_DATA))
        for name in ("epochs", "batch_size", "trials"):
            check_int(name, getattr(self, name), minimum=1)
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"`timeout > 0` must hold, but got timeout={self.timeout!r}.")
        check_device(self.device)
        if self.artifact_dir is None and not self.storage.startswith("sqlite:///"):
            raise ValueError(
                f"`artifact_dir` is required with storage {mask_url(self.storage)!r}: only "
                "sqlite:///X.db storages have a default artifact folder (X.artifacts); add e.g. "
                'artifact_dir = "study.artifacts" to the config.'
            )


def check_device(device: object) -> torch.device:
    """A config's ``device``: a string naming a device this machine has (checked by
    :func:`optuna_nas.evaluation.check_device`, the one device check). Nothing is chosen for
    the user."""
    if not isinstance(device, str):
        raise ValueError(
            f"`device` must be a string such as 'cpu' or 'cuda:0', but got {device!r}."
        )
    return check_torch_device(device)


def artifact_folder(config: RunConfig) -> Path:
    """Where the config's trials store their diagrams: ``artifact_dir``, else ``X.artifacts``
    next to a ``sqlite:///X.db`` storage.
    """
    if config.artifact_dir is not None:
        return Path(config.artifact_dir)
    return default_artifact_dir(config.storage)


def load_run_config(path: str | Path) -> RunConfig:
    """Read a ``.toml`` or ``.json`` config; unknown keys are an error."""
    p = Path(path)
    if p.suffix == ".toml":
        raw = tomllib.loads(p.read_text())
    elif p.suffix == ".json":
        raw = json.loads(p.read_text())
    else:
        raise ValueError(f"a run config must be a .toml or .json file, but got {str(p)!r}.")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {unknown}; valid keys are {sorted(known)}.")
    missing = sorted({"study_name", "storage"} - set(raw))
    if missing:
        raise ValueError(f"{p}: missing required key(s) {missing}.")
    if "objectives" in raw:
        raw["objectives"] = tuple(raw["objectives"])
    return RunConfig(**raw)


def run_config(
    config: RunConfig, *, trials: int | None = None, timeout: float | None = None
) -> optuna.Study:
    """Create or resume the study of ``config`` and run it until it has ``trials`` finished
    trials or ``timeout`` seconds pass (arguments override the config), with a progress bar.
    """
    trials = config.trials if trials is None else trials
    timeout = config.timeout if timeout is None else timeout
    data = _DATA[config.data](seed=config.seed)
    space = _SPACES[config.space](input_shape=data.input_shape, num_outputs=data.num_classes)
    evaluator = FullTraining(
        data,
        training=TrainingConfig(epochs=config.epochs),
        batch_size=config.batch_size,
        device=config.device,
    )
    folder = artifact_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    objective = NASObjective(
        space,
        evaluator,
        objectives=config.objectives,
        seed=config.seed,
        device=config.device,
        artifact_store=FileSystemArtifactStore(str(folder)),
    )
    study = optuna.create_study(
        storage=open_storage(config.storage),  # every URL scheme, heartbeats, one clear error
        study_name=config.study_name,
        directions=objective.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.objectives))
    study.set_user_attr("data", config.data)
    study.sampler = create_sampler(config.sampler, seed=config.seed + len(study.trials))
    missing = max(0, trials - count_finished(study))
    with ProgressBar(study, n_trials=missing, timeout=timeout) as bar:
        # As the study scripts: exactly `trials` finished with any number of workers, and
        # trials of killed workers failed and retried (heartbeats).
        run_study(
            study,
            objective,
            n_trials=trials,
            timeout=timeout,
            catch=(RuntimeError, ValueError),
            callbacks=[bar],
        )
    return study
