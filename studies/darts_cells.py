"""DARTS cells: a differentiable search on the cell space, its architectures trained and compared.

What it shows: DARTS (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019; first
order, with the DARTS- auxiliary skip and the DARTS+ early stop, see
``optuna_nas.samplers._darts``) searches a small NAS-Bench-201-style cell space (4 nodes, 6
edges, 5 ops; 2 stages of 1 cell, 8 channels) on the bundled digits data (8x8 grey images, 10
classes). Its result is not taken on trust: the architectures it derives are trained from
scratch as ordinary Optuna trials of the study ``--study-name`` (``DartsSampler``: trial 0 is
the argmax of alpha, later trials are draws from ``softmax(alpha / T)``), maximising validation
accuracy, whose per-epoch curve is reported with ``trial.report``. For comparison, the study
``<study-name>-random`` in the same storage trains as many architectures drawn uniformly by
Optuna's ``RandomSampler``, with exactly the same training (``FullTraining``, same epochs, seed
and data). The run ends with a table: the argmax's accuracy, best and median of the DARTS draws
and of the random architectures, and the argmax's rank among the random ones. Every trial gets
its diagram, note and trained weights in the artifact folder; alpha's history per search epoch
is in the DARTS study's system attrs (``darts:history``, ``darts:result``), and the supernet
after every search epoch in the artifact folder.

How long: with the defaults (10 trials per study, 6 training epochs, 10 search epochs) one run
took 2 min 20 s of wall time (the search 70 s, the 20 trainings about 65 s) on 2 CPU cores shared
with other engineers' jobs; the machine's load made the same steps up to several times slower
at other moments, so take it as a rough figure. Every number printed is seeded: a rerun from
scratch with the same ``--seed`` gives the same alpha and accuracies on the same machine.

    python studies/darts_cells.py
    python studies/darts_cells.py --trials 20 --epochs 8 --search-epochs 12 --seed 1

Resume: rerun the same command, with a larger ``--trials`` for more; both studies continue up
to ``--trials`` finished trials each. The search is not run again: alpha is read from the study
(a search killed half-way resumes from its last saved epoch). View it:

    optuna-nas dashboard --storage sqlite:///darts_cells.db
    optuna-nas report --storage sqlite:///darts_cells.db --study darts_cells --out rep/
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import math
from pathlib import Path
import statistics
import time
from typing import Any
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.samplers import DartsSampler
from optuna_nas.samplers import DartsSearchConfig
from optuna_nas.samplers import export_choices
from optuna_nas.spaces import CellSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

DEFAULT_STORAGE = "sqlite:///darts_cells.db"  # in the working directory
PROPOSAL = "darts:proposal"  # the trial system attr DartsSampler writes: "argmax" or "softmax"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, but got {value}")
    return value


def _values(trials: Sequence[FrozenTrial]) -> list[float]:
    return [
        float(t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def comparison(darts: optuna.Study, random: optuna.Study) -> str:
    """The comparison table of a DARTS study and its random-sampler counterpart, as text.

    Rows: the argmax architecture's validation accuracy, best and median of the DARTS draws
    (``softmax(alpha / T)``) and of the random architectures, and the argmax's rank among the
    random ones (1 = better than all of them; ties count in the argmax's favour).
    """
    trials = darts.get_trials(deepcopy=False)
    argmax = _values([t for t in trials if t.system_attrs.get(PROPOSAL) == "argmax"])
    draws = _values([t for t in trials if t.system_attrs.get(PROPOSAL) == "softmax"])
    rand = _values(random.get_trials(deepcopy=False))

    def row(name: str, values: list[float]) -> list[str]:
        if not values:
            return [name, "0", "-", "-"]
        return [name, str(len(values)), _fmt(max(values)), _fmt(statistics.median(values))]

    rows = [
        ["architectures", "n", "best val_accuracy", "median val_accuracy"],
        row("DARTS argmax", argmax),
        row("DARTS softmax draws", draws),
        row("random (RandomSampler)", rand),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if argmax and rand:
        better = sum(v > argmax[0] for v in rand)
        lines.append(
            f"\n{better} of {len(rand)} random architectures score higher than the DARTS argmax "
            f"({_fmt(argmax[0])}): it ranks {better + 1} of {len(rand) + 1} among them."
        )
    return "\n".join(lines)


def search_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attrs (where ``DartsSampler`` keeps ``darts:history`` and the rest)."""
    storage = study._storage  # Optuna 5 has no public Study.system_attrs
    return dict(storage.get_study_system_attrs(storage.get_study_id_from_name(study.study_name)))


def _search_summary(sampler: DartsSampler, darts: optuna.Study) -> str:
    attrs = search_attrs(darts)
    history, result = attrs.get("darts:history", []), attrs.get("darts:result", {})
    alpha = result.get("alpha", {})
    if not alpha:
        return "DARTS search: not finished."
    seconds = sum(float(h.get("seconds") or 0.0) for h in history)
    lines = [
        f"DARTS search: {result['epochs']} epochs ({seconds:.0f} s when it ran)"
        + (", stopped early by the DARTS+ skip rule" if result["stopped_early"] else ""),
        "argmax of alpha (softmax weight of the chosen op):",
    ]
    chosen = export_choices(sampler.plan, alpha)
    for p in sampler.plan.params:
        logits = alpha[p.name]
        top = max(logits)
        weight = 1.0 / sum(math.exp(v - top) for v in logits)
        lines.append(f"  {p.name:<20} {chosen[p.name]!s:<14} {weight:.2f}")
    return "\n".join(lines)


def _run(
    study: optuna.Study,
    objective: NASObjective,
    trials: int,
    deadline: float | None,
    share: float,
) -> None:
    """Run ``study`` up to ``trials`` finished trials, within ``share`` of the time left."""
    timeout = None if deadline is None else max(0.0, (deadline - time.monotonic()) * share)
    missing = max(0, trials - count_finished(study))
    print(f"\n{study.study_name}: {missing} trials to run")
    with ProgressBar(study, n_trials=missing, timeout=timeout) as bar:
        run_study(
            study,
            objective,
            n_trials=trials,
            catch=(RuntimeError, ValueError),
            timeout=timeout,
            callbacks=[bar],
        )


def main(argv: list[str] | None = None) -> tuple[optuna.Study, optuna.Study]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trials", type=_positive_int, default=10, help="finished trials wanted in each study"
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=6, help="training epochs per architecture"
    )
    parser.add_argument(
        "--search-epochs", type=_positive_int, default=10, help="epochs of the DARTS search"
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="T of the draws")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="storage URL")
    parser.add_argument("--study-name", default="darts_cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="search and training device (cuda:0, ...)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds for this run's trials (the search runs to its end; half of the time "
        "left after it goes to the DARTS trials, the rest to the random ones)",
    )
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="diagrams, weights, supernet (default: X.artifacts beside a sqlite:///X.db storage)",
    )
    args = parser.parse_args(argv)
    artifact_dir = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    start = time.monotonic()
    deadline = None if args.timeout is None else start + args.timeout

    data = load_digits(seed=args.seed)
    space = CellSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        init_channels=8,
        num_stages=2,
        cells_per_stage=1,
    )
    # One objective for both studies: the same training, seed and data for every architecture.
    objective = NASObjective(
        space,
        FullTraining(
            data, training=TrainingConfig(epochs=args.epochs), batch_size=64, device=args.device
        ),
        objectives=("val_accuracy",),
        seed=args.seed,
        device=args.device,
        artifact_store=store,
        save_weights=True,
    )
    storage = open_storage(args.storage)
    studies = []
    for name in (args.study_name, f"{args.study_name}-random"):
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=objective.directions,
            pruner=optuna.pruners.NopPruner(),  # equal training: every architecture trains fully
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # experimental since Optuna 3.2; the dashboard shows it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objective.objectives))
        studies.append(study)
    darts, random = studies

    # The search seed is stored with the first search and reused on every resume; offsetting
    # the draws' seed by the trials already stored keeps a resumed run from replaying them.
    sampler = DartsSampler(
        space=space,
        data=data,
        search_config=DartsSearchConfig(epochs=args.search_epochs, device=args.device),
        temperature=args.temperature,
        artifact_store=store,
        seed=args.seed + len(darts.trials),
    )
    darts.sampler = sampler
    random.sampler = optuna.samplers.RandomSampler(seed=args.seed + len(random.trials))

    searched = sampler.alpha(darts) is None
    print("Running the DARTS search ..." if searched else "DARTS search: read from the study.")
    sampler.search(darts)  # returns the stored alpha at once when the search is complete
    print(_search_summary(sampler, darts))

    _run(darts, objective, args.trials, deadline, share=0.5)
    _run(random, objective, args.trials, deadline, share=1.0)

    seconds = time.monotonic() - start
    print(
        f"\n{count_finished(darts)} + {count_finished(random)} finished trials "
        f"({seconds:.0f} s this run)\n"
    )
    print(report(darts).to_text())
    print(f"\nDARTS vs random, equal training ({args.epochs} epochs each):\n")
    print(comparison(darts, random))
    shown = mask_url(args.storage)
    print(f"\nView it:  optuna-nas dashboard --storage {shown} --artifact-dir {artifact_dir}")
    print(f"   (or plain: optuna-dashboard {shown} --artifact-dir {artifact_dir})")
    print(f"Resume:   python studies/darts_cells.py --storage {shown} --trials <more>")
    return darts, random


if __name__ == "__main__":
    main()
