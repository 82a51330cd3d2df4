"""Search strategies as Optuna samplers, and :func:`create_sampler` to get any one by name.

Each is an :class:`optuna.samplers.BaseSampler`: pass it to ``optuna.create_study(sampler=...)``.
They derive their state from the study's trials (and store what must persist in the study), so
parallel workers on one storage and resumed studies continue the same search, and they work on
any define-by-run Optuna search space.
"""

from optuna_nas.samplers._darts import DartsSampler
from optuna_nas.samplers._darts import DartsSearchConfig
from optuna_nas.samplers._darts import export_choices
from optuna_nas.samplers._evolution import RegularizedEvolutionSampler
from optuna_nas.samplers._factory import PREDICTOR_NAMES
from optuna_nas.samplers._factory import SAMPLER_NAMES
from optuna_nas.samplers._factory import create_sampler
from optuna_nas.samplers._predictor import KernelPredictor
from optuna_nas.samplers._predictor import Predictor
from optuna_nas.samplers._progressive import ProgressiveSampler
from optuna_nas.samplers._progressive import default_complexity
from optuna_nas.samplers._reinforce import ReinforceSampler

__all__ = [
    "PREDICTOR_NAMES",
    "SAMPLER_NAMES",
    "DartsSampler",
    "DartsSearchConfig",
    "KernelPredictor",
    "Predictor",
    "ProgressiveSampler",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
    "create_sampler",
    "default_complexity",
    "export_choices",
]
