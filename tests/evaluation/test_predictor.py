"""The params encoder, the MLP-ensemble predictor, rank correlations and PredictorEvaluator."""

from __future__ import annotations

from collections.abc import Iterator
import csv
import importlib.util
from pathlib import Path
import sys
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
import pytest
from scipy import stats
import torch

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import MLPEnsemble
from optuna_nas.evaluation import ParamEncoder
from optuna_nas.evaluation import PredictorEvaluator
from optuna_nas.evaluation import ProxyTraining
from optuna_nas.evaluation import Report
from optuna_nas.evaluation import Supernet
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import kendall_tau
from optuna_nas.evaluation import spearman_rho
from optuna_nas.samplers import DartsSearchConfig
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spaces import params_to_nb201_arch
from optuna_nas.spec import ArchitectureSpec
from tests.nasbench import nasbench_csv


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


def test_encoder_one_hot_scaled_and_absent() -> None:
    encoder = ParamEncoder(
        {
            "op": CategoricalDistribution(["a", "b", "c"]),
            "depth": IntDistribution(1, 5),
            "lr": FloatDistribution(1e-3, 1e-1, log=True),
        }
    )
    assert encoder.dim == 3 + 2 + 2
    # Names are sorted: depth, lr, op.
    v = encoder.encode({"op": "b", "depth": 3, "lr": 1e-2, "unrelated": 7})
    np.testing.assert_allclose(v, [1, 0.5, 1, 0.5, 0, 1, 0])
    np.testing.assert_allclose(encoder.encode({"op": "c"}), [0, 0, 0, 0, 0, 0, 1])
    assert encoder.encode_many([]).shape == (0, 7)
    with pytest.raises(ValueError, match="'op' must be one of"):
        encoder.encode({"op": "d"})
    with pytest.raises(ValueError, match="'depth' must be in"):
        encoder.encode({"depth": 9})
    with pytest.raises(ValueError, match="distributions"):
        ParamEncoder({})


def test_rank_correlations_match_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 6, 25).astype(float)  # with ties
        y = x + rng.normal(0, 2, 25)
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
        assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        spearman_rho([1, 2], [1, 2, 3])


def _cell_space() -> CellSpace:
    return CellSpace(input_shape=(1, 8, 8), num_outputs=10, init_channels=8, num_stages=2)


