"""Figures of a study with Optuna's own plots: PNG (matplotlib) and interactive HTML (plotly).

``optuna.visualization.matplotlib`` draws the PNGs and ``optuna.visualization`` (plotly) the
HTML pages; both read feasibility from the trials' constraints, so infeasible trials are drawn
apart from the front. The HTML pages share one ``plotly.min.js`` written next to them, so they
open offline.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from pathlib import Path
from typing import Any
import warnings

import optuna
from optuna.trial import FrozenTrial

from optuna_nas.report._summary import StudyReport


def _value_target(i: int) -> Callable[[FrozenTrial], float]:
    def target(trial: FrozenTrial) -> float:
        return float((trial.values or [float("nan")])[i])

    return target


def _figures(
    study: optuna.Study, summary: StudyReport, module: Any
) -> list[tuple[str, Callable[[], Any]]]:
    """``(file stem, thunk drawing the figure)`` for every figure that applies to ``study``."""
    names = list(summary.metric_names)
    figures: list[tuple[str, Callable[[], Any]]] = []
    if not summary.multi_objective:
        history = functools.partial(module.plot_optimization_history, study, target_name=names[0])
        return [("optimization_history", history)]
    if len(names) in (2, 3):
        figures.append(
            (
                "pareto_front",
                functools.partial(module.plot_pareto_front, study, target_names=names),
            )
        )
    for i, name in enumerate(names):
        draw = functools.partial(
            module.plot_optimization_history, study, target=_value_target(i), target_name=name
        )
        figures.append((f"history_{name}", draw))
    if summary.reference_point is not None:
        draw = functools.partial(
            module.plot_hypervolume_history, study, reference_point=list(summary.reference_point)
        )
        figures.append(("hypervolume_history", draw))
    return figures


def write_plots(study: optuna.Study, summary: StudyReport, out_dir: Path) -> list[Path]:
    """Draw the Pareto front (2 or 3 objectives), the history of every objective and the
    hypervolume history (several objectives), or the optimisation history (one objective),
    each as ``<name>.png`` and ``<name>.html`` in ``out_dir``; return the paths written.
    """
    import matplotlib.pyplot as plt
    import optuna.visualization as pv
    import optuna.visualization.matplotlib as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with warnings.catch_warnings():
        # Both plot modules are marked experimental by Optuna; the figures are what we want.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for stem, draw in _figures(study, summary, pm):
            ax = draw()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5.5)
            fig.tight_layout()
            path = out_dir / f"{stem}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
        for stem, draw in _figures(study, summary, pv):
            path = out_dir / f"{stem}.html"
            draw().write_html(path, include_plotlyjs="directory")
            written.append(path)
    return written
