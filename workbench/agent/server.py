"""Model Workbench device agent: measures ONNX model latency on this machine for a remote workbench.

One file, standard library + numpy + onnxruntime only, so it can be copied to a board and run there::

    pip install numpy onnxruntime
    python server.py --token SECRET            # listens on 127.0.0.1:8765
    python server.py --token SECRET --host 0.0.0.0 --port 8765

HTTP + JSON, a bearer token on every request (``Authorization: Bearer SECRET``):

* ``GET  /capabilities``        CPU model, ISA flags, cores, onnxruntime version and providers, limits, counters
* ``GET  /status``              the running job's progress and the queue
* ``HEAD|GET /models/<sha256>`` 200 when the agent already holds that model, else 404
* ``PUT  /models/<sha256>``     body = the ONNX file; hash, size and content are checked before it is kept
* ``POST /jobs``                run a benchmark of a stored model; the reply is the latency report
* ``DELETE /jobs/<id>``         cancel a queued or running job

Each job runs in a child process (this file with ``--job``) so a crash or hang in ONNX Runtime cannot take the
agent down; jobs run one at a time with a time limit. The same ``--job`` mode is what the workbench's local device
runs on the user's own machine, so local and remote figures come from the same code.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import mmap
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

AGENT_VERSION = "1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD = 512 << 20
DEFAULT_JOB_TIMEOUT = 600.0
MAX_JSON_BODY = 64 << 10
MAX_QUEUE = 8
MAX_INPUT_ELEMENTS = 1 << 28  # per input (1 GiB of float32): a job cannot ask the board for unbounded memory
_DRAIN_LIMIT = 1 << 20  # a refused body this small is read and dropped, so the client sees the reply, not a reset
_SHA = re.compile(r"^[0-9a-f]{64}$")
_JOB_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
# Operator domains whose kernels ship inside onnxruntime itself; anything else needs a custom-op library.
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "i8mm", "sve", "sve2", "bf16",
             "asimdhp", "fphp")


class JobError(Exception):
    """A failure to report to the client as JSON: HTTP status, what went wrong, what to do."""

    def __init__(self, status: int, problem: str, hint: str = "", code: str = "error"):
        super().__init__(problem)
        self.status, self.problem, self.hint, self.code = status, problem, hint, code

    def body(self) -> dict:
        return {"error": self.problem, "hint": self.hint, "code": self.code}


# ---- this machine ------------------------------------------------------------------------------------------------
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields:
            fields[key] = value.strip()
    return fields


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def isa_flags() -> list[str]:
    """The CPU features that decide int8 speed, by their Linux names, plus ``neon``/``dotprod`` aliases on ARM."""
    info = _cpuinfo()
    raw = set((info.get("flags") or info.get("features") or "").split())
    if not raw and sys.platform == "darwin" and platform.machine() == "arm64":
        raw = {"asimd"}
        if _sysctl("hw.optional.arm.FEAT_DotProd") == "1":
            raw.add("asimddp")
        if _sysctl("hw.optional.arm.FEAT_I8MM") == "1":
            raw.add("i8mm")
    flags = {f for f in ISA_FLAGS if f in raw}
    if "asimd" in flags:
        flags.add("neon")
    if "asimddp" in flags:
        flags.add("dotprod")
    return sorted(flags)


def cpu_model() -> str:
    info = _cpuinfo()
    for key in ("model name", "hardware", "model", "cpu model"):
        if info.get(key):
            return info[key]
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()
    return platform.processor() or platform.machine()


def describe(max_upload: int | None = None) -> dict[str, Any]:
    """What this machine is: used for ``/capabilities`` and for the local device's description."""
    import numpy
    import onnxruntime as ort

    return {"name": platform.node(), "cpu_model": cpu_model(), "arch": platform.machine(),
            "os": f"{platform.system()} {platform.release()}", "isa_flags": isa_flags(), "cores": os.cpu_count(),
            "onnxruntime": ort.__version__, "providers": list(ort.get_available_providers()),
            "numpy": numpy.__version__, "python": platform.python_version(), "agent_version": AGENT_VERSION,
            "max_upload_bytes": max_upload}


