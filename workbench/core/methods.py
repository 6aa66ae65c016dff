"""The compression-method plugin API and registry.

A method declares typed parameters (a pydantic model: bounds, choices, defaults, descriptions, and which fields a
user may override per layer), estimates its effect instantly from the layer graph, and runs as a generator that
yields progress, honours cancel and returns a new :class:`~workbench.core.artifact.ModelArtifact`. Built-in and
third-party methods register the same way, under the entry-point group ``workbench.methods``; a plugin that fails
to load is listed with the reason and the rest keep working. See docs/plugins.md.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .artifact import ModelArtifact
from .errors import WorkbenchError, first_problem
from .graph import LayerGraph
from .progress import CancelToken, Progress

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.methods"
KINDS = ("prune", "quantize", "distill", "transform", "analysis")


class MethodParams(BaseModel):
    """Base of every method's parameters: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def per_layer_fields(cls) -> list[str]:
        """Fields a user may override for single layers (marked with :func:`per_layer`)."""
        return [name for name, f in cls.model_fields.items()
                if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("per_layer")]


def per_layer(default: Any, **kwargs) -> Any:
    """A parameter field that may also be set per layer (by name or scope), e.g. a pruning ratio."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {}, per_layer=True)
    return Field(default, json_schema_extra=extra, **kwargs)


@dataclass
class Estimate:
    """Projected figures after the method, computed from the graph alone (always labelled estimated)."""

    params: int
    macs: int
    size_bytes: int
    notes: list[str] = field(default_factory=list)
    provenance: str = "estimated"


@dataclass
class RunContext:
    """What a running method may use: cancel token, data, a folder for its output, per-layer overrides, a logger."""

    work_dir: Path
    token: CancelToken = field(default_factory=CancelToken)
    data: Any = None  # a DataBundle for methods that calibrate, fine-tune or measure
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # layer name or scope -> {field: value}
    log: Callable[[str], None] = lambda message: log.info(message)

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def check(self) -> None:
        self.token.check()

    def output_path(self, stem: str, suffix: str) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / f"{stem}{suffix}"


class Method:
    """Base class of compression methods. Subclasses set the class attributes and implement the two calls."""

    id: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    needs_data: ClassVar[bool] = False  # calibration / fine-tuning data required
    input_formats: ClassVar[frozenset[str]] = frozenset({"torch", "onnx"})

    def estimate(self, graph: LayerGraph, params: MethodParams) -> Estimate:
        """Instant projection (params, MACs, bytes) from the graph; must not load weights or run the model."""
        raise NotImplementedError

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        """Yield progress, check ``ctx.cancelled`` between steps, return the new artifact (written atomically)."""
        raise NotImplementedError
        yield  # pragma: no cover - marks this a generator

    # ---- helpers for callers ---------------------------------------------------------------------------------
    def parse_params(self, values: dict[str, Any] | None = None) -> MethodParams:
        """Validate user values; raises WorkbenchError naming the parameter and its allowed range."""
        try:
            return self.Params(**(values or {}))
        except ValidationError as exc:
            name, what = first_problem(exc, "parameters")
            allowed = describe_field(self.Params, name)
            raise WorkbenchError(f"{self.id}: {name}: {what}",
                                 f"allowed: {allowed}" if allowed else "see `workbench methods`") from None

    def accepts(self, artifact: ModelArtifact) -> bool:
        family = "torch" if artifact.is_torch else artifact.format
        return family in self.input_formats

    def check_accepts(self, artifact: ModelArtifact) -> None:
        if not self.accepts(artifact):
            formats = " or ".join(sorted(self.input_formats))
            raise WorkbenchError(f"{self.id} works on {formats} models, not {artifact.format}",
                                 "apply it before exporting, or pick another method", artifact.path)


def describe_field(params: type[MethodParams], name: str) -> str:
    """Human-readable range or choices of a parameter."""
    schema = params.model_json_schema().get("properties", {}).get(name, {})
    if "enum" in schema:
        return ", ".join(map(str, schema["enum"]))
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    if lo is not None or hi is not None:
        return f"{'' if lo is None else lo} … {'' if hi is None else hi}".strip()
    return schema.get("type", "")


def describe(method: Method) -> dict:
    """A JSON-able description: id, label, kind, and each parameter's type, default, range and per-layer flag."""
    schema = method.Params.model_json_schema()
    per = set(method.Params.per_layer_fields())
    params = []
    for name, prop in schema.get("properties", {}).items():
        params.append({"name": name, "type": prop.get("type") or "enum", "default": prop.get("default"),
                       "description": prop.get("description", ""), "choices": prop.get("enum"),
                       "minimum": prop.get("minimum", prop.get("exclusiveMinimum")),
                       "maximum": prop.get("maximum", prop.get("exclusiveMaximum")), "per_layer": name in per})
    return {"id": method.id, "label": method.label, "kind": method.kind, "description": method.description,
            "needs_data": method.needs_data, "input_formats": sorted(method.input_formats), "params": params}


# ---- registry -------------------------------------------------------------------------------------------------
@dataclass
class PluginRecord:
    """One entry point: the method it provided, or why it failed to load."""

    name: str
    target: str
    distribution: str
    method: Method | None = None
    error: str | None = None


_records: list[PluginRecord] | None = None


def discover(reload: bool = False) -> list[PluginRecord]:
    """Load every ``workbench.methods`` entry point, each in its own try: one broken plugin breaks nothing else."""
    global _records
    if _records is not None and not reload:
        return _records
    from importlib.metadata import entry_points

    records = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", "") or ""
        record = PluginRecord(ep.name, ep.value, dist)
        try:
            obj = ep.load()
            method = obj() if isinstance(obj, type) else obj
            _validate(method)
            record.method = method
        except Exception as exc:  # noqa: BLE001 - isolate plugins: report and carry on
            record.error = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, record.error)
            log.debug("%s", traceback.format_exc())
        records.append(record)
    _records = records
    return records


def _validate(method: Any) -> None:
    for attr in ("id", "label", "kind", "Params", "estimate", "run"):
        if not hasattr(method, attr):
            raise TypeError(f"not a method: missing '{attr}'")
    if method.kind not in KINDS:
        raise TypeError(f"unknown kind '{method.kind}' (expected one of {', '.join(KINDS)})")
    if not (isinstance(method.Params, type) and issubclass(method.Params, BaseModel)):
        raise TypeError("Params must be a pydantic model")


def methods() -> dict[str, Method]:
    """Loaded methods by id."""
    return {r.method.id: r.method for r in discover() if r.method is not None}


def failed() -> list[PluginRecord]:
    return [r for r in discover() if r.error]


def get(method_id: str) -> Method:
    found = methods().get(method_id)
    if found is None:
        known = ", ".join(sorted(methods())) or "none installed"
        broken = next((r for r in failed() if r.name == method_id), None)
        if broken is not None:
            raise WorkbenchError(f"method '{method_id}' failed to load ({broken.error})",
                                 "reinstall the plugin that provides it")
        raise WorkbenchError(f"unknown method '{method_id}'", f"installed methods: {known}")
    return found


def run_to_end(gen: Generator[Progress, None, Any], on_progress: Callable[[Progress], None] | None = None) -> Any:
    """Drive a method's generator to completion (headless callers), returning its result."""
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)
