"""The experiment runner: apply a step to a variant, store the artifact in the project, measure the result.

Everything is a generator yielding Progress and honouring a CancelToken. Runs are seeded (torch, numpy, random) and
use one torch thread, so the same step on the same parent gives the same file and the same accuracy. Latency comes
from a ``measure_latency(onnx_path) -> dict`` callable (keys p50, p90, p99, runs, threads, device, device_name):
:func:`local_latency` here, device agents elsewhere.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Generator

import numpy as np

from .artifact import ModelArtifact, export_onnx
from .data import DataBundle, check_fits
from .datasets import fingerprint, iter_load
from .errors import WorkbenchError
from .evaluation import cache_for, evaluate
from .modelspec import open_spec
from .progress import Cancelled, CancelToken, Progress, scaled
from .project import ROOT_ID, Project
from .shapes import TensorSpec
from .variants import MEASURED, AccuracyMetric, Figure, LatencyMetric, Step, Variant

LatencyFn = Callable[[Path], dict]
_bundles: dict[str, DataBundle] = {}  # the last dataset loaded, by fingerprint: evaluating a tree reuses it


@contextlib.contextmanager
def seeded(seed: int):
    """Seed every generator a method may draw from and use one torch thread (multi-threaded reductions differ)."""
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def dataset_for(project: Project, token: CancelToken | None = None) -> Generator[Progress, None, tuple]:
    """(DataBundle, fingerprint) of the project's dataset, loaded once per fingerprint."""
    if project.dataset is None:
        raise WorkbenchError("the project has no dataset", "choose a dataset (the demo digits, an .npz or a folder)")
    fp = fingerprint(project.dataset, project.folder)
    if fp not in _bundles:
        bundle = yield from iter_load(project.dataset, project.folder, token)
        _bundles.clear()
        _bundles[fp] = bundle
    return _bundles[fp], fp


def _onnx_inputs(path: Path, like: list[TensorSpec]) -> list[TensorSpec]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in weights]
    return [TensorSpec(names[k] if k < len(names) else s.name, list(s.shape), s.dtype) for k, s in enumerate(like)]


def variant_artifact(project: Project, variant: Variant, deploy: bool = False) -> ModelArtifact:
    """The model file of a variant (its ONNX deploy file with ``deploy``); the base model for the root."""
    if project.base_model is None:
        raise WorkbenchError("the project has no base model", "open a model first")
    _, base = open_spec(project.base_model, project.folder)
    rel = variant.deploy if deploy else variant.artifact
    if variant.id == ROOT_ID and not deploy:
        return base
    if not rel:
        raise WorkbenchError(f"{variant.name} has no {'ONNX file' if deploy else 'model file'} yet",
                             "run it first")
    path = project.artifact_path(rel)
    if not path.is_file():
        raise WorkbenchError(f"the file of {variant.name} is missing", "run the step again", path)
    if path.suffix == ".onnx":
        return ModelArtifact(path=path, format="onnx", inputs=_onnx_inputs(path, base.inputs))
    return ModelArtifact(path=path, format="torch-export", inputs=base.inputs,
                         meta={"module_file": path.with_suffix(".module.pt").name})


def _stage(src: Path, dst: Path) -> None:
    """Copy into the project atomically: a crash leaves a .part file, which opening the project removes."""
    part = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, part)
    part.replace(dst)


def _files_of(project: Project, variant_id: str) -> list[Path]:
    return [project.artifact_path(f"{variant_id}{s}") for s in (".onnx", ".pt2", ".module.pt")]


