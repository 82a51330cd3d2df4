from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_nas.samplers import KernelPredictor
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.samplers._base import PLAN_ATTR
from optuna_nas.samplers._mutation import mutate
from optuna_nas.samplers._mutation import mutate_value
from optuna_nas.samplers._mutation import random_params

from ._toy import conditional
from ._toy import matches

DIST = {"x": FloatDistribution(0.0, 10.0)}


def _add(study: optuna.Study, value: Any, x: float, **system_attrs: Any) -> None:
    study.add_trial(
        optuna.create_trial(
            params={"x": x}, distributions=DIST, value=value, system_attrs=system_attrs
        )
    )


def _parent(study: optuna.Study) -> int:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 10.0)
    parent = study._storage.get_trial(trial._trial_id).system_attrs[PLAN_ATTR]["parent"]
    return int(parent)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beats_random_search_on_a_toy_space(seed: int) -> None:
    evo = optuna.create_study(
        direction="maximize",
        sampler=RegularizedEvolutionSampler(population_size=10, sample_size=5, seed=seed),
    )
    evo.optimize(matches, n_trials=100)
    rnd = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed))
    rnd.optimize(matches, n_trials=100)
    assert evo.best_value >= 8
    assert evo.best_value >= rnd.best_value + 2


def test_population_is_the_last_complete_trials_so_old_winners_retire() -> None:
    study = optuna.create_study(
        sampler=RegularizedEvolutionSampler(population_size=5, sample_size=5, seed=0)
    )
    _add(study, -100.0, 0.5)  # best ever, but older than the population
    for v in range(5):
        _add(study, float(v), float(v))
    assert _parent(study) == 1  # the best (value 0.0) of trials 1..5


def test_infeasible_trials_lose_tournaments() -> None:
    study = optuna.create_study(
        sampler=RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0)
    )
    for v in range(4):
        trial = study.ask({"x": DIST["x"]})
        trial.set_constraint("c", 1.0 if v == 0 else -1.0)  # the best value is infeasible
        study.tell(trial, float(v))
    assert _parent(study) == 1


def _recording_study() -> tuple[optuna.Study, list[list[float]]]:
    """A study whose evolution sampler's predictor records the scores it learns from."""
    seen: list[list[float]] = []

    def recording(observed: Any, candidates: Any, distributions: Any) -> np.ndarray:
        seen.append([s for _, s in observed])
        return np.zeros(len(candidates))

    sampler = RegularizedEvolutionSampler(
        population_size=2, sample_size=2, predictor=recording, num_candidates=2, seed=0
    )
    return optuna.create_study(direction="maximize", sampler=sampler), seen


def test_predictor_learns_that_a_later_infeasible_trial_is_worst() -> None:
    study, seen = _recording_study()
    for v in (1.0, 2.0, 3.0):
        _add(study, v, v)
    _parent(study)
    assert seen[-1] == [1.0, 2.0, 3.0]  # one objective, no constraints: the values
    trial = study.ask({"x": DIST["x"]})
    trial.set_constraint("c", 1.0)  # the best value, but infeasible
    study.tell(trial, 10.0)
    _parent(study)
    assert seen[-1] == [1.0, 2.0, 3.0, 0.0]  # fitness ranks: the infeasible trial last


def test_predictor_sees_trials_in_number_order_when_they_complete_out_of_order() -> None:
    study, seen = _recording_study()
    for v in (1.0, 2.0, 3.0):
        _add(study, v, v)
    first, second = study.ask({"x": DIST["x"]}), study.ask({"x": DIST["x"]})
    study.tell(second, 5.0)
    _parent(study)
    assert seen[-1] == [1.0, 2.0, 3.0, 5.0]
    study.tell(first, 4.0)
    _parent(study)
    assert seen[-1] == [1.0, 2.0, 3.0, 4.0, 5.0]
    _add(study, 6.0, 6.0)
    _parent(study)
    assert seen[-1] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_several_objectives_tournament_picks_the_first_front() -> None:
    study = optuna.create_study(
        directions=["minimize", "minimize"],
        sampler=RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0),
    )
    for values in [(2.0, 2.0), (0.0, 3.0), (3.0, 3.0), (3.0, 0.0)]:
        study.add_trial(
            optuna.create_trial(params={"x": 1.0}, distributions=DIST, values=list(values))
        )
    assert _parent(study) in (1, 3)  # the Pareto front's extremes have infinite crowding


