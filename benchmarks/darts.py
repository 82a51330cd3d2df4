"""DARTS sampler: does alpha find the op a task needs, and does its architecture beat random ones?

Two measurements, everything seeded, one torch thread:

1. **Synthetic task** (``dot_pairs``): 12x12 images with two bright dots 4 px apart, class =
   horizontal or vertical pair. Every dot is 2+ px from the border, so only the relation of
   the two dots carries the class; of the NAS-Bench-201 ops on the single cell edge (after the
   space's linear 3x3 stem), only ``nor_conv_3x3`` gives two nonlinear 3x3 layers spanning
   both dots. Each op alone is trained (equal training) to show that, then DARTS searches the
   edge from several seeds; we report alpha's ranking and the margin of the first op.
2. **Digits** (the bundled real data): a small NAS-Bench-201-style cell space (4 nodes, 6
   edges, 2 stages of 1 cell, 8 channels). DARTS (``DartsSampler.search``, default config
   but 12 epochs) from several search seeds gives its argmax architecture; it and random
   architectures (uniform over the ops, Optuna's RandomSampler) are trained the same way
   (``FullTraining``, 6 epochs, SGD cosine) and compared on validation accuracy; the DARTS
   architectures are trained with 3 seeds each, the random ones with one seed each.

Run ``python benchmarks/darts.py`` (a few minutes on 2 cores) to write
``benchmarks/results/darts.json`` and the "DARTS sampler" section of ``benchmarks/RESULTS.md``;
``--smoke`` runs a tiny version in seconds and writes nothing.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
from pathlib import Path
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
import optuna
import torch
from torch.utils.data import TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optuna_nas.data import DataSplits  # noqa: E402
from optuna_nas.data import load_digits  # noqa: E402
from optuna_nas.evaluation import FullTraining  # noqa: E402
from optuna_nas.evaluation import TrainingConfig  # noqa: E402
from optuna_nas.samplers._darts import DartsSampler  # noqa: E402
from optuna_nas.samplers._darts import DartsSearchConfig  # noqa: E402
from optuna_nas.samplers._darts import export_choices  # noqa: E402
from optuna_nas.spaces import CellSpace  # noqa: E402
from tests.samplers_darts._helpers import dot_pair_data  # noqa: E402

SECTION = "## DARTS sampler"


def _head(data: DataSplits, n: int | None) -> DataSplits:
    """The first ``n`` samples of every split (all of them for None): the smoke run's data."""
    if n is None:
        return data

    def cut(split: TensorDataset) -> TensorDataset:
        return TensorDataset(*(t[:n] for t in split.tensors))

    return replace(data, train=cut(data.train), val=cut(data.val), test=cut(data.test))


