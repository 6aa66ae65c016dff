"""Per-layer sensitivity: perturb one layer at a time and measure how much accuracy it costs.

``analysis.sensitivity`` quantizes (fake quantization, as ``quantize.bits`` does) or prunes (zeroes the output
channels with the smallest L2 norm, simulated: shapes are unchanged) a single layer, measures top-1 accuracy on the
first ``samples`` validation examples with a PyTorch forward, restores the layer and moves to the next. The model
itself is not changed; the result is the input model re-saved, with the table of drops, the base accuracy and a
mixed-precision suggestion for ``quantize.bits`` in its ``meta``.

:func:`register_metric` turns a table of drops into a heat-map metric source so the graph can paint it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Generator, Literal

import numpy as np
from pydantic import Field

from ..core.artifact import ModelArtifact
from ..core.data import check_fits
from ..core.errors import WorkbenchError
from ..core.graph import LayerGraph
from ..core.methods import Estimate, Method, MethodParams, RunContext
from ..core.metrics import MetricSource, register
from ..core.progress import Progress
from .pruning import (_shown_names, _weighted_layers, editable_module, example_inputs, removed_unless_done,
                      result_files, save_result)
from .quantize_bits import channel_axis, fake_quantize

SENSITIVE_SHARE = 0.2  # the most sensitive fifth of the layers keeps 8 bits in the suggestion
ANALYSIS_NOTE = "analysis: the model is not changed; measures accuracy drop per layer"
_BATCH = 256


class SensitivityParams(MethodParams):
    probe: Literal["quantize", "prune"] = Field("quantize", description=(
        "How each layer is perturbed: quantize its weights to `bits` (fake quantization, per channel) or prune "
        "`ratio` of its output channels (zeroed, smallest L2 norm first)."))
    bits: int = Field(4, ge=2, le=8, description="Weight bits of the quantize probe (2-8).")
    ratio: float = Field(0.5, ge=0.0, le=0.99, description=(
        "Fraction of a layer's output channels zeroed by the prune probe (those with the smallest L2 norm)."))
    samples: int = Field(500, ge=50, le=10000, description=(
        "Validation samples the accuracy is measured on (the first ones; fewer is faster, more is steadier)."))
    layers: Literal["conv_linear", "all"] = Field("conv_linear", description=(
        "conv_linear: convolution and linear layers; all: every layer with a weight (normalisation too)."))


def probed_layers(model, which: str) -> dict[str, Any]:
    """Layer name → module of the layers to probe."""
    if which == "conv_linear":
        return _weighted_layers(model)
    import torch

    return {name: m for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.ndim >= 1
            and not list(m.children())}


def zero_weakest_channels(weight, ratio: float, axis: int = 0):
    """``weight`` with ``round(ratio × channels)`` output channels of smallest L2 norm set to zero (a copy)."""
    import torch

    w = weight.detach().clone()
    channels = w.shape[axis]
    k = int(round(ratio * channels))
    if k <= 0:
        return w
    norms = w.transpose(0, axis).reshape(channels, -1).norm(dim=1)
    idx = torch.topk(norms, k, largest=False).indices
    w.index_fill_(axis, idx, 0.0)
    return w


def top1(module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy (fraction) of a PyTorch module over ``x`` in batches."""
    import torch

    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), _BATCH):
            logits = module(torch.from_numpy(np.ascontiguousarray(x[i:i + _BATCH])))
            hits += int((logits.argmax(1).numpy() == y[i:i + _BATCH]).sum())
    return hits / max(1, len(x))


def suggestion(table: list[dict[str, Any]], bits: int, share: float = SENSITIVE_SHARE) -> dict[str, dict[str, int]]:
    """Per-layer overrides for ``quantize.bits``: the most sensitive ``share`` of layers at 8 bits, others at bits."""
    ranked = sorted(table, key=lambda row: row["drop_points"], reverse=True)
    keep = math.ceil(share * len(ranked)) if ranked else 0
    return {row["layer"]: {"weight_bits": 8 if i < keep else bits} for i, row in enumerate(ranked)}


