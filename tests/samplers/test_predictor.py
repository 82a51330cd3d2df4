from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_nas.samplers import KernelPredictor
from optuna_nas.samplers._predictor import _distance
from optuna_nas.samplers._predictor import _normal_scores
from optuna_nas.spaces._distributions import to_unit
from optuna_nas.spaces._encoding import encode_columns

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


MIXED = {
    "a": CategoricalDistribution([1, True, 1.0, "x", None]),
    "b": IntDistribution(1, 64, log=True),
    "c": FloatDistribution(0.0, 1.0),
    "d": CategoricalDistribution(["p", "q"]),
    "e": IntDistribution(0, 10, step=2),
}


def _draw_mixed(rng: np.random.RandomState) -> dict[str, Any]:
    choices = MIXED["a"].choices  # type: ignore[attr-defined]
    p: dict[str, Any] = {"a": choices[rng.randint(len(choices))], "d": "pq"[rng.randint(2)]}
    if p["d"] == "p":  # a conditional param
        p["b"] = int(rng.randint(1, 65))
    if rng.uniform() < 0.7:
        p["c"] = float(rng.uniform())
    p["e"] = int(rng.choice([0, 2, 4, 6, 8, 10]))
    if rng.uniform() < 0.1:
        p["a"] = 2  # not a choice
    return p


def _reference_distance(p: dict[str, Any], q: dict[str, Any]) -> float:
    """The module doc's distance, one pair at a time (values that are not choices, possible
    when a name's distribution changed during a study, count as one and the same value)."""

    def choice(d: CategoricalDistribution, v: Any) -> Any:
        hits = [(type(c), c) for c in d.choices if c == v and type(c) is type(v)]
        return hits[0] if hits else "not a choice"

    total = 0.0
    for name, d in MIXED.items():
        if name not in p or name not in q:
            total += 0.0 if name not in p and name not in q else 1.0
        elif isinstance(d, CategoricalDistribution):
            total += 0.0 if choice(d, p[name]) == choice(d, q[name]) else 1.0
        else:
            total += abs(to_unit(d, p[name]) - to_unit(d, q[name]))
    return total


def test_fast_encoding_gives_the_pairwise_distances_of_the_definition() -> None:
    rng = np.random.RandomState(0)
    rows = [_draw_mixed(rng) for _ in range(60)]
    rows += [{"a": 1}, {"a": True}, {"a": 1.0}, {"a": 2}, {"a": 3}, {"a": None}]
    names = sorted(MIXED)
    x = encode_columns(rows, names, MIXED)
    got = _distance(x, x)
    want = np.array([[_reference_distance(p, q) for q in rows] for p in rows])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    one, true, one_f = (x[0][-6 + i, names.index("a")] for i in range(3))
    assert len({one, true, one_f}) == 3  # 1, True and 1.0 are different choices


def test_length_scale_is_reselected_every_few_observations() -> None:
    rng = np.random.RandomState(1)
    rows = [_draw(rng) for _ in range(40)]
    observed = [(p, _score(p) + (3 * rng.randn() if i < 12 else 0.0)) for i, p in enumerate(rows)]
    candidates = [_draw(rng) for _ in range(5)]

    def fresh_choice(n: int) -> float | None:
        fresh = KernelPredictor()
        fresh(observed[:n], candidates, SPACE)
        return fresh.length_scale

    predictor = KernelPredictor(reselect_every=5)
    assert predictor.length_scale is None
    stale = 0
    for n in range(4, 41):
        pred = predictor(observed[:n], candidates, SPACE)
        expected = fresh_choice(4 + (n - 4) // 5 * 5)  # chosen at n = 4, 9, 14, ...
        assert predictor.length_scale == expected
        fixed = KernelPredictor(length_scales=[expected])(observed[:n], candidates, SPACE)
        np.testing.assert_array_equal(pred, fixed)
        stale += expected != fresh_choice(n)
    assert stale > 0  # the data make the choice move, so the schedule is what is tested
    # Fewer observations (another study) or other params: select again at once.
    predictor(observed[:6], candidates, SPACE)
    assert predictor.length_scale == fresh_choice(6)
    every = KernelPredictor(reselect_every=1)
    for n in range(4, 41):
        every(observed[:n], candidates, SPACE)
        assert every.length_scale == fresh_choice(n)


def test_rank_scores_depend_only_on_the_order_of_the_scores() -> None:
    rng = np.random.RandomState(2)
    rows = [_draw(rng) for _ in range(30)]
    scores = np.array([_score(p) + 0.01 * i for i, p in enumerate(rows)])
    candidates = [_draw(rng) for _ in range(10)]
    squashed = np.exp(scores) - 1e3 * (scores < 2)  # the same order, other gaps, outliers
    for exploration in (0.0, 2.0):
        ranked = KernelPredictor(exploration=exploration)
        raw = KernelPredictor(exploration=exploration, rank_scores=False)
        a = ranked(list(zip(rows, scores, strict=True)), candidates, SPACE)
        b = ranked(list(zip(rows, squashed, strict=True)), candidates, SPACE)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        c = raw(list(zip(rows, scores, strict=True)), candidates, SPACE)
        d = raw(list(zip(rows, squashed, strict=True)), candidates, SPACE)
        assert not np.allclose(c, d)


def test_normal_scores_are_quantiles_of_mean_ranks() -> None:
    got = _normal_scores(np.array([3.0, -1.0, 3.0, 7.0]))  # ranks 1.5, 0, 1.5, 3 of n=4
    want = [NormalDist().inv_cdf((r + 0.5) / 4) for r in (1.5, 0.0, 1.5, 3.0)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise": 0.0}, "noise"),
        ({"length_scales": ()}, "length_scales"),
        ({"max_observed": 1}, "max_observed"),
        ({"exploration": -1.0}, "exploration"),
        ({"reselect_every": 0}, "reselect_every"),
        ({"rank_scores": 1}, "rank_scores"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KernelPredictor(**kwargs)


def test_factor_inverts_a_positive_definite_matrix_and_survives_a_singular_one() -> None:
    rng = np.random.RandomState(0)
    a = rng.normal(size=(6, 6))
    k, y = a @ a.T + 0.1 * np.eye(6), rng.normal(size=6)
    l_inv, alpha = KernelPredictor._factor(k, y)
    np.testing.assert_allclose(l_inv @ k @ l_inv.T, np.eye(6), atol=1e-9)
    np.testing.assert_allclose(alpha, np.linalg.solve(k, y), atol=1e-9)
    l_inv, alpha = KernelPredictor._factor(np.ones((3, 3)), np.ones(3))  # rank one
    assert np.all(np.isfinite(l_inv)) and np.all(np.isfinite(alpha))
