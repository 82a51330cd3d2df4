"""DARTS (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019) as a sampler.

:class:`DartsSampler` runs the differentiable search on a supernet derived from a search
space (:class:`DartsSupernet`, one :class:`MixedOp` per searched node), keeps alpha's history
in the study, and proposes the argmax architecture and draws from ``softmax(alpha / T)`` as trials.
:func:`make_plan` and :class:`DartsSearchConfig` are the pieces it is built from.
"""

from optuna_nas.samplers._darts._plan import SearchedParam
from optuna_nas.samplers._darts._plan import SupernetPlan
from optuna_nas.samplers._darts._plan import make_plan
from optuna_nas.samplers._darts._sampler import DartsSampler
from optuna_nas.samplers._darts._search import DartsSearchConfig
from optuna_nas.samplers._darts._search import EpochRecord
from optuna_nas.samplers._darts._supernet import DartsSupernet
from optuna_nas.samplers._darts._supernet import MixedOp
from optuna_nas.samplers._darts._supernet import Zero
from optuna_nas.samplers._darts._supernet import export_choices

__all__ = [
    "DartsSampler",
    "DartsSearchConfig",
    "DartsSupernet",
    "EpochRecord",
    "MixedOp",
    "SearchedParam",
    "SupernetPlan",
    "Zero",
    "export_choices",
    "make_plan",
]
