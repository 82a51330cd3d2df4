"""``kill -9`` mid-trial, rerun: the retry resumes from the last epoch's checkpoint and ends with
the metrics of an uninterrupted run with the same seed (issue #13, item 2)."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

SCRIPT = """
import json, logging, os, signal, sys
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining, TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import open_storage, run_study

url, artifacts, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
logging.basicConfig(level=logging.INFO)  # the loop's per-epoch and resume lines

class KilledAt(FullTraining):
    def evaluate(self, spec, *, report, seed, checkpoint=None):
        def reporting(epoch, accuracy):
            if epoch == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # a real kill -9, mid-trial
            return report(epoch, accuracy)
        return super().evaluate(spec, report=reporting, seed=seed, checkpoint=checkpoint)

data = load_digits()
objective = NASObjective(
    ChainSpace(input_shape=data.input_shape, num_outputs=10),
    KilledAt(data, training=TrainingConfig(epochs=5)),
    objectives=("val_accuracy",),
    artifact_store=FileSystemArtifactStore(artifacts),
)
study = optuna.create_study(
    storage=open_storage(url, heartbeat_interval=1), study_name="resume",
    direction="maximize", load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=3),
)
run_study(study, objective, n_trials=1, poll_interval=0.2)
done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
print(json.dumps({
    "n_trials": len(study.trials),
    "value": done[0].value,
    "curve": done[0].user_attrs["val_accuracy_curve"],
    "loss": done[0].user_attrs["train_loss_curve"],
    "failed_trial": done[0].system_attrs.get("failed_trial"),
}))
"""


def _run(tmp_path: Path, name: str, kill_at: int) -> subprocess.CompletedProcess[str]:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    artifacts = tmp_path / f"{name}.artifacts"
    artifacts.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(artifacts), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_checkpoint_with_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    killed = _run(tmp_path, "killed", kill_at=3)
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = list((tmp_path / "killed.artifacts").rglob("checkpoint-*"))
    assert len(checkpoints) == 1  # epoch 2's, the newest; epoch 1's was replaced
    resumed = _run(tmp_path, "killed", kill_at=0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed after epoch 2/5 from a checkpoint" in resumed.stderr
    after = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert after["n_trials"] == 2 and after["failed_trial"] == 0  # the retry of trial 0
    assert not list((tmp_path / "killed.artifacts").rglob("checkpoint-*"))  # cleaned up
    uninterrupted = _run(tmp_path, "straight", kill_at=0)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    straight = json.loads(uninterrupted.stdout.strip().splitlines()[-1])
    assert after["curve"] == straight["curve"] and len(after["curve"]) == 5
    assert after["loss"] == straight["loss"]
    assert after["value"] == straight["value"]