# ---- checking an uploaded model ----------------------------------------------------------------------------------
def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; raises ValueError when it is not protobuf."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
        yield number, wire, value


# Which fields of the ONNX messages hold which sub-messages (onnx.proto field numbers).
_CHILDREN = {
    "model": {7: "graph", 8: "opset", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "function": {5: "node", 7: "opset"},
    "tensor": {},
    "opset": {},
}


def _text(value) -> str:
    return bytes(value).decode("utf-8", "replace")


def check_onnx(buf) -> None:
    """Accept only a self-contained ONNX ModelProto whose operators onnxruntime ships (raises JobError 415).

    Custom operator domains would need a custom-op library (native code) and external tensor data names files on
    the agent, so both are refused; model-local functions are plain ONNX and allowed.
    """
    domains: set[str] = set()
    functions: set[str] = set()
    external: list[str] = []
    seen: set[int] = set()

    def walk(kind: str, msg, depth: int) -> None:
        if depth > 64:
            raise ValueError("nesting too deep")
        for number, wire, value in _fields(msg):
            if kind == "model":
                seen.add(number)
            if kind == "node" and number == 7 and wire == 2:
                domains.add(_text(value))
            elif kind == "function" and number == 10 and wire == 2:
                functions.add(_text(value))
            elif kind == "tensor" and ((number == 13 and wire == 2) or (number == 14 and wire == 0 and value == 1)):
                external.append("tensor")
            child = _CHILDREN[kind].get(number)
            if child and wire == 2:
                walk(child, value, depth + 1)
            elif child:
                raise ValueError(f"field {number} of {kind} has the wrong type")

    problem = None
    try:
        walk("model", buf, 0)
    except (ValueError, IndexError) as exc:
        problem = str(exc)  # raised below, once this exception (and the buffer slices its frames hold) is gone
    if problem is not None:
        raise JobError(415, f"the upload is not an ONNX model ({problem})", "upload an .onnx file", "not_onnx")
    if 1 not in seen or 7 not in seen:
        raise JobError(415, "the upload is not an ONNX model (no IR version or no graph)", "upload an .onnx file",
                       "not_onnx")
    if external:
        raise JobError(415, "the model keeps tensors in external data files, which the agent does not accept",
                       "save the model with all tensors inside the .onnx file (onnx.save(..., "
                       "save_as_external_data=False))", "external_data")
    custom = sorted(domains - ALLOWED_DOMAINS - functions)
    if custom:
        raise JobError(415, f"the model uses custom operator domains {', '.join(custom)}, which would need a "
                            "custom-op library", "export the model with standard ONNX operators", "custom_ops")


# ---- running one job (in a child process) ------------------------------------------------------------------------
_NP_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
             "tensor(bool)": "bool"}


