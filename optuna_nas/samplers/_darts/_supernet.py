"""The DARTS supernet: the space's network with a mixed op wherever a searched parameter decides.

Candidate ops are never re-implemented here: for choice ``k`` the supernet builds the space's
network with every searched parameter at its ``k``-th choice through
:func:`optuna_nas.nn.build_model` and takes the submodule of each searched node
(:func:`optuna_nas.nn.module_name`). ``identity`` and ``zero``, which the builder lowers to
graph operations rather than modules, become :class:`torch.nn.Identity` and :class:`Zero`
(``x * 0``, as the builder computes it). The fixed part (stem, reductions, classifier) comes
from the reference network (every searched parameter at its first choice). ``forward`` walks
the spec's nodes in topological order with the builder's merge rules (``add`` sums inputs in
edge order, ``concat`` joins channels). During the search, pooling candidates are followed by
``BatchNorm2d(affine=False)`` and every candidate's batch norm is frozen at (1, 0), as in DARTS's
search cell; a mixed node whose input and output shapes agree may also add DARTS-'s auxiliary
skip ``aux_skip * x`` (see :mod:`optuna_nas.samplers._darts._search`).

Architecture parameters alpha (one vector per searched parameter, shared by every node it decides,
as DARTS shares one cell's alpha across the network) live apart from the weights:
:meth:`DartsSupernet.arch_parameters` and :meth:`DartsSupernet.weight_parameters` feed two
optimizers. :meth:`DartsSupernet.export` returns plain choices (Optuna params), which
``space.decode`` turns into a spec for the normal builder, as in NNI.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.samplers._darts._plan import MODULE_OPS
from optuna_nas.samplers._darts._plan import SupernetPlan

Relaxation = Literal["softmax", "gdas"]


class Zero(nn.Module):
    """The ``zero`` op (``none``): zeros of the input's shape, computed as the builder does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class MixedOp(nn.Module):
    """One mixed node: a candidate module per choice, weighted by the architecture weights.

    Args:
        candidates: One module per choice of the searched parameter, in choice order.

    ``forward(x, weights, index)`` checks ``len(weights) == len(candidates)``. With ``index``
    None it returns ``sum_k weights[k] * op_k(x)`` (DARTS's continuous relaxation); with an
    ``index`` it evaluates only that candidate and adds the other weights as scalars, exactly
    as GDAS does with its straight-through one-hot weights (Dong & Yang, "Searching for a
    Robust Neural Architecture in Four GPU Hours", CVPR 2019), so gradients reach every alpha.
    """

    def __init__(self, candidates: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(candidates) < 1:
            raise ValueError("`candidates` must hold at least one module, but got none.")
        self.candidates = nn.ModuleList(candidates)

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None
    ) -> torch.Tensor:
        if weights.shape != (len(self.candidates),):
            raise ValueError(
                f"`len(alpha) == len(candidates)` must hold, but got weights of shape "
                f"{tuple(weights.shape)} for {len(self.candidates)} candidates."
            )
        out: torch.Tensor
        if index is None:
            out = weights[0] * self.candidates[0](x)
            for w, op in zip(weights[1:], self.candidates[1:], strict=True):
                out = out + w * op(x)
            return out
        out = weights[index] * self.candidates[index](x)
        for k in range(len(self.candidates)):
            if k != index:
                out = out + weights[k]
        return out


