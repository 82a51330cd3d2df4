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
from typing import Any

import torch

from optuna_nas._validation import check_optional_int
from optuna_nas._validation import check_positive
from optuna_nas.data import DataSplits
from optuna_nas.data import resize_splits
from optuna_nas.data import subsample_splits
from optuna_nas.evaluation._base import _TrainingEvaluator
from optuna_nas.evaluation._base import check_data
from optuna_nas.evaluation._base import resolve_batch_size
from optuna_nas.evaluation._hardware import check_device
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
    w = check_positive("width_multiplier", width_multiplier)
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


class ProxyTraining(_TrainingEvaluator):
    """Train a reduced candidate on a reduced task and report its validation accuracy.

    Args:
        data: The full task, any :class:`~optuna_nas.data.DataSplits`; the pipeline checks
            the space against it. The fraction and the resolution work on any split
            (:func:`~optuna_nas.data.subsample_splits`, :func:`~optuna_nas.data.resize_splits`).
        training: The full training recipe; ``epochs`` overrides its length.
        data_fraction: Fraction of every class of the training split used (stratified, drawn
            once with ``data_seed``); validation always uses the whole validation split.
        epochs: Epochs of the proxy (None: ``training.epochs``). The cosine schedule anneals
            over these epochs.
        resolution: Train and validate at this input resolution (None: the data's); the spec is
            rebuilt for it with :func:`rescale_spec`.
        width_multiplier: Factor on every layer's width (:func:`rescale_spec`).
        batch_size: Mini-batch size (None: ``data.loader.batch_size``).
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
        batch_size: int | None = None,
        device: str | torch.device = "cpu",
        data_seed: int = 0,
    ) -> None:
        if isinstance(data_fraction, bool) or not (
            isinstance(data_fraction, (int, float)) and 0 < data_fraction <= 1
        ):
            raise ValueError(f"`0 < data_fraction <= 1` must hold, but got {data_fraction=}.")
        check_optional_int("epochs", epochs, minimum=1)
        check_optional_int("resolution", resolution, minimum=1)
        w = check_positive("width_multiplier", width_multiplier)
        self.data = check_data(data)
        self.training = training if epochs is None else replace(training, epochs=epochs)
        self.data_fraction = float(data_fraction)
        self.resolution = resolution
        self.width_multiplier = float(w)
        self.batch_size = resolve_batch_size(batch_size, data)
        self.device = check_device(device)
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

    def _task(self, spec: ArchitectureSpec) -> tuple[ArchitectureSpec, DataSplits, dict[str, Any]]:
        return self.proxy_spec(spec), self.proxy_data, {"proxy": self.settings}
