"""The ``optuna-nas`` command: every subcommand, its help, one-line errors, run budgets."""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import textwrap

import optuna
import pytest

from optuna_nas.cli import EXIT_BROKEN_PIPE
from optuna_nas.cli import main
from optuna_nas.report import DIAGRAM_NAME
from optuna_nas.storage import open_storage
from tests.report.nas_study import STUDY
from tests.report.nas_study import nas_study_copy


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url, _ = nas_study_copy(tmp_path_factory.mktemp("cli"))
    return url


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "command", ["run", "report", "dashboard", "annotate", "export", "spec", "storage-server"]
)
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"optuna-nas {command}" in capsys.readouterr().out.split("examples:")[1]


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out
    assert "Run NAS studies" in out and "spec" in out


def _cli_into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m optuna_nas.cli ARGV`` with stdout a pipe whose reader has gone, as in
    ``optuna-nas ... | head -1`` once head has its line.
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "optuna_nas.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("command", ["spec", "report", "help"])
def test_a_closed_stdout_pipe_ends_quietly(storage: str, command: str) -> None:
    argv = {
        "spec": ["spec", "--storage", storage, "--trial", "1"],
        "report": ["report", "--storage", storage],
        "help": ["--help"],
    }[command]
    result = _cli_into_closed_pipe(argv)
    assert result.stderr.decode() == ""
    # argparse itself ignores a failed write of --help and exits 0.
    assert result.returncode == (0 if command == "help" else EXIT_BROKEN_PIPE)


