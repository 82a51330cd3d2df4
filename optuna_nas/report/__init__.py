"""Reports read from a study's storage: the Pareto front and architecture summaries."""

from optuna_nas.report._pareto import describe_spec
from optuna_nas.report._pareto import pareto_table

__all__ = [
    "describe_spec",
    "pareto_table",
]
