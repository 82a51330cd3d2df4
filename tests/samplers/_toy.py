"""Toy search spaces with a known optimum (no training), shared by the sampler tests."""

from __future__ import annotations

import optuna

OPS = ("none", "a", "b", "c", "d")
TARGET = ("a", "b", "c", "d", "a", "b", "c", "d", "a", "b")


def matches(trial: optuna.Trial) -> float:
    """Ten categorical decisions; the value counts those equal to ``TARGET`` (optimum 10)."""
    return float(sum(trial.suggest_categorical(f"x{i}", OPS) == t for i, t in enumerate(TARGET)))


def conditional(trial: optuna.Trial) -> float:
    """A define-by-run space whose branches hold different params."""
    kind = trial.suggest_categorical("kind", ["conv", "mlp"])
    if kind == "conv":
        k = trial.suggest_int("conv/kernel", 1, 7, step=2)
        w = trial.suggest_float("conv/width", 1.0, 64.0, log=True)
        return -abs(k - 3) - abs(w - 16.0) / 16.0
    depth = trial.suggest_int("mlp/depth", 1, 6)
    act = trial.suggest_categorical("mlp/act", ["relu", "tanh", None])
    return -abs(depth - 4) - (0.0 if act == "relu" else 1.0) - 2.0
