"""Hardware constraints before training, Optuna's set_constraint, and the latency table."""

from __future__ import annotations

from collections.abc import Iterator
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_nas.constraints import Constraints
from optuna_nas.constraints import LatencyTable
from optuna_nas.constraints import Violation
from optuna_nas.constraints import node_key
from optuna_nas.evaluation import kendall_tau
from optuna_nas.metrics import count_flops
from optuna_nas.metrics import count_params
from optuna_nas.metrics import measure_latency
from optuna_nas.nn import build_model
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import spec_from_layers


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net(width: int, depth: int = 2) -> ArchitectureSpec:
    layers: list[tuple[str, str, dict[str, Any], list[str]]] = []
    prev = "input"
    for i in range(depth):
        layers.append((f"c{i}", "conv", {"channels": width, "kernel": 3}, [prev]))
        prev = f"c{i}"
    layers += [("gap", "global_pool", {}, [prev]), ("fc", "linear", {"features": 10}, ["gap"])]
    return spec_from_layers(layers, input_shape=(1, 8, 8), num_outputs=10)


def test_check_before_training_reports_each_violation() -> None:
    spec = _net(32, depth=3)
    params, flops = count_params(spec), count_flops(spec)
    constraints = Constraints(
        max_params=params - 1, max_flops=flops, max_layers=3, max_peak_memory_bytes=1000
    )
    found = {v.name: v for v in constraints.check_before_training(spec)}
    assert set(found) == {"params", "layers", "peak_memory_bytes"}  # flops == limit is fine
    assert found["params"] == Violation("params", float(params), float(params - 1))
    assert found["layers"].value == 4  # three convs and the classifier
    assert found["peak_memory_bytes"].value > 1000
    assert f"params must be <= {params - 1}" in found["params"].message
    assert Constraints(max_params=params).check_before_training(spec) == []


def test_constraint_values_are_relative_and_feasible_at_or_below_zero() -> None:
    spec = _net(16)
    params = count_params(spec)
    constraints = Constraints(max_params=2 * params, max_layers=2, min_accuracy=0.8)
    values = constraints.constraint_values(spec, accuracy=0.6)
    assert values == {
        "params": pytest.approx(-0.5),
        "layers": 0.5,
        "accuracy": pytest.approx(0.25),
    }
    assert "accuracy" not in constraints.constraint_values(spec)
    assert constraints.names == ("params", "layers", "accuracy")