def _disable_bn_affine(module: nn.Module) -> None:
    """Fix every batch norm's affine parameters at (1, 0), as DARTS's search does.

    DARTS builds its search ops with ``affine=False`` so that an op cannot rescale its output
    to win or lose against alpha; the builder's modules are affine, so their scale and shift are
    reset and frozen instead (they never receive gradients or weight decay).
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.affine:
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)


def _candidate(model: nn.Module, op: str, node_id: str) -> nn.Module:
    if op == "identity":
        return nn.Identity()
    if op == "zero":
        return Zero()
    return model.get_submodule(module_name(node_id))


class DartsSupernet(nn.Module):
    """The supernet of a :class:`SupernetPlan`; see the module docstring.

    Build it under a seeded RNG (``torch.manual_seed``): candidate weights and alpha's
    initialisation (``1e-3 * randn``, as in DARTS) come from torch's default generator.
    """

    def __init__(self, plan: SupernetPlan) -> None:
        super().__init__()
        self.plan = plan
        models = [build_model(spec) for spec in plan.specs]
        ref = plan.specs[0]
        self._param_of: dict[str, int] = {}
        self.alpha = nn.ParameterList()
        self.mixed = nn.ModuleDict()
        for i, p in enumerate(plan.params):
            self.alpha.append(nn.Parameter(1e-3 * torch.randn(len(p.choices))))
            for node_id in p.nodes:
                cands = []
                for k in range(len(p.choices)):
                    spec = plan.specs[k]
                    op = spec.node(node_id).op
                    cand = _candidate(models[k], op, node_id)
                    if op in ("avg_pool", "max_pool"):
                        # DARTS's search MixedOp: pooling followed by BatchNorm2d(affine=False).
                        cand = nn.Sequential(
                            cand, nn.BatchNorm2d(spec.shape(node_id)[0], affine=False)
                        )
                    cands.append(cand)
                if len(cands) != self.alpha[i].numel():  # pragma: no cover - built together
                    raise ValueError("`len(alpha) == len(candidates)` must hold.")
                for cand in cands:
                    _disable_bn_affine(cand)
                self.mixed[module_name(node_id)] = MixedOp(cands)
                self._param_of[node_id] = i
        self.fixed = nn.ModuleDict()
        for node in ref.nodes:
            if node.id not in self._param_of and node.op in MODULE_OPS | {"global_pool", "linear"}:
                self.fixed[module_name(node.id)] = models[0].get_submodule(module_name(node.id))
        self._order = [
            (n, ref.node(n).op, ref.inputs(n), module_name(n)) for n in ref.topological_order
        ]
        self._output = ref.output_id
        self._aux = {n for n in self._param_of if ref.shape(ref.inputs(n)[0]) == ref.shape(n)}
        self.aux_skip = 0.0
        """DARTS-'s auxiliary skip weight beta (set per epoch by the search; 0 = none)."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """alpha: one vector per searched parameter (for the architecture optimizer)."""
        return list(self.alpha)

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but alpha (for the weight optimizer)."""
        arch = {id(a) for a in self.alpha}
        return [p for p in self.parameters() if id(p) not in arch and p.requires_grad]

    def arch_weights(
        self,
        relaxation: Relaxation,
        *,
        tau: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[tuple[torch.Tensor, int | None]]:
        """Per searched parameter, the mixing weights and (GDAS) the sampled choice.

        ``"softmax"``: ``softmax(alpha)``, every candidate evaluated (DARTS). ``"gdas"``: one
        choice drawn by Gumbel-max from ``log_softmax(alpha)`` at temperature ``tau``, with
        straight-through one-hot weights ``one_hot - p.detach() + p`` where
        ``p = softmax((log_softmax(alpha) + g) / tau)`` (GDAS, Dong & Yang 2019).
        """
        out: list[tuple[torch.Tensor, int | None]] = []
        for a in self.alpha:
            if relaxation == "softmax":
                out.append((F.softmax(a, dim=-1), None))
                continue
            u = torch.empty_like(a).exponential_(generator=generator)
            probs = F.softmax((F.log_softmax(a, dim=-1) - u.log()) / tau, dim=-1)
            index = int(probs.argmax())
            hard = torch.zeros_like(probs)
            hard[index] = 1.0
            out.append((hard - probs.detach() + probs, index))
        return out

    def forward(
        self, x: torch.Tensor, weights: Sequence[tuple[torch.Tensor, int | None]]
    ) -> torch.Tensor:
        """Logits of ``x`` with ``weights`` from :meth:`arch_weights` (one draw per batch)."""
        values: dict[str, torch.Tensor] = {}
        for node_id, op, inputs, name in self._order:
            args = [values[i] for i in inputs]
            if op == "input":
                out = x
            elif node_id in self._param_of:
                w, index = weights[self._param_of[node_id]]
                out = self.mixed[name](args[0], w, index)
                if self.aux_skip > 0 and node_id in self._aux:
                    out = out + self.aux_skip * args[0]
            elif op == "identity":
                out = args[0]
            elif op == "zero":
                out = args[0].mul(0.0)
            elif op == "add":
                out = args[0]
                for a in args[1:]:
                    out = out + a
            elif op == "concat":
                out = torch.cat(args, 1) if len(args) > 1 else args[0]
            else:
                out = self.fixed[name](args[0])
            values[node_id] = out
        return values[self._output]

    def alpha_dict(self) -> dict[str, list[float]]:
        """alpha as plain floats, by parameter name (JSON for the study's system attrs)."""
        return {
            p.name: [float(v) for v in a.detach().cpu()]
            for p, a in zip(self.plan.params, self.alpha, strict=True)
        }

    def load_alpha(self, alpha: Mapping[str, Sequence[float]]) -> None:
        """Set alpha from :meth:`alpha_dict` output."""
        with torch.no_grad():
            for p, a in zip(self.plan.params, self.alpha, strict=True):
                values = alpha[p.name]
                if len(values) != a.numel():
                    raise ValueError(
                        f"`len(alpha) == len(candidates)` must hold for {p.name!r}, but got "
                        f"{len(values)} values for {a.numel()} choices."
                    )
                a.copy_(torch.tensor(list(values), dtype=a.dtype))

    def export(self) -> dict[str, Any]:
        """The argmax choice of every searched parameter (Optuna params, no fixed ones).

        Plain argmax over all choices, ``none`` included, as NAS-Bench-201 derives DARTS
        cells; DARTS's own derivation (drop ``none``, keep the top-2 inputs per node) does not
        apply to a space whose edges are all kept.
        """
        return export_choices(self.plan, self.alpha_dict())


def export_choices(plan: SupernetPlan, alpha: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The argmax choice of every searched parameter under ``alpha``."""
    out: dict[str, Any] = {}
    for p in plan.params:
        values = list(alpha[p.name])
        out[p.name] = p.choices[values.index(max(values))]
    return out
