"""Deployment packages: a folder or .zip that runs a model anywhere ONNX Runtime and numpy run.

A package holds ``model.onnx`` (fp32), ``model.int8.onnx`` when quantized, ``deploy.json`` (inputs, outputs,
preprocessing, labels, metrics with how they were measured, the recipe, tool versions, validation results and the
sha256 of every file), a model card ``README.md``, ``infer.py`` with its ``requirements.txt``, a bundled
``sample.npz``, ``latency.json`` when there is a latency report, and ``SHA256SUMS``. See docs/export.md.

Nothing is written where the user looks until everything has been validated: the ONNX checker (full check) passes
and ONNX Runtime's outputs match the source model within the stated tolerance. The package is built in a temporary
folder next to the target and renamed into place (folders) or ``os.replace``d (zip files), so a failure or a Cancel
leaves either the old package or none, never a partial one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np

from .artifact import ModelArtifact, export_onnx
from .data import ArrayData, DataBundle
from .errors import WorkbenchError
from .progress import CancelToken, Progress, scaled

PACKAGE_SCHEMA_VERSION = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
SAMPLE_FILE = "sample.npz"
LATENCY_FILE = "latency.json"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


# ---- what the caller describes ---------------------------------------------------------------------------------
@dataclass
class Preprocessing:
    """How raw input becomes the model's input tensor: ``x = (pixel * scale - mean) / std`` in ``layout``.

    ``mean``/``std`` are per channel (one value for grayscale). ``None`` (the default) means unknown: the package
    then accepts only model-ready arrays, never image files.
    """

    layout: str = "NCHW"
    color: str | None = None  # grayscale | rgb
    size: tuple[int, int] | None = None  # height, width
    input_range: tuple[float, float] | None = None
    scale: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    notes: str = ""

    @property
    def known(self) -> bool:
        return self.mean is not None and self.std is not None and self.scale is not None

    def formula(self) -> str:
        if not self.known:
            return "unknown: inputs must already be model-ready arrays"
        return (f"x = (pixel * {self.scale:.6g} - mean) / std, mean {self.mean}, std {self.std}, "
                f"pixels in {list(self.input_range) if self.input_range else '?'}, layout {self.layout}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size) if self.size else None
        d["input_range"] = list(self.input_range) if self.input_range else None
        d["formula"] = self.formula()
        return d


@dataclass
class Metric:
    """One figure for the model card: ``provenance`` is ``measured`` or ``estimated``; ``how`` says how (dataset
    and sample count, or device and runs); ``model`` names the package file it belongs to, if one."""

    name: str
    value: float
    unit: str
    provenance: str
    how: dict[str, Any]
    model: str | None = None

    def __post_init__(self) -> None:
        if self.provenance not in ("measured", "estimated"):
            raise WorkbenchError(f"metric '{self.name}' is '{self.provenance}'", "say measured or estimated")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PackageInfo:
    """What the package says about the model. ``samples`` are model-ready inputs (with labels ``y`` if known)
    bundled as ``sample.npz``; when absent they are taken from the data's validation split, else made up."""

    name: str
    labels: list[str] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    samples: ArrayData | None = None
    description: str = ""
    intended_use: str = ""
    limitations: list[str] = field(default_factory=list)
    output_kind: str = "logits"  # logits (infer.py applies softmax) | probabilities


@dataclass
class Tolerance:
    """When a packaged model counts as matching its reference.

    fp32: every output element within ``atol + rtol * |reference|``. int8 cannot match element-wise, so it must
    agree with the fp32 model's top-1 class on at least ``int8_min_top1_agreement`` of the check inputs; its
    largest absolute difference is measured and reported, not bounded.
    """

    atol: float = 1e-4
    rtol: float = 1e-3
    int8_min_top1_agreement: float = 0.9


@dataclass
class ExportRequest:
    """Everything one export needs; a Project/Variant fills it the same way the CLI does.

    ``int8`` is an existing ONNX int8 model to package; ``make_int8`` quantizes the source with
    ``quantize.int8_static`` (``int8_params``) calibrated on ``data``. ``data`` also gives the check inputs and,
    when labelled and ``measure_accuracy``, the measured accuracy of every packaged model on its validation split.
    ``latency`` is an existing report to include; ``measure_latency`` measures one here instead.
    """

    source: ModelArtifact
    out: Path
    info: PackageInfo
    int8: ModelArtifact | None = None
    make_int8: bool = False
    int8_params: dict[str, Any] = field(default_factory=dict)
    data: DataBundle | None = None
    metrics: list[Metric] = field(default_factory=list)
    recipe: dict | None = None
    latency: dict | None = None
    measure_latency: bool = False
    latency_runs: int = 200
    measure_accuracy: bool = True
    check_samples: int = 64
    tolerance: Tolerance = field(default_factory=Tolerance)
    force: bool = False
    log: Callable[[str], None] = lambda message: None


@dataclass
class ExportResult:
    out: Path
    deploy: dict
    files: dict[str, dict]


