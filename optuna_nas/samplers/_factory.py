"""``create_sampler(name, **options)``: every search strategy by name, with NAS defaults."""

from __future__ import annotations

from collections.abc import Callable
import importlib
import inspect
from typing import Any

from optuna.samplers import BaseSampler
from optuna.samplers import GPSampler
from optuna.samplers import NSGAIIISampler
from optuna.samplers import NSGAIISampler
from optuna.samplers import RandomSampler
from optuna.samplers import TPESampler

from optuna_nas.samplers._evolution import RegularizedEvolutionSampler
from optuna_nas.samplers._progressive import ProgressiveSampler
from optuna_nas.samplers._reinforce import ReinforceSampler


def _darts() -> Callable[..., BaseSampler]:
    try:
        module = importlib.import_module("optuna_nas.samplers._darts")
    except ModuleNotFoundError as e:
        if e.name is None or not e.name.startswith("optuna_nas.samplers._darts"):
            raise
        raise ImportError(
            "create_sampler('darts') needs `optuna_nas.samplers._darts`, which is not installed "
            "in this copy of optuna_nas."
        ) from e
    sampler = getattr(module, "DartsSampler", None)
    if sampler is None:
        raise ImportError(
            "create_sampler('darts') needs `DartsSampler` in `optuna_nas.samplers._darts`, "
            "which does not define it."
        )
    return sampler  # type: ignore[no-any-return]


# name -> (constructor, NAS defaults applied unless the caller overrides them)
_SAMPLERS: dict[str, tuple[Callable[[], Callable[..., BaseSampler]], dict[str, Any]]] = {
    "random": (lambda: RandomSampler, {}),
    # multivariate + group: TPE models the joint of decisions and splits conditional spaces into
    # groups that co-occur; constant liar keeps parallel workers from proposing the same point.
    "tpe": (lambda: TPESampler, {"multivariate": True, "group": True, "constant_liar": True}),
    "gp": (lambda: GPSampler, {}),
    "nsga2": (lambda: NSGAIISampler, {}),
    "nsga3": (lambda: NSGAIIISampler, {}),
    "evolution": (lambda: RegularizedEvolutionSampler, {}),
    "reinforce": (lambda: ReinforceSampler, {}),
    "progressive": (lambda: ProgressiveSampler, {}),
    "darts": (_darts, {}),
}

SAMPLER_NAMES: tuple[str, ...] = tuple(_SAMPLERS)
"""The names :func:`create_sampler` accepts."""


def create_sampler(name: str, **options: Any) -> BaseSampler:
    """The sampler called ``name``, built with ``options`` over our NAS defaults.

    Names: ``random``, ``tpe`` (``TPESampler(multivariate=True, group=True,
    constant_liar=True)``: conditional NAS spaces and parallel workers), ``gp`` (``GPSampler``;
    needs torch, handles categorical params), ``nsga2``, ``nsga3``, ``evolution``
    (:class:`RegularizedEvolutionSampler`), ``reinforce`` (:class:`ReinforceSampler`),
    ``progressive`` (:class:`ProgressiveSampler`) and ``darts`` (``DartsSampler``, imported
    when asked for). ``options`` are the sampler's keyword arguments (``seed=0``, ...); an
    unknown name or option raises ``ValueError`` listing what is accepted.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"`name` must be one of {list(SAMPLER_NAMES)}, but got {name!r}.")
    factory, defaults = _SAMPLERS[name]
    cls = factory()
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
