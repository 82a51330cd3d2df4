"""``optuna-nas run ... --workers N`` / ``--devices cuda:0,cuda:1``: one worker process per device.

Every worker is the same ``optuna-nas run`` command in a child process, on the same storage,
with its own device (``--device``) and its own seed (the base seed + its index, so samplers
started at the same moment do not propose the same trials); ``run_study``'s slots make the
workers stop at exactly ``--trials`` finished trials between them. CPU workers share the cores:
each gets ``OMP_NUM_THREADS`` = cores // workers unless the environment sets it. Output lines
are prefixed with the worker (``[w1 cuda:1]``); Ctrl-C stops every worker (SIGINT, then SIGKILL
after a grace period); the exit status is the worst of the workers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import os
import signal
import subprocess
import sys
import threading
from typing import IO

_GRACE_S = 30.0
"""Seconds workers get to finish their trial after Ctrl-C before they are killed."""


@dataclass(frozen=True)
class Worker:
    """One child process of a multi-worker run."""

    index: int
    device: str | None
    seed: int

    @property
    def label(self) -> str:
        return f"w{self.index}" + (f" {self.device}" if self.device else "")


def plan_workers(*, workers: int | None, devices: Sequence[str] | None, seed: int) -> list[Worker]:
    """The workers of a run: one per device in ``devices``, else ``workers`` on the default.

    Raises:
        ValueError: If both or neither count is usable (``workers < 1``, an empty or
            repeated device list, or a count that disagrees with the devices).
    """
    if devices is not None:
        names = [d.strip() for d in devices]
        if not names or any(not d for d in names) or len(set(names)) != len(names):
            raise ValueError(
                f"--devices must list distinct devices, e.g. cuda:0,cuda:1, but got {devices!r}."
            )
        if workers is not None and workers != len(names):
            raise ValueError(
                f"--workers {workers} disagrees with the {len(names)} device(s) of --devices; "
                "give one of them (--devices starts one worker per device)."
            )
        return [Worker(i, d, seed + i) for i, d in enumerate(names)]
    if workers is None or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"--workers must be an int >= 1, but got {workers!r}.")
    return [Worker(i, None, seed + i) for i in range(workers)]


def run_workers(commands: Sequence[tuple[Worker, list[str]]]) -> int:
    """Start every command, relay its output prefixed, and return the worst exit status."""
    env = dict(os.environ)
    cpu = sum(1 for w, _ in commands if w.device is None or w.device == "cpu")
    if cpu and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu))
    env["PYTHONUNBUFFERED"] = "1"
    procs: list[tuple[Worker, subprocess.Popen[str]]] = []
    pumps: list[threading.Thread] = []
    lock = threading.Lock()
    for worker, argv in commands:
        proc = subprocess.Popen(
            [sys.executable, "-m", "optuna_nas.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        procs.append((worker, proc))
        assert proc.stdout is not None
        pump = threading.Thread(target=_relay, args=(worker, proc.stdout, lock), daemon=True)
        pump.start()
        pumps.append(pump)
    try:
        codes = [proc.wait() for _, proc in procs]
    except KeyboardInterrupt:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes = []
        for _, proc in procs:
            try:
                codes.append(proc.wait(timeout=_GRACE_S))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        codes.append(130)  # the run itself was interrupted
    for pump in pumps:
        pump.join(timeout=5)
    return max((_severity(c) for c in codes), default=0)


def _severity(code: int) -> int:
    """A killed worker (negative: the signal) counts as 128 + signal, as a shell reports it."""
    return 128 - code if code < 0 else code


def _relay(worker: Worker, stream: IO[str], lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            sys.stdout.write(f"[{worker.label}] {line}")
            sys.stdout.flush()
