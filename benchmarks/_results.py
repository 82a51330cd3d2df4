"""Writing one benchmark's section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import os
from pathlib import Path
import platform
from typing import Any


def write_section(path: Path, section: str) -> None:
    """Replace the section of ``path`` whose heading is ``section``'s first line (``## ...``) by
    ``section``, or append it; sections stay separated by one blank line."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = section.strip("\n") + "\n"
    head = section.splitlines()[0]
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


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
