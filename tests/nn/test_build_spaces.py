"""Every built-in space, many sampled specs: each builds, runs, is finite and trains fully.

timm's registry-wide model test, over our spaces: output shape ``(batch, num_outputs)``, no NaN,
and every parameter receives a gradient.
"""

from __future__ import annotations

import optuna
import pytest
import torch

from optuna_nas.nn import build_model
from optuna_nas.spaces import SearchSpace
from tests.spaces.test_spaces_contract import SPACES

# 370 sampled specs in all, fewer where one spec is large (mixed: up to 9 cells of 32 channels).
SAMPLES = {
    "cell-nb201-one-cell": 30,
    "mobile-cifar": 25,
    "mobile-digits": 30,
    "chain-cifar-strided": 40,
    "chain-small-kernels-many-strides": 40,
    "mixed-digits": 25,
}
DEFAULT_SAMPLES = 60


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampled_specs_build_run_and_get_gradients(name: str) -> None:
    space: SearchSpace = SPACES[name]()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    torch.manual_seed(0)
    seen = set()
    for _ in range(SAMPLES.get(name, DEFAULT_SAMPLES)):
        spec = space.suggest(study.ask())
        seen.add(spec.to_json())
        model = build_model(spec)
        x = torch.randn(2, *spec.input_shape)
        y = model(x)
        assert y.shape == (2, space.num_outputs)
        assert torch.isfinite(y).all(), spec.to_json()
        y.logsumexp(dim=1).sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"no gradient for {missing} in {spec.to_json()}"
    assert len(seen) > 1
