"""Which spec nodes each searched parameter decides: the torch-free half of the DARTS supernet.

DARTS (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019) relaxes a choice of
op into a weighted mix of every candidate op on a *fixed* graph. A search space of ours is
plain Optuna parameters, so the supernet is derived from the space itself: every searched
parameter (by default each ``.../op`` categorical the space asks for) is varied alone, one
choice at a time, through :meth:`SearchSpace.decode`; the spec nodes whose op or config change
are the nodes that parameter decides, and they become mixed ops. Everything else must stay the
same: the same node ids, edges and shapes for every choice (otherwise no mix is possible and a
``ValueError`` names the parameter and choice). Parameters that are not searched must be given
in ``fixed_params``.

* :class:`~optuna_nas.spaces.CellSpace`: the searched parameters are ``cell/edge_{j}_{i}/op``;
  one mixed op per edge in every cell, all cells sharing the edge's alpha (as DARTS shares one
  normal cell). Nothing needs fixing.
* :class:`~optuna_nas.spaces.ChainSpace`: the searched parameters are ``layer{i}/op``; fixed are
  ``depth``, ``activation``, ``layer{i}/width`` (equal to ``stem_channels``, so that pooling
  and ``identity``, which keep their input's channels, give the same shape as a convolution),
  ``layer{i}/stride`` (1, for the same reason) and ``layer{i}/skip``.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution

from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec

# Ops the builder lowers to one submodule call; `identity` and `zero` are graph-only.
MODULE_OPS = frozenset(
    {"conv", "sep_conv", "mbconv", "avg_pool", "max_pool", "batchnorm", "dropout"}
)
SEARCHABLE_OPS = MODULE_OPS | {"identity", "zero"}


@dataclass(frozen=True)
class SearchedParam:
    """One searched parameter: its choices and the spec nodes it decides.

    Attributes:
        name: The Optuna parameter name, e.g. ``"cell/edge_1_0/op"``.
        choices: Its choices, in the distribution's order (alpha has one entry per choice).
        nodes: Ids of the spec nodes whose op depends on it (one per cell for a cell edge).
        skip: For each choice, whether it makes its nodes ``identity`` (a skip connection).
    """

    name: str
    choices: tuple[Any, ...]
    nodes: tuple[str, ...]
    skip: tuple[bool, ...]


@dataclass(frozen=True)
class SupernetPlan:
    """A space split into searched parameters (mixed ops) and fixed ones.

    Attributes:
        space: The search space.
        fixed: The fixed parameters' values.
        params: The searched parameters, in the order the space asks for them.
        specs: ``specs[k]`` is the spec with every searched parameter at its ``k``-th choice
            (its last choice when it has fewer); ``specs[0]`` is the reference skeleton.
    """

    space: SearchSpace
    fixed: Mapping[str, Any]
    params: tuple[SearchedParam, ...]
    specs: tuple[ArchitectureSpec, ...]

    def full_params(self, choices: Mapping[str, Any]) -> dict[str, Any]:
        """``choices`` of the searched parameters together with the fixed ones."""
        return {**self.fixed, **choices}

    def decode(self, choices: Mapping[str, Any]) -> ArchitectureSpec:
        """The spec of an architecture given its searched choices."""
        return self.space.decode(self.full_params(choices))

    def distributions(self) -> dict[str, BaseDistribution]:
        """The distributions of the searched and the fixed parameters."""
        dists = self.space.distributions()
        names = [p.name for p in self.params] + list(self.fixed)
        return {n: dists[n] for n in names}


class _Recorder(Mapping[str, Any]):
    """Params for ``decode`` that record what the space asks for and name what is missing."""

    def __init__(self, values: Mapping[str, Any], searched: Sequence[str]) -> None:
        self._values = dict(values)
        self._searched = searched
        self.asked: list[str] = []

    def __contains__(self, key: object) -> bool:
        if key not in self._values:
            raise ValueError(
                f"DARTS mixes ops on a fixed graph, so every parameter the space asks for "
                f"must be searched or fixed: `fixed_params` lacks {key!r} (searched: "
                f"{list(self._searched)})."
            )
        if key not in self.asked:
            self.asked.append(str(key))
        return True

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def make_plan(
    space: SearchSpace, fixed_params: Mapping[str, Any] | None, searched: Sequence[str] | None
) -> SupernetPlan:
    """Split ``space`` into searched and fixed parameters; see the module docstring."""
    if not isinstance(space, SearchSpace):
        raise TypeError(f"`space` must be a SearchSpace, but got {type(space).__name__}.")
    dists = space.distributions()
    fixed = dict(fixed_params or {})
    unknown = sorted(set(fixed) - set(dists))
    if unknown:
        raise ValueError(
            f"`fixed_params` holds {unknown}, which space {space.name!r} does not declare."
        )
    if searched is None:
        names = [n for n in dists if n.endswith("/op") and n not in fixed]
    else:
        names = list(searched)
    for n in names:
        if not isinstance(dists.get(n), CategoricalDistribution):
            raise ValueError(
                f"`searched_params` must name categorical parameters of space "
                f"{space.name!r}, but {n!r} is not one."
            )
        if n in fixed:
            raise ValueError(f"parameter {n!r} is both searched and in `fixed_params`.")
    choices = {n: tuple(dists[n].choices) for n in names}  # type: ignore[attr-defined]
    base = {**fixed, **{n: c[0] for n, c in choices.items()}}
    rec = _Recorder(base, names)
    reference = space.decode(rec)
    asked = [n for n in rec.asked if n in choices]
    variants: dict[str, list[ArchitectureSpec]] = {}
    for n in asked:
        variants[n] = []
        for c in choices[n]:
            rec = _Recorder({**base, n: c}, names)
            variants[n].append(space.decode(rec))
            asked += [m for m in rec.asked if m in choices and m not in asked]
    if not asked:
        raise ValueError(f"space {space.name!r} asks for none of the searched parameters {names}.")
    params = tuple(_searched_param(n, choices[n], reference, variants[n]) for n in asked)
    _check_disjoint(params)
    top = max(len(p.choices) for p in params)
    specs = tuple(
        space.decode({**base, **{p.name: p.choices[min(k, len(p.choices) - 1)] for p in params}})
        for k in range(top)
    )
    for k, spec in enumerate(specs):
        _check_joint(params, spec, variants, k)
    return SupernetPlan(space=space, fixed=fixed, params=params, specs=specs)


def _searched_param(
    name: str, choices: tuple[Any, ...], ref: ArchitectureSpec, variants: list[ArchitectureSpec]
) -> SearchedParam:
    nodes: list[str] = []
    for choice, spec in zip(choices, variants, strict=True):
        if [n.id for n in spec.nodes] != [n.id for n in ref.nodes] or spec.edges != ref.edges:
            raise ValueError(
                f"parameter {name!r} = {choice!r} changes the network's graph (nodes or "
                "edges); DARTS mixes ops on a fixed graph: fix the parameters that add or "
                "remove nodes in `fixed_params`, or do not search this one."
            )
        for node in spec.nodes:
            if spec.shape(node.id) != ref.shape(node.id):
                raise ValueError(
                    f"parameter {name!r} = {choice!r} changes the shape of node {node.id!r} "
                    f"from {ref.shape(node.id)} to {spec.shape(node.id)}; every choice of a "
                    "mixed op must give the same shape (fix widths and strides so they agree)."
                )
            if node != ref.node(node.id) and node.id not in nodes:
                nodes.append(node.id)
    for spec in variants:
        for node_id in nodes:
            op = spec.node(node_id).op
            if op not in SEARCHABLE_OPS:
                raise ValueError(
                    f"parameter {name!r} decides node {node_id!r} with op {op!r}; a mixed op "
                    f"can hold only unary ops {sorted(SEARCHABLE_OPS)}."
                )
    skip = tuple(all(s.node(n).op == "identity" for n in nodes) for s in variants)
    return SearchedParam(name=name, choices=choices, nodes=tuple(nodes), skip=skip)


def _check_disjoint(params: Sequence[SearchedParam]) -> None:
    owner: dict[str, str] = {}
    for p in params:
        for n in p.nodes:
            if n in owner:
                raise ValueError(
                    f"node {n!r} depends on both {owner[n]!r} and {p.name!r}; DARTS needs "
                    "each mixed node decided by one parameter."
                )
            owner[n] = p.name


def _check_joint(
    params: Sequence[SearchedParam],
    spec: ArchitectureSpec,
    variants: Mapping[str, list[ArchitectureSpec]],
    k: int,
) -> None:
    """Each node must look the same when all parameters change together as when one does."""
    for p in params:
        alone = variants[p.name][min(k, len(p.choices) - 1)]
        for n in p.nodes:
            if spec.node(n) != alone.node(n) or spec.shape(n) != alone.shape(n):
                raise ValueError(
                    f"node {n!r} of parameter {p.name!r} changes with other searched "
                    "parameters; DARTS needs the searched parameters to be independent."
                )
