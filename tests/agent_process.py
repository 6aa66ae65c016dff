"""A real device agent in its own process on 127.0.0.1 (any free port, a random token) for tests and benchmarks."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

AGENT_FILE = Path(__file__).resolve().parents[1] / "workbench" / "agent" / "server.py"


class AgentProcess:
    """``python server.py --port 0`` (or ``command``) started and waited for; ``port`` is read from its first line."""

    def __init__(self, store: Path, *extra: str, command: list[str] | None = None, cwd: Path | None = None):
        self.token = secrets.token_hex(16)
        self.store = store
        command = command or [sys.executable, str(AGENT_FILE)]
        self.proc = subprocess.Popen([*command, "--port", "0", "--token", self.token, "--store", str(store), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd)
        line = self.proc.stdout.readline()  # "workbench agent 1 listening on 127.0.0.1:PORT (models in …)"
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"the agent did not start: {line!r}")
        self.host, port = line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)
        self.port = int(port)

    def device(self, token: str | None = None):
        from workbench.devices.agent import AgentDevice

        return AgentDevice(self.host, self.port, self.token if token is None else token)

    def stored_models(self) -> list[str]:
        return sorted(p.name for p in self.store.glob("*.onnx"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()

    def wait_until_busy(self, timeout: float = 30.0) -> None:
        """Block until the agent reports a running job."""
        device = self.device()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if device.status().get("busy"):
                return
            time.sleep(0.05)
        raise TimeoutError("the agent never started the job")
