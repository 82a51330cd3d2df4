"""The ``optuna-nas`` command: run NAS studies, report on them, view them, export the winner.

Every subcommand reads the study from its storage alone. Errors are printed as one line
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import importlib.util
import os
from pathlib import Path
import pickle
import sys
from typing import Any

import optuna

from optuna_nas import __version__

#: What ``optuna-nas --help`` prints above the commands (plain text: argparse shows it as is).
DESCRIPTION = (
    "Run NAS studies, report on them, view them in optuna-dashboard and export the winner. "
    "Every command reads the study from its storage alone. Errors are printed as one line "
    "(--debug shows the traceback)."
)
#: The exit status when the reader of stdout goes away (``optuna-nas ... | head``): 128 + SIGPIPE,
#: what a shell reports for a command that a closed pipe stopped.
EXIT_BROKEN_PIPE = 141

_EPILOGS = {
    "run": """examples:
  optuna-nas run studies/quickstart.py --trials 20 --timeout 600
  optuna-nas run studies/mobile_latency.py --trials 30 -- --max-latency-ms 1.2
  optuna-nas run my_study.toml --trials 40       # a config file, see below
  optuna-nas run studies/quickstart.py --trials 200 --devices cuda:0,cuda:1,cuda:2,cuda:3 \\
      -- --storage postgresql+psycopg2://user:pw@db/nas   # one worker per GPU
  optuna-nas run studies/quickstart.py --trials 40 --workers 2   # two CPU workers

