"""Hardware constraints checked before training, and a per-op latency lookup table."""

from optuna_nas.constraints._constraints import WEIGHTED_OPS
from optuna_nas.constraints._constraints import Constraints
from optuna_nas.constraints._constraints import Violation
from optuna_nas.constraints._latency_table import LatencyTable
from optuna_nas.constraints._latency_table import node_key

__all__ = [
    "WEIGHTED_OPS",
    "Constraints",
    "LatencyTable",
    "Violation",
    "node_key",
]
