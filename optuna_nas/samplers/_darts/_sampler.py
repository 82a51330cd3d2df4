"""``DartsSampler``: DARTS's architecture, and draws around it, as ordinary Optuna trials."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import torch

from optuna_nas import _compat
from optuna_nas._compat import ArtifactStore
from optuna_nas._validation import is_int
from optuna_nas.data import DataSplits
from optuna_nas.samplers._darts import _persist as persist
from optuna_nas.samplers._darts._plan import SupernetPlan
from optuna_nas.samplers._darts._plan import make_plan
from optuna_nas.samplers._darts._search import DartsSearchConfig
from optuna_nas.samplers._darts._search import EpochRecord
from optuna_nas.samplers._darts._search import SearchState
from optuna_nas.samplers._darts._search import run_epoch
from optuna_nas.samplers._darts._search import search
from optuna_nas.samplers._darts._supernet import DartsSupernet
from optuna_nas.samplers._darts._supernet import export_choices
from optuna_nas.spaces import SearchSpace
from optuna_nas.storage import ArtifactError
from optuna_nas.storage import JobLease
from optuna_nas.storage import run_job
from optuna_nas.storage._jobs import DEFAULT_HEARTBEAT_S

_logger = optuna.logging.get_logger(__name__)

_SEEN = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)


class DartsSampler(BaseSampler):
    """Propose DARTS's architecture (Liu et al., ICLR 2019) and draws around it as trials.

    Before the first trial of a study (in :meth:`before_trial`), the sampler runs the DARTS
    search for that study, or resumes it from the last epoch saved in the study, unless it is
    already complete: a supernet with a mixed op for every searched parameter of ``space``
    (see :mod:`optuna_nas.samplers._darts._plan`) is trained with alternating first-order
    updates (see :mod:`optuna_nas.samplers._darts._search`; against the collapse onto skip
    connections: DARTS-'s decaying auxiliary skip and the DARTS+ early stop), and alpha is
    written to the study's system attrs after every epoch. Only one worker searches: the search
    is the job ``darts:search`` of :func:`optuna_nas.storage.run_job`, whose owner beats every
    ``claim_heartbeat_s`` from a thread; others wait for the result, and one of them resumes
    the search after two missed heartbeats (at once when the owner's process is gone from the
    same host). :meth:`search` runs the same step explicitly.

    Then, per trial, :meth:`sample_relative` proposes the argmax architecture if no trial of
    the study has it yet, and otherwise architectures drawn from ``softmax(alpha / temperature)``
    per searched parameter (up to 100 draws to find one not yet in the study), with the fixed
    parameters alongside. The trials are evaluated by the user's objective like any other, so
    DARTS's choice is checked by real training. Parameters outside the space go to a
    :class:`~optuna.samplers.RandomSampler`. The sampler never reads objective values, so any
    number of objectives works.

    Args:
        space: The search space.
        data: Weights train on ``data.train``, alpha on ``data.val``.
        fixed_params: Values of every parameter the space asks for that is not searched (for
            a :class:`~optuna_nas.spaces.ChainSpace`: ``depth``, ``activation``,
            ``layer{i}/width`` equal to ``stem_channels``, ``layer{i}/stride`` 1,
            ``layer{i}/skip``). None for a :class:`~optuna_nas.spaces.CellSpace`.
        searched_params: The searched categorical parameters; default: every ``.../op``
            parameter the space asks for that is not fixed.
        search_config: Epochs, learning rates, batch size, relaxation, collapse remedy,
            device; default ``DartsSearchConfig()``.
        temperature: ``T`` of the ``softmax(alpha / T)`` draws after the argmax.
        artifact_store: Where the supernet and optimizer state go after every epoch, e.g.
            :class:`optuna.artifacts.FileSystemArtifactStore`. Without one, a resumed search
            keeps alpha's history but re-initialises the weights and retrains them (weights only,
            alpha fixed at its last saved value, with the same data order and learning rates) for
            the epochs already done, then continues; Adam's alpha moments restart.
        seed: Seed of the search (weights, data order, alpha init) and of the draws. The first
            worker's search seed is stored in the study and used by every worker. ``None``
            draws one.
        claim_heartbeat_s: Seconds between the searching worker's heartbeats; the search is
            taken over after two missed ones (plus half an interval of grace).
        poll_interval: Seconds between checks while another worker searches.
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        data: DataSplits,
        fixed_params: Mapping[str, Any] | None = None,
        searched_params: Sequence[str] | None = None,
        search_config: DartsSearchConfig | None = None,
        temperature: float = 1.0,
        artifact_store: ArtifactStore | None = None,
        seed: int | None = None,
        claim_heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        poll_interval: float = 1.0,
    ) -> None:
        if not isinstance(data, DataSplits):
            raise TypeError(
                f"`data` must be an optuna_nas.data.DataSplits, but got {type(data).__name__}."
            )
        if not isinstance(space, SearchSpace):
            raise TypeError(f"`space` must be a SearchSpace, but got {type(space).__name__}.")
        if (space.input_shape, space.num_outputs) != (data.input_shape, data.num_classes):
            raise ValueError(
                f"`space` builds networks for input_shape={space.input_shape} and "
                f"num_outputs={space.num_outputs}, but `data` {data.name!r} has "
                f"input_shape={data.input_shape} and {data.num_classes} classes."
            )
        self._plan: SupernetPlan = make_plan(space, fixed_params, searched_params)
        config = DartsSearchConfig() if search_config is None else search_config
        if not isinstance(config, DartsSearchConfig):
            raise TypeError(
                f"`search_config` must be a DartsSearchConfig, but got {type(config).__name__}."
            )
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)):
            raise ValueError(f"`temperature` must be finite and > 0, but got {temperature!r}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be finite and > 0, but got {temperature!r}.")
        for name, v in (
            ("claim_heartbeat_s", claim_heartbeat_s),
            ("poll_interval", poll_interval),
        ):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name} > 0` must hold, but got {name}={v!r}.")
        if seed is not None and not is_int(seed):
            raise TypeError(f"`seed` must be None or an int, but got {seed!r}.")
        self._data = data
        self._config = config
        self._temperature = float(temperature)
        self._store = artifact_store
        self._seed = seed
        self._search_seed = seed if seed is not None else int(np.random.randint(2**31 - 1))
        self._rng = np.random.RandomState(seed)
        self._random_sampler = RandomSampler(seed=seed)
        self._heartbeat = float(claim_heartbeat_s)
        self._poll = float(poll_interval)
        self._lock = threading.RLock()

    @property
    def plan(self) -> SupernetPlan:
        """The searched and fixed parameters (and the specs the supernet is built from)."""
        return self._plan

    # ------------------------------------------------------------------ the search

    def _settings(self) -> dict[str, Any]:
        d = self._data
        return {
            "space": self._plan.space.name,
            "searched": {p.name: list(p.choices) for p in self._plan.params},
            "fixed": dict(self._plan.fixed),
            "config": self._config.to_dict(),
            "data": {"name": d.name, "train": d.size("train"), "val": d.size("val")},
        }

    def alpha(self, study: optuna.Study) -> dict[str, list[float]] | None:
        """The final alpha of ``study``'s search, or None while it is not complete."""
        result = persist.attrs(study).get(persist.RESULT)
        return None if result is None else dict(result["alpha"])

    def search(self, study: optuna.Study) -> dict[str, list[float]]:
        """Run (or resume, or wait for) ``study``'s DARTS search; return the final alpha."""
        with self._lock:
            seed = persist.check_settings(study, self._settings(), self._search_seed)
            return run_job(
                _compat.study_storage(study),
                _compat.study_id(study),
                persist.JOB,
                done=lambda: self.alpha(study),
                work=lambda lease: self._run(study, seed, lease),
                record=lambda result: self._finish(study, *result),
                heartbeat_s=self._heartbeat,
                poll_s=self._poll,
            )

    def _run(
        self, study: optuna.Study, seed: int, lease: JobLease
    ) -> tuple[int, bool, dict[str, list[float]]]:
        """Run the search from the last recorded epoch; return (epochs, stopped, alpha)."""
        attrs = persist.attrs(study)
        history: list[dict[str, Any]] = list(attrs.get(persist.HISTORY, []))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            state = SearchState(DartsSupernet(self._plan), self._config)
        done = len(history)
        if done:
            if not self._load_checkpoint(study, state, done):
                state.net.load_alpha(history[-1]["alpha"])
                for epoch in range(done):
                    run_epoch(state, self._data, epoch=epoch, seed=seed, update_alpha=False)
            # Killed after saving the epoch that triggered the DARTS+ stop: the search is over.
            last, limit = history[-1], self._config.max_skip_edges
            if limit is not None and done > self._config.warmup and last["skip_edges"] >= limit:
                return done, True, last["alpha"]

        def on_epoch(record: EpochRecord, st: SearchState) -> None:
            lease.check()  # taken over (presumed dead): record nothing more
            entry = record.to_json()
            for key in ("train_loss", "val_loss"):  # plain JSON: no NaN (warm-up, divergence)
                if not math.isfinite(entry[key]):
                    entry[key] = None
            history.append(entry)
            persist.record_epoch(study, self._store, history, st.state_dict())

        epochs, stopped = search(state, self._data, seed=seed, start_epoch=done, on_epoch=on_epoch)
        return epochs, stopped, state.net.alpha_dict()

    def _load_checkpoint(self, study: optuna.Study, state: SearchState, epochs: int) -> bool:
        """Restore the checkpoint after ``epochs`` epochs; False if there is none to restore
        (no store, none saved, or one that is missing or unreadable: that is logged)."""
        ckpt = persist.attrs(study).get(persist.CHECKPOINT)
        if self._store is None or ckpt is None or ckpt["epoch"] != epochs:
            return False
        try:
            state.load_state_dict(persist.load_checkpoint(study, self._store, ckpt["artifact_id"]))
        except ArtifactError as err:
            _logger.warning(str(err))
            return False
        return True

    def _finish(
        self, study: optuna.Study, epochs: int, stopped: bool, alpha: Mapping[str, list[float]]
    ) -> dict[str, list[float]]:
        result = {"epochs": epochs, "stopped_early": stopped, "alpha": dict(alpha)}
        persist.put(study, persist.RESULT, result)
        return dict(alpha)

    # ------------------------------------------------------------------ the sampler contract

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.search(study)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self.alpha(study) is None:
            return {}
        return self._plan.distributions()

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        alpha = self.alpha(study)
        if not search_space or alpha is None:
            return {}
        seen = self._seen(study, trial)
        choices = export_choices(self._plan, alpha)
        how = "argmax"
        if self._key(choices) in seen:
            how = "softmax"
            for _ in range(100):
                choices = self._draw(alpha)
                if self._key(choices) not in seen:
                    break
        _compat.study_storage(study).set_trial_system_attr(
            _compat.trial_id(trial), "darts:proposal", how
        )
        params = self._plan.full_params(choices)
        return {k: v for k, v in params.items() if k in search_space}

    def _draw(self, alpha: Mapping[str, Sequence[float]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self._plan.params:
            logits = np.asarray(alpha[p.name], dtype=float) / self._temperature
            probs = np.exp(logits - logits.max())
            k = int(self._rng.choice(len(p.choices), p=probs / probs.sum()))
            out[p.name] = p.choices[k]
        return out

    def _key(self, choices: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(choices.get(p.name) for p in self._plan.params)

    def _seen(self, study: optuna.Study, trial: FrozenTrial) -> set[tuple[Any, ...]]:
        trials = study.get_trials(deepcopy=False, states=_SEEN)
        return {self._key(t.params) for t in trials if t.number != trial.number}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random_sampler.reseed_rng()
