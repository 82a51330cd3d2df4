"""A one-shot supernet trained with uniform single-path sampling (SPOS).

Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020:
every choice of the space has its own weights in one supernet; each training step samples one
path uniformly (one value per decision) and trains only that path; a candidate is then scored
by inheriting its path's weights, after its batch-norm statistics are recalibrated on a few
training batches, without any further training.

How the supernet is laid out here, for any :class:`~optuna_nas.spaces.SearchSpace` (the cell
and chain spaces are the ones tested and benchmarked):

* A path is the spec that ``space.decode(params)`` gives for a uniform draw of every parameter
  of ``space.distributions()`` (parameters a path does not ask for are drawn and ignored; the
  chain space's ``depth`` is drawn uniformly from its range, so shallower paths use a prefix of
  the layers). The path network is the one :func:`~optuna_nas.nn.build_model` builds, so the
  supernet never re-implements an op: it only owns the *tensors*.
* A tensor of node ``n`` (op ``o``, config ``c``) is shared by every path in which node ``n``
  has op ``o`` and the same config except for :data:`SLICED_FIELDS`. So in the cell space each
  edge of each cell holds one module per candidate op (exactly SPOS's choice blocks), and the
  stem, reduction blocks and classifier are shared by all paths.
* Channel counts are shared by slicing (as in Once-for-All / BigNAS, Cai et al. 2020, Yu et al.
  2020): the shared tensor has, in each dimension, the largest size any path has needed so far,
  and a path uses its leading ``[:size]`` block. In the chain space this lets a conv layer of
  width 16 reuse the first 16 filters of width 64, and an input of fewer channels (another
  width before it, a dense ``concat`` of other maps) reuse the leading input slices; with
  ``concat`` the channel at a given position may come from a different layer on different paths
  (a simplification: no channel reordering). The activation (one network-wide choice in the
  chain space) has no weights, so conv weights are shared across activations.
* Shared tensors are created, or enlarged, the first time a path needs them: the new elements
  come from the path's own freshly initialised module (PyTorch's default init); elements that
  neither the old tensor nor the path covers are drawn uniformly between that fresh tensor's
  minimum and maximum (so batch-norm scales stay 1 and shifts 0). A candidate that needs an
  element the supernet never trained keeps its own fresh initialisation there;
  :meth:`Supernet.inherit` reports the inherited fraction.

Training uses the optimiser, learning-rate schedule, gradient clipping and epochs of a
:class:`~optuna_nas.evaluation.TrainingConfig`; one sampled path per mini-batch. As in SPOS,
momentum and weight decay apply to whole shared tensors, so slices a step did not use keep
moving with their momentum. The config's hardware options apply as in
:func:`~optuna_nas.evaluation.train_model`: ``precision`` (autocast; a ``GradScaler`` for
fp16), ``channels_last`` (image batches), ``cudnn_benchmark``, and ``decay_norm_and_bias``
(``False``: no weight decay on tensors of at most one dimension, norm scales and biases);
the loss is summed on the device and checked once per epoch, so no step waits for the host.
``compile`` is refused: every step trains another path, so every step would recompile.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import json
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import torch
from torch import nn
import torch.nn.functional as F

from optuna_nas._experimental import warn_experimental
from optuna_nas.evaluation._hardware import autocast
from optuna_nas.evaluation._hardware import check_config_for_device
from optuna_nas.evaluation._hardware import cudnn_benchmark
from optuna_nas.evaluation._step import make_optimizer
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.nn import BuiltModel
from optuna_nas.nn import build_model
from optuna_nas.nn import module_name
from optuna_nas.spaces import SearchSpace
from optuna_nas.spaces._distributions import finite_values
from optuna_nas.spaces._distributions import n_values
from optuna_nas.spaces._distributions import nth_value
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.spec import Node

SLICED_FIELDS: tuple[str, ...] = ("channels", "activation")
"""Config fields that do not separate shared tensors: channels are shared by slicing and
activations carry no weights."""

_FORMAT = 1
_PATH_CACHE = 256
_MAX_REJECTIONS = 10_000
_STRUCTURAL_OPS = frozenset({"input", "concat", "add", "identity", "zero"})


def check_supernet_config(config: TrainingConfig, device: torch.device) -> None:
    """Reject training settings a supernet on ``device`` cannot honour, before training.

    Raises:
        ValueError: ``config.compile`` is set, or as
            :func:`~optuna_nas.evaluation._hardware.check_config_for_device`.
    """
    if config.compile is not None:
        raise ValueError(
            f"`compile={config.compile!r}` cannot speed up supernet training: every step trains "
            "another path, so every step would recompile; pass a TrainingConfig with "
            "compile=None for the supernet (candidates trained afterwards may compile)."
        )
    check_config_for_device(config, device)


@dataclass(frozen=True)
class _Entry:
    """One tensor of a path: its shared key, the shape the path uses, whether it is trained."""

    shared_key: str
    shape: tuple[int, ...]
    is_param: bool


@dataclass(frozen=True)
class _Path:
    model: BuiltModel  # built on the meta device: the structure only
    entries: Mapping[str, _Entry]  # path state-dict key -> entry


def sample_uniform(
    distributions: Mapping[str, BaseDistribution], rng: np.random.Generator
) -> dict[str, Any]:
    """One uniform draw of every parameter: SPOS's uniform path sampling."""
    params: dict[str, Any] = {}
    for name, dist in distributions.items():
        if not isinstance(dist, (CategoricalDistribution, IntDistribution, FloatDistribution)):
            raise TypeError(f"parameter {name!r} has an unsupported {type(dist).__name__}.")
        if isinstance(dist, FloatDistribution) and dist.step is None:
            if dist.log:
                params[name] = float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
            else:
                params[name] = float(rng.uniform(dist.low, dist.high))
        else:  # an int is drawn uniformly over its steps, on a log scale too
            params[name] = nth_value(dist, int(rng.integers(int(n_values(dist)))))
    return params


