"""The checks a deployment package passes before it is written, and the figures it reports (accuracy, latency).

fp32 is compared element-wise with the source model (PyTorch for PyTorch sources, ONNX Runtime on the source file
for ONNX ones); int8 is compared with the fp32 model by top-1 agreement, its largest difference reported. Every
check records its tolerance and the measured difference so deploy.json can show them.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .artifact import ModelArtifact
from .data import ArrayData
from .errors import WorkbenchError
from .ort_rows import fixed_batch_of, run_rows
from .progress import CancelToken

if TYPE_CHECKING:
    from .export import ExportRequest, Tolerance

DEMO_SAMPLES = 10
RANDOM_SAMPLES = 4
_BATCH = 64


# ---- inputs ----------------------------------------------------------------------------------------------------
def sample_inputs(request: "ExportRequest", fp32: ModelArtifact) -> ArrayData:
    """The inputs bundled as sample.npz: the caller's, else one per class from the validation data, else random."""
    shape = tuple(fp32.input_shapes[0])
    samples = request.info.samples
    if samples is None and request.data is not None:
        val = request.data.val
        if val.y is not None:
            picks = [int(np.flatnonzero(val.y == c)[0]) for c in np.unique(val.y)][:DEMO_SAMPLES]
            samples = ArrayData(val.name, val.x[picks], val.y[picks])
        else:
            samples = val.take(RANDOM_SAMPLES)
    if samples is None:
        x = np.random.default_rng(0).standard_normal((RANDOM_SAMPLES, *shape[1:])).astype(np.float32)
        samples = ArrayData("random (no data given)", x, None)
    if tuple(samples.x.shape[1:]) != shape[1:]:
        got, want = "x".join(map(str, samples.x.shape[1:])), "x".join(map(str, shape[1:]))
        raise WorkbenchError(f"the sample inputs have shape {got} but the model takes {want}",
                             f"provide samples of shape N x {want}")
    if len(samples) == 0:
        raise WorkbenchError("there are no sample inputs", "provide at least one sample")
    return ArrayData(samples.name, np.ascontiguousarray(samples.x, dtype=np.float32),
                     None if samples.y is None else np.asarray(samples.y, dtype=np.int64))


