"""Headless Chromium for tests: open a local HTML file, collect console errors, measure the page, take a screenshot.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in NUL on fds 3 and 4), so no
websocket library is needed. ``ensure_chromium`` installs Debian's ``chromium`` package when it is missing (as root,
with apt-get) and raises with the reason when that is impossible: a test that needs a browser fails, never skips.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")


class ChromiumMissing(RuntimeError):
    pass


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


def ensure_chromium(timeout_s: float = 900.0) -> str:
    """The chromium executable, installed with ``apt-get install -y chromium`` when missing."""
    found = find_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        raise ChromiumMissing("chromium is not installed and there is no apt-get to install it: install Chromium")
    if os.geteuid() != 0:
        raise ChromiumMissing("chromium is not installed; run `sudo apt-get install -y chromium` (tests are not root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                            capture_output=True, text=True, timeout=timeout_s)
    found = find_chromium()
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ChromiumMissing(f"`apt-get install -y chromium` failed (exit {result.returncode}): {' | '.join(tail)}")
    return found


@dataclass
class PageResult:
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    width: int = 0
    height: int = 0  # the page's full height in CSS pixels
    evaluated: object = None  # what the ``evaluate`` expression returned
    screenshot: bytes = b""


class _Pipe:
    """One Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, profile: str) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def wire():  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        args = [executable, "--headless=new", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self.messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._out_r, "rb", buffering=0) as fh:
            while chunk := fh.read(65536):
                buffer += chunk
                *whole, buffer = buffer.split(b"\0")
                for raw in whole:
                    self.messages.put(json.loads(raw))
        self.messages.put(None)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError(f"chromium exited while waiting for {method}")
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                event = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                break
            self.events.append(event)
            if event.get("method") == method:
                return event
        raise TimeoutError(f"no {method} within {timeout_s:.0f} s")

    def close(self) -> None:
        try:
            os.write(self._cmd_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)


def _error_text(event: dict) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return "exception: " + (details.get("exception", {}).get("description") or details.get("text", "?"))
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('source', 'log')}: {entry.get('text', '')} {entry.get('url', '')}".strip()
    return None


def render(html_path: Path, width: int = 1200, evaluate: str | None = None, screenshot: bool = True,
           executable: str | None = None) -> PageResult:
    """Load ``html_path`` in headless Chromium; errors, full page size, ``evaluate``'s value and a PNG."""
    executable = executable or ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="workbench-chromium-") as profile:
        pipe = _Pipe(executable, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                pipe.send(domain, session=session)
            pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                             "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": Path(html_path).resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired")
            time.sleep(0.3)  # late console messages
            pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drains what came before
            result = PageResult()
            metrics = pipe.send("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            result.width, result.height = int(size["width"]), int(size["height"])
            if evaluate:
                value = pipe.send("Runtime.evaluate", {"expression": evaluate, "returnByValue": True},
                                  session=session)
                result.evaluated = value.get("result", {}).get("value")
            if screenshot:
                shot = pipe.send("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": result.height, "scale": 1}},
                    session=session, timeout_s=60)
                result.screenshot = base64.b64decode(shot["data"])
            result.errors = [text for text in map(_error_text, pipe.events) if text]
            return result
        finally:
            pipe.close()
