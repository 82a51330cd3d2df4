"""The DARTS benchmark runs end to end in its --smoke version (and writes nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_darts_benchmark_smoke(tmp_path: Path) -> None:
    path = ROOT / "benchmarks" / "darts.py"
    spec = importlib.util.spec_from_file_location("_darts_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    threads = torch.get_num_threads()
    written: list[Any] = []
    try:
        spec.loader.exec_module(module)
        module.regenerate = lambda *args: written.append(args)  # smoke writes nothing
        result: dict[str, Any] = module.main(["--smoke", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
        del sys.modules[spec.name]
    assert written == []
    assert list(tmp_path.iterdir()) == []
    (variant,) = result["synthetic"]["variants"]
    (search,) = variant["searches"]
    assert search["first"] in result["synthetic"]["val_accuracy_of_each_op_alone"]
    assert variant["needed_op_first"] == int(search["first"] == "nor_conv_3x3")
    assert len(search["train_loss_per_epoch"]) == search["search_epochs"]
    (darts,) = result["digits"]["darts"]
    assert 0.0 <= darts["val_accuracy"] <= 1.0
    assert len(darts["val_accuracy_per_training_seed"]) == 3
    assert darts["at_least_random_median"] == (
        darts["val_accuracy"] >= result["digits"]["random"]["median_val_accuracy"]
    )
    assert 1 <= darts["search_epochs"] <= 2  # the DARTS+ stop may end it after one
