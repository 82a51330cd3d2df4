"""The mixed search space: the cell and its macro skeleton searched at once.

The network of :class:`~optuna_nas.spaces.CellSpace` (the NAS-Bench-201 skeleton of Dong &
Yang, ICLR 2020), where the width and the number of cells per stage, fixed in NAS-Bench-201,
are searched together with the cell. Parameters:

* ``macro/init_channels``: one of ``init_channels`` (channels of the stem and first stage);
* ``macro/cells_per_stage``: int in ``[min_cells_per_stage, max_cells_per_stage]``;
* ``cell/edge_{j}_{i}/op``: the cell's edge ops, as in :class:`~optuna_nas.spaces.CellSpace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import IntDistribution

from optuna_nas._validation import check_typed_int
from optuna_nas.spaces._base import Choose
from optuna_nas.spaces._base import any_value
from optuna_nas.spaces._base import categorical
from optuna_nas.spaces._base import check_choices
from optuna_nas.spaces._base import check_input_shape
from optuna_nas.spaces._base import check_range
from optuna_nas.spaces._base import positive_int
from optuna_nas.spaces._cell import NB201_OPS
from optuna_nas.spaces._cell import Cell
from optuna_nas.spaces._cell import CellBasedSpace
from optuna_nas.spaces._cell import build_cell_network
from optuna_nas.spaces._cell import check_even_reductions
from optuna_nas.spec import ArchitectureSpec


class MixedSpace(CellBasedSpace):
    """A cell space whose width and cells per stage are searched too; see the module docstring.

    Args:
        input_shape: ``(C, H, W)`` of the data.
        num_outputs: number of classes.
        ops: the ops a cell edge may carry, a subset of :data:`CELL_OPS`.
        num_nodes: nodes of the cell, including its input node.
        num_stages: stages, joined by stride-2 reduction blocks (fixed).
        init_channels: the choices of ``macro/init_channels``.
        min_cells_per_stage: low end of ``macro/cells_per_stage``.
        max_cells_per_stage: high end of ``macro/cells_per_stage``.

    The defaults suit 8x8 images such as digits. The constructor builds the worst case (most
    cells, every edge carrying the op with the largest kernel) and raises if it does not fit.
    """

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        ops: Sequence[str] = NB201_OPS,
        num_nodes: int = 4,
        num_stages: int = 3,
        init_channels: Sequence[int] = (8, 16, 32),
        min_cells_per_stage: int = 1,
        max_cells_per_stage: int = 3,
    ) -> None:
        self.input_shape = check_input_shape(input_shape)
        self.num_outputs = check_typed_int("num_outputs", num_outputs, minimum=1)
        self._cell = Cell(ops, num_nodes)
        self.num_stages = check_typed_int("num_stages", num_stages, minimum=1)
        check_even_reductions(self.input_shape, self.num_stages)
        self.init_channels = check_choices(
            "init_channels", init_channels, rule=("a positive int", positive_int)
        )
        self.min_cells_per_stage = check_typed_int(
            "min_cells_per_stage", min_cells_per_stage, minimum=1
        )
        self.max_cells_per_stage = check_typed_int(
            "max_cells_per_stage", max_cells_per_stage, minimum=1
        )
        check_range(
            "min_cells_per_stage", min_cells_per_stage, "max_cells_per_stage", max_cells_per_stage
        )
        self._distributions: dict[str, BaseDistribution] = {
            "macro/init_channels": categorical(self.init_channels),
            "macro/cells_per_stage": IntDistribution(min_cells_per_stage, max_cells_per_stage),
            **self._cell.distributions(),
        }
        self._check_fits(
            self._worst, "the worst case (the most cells, every edge carrying the largest kernel)"
        )

    @property
    def name(self) -> str:
        return "mixed"

    def _worst(self, name: str, dist: BaseDistribution) -> Any:
        if name == "macro/cells_per_stage":
            return self.max_cells_per_stage
        if name.startswith("cell/"):
            return self._cell.worst_op()
        return any_value(dist)

    def build(self, choose: Choose) -> ArchitectureSpec:
        init_channels = choose("macro/init_channels")
        cells_per_stage = choose("macro/cells_per_stage")
        return build_cell_network(
            self._cell.choose(choose),
            num_nodes=self.num_nodes,
            input_shape=self.input_shape,
            num_outputs=self.num_outputs,
            init_channels=init_channels,
            num_stages=self.num_stages,
            cells_per_stage=cells_per_stage,
            metadata=self._metadata(),
        )
