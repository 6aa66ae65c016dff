"""Per-layer latency on the graph: ONNX Runtime's profiled node times mapped onto a LayerGraph's nodes.

ONNX Runtime profiles the graph it optimized: fused nodes keep their first node's name with a suffix
(``/features/features.0/features.0.0/Conv_output_0_nchwc``), layout transforms and memory copies are new nodes.
A profiled node is matched to a layer by exact name first; otherwise by its exporter scope (the path segment
before the op: ``features.0.0``), whose time goes to that scope's layer with the most MACs. Unmatched time is
reported, never spread over layers by guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from .graph import LayerGraph
from .metrics import MetricSource, register

_ORT_SUFFIX = re.compile(r"(_output_\d+)?(_nchwc|_token_\d+|_fused.*|_kernel_time)?$")


@dataclass
class LayerTimes:
    """Measured milliseconds per node index of one graph, what could not be placed, and where it was measured."""

    per_node: dict[int, float] = field(default_factory=dict)
    unmatched_ms: float = 0.0
    total_ms: float = 0.0
    device: str = ""

    @property
    def matched_share(self) -> float:
        return 1.0 - self.unmatched_ms / self.total_ms if self.total_ms else 0.0


def _scope_of(name: str) -> str | None:
    parts = [p for p in name.split("/") if p]
    return parts[-2] if len(parts) >= 2 else None


def _kernel_type(op_type: str) -> str:
    """The layer op a kernel implements: FusedConv → Conv, QLinearConv → Conv, MatMulInteger → MatMul."""
    t = op_type.removeprefix("Fused").removeprefix("QLinear")
    return {"ConvInteger": "Conv", "MatMulInteger": "MatMul", "MatMulNBits": "MatMul"}.get(t, t)


def _owner(graph: LayerGraph, producers: dict[int, list[int]], index: int, op_type: str) -> int:
    """The node that ran a kernel of ``op_type``: the matched node, or its nearest producer (up to three back) of
    that type. A fused kernel may carry the name of the last op it absorbed (Conv+Relu named after the Relu)."""
    if not op_type or graph.nodes[index].op_type == op_type:
        return index
    frontier = [index]
    for _ in range(3):
        frontier = [p for i in frontier for p in producers.get(i, [])]
        for i in frontier:
            if graph.nodes[i].op_type == op_type:
                return i
    return index


def map_ops(graph: LayerGraph, ops: Iterable, device: str = "", runs: int = 1) -> LayerTimes:
    """Milliseconds per inference for each layer of ``graph``.

    ``ops``: objects or dicts with ``name`` and ``total_ms`` (a LatencyReport's per-node profile), summed over
    ``runs`` profiled inferences (the report's ``profile_runs``).
    """
    runs = max(1, int(runs))
    by_name = {n.name: i for i, n in enumerate(graph.nodes)}
    heaviest: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        if n.scope and (n.scope not in heaviest or n.macs > graph.nodes[heaviest[n.scope]].macs):
            heaviest[n.scope] = i
    producers: dict[int, list[int]] = {}
    for e in graph.edges:
        producers.setdefault(e.dst, []).append(e.src)
    times = LayerTimes(device=device)
    for op in ops:
        name = op["name"] if isinstance(op, dict) else op.name
        op_type = (op.get("op_type", "") if isinstance(op, dict) else getattr(op, "op_type", "")) or ""
        ms = float(op["total_ms"] if isinstance(op, dict) else op.total_ms) / runs
        times.total_ms += ms
        base = _ORT_SUFFIX.sub("", name.removeprefix("fused ").strip())
        index = by_name.get(name)
        if index is None:
            index = by_name.get(base)
        if index is None:
            scope = _scope_of(base)
            index = heaviest.get(scope) if scope else None
        if index is not None:
            index = _owner(graph, producers, index, _kernel_type(op_type))
        if index is None:
            times.unmatched_ms += ms
        else:
            times.per_node[index] = times.per_node.get(index, 0.0) + ms
    return times


def register_latency_metric(graph: LayerGraph, times: LayerTimes) -> MetricSource:
    """The heat-map source ``latency``: measured ms per layer of ``graph`` (other graphs show nothing)."""
    source_path = graph.source
    by_name = {graph.nodes[i].name: ms for i, ms in times.per_node.items()}

    def value(shown: LayerGraph, node) -> float | None:
        return by_name.get(node.name) if shown.source == source_path else None

    source = MetricSource("latency", f"Latency on {times.device or 'the device'}", "ms", "measured", value,
                          f"time per layer and inference from ONNX Runtime's profiler on {times.device}; "
                          f"{100 * times.matched_share:.0f} % of the profiled time matched to layers")
    register(source)
    return source