def test_children_are_one_mutation_from_the_parent_and_never_duplicates() -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=RegularizedEvolutionSampler(population_size=8, sample_size=3, seed=0),
    )
    study.optimize(matches, n_trials=60)
    by_number = {t.number: t for t in study.trials}
    seen = set()
    for t in study.trials:
        lineage = t.system_attrs.get(PLAN_ATTR)
        if lineage:
            parent = by_number[lineage["parent"]].params
            diff = [k for k in t.params if t.params[k] != parent[k]]
            assert diff == lineage["mutated"]
            assert len(diff) == 1
            assert tuple(sorted(t.params.items())) not in seen
        seen.add(tuple(sorted(t.params.items())))


def test_conditional_space_draws_params_the_parent_lacks() -> None:
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conditional, n_trials=60)
    by_number = {t.number: t for t in study.trials}
    switched = 0
    for t in study.trials:
        lineage = t.system_attrs.get(PLAN_ATTR)
        if lineage and t.params["kind"] != by_number[lineage["parent"]].params["kind"]:
            switched += 1
    assert switched > 0
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_predictor_guided_children_are_ranked_by_the_predictor() -> None:
    sampler = RegularizedEvolutionSampler(
        population_size=10, sample_size=3, predictor=KernelPredictor(), num_candidates=10, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(matches, n_trials=100)
    assert study.best_value == 10  # plain evolution reaches 8-10 here, random search 5-6


def test_guided_candidates_are_distinct_and_new_and_cover_a_small_neighbourhood() -> None:
    space = {f"x{i}": CategoricalDistribution(["a", "b", "c"]) for i in range(2)}
    batches: list[tuple[int, list[dict[str, Any]]]] = []

    def recording(observed: Any, candidates: Any, distributions: Any) -> np.ndarray:
        batches.append((len(observed), list(candidates)))
        return np.arange(len(candidates), dtype=float)

    sampler = RegularizedEvolutionSampler(
        population_size=2, sample_size=2, predictor=recording, num_candidates=10, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(9):  # as many trials as the space has points (3 x 3)
        trial = study.ask(space)
        study.tell(trial, float(sum(v == "a" for v in trial.params.values())))
    assert len(batches) >= 3
    key = lambda p: tuple(sorted(p.items()))  # noqa: E731
    for number, batch in batches:  # ``number``: the trial planned, and the trials done before
        done = {key(t.params) for t in study.trials[:number]}
        parent = study.trials[study.trials[number].system_attrs[PLAN_ATTR]["parent"]].params
        # The parent's 4 neighbours, fewer than num_candidates: every new one is a candidate,
        # once, and nothing else is.
        new = {key({**parent, k: v}) for k in space for v in "abc" if v != parent[k]} - done
        assert sorted(key(c) for c in batch) == sorted(new)


def test_mutation_makes_local_moves_inside_the_distribution() -> None:
    rng = np.random.RandomState(0)
    ints = IntDistribution(0, 10, step=2)
    floats = FloatDistribution(1e-3, 1.0, log=True)
    cat = CategoricalDistribution(["a", "b", None])
    for _ in range(200):
        v = mutate_value(ints, 4, rng)
        assert v != 4 and v in range(0, 11, 2) and isinstance(v, int)
        f = mutate_value(floats, 0.01, rng)
        assert 1e-3 <= f <= 1.0 and f != 0.01 and isinstance(f, float)
        assert mutate_value(cat, "a", rng) in ("b", None)
    child, changed = mutate({"a": "a", "i": 4}, {"a": cat, "i": ints}, rng, 5)
    assert sorted(changed) == ["a", "i"] and child["a"] != "a" and child["i"] != 4


def test_mutation_and_random_draws_do_not_depend_on_the_order_of_params() -> None:
    # A trial's params come back in suggestion order from one storage and in another from the
    # next (the gRPC proxy sends maps): one seed must make one child either way.
    dists = {f"p{i}": CategoricalDistribution(["a", "b", "c", "d"]) for i in range(6)}
    params = {name: "a" for name in dists}
    backwards = dict(reversed(list(params.items())))
    backwards_dists = dict(reversed(list(dists.items())))
    for seed in range(20):
        one = mutate(params, dists, np.random.RandomState(seed), 2)
        other = mutate(backwards, backwards_dists, np.random.RandomState(seed), 2)
        assert one == other
        drawn = random_params(dists, np.random.RandomState(seed))
        assert drawn == random_params(backwards_dists, np.random.RandomState(seed))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population_size": 1}, "population_size"),
        ({"population_size": 5, "sample_size": 6}, "sample_size <= population_size"),
        ({"num_mutations": 0}, "num_mutations"),
        ({"num_candidates": 3}, "needs a `predictor`"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RegularizedEvolutionSampler(**kwargs)
