"""Variants: the nodes of a project's experiment tree, as immutable records that serialise to JSON.

A variant is what one step (method + params + per-layer overrides) made from its parent. Its figures say where they
came from: ``estimated`` (the method's analytic projection, for a planned variant) or ``measured`` (counted from the
real file, run on the dataset, timed on a device). Once measured a variant's step and artifact never change; new
accuracy or latency measurements are appended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

STATUSES = ("planned", "running", "done", "failed", "cancelled", "interrupted")
MEASURED, ESTIMATED = "measured", "estimated"


@dataclass(frozen=True)
class Step:
    """A method id, its parameter values and per-layer overrides (layer name or scope -> {field: value})."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": self.method, "params": dict(self.params), "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, d: dict) -> "Step":
        return cls(d["method"], dict(d.get("params") or {}), dict(d.get("overrides") or {}))


@dataclass(frozen=True)
class Figure:
    """One number with its provenance."""

    value: int
    provenance: str = MEASURED


@dataclass(frozen=True)
class AccuracyMetric:
    """Top-1/top-5 (fractions) and mean loss on ``samples`` validation samples of ``dataset``."""

    top1: float
    top5: float
    loss: float
    samples: int
    dataset: str
    fingerprint: str
    runtime: str = "onnxruntime"
    provenance: str = MEASURED


@dataclass(frozen=True)
class LatencyMetric:
    """Latency in ms on one device: percentiles over ``runs`` timed runs with ``threads`` threads."""

    device: str
    p50: float
    p90: float
    p99: float
    runs: int
    threads: int
    device_name: str = ""
    provenance: str = MEASURED


@dataclass(frozen=True)
class Variant:
    """One node of the experiment tree. ``artifact`` is the method's output and ``deploy`` the ONNX file that is
    evaluated and timed (the same file for ONNX results); both relative to the project's ``artifacts/``."""

    id: str
    parent: str | None
    name: str
    step: Step | None = None
    status: str = "planned"
    error: str = ""
    artifact: str | None = None
    deploy: str | None = None
    params: Figure | None = None
    macs: Figure | None = None
    size_bytes: Figure | None = None
    accuracy: tuple[AccuracyMetric, ...] = ()
    latency: tuple[LatencyMetric, ...] = ()

    @property
    def measured(self) -> bool:
        """Whether anything about this variant was measured (then its step and artifact are frozen)."""
        figures = (self.params, self.macs, self.size_bytes)
        return bool(self.accuracy or self.latency or any(f and f.provenance == MEASURED for f in figures))

    def accuracy_on(self, fingerprint: str | None = None) -> AccuracyMetric | None:
        """The latest accuracy, on the dataset with ``fingerprint`` when given."""
        found = [a for a in self.accuracy if fingerprint is None or a.fingerprint == fingerprint]
        return found[-1] if found else None

    def latency_by_device(self) -> dict[str, LatencyMetric]:
        """The latest measurement per device."""
        return {m.device: m for m in self.latency}

    def with_changes(self, **changes) -> "Variant":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["step"] = self.step.to_dict() if self.step else None
        d["accuracy"] = [asdict(a) for a in self.accuracy]
        d["latency"] = [asdict(m) for m in self.latency]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Variant":
        def figure(v):
            return Figure(**v) if v else None

        return cls(id=d["id"], parent=d.get("parent"), name=d.get("name") or d["id"],
                   step=Step.from_dict(d["step"]) if d.get("step") else None, status=d.get("status", "planned"),
                   error=d.get("error", ""), artifact=d.get("artifact"), deploy=d.get("deploy"),
                   params=figure(d.get("params")), macs=figure(d.get("macs")), size_bytes=figure(d.get("size_bytes")),
                   accuracy=tuple(AccuracyMetric(**a) for a in d.get("accuracy") or ()),
                   latency=tuple(LatencyMetric(**m) for m in d.get("latency") or ()))


# ---- per-layer comparison ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDelta:
    name: str
    op_type: str
    params_a: int
    params_b: int
    macs_a: int
    macs_b: int

    @property
    def params_delta(self) -> int:
        return self.params_b - self.params_a

    @property
    def macs_delta(self) -> int:
        return self.macs_b - self.macs_a


@dataclass(frozen=True)
class LayerComparison:
    """Layers of two variants matched by name; ``removed`` are only in A, ``added`` only in B."""

    rows: list[LayerDelta]
    removed: list[str]
    added: list[str]

    @property
    def changed(self) -> list[LayerDelta]:
        return [r for r in self.rows if r.params_delta or r.macs_delta]


def layer_key(node) -> str:
    """A name that survives export: module scope + op type where the reader knows the scope, else the node name.

    PyTorch graphs name layers ``features.0.0/Conv``; the same layer exported to ONNX is
    ``/features/features.0/features.0.0/Conv`` with scope ``features.0.0``: both give ``features.0.0/Conv``.
    """
    return f"{node.scope}/{node.op_type}" if node.scope else node.name


def _index(graph) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in graph.nodes:
        key = layer_key(node)
        k, n = key, 2
        while k in out:
            k, n = f"{key}#{n}", n + 1
        out[k] = node
    return out


def compare_layers(graph_a, graph_b) -> LayerComparison:
    """Per-layer params/MACs of two LayerGraphs (A = before, B = after), matched by :func:`layer_key`."""
    a, b = _index(graph_a), _index(graph_b)
    rows = [LayerDelta(k, a[k].op_type, a[k].params, b[k].params, a[k].macs or 0, b[k].macs or 0)
            for k in a if k in b]
    return LayerComparison(rows, [k for k in a if k not in b], [k for k in b if k not in a])