def _elements(shape: list[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _shape_for(index: int, inp, job: dict) -> list[int]:
    given = job.get("input_shapes")
    shape = None
    if isinstance(given, dict):
        shape = given.get(inp.name)
    elif isinstance(given, list) and index < len(given):
        shape = given[index]
    declared = list(inp.shape)
    if shape is None:
        shape = [d if isinstance(d, int) and d > 0 else None for d in declared]
        if shape and shape[0] is None:  # a dynamic batch axis: the job's batch, else 1
            shape[0] = int(job.get("batch") or 1)
    elif job.get("batch") and shape:
        shape = [int(job["batch"])] + list(shape[1:])
    if any(d is None for d in shape):
        raise JobError(400, f"input '{inp.name}' has dynamic dimensions {declared} that no input shape binds",
                       "give input_shapes (e.g. --input-shape 1x3x224x224)", "unbound_shape")
    shape = [int(d) for d in shape]
    if any(d <= 0 for d in shape) or _elements(shape) > MAX_INPUT_ELEMENTS:
        raise JobError(400, f"input '{inp.name}' shape {shape} must have positive sizes and at most "
                            f"{MAX_INPUT_ELEMENTS} elements", "give a smaller input shape", "bad_shape")
    if len(shape) != len(declared) or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(declared, shape)):
        raise JobError(400, f"input '{inp.name}' takes shape {declared}, not {shape}",
                       "give a shape that fits the model", "bad_shape")
    return shape


def _feeds(sess, job: dict) -> tuple[dict, dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    feeds, shapes = {}, {}
    for i, inp in enumerate(sess.get_inputs()):
        shape = _shape_for(i, inp, job)
        dtype = _NP_TYPES.get(inp.type)
        if dtype is None:
            raise JobError(400, f"input '{inp.name}' has type {inp.type}, which the agent cannot fill",
                           "benchmark a model with numeric inputs", "bad_input_type")
        if dtype.startswith("float"):
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype == "bool":
            value = rng.integers(0, 2, shape).astype(bool)
        else:
            value = rng.integers(0, 2, shape).astype(dtype)  # small values stay valid as indices
        feeds[inp.name], shapes[inp.name] = value, shape
    return feeds, shapes


def _options(job: dict, profile_dir: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(job.get("threads", 1))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "profile")
    return options


def _session(path: str, job: dict, profile_dir: str | None = None):
    import onnxruntime as ort

    provider = job.get("provider") or "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise JobError(400, f"execution provider {provider} is not available here "
                            f"(available: {', '.join(ort.get_available_providers())})",
                       "choose one of the available providers", "bad_provider")
    try:
        return ort.InferenceSession(path, _options(job, profile_dir), providers=[provider])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types for a model it cannot load
        raise JobError(422, f"onnxruntime cannot load the model: {str(exc).splitlines()[0][:300]}",
                       "check that the model runs in onnxruntime on the workbench machine", "load_failed") from None


def parse_profile(path: str, skip_first_run: bool = True) -> list[dict]:
    """Per-node time from an onnxruntime profile (Chrome trace JSON): name, op type, calls, total and mean ms.

    The first run pays for allocations, so its node events are left out when there are later runs.
    """
    with open(path, encoding="utf-8") as fh:
        events = json.load(fh)
    runs = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events if e.get("name") == "model_run")
    first = runs[0] if skip_first_run and len(runs) > 1 else None
    totals: dict[str, dict] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if first and first[0] <= e.get("ts", 0) <= first[1]:
            continue
        node = name[: -len("_kernel_time")]
        entry = totals.setdefault(node, {"name": node, "op_type": e.get("args", {}).get("op_name", ""),
                                         "calls": 0, "total_us": 0.0})
        entry["calls"] += 1
        entry["total_us"] += float(e.get("dur", 0))
    ops = [{"name": v["name"], "op_type": v["op_type"], "calls": v["calls"], "total_ms": v["total_us"] / 1000,
            "mean_ms": v["total_us"] / 1000 / max(v["calls"], 1)} for v in totals.values()]
    return sorted(ops, key=lambda o: -o["total_ms"])


