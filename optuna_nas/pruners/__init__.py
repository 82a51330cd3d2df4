"""Pruners for NAS: learning-curve extrapolation and Pareto-aware early stopping.

All are :class:`optuna.pruners.BasePruner` subclasses. In multi-objective studies, where Optuna
refuses ``Trial.report`` / ``Trial.should_prune``, report through :func:`report_and_prune`.
"""

from optuna_nas.pruners._curves import CurveForecast
from optuna_nas.pruners._curves import extrapolate_curve
from optuna_nas.pruners._curves import point_forecast
from optuna_nas.pruners._learning_curve import LearningCurvePruner
from optuna_nas.pruners._pareto import ParetoPruner
from optuna_nas.pruners._pareto import report_and_prune
from optuna_nas.pruners._patience import patience_pruner

__all__ = [
    "CurveForecast",
    "LearningCurvePruner",
    "ParetoPruner",
    "extrapolate_curve",
    "point_forecast",
    "patience_pruner",
    "report_and_prune",
]