def check_inputs(request: "ExportRequest", samples: ArrayData) -> np.ndarray:
    """Inputs the validation runs on: the bundled samples plus up to ``check_samples`` validation inputs."""
    parts = [samples.x]
    if request.data is not None and request.check_samples > 0:
        parts.append(request.data.val.x[:request.check_samples].astype(np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


# ---- running ---------------------------------------------------------------------------------------------------
def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fixed_batch(path: Path) -> int | None:
    """The batch size a model's input fixes, or None when the batch axis is free."""
    return fixed_batch_of(ort_session(path))


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The first output for every row of ``x``, in batches of 64, or of the size the model's input fixes."""
    try:
        session = ort_session(path)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise WorkbenchError(f"ONNX Runtime cannot load {path.name} ({_first_line(exc)})",
                             "the model uses an operator or opset this ONNX Runtime lacks", path) from None
    try:
        return run_rows(session, x, _BATCH)
    except Exception as exc:  # noqa: BLE001
        raise WorkbenchError(f"ONNX Runtime failed to run {path.name} ({_first_line(exc)})",
                             "check the model's input shape and type", path) from None


def reference_outputs(source: ModelArtifact, fp32: ModelArtifact, x: np.ndarray) -> tuple[np.ndarray, str]:
    """What the packaged fp32 model must reproduce, and in words where it came from."""
    if not source.is_torch:
        import onnxruntime

        return ort_outputs(source.path, x), f"onnxruntime {onnxruntime.__version__} on the source ONNX file"
    import torch

    module = source.load_torch()
    with torch.no_grad():
        try:
            out = torch.cat([_first(module(torch.from_numpy(x[i:i + _BATCH]))) for i in range(0, len(x), _BATCH)])
        except Exception:  # noqa: BLE001 - a program traced with a fixed batch: one at a time
            out = torch.cat([_first(module(torch.from_numpy(x[i:i + 1]))) for i in range(len(x))])
    return out.float().numpy(), f"torch {torch.__version__} on the source model ({source.format})"


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ---- validation ------------------------------------------------------------------------------------------------
def check_onnx(path: Path, name: str) -> None:
    """onnx.checker with full_check (strict shape inference); raises WorkbenchError naming the file."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError, …
        raise WorkbenchError(f"{name} fails the ONNX checker ({_first_line(exc)})",
                             "the exported model is not valid ONNX; re-export it or report the model", path) from None


def validate(fp32: ModelArtifact, int8: ModelArtifact | None, x: np.ndarray, reference: np.ndarray,
             reference_name: str, tol: "Tolerance") -> tuple[dict, dict[str, np.ndarray]]:
    """Run every check; return the record for deploy.json and the outputs each packaged model gave."""
    import onnx
    import onnxruntime

    from .export import FP32_FILE, INT8_FILE

    check_onnx(fp32.path, FP32_FILE)
    if int8 is not None:
        check_onnx(int8.path, INT8_FILE)
    out32 = ort_outputs(fp32.path, x)
    if out32.shape != reference.shape:
        raise WorkbenchError(f"{FP32_FILE} gives outputs of shape {out32.shape} but the source gives "
                             f"{reference.shape}", "the export changed the model's output", fp32.path)
    diff = np.abs(out32.astype(np.float64) - reference)
    bound = tol.atol + tol.rtol * np.abs(reference.astype(np.float64))
    fp32_check = {"model": FP32_FILE, "reference": reference_name, "inputs": int(len(x)),
                  "rule": "|onnxruntime - reference| <= atol + rtol * |reference| for every output element",
                  "atol": tol.atol, "rtol": tol.rtol, "max_abs_diff": float(diff.max()),
                  "top1_agreement": _agreement(out32, reference), "passed": bool((diff <= bound).all())}
    if not fp32_check["passed"]:
        raise WorkbenchError(
            f"ONNX Runtime's output of {FP32_FILE} differs from the source model: max abs diff "
            f"{fp32_check['max_abs_diff']:.3g} exceeds atol {tol.atol:g} + rtol {tol.rtol:g} x |reference| on "
            f"{len(x)} check inputs", "the ONNX export changed what the model computes (an unsupported operator, "
            "a layer left in training mode); fix the model, or loosen the tolerance with --atol if the difference "
            "is acceptable")
    checks, outputs = [fp32_check], {FP32_FILE: out32}
    if int8 is not None:
        out8 = ort_outputs(int8.path, x)
        if out8.shape != out32.shape:
            raise WorkbenchError(f"{INT8_FILE} gives outputs of shape {out8.shape}, the fp32 model {out32.shape}",
                                 "quantize this fp32 model, not another one", int8.path)
        agreement = _agreement(out8, out32)
        int8_check = {"model": INT8_FILE, "reference": f"{FP32_FILE} on onnxruntime", "inputs": int(len(x)),
                      "rule": "top-1 class equal to the fp32 model's on at least min_top1_agreement of the inputs; "
                              "max_abs_diff is reported, not bounded",
                      "min_top1_agreement": tol.int8_min_top1_agreement, "top1_agreement": agreement,
                      "max_abs_diff": float(np.abs(out8 - out32).max()),
                      "passed": agreement >= tol.int8_min_top1_agreement}
        if not int8_check["passed"]:
            raise WorkbenchError(
                f"{INT8_FILE} agrees with the fp32 model's top-1 class on only {100 * agreement:.1f} % of {len(x)} "
                f"check inputs (at least {100 * tol.int8_min_top1_agreement:.0f} % required)",
                "quantization lost too much accuracy: calibrate with more representative data, keep sensitive "
                "layers in float, or export without int8")
        checks.append(int8_check)
        outputs[INT8_FILE] = out8
    record = {"onnx_checker": {"full_check": True, "onnx": onnx.__version__, "passed": list(outputs)},
              "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, 1 thread",
              "checks": checks}
    return record, outputs


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    if a.ndim < 2:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float((a.reshape(len(a), -1).argmax(1) == b.reshape(len(b), -1).argmax(1)).mean())


def confirm_written(pkg: Path, x: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    """The files about to be published (with their metadata) pass the checker and give the validated outputs."""
    for name, expected in outputs.items():
        check_onnx(pkg / name, name)
        got = ort_outputs(pkg / name, x)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=1e-6):
            raise WorkbenchError(f"the written {name} computes differently from the validated model",
                                 "report this: writing the metadata changed the model", pkg / name)


# ---- figures ---------------------------------------------------------------------------------------------------
def accuracy_metrics(models: dict[str, ModelArtifact], val: ArrayData, token: CancelToken) -> list[dict]:
    import onnxruntime

    from .evaluate import accuracy

    metrics = []
    for name, artifact in models.items():
        batch = fixed_batch(artifact.path)
        data = val if batch is None else val.take(len(val) // batch * batch)  # whole batches only
        acc = accuracy(artifact, data, batch=batch or 256, threads=1, token=token)
        how = {"dataset": val.name, "samples": acc.samples,
               "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider"}
        metrics.append({"name": "top1_accuracy", "value": round(acc.top1, 6), "unit": "fraction",
                        "provenance": "measured", "how": how, "model": name})
    return metrics


def device_description() -> dict:
    """This machine as a latency report names it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"kind": "local", "cpu": cpu, "machine": platform.machine(), "cores": os.cpu_count(),
            "os": platform.platform(terse=True)}


def measure_latency(models: dict[str, ModelArtifact], input_shape: tuple[int, ...], runs: int) -> dict:
    """Latency of every packaged model on this machine, interleaved, batch 1 (or the model's fixed batch), one
    thread (see core.latency)."""
    import onnxruntime

    from .latency import measure_interleaved

    warmup = max(5, min(20, runs // 10))
    shape = (fixed_batch(next(iter(models.values())).path) or 1, *input_shape[1:])
    stats = measure_interleaved({name: a.path for name, a in models.items()}, shape, runs=runs, warmup=warmup)
    return {"provenance": "measured", "device": device_description(),
            "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider",
            "threads": 1, "batch": 1, "input_shape": list(shape), "warmup": warmup, "runs": runs,
            "method": "models run interleaved (one run of each in turn) on the same random input",
            "unit": "ms", "models": {name: {k: round(v, 4) if isinstance(v, float) else v
                                            for k, v in vars(s).items()} for name, s in stats.items()}}
