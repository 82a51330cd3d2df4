"""The evaluator-fidelity benchmark runs end to end in its --smoke version."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
import sys
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_evaluators_benchmark_smoke() -> None:
    path = ROOT / "benchmarks" / "evaluators.py"
    spec = importlib.util.spec_from_file_location("_evaluators_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    threads = torch.get_num_threads()
    results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    try:
        spec.loader.exec_module(module)
        result: dict[str, Any] = module.main(["--smoke"])
    finally:
        torch.set_num_threads(threads)
        del sys.modules[spec.name]
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == results_md  # smoke writes nothing
    for name in ("chain", "cell"):
        space = result["spaces"][name]
        rows = space["rows"]
        expected = {"proxy: 3 epochs", "zero-cost: synflow", "zero-cost: naswot"}
        assert expected <= set(rows)
        for row in rows.values():
            assert -1 <= row["kendall_tau"] <= 1 or math.isnan(row["kendall_tau"])
            assert row["cost_ratio"] > 0
        assert space["latency_table"]["mape"] >= 0
        assert space["latency_table"]["n"] == space["archs"]