def _sample(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        space.suggest(trial)
        out.append(dict(trial.params))
    return out


def _score(params: dict[str, Any]) -> float:
    """A known, nonlinear function of a cell: convs help, 'none' edges on the path hurt."""
    weights = {"nor_conv_3x3": 1.0, "nor_conv_1x1": 0.6, "skip_connect": 0.3, "avg_pool_3x3": 0.1}
    s = sum(weights.get(v, 0.0) for v in params.values())
    return s - 1.5 * (params["cell/edge_3_2/op"] == "none") * (
        params["cell/edge_3_0/op"] == "none"
    )


def test_predictor_learns_a_known_function_and_validates() -> None:
    space = _cell_space()
    params = _sample(space, 80, seed=0)
    targets = [_score(p) for p in params]
    predictor = MLPEnsemble(space.distributions(), steps=200, hidden=32, seed=0)
    predictor.fit(params[:60], targets[:60])
    mean, std = predictor.predict(params[60:])
    assert mean.shape == std.shape == (20,)
    assert (std > 0).all()  # members disagree somewhere: an uncertainty, not a constant
    assert kendall_tau(mean, targets[60:]) > 0.6
    best = predictor.rank(params[60:])[0]
    assert targets[60 + best] >= np.quantile(targets[60:], 0.75)
    quality = predictor.validate(params, targets, folds=4)
    assert quality.kendall_tau > 0.6 and quality.spearman_rho > 0.75
    assert (quality.n, quality.folds) == (80, 4)
    # Constant-free check that validation is held out: shuffled targets give no correlation.
    shuffled = list(np.random.default_rng(1).permutation(targets))
    assert predictor.validate(params, shuffled, folds=4).kendall_tau < 0.3


def test_predictor_rejects_bad_input() -> None:
    space = _cell_space()
    with pytest.raises(ValueError, match="n_members"):
        MLPEnsemble(space.distributions(), n_members=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPEnsemble(space.distributions()).predict([{}])
    with pytest.raises(ValueError, match="targets"):
        MLPEnsemble(space.distributions()).fit([{}, {}], [1.0, float("nan")])
    with pytest.raises(ValueError, match="folds"):
        MLPEnsemble(space.distributions()).validate([{}] * 4, [1.0, 2.0, 3.0, 4.0], folds=3)


class _Counting(Evaluator):
    def __init__(self, inner: Evaluator) -> None:
        self.inner = inner
        self.data = inner.data
        self.calls = 0

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        self.calls += 1
        return self.inner.evaluate(spec, report=report, seed=seed)


class _Known(Evaluator):
    """A fallback that 'trains' by reading a known score of the params it is passed."""

    supports_params = True

    def __init__(self, score: Any) -> None:
        self.score = score
        self.trained: list[dict[str, Any]] = []

    def evaluate(
        self,
        spec: ArchitectureSpec,
        *,
        report: Report | None,
        seed: int,
        params: dict[str, Any] | None = None,
    ) -> Evaluation:
        assert params is not None
        self.trained.append(params)
        return Evaluation(values={"val_accuracy": float(self.score(params))})


def _objective(space: SearchSpace, evaluator: PredictorEvaluator) -> Any:
    """What NASObjective does around an evaluator: spec on the trial, attach, evaluate with
    the trial's params (the evaluator supports_params), record the metrics."""

    def objective(trial: optuna.Trial) -> float:
        spec = space.suggest(trial)
        evaluator.attach(trial.study)
        result = evaluator.evaluate(spec, report=None, seed=trial.number, params=trial.params)
        for key, value in result.metrics.items():
            trial.set_user_attr(key, value)
        return result.values["predicted_accuracy"]

    return objective


def test_predictor_evaluator_trains_warmup_then_predicts(
    digits: DataSplits, tmp_path: Path
) -> None:
    space = ChainSpace(input_shape=digits.input_shape, num_outputs=10, max_depth=3, widths=(8, 16))
    proxy = ProxyTraining(digits, training=TrainingConfig(epochs=1), data_fraction=0.2)
    counting = _Counting(proxy)
    # train_quantile=0: only a candidate predicted at least as well as everything seen trains.
    evaluator = PredictorEvaluator(
        counting, space=space, warmup=4, train_quantile=0.0, predictor={"steps": 100}
    )
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(
        storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(_objective(space, evaluator), n_trials=8)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs.get("trained_for") for t in trials[:4]] == ["warmup"] * 4
    for t in trials[:4]:
        assert (
            t.value == t.user_attrs["predictor_target"] == t.user_attrs["val_accuracy_curve"][-1]
        )
    trained = [t for t in trials if t.user_attrs["scored_by"] == "training"]
    assert counting.calls == len(trained)
    for t in trials[4:]:
        a = t.user_attrs
        assert a["predictor_train_size"] == len([u for u in trained if u.number < t.number])
        assert a["predicted_std"] >= 0
        # The rule, as recorded: trained iff the acquisition reaches the threshold.
        assert (a["scored_by"] == "training") == (
            a["predictor_acquisition"] >= a["predictor_threshold"]
        )
        if a["scored_by"] == "predictor":
            assert "predictor_target" not in a and t.value == a["predicted_mean"]
    # A new process (a fresh evaluator on the stored study) fits the same training set: the
    # training set lives in the study, not in the evaluator.
    fresh = PredictorEvaluator(_Counting(proxy), space=space, warmup=4, predictor={"steps": 100})
    again = optuna.load_study(
        study_name=study.study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    again.optimize(_objective(space, fresh), n_trials=1)
    assert again.trials[-1].user_attrs["predictor_train_size"] == len(trained)
    # The new trial may itself have been trained; quality is then measured on one more result.
    trained_now = [
        t
        for t in again.get_trials(states=(TrialState.COMPLETE,))
        if t.user_attrs["scored_by"] == "training"
    ]
    assert len(trained_now) - len(trained) in (0, 1)
    assert fresh.quality(folds=2).n == len(trained_now)


def test_predictor_evaluator_keeps_training_the_acquisitions_best() -> None:
    """After warm-up it still trains, refits every ``refit_every`` trained results, and what it
    trains is better than what it only predicts (a known score, no networks)."""
    space = _cell_space()
    known = _Known(_score)
    evaluator = PredictorEvaluator(
        known,
        space=space,
        warmup=10,
        refit_every=3,
        train_quantile=0.25,
        predictor={"steps": 150, "seed": 0},
    )
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    study.optimize(_objective(space, evaluator), n_trials=70)
    trials = study.trials
    after = trials[10:]
    by_acquisition = [t for t in after if t.user_attrs.get("trained_for") == "acquisition"]
    predicted = [t for t in after if t.user_attrs["scored_by"] == "predictor"]
    assert len(by_acquisition) >= 3 and len(predicted) >= 30
    assert len(known.trained) == 10 + len(by_acquisition)
    true = {t.number: _score(t.params) for t in trials}
    assert np.mean([true[t.number] for t in by_acquisition]) > np.mean(
        [true[t.number] for t in predicted]
    )
    # Fitted on warmup + 3 * floor((n - warmup) / 3) trained results: it grows, in steps of 3.
    sizes = [t.user_attrs["predictor_train_size"] for t in after]
    assert sizes == sorted(sizes) and sizes[-1] > 10
    assert all((s - 10) % 3 == 0 for s in sizes)
    for t in after:
        n = sum(1 for u in trials if u.number < t.number and u.user_attrs.get("trained_for"))
        assert t.user_attrs["predictor_train_size"] == 10 + 3 * ((n - 10) // 3)


def test_predictor_evaluator_on_nasbench201_trains_better_archs_than_it_predicts() -> None:
    """Real data: NB201 CIFAR-10 validation accuracies from the table, random proposals."""
    with nasbench_csv().open() as f:
        table = {r["arch"]: float(r["valid_acc_200ep"]) for r in csv.DictReader(f)}
    space = CellSpace.nasbench201()
    known = _Known(lambda p: table[params_to_nb201_arch(p)])
    evaluator = PredictorEvaluator(known, space=space, warmup=20, predictor={"steps": 200})
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(_objective(space, evaluator), n_trials=100)
    after = study.trials[20:]
    acc = {t.number: table[params_to_nb201_arch(t.params)] for t in study.trials}
    trained = [acc[t.number] for t in after if t.user_attrs["scored_by"] == "training"]
    predicted = [acc[t.number] for t in after if t.user_attrs["scored_by"] == "predictor"]
    assert len(trained) >= 3
    # Random proposals, so what it trains is chosen only by the acquisition.
    assert np.median(trained) > np.quantile(predicted, 0.75)


def test_predictor_evaluator_needs_params_and_the_study(digits: DataSplits) -> None:
    space = ChainSpace(
        input_shape=digits.input_shape, num_outputs=10, max_depth=2, stride_layers=(2,)
    )
    evaluator = PredictorEvaluator(_Known(lambda p: 0.5), space=space, warmup=2)
    assert PredictorEvaluator.supports_params
    params = _sample(space, 1, seed=0)[0]
    spec = space.decode(params)
    with pytest.raises(RuntimeError, match="attach"):
        evaluator.evaluate(spec, report=None, seed=0, params=params)
    evaluator.attach(optuna.create_study(direction="maximize"))
    with pytest.raises(ValueError, match="params="):
        evaluator.evaluate(spec, report=None, seed=0)
    with pytest.raises(ValueError, match="warmup"):
        PredictorEvaluator(evaluator, space=space, warmup=1)
    with pytest.raises(ValueError, match="refit_every"):
        PredictorEvaluator(evaluator, space=space, refit_every=0)
    with pytest.raises(ValueError, match="exploration"):
        PredictorEvaluator(evaluator, space=space, exploration=-1.0)
    with pytest.raises(ValueError, match="train_quantile"):
        PredictorEvaluator(evaluator, space=space, train_quantile=1.5)
    with pytest.raises(ValueError, match="target_transform"):
        PredictorEvaluator(evaluator, space=space, predictor={"target_transform": "log"})


def test_experimental_features_warn_as_optuna_does(digits: DataSplits) -> None:
    space = _cell_space()
    fallback = ProxyTraining(digits, training=TrainingConfig(epochs=1))
    with pytest.warns(optuna.exceptions.ExperimentalWarning, match="PredictorEvaluator"):
        PredictorEvaluator(fallback, space=space)
    with pytest.warns(optuna.exceptions.ExperimentalWarning, match="Weight sharing"):
        Supernet(space)
    with pytest.warns(optuna.exceptions.ExperimentalWarning, match="DARTS"):
        DartsSearchConfig()


def test_predictor_benchmark_smoke_beats_chance_on_nasbench201() -> None:
    """benchmarks/predictor.py --smoke: one seed, 50 training archs, 300 held out, real data."""
    csv_path = nasbench_csv()
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "_predictor_benchmark", root / "benchmarks/predictor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    results_md = (root / "benchmarks" / "RESULTS.md").read_text()
    try:
        spec.loader.exec_module(module)
        result = module.main(["--smoke", "--csv", str(csv_path)])
        # The table is made from the numbers: a changed result gives a changed table.
        table = module.markdown(result)
        result["summary"]["mlp_ensemble"]["50"]["spearman"] += 0.1
        assert module.markdown(result) != table
    finally:
        del sys.modules[spec.name]
    assert (root / "benchmarks" / "RESULTS.md").read_text() == results_md  # smoke writes nothing
    ensemble = next(r for r in result["rows"] if r["predictor"] == "mlp_ensemble")
    assert ensemble["size"] == 50 and ensemble["spearman"] > 0.3 and ensemble["kendall"] > 0.2
    for row in result["rows"]:
        assert row["spearman"] > 0.3, row  # every predictor beats a constant (no correlation)
