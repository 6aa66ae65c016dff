"""What every latency device shares: the benchmark settings, the measured report, and the Device interface."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generator

from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.errors import WorkbenchError
from workbench.core.progress import CancelToken, Progress


@dataclass
class BenchConfig:
    """How to measure: warm-up and timed runs, intra-op threads, batch, input shapes (bind dynamic axes).

    ``input_shapes`` maps input names to shapes; ``None`` takes the artifact's shapes (a dynamic batch axis
    becomes ``batch`` or 1). ``profile_runs`` extra runs feed ONNX Runtime's per-operator profile (0 = none).
    """

    warmup: int = 20
    runs: int = 200
    threads: int = 1
    batch: int | None = None
    input_shapes: dict[str, list[int]] | None = None
    profile_runs: int = 20
    timeout_s: float = 600.0

    def job(self) -> dict[str, Any]:
        """The job fields the agent protocol takes (also the local runner's)."""
        job: dict[str, Any] = {"warmup": self.warmup, "runs": self.runs, "threads": self.threads,
                               "profile_runs": self.profile_runs}
        if self.batch:
            job["batch"] = self.batch
        if self.input_shapes:
            job["input_shapes"] = {k: [int(d) for d in v] for k, v in self.input_shapes.items()}
        return job


@dataclass
class OpTime:
    """Time one graph node took, from ONNX Runtime's profiler (runs after the timed ones; first run left out)."""

    name: str
    op_type: str
    calls: int
    total_ms: float
    mean_ms: float


@dataclass
class LatencyReport:
    """Measured latency of one model on one device (milliseconds), with the device it was measured on."""

    device: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    std_ms: float
    runs: int
    warmup: int
    threads: int
    load_ms: float
    first_inference_ms: float
    input_shapes: dict[str, list[int]]
    ops: list[OpTime] = field(default_factory=list)
    device_info: dict[str, Any] = field(default_factory=dict)
    provider: str = "CPUExecutionProvider"
    profile_runs: int = 0  # the runs ``ops`` add up (their ``total_ms`` is over all of them)
    measured: bool = True  # always: a report is a measurement, never an estimate

    @classmethod
    def from_job(cls, device: str, info: dict, report: dict) -> "LatencyReport":
        ops = [OpTime(o["name"], o.get("op_type", ""), int(o.get("calls", 0)), float(o["total_ms"]),
                      float(o["mean_ms"])) for o in report.get("ops", [])]
        return cls(device=device, p50_ms=report["p50_ms"], p90_ms=report["p90_ms"], p99_ms=report["p99_ms"],
                   min_ms=report["min_ms"], std_ms=report["std_ms"], runs=report["runs"],
                   warmup=report.get("warmup", 0), threads=report["threads"], load_ms=report["load_ms"],
                   first_inference_ms=report["first_inference_ms"], input_shapes=report.get("input_shapes", {}),
                   ops=ops, device_info=info, provider=report.get("provider", "CPUExecutionProvider"),
                   profile_runs=int(report.get("profile_runs", 0)))

    def op_types(self) -> list[tuple[str, float]]:
        """Total profiled ms per operator type, largest first."""
        totals: dict[str, float] = {}
        for op in self.ops:
            totals[op.op_type] = totals.get(op.op_type, 0.0) + op.total_ms
        return sorted(totals.items(), key=lambda kv: -kv[1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Device:
    """Where latency is measured. Subclasses implement :meth:`benchmark_steps` and the (de)serialisation."""

    kind = "device"

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Name, CPU model, ISA flags, onnxruntime version and providers of the device (may contact it)."""
        raise NotImplementedError

    def benchmark_steps(self, model: ModelArtifact | Path | str, config: BenchConfig,
                        cancel: CancelToken | None = None) -> Generator[Progress, None, LatencyReport]:
        raise NotImplementedError

    def benchmark(self, model: ModelArtifact | Path | str, config: BenchConfig | None = None,
                  cancel: CancelToken | None = None) -> LatencyReport:
        """Run :meth:`benchmark_steps` to the end (raises Cancelled when ``cancel`` is set)."""
        steps = self.benchmark_steps(model, config or BenchConfig(), cancel)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def onnx_model(model: ModelArtifact | Path | str, config: BenchConfig,
               work_dir: Path | None = None) -> tuple[Path, BenchConfig]:
    """The ONNX file to measure and the config with the artifact's input shapes filled in.

    PyTorch artifacts are exported to ONNX first (into ``work_dir`` or a temporary folder).
    """
    if not isinstance(model, ModelArtifact):
        path = Path(model)
        if not path.is_file():
            raise WorkbenchError("the model file does not exist", "check the path", path)
        if path.suffix.lower() != ".onnx":
            raise WorkbenchError("a device benchmarks ONNX files", "open the model and export it to ONNX", path)
        return path, config
    if model.format != "onnx":
        model = export_onnx(model, Path(work_dir or tempfile.mkdtemp(prefix="wb-bench-")) / "model.onnx")
    if config.input_shapes is None and model.inputs and all(s.is_static for s in model.inputs):
        config = BenchConfig(**{**asdict(config), "input_shapes": {s.name: [int(d) for d in s.shape]
                                                                   for s in model.inputs}})
    return Path(model.path), config


def device_from_dict(data: dict[str, Any]) -> Device:
    """Rebuild a device saved with ``to_dict`` (a project stores its devices this way)."""
    from .agent import AgentDevice
    from .local import LocalDevice

    kinds = {LocalDevice.kind: LocalDevice, AgentDevice.kind: AgentDevice}
    kind = data.get("kind")
    if kind not in kinds:
        raise WorkbenchError(f"unknown device kind '{kind}'", f"use one of {', '.join(sorted(kinds))}")
    return kinds[kind].from_dict(data)


def parse_device(text: str, token: str | None = None, provider: str | None = None) -> Device:
    """``local`` or ``agent://HOST:PORT`` (the ``--device`` option) as a Device."""
    from .agent import AgentDevice
    from .local import LocalDevice

    if text == "local":
        return LocalDevice(provider=provider or "CPUExecutionProvider")
    if text.startswith("agent://"):
        host, sep, port = text[len("agent://"):].rstrip("/").rpartition(":")
        if not sep or not host or not port.isdigit():
            raise WorkbenchError(f"device '{text}' is not agent://HOST:PORT", "write e.g. agent://192.168.1.20:8765")
        if not token:
            raise WorkbenchError(f"no token for {text}", "pass --token or set WORKBENCH_AGENT_TOKEN to the token the "
                                                         "agent was started with")
        return AgentDevice(host.strip("[]"), int(port), token)
    raise WorkbenchError(f"unknown device '{text}'", "use --device local or --device agent://HOST:PORT")
