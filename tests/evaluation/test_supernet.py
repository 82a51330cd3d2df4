"""Weight sharing (SPOS): a real supernet on digits, stored in a real SQLite study's artifacts."""

from __future__ import annotations

from collections.abc import Iterator
import itertools
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest
import torch
from torch import nn

from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.evaluation import Supernet
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.evaluation import recalibrate_batchnorm
from optuna_nas.evaluation._supernet import path_depth
from optuna_nas.evaluation._supernet import sample_fair
from optuna_nas.evaluation._supernet import sample_uniform
from optuna_nas.evaluation._supernet import split_key
from optuna_nas.evaluation._supernet_evaluator import ATTR_PREFIX
from optuna_nas.nn import module_name
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_digits(seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks on a shared machine: one torch thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cell(data: DataSplits) -> CellSpace:
    return CellSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        init_channels=8,
        cells_per_stage=1,
    )


def small_chain(data: DataSplits) -> ChainSpace:
    return ChainSpace(
        input_shape=data.input_shape, num_outputs=data.num_classes, max_depth=3, widths=(8, 16)
    )


def evaluator(
    data: DataSplits, space: SearchSpace, root: Path, *, epochs: int = 2, **kwargs: Any
) -> WeightSharingEvaluator:
    store = optuna.artifacts.FileSystemArtifactStore(str(root / "artifacts"))
    return WeightSharingEvaluator(
        data,
        space=space,
        artifact_store=store,
        training=TrainingConfig(epochs=epochs),
        seed=0,
        poll_interval_s=0.05,
        **kwargs,
    )


_RESTART = """
import json, optuna
from optuna_nas.data import load_digits
from optuna_nas.evaluation import TrainingConfig, WeightSharingEvaluator
from optuna_nas.spaces import ChainSpace
data = load_digits(seed=0)
space = ChainSpace(input_shape=data.input_shape, num_outputs=10, max_depth=3, widths=(8, 16))
study = optuna.load_study(study_name="ws", storage={storage!r})
store = optuna.artifacts.FileSystemArtifactStore({root!r} + "/artifacts")
ev = WeightSharingEvaluator(data, space=space, artifact_store=store,
                            training=TrainingConfig(epochs=2), seed=0, poll_interval_s=0.05)
ev.attach(study)
spec = space.decode(study.trials[0].params)
score = ev.evaluate(spec, report=None, seed=7).values["val_accuracy"]
out = {{"steps": ev.training_steps_run, "artifact_id": ev.artifact_id, "score": score}}
print(json.dumps(out))
"""


