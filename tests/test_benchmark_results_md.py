"""``benchmarks/results_md.py``: RESULTS.md and the README's numbers come from the JSON alone.

Renders only (no benchmark runs): from the committed JSON, and from copies with one number
changed, which must change the table, the summary and the README's line that show it.
"""

from __future__ import annotations

from collections.abc import Iterator
import importlib.util
import json
from pathlib import Path
import re
import shutil
import sys
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def results_md() -> Iterator[ModuleType]:
    """The generator, imported as ``results_md`` (the summary imports it by that name); the
    benchmark modules it imports are removed again afterwards."""
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location("results_md", BENCHMARKS / "results_md.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["results_md"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for name in set(sys.modules) - before:
            path = getattr(sys.modules[name], "__file__", None) or ""
            if name == "results_md" or Path(path).parent == BENCHMARKS:
                del sys.modules[name]


def _copy(results_md: ModuleType, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    for section in results_md.SECTIONS:
        if (results_md.RESULTS / section.json).is_file():
            shutil.copy(results_md.RESULTS / section.json, out / section.json)
    return out


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_committed_results_md_and_readme_are_what_the_json_gives(results_md: ModuleType) -> None:
    text, block = results_md.render(results_md.RESULTS)
    assert results_md.RESULTS_MD.read_text() == text, (
        "benchmarks/RESULTS.md is edited by hand or stale: run python benchmarks/results_md.py"
    )
    readme = results_md.README.read_text()
    assert results_md.with_block(readme, block) == readme
    # Every link points at a heading of RESULTS.md, or at a file that is there.
    headings = {results_md.anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}
    links = re.findall(r"\]\(#([^)]+)\)", text) + re.findall(r"RESULTS\.md#([^)]+)\)", block)
    assert links and set(links) <= headings
    files = re.findall(r"\]\((results/[^)]+)\)", text)
    assert files and all((BENCHMARKS / f).is_file() for f in files)
    notes = (BENCHMARKS / "NOTES.md").read_text()
    note_headings = {results_md.anchor(h) for h in re.findall(r"^#+ (.*)$", notes, re.MULTILINE)}
    assert set(re.findall(r"\]\(NOTES\.md#([^)]+)\)", text)) <= note_headings


def test_a_changed_number_changes_its_table_summary_and_readme(
    results_md: ModuleType, tmp_path: Path
) -> None:
    results = _copy(results_md, tmp_path)
    before, before_block = results_md.render(results)
    assert "0.432 ± 0.012" not in before and "TPE 0.432" not in before_block

    def tpe_at_100(data: dict[str, Any]) -> None:
        data["single"]["tpe"]["100"].update(mean_regret=0.4321, se=0.0123)

    _edit(results / "nb201.json", tpe_at_100)
    after, after_block = results_md.render(results)
    row = next(line for line in after.splitlines() if line.startswith("| tpe | "))
    assert row.split(" | ")[2] == "0.432 ± 0.012"  # the regret table's 100-evaluation column
    assert "Optuna's TPE 0.432 ± 0.012" in after  # the summary
    assert "TPE 0.432," in after_block
    changed = [a for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 2  # the table's row and the summary's line, nothing else


def test_missed_targets_are_said_and_flip_with_the_number(
    results_md: ModuleType, tmp_path: Path
) -> None:
    results = _copy(results_md, tmp_path)

    def images_per_second(value: float) -> Any:
        def change(data: dict[str, Any]) -> None:
            data["runs"]["library_best"]["images_per_second"] = value

        return change

    def regret_target(met: bool, value: float) -> Any:
        def change(data: dict[str, Any]) -> None:
            (key,) = [k for k in data["targets"] if k.startswith("best of ours")]
            data["targets"][key].update(met=met, sampler="evolution", mean_regret=value)

        return change

    _edit(results / "gpu_training.json", images_per_second(20_000.0))
    _edit(results / "nb201.json", regret_target(False, 0.25))
    text, block = results_md.render(results)
    assert "**20,000 training images/s**" in text
    assert "Target ≥ 25,000 images/s: **NOT MET** (missed by 20%)." in text
    assert "target 25,000: missed" in block
    assert "Target (mean regret <= 0.10 at 100): **NOT MET** (evolution 0.250)." in text
    assert "(target ≤ 0.10: not met)" in block

    _edit(results / "gpu_training.json", images_per_second(26_000.0))
    _edit(results / "nb201.json", regret_target(True, 0.08))
    text, block = results_md.render(results)
    assert "Target ≥ 25,000 images/s: MET." in text and "target 25,000: met" in block
    assert "Target (mean regret <= 0.10 at 100): MET (evolution 0.080)." in text


def test_a_missing_json_leaves_its_section_out_and_write_fills_the_readme_block(
    results_md: ModuleType, tmp_path: Path
) -> None:
    results = _copy(results_md, tmp_path)
    (results / "faults.json").unlink()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{results_md.BEGIN}\nold\n{results_md.END}\n\nrest\n")
    results_md.write(results, tmp_path / "RESULTS.md", readme)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Fault suite" not in text and "## Builder overhead" in text
    assert "- Faults:" not in readme.read_text() and "- Builder:" in readme.read_text()
    assert readme.read_text().endswith(f"{results_md.END}\n\nrest\n")
    with pytest.raises(ValueError, match="results:begin"):
        results_md.with_block("# no markers\n", "- x")