def test_piped_into_head_prints_the_first_line_and_no_error(storage: str) -> None:
    result = subprocess.run(
        f"{sys.executable} -m optuna_nas.cli spec --storage '{storage}' --trial 1 | head -1; "
        'echo "status=${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stderr == ""
    first, status = result.stdout.splitlines()
    assert first == "{" and status in ("status=0", f"status={EXIT_BROKEN_PIPE}")


def test_report_prints_front_and_writes_files(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["report", "--storage", storage, "--study", STUDY, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Pareto front of the feasible trials" in out and "Hypervolume: " in out
    assert "reference point: val_accuracy=" in out
    report = json.loads((tmp_path / "report.json").read_text())
    front = {r["trial"] for r in report["front"]}
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert front == {t.number for t in study.best_trials}
    assert (tmp_path / "pareto_front.png").is_file() and (tmp_path / "pareto_front.html").is_file()


def test_a_study_loads_while_another_client_deletes_other_studies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # CI on a shared PostgreSQL: another client deleted its study between the listing of the
    # studies and the reading of that study's trials, and `export` failed with "Record does
    # not exist."; the commands read only the names, and only this study's trials.
    url = f"sqlite:///{tmp_path / 'two.db'}"
    mine = optuna.create_study(storage=url, study_name="mine")
    mine.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    gone = optuna.create_study(storage=url, study_name="gone")
    gone_id = gone._study_id
    # The class the CLI's study reads through (Optuna wraps an RDB in its cache).
    kind = type(optuna.storages.get_storage(open_storage(url, heartbeat_interval=None)))
    read = kind.get_all_trials

    def deleted_meanwhile(self: object, study_id: int, *args: object, **kw: object) -> object:
        if study_id == gone_id:
            raise KeyError("Record does not exist.")
        return read(self, study_id, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(kind, "get_all_trials", deleted_meanwhile)
    # The study loads: the error is about its trial (the mock objective stored no spec).
    assert _error(capsys, ["spec", "--storage", url, "--study", "mine", "--trial", "1"]) == (
        "optuna-nas spec: error: trial 1 of study 'mine' stores no spec."
    )
    assert _error(capsys, ["spec", "--storage", url, "--study", "nope", "--trial", "0"]) == (
        f"optuna-nas spec: error: no study 'nope' in {url}; its studies are ['gone', 'mine']."
    )


def test_errors_are_one_line(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, ["report", "--storage", storage, "--study", "nope"])
    assert (
        err == f"optuna-nas report: error: no study 'nope' in {storage}; its studies are ['nas']."
    )
    err = _error(capsys, ["report", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"])
    assert "no such database file" in err
    assert not (tmp_path / "missing.db").exists()
    err = _error(capsys, ["export", "--storage", storage, "--out", str(tmp_path)])
    assert "give --trial N or --best" in err
    err = _error(
        capsys,
        [
            "export",
            "--storage",
            storage,
            "--best",
            "--max-latency-ms",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert "stores 'latency_ms'" in err
    err = _error(capsys, ["run", str(tmp_path / "nothing.py")])
    assert "no such study script or config" in err


def test_spec_and_export(storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["spec", "--storage", storage, "--trial", "1"])
    spec = json.loads(capsys.readouterr().out)
    assert spec["format_version"] == 1
    main(
        ["export", "--storage", storage, "--best", "--objective", "params", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert "weights: trained in the study" in out
    manifest = json.loads((tmp_path / "export.json").read_text())
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert manifest["trial"] == min(study.trials, key=lambda t: (t.values[1], t.number)).number
    # --retrain takes the training loop's hardware options.
    retrain = ["--retrain", "1", "--precision", "bf16", "--channels-last", "--out"]
    main(["export", "--storage", storage, "--trial", "1", *retrain, str(tmp_path / "re")])
    assert "weights: retrained from scratch for 1 epoch" in capsys.readouterr().out


def test_report_spec_and_export_through_the_grpc_proxy(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna_nas.storage import start_storage_server

    main(["spec", "--storage", storage, "--trial", "1"])
    main(["report", "--storage", storage, "--no-plots"])
    direct = capsys.readouterr().out
    with start_storage_server(storage, port=0) as server:
        main(["spec", "--storage", server.url, "--trial", "1"])
        main(["report", "--storage", server.url, "--no-plots"])
        assert capsys.readouterr().out == direct
        main(["export", "--storage", server.url, "--trial", "1", "--out", str(tmp_path)])
        assert "exported trial 1" in capsys.readouterr().out
        err = _error(capsys, ["dashboard", "--storage", server.url])
        assert "optuna-dashboard reads the database itself" in err


def test_storage_server_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["storage-server", "--storage", "journal:///x.log", "--port", "1"])
    assert err.startswith("optuna-nas storage-server: error: the storage server serves an RDB")
    with socket.socket() as s:  # a closed port of 127.0.0.1
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _error(capsys, ["report", "--storage", f"grpc://127.0.0.1:{port}"])
    assert f"error: the gRPC storage proxy grpc://127.0.0.1:{port} does not answer" in err


def test_storage_server_serves_until_ctrl_c(storage: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = [sys.executable, "-m", "optuna_nas.cli"]
    server = subprocess.Popen(
        [*cli, "storage-server", "--storage", storage, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"to workers at --storage grpc://127.0.0.1:{port} (Ctrl-C stops it)" in first
        result = subprocess.run(
            [*cli, "spec", "--storage", f"grpc://127.0.0.1:{port}", "--trial", "1"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["format_version"] == 1
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 130 and "optuna-nas: interrupted" in err
    finally:
        server.kill()
        server.wait(timeout=10)


def test_run_forwards_budgets_to_a_study_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "study.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            def main(argv):
                print(json.dumps(argv))
            """
        )
    )
    main(["run", str(script), "--trials", "7", "--timeout", "30", "--", "--epochs", "2"])
    assert json.loads(capsys.readouterr().out) == [
        "--trials",
        "7",
        "--timeout",
        "30.0",
        "--epochs",
        "2",
    ]


def test_a_config_runs_on_any_storage_url_exactly_n_trials(tmp_path: Path) -> None:
    # A journal file, which Optuna's create_study cannot open from a URL: the config goes
    # through open_storage and run_study, as the study scripts do.
    log = tmp_path / "c.log"
    config = tmp_path / "study.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            study_name = "j"
            storage = "journal:///{log}"
            artifact_dir = "{tmp_path / "art"}"
            space = "chain"
            sampler = "random"
            objectives = ["val_accuracy"]
            epochs = 1
            trials = 2
            """
        )
    )
    main(["run", str(config)])
    study = optuna.load_study(study_name="j", storage=open_storage(f"journal:///{log}"))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_run_a_config_with_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "study.toml"
    db = tmp_path / "c.db"
    config.write_text(
        textwrap.dedent(
            f"""
            study_name = "c"
            storage = "sqlite:///{db}"
            space = "chain"
            sampler = "random"
            objectives = ["val_accuracy"]
            epochs = 1
            trials = 1
            """
        )
    )
    main(["run", str(config)])
    captured = capsys.readouterr()
    assert "Top 1 feasible trial:" in captured.out
    assert "best val_accuracy=" in captured.err  # the progress bar
    # Every trial gets its diagram, in X.artifacts next to the sqlite database by default.
    (trial,) = optuna.load_study(study_name="c", storage=f"sqlite:///{db}").trials
    assert any(DIAGRAM_NAME in str(v) for v in trial.system_attrs.values())
    assert [p.stat().st_size > 0 for p in (tmp_path / "c.artifacts").iterdir()] == [True]
    assert f"--artifact-dir {tmp_path / 'c.artifacts'}" in captured.out
    main(["run", str(config), "--trials", "1"])  # resumed: nothing left to run
    capsys.readouterr()
    assert len(optuna.load_study(study_name="c", storage=f"sqlite:///{db}").trials) == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"study_name": "c", "storage": "sqlite:///x.db", "epochz": 1}')
    assert "unknown key(s) ['epochz']" in _error(capsys, ["run", str(bad)])


def test_run_config_device_and_artifact_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def config(extra: str) -> Path:
        path = tmp_path / "d.toml"
        path.write_text(
            f'study_name = "d"\nstorage = "sqlite:///{tmp_path / "d.db"}"\nsampler = "random"\n'
            f'objectives = ["val_accuracy"]\nepochs = 1\ntrials = 1\n{extra}\n'
        )
        return path

    err = _error(capsys, ["run", str(config('device = "gpu"'))])
    assert "`device` must name a torch device such as 'cpu' or 'cuda:0'" in err
    assert "'gpu'" in err
    err = _error(capsys, ["run", str(config('device = "cuda:99"'))])
    assert "`device='cuda:99'` names a CUDA device" in err or "names cuda device 99" in err
    err = _error(capsys, ["run", str(config("device = 0"))])
    assert "`device` must be a string" in err
    assert not (tmp_path / "d.db").exists()  # refused before the study was created
    artifacts = tmp_path / "elsewhere"
    main(["run", str(config(f'device = "cpu"\nartifact_dir = "{artifacts}"'))])
    assert [p.suffix for p in artifacts.iterdir()] == [""]  # the diagram, stored by artifact id
    assert not (tmp_path / "d.artifacts").exists()
    capsys.readouterr()
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"study_name": "o", "storage": "redis://:pw@localhost:6379/0"}))
    err = _error(capsys, ["run", str(other)])
    assert "`artifact_dir` is required with storage 'redis://:***@localhost:6379/0'" in err
