"""Writing a deployment package's files into its staging folder: models with metadata, deploy.json and the rest."""

from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import ModelArtifact
from .data import ArrayData
from .errors import WorkbenchError

if TYPE_CHECKING:
    from .export import ExportRequest

# Facts copied into every packaged ONNX file's metadata_props (each value a JSON document).
METADATA_KEYS = ("name", "description", "labels", "inputs", "outputs", "preprocessing", "postprocessing", "metrics",
                 "latency", "recipe", "source", "validation", "tools")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(bool)": "bool"}


def tool_versions(torch_used: bool) -> dict[str, str]:
    from workbench import __version__

    tools = {"workbench": __version__, "python": sys.version.split()[0]}
    for dist in ("onnx", "onnxruntime", "numpy") + (("torch",) if torch_used else ()):
        try:
            tools[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return tools


def _specs(values) -> list[dict]:
    return [{"name": v.name, "shape": [d if isinstance(d, int) else (d or "batch") for d in v.shape],
             "dtype": _ORT_TYPES.get(v.type, v.type)} for v in values]


def class_count(info, fp32: ModelArtifact) -> int | None:
    """The number of classes (the first output's last dimension); raises when the given labels do not fit."""
    from .export_checks import ort_session

    shape = ort_session(fp32.path).get_outputs()[0].shape
    classes = shape[-1] if shape and isinstance(shape[-1], int) else None
    if info.labels and classes is not None and len(info.labels) != classes:
        raise WorkbenchError(f"{len(info.labels)} labels were given but the model has {classes} outputs",
                             "give one label per output class")
    return classes


def facts(request: "ExportRequest", fp32: ModelArtifact, int8: ModelArtifact | None, metrics: list[dict],
          validation: dict, latency: dict | None) -> dict[str, Any]:
    """The package's description, shared by deploy.json, the ONNX metadata and the README."""
    import onnx

    from .export import FP32_FILE, INT8_FILE, LATENCY_FILE, PACKAGE_SCHEMA_VERSION, now_utc
    from .export_checks import ort_session

    info = request.info
    session = ort_session(fp32.path)
    inputs, outputs = _specs(session.get_inputs()), _specs(session.get_outputs())
    classes = class_count(info, fp32)
    labels = list(info.labels) if info.labels else None
    if labels is None and classes is not None:
        labels = [str(i) for i in range(classes)]
    opset = next((o.version for o in onnx.load(str(fp32.path), load_external_data=False).opset_import
                  if o.domain in ("", "ai.onnx")), None)
    models = [{"file": FP32_FILE, "precision": "fp32", "opset": opset, "default": int8 is None}]
    if int8 is not None:
        models.append({"file": INT8_FILE, "precision": "int8", "default": True,
                       "quantization": _quantization(int8, request)})
    source = request.source
    return {
        "schema_version": PACKAGE_SCHEMA_VERSION,
        "kind": "model-workbench deployment package",
        "name": info.name,
        "description": info.description,
        "intended_use": info.intended_use,
        "limitations": list(info.limitations),
        "created": now_utc(),
        "models": models,
        "default_model": INT8_FILE if int8 is not None else FP32_FILE,
        "inputs": inputs,
        "outputs": [{**outputs[0], "meaning": info.output_kind}] + outputs[1:],
        "preprocessing": info.preprocessing.to_dict(),
        "postprocessing": {"softmax": info.output_kind == "logits", "predicted_class": "argmax of the first output, "
                                                                                    "an index into labels"},
        "labels": labels,
        "labels_given": bool(info.labels),
        "metrics": metrics,
        "latency": None if latency is None else {**latency, "file": LATENCY_FILE},
        "recipe": request.recipe,
        "source": {"file": Path(source.path).name, "format": source.format, "sha256": source.sha256},
        "validation": validation,
        "tools": tool_versions(source.is_torch or request.make_int8),
    }


def _quantization(int8: ModelArtifact, request: "ExportRequest") -> dict:
    meta = int8.meta or {}
    if not meta.get("method"):
        return {"how": "an int8 ONNX model given to the export", "file": Path(int8.path).name}
    keep = ("method", "params", "activation_type", "reduce_range", "integer_ops", "float_compute_ops",
            "calibration_samples_used")
    found = {k: meta[k] for k in keep if k in meta}
    if request.data is not None:
        found["calibration_data"] = request.data.name
    return found


def write_models(pkg: Path, models: dict[str, ModelArtifact], facts: dict) -> None:
    """Copy each model into the package with the facts in its ``metadata_props`` (existing entries kept)."""
    import onnx

    for name, artifact in models.items():
        model = onnx.load(str(artifact.path))
        props = {p.key: p.value for p in model.metadata_props}
        props.update({key: json.dumps(facts.get(key), default=str) for key in METADATA_KEYS})
        precision = next(m["precision"] for m in facts["models"] if m["file"] == name)
        props.update({"package_schema_version": str(facts["schema_version"]), "precision": precision})
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(pkg / name))


def requirements_text() -> str:
    import onnxruntime

    return ("# What infer.py needs. Lower bounds are the versions this package was validated with.\n"
            f"onnxruntime>={onnxruntime.__version__}\n"
            f"numpy>={np.__version__}\n"
            "# Optional, to classify image files: pillow\n")


def write_rest(pkg: Path, request: "ExportRequest", facts: dict, samples: ArrayData, latency: dict | None) -> dict:
    """sample.npz, infer.py, requirements.txt, latency.json, README.md, deploy.json and SHA256SUMS, in that order
    (each listing the hashes of the files before it); returns deploy.json's content."""
    from .export import LATENCY_FILE, SAMPLE_FILE, TEMPLATE_DIR, to_json
    from .export_card import render_readme
    from .fileio import file_sha256

    arrays = {"x": samples.x} | ({"y": samples.y} if samples.y is not None else {})
    with open(pkg / SAMPLE_FILE, "wb") as fh:
        np.savez(fh, **arrays)
    shutil.copyfile(TEMPLATE_DIR / "infer.py", pkg / "infer.py")
    (pkg / "requirements.txt").write_text(requirements_text())
    if latency is not None:
        (pkg / LATENCY_FILE).write_text(to_json(latency))
    deploy = dict(facts)
    deploy["sample"] = {"file": SAMPLE_FILE, "count": int(len(samples)), "source": samples.name,
                        "labels_known": samples.y is not None,
                        "arrays": "x: model-ready inputs (float32)" + ("; y: true class indices"
                                                                        if samples.y is not None else "")}

    def hashes() -> dict[str, dict]:
        return {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                for p in sorted(pkg.iterdir()) if p.is_file()}

    (pkg / "README.md").write_text(render_readme(deploy, hashes()))
    deploy["files"] = hashes()
    (pkg / "deploy.json").write_text(to_json(deploy))
    sums = "".join(f"{v['sha256']}  {k}\n" for k, v in hashes().items())
    (pkg / "SHA256SUMS").write_text(sums)
    return deploy
