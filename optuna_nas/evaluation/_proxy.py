"""Proxy tasks: score a candidate by training a cheaper version of it on a cheaper task.

The reduced settings are the usual ones of the NAS literature: a fraction of the training
data and fewer epochs (the low-fidelity runs of Hyperband / BOHB, Li et al. 2017, Falkner et
al. 2018), a lower input resolution and a narrower network (the reduced-size proxies of
NASNet, Zoph et al. 2018, and of the "EcoNAS" study, Zhou et al. 2020). Each may be used alone
or together. The network is changed through the spec (:func:`rescale_spec`), so the proxy
network still goes through :func:`~optuna_nas.nn.build_model`.
"""

from __future__ import annotations

from dataclasses import replace
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.evaluation._base import Evaluation
from optuna_nas.evaluation._base import Evaluator
from optuna_nas.evaluation._base import Report
from optuna_nas.evaluation._base import train_candidate
from optuna_nas.evaluation._base import training_metrics
from optuna_nas.evaluation._training import TrainingConfig
from optuna_nas.spec import ArchitectureSpec

_WIDTH_OPS = {"conv": "channels", "sep_conv": "channels", "mbconv": "channels"}


def rescale_spec(
    spec: ArchitectureSpec,
    *,
    input_shape: tuple[int, int, int] | None = None,
    width_multiplier: float = 1.0,
) -> ArchitectureSpec:
    """The same architecture for another input shape and/or with every layer widened or thinned.

    ``channels`` of every ``conv``, ``sep_conv`` and ``mbconv`` node and ``features`` of every
    ``linear`` node except the output node (the classifier keeps ``num_outputs``) become
    ``max(1, round(value * width_multiplier))``; for a grouped ``conv`` the result is rounded to
    a multiple of its ``groups``. Pools, identities and merges keep their input's channels, as
    the spec already says. The result is validated like any spec, so a network that does not fit
    the new input shape (e.g. too many stride-2 layers for a lower resolution) raises the
    spec's ``ValueError`` naming the node. Its metadata gains ``"rescaled": {"input_shape",
    "width_multiplier"}``.

    Args:
        spec: The architecture.
        input_shape: ``(C, H, W)`` of the new input, or None to keep the spec's.
        width_multiplier: Factor on every width; 1.0 keeps them.

    Raises:
        ValueError: If ``width_multiplier`` is not finite and > 0, or the rescaled spec is
            invalid.
    """
    if not isinstance(spec, ArchitectureSpec):
        raise TypeError(f"`spec` must be an ArchitectureSpec, but got {type(spec).__name__}.")
    w = width_multiplier
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w > 0):
        raise ValueError(f"`width_multiplier` must be finite and > 0, but got {w!r}.")
    data = spec.to_dict()
    for node in data["nodes"]:
        config = node["config"]
        if node["op"] in _WIDTH_OPS:
            groups = config.get("groups", 1)
            scaled = round(config["channels"] * w / groups) * groups
            config["channels"] = max(groups, scaled)
        elif node["op"] == "linear" and node["id"] != spec.output_id:
            config["features"] = max(1, round(config["features"] * w))
    if input_shape is not None:
        data["input_shape"] = list(input_shape)
    data["metadata"] = {
        **data["metadata"],
        "rescaled": {"input_shape": data["input_shape"], "width_multiplier": float(w)},
    }
    try:
        return ArchitectureSpec.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"the spec does not fit input_shape={tuple(data['input_shape'])} with "
            f"width_multiplier={w}: {e}"
        ) from None


