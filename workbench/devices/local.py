"""The local device: ONNX Runtime on this machine, run in a child process.

The child is the agent file's ``--job`` mode (``workbench/agent/server.py``), started as a program rather than
imported: local and remote figures come from the same measuring code, and a crash or hang inside ONNX Runtime kills
only the child. The child is killed on Cancel and after the time limit.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Generator

from workbench.core.artifact import ModelArtifact
from workbench.core.child import child_command
from workbench.core.errors import WorkbenchError
from workbench.core.progress import CancelToken, Cancelled, Progress

from .base import BenchConfig, Device, LatencyReport, onnx_model


def _describe_here() -> dict[str, Any]:
    proc = subprocess.run(child_command("agent", "--describe"), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise WorkbenchError(f"could not describe this machine: {proc.stderr.strip()[-300:]}",
                             "check that onnxruntime imports in this Python")
    return json.loads(proc.stdout)


_described: dict[str, Any] | None = None


class LocalDevice(Device):
    """ONNX Runtime here, with a chosen execution provider (threads come with each BenchConfig)."""

    kind = "local"

    def __init__(self, provider: str = "CPUExecutionProvider", label: str = "this machine"):
        self.provider = provider
        self.label = label

    @property
    def name(self) -> str:
        return f"local ({self.label}, {self.provider.replace('ExecutionProvider', '')})"

    def describe(self) -> dict[str, Any]:
        global _described
        if _described is None:
            _described = _describe_here()
        return {**_described, "name": self.name, "host": _described.get("name")}

    def benchmark_steps(self, model: ModelArtifact | Path | str, config: BenchConfig,
                        cancel: CancelToken | None = None) -> Generator[Progress, None, LatencyReport]:
        cancel = cancel or CancelToken()
        yield Progress(0.0, f"preparing the model for {self.name}")
        with tempfile.TemporaryDirectory(prefix="wb-local-") as tmp:
            path, config = onnx_model(model, config, Path(tmp))
            cancel.check()
            job = {**config.job(), "provider": self.provider, "model_path": str(path)}
            report = yield from run_job_file(job, Path(tmp), config.timeout_s, cancel, self.name)
        return LatencyReport.from_job(self.name, self.describe(), report)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "provider": self.provider, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LocalDevice":
        return cls(provider=data.get("provider", "CPUExecutionProvider"), label=data.get("label", "this machine"))


def run_job_file(job: dict, tmp: Path, timeout_s: float, cancel: CancelToken,
                 device: str) -> Generator[Progress, None, dict]:
    """Run ``server.py --job`` on ``job``, yielding its progress; returns the report dict or raises."""
    job_file = tmp / "job.json"
    job_file.write_text(json.dumps(job))
    err_path = tmp / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(child_command("agent", "--job", str(job_file)), stdout=subprocess.PIPE,
                                stderr=err, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    final: dict | None = None
    try:
        while True:
            if cancel.cancelled:
                raise Cancelled()
            if time.monotonic() > deadline:
                raise WorkbenchError(f"the benchmark on {device} ran past its {timeout_s:.0f} s limit",
                                     "use fewer runs or a larger timeout")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("kind") == "progress":
                yield Progress(float(msg["fraction"]), f"{device}: {msg['message']}")
            else:
                final = msg
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    if final and final.get("kind") == "result":
        return final["report"]
    if final and final.get("kind") == "error":
        raise WorkbenchError(f"{device}: {final.get('error', 'the benchmark failed')}", final.get("hint", ""),
                             job.get("model_path"))
    tail = err_path.read_text(errors="replace").strip().splitlines()
    raise WorkbenchError(f"onnxruntime crashed while benchmarking on {device} (exit code {proc.returncode})"
                         + (f": {tail[-1][:300]}" if tail else ""),
                         "check that the model runs in onnxruntime; the app itself is unaffected",
                         job.get("model_path"))
