"""The settings of a :class:`~optuna_nas.evaluation.WeightSharingEvaluator`, grouped by what
they are for: how the one-shot supernet is trained, how workers share it, and the few-shot split.

Each group is checked as it is made, with messages that name the evaluator's keyword argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from typing import Any

from optuna_nas._validation import check_positive
from optuna_nas.evaluation._training import TrainingConfig

ON_BAD_SUPERNET = ("retrain", "stop")
SAMPLING = ("uniform", "fair")


@dataclass(frozen=True, kw_only=True)
class SupernetRecipe:
    """How the one-shot supernet is trained (with the space and the data, its fingerprint)."""

    training: TrainingConfig
    batch_size: int
    seed: int
    sampling: str

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING:
            raise ValueError(f"`sampling` must be 'uniform' or 'fair', but got {self.sampling!r}.")


@dataclass(frozen=True, kw_only=True)
class SupernetSharing:
    """How workers share the supernet through the study's job claim protocol."""

    poll_interval_s: float
    claim_heartbeat_s: float
    on_bad_supernet: str

    def __post_init__(self) -> None:
        check_positive("poll_interval_s", self.poll_interval_s)
        check_positive("claim_heartbeat_s", self.claim_heartbeat_s)
        if self.on_bad_supernet not in ON_BAD_SUPERNET:
            raise ValueError(
                f"`on_bad_supernet` must be one of {ON_BAD_SUPERNET}, "
                f"but got {self.on_bad_supernet!r}."
            )


@dataclass(frozen=True, kw_only=True)
class FewShotSplit:
    """Few-shot NAS: the split of the space, and how each part's sub-supernet is trained."""

    split: str
    training: TrainingConfig
    min_share: float

    @classmethod
    def of(
        cls,
        split: str | None,
        *,
        training: TrainingConfig | None,
        one_shot_training: TrainingConfig,
        min_share: float,
    ) -> FewShotSplit | None:
        """The settings of ``WeightSharingEvaluator(few_shot=split, few_shot_training=training,
        few_shot_min_share=min_share)``: None without a split; ``training`` defaults to the
        one-shot supernet's."""
        if split is None:
            if training is not None:
                raise ValueError("`few_shot_training` needs `few_shot` (e.g. few_shot='depth').")
            return None
        return cls(split=split, training=training or one_shot_training, min_share=min_share)

    def __post_init__(self) -> None:
        share = self.min_share
        if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 <= share < 1):
            raise ValueError(
                f"`0 <= few_shot_min_share < 1` must hold, but got few_shot_min_share={share!r}."
            )


def as_keywords(settings: Any) -> dict[str, Any]:
    """A settings dataclass's fields, as the constructor keywords they were given as."""
    return {f.name: getattr(settings, f.name) for f in fields(settings)}
