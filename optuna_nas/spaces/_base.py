"""The search-space contract: one description of a space drives both ``suggest`` and ``decode``.

A space describes itself once, in :meth:`SearchSpace.build`, as a function of a *chooser*:
``choose(name)`` returns the value of parameter ``name``, whose distribution the space declares
in :meth:`SearchSpace.distributions`. :meth:`SearchSpace.suggest` passes a chooser that calls
``trial.suggest_categorical`` / ``suggest_int`` / ``suggest_float``; :meth:`SearchSpace.decode`
passes one that reads ``trial.params`` and checks each value against the same distribution. The
two paths therefore run the same code and can never drift, and a parameter name always has the
distribution the space declared for it, whatever was chosen before it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import math
import numbers
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_nas._validation import is_int
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import get_op
from optuna_nas.spec import spec_from_layers

Choose = Callable[[str], Any]
"""``choose(name) -> value``: the value of the declared parameter ``name``."""

_Pick = Callable[[str, BaseDistribution], Any]


class SearchSpace(abc.ABC):
    """A search space of architectures expressed as plain Optuna suggestions.

    Subclasses implement :attr:`name`, :meth:`distributions` and :meth:`build`; users call
    :meth:`suggest` inside an objective and :meth:`decode` on ``trial.params`` afterwards.
    Because the space only calls ``trial.suggest_*``, every Optuna sampler can drive it.

    Every space builds networks for one data shape, set by its constructor.
    """

    input_shape: tuple[int, int, int]
    """``(C, H, W)`` of the data; every spec of the space takes this input."""

    num_outputs: int
    """Number of outputs (classes) of every spec of the space."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short name of the space, stored in each spec's metadata as ``{"space": name}``."""

    @abc.abstractmethod
    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter the space can ask for, with its distribution.

        This is the union over conditional branches: a trial asks for a subset of these names
        (e.g. deeper layers only when the depth is large), always with this distribution.
        """

    @abc.abstractmethod
    def build(self, choose: Choose) -> ArchitectureSpec:
        """The space's one description: build a spec, asking ``choose(name)`` for each choice.

        Only names declared in :meth:`distributions` may be asked for. Call :meth:`suggest` or
        :meth:`decode` rather than this method.
        """

    def suggest(self, trial: optuna.trial.BaseTrial) -> ArchitectureSpec:
        """Sample an architecture with ``trial.suggest_*`` calls and return its spec."""
        return self.build(self._chooser(lambda name, dist: _suggest(trial, name, dist)))

    def decode(self, params: Mapping[str, Any]) -> ArchitectureSpec:
        """Rebuild the spec that :meth:`suggest` returned, from ``trial.params`` alone.

        Keys that the space does not ask for (other hyperparameters of the trial, or layers a
        smaller depth does not use) are not read. A parameter that the space asks for but that
        is missing, or whose value its distribution does not contain, raises ``ValueError``.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"`params` must be a mapping, but got {type(params).__name__}.")
        return self.build(self._chooser(lambda name, dist: self._read(params, name, dist)))

    # ------------------------------------------------------------------ helpers for subclasses

    def _chooser(self, pick: _Pick) -> Choose:
        declared = self.distributions()

        def choose(name: str) -> Any:
            if name not in declared:
                raise LookupError(
                    f"space {self.name!r} asked for parameter {name!r}, which its "
                    "distributions() does not declare; this is a bug in the space."
                )
            return pick(name, declared[name])

        return choose

    def _read(self, params: Mapping[str, Any], name: str, dist: BaseDistribution) -> Any:
        if name not in params:
            raise ValueError(
                f"cannot decode an architecture of space {self.name!r}: parameter {name!r} is "
                f"missing from `params` (given: {sorted(params)})."
            )
        return _checked_value(self.name, name, dist, params[name])

    def _check_fits(self, pick: _Pick, what: str) -> None:
        """Build the space's worst case (as chosen by ``pick``) and raise if it is invalid."""
        try:
            self.build(self._chooser(pick))
        except ValueError as e:
            raise ValueError(
                f"{type(self).__name__} does not fit its `input_shape`: {what} gives an invalid "
                f"network: {e}"
            ) from None

    def _metadata(self) -> dict[str, Any]:
        return {"space": self.name}


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(
        f"parameter {name!r} has a {type(dist).__name__}; search spaces support "
        "CategoricalDistribution, IntDistribution and FloatDistribution."
    )


