"""The agent device: a client for the device agent (``workbench/agent/server.py``) on another machine.

Every request carries the token. A model goes up once: the client asks ``HEAD /models/<sha256>`` and uploads only
when the agent lacks it. Network failures and the agent's JSON errors become WorkbenchErrors that name the device
and say what to do.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Generator

from workbench.core.artifact import ModelArtifact
from workbench.core.errors import WorkbenchError
from workbench.core.progress import CancelToken, Cancelled, Progress

from .base import BenchConfig, Device, LatencyReport, onnx_model


def _sha256(path: Path) -> str:
    return ModelArtifact(path=path, format="onnx", inputs=[]).sha256


class AgentDevice(Device):
    """A device agent at ``host:port``, reached with ``token``; ``timeout_s`` bounds each non-job request."""

    kind = "agent"

    def __init__(self, host: str, port: int, token: str, label: str | None = None, timeout_s: float = 30.0):
        self.host, self.port, self.token = host, int(port), token
        self.label = label
        self.timeout_s = timeout_s
        self._capabilities: dict[str, Any] | None = None

    @property
    def address(self) -> str:
        return f"agent://{self.host}:{self.port}"

    @property
    def name(self) -> str:
        return self.label or self.address

    # ---- requests ----------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None, timeout: float | None = None,
                 during: str = "") -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout_s)
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Length"] = str(len(body))
            headers["Content-Type"] = "application/octet-stream" if method == "PUT" else "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except ConnectionRefusedError:
            raise WorkbenchError(f"{self.name} refused the connection (no agent listening on port {self.port})",
                                 f"start the agent on {self.host} (`python server.py --token …` or `workbench agent "
                                 "--token …`) and check the host and port") from None
        except socket.gaierror:
            raise WorkbenchError(f"{self.name}: host '{self.host}' is unknown", "check the host name") from None
        except (socket.timeout, TimeoutError):
            raise WorkbenchError(f"{self.name} did not answer within {timeout or self.timeout_s:.0f} s{during}",
                                 "check that the device is reachable and the agent is running") from None
        except (http.client.RemoteDisconnected, http.client.IncompleteRead, ConnectionResetError,
                BrokenPipeError) as exc:
            raise WorkbenchError(f"{self.name} closed the connection{during} ({type(exc).__name__}): the agent "
                                 "stopped or was killed", "check that the agent is still running there (restart "
                                 "it if not) and run the benchmark again") from None
        except OSError as exc:
            raise WorkbenchError(f"cannot reach {self.name}: {exc}", "check the network and the agent") from None
        finally:
            conn.close()
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            raise WorkbenchError(f"{self.name} answered with something that is not the agent's JSON "
                                 f"(HTTP {resp.status})", "check that the port belongs to a workbench agent") from None
        if resp.status == 401:
            raise WorkbenchError(f"{self.name} refused the token", "use the token the agent was started with "
                                 "(--token, or env WORKBENCH_AGENT_TOKEN)")
        return resp.status, doc

    def _fail(self, status: int, doc: dict) -> WorkbenchError:
        problem = doc.get("error") or f"HTTP {status}"
        return WorkbenchError(f"{self.name}: {problem}", doc.get("hint") or "see the agent's log")

    def capabilities(self, refresh: bool = False) -> dict[str, Any]:
        """The agent's description: CPU model, ISA flags, cores, onnxruntime version, providers, limits, stats."""
        if self._capabilities is None or refresh:
            status, doc = self._request("GET", "/capabilities")
            if status != 200:
                raise self._fail(status, doc)
            self._capabilities = doc
        return self._capabilities

    def describe(self) -> dict[str, Any]:
        return {**self.capabilities(), "name": self.name, "host": self.capabilities().get("name")}

    def has_model(self, sha: str) -> bool:
        status, doc = self._request("HEAD", f"/models/{sha}")
        if status in (200, 404):
            return status == 200
        raise self._fail(status, doc)

    def upload(self, path: Path, sha: str | None = None) -> bool:
        """Send the model unless the agent has it already; returns whether bytes were sent."""
        sha = sha or _sha256(path)
        if self.has_model(sha):
            return False
        size = path.stat().st_size
        cap = self.capabilities().get("max_upload_bytes")
        if cap and size > cap:
            raise WorkbenchError(f"the model is {size / 2**20:.1f} MiB; {self.name} accepts at most "
                                 f"{cap / 2**20:.1f} MiB", "start the agent with a larger --max-upload-mb", path)
        status, doc = self._request("PUT", f"/models/{sha}", body=path.read_bytes(),
                                    timeout=max(self.timeout_s, 120), during=" while uploading the model")
        if status not in (200, 201):
            raise self._fail(status, doc)
        return True

    def cancel_job(self, job_id: str) -> None:
        try:
            self._request("DELETE", f"/jobs/{job_id}", timeout=5)
        except WorkbenchError:
            pass  # the job may have finished or the agent gone: nothing left to stop

    def status(self) -> dict[str, Any]:
        status, doc = self._request("GET", "/status", timeout=5)
        if status != 200:
            raise self._fail(status, doc)
        return doc

    # ---- benchmark ---------------------------------------------------------------------------------------------
    def benchmark_steps(self, model: ModelArtifact | Path | str, config: BenchConfig,
                        cancel: CancelToken | None = None) -> Generator[Progress, None, LatencyReport]:
        import tempfile

        cancel = cancel or CancelToken()
        yield Progress(0.0, f"contacting {self.name}")
        info = self.describe()
        with tempfile.TemporaryDirectory(prefix="wb-agent-") as tmp:
            path, config = onnx_model(model, config, Path(tmp))
            cancel.check()
            sha = _sha256(path)
            yield Progress(0.02, f"uploading the model to {self.name} (skipped if it has it)")
            sent = self.upload(path, sha)
        cancel.check()
        job_id = uuid.uuid4().hex
        job = {**config.job(), "model_sha256": sha, "job_id": job_id, "timeout_s": config.timeout_s}
        yield Progress(0.05, f"{'uploaded; ' if sent else ''}measuring on {self.name}")
        result: dict[str, Any] = {}

        def post() -> None:
            try:
                result["reply"] = self._request("POST", "/jobs", body=json.dumps(job).encode(),
                                                timeout=config.timeout_s + 60, during=" during the benchmark")
            except WorkbenchError as exc:
                result["error"] = exc

        worker = threading.Thread(target=post, daemon=True)
        worker.start()
        last_poll = time.monotonic()
        while worker.is_alive():
            worker.join(timeout=0.1)
            if cancel.cancelled:
                self.cancel_job(job_id)
                raise Cancelled()
            if time.monotonic() - last_poll > 1.0:
                last_poll = time.monotonic()
                try:
                    current = self.status().get("current") or {}
                except WorkbenchError:
                    continue  # the job request itself will report what went wrong
                if current.get("job_id") == job_id:
                    yield Progress(0.05 + 0.95 * float(current.get("fraction", 0)),
                                   f"{self.name}: {current.get('message', '')}")
        if "error" in result:
            raise result["error"]
        status, doc = result["reply"]
        if status != 200:
            raise self._fail(status, doc)
        yield Progress(1.0, f"measured on {self.name}")
        return LatencyReport.from_job(self.name, info, doc)

    # ---- persistence -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": self.host, "port": self.port, "token": self.token, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AgentDevice":
        return cls(data["host"], int(data["port"]), data.get("token", ""), label=data.get("label"))
