"""Marks an experimental feature the way Optuna does: an ``ExperimentalWarning`` on use.

``optuna._experimental.experimental_class`` is private to Optuna (and wants an Optuna-style
release to cite), so we warn with Optuna's public ``ExperimentalWarning`` class instead; users
silence both alike (``warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)``).
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning


def warn_experimental(name: str) -> None:
    """Warn that ``name`` is experimental; called from its ``__init__``."""
    warnings.warn(
        f"{name} is experimental (supported from optuna-nas v0.1.0). "
        "The interface can change in the future.",
        ExperimentalWarning,
        stacklevel=3,
    )