def sample_fair(
    distributions: Mapping[str, BaseDistribution], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``m`` paths in which every choice of every parameter appears equally often: FairNAS's
    strict fairness (Chu et al., ICCV 2021).

    ``m`` is the largest number of choices of any parameter. A parameter with ``m`` choices
    takes each exactly once (a random permutation, as FairNAS does for every choice block); one
    with ``k < m`` choices takes each ``ceil(m / k)`` or ``floor(m / k)`` times (its choices
    repeated and permuted, then cut to ``m``) -- FairNAS's spaces have the same ``k``
    everywhere, ours need not; a continuous parameter is drawn uniformly per path.
    """
    finite = {name: finite_values(d) for name, d in distributions.items()}
    m = max((len(c) for c in finite.values() if c), default=1)
    columns: dict[str, list[Any]] = {}
    for name, dist in distributions.items():
        options = finite[name]
        if options is None:
            columns[name] = [sample_uniform({name: dist}, rng)[name] for _ in range(m)]
            continue
        repeated = options * math.ceil(m / len(options))
        order = rng.permutation(len(repeated))[:m]
        columns[name] = [repeated[i] for i in order]
    return [{name: columns[name][i] for name in distributions} for i in range(m)]


def path_depth(spec: ArchitectureSpec) -> int:
    """The number of computing nodes on the longest path from the input to the output.

    Every node counts except the input and the ones that only route data (``concat``, ``add``,
    ``identity``); a path through a ``zero`` node carries nothing and is not a path. In the
    chain space this is the stem, the layers that are not ``identity``, the pooling and the
    classifier; in the cell space it grows with the longest chain of non-zero edges.
    """
    longest: dict[str, int] = {}
    for node_id in spec.topological_order:
        node = spec.node(node_id)
        if node.op == "input":
            longest[node_id] = 0
            continue
        reach = [longest[i] for i in spec.inputs(node_id) if longest[i] >= 0]
        if node.op == "zero" or not reach:
            longest[node_id] = -1
            continue
        longest[node_id] = max(reach) + (node.op not in _STRUCTURAL_OPS)
    return max(longest[spec.output_id], 0)


def split_key(spec: ArchitectureSpec, split: str) -> str:
    """Which part of a few-shot split ``spec`` falls in (see ``WeightSharingEvaluator``).

    ``split="depth"``: :func:`path_depth`. ``split="op:<node id>"``: the op of that node with
    its config except :data:`SLICED_FIELDS` (so ``conv`` 3x3 and 5x5 differ, widths do not),
    or ``"absent"`` where the spec has no such node -- Zhao et al.'s split of one compound
    edge into its operations.
    """
    if split == "depth":
        return str(path_depth(spec))
    if split.startswith("op:") and len(split) > 3:
        node_id = split[3:]
        if not any(node.id == node_id for node in spec.nodes):
            return "absent"
        return _op_key(spec.node(node_id))
    raise ValueError(
        f"unknown few-shot split {split!r}: use 'depth' or 'op:<node id>' (e.g. 'op:layer1')."
    )


def in_part(split: str, part: str) -> Callable[[ArchitectureSpec], bool]:
    """The test of :meth:`Supernet.train`'s ``accept`` for one part of a few-shot split."""

    def accept(spec: ArchitectureSpec) -> bool:
        return split_key(spec, split) == part

    return accept


def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[Sequence[torch.Tensor]], *, device: torch.device
) -> int:
    """Reset every batch norm's running statistics and re-estimate them on ``batches``.

    Momentum is set to None, so the statistics are the cumulative average over the batches
    (SPOS's recalibration). The model is left in eval mode. Returns the number of batches used;
    raises ``ValueError`` if there were none.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    with torch.no_grad():
        for inputs, _ in batches:
            model(inputs.to(device))
            used += 1
    model.eval()
    if used == 0:
        raise ValueError("batch-norm recalibration got no batches.")
    return used


class Supernet:
    """The shared tensors of every path of ``space``; see the module docstring.

    Args:
        space: The search space whose paths the supernet covers.
        seed: Seeds path sampling and the initialisation of shared tensors.
        device: Where the shared tensors live.
    """

    def __init__(
        self, space: SearchSpace, *, seed: int = 0, device: str | torch.device = "cpu"
    ) -> None:
        warn_experimental("Weight sharing (Supernet, WeightSharingEvaluator)")
        self.space = space
        self.seed = seed
        self.device = torch.device(device)
        self.tensors: dict[str, torch.Tensor] = {}
        self.param_keys: set[str] = set()
        self.steps_trained = 0
        self.epoch_losses: list[float] = []
        """Mean training loss of the sampled paths in each epoch :meth:`train` ran (not saved
        by :meth:`state_dict`). Near ``log(num_outputs)`` means the supernet learnt nothing."""
        self._paths: OrderedDict[str, _Path] = OrderedDict()
        self._init_gen = torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------------ paths

    def _path(self, spec: ArchitectureSpec) -> _Path:
        key = spec.to_json()
        path = self._paths.get(key)
        if path is not None:
            self._paths.move_to_end(key)
            return path
        with torch.device("meta"):
            model = build_model(spec)
        entries = _entries(spec, model)
        path = _Path(model, entries)
        self._paths[key] = path
        if len(self._paths) > _PATH_CACHE:
            self._paths.popitem(last=False)
        return path

    def _ensure(
        self, spec: ArchitectureSpec, path: _Path, optimizer: torch.optim.Optimizer | None
    ) -> None:
        """Create or enlarge the shared tensors ``path`` needs (see the module docstring)."""
        short = [
            e
            for e in path.entries.values()
            if e.shared_key not in self.tensors
            or any(a > b for a, b in zip(e.shape, self.tensors[e.shared_key].shape, strict=True))
        ]
        if not short:
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=self._init_gen)))
            fresh = build_model(spec).state_dict()
        by_key = {e.shared_key: k for k, e in path.entries.items()}
        for entry in short:
            new_values = fresh[by_key[entry.shared_key]]  # on the CPU, as is the generator
            old = self.tensors.get(entry.shared_key)
            shape = (
                entry.shape
                if old is None
                else tuple(max(a, b) for a, b in zip(entry.shape, old.shape, strict=True))
            )
            grown = torch.empty(shape, dtype=new_values.dtype)
            if grown.is_floating_point():
                lo, hi = float(new_values.min()), float(new_values.max())
                if hi > lo:
                    grown.uniform_(lo, hi, generator=self._init_gen)
                else:
                    grown.fill_(lo)
            else:
                grown.fill_(int(new_values.max()) if new_values.numel() else 0)
            grown[_region(entry.shape)] = new_values
            if old is not None:
                grown[_region(tuple(old.shape))] = old.detach().cpu()
            grown = grown.to(self.device)
            if entry.is_param:
                param = nn.Parameter(grown)
                if optimizer is not None:
                    _swap_param(optimizer, old, param)
                self.tensors[entry.shared_key] = param
                self.param_keys.add(entry.shared_key)
            else:
                self.tensors[entry.shared_key] = grown

    def _path_tensors(self, path: _Path) -> dict[str, torch.Tensor]:
        return {k: self.tensors[e.shared_key][_region(e.shape)] for k, e in path.entries.items()}

    # ------------------------------------------------------------------ training

    def train(
        self,
        batches: Iterable[Sequence[torch.Tensor]],
        *,
        config: TrainingConfig,
        fair: bool = False,
        accept: Callable[[ArchitectureSpec], bool] | None = None,
    ) -> int:
        """Train the supernet, one uniformly sampled path per batch; returns the steps run.

        With ``fair``, each step instead draws the paths of :func:`sample_fair` (every choice
        of every parameter equally often), sums their gradients on the batch and takes one
        optimiser step (FairNAS's strict fairness, Chu et al., ICCV 2021): a step costs as
        many forward and backward passes as the largest parameter has choices.

        With ``accept``, only paths it accepts are trained (a few-shot sub-supernet's part of
        the space): a uniform draw is repeated until one is accepted, so the accepted paths
        are still drawn uniformly among themselves; of fair draws, the accepted ones are
        trained (drawn again until at least one is).

        ``batches`` is iterated once per epoch of ``config``. A step whose loss is not finite
        raises ``FloatingPointError`` (a diverged supernet scores nothing usefully). Each
        epoch's mean loss is appended to :attr:`epoch_losses`.

        Every step trains one path, so a choice among ``k`` options gets about ``1/k`` of the
        steps: a supernet needs several times the epochs of one standalone network before its
        paths fit the data (on the chain space, 40 epochs of 17 batches of 8x8 digits leave
        the mean loss near ``log(10)``).
        """
        check_supernet_config(config, self.device)
        rng = np.random.default_rng(self.seed)
        dists = self.space.distributions()
        optimizer: torch.optim.Optimizer | None = None
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        steps = 0
        with cudnn_benchmark(config.cudnn_benchmark):
            for epoch in range(config.epochs):
                loss_sum = torch.zeros((), device=self.device)
                epoch_steps = 0
                for inputs, labels in batches:
                    specs = self._draw(dists, rng, fair=fair, accept=accept)
                    paths = [self._path(spec) for spec in specs]
                    for spec, path in zip(specs, paths, strict=True):
                        self._ensure(spec, path, optimizer)
                    if optimizer is None:
                        optimizer = self._optimizer(config)
                        if config.schedule == "cosine":
                            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                                optimizer, T_max=config.epochs
                            )
                    optimizer.zero_grad(set_to_none=True)
                    inputs = inputs.to(self.device, non_blocking=True)
                    labels = labels.to(self.device, non_blocking=True)
                    if config.channels_last and inputs.dim() == 4:
                        inputs = inputs.contiguous(memory_format=torch.channels_last)
                    used: dict[str, torch.Tensor] = {}
                    for path in paths:
                        path.model.train()
                        with autocast(config.precision, self.device):
                            logits = torch.func.functional_call(
                                path.model, self._path_tensors(path), (inputs,)
                            )
                            loss = F.cross_entropy(
                                logits, labels, label_smoothing=config.label_smoothing
                            )
                        loss_sum += loss.detach().float() / len(paths)
                        scaled = loss / len(paths)
                        torch.autograd.backward(scaler.scale(scaled) if scaler else scaled)
                        for e in path.entries.values():
                            if e.is_param:
                                used[e.shared_key] = self.tensors[e.shared_key]
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    if config.grad_clip is not None:
                        nn.utils.clip_grad_norm_(list(used.values()), config.grad_clip)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    steps, epoch_steps = steps + 1, epoch_steps + 1
                if epoch_steps:
                    mean = float(loss_sum.item()) / epoch_steps  # one host sync per epoch
                    if not math.isfinite(mean):
                        raise FloatingPointError(
                            f"the supernet's loss became {mean} in epoch {epoch + 1}; lower the "
                            "learning rate."
                        )
                    self.epoch_losses.append(mean)
                if scheduler is not None:
                    scheduler.step()
        self.steps_trained += steps
        return steps

    def _draw(
        self,
        dists: Mapping[str, BaseDistribution],
        rng: np.random.Generator,
        *,
        fair: bool,
        accept: Callable[[ArchitectureSpec], bool] | None,
    ) -> list[ArchitectureSpec]:
        for _ in range(_MAX_REJECTIONS):
            draws = sample_fair(dists, rng) if fair else [sample_uniform(dists, rng)]
            specs = [self.space.decode(params) for params in draws]
            if accept is not None:
                specs = [spec for spec in specs if accept(spec)]
            if specs:
                return specs
        raise ValueError(
            f"no path accepted in {_MAX_REJECTIONS} draws: the part of the space to train is "
            "empty or too rare to sample."
        )

    def copy(self, *, seed: int | None = None) -> Supernet:
        """An independent supernet starting from a copy of these tensors (a few-shot
        sub-supernet's initialisation); ``seed`` (default: this one's) drives its sampling."""
        new = Supernet(self.space, seed=self.seed if seed is None else seed, device=self.device)
        for key, tensor in self.tensors.items():
            value = tensor.detach().clone()
            new.tensors[key] = nn.Parameter(value) if key in self.param_keys else value
        new.param_keys = set(self.param_keys)
        new.steps_trained = self.steps_trained
        return new

    def _optimizer(self, config: TrainingConfig) -> torch.optim.Optimizer:
        """The config's optimiser over the shared parameters (torch's default, not fused:
        :func:`_swap_param` edits its groups' lists as tensors grow)."""
        params: list[Any] = [t for k, t in self.tensors.items() if k in self.param_keys]
        if not config.decay_norm_and_bias and config.weight_decay:
            params = [
                {"params": [p for p in params if p.ndim > 1]},
                {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
            ]
        return make_optimizer(params, config, fused=False)

    # ------------------------------------------------------------------ scoring

    def inherit(self, spec: ArchitectureSpec, *, seed: int) -> tuple[BuiltModel, float]:
        """A standalone model of ``spec`` carrying its path's shared weights.

        Returns the model (on the supernet's device, batch norms not yet recalibrated) and the
        fraction of its parameter and buffer elements that came from the supernet; the rest
        keep the fresh initialisation drawn under ``seed``.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(spec).to(self.device)
        state = model.state_dict()
        inherited = total = 0
        with torch.no_grad():
            for key, entry in _entries(spec, model).items():
                target = state[key]
                total += target.numel()
                src = self.tensors.get(entry.shared_key)
                if src is None:
                    continue
                region = _region(
                    tuple(min(a, b) for a, b in zip(entry.shape, src.shape, strict=True))
                )
                target[region] = src[region].detach()
                inherited += target[region].numel()
        return model, (inherited / total if total else 1.0)

    # ------------------------------------------------------------------ serialisation

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the trained supernet (plain tensors, strs and ints)."""
        return {
            "format": _FORMAT,
            "tensors": {k: t.detach().cpu() for k, t in self.tensors.items()},
            "param_keys": sorted(self.param_keys),
            "steps_trained": self.steps_trained,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Adopt tensors saved by :meth:`state_dict`; raises ``ValueError`` on another format."""
        if state.get("format") != _FORMAT:
            raise ValueError(
                f"supernet state has format {state.get('format')!r}; this version reads "
                f"format {_FORMAT}."
            )
        self.param_keys = set(state["param_keys"])
        self.tensors = {
            k: (nn.Parameter(t.to(self.device)) if k in self.param_keys else t.to(self.device))
            for k, t in state["tensors"].items()
        }
        self.steps_trained = int(state["steps_trained"])


def _entries(spec: ArchitectureSpec, model: BuiltModel) -> dict[str, _Entry]:
    """Each tensor of ``model`` (built from ``spec``) with its shared key and shape."""
    param_names = {name for name, _ in model.named_parameters()}
    entries: dict[str, _Entry] = {}
    for node in spec.nodes:
        prefix = module_name(node.id)
        sub = getattr(model, prefix, None)
        if not isinstance(sub, nn.Module):
            continue
        base = f"{node.id}|{_op_key(node)}|"
        for suffix, tensor in sub.state_dict(keep_vars=True).items():
            state_key = f"{prefix}.{suffix}"
            entries[state_key] = _Entry(
                base + suffix, tuple(tensor.shape), state_key in param_names
            )
    return entries


def _op_key(node: Node) -> str:
    """A node's op and its config except :data:`SLICED_FIELDS`: what separates its tensors."""
    cfg = {k: v for k, v in node.to_dict()["config"].items() if k not in SLICED_FIELDS}
    return f"{node.op}|{json.dumps(cfg, sort_keys=True)}"


def _region(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in shape)


def _swap_param(
    optimizer: torch.optim.Optimizer, old: torch.Tensor | None, new: nn.Parameter
) -> None:
    """Put ``new`` in place of ``old`` (or add it) in ``optimizer``; pad its state with zeros.

    A new tensor joins the first group, or the second (no weight decay) if there are two and
    it has at most one dimension: the layout :meth:`Supernet._optimizer` makes."""
    groups = optimizer.param_groups
    if old is None:
        (groups[1] if len(groups) > 1 and new.ndim <= 1 else groups[0])["params"].append(new)
        return
    group = next(g for g in groups if any(p is old for p in g["params"]))
    index = next(i for i, p in enumerate(group["params"]) if p is old)
    group["params"][index] = new
    state = optimizer.state.pop(old, None)
    if state:
        padded: dict[str, Any] = {}
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == old.shape:
                grown = torch.zeros_like(new)
                grown[_region(tuple(old.shape))] = value
                padded[name] = grown
            else:
                padded[name] = value
        optimizer.state[new] = padded
