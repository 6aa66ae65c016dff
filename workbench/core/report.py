"""Text and JSON renderings of a LayerGraph for ``workbench inspect``."""

from __future__ import annotations

from .graph import LayerGraph, Node


def human(n: float | int | None, unit: str = "") -> str:
    """1234567 → '1.23 M' (SI prefixes, three significant digits)."""
    if n is None:
        return "–"
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {prefix}{unit}"
    return f"{n:.0f} {unit}".strip() if isinstance(n, int) or float(n).is_integer() else f"{n:.3g} {unit}".strip()


def human_bytes(n: int) -> str:
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n} B"


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) if shape is not None else "?"


def to_json(graph: LayerGraph) -> dict:
    """The ``inspect --json`` document."""
    return {
        "format": graph.format,
        "source": graph.source,
        "inputs": [s.to_dict() for s in graph.inputs],
        "outputs": [s.to_dict() for s in graph.outputs],
        "params": graph.params,
        "macs": graph.macs,
        "flops": graph.flops,
        "weight_bytes": graph.weight_bytes,
        "activation_bytes": graph.activation_bytes,
        "nodes": len(graph.nodes),
        "counting": "static: counted from shapes, not measured; FLOPs = 2 x MACs",
        "layers": [_layer(n) for n in graph.nodes],
        "uncounted_ops": graph.uncounted_ops,
        "notes": graph.notes,
    }


def _layer(n: Node) -> dict:
    return {
        "name": n.name,
        "op_type": n.op_type,
        "scope": n.scope,
        "params": n.params,
        "macs": n.macs,
        "output_shapes": [list(s) if s is not None else None for s in n.output_shapes],
        "weight_bytes": n.weight_bytes,
        "activation_bytes": n.activation_bytes,
    }


def to_text(graph: LayerGraph, top: int | None = None) -> str:
    """Totals, then a per-layer table (all layers in order, or the ``top`` largest by MACs)."""
    lines = [
        f"Model      {graph.source}",
        f"Format     {graph.format}",
        "Inputs     " + ", ".join(f"{s.name} {shape_text(s.shape)} {s.dtype}" for s in graph.inputs),
        "Outputs    " + ", ".join(f"{s.name} {shape_text(s.shape)} {s.dtype}" for s in graph.outputs),
        "",
        "Totals (counted from shapes, not measured)",
        f"  Parameters         {graph.params:>16,}  ({human(graph.params)})",
        f"  MACs               {graph.macs:>16,}  ({human(graph.macs)})",
        f"  FLOPs (2 x MACs)   {graph.flops:>16,}  ({human(graph.flops)})",
        f"  Weights            {graph.weight_bytes:>16,}  ({human_bytes(graph.weight_bytes)})",
        f"  Activations        {graph.activation_bytes:>16,}  ({human_bytes(graph.activation_bytes)},"
        " all layer outputs)",
        f"  Layers             {len(graph.nodes):>16,}",
    ]
    uncounted = graph.uncounted_ops
    if uncounted:
        ops = ", ".join(f"{op} x{c}" for op, c in sorted(uncounted.items()))
        lines.append(f"  Not counted        {ops}  (no MAC rule: their cost is missing from the totals)")
    for note in graph.notes:
        lines.append(f"  Note               {note}")
    lines.append("")
    nodes = graph.top_layers(top) if top else graph.nodes
    title = f"Top {len(nodes)} layers by MACs" if top else "Layers"
    total = graph.macs or 1
    rows = [(n.name, n.op_type, ",".join(shape_text(s) for s in n.output_shapes), f"{n.params:,}",
             "not counted" if n.macs is None else f"{n.macs:,}",
             "" if n.macs is None else f"{100 * n.macs / total:.1f}") for n in nodes]
    header = ("Name", "Op", "Output", "Params", "MACs", "%MACs")
    widths = [min(48, max([len(header[i])] + [len(r[i]) for r in rows])) for i in range(6)]
    lines.append(title)
    fmt = "  {:<%d}  {:<%d}  {:<%d}  {:>%d}  {:>%d}  {:>%d}" % tuple(widths)
    lines.append(fmt.format(*header))
    for r in rows:
        name = r[0] if len(r[0]) <= widths[0] else "…" + r[0][-(widths[0] - 1):]
        lines.append(fmt.format(name, *r[1:]))
    return "\n".join(lines)
