"""The torch side of optuna-nas: ``build_model`` turns an ``ArchitectureSpec`` into a module."""

from optuna_nas.nn._builder import BuiltModel
from optuna_nas.nn._builder import build_model
from optuna_nas.nn._builder import module_name

__all__ = [
    "BuiltModel",
    "build_model",
    "module_name",
]