def run_job(path: str, job: dict, emit: Callable[[float, str], None]) -> dict:
    """Load, warm up, time ``runs`` runs, then profile a few runs in a second session. Returns the report dict."""
    import numpy as np

    warmup, runs = max(0, int(job.get("warmup", 20))), max(1, int(job.get("runs", 200)))
    profile_runs = max(0, int(job.get("profile_runs", min(runs, 20))))
    total = warmup + runs + profile_runs + 1
    emit(0.0, "loading the model")
    t = time.perf_counter()
    sess = _session(path, job)
    load_ms = 1000 * (time.perf_counter() - t)
    if job.get("check_only"):  # an upload check: onnxruntime accepts the model
        return {"load_ms": load_ms}
    feeds, shapes = _feeds(sess, job)
    t = time.perf_counter()
    sess.run(None, feeds)
    first_ms = 1000 * (time.perf_counter() - t)
    step = max(1, total // 50)
    for i in range(warmup):
        sess.run(None, feeds)
        if i % step == 0:
            emit((1 + i) / total, f"warming up {i}/{warmup}")
    samples = []
    for i in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        samples.append(1000 * (time.perf_counter() - t))
        if i % step == 0:
            emit((1 + warmup + i) / total, f"timing run {i}/{runs}")
    del sess
    ops: list[dict] = []
    if profile_runs:
        emit((1 + warmup + runs) / total, "profiling operators")
        with tempfile.TemporaryDirectory(prefix="wb-profile-") as tmp:
            prof = _session(path, job, tmp)
            for _ in range(profile_runs + 1):
                prof.run(None, feeds)
            trace = prof.end_profiling()
            ops = parse_profile(trace)
            os.unlink(trace)
    a = np.asarray(samples)
    emit(1.0, "done")
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "min_ms": float(a.min()), "std_ms": float(a.std()),
            "runs": runs, "warmup": warmup, "threads": int(job.get("threads", 1)),
            "provider": job.get("provider") or "CPUExecutionProvider", "input_shapes": shapes,
            "load_ms": load_ms, "first_inference_ms": first_ms, "profile_runs": profile_runs, "ops": ops}


def job_main(job_file: str) -> int:
    """``--job FILE``: run one job and write JSON lines to stdout (progress, then a result or an error)."""
    job = json.loads(Path(job_file).read_text())
    parent = os.getppid()

    def out(kind: str, **fields) -> None:
        sys.stdout.write(json.dumps({"kind": kind, **fields}) + "\n")
        sys.stdout.flush()

    def emit(fraction: float, message: str) -> None:
        if os.getppid() != parent:  # whoever asked for this job is gone: stop instead of running on orphaned
            os._exit(3)
        out("progress", fraction=fraction, message=message)

    try:
        out("result", report=run_job(job["model_path"], job, emit))
    except JobError as exc:
        out("error", status=exc.status, **exc.body())
    except Exception as exc:  # noqa: BLE001 - reported to the client, never a bare traceback
        out("error", status=500, error=f"the benchmark failed: {type(exc).__name__}: {exc}",
            hint="check the model in onnxruntime", code="job_failed")
    return 0


def _self_command(*args: str) -> list[str]:
    """How to start this file as a child: ``python server.py``, or inside the desktop bundle (no script there to
    run) the bundle's agent mode; workbench.core.child holds the app's side of that convention."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--frozen-child", "agent", *args]
    return [sys.executable, os.path.abspath(__file__), *args]


def run_job_process(model_path: str, job: dict, timeout_s: float, on_progress: Callable[[float, str], None],
                    cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Run a job in a child process (this file, ``--job``); kill it on timeout or cancel. Raises JobError."""
    with tempfile.TemporaryDirectory(prefix="wb-job-") as tmp:
        job_file = os.path.join(tmp, "job.json")
        Path(job_file).write_text(json.dumps({**job, "model_path": model_path}))
        err_file = open(os.path.join(tmp, "stderr.txt"), "w+")  # a file, so a chatty child never blocks on a pipe
        proc = subprocess.Popen(_self_command("--job", job_file),
                                stdout=subprocess.PIPE, stderr=err_file, text=True)
        lines: list[dict] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("kind") == "progress":
                    on_progress(float(msg["fraction"]), str(msg["message"]))
                else:
                    lines.append(msg)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if cancelled():
                    raise JobError(409, "the job was cancelled", "", "cancelled")
                if time.monotonic() > deadline:
                    raise JobError(504, f"the job ran past its {timeout_s:.0f} s limit",
                                   "use fewer runs, or start the agent with a larger --job-timeout", "timeout")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join(timeout=5)
            if proc.stdout:
                proc.stdout.close()
            err_file.seek(0)
            stderr = err_file.read()
            err_file.close()
    if lines and lines[-1].get("kind") == "result":
        return lines[-1]["report"]
    if lines and lines[-1].get("kind") == "error":
        msg = lines[-1]
        raise JobError(int(msg.get("status", 500)), msg.get("error", "the job failed"), msg.get("hint", ""),
                       msg.get("code", "job_failed"))
    last = stderr.strip().splitlines()[-1][:300] if stderr.strip() else ""
    raise JobError(500, f"onnxruntime crashed during the job (exit code {proc.returncode})"
                        + (f": {last}" if last else ""),
                   "check the model in onnxruntime on this device", "crashed")


