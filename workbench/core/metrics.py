"""Per-node metric sources for heat maps: counted ones now, measured ones (latency, quantization error) later.

A source maps a node to a number. Scopes (collapsed boxes) show the sum of their nodes. New sources register with
:func:`register`; the graph view lists whatever is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .graph import LayerGraph, Node


@dataclass(frozen=True)
class MetricSource:
    """A named per-node number with its unit and provenance (``counted`` from shapes, or ``measured``)."""

    id: str
    label: str
    unit: str
    provenance: str
    value: Callable[[LayerGraph, Node], float | None]
    description: str = ""


_SOURCES: dict[str, MetricSource] = {}


def register(source: MetricSource) -> None:
    _SOURCES[source.id] = source


def sources() -> list[MetricSource]:
    return list(_SOURCES.values())


def get(source_id: str) -> MetricSource:
    return _SOURCES[source_id]


def format_value(source: MetricSource, value: float | None) -> str:
    """A metric value for people: '118 M MACs', '2.4 MiB', '590 k'."""
    from .report import human, human_bytes

    if value is None:
        return "–"
    if source.unit == "B":
        return human_bytes(int(value))
    return f"{human(value)} {source.unit}".strip()


register(MetricSource("macs", "MACs", "MACs", "counted", lambda g, n: n.macs,
                      "multiply-accumulates, counted from shapes"))
register(MetricSource("params", "Parameters", "", "counted", lambda g, n: n.params,
                      "weight elements the layer reads"))
register(MetricSource("activation_bytes", "Activation memory", "B", "counted", lambda g, n: n.activation_bytes,
                      "bytes of the layer's outputs"))
register(MetricSource("weight_bytes", "Weight memory", "B", "counted", lambda g, n: n.weight_bytes,
                      "bytes of the weights the layer reads"))