# ---- the generator ---------------------------------------------------------------------------------------------
def export_package(request: ExportRequest, token: CancelToken | None = None
                   ) -> Generator[Progress, None, ExportResult]:
    """Validate, write and publish a package at ``request.out`` (a folder, or a file ending in .zip).

    Yields Progress; raises WorkbenchError for bad input, failed validation or a full disk, Cancelled on cancel.
    Either way nothing but the finished package ever appears at ``out``.
    """
    token = token or CancelToken()
    out = Path(request.out).absolute()
    _check_request(request, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    except OSError as exc:
        raise _write_error(exc, out) from None
    try:
        result = yield from _build(request, out, root, token)
        token.check()
        yield Progress(0.97, f"publishing {out.name}")
        _publish(root, out, request.force)
        yield Progress(1.0, f"wrote {out}")
        return result
    except OSError as exc:
        raise _write_error(exc, out) from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def export_to_end(request: ExportRequest, token: CancelToken | None = None,
                  on_progress: Callable[[Progress], None] | None = None) -> ExportResult:
    """Run :func:`export_package` to completion (headless callers)."""
    from .methods import run_to_end

    return run_to_end(export_package(request, token), on_progress)


def _check_request(request: ExportRequest, out: Path) -> None:
    """Refuse before any work: an occupied target, a missing source, a model this package format cannot hold."""
    if out.exists() and not request.force and (out.is_file() or any(out.iterdir())):
        raise WorkbenchError("the output already exists", "choose another --out or pass --force to replace it", out)
    if out.suffix.lower() == ".zip" and out.is_dir() and not request.force:
        raise WorkbenchError("the .zip output is a folder", "choose another --out", out)
    if not Path(request.source.path).exists():
        raise WorkbenchError("the model file is missing", "open the model again", request.source.path)
    if len(request.source.inputs) != 1:
        raise WorkbenchError(f"packages hold models with one input; this one has {len(request.source.inputs)}",
                             "export the ONNX file directly", request.source.path)
    if request.int8 is not None and request.int8.format != "onnx":
        raise WorkbenchError(f"the int8 model is {request.int8.format}, not ONNX", "quantize to ONNX int8 first",
                             request.int8.path)
    if request.make_int8 and request.int8 is None and request.data is None:
        raise WorkbenchError("int8 needs calibration data", "pass --data demo or an .npz file with an array x")


def _write_error(exc: OSError, out: Path) -> WorkbenchError:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return WorkbenchError("not enough disk space to write the package (nothing was written)",
                              f"free space on the disk holding {out.parent} or choose another --out", out)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WorkbenchError(f"cannot write the package ({exc.strerror})", "choose a folder you can write to", out)
    return WorkbenchError(f"writing the package failed ({exc.strerror or exc})", "check the disk and try again",
                          out)


def _build(request: ExportRequest, out: Path, root: Path, token: CancelToken
           ) -> Generator[Progress, None, ExportResult]:
    from . import export_checks, export_writer

    work, pkg = root / "work", root / "package"
    work.mkdir()
    pkg.mkdir()
    source = request.source
    yield Progress(0.0, "exporting the fp32 ONNX model" if source.is_torch else "reading the ONNX model")
    fp32 = export_onnx(source, work / "fp32.onnx")
    export_writer.class_count(request.info, fp32)  # a wrong label count fails now, not after quantizing
    token.check()
    int8 = request.int8
    if int8 is None and request.make_int8:
        int8 = yield from scaled(_quantize(fp32, request, work, token), 0.05, 0.45)
    token.check()
    samples = export_checks.sample_inputs(request, fp32)
    check_x = export_checks.check_inputs(request, samples)

    yield Progress(0.5, "validating: ONNX checker and ONNX Runtime against the source")
    reference, reference_name = export_checks.reference_outputs(source, fp32, check_x)
    token.check()
    validation, outputs = export_checks.validate(fp32, int8, check_x, reference, reference_name, request.tolerance)
    token.check()
    models = {FP32_FILE: fp32} | ({INT8_FILE: int8} if int8 is not None else {})
    metrics = [m.to_dict() for m in request.metrics]
    if request.measure_accuracy and request.data is not None and request.data.val.y is not None:
        yield Progress(0.6, f"measuring accuracy on {request.data.val.name} ({len(request.data.val)} samples)")
        metrics += export_checks.accuracy_metrics(models, request.data.val, token)
    latency = request.latency
    if request.measure_latency:
        yield Progress(0.75, f"measuring latency ({request.latency_runs} runs per model)")
        latency = export_checks.measure_latency(models, source.input_shapes[0], request.latency_runs)
    token.check()

    yield Progress(0.85, "writing the package")
    facts = export_writer.facts(request, fp32, int8, metrics, validation, latency)
    export_writer.write_models(pkg, models, facts)
    token.check()
    export_checks.confirm_written(pkg, check_x, outputs)  # the bytes published are the bytes validated
    token.check()
    deploy = export_writer.write_rest(pkg, request, facts, samples, latency)
    token.check()
    if out.suffix.lower() == ".zip":
        yield Progress(0.93, "compressing")
        _zip(pkg, root / "package.zip", top=out.stem)
    return ExportResult(out, deploy, deploy["files"])


def _quantize(fp32: ModelArtifact, request: ExportRequest, work: Path, token: CancelToken):
    from .methods import RunContext, get

    method = get("quantize.int8_static")
    params = method.parse_params(request.int8_params)
    ctx = RunContext(work_dir=work / "int8", token=token, data=request.data, log=request.log)
    result = yield from method.run(fp32, params, ctx)
    return result


def _zip(folder: Path, target: Path, top: str) -> None:
    """Every file of the package under one top-level folder named like the zip (unzipping makes no mess)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{top}/{path.name}")


def _publish(root: Path, out: Path, force: bool) -> None:
    """Move the finished package into place. A replaced package is moved aside first and restored on failure."""
    staged = root / ("package.zip" if out.suffix.lower() == ".zip" else "package")
    old = None
    if out.exists() or out.is_symlink():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif force:
            old = root / "previous"
            os.replace(out, old)
        else:  # appeared while we worked
            raise WorkbenchError("the output appeared while exporting", "pass --force to replace it", out)
    try:
        os.replace(staged, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=_default) + "\n"


def _default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


# ---- the demo --------------------------------------------------------------------------------------------------
def demo_info(samples: ArrayData | None = None) -> PackageInfo:
    """What a package of the bundled digits model says: labels 0-9, MNIST normalisation, real validation digits."""
    from .architectures import DEMO_CLASSES, DEMO_MEAN, DEMO_STD

    pre = Preprocessing(layout="NCHW", color="grayscale", size=(28, 28), input_range=(0.0, 255.0), scale=1 / 255,
                        mean=[DEMO_MEAN], std=[DEMO_STD],
                        notes="MNIST style: a white digit on a black background, centred")
    return PackageInfo(
        name="demo_digits", labels=list(DEMO_CLASSES), preprocessing=pre, samples=samples,
        description="A small MobileNetV2-style classifier of handwritten digits (28 x 28 grayscale), the model "
                    "bundled with Model Workbench.",
        intended_use="Demonstrating compression and deployment; recognising single centred handwritten digits "
                     "like MNIST's. Not for production use.",
        limitations=["Trained on 4,000 MNIST digits only; expect errors on digits that are not centred, thin or "
                     "dark-on-light."])


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WorkbenchError(f"--{what} '{text}' is not a list of numbers", f"write --{what} 0.485,0.456,0.406"
                             ) from None


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [v.strip() for v in text.split(",") if v.strip()]


def export_request_from_options(artifact: ModelArtifact, out: Path, demo: bool = False, data: str | None = None,
                                int8: bool = False, int8_model: str | None = None, name: str | None = None,
                                labels: str | None = None, mean: str | None = None, std: str | None = None,
                                latency: bool = False, atol: float | None = None, force: bool = False,
                                log: Callable[[str], None] = lambda message: None) -> ExportRequest:
    """An ExportRequest from command-line style options (what `workbench export` takes)."""
    from .data import load_data

    bundle = load_data(data) if data else None
    if bundle is not None:
        from .data import check_fits

        check_fits(bundle, artifact.input_shapes[0], data)
    means, stds = _floats(mean, "mean"), _floats(std, "std")
    if (means is None) != (stds is None):
        raise WorkbenchError("--mean and --std go together", "pass both, or neither")
    if demo:
        info = demo_info()
        if means is not None:
            info.preprocessing.mean, info.preprocessing.std = means, stds
    else:
        shape = artifact.input_shapes[0]
        image = len(shape) == 4 and shape[1] in (1, 3)
        pre = Preprocessing(layout="NCHW" if len(shape) == 4 else "as the model takes",
                            color=({1: "grayscale", 3: "rgb"}[shape[1]]) if image else None,
                            size=(shape[2], shape[3]) if image else None, mean=means, std=stds,
                            scale=1 / 255 if means is not None else None,
                            input_range=(0.0, 255.0) if means is not None else None)
        info = PackageInfo(name=Path(artifact.path).stem, preprocessing=pre)
    if name:
        info.name = name
    if labels is not None:
        info.labels = _labels(labels)
    given = None
    if int8_model:
        path = Path(int8_model)
        if path.suffix.lower() != ".onnx" or not path.is_file():
            raise WorkbenchError("--int8-model needs an existing .onnx file", "quantize with `workbench apply` first",
                                 path)
        given = ModelArtifact(path=path, format="onnx", inputs=artifact.inputs)
    tolerance = Tolerance(atol=atol) if atol is not None else Tolerance()
    return ExportRequest(source=artifact, out=out, info=info, int8=given, make_int8=int8 and given is None,
                         data=bundle, measure_latency=latency, tolerance=tolerance, force=force, log=log)
