"""A journal-file lock that a ``kill -9`` of its holder does not block for half a minute.

Optuna's :class:`~optuna.storages.journal.JournalFileOpenLock` creates ``<path>.lock`` with
``O_EXCL`` and deletes it on release; a holder killed inside the lock leaves the file behind, and
every other process waits until it has seen the file unchanged for ``grace_period`` (30 s)
before deleting it. A worker killed while appending one trial result therefore stalls every
worker of the study for 30 s, and a job takeover that should take two heartbeats takes 30 s.

:class:`HolderFileLock` is the same exclusive lock file, but it names its holder (host name,
PID namespace, pid) from the moment it exists: the holder writes its name into a file of its own
and hard-links that to the lock's name, which fails if the lock file exists, as ``O_EXCL`` does
(so Optuna's lock and this one still exclude each other). Creating the lock file and then
writing the name left a window (a third of a watcher's reads in a tight acquire loop saw the file
empty) in which a ``kill -9`` left an unnamed lock file that only the grace period broke (CI: a
job takeover took 30 s). A ``kill -9`` between writing the name and linking it leaves only the
small ``<path>.lock.<random>.new`` file, which no lock reads. Where the file system has no hard
links, the lock falls back to ``O_EXCL`` and then the write.

A waiter on the same host and namespace whose check finds the holder's pid gone (or a zombie)
breaks the lock at once; anywhere else (another host on a shared file system, a pid the waiter
cannot see, a file without a name: Optuna's own lock, or this one without hard links) Optuna's
rule applies: the lock is broken after ``grace_period`` seconds unchanged.

Breaking is itself serialised by a second ``O_EXCL`` file, ``<path>.lock.break``: a breaker
re-reads the lock file while holding it, so it can only delete the file of the dead holder it
judged, never a lock that a live process took meanwhile (only a lock's holder or a breaker ever
deletes it, and the dead holder cannot). A breaker killed inside that tiny window leaves the
break file behind; it is removed after ``grace_period`` like an Optuna lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
import socket
import time
import uuid

import optuna
from optuna.storages.journal import JournalFileOpenLock

_logger = optuna.logging.get_logger(__name__)

#: Seconds between polls of a held lock (Optuna's lock backs off to 1 s; a claim round-trip
#: of a job heartbeat must not wait that long).
_MAX_POLL_S = 0.05
_WARN_EVERY_S = 10.0


def host_identity() -> tuple[str, str]:
    """This process's host name and PID namespace: pids compare only within the same pair."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return socket.gethostname(), namespace


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie (True if unknown)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


class HolderFileLock(JournalFileOpenLock):
    """An ``O_EXCL`` lock file naming its holder, broken at once when that holder is dead.

    A subclass of Optuna's lock only so that it is accepted wherever Optuna's is (as
    ``JournalFileBackend(lock_obj=...)``): both methods are its own.

    Args:
        filepath: The file to protect; the lock file is ``filepath + ".lock"``, the name
            Optuna's :class:`~optuna.storages.journal.JournalFileOpenLock` uses, so a process
            that opened the same journal with Optuna's lock still excludes this one (and its
            empty lock file is broken only after the grace period).
        grace_period: Seconds a lock file of a holder that cannot be checked may stay
            unchanged before it is broken (Optuna's default, 30).
    """

    def __init__(self, filepath: str, grace_period: int = 30) -> None:
        super().__init__(filepath, grace_period)  # checks the grace period
        self._path = filepath + ".lock"  # the name Optuna's lock uses
        self._break_file = self._path + ".break"
        self.grace_period: int = grace_period
        self._hard_links = True

    def acquire(self) -> bool:
        """Block until this process has created the lock file; always returns True."""
        me = "{}\n{}\n{}\n".format(*host_identity(), os.getpid()).encode()
        sleep_s = 0.001
        seen: tuple[float, bytes] | None = None
        seen_since = last_warning = time.monotonic()
        while True:
            if self._create(me):
                return True
            state = _read(self._path)
            if state is None:
                sleep_s = 0.001  # released between our open and our read: retry at once
                continue
            if state != seen:
                seen, seen_since = state, time.monotonic()
            stale = time.monotonic() - seen_since > self.grace_period
            why = "unchanged" if stale else "dead holder" if _dead_holder(state[1]) else None
            if why is not None and self._break(state, why):
                sleep_s = 0.001
                continue
            if time.monotonic() - last_warning > _WARN_EVERY_S:
                _logger.warning(
                    f"waiting more than {_WARN_EVERY_S:.0f} s for the lock file "
                    f"{self._path} (held by {_describe(state[1])}); still trying."
                )
                last_warning = time.monotonic()
            time.sleep(sleep_s)
            sleep_s = min(sleep_s * 2, _MAX_POLL_S)

    def _create(self, me: bytes) -> bool:
        """Create the lock file holding ``me``; False if it exists."""
        if self._hard_links:
            named = f"{self._path}.{uuid.uuid4().hex}.new"
            fd = os.open(named, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            try:
                try:
                    os.write(fd, me)
                finally:
                    os.close(fd)
                os.link(named, self._path)
                return True
            except FileExistsError:
                return False
            except OSError as err:  # no hard links here (e.g. some network or FUSE mounts)
                _logger.debug(f"hard links fail in {self._path}'s folder ({err}); O_EXCL")
                self._hard_links = False
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(named)
        try:
            fd = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        try:
            os.write(fd, me)
        finally:
            os.close(fd)
        return True

    def release(self) -> None:
        """Delete the lock file (renamed first, as Optuna does, so a reader never sees half)."""
        gone = f"{self._path}.{uuid.uuid4().hex}.released"
        try:
            os.rename(self._path, gone)
        except OSError as err:
            raise RuntimeError(f"did not hold the lock {self._path}: {err}") from err
        os.unlink(gone)

    def _break(self, judged: tuple[float, bytes], why: str) -> bool:
        """Delete the lock file if it is still the one judged; False if someone else breaks."""
        try:
            os.close(os.open(self._break_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            state = _read(self._break_file)
            if state is not None and time.time() - state[0] > self.grace_period:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._break_file)  # a breaker died inside the break window
            return False
        try:
            if _read(self._path) != judged:
                return False  # released, or broken and taken, meanwhile
            _logger.warning(
                f"breaking the lock file {self._path} ({why}: {_describe(judged[1])})."
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._break_file)


def _read(path: str) -> tuple[float, bytes] | None:
    """(mtime, content) of ``path``, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_mtime, f.read(512)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return None
        raise


def _dead_holder(content: bytes) -> bool:
    fields = content.decode(errors="replace").split("\n")
    if len(fields) < 4 or not fields[2].isdigit():
        return False  # not written yet (or by another kind of lock): only the grace applies
    return (fields[0], fields[1]) == host_identity() and not pid_alive(int(fields[2]))


def _describe(content: bytes) -> str:
    fields = content.decode(errors="replace").split("\n")
    if len(fields) < 4:
        return "a holder that has not named itself"
    return f"pid {fields[2]} on {fields[0]}"