def measure(project: Project, variant: Variant, measure_latency: LatencyFn | None = None, threads: int = 1,
            token: CancelToken | None = None) -> Generator[Progress, None, Variant]:
    """The variant with counted figures, accuracy on the project's dataset (when it has one) and (optionally)
    latency added.

    Export the ONNX deploy file first where missing (the base model, PyTorch results). Cached accuracy is reused.
    """
    token = token or CancelToken()
    changes: dict = {}
    if not variant.deploy:
        yield Progress(0.0, "exporting to ONNX")
        source = variant_artifact(project, variant)
        rel = f"{variant.id}.onnx"
        with tempfile.TemporaryDirectory(prefix="workbench-export-") as tmp:
            exported = export_onnx(source, Path(tmp) / rel) if source.format != "onnx" else source
            _stage(exported.path, project.artifact_path(rel))
        changes["deploy"] = rel
        variant = variant.with_changes(**changes)
    deployed = variant_artifact(project, variant, deploy=True)
    if variant.params is None or variant.params.provenance != MEASURED:
        yield Progress(0.1, "counting parameters and MACs")
        graph = open_spec(project.base_model, project.folder)[0] if variant.id == ROOT_ID else \
            variant_artifact(project, variant).graph()
        variant = variant.with_changes(params=Figure(graph.params), macs=Figure(graph.macs))
    if variant.size_bytes is None or variant.size_bytes.provenance != MEASURED:
        variant = variant.with_changes(size_bytes=Figure(deployed.size_bytes))
    if project.dataset is None:  # size, counts and latency need no data; accuracy waits for a dataset
        yield Progress(0.2, "no dataset: accuracy is measured once the project has one")
    else:
        variant = yield from _measure_accuracy(project, variant, deployed, threads, token)
    if measure_latency is not None:
        token.check()
        yield Progress(0.8, "measuring latency")
        stats = measure_latency(deployed.path)
        variant = variant.with_changes(latency=variant.latency + (LatencyMetric(
            stats.get("device", "local"), stats["p50"], stats["p90"], stats["p99"], stats["runs"],
            stats.get("threads", 1), stats.get("device_name", "")),))
    yield Progress(1.0, "measured")
    return variant


def _measure_accuracy(project: Project, variant: Variant, deployed, threads: int,
                      token: CancelToken) -> Generator[Progress, None, Variant]:
    """The variant with its accuracy on the project's dataset added (kept as is when already measured on it)."""
    bundle, fp = yield from scaled(dataset_for(project, token), 0.15, 0.2)
    if variant.accuracy_on(fp) is None:
        graph = deployed.graph()
        outputs = graph.outputs[0].shape[-1] if graph.outputs and graph.outputs[0].shape else None
        check_fits(bundle, deployed.input_shapes[0], str(deployed.path), int(outputs) if outputs else None)
        acc = yield from scaled(evaluate(deployed, bundle.val, fp, cache_for(project.folder), threads=threads,
                                         token=token), 0.2, 0.8)
        variant = variant.with_changes(accuracy=variant.accuracy + (AccuracyMetric(
            acc.top1, acc.top5, acc.loss, acc.samples, acc.data, fp, acc.runtime),))
    return variant


def evaluate_variant(project: Project, variant_id: str, measure_latency: LatencyFn | None = None,
                     token: CancelToken | None = None) -> Generator[Progress, None, Variant]:
    """Measure an existing variant (the base model, or a done one on a new dataset/device) as one undo step."""
    old = project.variant(variant_id)
    if old.id != ROOT_ID and old.status != "done":
        raise WorkbenchError(f"{old.name} is {old.status}", "run it before measuring it")
    new = yield from measure(project, old, measure_latency, token=token)
    if old.id == ROOT_ID:
        new = new.with_changes(status="done")
    return project.merge_measurement(old, new, f"Measure {old.name}")