def test_supernet_trains_once_and_a_restarted_process_reuses_it(
    digits: DataSplits, tmp_path: Path
) -> None:
    (tmp_path / "artifacts").mkdir()
    space = small_chain(digits)
    ev = evaluator(digits, space, tmp_path)
    objective = NASObjective(space, ev, objectives=("val_accuracy", "params"))
    storage = f"sqlite:///{tmp_path / 'ws.db'}"
    study = optuna.create_study(
        storage=storage,
        study_name="ws",
        directions=objective.directions,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(objective, n_trials=3)

    steps = ev.training_steps_run
    assert steps == 2 * 17  # 2 epochs of 17 batches, trained once for all 3 trials
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert {t.user_attrs["supernet_artifact_id"] for t in study.trials} == {ev.artifact_id}
    recorded = study._storage.get_study_system_attrs(study._study_id)[ATTR_PREFIX + ev.fingerprint]
    assert recorded["artifact_id"] == ev.artifact_id and recorded["steps"] == steps
    assert len(recorded["epoch_losses"]) == 2 and all(v > 0 for v in recorded["epoch_losses"])
    score = ev.evaluate(space.decode(study.trials[0].params), report=None, seed=7).values[
        "val_accuracy"
    ]

    code = _RESTART.format(storage=storage, root=str(tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    again = json.loads(out.stdout.strip().splitlines()[-1])
    assert again["steps"] == 0
    assert again["artifact_id"] == ev.artifact_id
    assert again["score"] == pytest.approx(score, abs=2 / len(digits.val))


def test_concurrent_workers_train_the_supernet_once(digits: DataSplits, tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    space = small_chain(digits)
    storage = f"sqlite:///{tmp_path / 'ws.db'}"
    optuna.create_study(storage=storage, study_name="ws", directions=["maximize", "minimize"])
    workers = [evaluator(digits, space, tmp_path) for _ in range(2)]
    errors: list[BaseException] = []

    def work(ev: WeightSharingEvaluator) -> None:
        try:
            ev.attach(optuna.load_study(study_name="ws", storage=storage))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(ev,)) for ev in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sorted(ev.training_steps_run for ev in workers) == [0, 34]
    assert workers[0].artifact_id == workers[1].artifact_id is not None


def test_scores_inherit_the_supernet_weights_and_beat_untrained_weights(
    digits: DataSplits, tmp_path: Path
) -> None:
    space = small_cell(digits)
    trained = Supernet(space, seed=0)
    loader = torch.utils.data.DataLoader(
        digits.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert trained.train(loader, config=TrainingConfig(epochs=3)) == 3 * 17
    assert len(trained.epoch_losses) == 3
    untrained = Supernet(space, seed=0)
    rng = np.random.default_rng(3)
    specs = [space.decode(sample_uniform(space.distributions(), rng)) for _ in range(4)]
    val = torch.utils.data.DataLoader(digits.val, batch_size=128)
    calibration = list(itertools.islice(loader, 4))
    scores = {}
    for name, supernet in (("trained", trained), ("untrained", untrained)):
        accs = []
        for i, spec in enumerate(specs):
            model, fraction = supernet.inherit(spec, seed=i)
            assert fraction == (1.0 if name == "trained" else 0.0)
            recalibrate_batchnorm(model, calibration, device=torch.device("cpu"))
            accs.append(_accuracy(model, val))
        scores[name] = float(np.mean(accs))
    assert scores["trained"] > scores["untrained"] + 0.15, scores

    # The inherited weights are the supernet's, edge by edge.
    spec = next(s for s in specs if any(n.op == "conv" and "edge" in n.id for n in s.nodes))
    model, _ = trained.inherit(spec, seed=0)
    node = next(n for n in spec.nodes if n.op == "conv" and "edge" in n.id)
    weight = model.get_parameter(f"{module_name(node.id)}.conv.weight")
    kernel = f'"kernel": {node.config["kernel"]}'
    shared = [
        t
        for k, t in trained.tensors.items()
        if k.startswith(f"{node.id}|conv|") and kernel in k and k.endswith("conv.weight")
    ]
    assert len(shared) == 1 and torch.equal(weight, shared[0].detach())


def test_chain_widths_share_leading_slices(digits: DataSplits) -> None:
    space = small_chain(digits)
    supernet = Supernet(space, seed=0)
    loader = torch.utils.data.DataLoader(digits.train, batch_size=64)
    supernet.train(loader, config=TrainingConfig(epochs=1))
    base = {"depth": 2, "activation": "relu", "layer1/op": "conv_3x3", "layer1/skip": "none"}
    base |= {"layer2/op": "identity", "layer2/skip": "none"}
    narrow = space.decode({**base, "layer1/width": 8})
    wide = space.decode({**base, "layer1/width": 16})
    w8 = supernet.inherit(narrow, seed=0)[0].get_parameter("layer1.conv.weight")
    w16 = supernet.inherit(wide, seed=1)[0].get_parameter("layer1.conv.weight")
    assert w8.shape[0] == 8 and w16.shape[0] == 16
    assert torch.equal(w8, w16[:8])


def test_an_inherited_chain_model_computes_what_the_supernet_trained(digits: DataSplits) -> None:
    """Inheriting plus recalibration reproduces the supernet's own forward pass of a path.

    Paths with dense concatenations, residual projections and mixed widths: the standalone
    model, recalibrated on one batch, gives (up to batch norm's unbiased-variance factor) the
    logits the supernet computes for that path in training mode on the same batch.
    """
    space = small_chain(digits)
    supernet = Supernet(space, seed=0)
    loader = torch.utils.data.DataLoader(digits.train, batch_size=64)
    supernet.train(loader, config=TrainingConfig(epochs=1))
    x, y = next(iter(torch.utils.data.DataLoader(digits.val, batch_size=128)))
    rng = np.random.default_rng(5)
    specs = [space.decode(sample_uniform(space.distributions(), rng)) for _ in range(6)]
    assert any(n.op == "concat" for s in specs for n in s.nodes)
    for i, spec in enumerate(specs):
        path = supernet._path(spec)
        supernet._ensure(spec, path, None)  # tensors a path not trained yet needs
        path.model.train()
        with torch.no_grad():
            expected = torch.func.functional_call(path.model, supernet._path_tensors(path), (x,))
        model, fraction = supernet.inherit(spec, seed=i)
        assert fraction == 1.0
        recalibrate_batchnorm(model, [(x, y)], device=torch.device("cpu"))
        with torch.no_grad():
            got = model(x)
        torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)


def test_recalibration_is_the_cumulative_average_over_batches() -> None:
    bn = nn.BatchNorm2d(2)
    model = nn.Sequential(bn)
    bn.reset_running_stats()
    assert bn.running_mean is not None
    torch.nn.init.constant_(bn.running_mean, 5.0)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 2, 3, 3, generator=gen) + i, torch.zeros(8)) for i in range(3)]
    assert recalibrate_batchnorm(model, batches, device=torch.device("cpu")) == 3
    expected = torch.stack([x.mean((0, 2, 3)) for x, _ in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected)
    assert not model.training and bn.momentum is None


def test_fair_sampling_uses_every_choice_equally_often() -> None:
    dists = {
        "op": optuna.distributions.CategoricalDistribution(["a", "b", "c", "d"]),
        "skip": optuna.distributions.CategoricalDistribution(["x", "y"]),
        "width": optuna.distributions.IntDistribution(8, 24, step=8),
        "lr": optuna.distributions.FloatDistribution(0.1, 1.0),
    }
    rng = np.random.default_rng(0)
    for _ in range(5):
        paths = sample_fair(dists, rng)
        assert len(paths) == 4  # the most choices: "op"
        assert sorted(p["op"] for p in paths) == ["a", "b", "c", "d"]  # each exactly once
        assert sorted(p["skip"] for p in paths) == ["x", "x", "y", "y"]
        widths = [p["width"] for p in paths]
        assert set(widths) <= {8, 16, 24} and max(widths.count(w) for w in widths) <= 2
        assert all(0.1 <= p["lr"] <= 1.0 for p in paths)


def test_fair_supernet_trains_every_op_of_a_layer_in_each_step(digits: DataSplits) -> None:
    space = small_chain(digits)
    batch = [next(iter(torch.utils.data.DataLoader(digits.train, batch_size=64)))]
    fair = Supernet(space, seed=0)
    assert fair.train(batch, config=TrainingConfig(epochs=1), fair=True) == 1
    layer1_ops = {k.split("|")[1] for k in fair.tensors if k.startswith("layer1|")}
    assert layer1_ops == {"conv", "sep_conv"}  # every op with weights, after one step
    uniform = Supernet(space, seed=0)
    uniform.train(batch, config=TrainingConfig(epochs=1))
    assert len({k.split("|")[1] for k in uniform.tensors if k.startswith("layer1|")}) <= 1
    assert len(fair.epoch_losses) == 1 and 0 < fair.epoch_losses[0] < 5

    # With `accept`, only the accepted fair paths train (a few-shot sub-supernet's part).
    convs = Supernet(space, seed=0)
    convs.train(
        batch,
        config=TrainingConfig(epochs=1),
        fair=True,
        accept=lambda spec: split_key(spec, "op:layer1").startswith("conv|"),
    )
    assert {k.split("|")[1] for k in convs.tensors if k.startswith("layer1|")} == {"conv"}
    with pytest.raises(ValueError, match="no path accepted"):
        Supernet(space, seed=0).train(
            batch, config=TrainingConfig(epochs=1), accept=lambda _: False
        )


def test_path_depth_counts_computing_nodes_on_the_longest_path(digits: DataSplits) -> None:
    space = small_chain(digits)
    base = {"activation": "relu", "layer1/width": 8, "layer2/width": 8, "layer3/width": 8}
    skips = {f"layer{i}/skip": "none" for i in (1, 2, 3)}
    convs = {f"layer{i}/op": "conv_3x3" for i in (1, 2, 3)}
    # stem, the layers, global pooling, classifier
    deep = space.decode({**base, **skips, **convs, "depth": 3, "layer3/stride": 1})
    assert path_depth(deep) == 6 and split_key(deep, "depth") == "6"
    shallow = space.decode({**base, **skips, **convs, "depth": 2})
    assert path_depth(shallow) == 5
    # an identity layer and a residual skip do not lengthen the path
    with_identity = {**base, **skips, **convs, "depth": 3, "layer2/op": "identity"}
    assert path_depth(space.decode({**with_identity, "layer3/stride": 1})) == 5
    assert split_key(deep, "op:layer1") != split_key(
        space.decode(
            {**base, **skips, **convs, "depth": 3, "layer3/stride": 1, "layer1/op": "conv_5x5"}
        ),
        "op:layer1",
    )
    assert split_key(shallow, "op:layer3") == "absent"
    # a cell whose every edge is `none` (a `zero` op) passes nothing on: no path reaches the
    # output
    cell = small_cell(digits)
    params = sample_uniform(cell.distributions(), np.random.default_rng(0))
    all_zero = {
        k: "none" if "none" in getattr(d, "choices", ()) else params[k]
        for k, d in cell.distributions().items()
    }
    assert path_depth(cell.decode(params)) > 0
    assert path_depth(cell.decode(all_zero)) == 0


def test_few_shot_sub_supernets_train_only_their_part_and_are_stored_once(
    digits: DataSplits, tmp_path: Path
) -> None:
    (tmp_path / "artifacts").mkdir()
    space = small_chain(digits)
    storage = f"sqlite:///{tmp_path / 'ws.db'}"
    study = optuna.create_study(storage=storage, study_name="ws", direction="maximize")

    def make(**kwargs: Any) -> WeightSharingEvaluator:
        return evaluator(digits, space, tmp_path, epochs=1, **kwargs)

    one_shot = make()
    one_shot.attach(study)
    assert one_shot.training_steps_run == 17
    few = make(few_shot="op:layer1", few_shot_training=TrainingConfig(epochs=1))
    few.attach(study)
    # the one-shot supernet is reused from the store; each of the 8 parts trains 17 steps
    parts = few.few_shot_parts
    assert len(parts) == 8 and few.training_steps_run == 8 * 17
    assert few.supernet is not None and set(few.sub_supernets) == set(parts)
    recorded = study._storage.get_study_system_attrs(study._study_id)[
        ATTR_PREFIX + few.fingerprint
    ]
    assert recorded["few_shot"] == "op:layer1" and recorded["steps"] == 8 * 17
    assert set(recorded["sub_supernets"]) == set(parts)

    # A sub-supernet only trains its part: the max-pool part never moves layer 1's conv
    # weights, the conv-3x3 part does, and neither touches the one-shot supernet.
    pool = next(p for p in parts if p.startswith("max_pool"))
    conv3 = next(p for p in parts if p.startswith("conv") and '"kernel": 3' in p)
    key = next(
        k for k in few.supernet.tensors if k.startswith("layer1|conv|") and '"kernel": 3' in k
    )
    before = one_shot.supernet.tensors[key]  # type: ignore[union-attr]
    assert torch.equal(few.supernet.tensors[key], before)
    assert torch.equal(few.sub_supernets[pool].tensors[key], before)
    assert not torch.equal(few.sub_supernets[conv3].tensors[key], before)

    # Candidates are scored with their part's sub-supernet; a new evaluator downloads them all.
    params = sample_uniform(space.distributions(), np.random.default_rng(1))
    spec = space.decode({**params, "layer1/op": "conv_3x3"})
    result = few.evaluate(spec, report=None, seed=0)
    assert result.metrics["ws_sub_supernet"] == conv3
    again = make(few_shot="op:layer1", few_shot_training=TrainingConfig(epochs=1))
    again.attach(study)
    assert again.training_steps_run == 0 and again.artifact_id == few.artifact_id
    assert again.evaluate(spec, report=None, seed=0).values == result.values


def test_bad_arguments_and_missing_attach_raise_clear_errors(
    digits: DataSplits, tmp_path: Path
) -> None:
    space = small_chain(digits)
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))

    def make(**kwargs: Any) -> WeightSharingEvaluator:
        kwargs = {"space": space, **kwargs}
        return WeightSharingEvaluator(
            digits, artifact_store=store, training=TrainingConfig(epochs=1), **kwargs
        )

    with pytest.raises(ValueError, match="calibration_batches >= 1"):
        make(calibration_batches=0)
    with pytest.raises(ValueError, match="input_shape"):
        make(space=ChainSpace(input_shape=(3, 8, 8), num_outputs=10))
    with pytest.raises(ValueError, match="sampling"):
        make(sampling="greedy")
    with pytest.raises(ValueError, match="unknown few-shot split 'width'"):
        make(few_shot="width")
    with pytest.raises(ValueError, match="does not split this chain space"):
        make(few_shot="op:stem")  # the stem's op is not searched
    with pytest.raises(ValueError, match="needs `few_shot`"):
        make(few_shot_training=TrainingConfig(epochs=1))
    with pytest.raises(ValueError, match="few_shot_min_share"):
        make(few_shot="depth", few_shot_min_share=1.0)
    ev, fair = make(), make(sampling="fair")
    assert fair.fingerprint != ev.fingerprint  # a fair supernet is never mistaken for SPOS's
    with pytest.raises(RuntimeError, match="attach"):
        ev.evaluate(
            space.decode(sample_uniform(space.distributions(), np.random.default_rng(0))),
            report=None,
            seed=0,
        )


