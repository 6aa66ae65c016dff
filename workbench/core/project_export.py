"""A deployment package from a project's variant: the variant's model, its measured figures and its recipe.

An int8 variant (made by ``quantize.int8_static`` / ``int8_dynamic``) is packaged as ``model.int8.onnx`` next to
the float model it was quantized from (its parent), so the package keeps both, as users ship them.
"""

from __future__ import annotations

from pathlib import Path

from .errors import WorkbenchError
from .export import ExportRequest, Metric, PackageInfo, Preprocessing, demo_info
from .project import Project
from .variants import MEASURED, Variant

INT8_METHODS = ("quantize.int8_static", "quantize.int8_dynamic")


def is_int8(variant: Variant) -> bool:
    return variant.step is not None and variant.step.method in INT8_METHODS


def _metrics(variant: Variant, model: str, accuracy: bool) -> list[Metric]:
    """The variant's figures; accuracy only when the export cannot measure it again itself (no data)."""
    out = []
    for acc in variant.accuracy[-1:] if accuracy else ():
        how = {"dataset": acc.dataset, "samples": acc.samples, "runtime": acc.runtime}
        out.append(Metric("top1_accuracy", acc.top1, "fraction", acc.provenance, how, model))
        out.append(Metric("top5_accuracy", acc.top5, "fraction", acc.provenance, how, model))
    for lat in variant.latency:
        how = {"device": lat.device_name or lat.device, "runs": lat.runs, "threads": lat.threads, "batch": 1}
        out.append(Metric(f"latency p50 on {lat.device}", lat.p50, "ms", lat.provenance, how, model))
        out.append(Metric(f"latency p90 on {lat.device}", lat.p90, "ms", lat.provenance, how, model))
    for name, fig, unit in (("parameters", variant.params, "count"), ("MACs", variant.macs, "count")):
        if fig is not None:
            how = {"counted": "from the model file's layer shapes"} if fig.provenance == MEASURED else \
                {"estimated": "by the method before running"}
            out.append(Metric(name, fig.value, unit, fig.provenance, how, model))
    return out


def _info(project: Project, variant: Variant) -> PackageInfo:
    base = project.base_model
    if base is not None and base.is_demo:
        info = demo_info()
    else:
        dataset = project.dataset
        pre = Preprocessing()
        labels = None
        if dataset is not None and dataset.kind == "image_folder":
            from .image_folder import scan

            p = dataset.preprocess
            size = (p.crop, p.crop) if p.crop else None
            pre = Preprocessing(layout="NCHW", color=p.color, size=size, input_range=(0.0, 255.0), scale=p.scale,
                                mean=list(p.mean), std=list(p.std))
            labels = list(scan(dataset.resolve(project.folder))[2])
        info = PackageInfo(name=project.name, labels=labels, preprocessing=pre)
    info.name = f"{info.name}-{variant.name}".replace(" ", "_").replace("/", "_")
    steps = [v.step for v in project.lineage(variant.id) if v.step is not None]
    info.description = ((info.description + " ") if info.description else "") + (
        "Compressed with Model Workbench: " + " → ".join(s.method for s in steps) if steps else
        "The base model, as opened in Model Workbench.")
    return info


def export_request_for_variant(project: Project, variant_id: str, out: Path, force: bool = False,
                               measure_latency: bool = False, log=lambda message: None) -> ExportRequest:
    """Fill an ExportRequest for a done variant (or the base model): source, int8 model, data, metrics, recipe."""
    from .datasets import load_dataset
    from .recipes import recipe_from_lineage
    from .runner import variant_artifact

    variant = project.variant(variant_id)
    if variant.id != "base" and variant.status != "done":
        raise WorkbenchError(f"{variant.name} is {variant.status}, not done", "run it first, or export another variant")
    int8 = None
    if is_int8(variant):
        parent = project.variant(variant.parent)
        source = variant_artifact(project, parent)
        int8 = variant_artifact(project, variant, deploy=True)
    else:
        source = variant_artifact(project, variant)
    data = load_dataset(project.dataset, project.folder) if project.dataset is not None else None
    model_file = "model.int8.onnx" if int8 is not None else "model.onnx"
    recipe = recipe_from_lineage(project, variant_id).to_doc() if variant.id != "base" else None
    return ExportRequest(source=source, out=Path(out), info=_info(project, variant), int8=int8, data=data,
                         metrics=_metrics(variant, model_file, data is None), recipe=recipe,
                         measure_latency=measure_latency, force=force, log=log)
