"""Ways to score a candidate network; training knows nothing of Optuna."""

from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import FullTraining
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.evaluation._training import TrainingResult
from optuna_nas.evaluation._training import evaluate_accuracy
from optuna_nas.evaluation._training import train_model

__all__ = [
    "Evaluation",
    "Evaluator",
    "FullTraining",
    "Report",
    "TrainingConfig",
    "TrainingResult",
    "evaluate_accuracy",
    "train_model",
]
