"""``WeightSharingEvaluator``: score candidates with one SPOS supernet kept in the artifact store.

The supernet (:class:`~optuna_nas.evaluation._supernet.Supernet`) is trained once per study and
stored in the study's Optuna artifact store; its artifact id is recorded in a study system attr,
so every worker and every resumed run downloads it instead of training it again. Which worker
trains it is decided by the study's job claim protocol (:func:`optuna_nas.storage.run_job`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import hashlib
import itertools
import json
import time
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.distributions import distribution_to_json
import torch

from optuna_nas import _compat
from optuna_nas._validation import check_int
from optuna_nas.data import Batches
from optuna_nas.data import DataSplits
from optuna_nas.data import make_loader
from optuna_nas.data import make_loaders
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._base import check_data
from optuna_nas.evaluation._base import resolve_batch_size
from optuna_nas.evaluation._hardware import check_device
from optuna_nas.evaluation._supernet import Supernet
from optuna_nas.evaluation._supernet import check_supernet_config
from optuna_nas.evaluation._supernet import in_part
from optuna_nas.evaluation._supernet import recalibrate_batchnorm
from optuna_nas.evaluation._supernet import sample_uniform
from optuna_nas.evaluation._supernet import split_key
from optuna_nas.evaluation._supernet_settings import FewShotSplit
from optuna_nas.evaluation._supernet_settings import SupernetRecipe
from optuna_nas.evaluation._supernet_settings import SupernetSharing
from optuna_nas.evaluation._supernet_settings import as_keywords
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.evaluation._training import evaluate_accuracy
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import ArtifactError
from optuna_nas.storage import download_state
from optuna_nas.storage import run_job
from optuna_nas.storage import upload_state
from optuna_nas.storage._jobs import DEFAULT_HEARTBEAT_S

if TYPE_CHECKING:
    from optuna_nas._compat import ArtifactStore

ATTR_PREFIX = "optuna_nas:supernet:"
"""Study system attr ``ATTR_PREFIX + fingerprint`` holds the stored supernet's artifact id."""
JOB_PREFIX = "supernet:"
"""The job ``JOB_PREFIX + fingerprint`` (:func:`~optuna_nas.storage.run_job`) trains it."""

_logger = optuna.logging.get_logger(__name__)


class SupernetUnavailable(RuntimeError):
    """The study's recorded supernet is missing or unreadable and ``on_bad_supernet="stop"``."""


