from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
import pytest

from optuna_nas.samplers import KernelPredictor

from ._toy import OPS
from ._toy import TARGET

SPACE = {f"x{i}": CategoricalDistribution(OPS) for i in range(len(TARGET))}


def _draw(rng: np.random.RandomState) -> dict[str, Any]:
    return {k: OPS[rng.randint(len(OPS))] for k in SPACE}


def _score(params: dict[str, Any]) -> float:
    return float(sum(params[f"x{i}"] == t for i, t in enumerate(TARGET)))


def test_predictions_rank_unseen_candidates_like_the_truth() -> None:
    rng = np.random.RandomState(0)
    observed = [(p, _score(p)) for p in (_draw(rng) for _ in range(60))]
    candidates = [_draw(rng) for _ in range(40)]
    pred = KernelPredictor(exploration=0.0)(observed, candidates, SPACE)
    truth = np.array([_score(c) for c in candidates])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(pred), rank(truth))[0, 1] > 0.5


def test_exploration_favours_candidates_far_from_the_data() -> None:
    rng = np.random.RandomState(1)
    observed = [(p, _score(p)) for p in (_draw(rng) for _ in range(20))]
    near, far = dict(observed[0][0]), {k: "none" for k in SPACE}
    mean = KernelPredictor(exploration=0.0)(observed, [near, far], SPACE)
    ucb = KernelPredictor(exploration=1.0)(observed, [near, far], SPACE)
    assert ucb[1] - mean[1] > ucb[0] - mean[0] >= 0


def test_mixed_and_conditional_params() -> None:
    space = {"k": CategoricalDistribution(["a", "b"]), "x": FloatDistribution(1e-3, 1, log=True)}
    observed = [({"k": "a", "x": 0.01}, 1.0), ({"k": "b"}, 0.0), ({"k": "a", "x": 0.5}, 0.5)]
    pred = KernelPredictor()(observed, [{"k": "a", "x": 0.02}, {"k": "b"}], space)
    assert pred.shape == (2,) and np.all(np.isfinite(pred))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise": 0.0}, "noise"),
        ({"length_scales": ()}, "length_scales"),
        ({"max_observed": 1}, "max_observed"),
        ({"exploration": -1.0}, "exploration"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KernelPredictor(**kwargs)