# ---- the server --------------------------------------------------------------------------------------------------
class Agent:
    """State shared by request threads: the model store, the job lock and queue, counters."""

    def __init__(self, token: str, store: Path, max_upload: int, job_timeout: float):
        self.token = token.encode()
        self.store = store
        self.max_upload = max_upload
        self.job_timeout = job_timeout
        self.job_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.queue: list[str] = []
        self.cancelled: set[str] = set()
        self.current: dict[str, Any] | None = None
        self.jobs_started = 0
        self.jobs_finished = 0
        self.models_stored = 0
        self._description: dict | None = None
        store.mkdir(parents=True, exist_ok=True)

    def authorized(self, header: str | None) -> bool:
        given = (header or "").strip()
        if not given.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(given[7:].strip().encode(), self.token)

    def model_path(self, sha: str) -> Path:
        return self.store / f"{sha}.onnx"

    def capabilities(self) -> dict:
        if self._description is None:
            self._description = describe(self.max_upload)
        return {**self._description, "job_timeout_s": self.job_timeout, "stats": self.stats()}

    def stats(self) -> dict:
        with self.state_lock:
            return {"jobs_started": self.jobs_started, "jobs_finished": self.jobs_finished,
                    "models_stored": self.models_stored, "queued": len(self.queue),
                    "busy": self.current is not None}

    def status(self) -> dict:
        with self.state_lock:
            current = dict(self.current) if self.current else None
        return {"current": current, **self.stats()}

    def run(self, job: dict) -> dict:
        sha = job.get("model_sha256", "")
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise JobError(400, "model_sha256 must be 64 lowercase hex digits", "send the model's sha256", "bad_job")
        path = self.model_path(sha)
        if not path.is_file():
            raise JobError(404, f"the agent has no model {sha[:12]}…", "upload it first (PUT /models/<sha256>)",
                           "unknown_model")
        job_id = str(job.get("job_id") or uuid.uuid4().hex)
        if not _JOB_ID.match(job_id):
            raise JobError(400, "job_id may hold only letters, digits, _ and -", "", "bad_job")
        for key in ("warmup", "runs", "threads", "profile_runs", "batch"):
            if job.get(key) is not None and (not isinstance(job[key], int) or job[key] < 0 or job[key] > 10**7):
                raise JobError(400, f"{key} must be a non-negative integer", "", "bad_job")
        with self.state_lock:
            if len(self.queue) >= MAX_QUEUE:
                raise JobError(503, f"the agent already has {len(self.queue)} jobs waiting", "try again later",
                               "busy")
            self.queue.append(job_id)
        try:
            with self.job_lock:
                with self.state_lock:
                    self.queue.remove(job_id)
                    if job_id in self.cancelled:
                        raise JobError(409, "the job was cancelled", "", "cancelled")
                    self.current = {"job_id": job_id, "fraction": 0.0, "message": "starting"}
                    self.jobs_started += 1

                def progress(fraction: float, message: str) -> None:
                    with self.state_lock:
                        if self.current is not None:
                            self.current.update(fraction=fraction, message=message)

                fields = {k: job[k] for k in ("warmup", "runs", "threads", "batch", "input_shapes", "provider",
                                              "profile_runs") if job.get(k) is not None}
                timeout = min(float(job.get("timeout_s") or self.job_timeout), self.job_timeout)
                try:
                    report = run_job_process(str(path), fields, timeout, progress,
                                             lambda: job_id in self.cancelled)
                finally:
                    with self.state_lock:
                        self.current = None
                        self.jobs_finished += 1
        finally:
            with self.state_lock:
                if job_id in self.queue:
                    self.queue.remove(job_id)
                self.cancelled.discard(job_id)
        return {**report, "job_id": job_id, "model_sha256": sha}

    def cancel(self, job_id: str) -> bool:
        with self.state_lock:
            known = job_id in self.queue or (self.current or {}).get("job_id") == job_id
            if known:
                self.cancelled.add(job_id)
            return known

    def store_model(self, sha: str, stream, length: int) -> tuple[bool, int]:
        """Read ``length`` bytes into the store as ``sha``; check hash and content before keeping it."""
        final = self.model_path(sha)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=self.store)
        try:
            digest = hashlib.sha256()
            left = length
            with os.fdopen(fd, "wb") as fh:
                while left:
                    chunk = stream.read(min(left, 1 << 20))
                    if not chunk:
                        raise JobError(400, f"the upload ended after {length - left} of {length} bytes",
                                       "upload the model again", "truncated")
                    digest.update(chunk)
                    fh.write(chunk)
                    left -= len(chunk)
            if digest.hexdigest() != sha:
                raise JobError(400, f"the body's sha256 is {digest.hexdigest()[:12]}…, not {sha[:12]}…",
                               "send the sha256 of the file being uploaded", "sha_mismatch")
            if not length:
                raise JobError(415, "the upload is empty, not an ONNX model", "upload an .onnx file", "not_onnx")
            with open(tmp, "rb") as fh:
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # no copy of a large model in memory
            try:
                check_onnx(memoryview(mapped))
            finally:
                try:
                    mapped.close()
                except BufferError:
                    pass  # a slice is still referenced; the map closes when it is collected
            if final.exists():
                return False, length
            # onnxruntime must accept it too; loading runs in a child process like any job.
            with self.job_lock:
                run_job_process(tmp, {"runs": 1, "warmup": 0, "profile_runs": 0, "check_only": True},
                                min(self.job_timeout, 120), lambda f, m: None)
            os.replace(tmp, final)
            with self.state_lock:
                self.models_stored += 1
            return True, length
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class Handler(BaseHTTPRequestHandler):
    server_version = f"WorkbenchAgent/{AGENT_VERSION}"
    timeout = 120  # seconds a silent client may hold a connection
    agent: Agent  # set on the subclass made by serve()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -- replies
    def _reply(self, status: int, body: dict | None = None, extra: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def _refuse(self, exc: JobError) -> None:
        length = self._length()
        if self._consumed or exc.status == 413:
            self.close_connection = True
        elif length is not None and 0 < length <= _DRAIN_LIMIT:
            self.rfile.read(length)  # dropped unread bodies make the client see a reset instead of the reply
        elif length:
            self.close_connection = True
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        self._reply(exc.status, exc.body(), extra)

    def _length(self) -> int | None:
        try:
            value = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        return value if value >= 0 else None

    def _handle(self, action: Callable[[], None]) -> None:
        self._consumed = False  # whether the body has been (partly) read
        try:
            if not self.agent.authorized(self.headers.get("Authorization")):
                raise JobError(401, "missing or wrong token",
                               "send 'Authorization: Bearer <token>' with the agent's token", "unauthorized")
            action()
        except JobError as exc:
            self._refuse(exc)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - the agent keeps serving; the client gets JSON
            self._refuse(JobError(500, f"agent error: {type(exc).__name__}: {exc}", "see the agent's log",
                                  "agent_error"))

    def _route(self) -> tuple[str, str]:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        return parts[0], "/".join(parts[1:])

    def _sha(self, rest: str) -> str:
        if not _SHA.match(rest):
            raise JobError(400, "a model is named by its sha256 (64 lowercase hex digits)", "", "bad_sha")
        return rest

    # -- methods
    def do_GET(self) -> None:
        self._handle(self._get)

    def do_HEAD(self) -> None:
        self._handle(self._get)

    def do_PUT(self) -> None:
        self._handle(self._put)

    def do_POST(self) -> None:
        self._handle(self._post)

    def do_DELETE(self) -> None:
        self._handle(self._delete)

    def _get(self) -> None:
        head, rest = self._route()
        if head == "capabilities" and not rest:
            self._reply(200, self.agent.capabilities())
        elif head == "status" and not rest:
            self._reply(200, self.agent.status())
        elif head == "models":
            path = self.agent.model_path(self._sha(rest))
            if path.is_file():
                self._reply(200, {"sha256": rest, "size_bytes": path.stat().st_size})
            else:
                raise JobError(404, f"the agent has no model {rest[:12]}…", "upload it", "unknown_model")
        else:
            raise JobError(404, f"no such endpoint {self.path}", "see the agent's docstring", "not_found")

    def _put(self) -> None:
        head, rest = self._route()
        if head != "models":
            raise JobError(404, f"no such endpoint {self.path}", "", "not_found")
        sha = self._sha(rest)
        length = self._length()
        if length is None:
            raise JobError(411, "the upload has no Content-Length", "send the file with its length", "no_length")
        if length > self.agent.max_upload:
            raise JobError(413, f"the model is {length} bytes; this agent accepts at most {self.agent.max_upload}",
                           "start the agent with a larger --max-upload-mb, or upload a smaller model", "too_large")
        self._consumed = True
        stored, size = self.agent.store_model(sha, self.rfile, length)
        self._reply(201 if stored else 200, {"sha256": sha, "size_bytes": size, "stored": stored})

    def _post(self) -> None:
        head, rest = self._route()
        if head != "jobs" or rest:
            raise JobError(404, f"no such endpoint {self.path}", "", "not_found")
        length = self._length()
        if length is None or length > MAX_JSON_BODY:
            raise JobError(413, "a job must be a JSON body under 64 KiB with a Content-Length", "", "bad_job")
        self._consumed = True
        try:
            job = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise JobError(400, "the job is not valid JSON", "", "bad_job") from None
        if not isinstance(job, dict):
            raise JobError(400, "the job must be a JSON object", "", "bad_job")
        self._reply(200, self.agent.run(job))

    def _delete(self) -> None:
        head, rest = self._route()
        if head != "jobs" or not _JOB_ID.match(rest):
            raise JobError(404, f"no such endpoint {self.path}", "", "not_found")
        if not self.agent.cancel(rest):
            raise JobError(404, f"no queued or running job {rest}", "", "unknown_job")
        self._reply(200, {"job_id": rest, "cancelling": True})


def serve(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"agent": agent})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.py", description="Model Workbench device agent: measures ONNX "
                                     "model latency on this machine for a remote workbench.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)")
    parser.add_argument("--token", default=os.environ.get("WORKBENCH_AGENT_TOKEN"),
                        help="secret every request must carry (or env WORKBENCH_AGENT_TOKEN)")
    parser.add_argument("--store", default=os.path.join(os.path.expanduser("~"), ".cache", "workbench-agent"),
                        help="folder for uploaded models")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD / (1 << 20),
                        help="largest model accepted, MiB (default 512)")
    parser.add_argument("--job-timeout", type=float, default=DEFAULT_JOB_TIMEOUT, help="seconds a job may run")
    parser.add_argument("--describe", action="store_true", help="print this machine's description as JSON and exit")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: run one job file in this (child) process
    args = parser.parse_args(argv)
    if args.job:
        return job_main(args.job)
    if args.describe:
        print(json.dumps(describe()))
        return 0
    if not args.token:
        print("error: the agent needs a token: --token SECRET or env WORKBENCH_AGENT_TOKEN", file=sys.stderr)
        return 2
    if len(args.token) < 16:
        print("warning: a token shorter than 16 characters is easy to guess", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: any machine that can reach it may connect; only the token "
              "protects it and traffic is not encrypted (use a trusted network or an SSH tunnel)", file=sys.stderr)
    agent = Agent(args.token, Path(args.store), int(args.max_upload_mb * (1 << 20)), args.job_timeout)
    server = serve(agent, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"workbench agent {AGENT_VERSION} listening on {host}:{port} (models in {args.store})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