class WeightSharingEvaluator(Evaluator):
    """Weight sharing (SPOS, Guo et al., ECCV 2020): inherit weights from one trained supernet.

    A candidate is scored by copying its path's weights out of the supernet
    (:meth:`Supernet.inherit`), recalibrating batch-norm statistics on ``calibration_batches``
    training batches (running statistics reset, cumulative average) and measuring validation
    accuracy. Nothing is trained per candidate, so ``report`` is never called.

    Args:
        data: Training batches train the supernet and recalibrate batch norm; validation
            batches score candidates.
        space: The search space the supernet covers (the study's space).
        artifact_store: Where the trained supernet is stored, e.g.
            ``optuna.artifacts.FileSystemArtifactStore(path)``; every worker must reach it.
        training: How the supernet is trained (epochs over the training data, one sampled
            path per batch).
        batch_size: Batch size of supernet training and of scoring (None:
            ``data.loader.batch_size``).
        calibration_batches: Training batches used to recalibrate batch norm per candidate.
        seed: Seeds supernet initialisation, path sampling and data order.
        device: Where the supernet trains and candidates are scored.
        poll_interval_s: How often a worker waiting for another's supernet checks the study.
        claim_heartbeat_s: Seconds between the heartbeats of the worker training the supernet;
            a waiting worker takes the training over after two missed heartbeats (and half an
            interval of grace), or at once when the trainer's process is gone from its host.
        on_bad_supernet: What to do when the recorded supernet's artifact is missing or
            unreadable (deleted, truncated): ``"retrain"`` trains it again (once, by one worker;
            the record then lists the replaced artifact ids under ``replaced``), ``"stop"``
            raises :class:`SupernetUnavailable` naming the artifact id, which stops the study.
        sampling: ``"uniform"``: one path per training step, drawn uniformly (SPOS).
            ``"fair"``: every step trains the paths of
            :func:`~optuna_nas.evaluation._supernet.sample_fair`, in which each choice of
            each parameter appears equally often, with one optimiser step on their summed
            gradients (FairNAS, Chu et al., ICCV 2021); a step then costs as many passes as
            the largest parameter has choices.
        few_shot: Few-shot NAS (Zhao et al., ICML 2021): after the one-shot supernet is trained
            (and stored, exactly as without this option, so it is shared with evaluators that
            do not split), the space is split into parts by
            :func:`~optuna_nas.evaluation._supernet.split_key` -- ``"depth"`` (the number of
            computing nodes on the longest path) or ``"op:<node id>"`` (the op at one node,
            the paper's split of a compound edge) -- and each part gets a sub-supernet that
            starts from a copy of the one-shot weights and is trained on that part's paths
            only, with ``few_shot_training``. A candidate is scored with its part's
            sub-supernet. All sub-supernets are stored as one artifact.
        few_shot_training: How each sub-supernet is trained (default: ``training``); its paths
            are sampled as ``sampling`` says, keeping only the part's paths.
        few_shot_min_share: Parts drawn less often than this in 1,000 uniform draws get no
            sub-supernet; their candidates are scored with the one-shot supernet.

    The supernet is identified by a fingerprint of the space (its distributions and the specs
    of a few fixed paths), the data (name and split sizes), ``training``, ``batch_size``,
    ``sampling``, ``seed`` and the few-shot settings: a study that changes any of them trains a
    new supernet rather than reusing one that does not fit.

    Simplifications of few-shot NAS: the split is chosen by the user (the paper splits the
    compound edges in a fixed order), and every part is split off at once from one trained
    one-shot supernet. GM-NAS's choice of a split by gradient matching (Hu et al., ICLR 2022)
    was tried and left out: on a trained chain supernet (MNIST, FairNAS, 100 epochs) the
    gradients summed over two halves (32 batches each) of the same part's paths were no more
    alike than chance (mean cosine between -0.44 and 0.11 over 17 candidate splits), so the
    similarities between parts, which the choice rests on, were noise.
    """

    data: DataSplits

    def __init__(
        self,
        data: DataSplits,
        *,
        space: SearchSpace,
        artifact_store: ArtifactStore,
        training: TrainingConfig,
        batch_size: int | None = None,
        calibration_batches: int = 4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        poll_interval_s: float = 2.0,
        claim_heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        on_bad_supernet: str = "retrain",
        sampling: str = "uniform",
        few_shot: str | None = None,
        few_shot_training: TrainingConfig | None = None,
        few_shot_min_share: float = 0.05,
    ) -> None:
        self.data = check_data(data)
        if (space.input_shape, space.num_outputs) != (data.input_shape, data.num_classes):
            raise ValueError(
                f"`space` builds networks for input_shape={space.input_shape} and "
                f"num_outputs={space.num_outputs}, but `data` {data.name!r} has "
                f"input_shape={data.input_shape} and {data.num_classes} classes."
            )
        self.space = space
        self.artifact_store = artifact_store
        self.recipe = SupernetRecipe(
            training=training,
            batch_size=resolve_batch_size(batch_size, data),
            seed=seed,
            sampling=sampling,
        )
        """How the one-shot supernet is trained."""
        self.sharing = SupernetSharing(
            poll_interval_s=poll_interval_s,
            claim_heartbeat_s=claim_heartbeat_s,
            on_bad_supernet=on_bad_supernet,
        )
        """How workers share the supernet through the study."""
        self.few_shot = FewShotSplit.of(
            few_shot,
            training=few_shot_training,
            one_shot_training=training,
            min_share=few_shot_min_share,
        )
        """With ``few_shot``: how the space is split and the sub-supernets are trained."""
        self.calibration_batches = check_int("calibration_batches", calibration_batches, minimum=1)
        self.device = check_device(device)
        check_supernet_config(self.recipe.training, self.device)
        if self.few_shot is not None:
            check_supernet_config(self.few_shot.training, self.device)
        self.few_shot_parts: tuple[str, ...] = ()
        """The parts of the split that get a sub-supernet (empty without ``few_shot``)."""
        if self.few_shot is not None:
            self.few_shot_parts = self._parts(self.few_shot)
        self.fingerprint = self._fingerprint()
        self.supernet: Supernet | None = None
        """The one-shot supernet (also with ``few_shot``)."""
        self.sub_supernets: dict[str, Supernet] = {}
        """With ``few_shot``: part -> its trained sub-supernet."""
        self.artifact_id: str | None = None
        self.training_steps_run = 0
        """Supernet training steps run by this evaluator object (0 when it downloaded one)."""
        self._attached_to: tuple[int, str] | None = None
        self._bad_artifacts: set[str] = set()

    # ------------------------------------------------------------------ the study side

    def attach(self, study: optuna.Study) -> None:
        """Make sure this evaluator holds the study's supernet: download it, or train it once.

        Training is the job ``JOB_PREFIX + fingerprint`` of :func:`optuna_nas.storage.run_job`:
        one worker claims it, trains with a heartbeat every ``claim_heartbeat_s``, uploads the
        state with :func:`optuna_nas.storage.upload_state` and records ``{artifact_id, steps,
        train_seconds, space, epoch_losses}`` in the study system attr ``ATTR_PREFIX +
        fingerprint`` (``epoch_losses``: :attr:`Supernet.epoch_losses`) before it releases the
        claim. Every other worker waits, downloads the recorded artifact and uses it; if the
        trainer dies (``kill -9``), one of them takes the training over after two missed
        heartbeats, or at once on the same host.

        A recorded artifact that is missing or unreadable is reported once per evaluator (a
        warning naming its id) and, by ``on_bad_supernet``, trained again or turned into
        :class:`SupernetUnavailable`.

        With ``few_shot`` the one-shot supernet is attached first, exactly as by an evaluator
        without the option, and the sub-supernets are then trained, stored and recorded (with
        ``sub_supernets``: each part's steps, seconds and losses) the same way under this
        evaluator's fingerprint.
        """
        where = (_compat.study_id(study), study.study_name)
        if self._attached_to == where:
            return
        if self.few_shot is None:
            self._attach_artifact(study, self.fingerprint, self._train_one_shot, self._adopt)
        else:
            one_shot = self._one_shot_evaluator()
            one_shot.attach(study)
            self.training_steps_run += one_shot.training_steps_run
            self.supernet = one_shot.supernet
            self._attach_artifact(
                study, self.fingerprint, self._train_sub_supernets, self._adopt_sub_supernets
            )
        self._attached_to = where

    def _attach_artifact(
        self,
        study: optuna.Study,
        fingerprint: str,
        train: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
        adopt: Callable[[dict[str, Any], str], None],
    ) -> None:
        """Download or train one artifact (``train`` returns the state to store and the
        record; ``adopt`` takes a stored or fresh state and its id)."""
        storage, study_id = _compat.study_storage(study), _compat.study_id(study)
        key = ATTR_PREFIX + fingerprint

        def done() -> tuple[dict[str, Any], str] | None:
            recorded = storage.get_study_system_attrs(study_id).get(key)
            if recorded is None or recorded["artifact_id"] in self._bad_artifacts:
                return None
            artifact_id = recorded["artifact_id"]
            try:
                return self._load(study, artifact_id), artifact_id
            except ArtifactError as err:
                self._bad_artifacts.add(artifact_id)
                if self.sharing.on_bad_supernet == "stop":
                    raise SupernetUnavailable(
                        f"{err} The study stops here (on_bad_supernet='stop')."
                    ) from err
                _logger.warning(f"{err} Training it again (on_bad_supernet='retrain').")
                return None

        def record(trained: tuple[dict[str, Any], dict[str, Any]]) -> tuple[dict[str, Any], str]:
            state, info = trained
            old = storage.get_study_system_attrs(study_id).get(key)
            if old is not None:  # a bad artifact is replaced: keep the history visible
                info = {**info, "replaced": [*old.get("replaced", []), old["artifact_id"]]}
            artifact_id = upload_state(study, self.artifact_store, state, filename="supernet.pt")
            storage.set_study_system_attr(study_id, key, {"artifact_id": artifact_id, **info})
            return state, artifact_id

        state, artifact_id = run_job(
            storage,
            study_id,
            JOB_PREFIX + fingerprint,
            done=done,
            work=lambda lease: train(),
            record=record,
            heartbeat_s=self.sharing.claim_heartbeat_s,
            poll_s=self.sharing.poll_interval_s,
        )
        adopt(state, artifact_id)

    def _train_one_shot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        recipe = self.recipe
        supernet = Supernet(self.space, seed=recipe.seed, device=self.device)
        train = self._training_batches()
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            steps = supernet.train(train, config=recipe.training, fair=recipe.sampling == "fair")
        self.training_steps_run += steps
        return supernet.state_dict(), {
            "steps": steps,
            "train_seconds": round(time.perf_counter() - start, 3),
            "space": self.space.name,
            "epoch_losses": [round(loss, 4) for loss in supernet.epoch_losses],
        }

    def _train_sub_supernets(self) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.supernet is not None and self.few_shot is not None
        split, seed = self.few_shot.split, self.recipe.seed
        train = self._training_batches()
        states: dict[str, Any] = {}
        records: dict[str, Any] = {}
        for i, part in enumerate(self.few_shot_parts):
            sub = self.supernet.copy(seed=seed + 1 + i)
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1 + i)
                steps = sub.train(
                    train,
                    config=self.few_shot.training,
                    fair=self.recipe.sampling == "fair",
                    accept=in_part(split, part),
                )
            self.training_steps_run += steps
            states[part] = sub.state_dict()
            records[part] = {
                "steps": steps,
                "train_seconds": round(time.perf_counter() - start, 3),
                "epoch_losses": [round(loss, 4) for loss in sub.epoch_losses],
            }
        record = {
            "steps": sum(r["steps"] for r in records.values()),
            "train_seconds": round(sum(r["train_seconds"] for r in records.values()), 3),
            "space": self.space.name,
            "few_shot": split,
            "sub_supernets": records,
        }
        return {"few_shot": split, "sub_supernets": states}, record

    def _training_batches(self) -> Batches:
        """The training split's batches in the supernet's data order."""
        return make_loader(
            self.data,
            "train",
            batch_size=self.recipe.batch_size,
            seed=self.recipe.seed,
            device=self.device,
        )

    def _rebuild(self, state: dict[str, Any]) -> Supernet:
        supernet = Supernet(self.space, seed=self.recipe.seed, device=self.device)
        supernet.load_state_dict(state)
        return supernet

    def _adopt(self, state: dict[str, Any], artifact_id: str) -> None:
        self.supernet, self.artifact_id = self._rebuild(state), artifact_id

    def _adopt_sub_supernets(self, state: dict[str, Any], artifact_id: str) -> None:
        self.sub_supernets = {part: self._rebuild(s) for part, s in state["sub_supernets"].items()}
        self.artifact_id = artifact_id

    def _load(self, study: optuna.Study, artifact_id: str) -> dict[str, Any]:
        return download_state(
            self.artifact_store,
            artifact_id,
            what=f"the supernet of study {study.study_name!r} (fingerprint {self.fingerprint})",
            fix="restore it to the store, or let the supernet be trained again "
            "(on_bad_supernet='retrain')",
            map_location=self.device,
        )

    def _one_shot_evaluator(self) -> WeightSharingEvaluator:
        """An evaluator of the same one-shot supernet, without the few-shot split."""
        return WeightSharingEvaluator(
            self.data,
            space=self.space,
            artifact_store=self.artifact_store,
            calibration_batches=self.calibration_batches,
            device=self.device,
            **as_keywords(self.recipe),
            **as_keywords(self.sharing),
        )

    def _parts(self, few_shot: FewShotSplit) -> tuple[str, ...]:
        split = few_shot.split
        rng = np.random.default_rng(self.recipe.seed)
        dists = self.space.distributions()
        draws = 1000
        counts = Counter(
            split_key(self.space.decode(sample_uniform(dists, rng)), split) for _ in range(draws)
        )
        parts = tuple(sorted(p for p, n in counts.items() if n >= few_shot.min_share * draws))
        if len(parts) < 2:
            raise ValueError(
                f"few_shot={split!r} does not split this {self.space.name} space: "
                f"{dict(counts)} in {draws} uniform draws leave {len(parts)} part(s) with a "
                f"share >= few_shot_min_share={few_shot.min_share}; choose another split "
                "('depth' or 'op:<node id>' of a node whose op is searched)."
            )
        return parts

    def _fingerprint(self) -> str:
        rng = np.random.default_rng(0)
        dists = self.space.distributions()
        probes = [self.space.decode(sample_uniform(dists, rng)).to_dict() for _ in range(3)]
        described: dict[str, Any] = {
            "space": [type(self.space).__name__, self.space.name],
            "distributions": {k: distribution_to_json(v) for k, v in sorted(dists.items())},
            "probes": probes,
            "data": [
                self.data.name,
                self.data.size("train"),
                self.data.size("val"),
                list(self.data.input_shape),
            ],
            "training": repr(self.recipe.training),
            "batch_size": self.recipe.batch_size,
            "seed": self.recipe.seed,
        }
        if self.data.augment is not None:  # data stored before augmentation keep theirs
            described["augment"] = repr(self.data.augment)
        if self.recipe.sampling != "uniform":  # uniform supernets stored before it keep theirs
            described["sampling"] = self.recipe.sampling
        if self.few_shot is not None:
            split = self.few_shot.split
            described["few_shot"] = {
                "split": split,
                "candidates": {split: list(self.few_shot_parts)},
                "training": repr(self.few_shot.training),
            }
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ scoring

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        if self.supernet is None:
            raise RuntimeError(
                "WeightSharingEvaluator has no supernet yet: call attach(study) first "
                "(NASObjective does so before every evaluation)."
            )
        start = time.perf_counter()
        supernet, part = self.supernet, "one-shot"
        if self.few_shot is not None:
            key = split_key(spec, self.few_shot.split)
            if key in self.sub_supernets:
                supernet, part = self.sub_supernets[key], key
        model, inherited = supernet.inherit(spec, seed=seed)
        train, val, _ = make_loaders(
            self.data, batch_size=self.recipe.batch_size, seed=seed, device=self.device
        )
        batches = list(itertools.islice(train, self.calibration_batches))
        recalibrate_batchnorm(model, batches, device=self.device)
        precision = self.recipe.training.precision  # scored as the supernet trained
        accuracy = evaluate_accuracy(model, val, device=self.device, precision=precision)
        return Evaluation(
            values={"val_accuracy": accuracy},
            metrics={
                "ws_inherited_fraction": round(inherited, 6),
                "ws_seconds": round(time.perf_counter() - start, 4),
                "supernet_artifact_id": self.artifact_id,
                **({"ws_sub_supernet": part} if self.few_shot is not None else {}),
            },
            model=model,
        )
