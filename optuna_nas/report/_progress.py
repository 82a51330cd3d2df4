"""A progress bar for long runs that shows the best values found so far."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
import logging
import math
from types import TracebackType

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

from optuna_nas._validation import check_int
from optuna_nas.report._hypervolume import feasible_complete_trials
from optuna_nas.report._hypervolume import pareto_front
from optuna_nas.report._summary import metric_names


def best_so_far(study: optuna.Study) -> str:
    """What the progress bar shows after each trial.

    One objective: ``best val_accuracy=0.97 (trial 12)`` (ties go to the earliest trial, as in
    the report's top-k table). Several: the size of the feasible Pareto front and, for each
    objective, its best value on that front and the front trial that has it, e.g.
    ``front of 4 trials; on it val_accuracy=0.98 (trial 19), params=2310 (trial 3)``. The trial
    named is always one the report's front lists: of the trials that share the best value of
    an objective, some are dominated (e.g. same accuracy, more params) and are not named.
    """
    trials = feasible_complete_trials(study)
    if not trials:
        return "no feasible complete trial yet"
    names = metric_names(study)
    front = pareto_front(trials, study.directions) if len(names) > 1 else trials
    parts = []
    for i, (name, direction) in enumerate(zip(names, study.directions, strict=True)):
        sign = 1.0 if direction == StudyDirection.MINIMIZE else -1.0
        best = min(
            front, key=lambda t: (sign * (t.values or [math.inf] * len(names))[i], t.number)
        )
        value = (best.values or [math.nan] * len(names))[i]
        parts.append(f"{name}={value:.4g} (trial {best.number})")
    if len(names) == 1:
        return f"best {parts[0]}"
    size = f"{len(front)} trial{'' if len(front) == 1 else 's'}"
    return f"front of {size}; on it " + ", ".join(parts)


TRAINING_LOGGER = "optuna_nas.training"
"""The logger :func:`~optuna_nas.evaluation.train_model` writes one line per epoch to."""


class _EpochLines(logging.Handler):
    """Hands each per-epoch line of the training loop, shortened, to ``show``."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if record.msg.startswith("epoch ") and isinstance(args, tuple) and len(args) == 6:
            epoch, epochs, loss, accuracy, _, speed = args
            self.show(
                f"epoch {epoch}/{epochs}: loss {loss:.3f}, acc {accuracy:.3f}, {speed:.0f} img/s"
            )
        else:
            self.show(record.getMessage())


class ProgressBar(AbstractContextManager["ProgressBar"]):
    """A :mod:`tqdm` bar over the trials of one ``study.optimize`` call; pass it in
    ``callbacks``. After each finished trial it shows :func:`best_so_far` (Optuna's own
    ``show_progress_bar`` shows the best value of single-objective studies only).

    While a trial trains, the bar also shows its last epoch (``epoch 3/6: loss 0.412, acc
    0.931, 2100 img/s``), read from the ``optuna_nas.training`` logger's one line per epoch.

    While the bar is open, Optuna's per-trial INFO log lines (which would break the bar) are
    silenced: its verbosity is set to WARNING and restored by :meth:`close`; so are the
    training logger's lines, unless you configured that logger yourself (gave it a level), in
    which case they also go where you sent them. Use it as a context manager so the bar is
    closed.
    """

    def __init__(
        self, study: optuna.Study, *, n_trials: int, timeout: float | None = None
    ) -> None:
        check_int("n_trials", n_trials, minimum=0)
        budget = f", at most {timeout:g} s" if timeout is not None else ""
        self._bar = tqdm(total=n_trials, desc=f"{study.study_name}{budget}", unit="trial")
        self._best = best_so_far(study)
        self._bar.set_postfix_str(self._best)
        self._verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._epochs = _EpochLines(self._show_epoch)
        self._training = logging.getLogger(TRAINING_LOGGER)
        self._saved = (self._training.level, self._training.propagate)
        if self._training.level == logging.NOTSET:  # not configured by the user: ours alone
            self._training.setLevel(logging.INFO)
            self._training.propagate = False
        self._training.addHandler(self._epochs)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._bar.update(1)
        self._best = best_so_far(study)
        self._bar.set_postfix_str(self._best)

    def _show_epoch(self, line: str) -> None:
        self._bar.set_postfix_str(f"{self._best}; training: {line}")

    def close(self) -> None:
        self._training.removeHandler(self._epochs)
        self._training.setLevel(self._saved[0])
        self._training.propagate = self._saved[1]
        self._bar.close()
        optuna.logging.set_verbosity(self._verbosity)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