def _accuracy(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:  # type: ignore[type-arg]
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(loader.dataset)  # type: ignore[arg-type]


@pytest.mark.slow
def test_weight_sharing_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/weight_sharing.py", "--smoke"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout[out.stdout.index("{\n") :])
    for row in result["spaces"].values():
        assert -1.0 <= row["kendall_tau"] <= 1.0
        assert row["ws_seconds_per_candidate"] > 0


# ----------------------------------------------------------------------- hardware options (#13)


def _batches(data: DataSplits, n: int = 3) -> list[list[torch.Tensor]]:
    loader = torch.utils.data.DataLoader(data.train, batch_size=64)
    return [batch for batch, _ in zip(loader, range(n), strict=False)]


def test_supernet_bf16_and_channels_last_train_like_fp32(digits: DataSplits) -> None:
    space, batches = small_chain(digits), _batches(digits)
    runs = {}
    for name, config in {
        "fp32": TrainingConfig(epochs=3),
        "bf16": TrainingConfig(epochs=3, precision="bf16"),
        "channels_last": TrainingConfig(epochs=3, channels_last=True),
    }.items():
        supernet = Supernet(space, seed=0)
        assert supernet.train(batches, config=config) == 9
        runs[name] = supernet
    fp32, bf16, last = (runs[k] for k in ("fp32", "bf16", "channels_last"))
    assert bf16.epoch_losses != fp32.epoch_losses  # autocast really ran ...
    assert bf16.epoch_losses == pytest.approx(fp32.epoch_losses, abs=0.02)  # ... and agrees
    # The memory layout changes no number beyond float rounding.
    assert last.epoch_losses == pytest.approx(fp32.epoch_losses, rel=1e-4)
    for key, tensor in fp32.tensors.items():
        torch.testing.assert_close(last.tensors[key], tensor, rtol=1e-3, atol=1e-4)


def test_supernet_weight_decay_filter_spares_norm_and_bias(digits: DataSplits) -> None:
    supernet = Supernet(small_chain(digits), seed=0)
    supernet.train(_batches(digits, 1), config=TrainingConfig(epochs=1))
    config = TrainingConfig(epochs=1, decay_norm_and_bias=False)
    decay, no_decay = supernet._optimizer(config).param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == config.weight_decay
    assert all(p.ndim > 1 for p in decay["params"])
    assert no_decay["params"] and all(p.ndim <= 1 for p in no_decay["params"])
    # Tensors a later path creates join the group their shape belongs to.
    grown = Supernet(small_chain(digits), seed=0)
    grown.train(_batches(digits, 3), config=config)
    groups = grown._optimizer(config).param_groups  # a fresh one: the layout rule
    assert sum(len(g["params"]) for g in groups) == len(grown.param_keys)


def test_supernet_refuses_compile_and_settings_its_device_cannot_honour(
    digits: DataSplits, tmp_path: Path
) -> None:
    space = small_chain(digits)
    with pytest.raises(ValueError, match="every step trains another path"):
        Supernet(space, seed=0).train(
            _batches(digits, 1), config=TrainingConfig(epochs=1, compile="default")
        )
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    with pytest.raises(ValueError, match="every step trains another path"):
        WeightSharingEvaluator(
            digits,
            space=space,
            artifact_store=store,
            training=TrainingConfig(epochs=1, compile="default"),
        )
    with pytest.raises(ValueError, match=r"`precision='fp16'` needs a CUDA device"):
        WeightSharingEvaluator(
            digits,
            space=space,
            artifact_store=store,
            training=TrainingConfig(epochs=1),
            few_shot="depth",
            few_shot_training=TrainingConfig(epochs=1, precision="fp16"),
        )


def test_a_diverging_supernet_fails_at_the_end_of_its_epoch(digits: DataSplits) -> None:
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1"):
        Supernet(small_chain(digits), seed=0).train(
            _batches(digits), config=TrainingConfig(epochs=2, lr=1e30, grad_clip=None)
        )