def test_latency_is_measured_on_cpu_and_needs_a_table_elsewhere() -> None:
    spec = _net(16)
    measured = Constraints(max_latency_ms=1e6).measure(spec)["latency_ms"]
    assert 0 < measured < 1e3
    with pytest.raises(ValueError, match=r"not at hand.*latency_table"):
        Constraints(max_latency_ms=1.0, latency_device="pixel4")
    # A stand-in for a table measured on a phone: entries measured here, labelled "pixel4".
    cpu_table = LatencyTable(device="cpu", batch_size=1)
    cpu_table.measure([spec], repeats=3)
    phone = LatencyTable(device="pixel4", batch_size=1, entries=cpu_table.entries)
    constraints = Constraints(max_latency_ms=1e-9, latency_device="pixel4", latency_table=phone)
    (violation,) = constraints.check_before_training(spec)
    assert violation.name == "latency_ms" and violation.value == phone.predict(spec)
    with pytest.raises(ValueError, match="measured on device 'pixel4'"):
        Constraints(max_latency_ms=1.0, latency_device="cpu", latency_table=phone)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_params": 0}, "max_params"),
        ({"max_flops": 1.5}, "max_flops"),
        ({"max_layers": True}, "max_layers"),
        ({"max_latency_ms": -1.0}, "max_latency_ms"),
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"latency_batch_size": 0}, "latency_batch_size"),
    ],
)
def test_constraints_reject_bad_limits(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Constraints(**kwargs)


def _constrained_objective(space: ChainSpace, constraints: Constraints, trained: list[int]) -> Any:
    """What NASObjective does with constraints: record them, skip training when infeasible."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        params = float(count_params(spec))
        if constraints.record(trial, spec):
            return 0.0, params  # infeasible: recorded, never trained
        trained.append(trial.number)
        accuracy = 1.0 - 1.0 / math.log(params)  # stands in for training: bigger is better
        constraints.record_accuracy(trial, accuracy)
        return accuracy, params

    return objective


@pytest.mark.parametrize(("sampler_name", "n_trials"), [("tpe", 16), ("nsga2", 16), ("gp", 8)])
def test_infeasible_trials_train_nothing_and_never_reach_the_pareto_front(
    sampler_name: str, n_trials: int, tmp_path: Path
) -> None:
    space = ChainSpace(input_shape=(1, 8, 8), num_outputs=10, max_depth=3, widths=(8, 64))
    constraints = Constraints(max_params=6000, min_accuracy=0.5)
    samplers: dict[str, optuna.samplers.BaseSampler] = {
        "tpe": optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        "nsga2": optuna.samplers.NSGAIISampler(seed=0, population_size=6),
        "gp": optuna.samplers.GPSampler(seed=0, n_startup_trials=4),
    }
    sampler = samplers[sampler_name]
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    study = optuna.create_study(
        storage=storage, directions=["maximize", "minimize"], sampler=sampler
    )
    trained: list[int] = []
    study.optimize(_constrained_objective(space, constraints, trained), n_trials=n_trials)

    again = optuna.load_study(study_name=study.study_name, storage=storage)
    trials = again.get_trials(states=(TrialState.COMPLETE,))
    infeasible = [t for t in trials if any(v > 0 for v in t.constraints.values())]
    assert infeasible and len(infeasible) < len(trials)
    for t in trials:
        assert set(t.constraints) == {"params", "accuracy"}  # same names on every trial
    for t in infeasible:
        assert t.number not in trained
        assert t.user_attrs["constraint_violations"][0].startswith("params must be <= 6000")
        assert t.user_attrs["constraint_metrics"]["params"] > 6000
    front = again.best_trials
    assert front and all(t.number in trained for t in front)
    assert all(all(v <= 0 for v in t.constraints.values()) for t in front)


def test_infeasible_trials_are_kept_off_a_front_they_would_dominate(tmp_path: Path) -> None:
    # An infeasible trial with the best value in both objectives still stays off best_trials.
    constraints = Constraints(max_params=1000)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'd.db'}", directions=["maximize", "minimize"]
    )
    small, big = _net(4, depth=1), _net(64, depth=3)
    for spec, values in ((small, (0.5, 100.0)), (big, (0.99, 1.0))):
        trial = study.ask()
        constraints.record(trial, spec)
        study.tell(trial, values)
    (front,) = study.best_trials
    assert front.values == [0.5, 100.0]


def test_latency_table_sums_measured_ops_and_round_trips(tmp_path: Path) -> None:
    space = CellSpace(input_shape=(1, 8, 8), num_outputs=10, init_channels=8, num_stages=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs = []
    for _ in range(4):
        trial = study.ask()
        specs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    table = LatencyTable(device="cpu", batch_size=1)
    added = table.measure(specs[:2], warmup=2, repeats=5)
    assert added == len(table) > 0
    assert table.measure(specs[:2]) == 0  # every key measured once
    spec = specs[0]
    expected = sum(table.entries[node_key(spec, n)] for n in spec.topological_order[1:])
    assert table.predict(spec) == pytest.approx(expected)
    missing = [s for s in specs[2:] if table.missing(s)]
    if missing:
        with pytest.raises(KeyError, match="no entry"):
            table.predict(missing[0])
    table.save(tmp_path / "lut.json")
    loaded = LatencyTable.load(tmp_path / "lut.json")
    assert loaded.entries == table.entries and loaded.device == "cpu"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a latency table"):
        LatencyTable.load(tmp_path / "bad.json")


def test_latency_table_prediction_error_is_reasonable() -> None:
    # Networks from 1 to 5 layers of 8 to 96 channels: latency spans more than 10x, so the
    # ranking is robust to timing noise on a shared machine.
    specs = [_net(w, d) for w, d in ((8, 1), (16, 2), (32, 3), (64, 4), (96, 5))]
    table = LatencyTable(device="cpu", batch_size=1)
    table.measure(specs, warmup=3, repeats=15)
    predicted, measured = [], []
    for spec in specs:
        predicted.append(table.predict(spec))
        model = build_model(spec)
        measured.append(measure_latency(model, input_shape=spec.input_shape, repeats=15).median_ms)
    errors = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    mape = sum(errors) / len(errors)
    assert mape < 0.5, (predicted, measured)
    assert kendall_tau(predicted, measured) >= 0.6


def test_recorded_metrics_and_violations_read_back_from_sqlite(tmp_path: Path) -> None:
    # record() writes its two user attrs in one transaction; record_accuracy() appends to the
    # violations the trial already sees, and a fresh process reads the same.
    spec = _net(8)
    flops = float(count_flops(spec))
    constraints = Constraints(max_flops=int(flops), min_accuracy=0.9)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(storage=url, directions=["maximize", "minimize"])
    trial = study.ask()
    assert constraints.record(trial, spec) == []  # feasible before training (at the limit)
    assert trial.user_attrs["constraint_metrics"] == {"flops": flops}
    assert trial.user_attrs["constraint_violations"] == []
    violation = constraints.record_accuracy(trial, 0.45)
    assert violation == Violation("accuracy", 0.45, 0.9)
    study.tell(trial, (0.45, 1.0))
    (stored,) = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored.user_attrs["constraint_metrics"] == {"flops": flops}
    assert stored.user_attrs["constraint_violations"] == [violation.message]
    assert stored.constraints == {"flops": 0.0, "accuracy": pytest.approx(0.5)}
