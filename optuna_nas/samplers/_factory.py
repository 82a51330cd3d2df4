"""``create_sampler(name, **options)``: every search strategy by name, with NAS defaults."""

from __future__ import annotations

import inspect
from typing import Any

from optuna.samplers import BaseSampler
from optuna.samplers import GPSampler
from optuna.samplers import NSGAIIISampler
from optuna.samplers import NSGAIISampler
from optuna.samplers import RandomSampler
from optuna.samplers import TPESampler

from optuna_nas.samplers._darts import DartsSampler
from optuna_nas.samplers._evolution import RegularizedEvolutionSampler
from optuna_nas.samplers._predictor import KernelPredictor
from optuna_nas.samplers._progressive import ProgressiveSampler
from optuna_nas.samplers._reinforce import ReinforceSampler

# name -> (constructor, NAS defaults applied unless the caller overrides them)
_SAMPLERS: dict[str, tuple[type[BaseSampler], dict[str, Any]]] = {
    "random": (RandomSampler, {}),
    # multivariate + group: TPE models the joint of decisions and splits conditional spaces into
    # groups that co-occur; constant liar keeps parallel workers from proposing the same point.
    "tpe": (TPESampler, {"multivariate": True, "group": True, "constant_liar": True}),
    "gp": (GPSampler, {}),
    "nsga2": (NSGAIISampler, {}),
    "nsga3": (NSGAIIISampler, {}),
    "evolution": (RegularizedEvolutionSampler, {}),
    "reinforce": (ReinforceSampler, {}),
    "progressive": (ProgressiveSampler, {}),
    "darts": (DartsSampler, {}),
}

SAMPLER_NAMES: tuple[str, ...] = tuple(_SAMPLERS)
"""The names :func:`create_sampler` accepts."""

# name -> what ``predictor=`` adds to it: the options used with a predictor unless overridden.
# Evolution ranks 20 mutated children of the tournament winner per trial (the setting of
# ``evolution_predictor`` in benchmarks/nb201.py); progressive search already makes 20.
_GUIDED: dict[str, dict[str, Any]] = {"evolution": {"num_candidates": 20}, "progressive": {}}

PREDICTOR_NAMES: tuple[str, ...] = ("kernel",)
"""The predictor names ``create_sampler(..., predictor=...)`` accepts (``"kernel"``:
:class:`KernelPredictor` with its defaults)."""


def create_sampler(name: str, **options: Any) -> BaseSampler:
    """The sampler called ``name``, built with ``options`` over our NAS defaults.

    Names: ``random``, ``tpe`` (``TPESampler(multivariate=True, group=True,
    constant_liar=True)``: conditional NAS spaces and parallel workers), ``gp`` (``GPSampler``;
    needs torch, handles categorical params), ``nsga2``, ``nsga3``, ``evolution``
    (:class:`RegularizedEvolutionSampler`), ``reinforce`` (:class:`ReinforceSampler`),
    ``progressive`` (:class:`ProgressiveSampler`) and ``darts`` (:class:`DartsSampler`).
    ``options`` are the sampler's keyword arguments (``seed=0``, ...); an unknown name or
    option raises ``ValueError`` listing what is accepted.

    Predictor-guided search: ``evolution`` and ``progressive`` take ``predictor="kernel"``
    (a fresh :class:`KernelPredictor`), or any :class:`~optuna_nas.samplers.Predictor`
    (e.g. ``KernelPredictor(exploration=0.5)``), to rank candidate children before one is
    evaluated; ``create_sampler("evolution", predictor="kernel")`` also sets
    ``num_candidates=20`` unless given. These were the best of our samplers on NAS-Bench-201
    (``benchmarks/RESULTS.md``, "NAS-Bench-201: samplers": ``evolution_predictor`` and
    ``progressive_predictor`` are exactly these two calls with ``seed=s``).
    ``predictor=None`` is the plain sampler; other names take no ``predictor``.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"`name` must be one of {list(SAMPLER_NAMES)}, but got {name!r}.")
    cls, defaults = _SAMPLERS[name]
    if options.get("predictor") is not None:
        options = _with_predictor(name, options)
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"create_sampler({name!r}) got unknown option(s) {unknown}; {cls.__name__} accepts "
            f"{sorted(accepted)}."
        )
    return cls(**{**defaults, **options})


def _with_predictor(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``predictor`` resolved to a predictor and its guided defaults added."""
    if name not in _GUIDED:
        raise ValueError(
            f"`predictor` is accepted by {sorted(_GUIDED)} only, but got it for {name!r}."
        )
    predictor = options["predictor"]
    if isinstance(predictor, str):
        if predictor not in PREDICTOR_NAMES:
            raise ValueError(
                f"`predictor` must be one of {list(PREDICTOR_NAMES)}, a Predictor or None, but "
                f"got {predictor!r}."
            )
        predictor = KernelPredictor()
    elif not callable(predictor):
        raise ValueError(
            f"`predictor` must be one of {list(PREDICTOR_NAMES)}, a Predictor or None, but got "
            f"{predictor!r}."
        )
    return {**_GUIDED[name], **options, "predictor": predictor}
