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


def create_sampler(name: str, **options: Any) -> BaseSampler:
    """The sampler called ``name``, built with ``options`` over our NAS defaults.

    Names: ``random``, ``tpe`` (``TPESampler(multivariate=True, group=True,
    constant_liar=True)``: conditional NAS spaces and parallel workers), ``gp`` (``GPSampler``;
    needs torch, handles categorical params), ``nsga2``, ``nsga3``, ``evolution``
    (:class:`RegularizedEvolutionSampler`), ``reinforce`` (:class:`ReinforceSampler`),
    ``progressive`` (:class:`ProgressiveSampler`) and ``darts`` (:class:`DartsSampler`).
    ``options`` are the sampler's keyword arguments (``seed=0``, ...); an unknown name or
    option raises ``ValueError`` listing what is accepted.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"`name` must be one of {list(SAMPLER_NAMES)}, but got {name!r}.")
    cls, defaults = _SAMPLERS[name]
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