def register_metric(results: dict[str, float]) -> MetricSource:
    """Register the heat-map source ``sensitivity``: each node shows the accuracy drop measured for its layer.

    ``results`` maps a layer (module path = the node's scope, or a node name) to its drop in points; nodes without
    a measurement show nothing.
    """
    values = dict(results)

    def value(graph: LayerGraph, node) -> float | None:
        found = values.get(node.scope)
        return values.get(node.name) if found is None else found

    source = MetricSource("sensitivity", "Accuracy drop", "points", "measured", value,
                          "top-1 accuracy lost when this layer alone is quantized or pruned (analysis.sensitivity)")
    register(source)
    return source


class Sensitivity(Method):
    id = "analysis.sensitivity"
    label = "Layer sensitivity analysis"
    kind = "analysis"
    description = ("Quantizes or prunes one layer at a time and measures the accuracy drop on validation data; "
                   "suggests which layers to keep at 8 bits. The model is not changed.")
    Params = SensitivityParams
    needs_data = True
    input_formats = frozenset({"torch", "onnx"})  # ONNX is converted to PyTorch layers; rows use its node names

    def estimate(self, graph: LayerGraph, params: MethodParams) -> Estimate:
        return Estimate(params=graph.params, macs=graph.macs, size_bytes=max(1, sum(4 * n.params for n in graph.nodes)),
                        notes=[ANALYSIS_NOTE])

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        p: SensitivityParams = params  # type: ignore[assignment]
        self.check_accepts(artifact)
        data = ctx.data
        if data is None or data.val.y is None:
            raise WorkbenchError(f"{self.id} needs labelled validation data",
                                 "pass data with labels (--data demo or an .npz with x and y)")
        check_fits(data, artifact.input_shapes[0])
        with removed_unless_done() as written:
            yield Progress(0.0, "loading the model")
            import torch

            model = editable_module(self.id, artifact).eval()
            examples = example_inputs(artifact)
            val = data.val.take(p.samples)
            x, y = val.x, val.y
            layers = probed_layers(model, p.layers)
            shown = _shown_names(model)  # a model converted from ONNX: the node names the graph shows
            ctx.check()
            yield Progress(0.02, f"measuring the base accuracy on {len(val)} samples")
            base = top1(model, x, y)
            table = []
            for i, (name, layer) in enumerate(layers.items()):
                ctx.check()
                label = shown.get(name, name)
                yield Progress(0.05 + 0.85 * i / max(1, len(layers)), f"probing {label} ({i + 1}/{len(layers)})")
                original = layer.weight.detach().clone()
                with torch.no_grad():
                    axis = channel_axis(layer)
                    if p.probe == "quantize":
                        perturbed = fake_quantize(original, p.bits, per_channel=True, symmetric=True, axis=axis)[0]
                    else:
                        perturbed = zero_weakest_channels(original, p.ratio, axis)
                    layer.weight.copy_(perturbed)
                    try:
                        acc = top1(model, x, y)
                    finally:
                        layer.weight.copy_(original)
                table.append({"layer": label, "scope": label, "accuracy": acc,
                              "drop_points": round(100.0 * (base - acc), 4)})
            ctx.check()
            table.sort(key=lambda row: row["drop_points"], reverse=True)
            meta = {"method": self.id, "params": p.model_dump(), "sensitivity": table, "base_accuracy": base,
                    "samples": len(val), "data": val.name, "suggestion": suggestion(table, p.bits),
                    "note": ANALYSIS_NOTE}
            yield Progress(0.92, "saving")
            written += result_files(artifact, ctx, "sensitivity")
            result = save_result(model, examples, artifact, ctx, "sensitivity", meta)
            worst = ", ".join(f"{row['layer']} {row['drop_points']:+.1f}" for row in table[:3])
            probe = f"{p.bits}-bit weights" if p.probe == "quantize" else f"{p.ratio:.0%} of channels zeroed"
            ctx.log(f"{self.id}: base accuracy {100 * base:.2f} % on {len(val)} samples; most sensitive to "
                    f"{probe}: {worst or 'none'} (points lost)")
            yield Progress(1.0, "done")
            return result