A .py study script must define main(argv); --trials N and --timeout S are passed on to it as
'--trials N --timeout S', followed by every argument after '--'.
A .toml/.json config holds: study_name, storage (required), space (chain|cell|mobile),
sampler (a create_sampler name: random, tpe, gp, nsga2, evolution, ...), objectives (a list),
data (digits|mnist_5k), device (default "cpu"; e.g. "cuda:0"), epochs, batch_size, seed,
trials, timeout, artifact_dir (where each trial's architecture diagram goes; default
X.artifacts next to a sqlite:///X.db storage, required for other storages).
--device and --seed go to the script as '--device D --seed S' (a config's device and seed).
--workers N / --devices A,B,... start one worker process per device (or N on the default
device) on the same storage, each with seed + its index and its output lines prefixed; they
stop at exactly --trials finished trials between them; Ctrl-C stops them all; the exit status
is the worst of theirs. With CPU workers, OMP_NUM_THREADS is cores // workers unless set.
Rerunning the same command resumes the study up to --trials finished trials.""",
    "report": """examples:
  optuna-nas report --storage sqlite:///quickstart.db --study quickstart
  optuna-nas report --storage sqlite:///quickstart.db --study quickstart --out report/
  optuna-nas report --storage sqlite:///q.db --study q --reference-point 0.5,60000

--out writes report.json, front.csv (or top_k.csv), history.csv, report.txt and the figures
(Pareto front, histories, hypervolume history) as PNG and interactive HTML.""",
    "dashboard": """examples:
  optuna-nas dashboard --storage sqlite:///quickstart.db        # http://127.0.0.1:8080
  optuna-nas dashboard --storage sqlite:///quickstart.db --port 8081 --artifact-dir art/

The artifact store defaults to X.artifacts/ next to a sqlite database X.db.""",
    "annotate": """examples:
  optuna-nas annotate --storage sqlite:///quickstart.db --study quickstart

Adds an architecture diagram (architecture.svg) and a Markdown note to every trial that
stores a spec, for studies run without attach_architecture.""",
    "export": """examples:
  optuna-nas export --storage sqlite:///quickstart.db --study quickstart --best --out winner/
  optuna-nas export --storage sqlite:///q.db --study q --best --objective val_accuracy \\
      --max-params 20000 --retrain 20 --out winner/
  optuna-nas export --storage sqlite:///q.db --study q --trial 7 --out trial7/

Writes spec.json, state_dict.pt, model.pt2 (torch.export) and export.json. Weights: retrained
(--retrain), else saved in the study by save_weights (found in --artifact-dir), else none.
--retrain loads the data the study recorded (a bundled set, or CIFAR / an image folder: give
--data-dir if the folder moved); a study on your own Dataset retrains from Python
(optuna_nas.export.export_trial(..., data=...)).""",
    "spec": """examples:
  optuna-nas spec --storage sqlite:///quickstart.db --study quickstart --trial 3""",
    "storage-server": """examples:
  optuna-nas storage-server --storage postgresql+psycopg2://nas:pw@db/nas --port 13000
  optuna-nas storage-server --storage sqlite:///study.db --port 13000     # one machine
  optuna-nas storage-server --storage postgresql+psycopg2://nas:pw@db/nas --port 13000 \\
      --host 0.0.0.0                         # workers on other machines

Workers open --storage grpc://HOST:PORT (needs pip install 'optuna-nas[grpc]'): all their
reads and writes go through this one process, which holds the database connections and a
cache of finished trials. Heartbeats, retries, deduplication and the other claims work as on
the database itself. It serves an RDB (sqlite, postgresql, mysql), not a journal or Redis.
There is no TLS and no authentication: listen on 127.0.0.1 (the default) or on a network only
trusted machines reach. One process serves some 20 trials/s (about 50 ms of its CPU per
trial); --processes N starts N on the port, sharing only the database. Ctrl-C stops it;
workers then stop with an error naming the URL, and rerunning them after a restart resumes
the study. report, annotate, export and spec take either URL; optuna-dashboard and Optuna's
own CLI read the database URL.""",
}


class CommandError(Exception):
    """A user error, printed as one line."""


def _check_storage(storage: str) -> None:
    prefix = "sqlite:///"
    if storage.startswith(prefix) and not Path(storage[len(prefix) :]).is_file():
        raise CommandError(f"--storage {storage!r}: no such database file.")


def load(storage: str, study: str | None) -> optuna.Study:
    """Load a study; without a name, the storage's only study. Errors list the studies.

    The URL is opened by :func:`~optuna_nas.storage.open_storage`, so every URL a study can
    live at works (``grpc://`` and ``journal://`` too), without heartbeats: this only reads.
    """
    from optuna_nas.storage import open_storage

    _check_storage(storage)
    opened = open_storage(storage, heartbeat_interval=None)
    # Names only: a summary reads every study's trials, slow on a big database and a KeyError
    # when another client deletes a study meanwhile.
    names = sorted(optuna.get_all_study_names(storage=opened))
    if study is None:
        if len(names) != 1:
            raise CommandError(f"--study is required: {storage} holds studies {names}.")
        study = names[0]
    if study not in names:
        raise CommandError(f"no study {study!r} in {storage}; its studies are {names}.")
    return optuna.load_study(study_name=study, storage=opened)


def _artifact_store(args: argparse.Namespace, *, create: bool) -> Any:
    from optuna.artifacts import FileSystemArtifactStore

    from optuna_nas.report import default_artifact_dir

    folder = Path(args.artifact_dir) if args.artifact_dir else default_artifact_dir(args.storage)
    if not folder.is_dir():
        if not create:
            return None
        folder.mkdir(parents=True)
    return FileSystemArtifactStore(str(folder))


def _run(args: argparse.Namespace, extra: list[str]) -> None:
    target = Path(args.target)
    if not target.is_file():
        raise CommandError(f"run: no such study script or config {str(target)!r}.")
    if args.workers is not None or args.devices is not None:
        raise SystemExit(_run_workers(args, [a for a in extra if a != "--"]))
    if target.suffix in (".toml", ".json"):
        if extra:
            raise CommandError(f"run: a config takes no extra arguments, but got {extra}.")
        from optuna_nas._runconfig import artifact_folder
        from optuna_nas._runconfig import load_run_config
        from optuna_nas._runconfig import run_config
        from optuna_nas.report import report
        from optuna_nas.storage import mask_url

        config = load_run_config(target)
        overrides = {"device": args.device, "seed": args.seed}
        config = dataclasses.replace(
            config, **{k: v for k, v in overrides.items() if v is not None}
        )
        study = run_config(config, trials=args.trials, timeout=args.timeout)
        print(report(study).to_text())
        print(
            f"\nView it:  optuna-nas dashboard --storage {mask_url(config.storage)} "
            f"--artifact-dir {artifact_folder(config)}"
        )
        return
    if target.suffix != ".py":
        raise CommandError(f"run: expected a .py script or a .toml/.json config, got {target}.")
    spec = importlib.util.spec_from_file_location(f"optuna_nas_study_{target.stem}", target)
    if spec is None or spec.loader is None:
        raise CommandError(f"run: cannot import {target}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if not callable(main):
        raise CommandError(f"run: {target} defines no main(argv) function.")
    argv = [*(["--trials", str(args.trials)] if args.trials is not None else [])]
    argv += ["--timeout", str(args.timeout)] if args.timeout is not None else []
    argv += [a for a in extra if a != "--"]
    argv += ["--device", args.device] if args.device is not None else []
    argv += ["--seed", str(args.seed)] if args.seed is not None else []
    main(argv)


def _run_workers(args: argparse.Namespace, extra: list[str]) -> int:
    """``run --workers N`` / ``--devices a,b``: the same run in one process per worker."""
    from optuna_nas._workers import plan_workers
    from optuna_nas._workers import run_workers

    seed = args.seed
    if seed is None and "--seed" in extra[:-1]:  # a script's own --seed is the base seed
        seed = int(extra[extra.index("--seed") + 1])
        del extra[extra.index("--seed") : extra.index("--seed") + 2]
    devices = args.devices.split(",") if args.devices is not None else None
    if args.device is not None and devices is not None:
        raise CommandError("run: give --device (every worker) or --devices (one each), not both.")
    workers = plan_workers(workers=args.workers, devices=devices, seed=seed or 0)
    commands = []
    for worker in workers:
        argv = ["run", args.target]
        argv += ["--trials", str(args.trials)] if args.trials is not None else []
        argv += ["--timeout", str(args.timeout)] if args.timeout is not None else []
        device = worker.device or args.device
        argv += ["--device", device] if device is not None else []
        argv += ["--seed", str(worker.seed)]
        commands.append((worker, [*argv, "--", *extra] if extra else argv))
    print(f"optuna-nas run: {len(workers)} workers: {', '.join(w.label for w in workers)}")
    return run_workers(commands)


def _report(args: argparse.Namespace) -> None:
    from optuna_nas.report import report

    reference = None
    if args.reference_point:
        try:
            reference = [float(v) for v in args.reference_point.split(",")]
        except ValueError:
            raise CommandError(
                f"--reference-point must be comma-separated numbers, got {args.reference_point!r}."
            ) from None
    summary = report(
        load(args.storage, args.study),
        out_dir=args.out,
        top_k=args.top_k,
        reference=reference,
        plots=not args.no_plots,
    )
    print(summary.to_text())
    if args.out:
        print(
            f"\nWrote {', '.join(sorted(p.name for p in Path(args.out).iterdir()))} to {args.out}"
        )


def _dashboard(args: argparse.Namespace) -> None:
    from optuna_nas.report import default_artifact_dir
    from optuna_nas.report import run_dashboard

    if args.storage.startswith("grpc://"):
        raise CommandError(
            f"optuna-dashboard reads the database itself; give it the URL that "
            f"`optuna-nas storage-server` serves, not {args.storage!r}."
        )
    _check_storage(args.storage)
    folder = args.artifact_dir or default_artifact_dir(args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port} (artifacts: {folder})", flush=True)
    run_dashboard(args.storage, artifact_dir=folder, host=args.host, port=args.port)


def _annotate(args: argparse.Namespace) -> None:
    from optuna_nas.report import annotate_study

    study = load(args.storage, args.study)
    done = annotate_study(
        study, artifact_store=_artifact_store(args, create=True), overwrite=args.overwrite
    )
    print(f"annotated {len(done)} trial(s) of {study.study_name!r}: {done}")


def _retrain_recipe(args: argparse.Namespace) -> Any:
    """``export --retrain``'s TrainingConfig from ``--precision/--channels-last/--compile``."""
    from optuna_nas.evaluation import TrainingConfig

    if args.retrain is None:
        return None
    return TrainingConfig(
        epochs=args.retrain,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        cudnn_benchmark=args.device.startswith("cuda"),
    )


def _export(args: argparse.Namespace) -> None:
    from optuna_nas.export import export_trial
    from optuna_nas.export import select_trial
    from optuna_nas.report import format_value

    if args.trial is None and not args.best:
        raise CommandError("export: give --trial N or --best.")
    study = load(args.storage, args.study)
    objective: str | int | None = args.objective
    if args.objective is not None and args.objective.isdigit():
        objective = int(args.objective)
    trial = select_trial(
        study,
        trial=args.trial,
        objective=objective,
        max_latency_ms=args.max_latency_ms,
        max_params=args.max_params,
    )
    store = None  # retraining needs no stored weights, so no artifact folder either
    if args.retrain is None and (args.artifact_dir or args.storage.startswith("sqlite:///")):
        store = _artifact_store(args, create=False)
    result = export_trial(
        study,
        trial,
        args.out,
        artifact_store=store,
        retrain_epochs=args.retrain,
        seed=args.seed,
        device=args.device,
        data_root=args.data_dir,
        training=_retrain_recipe(args),
    )
    values = ", ".join(
        f"{k}={format_value(v)}"
        for k, v in zip(study.metric_names or [], trial.values or [], strict=False)
    )
    print(f"exported trial {trial.number} ({values}) to {result.out_dir}/")
    print(f"  weights: {result.weights}")
    if result.test_accuracy is not None:
        print(f"  test accuracy after retraining: {result.test_accuracy:.4f}")
    print(f"  files: {', '.join(p.name for p in result.files.values())}")


def _spec(args: argparse.Namespace) -> None:
    from optuna_nas.export import select_trial
    from optuna_nas.report import stored_spec

    spec = stored_spec(select_trial(load(args.storage, args.study), trial=args.trial))
    print(spec.to_json(indent=2) if spec is not None else "")


def _storage_server(args: argparse.Namespace) -> None:
    from optuna_nas.storage import mask_url
    from optuna_nas.storage import start_storage_server

    server = start_storage_server(
        args.storage, port=args.port, host=args.host, processes=args.processes
    )
    try:
        print(
            f"optuna-nas storage-server: serving {mask_url(args.storage)} to workers at "
            f"--storage {server.url} (Ctrl-C stops it)",
            flush=True,
        )
        server.wait()
    finally:
        server.stop(grace=5)


def _storage_args(p: argparse.ArgumentParser, *, study: bool = True) -> None:
    p.add_argument("--storage", required=True, help="an Optuna storage URL, e.g. sqlite:///q.db")
    if study:
        p.add_argument(
            "--study", "--study-name", dest="study", help="study name (optional if only one)"
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``optuna-nas`` (one subparser per command)."""
    parser = argparse.ArgumentParser(prog="optuna-nas", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=_EPILOGS[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add("run", _run, "run (or resume) a study script or config with a trial and time budget")
    p.add_argument("target", help="a study script (.py with main(argv)) or a .toml/.json config")
    p.add_argument("--trials", type=int, help="finished trials wanted in the study in total")
    p.add_argument("--timeout", type=float, help="seconds this run may take")
    p.add_argument(
        "--workers", type=int, help="worker processes on this machine, same storage (CPU)"
    )
    p.add_argument("--devices", help="one worker per device, e.g. cuda:0,cuda:1,cuda:2,cuda:3")
    p.add_argument("--device", help="the device (a script's --device, a config's device)")
    p.add_argument("--seed", type=int, help="the seed (workers: seed + worker index)")

    p = add("report", _report, "print the Pareto front / top trials, hypervolume and history")
    _storage_args(p)
    p.add_argument("--out", help="folder for JSON, CSV, PNG and HTML files")
    p.add_argument("--top-k", type=int, default=10, help="rows of a single-objective report")
    p.add_argument("--reference-point", help="hypervolume reference point, e.g. 0.5,60000")
    p.add_argument("--no-plots", action="store_true", help="with --out: skip the figures")

    p = add("dashboard", _dashboard, "start optuna-dashboard with the study's artifact store")
    _storage_args(p, study=False)
    p.add_argument("--artifact-dir", help="artifact folder (default: X.artifacts next to X.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)

    p = add("annotate", _annotate, "add architecture diagrams and notes to an existing study")
    _storage_args(p)
    p.add_argument("--artifact-dir", help="artifact folder (default: X.artifacts next to X.db)")
    p.add_argument("--overwrite", action="store_true", help="redo trials that have a diagram")

    p = add("export", _export, "rebuild a trial's model and save spec, weights, torch.export")
    _storage_args(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="the trial number to export")
    which.add_argument("--best", action="store_true", help="the best feasible trial")
    p.add_argument("--objective", help="with --best: the objective (name or index) to optimise")
    p.add_argument("--max-latency-ms", type=float, help="with --best: latency limit")
    p.add_argument("--max-params", type=int, help="with --best: parameter limit")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--artifact-dir", help="where save_weights stored weights (default: next to db)"
    )
    p.add_argument("--retrain", type=int, metavar="EPOCHS", help="retrain from scratch first")
    p.add_argument(
        "--data-dir", help="with --retrain: where the study's data folder is on this machine"
    )
    p.add_argument("--device", default="cpu", help="with --retrain: where to train (cuda:0, ...)")
    p.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="with --retrain"
    )
    p.add_argument(
        "--channels-last", action="store_true", help="with --retrain: channels-last images"
    )
    p.add_argument(
        "--compile",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        help="with --retrain: torch.compile mode (reduce-overhead: CUDA graphs)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation / retraining")

    p = add("spec", _spec, "print the architecture spec JSON of one trial")
    _storage_args(p)
    p.add_argument("--trial", type=int, required=True, help="trial number")

    p = add(
        "storage-server",
        _storage_server,
        "serve a study database to many workers through Optuna's gRPC storage proxy",
    )
    p.add_argument(
        "--storage", required=True, help="the RDB URL, e.g. postgresql+psycopg2://u:pw@db/nas"
    )
    p.add_argument("--port", type=int, required=True, help="the port workers connect to")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; 0.0.0.0: every interface)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes sharing the port (default 1; more when one process is busy)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``optuna-nas`` console script.

    When the reader of stdout goes away (``optuna-nas spec ... | head -1``), it stops quietly
    with status :data:`EXIT_BROKEN_PIPE`, as the "Note on SIGPIPE" of Python's :mod:`signal`
    documentation recommends: stdout is pointed at ``os.devnull`` so that the interpreter's
    final flush does not fail a second time.
    """
    try:
        try:
            _main(argv)
        finally:  # also after --help: a closed pipe shows up here, not at the interpreter's exit
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_BROKEN_PIPE) from None


def _main(argv: Sequence[str] | None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run":
            _run(args, extra)
        else:
            args.func(args)
    except KeyboardInterrupt:
        print("optuna-nas: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        raise  # the reader of stdout went away: main() stops quietly
    except (CommandError, ValueError, TypeError, KeyError, OSError, RuntimeError,
            pickle.UnpicklingError, optuna.exceptions.OptunaError) as e:  # fmt: skip
        if args.debug:
            raise
        print(f"optuna-nas {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
