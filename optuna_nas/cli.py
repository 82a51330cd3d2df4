"""The ``optuna-nas`` command: read NAS studies from their storage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json

import optuna

from optuna_nas import __version__
from optuna_nas.report import pareto_table


def _load(args: argparse.Namespace) -> optuna.Study:
    return optuna.load_study(study_name=args.study_name, storage=args.storage)


def _pareto(args: argparse.Namespace) -> None:
    print(pareto_table(_load(args)))


def _spec(args: argparse.Namespace) -> None:
    study = _load(args)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
    if not trials or "spec" not in trials[0].user_attrs:
        raise SystemExit(f"trial {args.trial} of study {args.study_name!r} has no stored spec.")
    print(json.dumps(trials[0].user_attrs["spec"], indent=2, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``optuna-nas`` console script."""
    parser = argparse.ArgumentParser(prog="optuna-nas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("pareto", _pareto, "print the Pareto front (best trials) of a study"),
        ("spec", _spec, "print the architecture spec JSON of one trial"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--storage", required=True, help="e.g. sqlite:///quickstart.db")
        p.add_argument("--study-name", required=True)
        if name == "spec":
            p.add_argument("--trial", type=int, required=True, help="trial number")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)
