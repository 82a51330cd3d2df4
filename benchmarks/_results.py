"""What every benchmark script shares: the machine it ran on, and regenerating RESULTS.md."""

from __future__ import annotations

import os
from pathlib import Path
import platform
from typing import Any


def regenerate(results_dir: Path | None = None) -> bool:
    """After a benchmark wrote its JSON into ``results_dir``: rebuild ``benchmarks/RESULTS.md``
    and the README's numbers from ``benchmarks/results/*.json`` (``results_md.write``, the one
    path from JSON to markdown). A run into any other folder changes neither; returns whether
    they were rebuilt."""
    import results_md

    if results_dir is not None and results_dir.resolve() != results_md.RESULTS:
        print(f"{results_dir} is not {results_md.RESULTS}: RESULTS.md left as it is")
        return False
    results_md.write()
    print(f"regenerated {results_md.RESULTS_MD} and the README's results block")
    return True


def machine(**extra: Any) -> dict[str, Any]:
    """The machine and versions a result was measured with (``extra`` adds fields)."""
    import optuna
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "optuna": optuna.__version__,
        **extra,
    }