def run_step(project: Project, parent_id: str, step: Step | None = None, variant_id: str | None = None,
             measure_latency: LatencyFn | None = None, name: str = "",
             token: CancelToken | None = None) -> Generator[Progress, None, Variant]:
    """Apply ``step`` to the variant ``parent_id`` (or run the planned variant ``variant_id``) and measure it.

    The new variant shows as running at once (and is saved, so a crash reopens it as interrupted); when the run
    ends it is done, failed or cancelled, recorded as one undo step. Errors and Cancelled are re-raised after that.
    """
    from .methods import RunContext, get

    token = token or CancelToken()
    previous = project.variant(variant_id) if variant_id else None
    if previous is not None:
        if previous.status in ("done", "running"):
            raise WorkbenchError(f"{previous.name} is {previous.status}", "apply the step again to make a new variant")
        step, parent_id = previous.step, previous.parent
    if step is None or parent_id is None:
        raise WorkbenchError("nothing to run", "give a step and a parent variant, or a planned variant")
    parent = project.variant(parent_id)
    if parent.id != ROOT_ID and parent.status != "done":
        raise WorkbenchError(f"{parent.name} is {parent.status}, so there is no model to apply {step.method} to",
                             "run it first, or pick a finished variant")
    variant = previous or Variant(project.new_variant_id(), parent_id, name or step.method, step=step)
    project.start_run(variant)
    project.autosave()
    written: list[Path] = []
    try:
        method = get(step.method)
        params = method.parse_params(step.params)
        yield Progress(0.0, f"{step.method}: opening {parent.name}")
        source = variant_artifact(project, parent)
        data = None
        if method.needs_data or step.params.get("importance") == "taylor":
            data, _ = yield from scaled(dataset_for(project, token), 0.0, 0.05)
        with seeded(project.seed), tempfile.TemporaryDirectory(prefix="workbench-run-") as tmp:
            ctx = RunContext(work_dir=Path(tmp), token=token, data=data, overrides=dict(step.overrides))
            result = yield from scaled(method.run(source, params, ctx), 0.05, 0.6, f"{step.method}: ")
            token.check()
            written = _files_of(project, variant.id)
            if result.format == "onnx":
                _stage(result.path, project.artifact_path(f"{variant.id}.onnx"))
                files = {"artifact": f"{variant.id}.onnx", "deploy": f"{variant.id}.onnx"}
            elif result.format == "torch-export":
                _stage(result.path, project.artifact_path(f"{variant.id}.pt2"))
                module = result.meta.get("module_file")
                if module:
                    _stage(result.path.parent / module, project.artifact_path(f"{variant.id}.module.pt"))
                files = {"artifact": f"{variant.id}.pt2", "deploy": None}
            else:
                raise WorkbenchError(f"{step.method} produced a {result.format} model, which a project cannot keep",
                                     "report this to the method's author")
        # Methods that count their result (pruning) say so in meta; others are counted from the file in measure().
        counted = {"params": Figure(int(result.meta["params_after"])), "macs": Figure(int(result.meta["macs_after"]))} \
            if "params_after" in result.meta and "macs_after" in result.meta else {"params": None, "macs": None}
        done = variant.with_changes(status="done", error="", size_bytes=None, **counted, **files)
        done = yield from scaled(measure(project, done, measure_latency, token=token), 0.6, 1.0)
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        cancelled = isinstance(exc, Cancelled)
        error = "" if cancelled else exc.one_line() if isinstance(exc, WorkbenchError) else \
            f"unexpected {type(exc).__name__}: {exc}"
        final = variant.with_changes(status="cancelled" if cancelled else "failed", error=error, artifact=None,
                                     deploy=None)
        project.end_run(final, previous, f"{step.method} ({final.status})")
        raise
    project.end_run(done, previous, f"Apply {step.method}")
    return done


def compare_variants(project: Project, a: str, b: str):
    """Per-layer params/MACs of variant ``a`` against ``b`` (see variants.compare_layers), from their model files."""
    from .variants import compare_layers

    graph_a, graph_b = (variant_artifact(project, project.variant(v)).graph() for v in (a, b))
    return compare_layers(graph_a, graph_b)


def local_latency(runs: int = 100, warmup: int = 10, threads: int = 1, budget_s: float | None = None) -> LatencyFn:
    """A ``measure_latency`` callable timing ONNX Runtime on this machine (batch 1); with ``budget_s`` a slow model
    gets fewer runs (at least 10), so the measurement takes about that long."""

    def measure_local(path: Path) -> dict:
        import platform

        from .latency import measure_interleaved, session

        shape = [d if isinstance(d, int) and d > 0 else 1 for d in session(path, threads).get_inputs()[0].shape]
        stats = measure_interleaved({"model": path}, tuple(shape), runs=runs, warmup=warmup, threads=threads,
                                    budget_s=budget_s)["model"]
        return {"device": "local", "device_name": platform.processor() or platform.machine(), "p50": stats.p50,
                "p90": stats.p90, "p99": stats.p99, "runs": stats.runs, "threads": stats.threads}

    return measure_local
