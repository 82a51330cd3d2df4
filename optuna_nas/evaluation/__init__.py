"""Ways to score a candidate network; training knows nothing of Optuna."""

from optuna_nas.data import resize_splits  # proxy tasks' data; defined in optuna_nas.data
from optuna_nas.data import subsample_splits
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import FullTraining
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._ensemble import MLPEnsemble
from optuna_nas.evaluation._ensemble import PredictorQuality
from optuna_nas.evaluation._hardware import check_device
from optuna_nas.evaluation._hardware import isolated_rng
from optuna_nas.evaluation._predictor import PredictorEvaluator
from optuna_nas.evaluation._proxy import ProxyTraining
from optuna_nas.evaluation._proxy import rescale_spec
from optuna_nas.evaluation._ranking import kendall_tau
from optuna_nas.evaluation._ranking import spearman_rho
from optuna_nas.evaluation._supernet import Supernet
from optuna_nas.evaluation._supernet import recalibrate_batchnorm
from optuna_nas.evaluation._supernet_evaluator import SupernetUnavailable
from optuna_nas.evaluation._supernet_evaluator import WeightSharingEvaluator
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.evaluation._training import TrainingResult
from optuna_nas.evaluation._training import evaluate_accuracy
from optuna_nas.evaluation._training import train_model
from optuna_nas.evaluation._zero_cost import ZERO_COST_PROXIES
from optuna_nas.evaluation._zero_cost import ZeroCostEvaluator
from optuna_nas.evaluation._zero_cost import grad_norm
from optuna_nas.evaluation._zero_cost import naswot
from optuna_nas.evaluation._zero_cost import snip
from optuna_nas.evaluation._zero_cost import synflow
from optuna_nas.evaluation._zero_cost import zero_cost_score
from optuna_nas.spaces._encoding import ParamEncoder

__all__ = [
    "MLPEnsemble",
    "ParamEncoder",
    "PredictorEvaluator",
    "PredictorQuality",
    "ProxyTraining",
    "ZERO_COST_PROXIES",
    "ZeroCostEvaluator",
    "grad_norm",
    "kendall_tau",
    "naswot",
    "rescale_spec",
    "resize_splits",
    "snip",
    "spearman_rho",
    "subsample_splits",
    "synflow",
    "zero_cost_score",
    "Evaluation",
    "Evaluator",
    "FullTraining",
    "Report",
    "TrainingConfig",
    "TrainingResult",
    "evaluate_accuracy",
    "train_model",
    "check_device",
    "isolated_rng",
    "Supernet",
    "SupernetUnavailable",
    "WeightSharingEvaluator",
    "recalibrate_batchnorm",
]
