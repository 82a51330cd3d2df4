"""``report(study, out_dir=...)``: the Python side of ``optuna-nas report``."""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
from pathlib import Path

import optuna

from optuna_nas.report._plots import write_plots
from optuna_nas.report._summary import StudyReport
from optuna_nas.report._summary import summarize_study


def report(
    study: optuna.Study,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    top_k: int = 10,
    reference: Sequence[float] | None = None,
    plots: bool = True,
) -> StudyReport:
    """Summarise ``study`` and, with ``out_dir``, write it there.

    Files written to ``out_dir`` (created if missing): ``report.json`` (everything in the
    summary), ``front.csv`` (several objectives) or ``top_k.csv`` (one), ``history.csv``
    (hypervolume or best value after each complete trial), ``report.txt`` (the printed text) and,
    with ``plots``, the figures of :func:`~optuna_nas.report.write_plots` as PNG and HTML.

    Args:
        study: A loaded study.
        out_dir: Where to write the files; nothing is written without it.
        top_k: Rows of a single-objective report.
        reference: The hypervolume reference point in the objectives' units (default: derived,
            see :data:`~optuna_nas.report.REFERENCE_RULE`).
        plots: Draw the figures (needs matplotlib and plotly).

    Returns:
        The :class:`StudyReport`; ``print(result.to_text())`` prints what the CLI prints.
    """
    summary = summarize_study(study, top_k=top_k, reference=reference)
    if out_dir is None:
        return summary
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    rows_name = "front.csv" if summary.multi_objective else "top_k.csv"
    (out / rows_name).write_text(summary.front_csv())
    (out / "history.csv").write_text(summary.history_csv())
    (out / "report.txt").write_text(summary.to_text() + "\n")
    if plots and summary.counts["complete"] > 0:
        write_plots(study, summary, out)
    return summary