def synthetic(
    search_seeds: list[int], epochs: int, train_epochs: int, n: int | None = None
) -> dict[str, Any]:
    data = _head(dot_pair_data(seed=0), n)
    space = CellSpace(
        input_shape=data.input_shape,
        num_outputs=2,
        init_channels=8,
        num_stages=1,
        cells_per_stage=1,
        num_nodes=2,
    )
    evaluator = FullTraining(data, training=TrainingConfig(epochs=train_epochs))
    alone = {
        op: evaluator.evaluate(space.decode({"cell/edge_1_0/op": op}), report=None, seed=0).values[
            "val_accuracy"
        ]
        for op in space.ops
    }
    runs = []
    for seed in search_seeds:
        config = DartsSearchConfig(epochs=epochs, warmup_epochs=max(1, epochs // 5))
        sampler = DartsSampler(space=space, data=data, search_config=config, seed=seed)
        start = time.perf_counter()
        alpha = sampler.search(optuna.create_study())["cell/edge_1_0/op"]
        ranked = sorted(zip(alpha, space.ops, strict=True), reverse=True)
        runs.append(
            {
                "seed": seed,
                "alpha": dict(zip(space.ops, alpha, strict=True)),
                "first": ranked[0][1],
                "margin": ranked[0][0] - ranked[1][0],
                "search_seconds": time.perf_counter() - start,
            }
        )
    return {"val_accuracy_of_each_op_alone": alone, "searches": runs}


def digits(
    search_seeds: list[int], epochs: int, n_random: int, train_epochs: int, n: int | None = None
) -> dict[str, Any]:
    data = _head(load_digits(seed=0), n)
    space = CellSpace(
        input_shape=data.input_shape,
        num_outputs=10,
        init_channels=8,
        num_stages=2,
        cells_per_stage=1,
    )
    evaluator = FullTraining(data, training=TrainingConfig(epochs=train_epochs))

    def accuracy(params: dict[str, Any], seed: int) -> float:
        spec = space.decode(params)
        return float(evaluator.evaluate(spec, report=None, seed=seed).values["val_accuracy"])

    random_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    random_rows = []
    for i in range(n_random):
        trial = random_study.ask()
        space.suggest(trial)
        acc = accuracy(trial.params, seed=i)
        random_study.tell(trial, acc)
        random_rows.append({"params": trial.params, "val_accuracy": acc})
    random_accs = [r["val_accuracy"] for r in random_rows]
    median = statistics.median(random_accs)
    darts_rows = []
    for seed in search_seeds:
        config = DartsSearchConfig(epochs=epochs)
        sampler = DartsSampler(space=space, data=data, search_config=config, seed=seed)
        start = time.perf_counter()
        study = optuna.create_study()
        alpha = sampler.search(study)
        seconds = time.perf_counter() - start
        choices = export_choices(sampler.plan, alpha)
        accs = [accuracy(choices, seed=s) for s in range(3)]
        mean = statistics.mean(accs)
        darts_rows.append(
            {
                "seed": seed,
                "architecture": choices,
                "val_accuracy_per_training_seed": accs,
                "val_accuracy": mean,
                "percentile_among_random": float(np.mean([a <= mean for a in random_accs])),
                "at_least_random_median": mean >= median,
                "search_seconds": seconds,
                "search_epochs": study._storage.get_study_system_attrs(study._study_id)[
                    "darts:result"
                ]["epochs"],
            }
        )
    return {
        "random": {
            "n": n_random,
            "median_val_accuracy": median,
            "mean_val_accuracy": statistics.mean(random_accs),
            "val_accuracies": random_accs,
        },
        "darts": darts_rows,
    }


def _table(result: dict[str, Any]) -> str:
    syn = result["synthetic"]
    dig = result["digits"]
    lines = [
        SECTION,
        "",
        "`python benchmarks/darts.py` → `benchmarks/results/darts.json` "
        f"({result['wall_seconds']:.0f} s wall; the 2-core VM was shared with other engineers' "
        "jobs, so the seconds are loose; accuracies are seeded and do not depend on load).",
        "",
        "**Synthetic task** (dot pairs 4 px apart, orientation = class; one cell edge). Each op "
        "alone, trained equally (validation accuracy):",
        "",
        "| " + " | ".join(syn["val_accuracy_of_each_op_alone"]) + " |",
        "|" + "---|" * len(syn["val_accuracy_of_each_op_alone"]),
        "| "
        + " | ".join(f"{v:.3f}" for v in syn["val_accuracy_of_each_op_alone"].values())
        + " |",
        "",
        "DARTS alpha on the edge after the search (default config: softmax relaxation, "
        "first-order, DARTS- auxiliary skip; 10 epochs of which 2 warm-up):",
        "",
        "| search seed | first op | margin to second "
        "| alpha (none, skip, conv1x1, conv3x3, pool) |",
        "|---|---|---|---|",
    ]
    for r in syn["searches"]:
        alpha = ", ".join(f"{v:+.2f}" for v in r["alpha"].values())
        lines.append(f"| {r['seed']} | {r['first']} | {r['margin']:.2f} | {alpha} |")
    rnd = dig["random"]
    lines += [
        "",
        f"**Digits** (cell space, 6 edges): {rnd['n']} random architectures, one training "
        f"each: median validation accuracy {rnd['median_val_accuracy']:.4f}, mean "
        f"{rnd['mean_val_accuracy']:.4f}. DARTS argmax architectures (mean of 3 trainings):",
        "",
        "| search seed | val accuracy | ≥ random median | percentile among random | "
        "search epochs | search s | architecture |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in dig["darts"]:
        arch = " ".join(f"{k.split('/')[1][5:]}:{v}" for k, v in r["architecture"].items())
        lines.append(
            f"| {r['seed']} | {r['val_accuracy']:.4f} | {r['at_least_random_median']} | "
            f"{r['percentile_among_random']:.2f} | {r['search_epochs']} | "
            f"{r['search_seconds']:.0f} | {arch} |"
        )
    return "\n".join(lines) + "\n"


def _write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if nxt < 0 else text[nxt:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run; writes nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    if args.smoke:
        syn = synthetic([0], epochs=2, train_epochs=1, n=64)
        dig = digits([0], epochs=2, n_random=2, train_epochs=1, n=64)
    else:
        syn = synthetic([0, 1, 2], epochs=10, train_epochs=8)
        dig = digits([0, 1, 2, 3, 4], epochs=12, n_random=16, train_epochs=6)
    result: dict[str, Any] = {
        "synthetic": syn,
        "digits": dig,
        "wall_seconds": time.perf_counter() - start,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "torch_threads": 1,
        },
    }
    if not args.smoke:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "darts.json").write_text(json.dumps(result, indent=2) + "\n")
        _write_section(ROOT / "benchmarks" / "RESULTS.md", _table(result))
    print(_table(result))
    return result


if __name__ == "__main__":
    main()
