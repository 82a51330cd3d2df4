"""Reports read from a study's storage, and the architecture shown in optuna-dashboard.

:func:`report` summarises a study (the feasible Pareto front or top-k trials, the hypervolume
and its history) and writes JSON, CSV and figures; :func:`attach_architecture` and
:func:`annotate_study` put a diagram and a note on each trial for optuna-dashboard.
"""

from optuna_nas.report._dashboard import DIAGRAM_NAME
from optuna_nas.report._dashboard import annotate_study
from optuna_nas.report._dashboard import architecture_note
from optuna_nas.report._dashboard import attach_architecture
from optuna_nas.report._dashboard import default_artifact_dir
from optuna_nas.report._dashboard import run_dashboard
from optuna_nas.report._diagram import architecture_svg
from optuna_nas.report._diagram import node_label
from optuna_nas.report._hypervolume import REFERENCE_RULE
from optuna_nas.report._hypervolume import hypervolume
from optuna_nas.report._hypervolume import hypervolume_history
from optuna_nas.report._hypervolume import is_feasible
from optuna_nas.report._hypervolume import reference_point
from optuna_nas.report._pareto import describe_spec
from optuna_nas.report._pareto import format_value
from optuna_nas.report._pareto import pareto_table
from optuna_nas.report._pareto import stored_spec
from optuna_nas.report._plots import write_plots
from optuna_nas.report._progress import ProgressBar
from optuna_nas.report._progress import best_so_far
from optuna_nas.report._report import report
from optuna_nas.report._summary import StudyReport
from optuna_nas.report._summary import TrialRow
from optuna_nas.report._summary import summarize_study

__all__ = [
    "DIAGRAM_NAME",
    "ProgressBar",
    "REFERENCE_RULE",
    "StudyReport",
    "TrialRow",
    "annotate_study",
    "architecture_note",
    "architecture_svg",
    "attach_architecture",
    "best_so_far",
    "default_artifact_dir",
    "describe_spec",
    "format_value",
    "hypervolume",
    "hypervolume_history",
    "is_feasible",
    "node_label",
    "pareto_table",
    "reference_point",
    "report",
    "run_dashboard",
    "stored_spec",
    "summarize_study",
    "write_plots",
]
