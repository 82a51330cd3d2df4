"""Bring your own data: an ImageFolder tree, CIFAR-format pickles and a custom Dataset, through
every evaluator, the DARTS search and ``export --retrain``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
import pytest
import torch
from torch.utils.data import TensorDataset

from optuna_nas.cli import main
from optuna_nas.data import DataSplits
from optuna_nas.data import LoaderSettings
from optuna_nas.data import load_cifar10
from optuna_nas.data import load_image_folder
from optuna_nas.data import load_source
from optuna_nas.data import make_loader
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import PredictorEvaluator
from optuna_nas.evaluation import ProxyTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.evaluation import ZeroCostEvaluator
from optuna_nas.export import export_trial
from optuna_nas.objective import NASObjective
from optuna_nas.samplers import DartsSampler
from optuna_nas.samplers._darts._search import DartsSearchConfig
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import run_study
from tests.data.own_data import custom_splits
from tests.data.own_data import write_cifar_pickles
from tests.data.own_data import write_png_tree

KINDS = ("image_folder", "image_folder_in_memory", "cifar", "custom")


def make_data(kind: str, root: Path) -> DataSplits:
    if kind.startswith("image_folder"):
        return load_image_folder(
            write_png_tree(root / "digits"),
            image_size=8,
            grayscale=True,
            val_fraction=0.25,
            test_fraction=0.2,
            in_memory=kind.endswith("in_memory"),
        )
    if kind == "cifar":
        return load_cifar10(write_cifar_pickles(root), val_size=40)
    return DataSplits(**custom_splits(), num_classes=10, name="digits_custom")


@pytest.fixture(scope="module", params=KINDS)
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DataSplits:
    return make_data(request.param, tmp_path_factory.mktemp(request.param))


def _chain(data: DataSplits) -> ChainSpace:
    return ChainSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        max_depth=2,
        widths=(8,),
        stride_layers=(2,),
    )


def test_shapes_and_classes_are_inferred(own: DataSplits) -> None:
    assert own.num_classes == 10
    assert own.input_shape in ((1, 8, 8), (3, 32, 32))
    images, labels = next(iter(make_loader(own, "train", batch_size=16, seed=0)))
    assert images.shape == (16, *own.input_shape) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and 0 <= int(labels.min()) <= int(labels.max()) < 10


def test_every_evaluator_and_the_objective_run_on_it(own: DataSplits, tmp_path: Path) -> None:
    space = _chain(own)
    spec = space.decode(_first_params(space))
    training = TrainingConfig(epochs=1)
    smaller = max(4, own.input_shape[1] // 2)
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study(direction="maximize")
    weight_sharing = WeightSharingEvaluator(
        own, space=space, artifact_store=store, training=training
    )
    weight_sharing.attach(study)
    evaluators: list[Any] = [
        FullTraining(own, training=training, batch_size=16),
        ProxyTraining(own, training=training, data_fraction=0.5, resolution=smaller),
        ZeroCostEvaluator(own, proxy="synflow", batch_size=8),
        weight_sharing,
    ]
    for evaluator in evaluators:
        values = evaluator.evaluate(spec, report=None, seed=0).values
        assert all(isinstance(v, float) for v in values.values()), (evaluator, values)
    predictor = PredictorEvaluator(
        FullTraining(own, training=training, batch_size=16),
        space=space,
        warmup=2,
        predictor={"steps": 20},
    )
    objective = NASObjective(space, predictor, objectives=("predicted_accuracy",))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert study.user_attrs["data"] == own.name


def _first_params(space: ChainSpace) -> dict[str, Any]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.suggest(trial)
    return trial.params


def test_darts_searches_it(own: DataSplits) -> None:
    space = CellSpace(
        input_shape=own.input_shape,
        num_outputs=own.num_classes,
        init_channels=4,
        num_stages=1,
        cells_per_stage=1,
        num_nodes=2,
    )
    sampler = DartsSampler(
        space=space,
        data=own,
        search_config=DartsSearchConfig(epochs=1, warmup_epochs=0, batch_size=32),
        seed=0,
    )
    alpha = sampler.search(optuna.create_study())
    assert alpha and all(len(v) == len(space.ops) for v in alpha.values())


@pytest.mark.parametrize("kind", ["image_folder", "cifar"])
def test_export_retrain_reloads_the_recorded_source(kind: str, tmp_path: Path) -> None:
    data = make_data(kind, tmp_path / "data")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="own", direction="maximize")
    space = _chain(data)
    objective = NASObjective(
        space, FullTraining(data, training=TrainingConfig(epochs=1)), objectives=("val_accuracy",)
    )
    study.optimize(objective, n_trials=1)
    assert load_source(study.user_attrs["data_source"]).name == data.name
    (tmp_path / "data").rename(tmp_path / "moved")  # the data lives elsewhere on this machine
    folder = tmp_path / "moved" / ("digits" if kind == "image_folder" else "")
    main(
        ["export", "--storage", storage, "--study", "own", "--best", "--retrain", "1",
         "--data-dir", str(folder), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert (tmp_path / "out" / "model.pt2").is_file()


def test_export_retrain_of_a_custom_dataset_takes_the_data_in_python(tmp_path: Path) -> None:
    data = make_data("custom", tmp_path)
    study = optuna.create_study(direction="maximize")
    space = _chain(data)
    evaluator = FullTraining(data, training=TrainingConfig(epochs=1))
    study.optimize(NASObjective(space, evaluator, objectives=("val_accuracy",)), n_trials=1)
    with pytest.raises(ValueError, match="records no source"):
        export_trial(study, study.trials[0], tmp_path / "x", retrain_epochs=1)
    result = export_trial(study, study.trials[0], tmp_path / "y", retrain_epochs=1, data=data)
    assert result.test_accuracy is not None and 0.0 <= result.test_accuracy <= 1.0


def test_augmentation_moves_pixels_not_labels_and_is_seeded(tmp_path: Path) -> None:
    cifar = load_cifar10(write_cifar_pickles(tmp_path), val_size=40)
    plain = cifar.replace(augment=None)
    for data in (cifar, make_data("image_folder", tmp_path / "f")):
        bare = data.replace(augment=None, train_transform=data.eval_transform)
        (x1, y1), (x2, y2) = (next(iter(make_loader(d, "train", seed=3))) for d in (data, bare))
        assert torch.equal(y1, y2)  # the same order and labels
        assert not torch.equal(x1, x2)  # but moved pixels
        again = next(iter(make_loader(data, "train", seed=3)))
        assert torch.equal(again[0], x1)
        other = next(iter(make_loader(data, "train", seed=4)))
        assert not torch.equal(other[1], y1)
    assert plain.augment is None


def test_per_sample_augmentation_does_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    data = make_data("image_folder", tmp_path)
    with_workers = data.replace(loader=LoaderSettings(batch_size=32, num_workers=2))
    serial = [b for b in make_loader(data.replace(loader=LoaderSettings(batch_size=32)), "train")]
    parallel = [b for b in make_loader(with_workers, "train")]
    assert len(serial) == len(parallel)
    for (xa, ya), (xb, yb) in zip(serial, parallel, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_the_in_memory_path_gives_a_dataloaders_batches_and_subsets_take_it() -> None:
    from torch.utils.data import DataLoader
    from torch.utils.data import random_split

    from optuna_nas.data import load_digits

    digits = load_digits()
    plain = DataLoader(
        digits.train, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    ours = make_loader(digits, "train", batch_size=50, seed=5)
    assert ours.in_memory
    for _ in range(2):  # two epochs: the generator advances the same way
        for (xa, ya), (xb, yb) in zip(ours, plain, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    part, rest = random_split(digits.train, [0.5, 0.5], generator=torch.Generator().manual_seed(0))
    split = DataSplits(train=part, val=rest)
    assert split.num_classes == 10 and make_loader(split, "train").in_memory


def test_missing_folders_name_the_folder_and_the_way_to_the_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no CIFAR10 in .*nothing is downloaded"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no image folder at"):
        load_image_folder(tmp_path / "nowhere", image_size=8)


def test_a_tensor_dataset_with_more_than_two_tensors_takes_the_checked_path() -> None:
    x = torch.randn(20, 1, 4, 4)
    y = torch.arange(20) % 2
    with pytest.raises(ValueError, match=r"split 'train', index 0: an item must be an \(image"):
        DataSplits(train=TensorDataset(x, y, y), val=TensorDataset(x, y), num_classes=2)


def test_run_study_on_an_image_folder_resumes(tmp_path: Path) -> None:
    data = make_data("image_folder", tmp_path / "d")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    for n in (2, 3):
        study = optuna.create_study(
            storage=storage, study_name="f", direction="maximize", load_if_exists=True
        )
        objective = NASObjective(
            _chain(data),
            FullTraining(data, training=TrainingConfig(epochs=1)),
            objectives=("val_accuracy",),
        )
        run_study(study, objective, n_trials=n)
    assert len(study.trials) == 3


def test_the_library_imports_and_loads_data_without_torchvision(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torchvision'] = None\n"  # as if it were not installed
        "import optuna_nas, optuna_nas.data, optuna_nas.objective\n"
        "from optuna_nas.data import load_digits, load_image_folder\n"
        "assert load_digits().num_classes == 10\n"
        "try:\n"
        f"    load_image_folder({str(tmp_path)!r}, image_size=8)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install 'optuna-nas[vision]'" in done.stdout
