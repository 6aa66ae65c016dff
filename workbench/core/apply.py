"""Apply one method to a model headless: what `workbench apply` and the tests drive."""

from __future__ import annotations

import shutil
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .artifact import ModelArtifact, export_onnx
from .errors import WorkbenchError
from .methods import Method, MethodParams, RunContext, get, run_to_end
from .progress import CancelToken, Progress


def parse_param_values(method: Method, pairs: list[str]) -> dict[str, Any]:
    """``key=value`` strings → a dict pydantic can validate (lists split on commas)."""
    fields = method.Params.model_fields
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise WorkbenchError(f"parameter '{pair}' is not KEY=VALUE", "write --param ratio=0.5")
        if key not in fields:
            raise WorkbenchError(f"{method.id} has no parameter '{key}'",
                                 f"its parameters: {', '.join(fields) or 'none'}")
        origin = typing.get_origin(fields[key].annotation)
        values[key] = [v.strip() for v in value.split(",") if v.strip()] if origin is list else value.strip()
    return values


@dataclass
class ApplyResult:
    artifact: ModelArtifact
    before: Any  # LayerGraph
    after: Any  # LayerGraph
    params: MethodParams


def apply(artifact: ModelArtifact, method_id: str, values: dict[str, Any], out: Path, data=None,
          overrides: dict | None = None, token: CancelToken | None = None,
          on_progress: Callable[[Progress], None] | None = None, log: Callable[[str], None] | None = None,
          before=None) -> ApplyResult:
    """Run ``method_id`` on ``artifact`` and write the result to ``out`` (.onnx, or .pt2 for PyTorch results).

    The input file is never modified; ``out`` appears only when the whole run succeeded.
    """
    method = get(method_id)
    params = method.parse_params(values)
    method.check_accepts(artifact)
    if method.needs_data and data is None:
        raise WorkbenchError(f"{method.id} needs data (calibration or training)",
                             "pass --data demo or an .npz file with an array x (and labels y)")
    if data is not None:
        from .data import check_fits

        check_fits(data, artifact.input_shapes[0])
    before = before if before is not None else artifact.graph()
    out = Path(out)
    if out.suffix not in (".onnx", ".pt2"):
        raise WorkbenchError(f"cannot write '{out.suffix or out.name}' files", "name the output .onnx or .pt2", out)
    with tempfile.TemporaryDirectory(prefix="workbench-apply-") as tmp:
        ctx = RunContext(work_dir=Path(tmp), token=token or CancelToken(), data=data, overrides=overrides or {},
                         **({"log": log} if log else {}))
        result = run_to_end(method.run(artifact, params, ctx), on_progress)
        if out.suffix == ".onnx" and result.format != "onnx":
            result = export_onnx(result, Path(tmp) / "export.onnx")
        if out.suffix == ".pt2" and result.format != "torch-export":
            raise WorkbenchError(f"{method.id} produced an {result.format} model", "name the output .onnx", out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = out.with_name(out.name + ".part")
        shutil.copyfile(result.path, staged)
        extra = result.meta.get("module_file")
        if extra and out.suffix == ".pt2":
            shutil.copyfile(result.path.parent / extra, out.with_suffix(".module.pt"))
            result.meta = {**result.meta, "module_file": out.with_suffix(".module.pt").name}
        staged.replace(out)
    final = ModelArtifact(path=out, format="onnx" if out.suffix == ".onnx" else "torch-export",
                          inputs=result.inputs, meta=result.meta)
    return ApplyResult(final, before, final.graph(), params)
