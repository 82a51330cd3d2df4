from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch

from optuna_nas.samplers._darts import DartsSampler
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.samplers._darts import DartsSupernet
from optuna_nas.samplers._darts import _persist as persist
from optuna_nas.samplers._darts import _search as search_module
from optuna_nas.samplers._darts import make_plan
from optuna_nas.samplers._darts._search import SearchState
from optuna_nas.samplers._darts._search import run_epoch
from optuna_nas.samplers._darts._search import search
from tests.samplers_darts._helpers import SYNTHETIC_SEARCH
from tests.samplers_darts._helpers import dot_pair_data
from tests.samplers_darts._helpers import dot_pair_space
from tests.samplers_darts._helpers import dot_pairs
from tests.samplers_darts._helpers import tiny_digits
from tests.samplers_darts._helpers import tiny_space


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("order", 2, "second-order DARTS.*is not offered"),
        ("epochs", 0, "epochs >= 1"),
        ("arch_lr", -1.0, "arch_lr"),
        ("relaxation", "gumbel", "relaxation"),
        ("warmup_epochs", 10, "warmup_epochs < epochs"),
        ("max_skip_edges", 0, "max_skip_edges"),
        ("tau_min", 20.0, "tau_min <= tau_max"),
        ("precision", "fp16", "not offered for the DARTS search.*use precision='bf16'"),
        ("precision", "fp8", "`precision` must be 'fp32' or 'bf16'"),
        ("channels_last", 1, "`channels_last` must be a bool"),
    ],
)
def test_config_rejects_bad_values(field: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DartsSearchConfig(**{field: value})


def test_hardware_options_are_recorded_only_when_set() -> None:
    # A search recorded before the options existed resumes unchanged.
    assert "precision" not in DartsSearchConfig().to_dict()
    assert "channels_last" not in DartsSearchConfig().to_dict()
    settings = DartsSearchConfig(precision="bf16", channels_last=True).to_dict()
    assert settings["precision"] == "bf16" and settings["channels_last"] is True


def test_a_bf16_channels_last_epoch_matches_fp32_closely() -> None:
    data, space = tiny_digits(), tiny_space()
    records = {}
    for name, extra in {"fp32": {}, "bf16": {"precision": "bf16", "channels_last": True}}.items():
        config = DartsSearchConfig(epochs=2, warmup_epochs=0, **extra)
        torch.manual_seed(0)
        state = SearchState(DartsSupernet(make_plan(space, None, None)), config)
        records[name] = run_epoch(state, data, epoch=0, seed=0, update_alpha=True)
    fp32, bf16 = records["fp32"], records["bf16"]
    assert bf16.train_loss != fp32.train_loss  # autocast really ran ...
    assert bf16.train_loss == pytest.approx(fp32.train_loss, abs=0.05)  # ... and agrees
    assert bf16.val_loss == pytest.approx(fp32.val_loss, abs=0.05)


def test_dot_pairs_show_each_3x3_window_at_most_one_dot_and_only_pairs_carry_the_class() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = dot_pairs(200, size=12, gap=4, pairs=3, generator=g).tensors
    assert 0.3 < float(y.float().mean()) < 0.7
    for image, label in zip(x[:, 0], y.tolist(), strict=True):
        dots = [(int(r), int(c)) for r, c in (image.abs() > 0.5).nonzero()]
        assert len(dots) == 6
        assert all(2 <= v <= 9 for d in dots for v in d)  # 2+ px from the border
        # Every dot's partner is 4 px away in the class's direction; all other dots are
        # 3+ px away (Chebyshev), so no 3x3 window holds two dots.
        step = (0, 4) if label == 0 else (4, 0)
        for r, c in dots:
            partners = {(r + step[0], c + step[1]), (r - step[0], c - step[1])} & set(dots)
            assert len(partners) == 1
            others = [(q, p) for q, p in dots if (q, p) != (r, c) and (q, p) not in partners]
            assert all(max(abs(r - q), abs(c - p)) >= 3 for q, p in others)
        signs = {float(image[r, c].sign()) for r, c in dots}
        assert signs <= {-1.0, 1.0}


@pytest.mark.slow
def test_alpha_ranks_the_needed_conv_first_on_a_task_only_it_solves() -> None:
    # The benchmark's synthetic task and settings (search seed 0; the settings were chosen on
    # seeds 100-104): only stem -> nor_conv_3x3 solves it. The supernet must actually learn
    # the task; alpha is noise otherwise.
    data = dot_pair_data(seed=0)
    torch.manual_seed(0)
    state = SearchState(DartsSupernet(make_plan(dot_pair_space(), None, None)), SYNTHETIC_SEARCH)
    losses: list[float] = []
    search(
        state,
        data,
        seed=0,
        start_epoch=0,
        on_epoch=lambda r, s: losses.append(r.train_loss),
    )
    assert len(losses) == SYNTHETIC_SEARCH.epochs
    assert losses[-1] < 0.2, losses  # ln 2 = 0.69 is chance
    alpha = state.net.alpha_dict()["cell/edge_1_0/op"]
    ranked = sorted(zip(alpha, dot_pair_space().ops, strict=True), reverse=True)
    assert ranked[0][1] == "nor_conv_3x3", ranked
    assert ranked[0][0] - ranked[1][0] > 0.1, ranked
    assert state.net.export() == {"cell/edge_1_0/op": "nor_conv_3x3"}


def test_skip_dominance_stops_the_search_early() -> None:
    data = tiny_digits()
    space = tiny_space()
    config = DartsSearchConfig(
        epochs=5, warmup_epochs=0, relaxation="softmax", max_skip_edges=2, arch_lr=1e-4
    )
    torch.manual_seed(0)
    state = SearchState(DartsSupernet(make_plan(space, None, None)), config)
    state.net.load_alpha({p.name: [5.0 * s for s in p.skip] for p in state.net.plan.params})
    records: list[int] = []
    done, stopped = search(
        state,
        data,
        seed=0,
        start_epoch=0,
        on_epoch=lambda r, s: records.append(r.skip_edges),
    )
    assert (done, stopped) == (1, True)
    assert records == [3]


def test_gdas_search_moves_alpha_with_one_sampled_op_per_batch() -> None:
    data = tiny_digits()
    config = DartsSearchConfig(epochs=3, warmup_epochs=0, relaxation="gdas", arch_lr=0.05)
    torch.manual_seed(0)
    state = SearchState(DartsSupernet(make_plan(tiny_space(), None, None)), config)
    before = state.net.alpha_dict()
    taus: list[float] = []
    search(
        state,
        data,
        seed=0,
        start_epoch=0,
        on_epoch=lambda r, s: taus.append(r.tau),
    )
    after = state.net.alpha_dict()
    assert taus == [10.0, pytest.approx(5.05), pytest.approx(0.1)]
    moved = [abs(a - b) for n in after for a, b in zip(after[n], before[n], strict=True)]
    assert max(moved) > 0.01


def _sampler(store: Any = None) -> DartsSampler:
    config = DartsSearchConfig(epochs=4, warmup_epochs=1, relaxation="softmax")
    return DartsSampler(
        space=tiny_space(),
        data=tiny_digits(),
        search_config=config,
        artifact_store=store,
        seed=3,
    )


class _Killed(Exception):
    pass


@pytest.mark.parametrize("with_store", [True, False])
def test_a_resumed_study_continues_from_the_last_saved_epoch(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, with_store: bool
) -> None:
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path)) if with_store else None
    reference = optuna.create_study(storage=f"sqlite:///{tmp_path}/ref.db")
    _sampler(store).search(reference)
    ref_history = persist.attrs(reference)[persist.HISTORY]

    # A worker that dies (like a killed process) right after saving its second epoch.
    storage = f"sqlite:///{tmp_path}/resume.db"
    study = optuna.create_study(storage=storage, study_name="s")
    records = {"n": 0}
    original_record = persist.record_epoch

    def dying_record(*args: Any) -> None:
        original_record(*args)
        records["n"] += 1
        if records["n"] == 2:  # after epochs 0 and 1
            raise _Killed

    with monkeypatch.context() as m:
        m.setattr(persist, "record_epoch", dying_record)
        with pytest.raises(_Killed):
            _sampler(store).search(study)
    saved = persist.attrs(study)[persist.HISTORY]
    assert [h["epoch"] for h in saved] == [0, 1]
    assert persist.RESULT not in persist.attrs(study)

    # A fresh process resumes; the worker released its claim as it died (a real kill -9 is
    # tests/faults/test_claims.py).
    alpha_epochs: list[int] = []
    original_run_epoch = search_module.run_epoch

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs["update_alpha"]:
            alpha_epochs.append(kwargs["epoch"])
        return original_run_epoch(*args, **kwargs)

    monkeypatch.setattr(search_module, "run_epoch", counting)
    resumed = optuna.load_study(study_name="s", storage=storage)
    alpha = _sampler(store).search(resumed)
    assert alpha_epochs == [2, 3]  # epochs 0 (warm-up) and 1 are not searched again
    history = persist.attrs(study)[persist.HISTORY]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[:2] == saved
    assert alpha == history[-1]["alpha"]
    if with_store:  # weights and optimizer state restored: exactly the uninterrupted search
        assert persist.attrs(study)[persist.CHECKPOINT]["epoch"] == 4
        for got, want in zip(history, ref_history, strict=True):
            for name, values in want["alpha"].items():
                assert got["alpha"][name] == pytest.approx(values, abs=1e-5)
