"""Argument checks shared by every constructor, with Optuna-style messages.

A message names the argument, the rule and the value, as ``optuna.distributions`` does:
``"`epochs >= 1` must hold, but got epochs=0."``. An int is an ``int`` that is not a ``bool``
(``True`` is an ``int`` to Python, never a count to us).
"""

from __future__ import annotations

from collections.abc import Collection
import math
from typing import Any
from typing import TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_int(name: str, value: Any) -> int:
    """``value`` if it is an int, else ``TypeError`` (where a wrong type is a type error)."""
    if not is_int(value):
        raise TypeError(f"`{name}` must be an int, but got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` if it is an int in ``[minimum, maximum]``, else ``ValueError``."""
    rule = f"{name} >= {minimum}" if maximum is None else f"{minimum} <= {name} <= {maximum}"
    if not is_int(value):
        raise ValueError(f"`{rule}` must hold for an int, but got {name}={value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"`{rule}` must hold, but got {name}={value!r}.")
    return value


def check_optional_int(name: str, value: Any, *, minimum: int) -> int | None:
    """``value`` if it is None or an int ``>= minimum``, else ``ValueError``."""
    if value is not None and not (is_int(value) and value >= minimum):
        raise ValueError(
            f"`{name}` must be None or an int >= {minimum}, but got {name}={value!r}."
        )
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ``ValueError`` (listing them as given)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, but got {value!r}.")
    return value


def check_number(name: str, value: Any, *, low: float, high: float) -> float:
    """``value`` as a float if it is a real number (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"`{name}` must be a number in [{low}, {high}], but got {value!r}.")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """``value`` if it is a finite number > 0, else ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"`{name}` must be finite and > 0, but got {name}={value!r}.")
    return value


def check_typed_int(name: str, value: Any, *, minimum: int) -> int:
    """:func:`check_int` where a value that is no int at all is a ``TypeError`` (as specs,
    spaces and metrics have always reported it)."""
    return check_int(name, require_int(name, value), minimum=minimum)
