"""Search spaces: Optuna trial suggestions that become :class:`~optuna_nas.spec.ArchitectureSpec`.

Every space samples with :meth:`~SearchSpace.suggest` (plain ``trial.suggest_*`` calls, so any
Optuna sampler drives it), rebuilds the same spec from ``trial.params`` with
:meth:`~SearchSpace.decode`, and lists its parameters with :meth:`~SearchSpace.distributions`.
Imports no torch.
"""

from optuna_nas.spaces._base import SearchSpace
from optuna_nas.spaces._cell import CELL_OPS
from optuna_nas.spaces._cell import NB201_OPS
from optuna_nas.spaces._cell import CellSpace
from optuna_nas.spaces._chain import CHAIN_OPS
from optuna_nas.spaces._chain import SKIPS
from optuna_nas.spaces._chain import ChainSpace
from optuna_nas.spaces._mixed import MixedSpace
from optuna_nas.spaces._mobile import DEFAULT_MOBILE_STAGES
from optuna_nas.spaces._mobile import MobileSpace
from optuna_nas.spaces._mobile import MobileStage
from optuna_nas.spaces._nasbench201 import nb201_arch_to_params
from optuna_nas.spaces._nasbench201 import params_to_nb201_arch

__all__ = [
    "CELL_OPS",
    "CHAIN_OPS",
    "DEFAULT_MOBILE_STAGES",
    "NB201_OPS",
    "SKIPS",
    "CellSpace",
    "ChainSpace",
    "MixedSpace",
    "MobileSpace",
    "MobileStage",
    "SearchSpace",
    "nb201_arch_to_params",
    "params_to_nb201_arch",
]
