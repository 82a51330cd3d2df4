"""optuna-nas: neural architecture search for PyTorch, built on Optuna."""

from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node
from optuna_nas.spec import canonical_hash

__version__ = "0.1.0"

__all__ = [
    "ArchitectureSpec",
    "Node",
    "__version__",
    "canonical_hash",
]