def subsample_splits(data: DataSplits, *, fraction: float, seed: int) -> DataSplits:
    """Keep ``ceil(fraction * n_c)`` training images of every class ``c`` (at least one).

    The images kept are drawn by :func:`numpy.random.default_rng` seeded with ``seed`` and then
    shuffled together; validation and test splits are untouched, so a proxy is scored on the
    same images as full training.
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"`0 < fraction <= 1` must hold, but got {fraction=}.")
    if fraction == 1:
        return data
    images, labels = data.train.tensors
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    keep = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        keep.append(rng.choice(idx, size=max(1, math.ceil(fraction * len(idx))), replace=False))
    order = torch.from_numpy(rng.permutation(np.concatenate(keep)))
    return replace(
        data,
        train=TensorDataset(images[order].contiguous(), labels[order].contiguous()),
        name=f"{data.name}_frac{fraction:g}",
    )


def resize_splits(data: DataSplits, *, resolution: int | tuple[int, int]) -> DataSplits:
    """Resize every split's images to ``resolution`` (an int for square images).

    Bilinear interpolation with antialiasing (:func:`torch.nn.functional.interpolate`), as
    :func:`~optuna_nas.data.load_digits` resizes; the images are already normalised, and
    interpolation is a weighted mean, so they stay roughly zero-mean.
    """
    size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"`resolution` must be an int >= 1 or a pair of them, but got {resolution=}."
        )
    if size == data.input_shape[1:]:
        return data

    def resize(split: TensorDataset) -> TensorDataset:
        x, y = split.tensors
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return TensorDataset(x.contiguous(), y)

    return DataSplits(
        train=resize(data.train),
        val=resize(data.val),
        test=resize(data.test),
        input_shape=(data.input_shape[0], size[0], size[1]),
        num_classes=data.num_classes,
        name=f"{data.name}_{size[0]}x{size[1]}",
    )


class ProxyTraining(Evaluator):
    """Train a reduced candidate on a reduced task and report its validation accuracy.

    Args:
        data: The full task; the pipeline checks the space against it.
        training: The full training recipe; ``epochs`` overrides its length.
        data_fraction: Fraction of every class of the training split used (stratified, drawn
            once with ``data_seed``); validation always uses the whole validation split.
        epochs: Epochs of the proxy (None: ``training.epochs``). The cosine schedule anneals
            over these epochs.
        resolution: Train and validate at this input resolution (None: the data's); the spec is
            rebuilt for it with :func:`rescale_spec`.
        width_multiplier: Factor on every layer's width (:func:`rescale_spec`).
        batch_size: Mini-batch size.
        device: Where to train (never chosen automatically).
        data_seed: Seed of the training subset.

    The value is ``{"val_accuracy": ...}`` of the proxy, reported after every epoch. When the
    network was rescaled, ``Evaluation.model`` is None (the trained proxy is not the candidate);
    otherwise it is the trained candidate.
    """

    data: DataSplits

    def __init__(
        self,
        data: DataSplits,
        *,
        training: TrainingConfig,
        data_fraction: float = 1.0,
        epochs: int | None = None,
        resolution: int | None = None,
        width_multiplier: float = 1.0,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        data_seed: int = 0,
    ) -> None:
        if isinstance(data_fraction, bool) or not (
            isinstance(data_fraction, (int, float)) and 0 < data_fraction <= 1
        ):
            raise ValueError(f"`0 < data_fraction <= 1` must hold, but got {data_fraction=}.")
        if epochs is not None and (isinstance(epochs, bool) or epochs < 1):
            raise ValueError(f"`epochs` must be None or an int >= 1, but got {epochs=}.")
        if resolution is not None and (isinstance(resolution, bool) or resolution < 1):
            raise ValueError(f"`resolution` must be None or an int >= 1, but got {resolution=}.")
        w = width_multiplier
        if isinstance(w, bool) or not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise ValueError(f"`width_multiplier` must be finite and > 0, but got {w!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size >= 1` must hold, but got {batch_size=}.")
        self.data = data
        self.training = training if epochs is None else replace(training, epochs=epochs)
        self.data_fraction = float(data_fraction)
        self.resolution = resolution
        self.width_multiplier = float(w)
        self.batch_size = batch_size
        self.device = torch.device(device)
        proxy = subsample_splits(data, fraction=data_fraction, seed=data_seed)
        if resolution is not None:
            proxy = resize_splits(proxy, resolution=resolution)
        self.proxy_data = proxy

    @property
    def settings(self) -> dict[str, Any]:
        """The proxy's settings, as stored with every evaluation."""
        return {
            "data_fraction": self.data_fraction,
            "epochs": self.training.epochs,
            "resolution": self.resolution,
            "width_multiplier": self.width_multiplier,
        }

    def proxy_spec(self, spec: ArchitectureSpec) -> ArchitectureSpec:
        """The network the proxy trains for ``spec`` (``spec`` itself if nothing is rescaled)."""
        if self.resolution is None and self.width_multiplier == 1.0:
            return spec
        return rescale_spec(
            spec, input_shape=self.proxy_data.input_shape, width_multiplier=self.width_multiplier
        )

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        proxy_spec = self.proxy_spec(spec)
        model, result = train_candidate(
            proxy_spec,
            self.proxy_data,
            training=self.training,
            batch_size=self.batch_size,
            device=self.device,
            report=report,
            seed=seed,
        )
        return Evaluation(
            values={"val_accuracy": result.final_val_accuracy},
            metrics={
                **training_metrics(result),
                "proxy": self.settings,
            },
            stopped_early=result.stopped_early,
            model=model if proxy_spec is spec else None,
        )
