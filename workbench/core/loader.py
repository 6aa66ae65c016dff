"""Open models in a separate process.

Reading a model imports torch and parses large files, work that holds Python's interpreter lock for long
stretches: in the GUI's process that freezes the window even from a worker thread (measured: 170–200 ms stalls).
In a child process it cannot. The child also isolates crashes in third-party readers, and Cancel can stop it at
once. It is started early and imports torch while the user is still choosing a file.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Generator

from .child import child_command
from .errors import WorkbenchError
from .progress import CancelToken, Cancelled, Progress

log = logging.getLogger(__name__)

_POLL_S = 0.05


def _serve(conn, preload: tuple[str, ...]) -> None:
    """Child process: import what loading needs, then answer requests until told to stop."""
    import importlib
    import warnings

    warnings.filterwarnings("ignore")
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    conn.send(("ready", None))
    from .readers import open_model

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        try:
            conn.send(("ok", open_model(request)))
        except WorkbenchError as exc:
            conn.send(("error", exc))
        except MemoryError:
            conn.send(("error", WorkbenchError("ran out of memory while reading the model",
                                               "close other programs or try a smaller input shape", request.path)))
        except Exception as exc:  # noqa: BLE001 - reported to the user as one line; the app keeps running
            conn.send(("error", WorkbenchError(f"unexpected {type(exc).__name__} while reading: {exc}",
                                               "run `workbench inspect --debug` on the file for details",
                                               request.path)))


class LoaderProcess:
    """One child process that opens models, one request at a time (callers queue on a lock)."""

    def __init__(self, preload: tuple[str, ...] = ("torch", "onnx")):
        self.preload = preload
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self.ready = False
        self._start()

    def _start(self) -> None:
        # A fresh interpreter (`python -m workbench.core.loader`, or the frozen bundle's loader mode), not fork (the
        # parent runs Qt threads) and not multiprocessing's spawn (which re-runs the parent's main script).
        parent, child = socket.socketpair()
        self._proc = subprocess.Popen(child_command("loader", str(child.fileno()), *self.preload),
                                      pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()
        self._conn = Connection(parent.detach())
        self.ready = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def open(self, request, token: CancelToken | None = None) -> Generator[Progress, None, object]:
        """Yield progress while the child opens ``request``; return its LayerGraph.

        Raises the child's WorkbenchError, a WorkbenchError when the child dies, or Cancelled (the child is
        replaced by a fresh one).
        """
        token = token or CancelToken()
        while not self._lock.acquire(timeout=_POLL_S):
            token.check()
        try:
            if not self.alive:
                self._start()
            if not self.ready:
                yield Progress(None, "Starting the model reader…")
                self._await_ready(token, request)
            yield Progress(None, f"Reading {request.path.name}…")
            self._conn.send(request)
            kind, payload = self._receive(token, request)
            if kind == "error":
                raise payload
            return payload
        finally:
            self._lock.release()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the child has imported its libraries (for benchmarks and tests)."""
        import time

        deadline = time.monotonic() + timeout_s
        with self._lock:
            if not self.ready and self.alive:
                while time.monotonic() < deadline:
                    if self._conn.poll(_POLL_S):
                        self.ready = self._conn.recv()[0] == "ready"
                        break
        return self.ready

    def _await_ready(self, token: CancelToken, request) -> None:
        kind, _ = self._receive(token, request)
        self.ready = kind == "ready"

    def _receive(self, token: CancelToken, request):
        while True:
            if token.cancelled:
                self._restart()
                raise Cancelled()
            try:
                if self._conn.poll(_POLL_S):
                    return self._conn.recv()
            except (EOFError, OSError):
                pass
            if not self.alive:
                code = self._proc.returncode
                self._restart()
                raise WorkbenchError(f"the model reader stopped unexpectedly (exit code {code}) while reading",
                                     "the file may be corrupt or too large for the memory available",
                                     request.path)

    def _restart(self) -> None:
        self._kill()
        self._start()

    def _kill(self) -> None:
        if self.alive:
            self._proc.kill()
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._conn is not None:
            self._conn.close()

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        if self._proc is None:
            return
        try:
            if self.alive:
                self._conn.send(None)
                self._proc.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._kill()
        self._proc = None


_shared: LoaderProcess | None = None
_shared_lock = threading.Lock()


def shared_loader() -> LoaderProcess:
    """The application's loader process, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoaderProcess()
        return _shared


def close_shared_loader() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


if __name__ == "__main__":  # the child: python -m workbench.core.loader FD [MODULE…]
    _serve(Connection(int(sys.argv[1])), tuple(sys.argv[2:]))