def _checked_value(space: str, name: str, dist: BaseDistribution, value: Any) -> Any:
    """``value`` as the distribution's own value type, or a ``ValueError`` naming ``name``."""
    where = f"parameter {name!r} of space {space!r}"
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if isinstance(choice, bool) == isinstance(value, bool) and choice == value:
                return choice
        raise ValueError(f"{where} must be one of {list(dist.choices)}, but got {value!r}.")
    if isinstance(dist, IntDistribution):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{where} must be an int, but got {value!r}.")
        v = int(value)
        if not dist.low <= v <= dist.high or (v - dist.low) % dist.step:
            raise ValueError(
                f"{where} must be in [{dist.low}, {dist.high}] with step {dist.step}, "
                f"but got {v!r}."
            )
        return v
    if isinstance(dist, FloatDistribution):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be a float, but got {value!r}.")
        f = float(value)
        on_grid = dist.step is None or math.isclose(
            (f - dist.low) / dist.step, round((f - dist.low) / dist.step), abs_tol=1e-8
        )
        if not (dist.low <= f <= dist.high and on_grid):
            step = "" if dist.step is None else f" with step {dist.step}"
            raise ValueError(f"{where} must be in [{dist.low}, {dist.high}]{step}, but got {f!r}.")
        return f
    raise TypeError(f"{where} has an unsupported {type(dist).__name__}.")


# ---------------------------------------------------------------------- graph building


class Graph:
    """Rows for :func:`~optuna_nas.spec.spec_from_layers`, with shapes inferred on demand.

    Shapes come from the op declarations of the spec package, so a space never guesses the
    channels or resolution of a node it has added.
    """

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        self._input_shape = input_shape
        self._rows: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {"input": input_shape}

    def add(self, node_id: str, op: str, config: Mapping[str, Any], inputs: Sequence[str]) -> str:
        if node_id in self._rows:  # pragma: no cover - spaces build unique ids
            raise AssertionError(f"duplicate node id {node_id!r}")
        self._rows[node_id] = (op, dict(config), tuple(inputs))
        return node_id

    def shape(self, node_id: str) -> tuple[int, ...]:
        if node_id not in self._shapes:
            op, config, inputs = self._rows[node_id]
            opdef = get_op(op)
            in_shapes = [self.shape(i) for i in inputs]
            self._shapes[node_id] = opdef.infer_shape(
                node_id, opdef.normalise_config(config), in_shapes
            )
        return self._shapes[node_id]

    def spec(self, *, num_outputs: int, metadata: Mapping[str, Any]) -> ArchitectureSpec:
        rows = [(i, op, cfg, ins) for i, (op, cfg, ins) in self._rows.items()]
        return spec_from_layers(
            rows, input_shape=self._input_shape, num_outputs=num_outputs, metadata=metadata
        )


# ---------------------------------------------------------------------- argument checks


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    ok = (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and all(is_int(x) and x >= 1 for x in input_shape)
    )
    if not ok:
        raise ValueError(
            f"`input_shape` must be (C, H, W) with three positive ints, but got {input_shape!r}."
        )
    return input_shape[0], input_shape[1], input_shape[2]


def check_range(low_name: str, low: int, high_name: str, high: int) -> None:
    if low > high:
        raise ValueError(
            f"`{low_name} <= {high_name}` must hold, but got ({low_name}={low!r}, "
            f"{high_name}={high!r})."
        )


def check_choices(
    name: str,
    values: Any,
    *,
    allowed: Sequence[Any] | None = None,
    rule: tuple[str, Callable[[Any], bool]] | None = None,
) -> tuple[Any, ...]:
    """``values`` as a tuple of distinct choices, each in ``allowed`` and passing ``rule``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"`{name}` must be a sequence of choices, but got {values!r}.")
    out = tuple(values)
    if not out:
        raise ValueError(f"`{name}` must hold at least one choice, but got {values!r}.")
    for v in out:
        if allowed is not None and v not in allowed:
            raise ValueError(f"`{name}` holds {v!r}, which is not one of {list(allowed)}.")
        if rule is not None and not rule[1](v):
            raise ValueError(f"every choice in `{name}` must be {rule[0]}, but got {v!r}.")
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}` must not repeat a choice, but got {values!r}.")
    return out


def positive_int(v: Any) -> bool:
    return is_int(v) and v >= 1


def odd_positive_int(v: Any) -> bool:
    return positive_int(v) and v % 2 == 1


def categorical(choices: Sequence[Any]) -> CategoricalDistribution:
    return CategoricalDistribution(tuple(choices))


def any_value(dist: BaseDistribution) -> Any:
    """Some value of ``dist`` (its first choice, or its low end), for worst-case builds."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, (IntDistribution, FloatDistribution)):
        return dist.low
    raise TypeError(f"unsupported {type(dist).__name__}.")
