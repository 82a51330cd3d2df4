"""NAS-Bench-201 arch strings <-> :class:`~optuna_nas.spaces.CellSpace` params.

An arch string (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020) lists the op of every cell edge ``j <- i`` as ``op~i``, grouped
by target node ``j = 1, 2, 3`` and joined by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

Its params in :meth:`CellSpace.nasbench201() <optuna_nas.spaces.CellSpace.nasbench201>` are
``cell/edge_{j}_{i}/op`` with the same op names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna_nas.spaces._cell import NB201_OPS
from optuna_nas.spaces._cell import cell_edges
from optuna_nas.spaces._cell import edge_param

_NUM_NODES = 4


def nb201_arch_to_params(arch: str) -> dict[str, str]:
    """The :class:`~optuna_nas.spaces.CellSpace` params of NAS-Bench-201 arch string ``arch``.

    Raises ``ValueError`` saying what is wrong with a malformed string.
    """
    if not isinstance(arch, str):
        raise TypeError(f"`arch` must be a str, but got {type(arch).__name__}.")
    groups = arch.split("+")
    if len(groups) != _NUM_NODES - 1:
        raise ValueError(
            f"a NAS-Bench-201 arch string has {_NUM_NODES - 1} '+'-separated node groups, but "
            f"{arch!r} has {len(groups)}."
        )
    params: dict[str, str] = {}
    for j, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(
                f"node group {j} of {arch!r} must start and end with '|', but is {group!r}."
            )
        tokens = group[1:-1].split("|")
        if len(tokens) != j:
            raise ValueError(
                f"node group {j} of {arch!r} must list {j} edge(s) 'op~i', but is {group!r}."
            )
        for i, token in enumerate(tokens):
            op, sep, src = token.partition("~")
            if not sep or src != str(i):
                raise ValueError(
                    f"edge {i} of node group {j} of {arch!r} must be 'op~{i}', but is {token!r}."
                )
            if op not in NB201_OPS:
                raise ValueError(
                    f"edge {j}<-{i} of {arch!r} has op {op!r}, which is not one of the "
                    f"NAS-Bench-201 ops {list(NB201_OPS)}."
                )
            params[edge_param(j, i)] = op
    return params


def params_to_nb201_arch(params: Mapping[str, Any]) -> str:
    """The NAS-Bench-201 arch string of the cell-space ``params`` (e.g. ``trial.params``).

    Keys other than the six ``cell/edge_{j}_{i}/op`` are not read. Raises ``ValueError`` if one
    of those is missing or holds an op outside the NAS-Bench-201 op set.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"`params` must be a mapping, but got {type(params).__name__}.")
    groups: list[list[str]] = [[] for _ in range(_NUM_NODES - 1)]
    for j, i in cell_edges(_NUM_NODES):
        name = edge_param(j, i)
        if name not in params:
            raise ValueError(
                f"parameter {name!r} is missing from `params` (given: {sorted(params)})."
            )
        op = params[name]
        if op not in NB201_OPS:
            raise ValueError(
                f"parameter {name!r} is {op!r}, which is not one of the NAS-Bench-201 ops "
                f"{list(NB201_OPS)}."
            )
        groups[j - 1].append(f"{op}~{i}")
    return "+".join("|" + "|".join(g) + "|" for g in groups)
