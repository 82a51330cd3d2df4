"""Headless Chromium driven over the DevTools protocol on a pipe, with the standard library only.

``chromium --remote-debugging-pipe`` reads protocol commands from file descriptor 3 and writes
replies and events to descriptor 4, each a JSON text ended by a NUL byte. The tests use it to
load an optuna-dashboard page, wait for something on it, measure elements and take a
screenshot: what ``--dump-dom`` cannot do (it has no layout).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import select
import shutil
import subprocess
import time
from typing import Any

import pytest


def chromium_binary() -> str:
    """The Chromium on PATH; skips the test without one, fails under OPTUNA_NAS_REQUIRE_BROWSER."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no chromium binary on PATH (.ci/run installs Debian's chromium package)"
    if os.environ.get("OPTUNA_NAS_REQUIRE_BROWSER"):  # set by .ci/run: never skip there
        pytest.fail(reason)
    pytest.skip(reason)


class Browser:
    """One headless Chromium page; :meth:`call` sends a protocol command and returns its result."""

    def __init__(
        self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int, log: Path
    ) -> None:
        self._proc = proc
        self._log = log
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(self._died())
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        reply: dict[str, Any] = json.loads(message)
        return reply

    def _died(self) -> str:
        log = self._log.read_text(errors="replace")[-3000:]
        return f"Chromium closed its pipe (exit {self._proc.poll()}); its log:\n{log}"

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            command["sessionId"] = self._session
        try:
            os.write(self._out, json.dumps(command).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(self._died()) from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def open_page(self, width: int, height: int) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed falsy for {timeout} s")
            time.sleep(0.2)

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> Path:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": clip is not None}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def headless_chromium(profile: Path, width: int = 1280, height: int = 1000) -> Iterator[Browser]:
    """A headless Chromium with one blank page of ``width`` x ``height`` CSS pixels."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
    ]
    # bash puts the pipes on descriptors 3 and 4, where Chromium expects them (dash's
    # redirections take only one-digit descriptors, and pytest's are higher).
    log = profile.with_name(profile.name + ".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}', chromium_binary(), *flags],
            pass_fds=(to_r, from_w),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    os.close(to_r)
    os.close(from_w)
    try:
        browser = Browser(proc, to_w, from_r, log)
        browser.open_page(width, height)
        yield browser
    finally:
        os.close(to_w)  # Chromium exits when its command pipe closes
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(from_r)
