"""Pruning: structured channel pruning (Torch-Pruning's dependency graph) and unstructured magnitude pruning.

``prune.channels`` physically removes output channels together with everything coupled to them — the BatchNorm
after a convolution, the input channels of the layers that consume them, both sides of a residual add, the parts
of a concatenation, depthwise groups — so the result is a smaller dense model that runs faster on ordinary
kernels. The coupling rules are Torch-Pruning's (``DependencyGraph`` / ``BasePruner``); this module only chooses
what to prune: the ratio (global or per layer), the importance criterion, the layers kept whole, and the rounding
of channel counts.

``prune.magnitude`` zeroes the smallest weights of convolutions and linear layers. Shapes do not change: the model
compresses better but runs no faster on dense kernels (said in the estimate and the log).

Neither imports torch at module import: the method registry lists methods without loading torch.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import math
from pathlib import Path
from typing import Any, Generator, Iterable, Iterator, Literal

from pydantic import Field

from ..core.artifact import ModelArtifact, onnx_output_files, save_onnx_module, save_torch, torch_output_files
from ..core.errors import WorkbenchError
from ..core.graph import LayerGraph, Node
from ..core.methods import Estimate, Method, MethodParams, RunContext, per_layer
from ..core.progress import Cancelled, Progress

NEEDS_LAYERS = ("open the model as a state_dict with --arch, a pickled module or model.py:build")
WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


# ---- helpers shared with finetune ----------------------------------------------------------------------------
def editable_module(method_id: str, artifact: ModelArtifact):
    """The artifact as real ``nn.Module`` layers, or a WorkbenchError saying how to open it so that it has them.

    An ONNX model is converted (:mod:`workbench.core.onnx_torch`), unless an earlier step left its editable module
    beside it; the converted module's ``onnx_layers`` maps ONNX layer names to its submodules.
    """
    if artifact.format == "onnx":
        module_file = artifact.meta.get("module_file")
        if module_file and (artifact.path.parent / module_file).is_file():
            return artifact.load_torch(editable=True)
        from ..core.onnx_torch import convert_artifact

        return convert_artifact(artifact)
    if not artifact.is_torch:
        raise WorkbenchError(f"{method_id} needs PyTorch layers, not a {artifact.format} model",
                             NEEDS_LAYERS, artifact.path)
    try:
        return artifact.load_torch(editable=True)
    except WorkbenchError as exc:
        raise WorkbenchError(f"{method_id} needs PyTorch layers: {exc.problem}", exc.hint or NEEDS_LAYERS,
                             exc.path) from None


def example_inputs(artifact: ModelArtifact) -> list:
    """One random tensor per model input, with the artifact's bound shapes and dtypes."""
    import torch

    out = []
    for spec, shape in zip(artifact.inputs, artifact.input_shapes):
        dtype = getattr(torch, str(spec.dtype or "float32").replace("torch.", ""), torch.float32)
        if dtype.is_floating_point:
            out.append(torch.randn(*shape, dtype=dtype))
        else:
            out.append(torch.zeros(*shape, dtype=dtype))
    return out


def remove_files(paths: Iterable[Path]) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


@contextlib.contextmanager
def removed_unless_done() -> Iterator[list[Path]]:
    """A list to add a method's output files to (finished or partial); they are removed when the block ends with an
    error or Cancel (or the run's generator is closed), and kept when it completes."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        remove_files(written)
        raise


def result_files(artifact: ModelArtifact, ctx: RunContext, stem: str) -> list[Path]:
    """Every file :func:`save_result` may write for ``stem`` (removed by the caller after a failure or Cancel)."""
    if artifact.format == "onnx":
        return onnx_output_files(ctx.output_path(stem, ".onnx"))
    return torch_output_files(ctx.output_path(stem, ".pt2"))


def save_result(module, examples: list, artifact: ModelArtifact, ctx: RunContext, stem: str,
                meta: dict) -> ModelArtifact:
    """The edited module saved into the work folder under ``stem``, in the input's family: ONNX in, ONNX out (same
    input and output names); PyTorch in, a ``torch.export`` program out (see :func:`result_files`)."""
    if artifact.format == "onnx":
        from ..core.onnx_torch import onnx_output_names

        outputs = getattr(module, "onnx_outputs", None) or onnx_output_names(artifact)
        return save_onnx_module(module, examples, ctx.output_path(stem, ".onnx"), artifact.inputs, outputs, meta)
    return save_torch(module, examples, ctx.output_path(stem, ".pt2"), artifact.inputs, meta)


def resolve_layers(model, names: Iterable[str], what: str, graph: LayerGraph | None = None) -> dict[str, list]:
    """Modules for each layer name or scope. A model converted from ONNX is addressed by the names the layer graph
    shows (ONNX node names and scopes), through its ``onnx_layers`` map; ``graph`` is the ONNX model's graph."""
    names = list(names)
    layers = getattr(model, "onnx_layers", None)
    if not names or layers is None or graph is None:
        return {name: [m] for name, m in _resolve_modules(model, names, what).items()}
    modules = dict(model.named_modules())
    found: dict[str, list] = {}
    for name in names:
        key = name.strip()
        targets = [key] if key in modules and key else []
        targets += [layers.get(n.name) or n.scope for n in graph.nodes if _matches(n, [key])]
        hits = list({id(modules[t]): modules[t] for t in targets if t in modules}.values())
        hits = [m for m in hits if any(True for _ in m.parameters())]
        if not hits:
            examples = ", ".join(n.name for n in graph.nodes if n.name in layers and n.params)[:120]
            raise WorkbenchError(f"{what}: no layer or scope named '{name}' in the model",
                                 f"use layer names or scopes from the graph, such as {examples}")
        found[name] = hits
    return found


def _resolve_modules(model, names: Iterable[str], what: str) -> dict[str, Any]:
    """Module for each layer name or scope (``features.3.conv.0.0`` or a graph node name ``…/Conv``)."""
    modules = dict(model.named_modules())
    found = {}
    for name in names:
        key = name.strip()
        candidates = [key, key.split("/")[0], key.removeprefix("model.")]
        hit = next((c for c in candidates if c and c in modules), None)
        if hit is None:
            examples = ", ".join(n for n, _ in list(model.named_modules())[1:4])
            raise WorkbenchError(f"{what}: no layer or scope named '{name}' in the model",
                                 f"use module paths such as {examples}")
        found[name] = modules[hit]
    return found


def _matches(node: Node, names: Iterable[str]) -> bool:
    for name in names:
        scope = name.split("/")[0]
        if node.name == name or (scope and (node.scope == scope or node.scope.startswith(scope + "."))):
            return True
    return False


# ---- channel pruning -----------------------------------------------------------------------------------------
def kept_channels(channels: int, ratio: float, round_to: int) -> int:
    """Channels left when ``ratio`` of ``channels`` is removed, as the pruner computes it.

    Torch-Pruning keeps ``int(c × (1 − ratio))``; the count is then rounded to the *nearest* multiple of
    ``round_to`` (at least one multiple, never more than the layer has). Torch-Pruning's own rounding goes down
    and would delete a narrow layer outright (16 channels at 60 % → 6 → 0) or take 24 → 8 at 50 %.
    """
    return round_kept(int(channels * (1 - ratio)), channels, round_to)


def round_kept(keep: int, current: int, round_to: int) -> int:
    """``keep`` rounded to the nearest multiple of ``round_to``, at least one multiple, at most ``current``.

    A layer with ``round_to`` channels or fewer keeps them all: it cannot shrink to a smaller multiple.
    """
    if round_to <= 1:
        return min(max(keep, 1), current)
    keep = int(keep / round_to + 0.5) * round_to
    return min(max(keep, round_to), current)


class ChannelPruningParams(MethodParams):
    ratio: float = per_layer(0.3, ge=0.0, le=0.9, description=(
        "Fraction of output channels removed from every prunable layer (0.5 removes half); coupled layers "
        "(BatchNorm, residual adds, concatenations, depthwise convolutions) follow. Can be set per layer."))
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field("l2", description=(
        "How channels are ranked: l1/l2 norm of their weights, BatchNorm scale (gamma), or taylor "
        "(|weight × gradient| of the cross-entropy on a few training batches; needs labelled data)."))
    global_pruning: bool = Field(False, description=(
        "Rank channels across all layers at once (layers end up pruned unevenly, same total ratio) instead of "
        "removing the same fraction from each layer."))
    round_to: int = Field(8, ge=1, le=64, description=(
        "Channel counts are rounded to the nearest multiple of this; 1 disables rounding. Odd counts hit slow "
        "kernels: at 30 % pruning MobileNetV2 ran 1.55× faster than dense with multiples of 8 but 1.1× slower "
        "without rounding (ONNX Runtime, 1 thread, tests/benchmarks/bench_pruning.py)."))
    exclude: list[str] = Field(default_factory=list, description=(
        "Layer names or scopes whose output channels are kept whole (and every layer coupled to them); "
        "the final classifier is always kept whole."))
    iterative_steps: int = Field(1, ge=1, le=10, description=(
        "Reach the ratio in this many steps, re-ranking the channels after each."))


# Taylor importance: gradients of a few batches. The batch shrinks with the input size so that back-propagating
# a 224x224 model stays near a gigabyte (64 digits of 28x28, 13 images of 3x224x224).
_IMPORTANCE_DATA_BATCHES = 4
_IMPORTANCE_BATCH = 64
_IMPORTANCE_BATCH_ELEMENTS = 1 << 21


class ChannelPruning(Method):
    id = "prune.channels"
    label = "Channel pruning"
    kind = "prune"
    description = ("Removes whole channels with every coupled layer (Torch-Pruning dependency graph): a smaller "
                   "dense model that runs faster everywhere. Fine-tune afterwards to recover accuracy.")
    Params = ChannelPruningParams
    needs_data = False  # only the taylor importance needs data; run() says so if it is missing
    input_formats = frozenset({"torch", "onnx"})  # ONNX is converted to PyTorch layers, pruned, exported back

    # ---- estimate --------------------------------------------------------------------------------------------
    def estimate(self, graph: LayerGraph, params: MethodParams,
                 overrides: dict[str, dict[str, Any]] | None = None) -> Estimate:
        """Params and MACs after pruning, propagated through the graph as kept-channel fractions.

        Every Conv/Gemm keeps ``kept_channels(c_out)`` output channels (all of them for the final layers and
        excluded ones); a layer's input fraction is its producer's output fraction, so weights scale with
        in × out fraction — (1 − r)² inside the network, (1 − r) for the first convolution and the classifier.
        Depthwise convolutions, BatchNorm and elementwise ops follow their input.
        """
        p: ChannelPruningParams = params  # type: ignore[assignment]
        overrides = overrides or {}
        producer: dict[str, Node] = {t: n for n in graph.nodes for t in n.outputs}
        graph_inputs = {s.name for s in graph.inputs}
        finals = _final_layers(graph, producer)
        frac: dict[str, float] = {}
        total_params = 0.0
        total_macs = 0.0

        def ratio_of(node: Node) -> float:
            for name, values in overrides.items():
                if "ratio" in values and _matches(node, [name]):
                    return float(values["ratio"])
            return p.ratio

        for node in graph.nodes:
            data_in = [t for t in node.inputs if t in producer or t in graph_inputs] or node.inputs[:1]
            fin = [frac.get(t, 1.0) for t in data_in] or [1.0]
            f_in = fin[0]
            if node.op_type in WEIGHTED_OPS and node.params > 0:
                c_in = _channels(node.input_shapes[0] if node.input_shapes else None)
                c_out = _channels(node.output_shapes[0] if node.output_shapes else None)
                group = int(node.attributes.get("group", 1) or 1)
                if group > 1 and c_in and group == c_in:  # depthwise: channels follow the input
                    f_out, scale = f_in, f_in
                elif node.name in finals or _matches(node, p.exclude) or not c_out:
                    f_out, scale = 1.0, f_in
                else:
                    f_out = kept_channels(c_out, ratio_of(node), p.round_to) / c_out
                    scale = f_in * f_out
            elif node.op_type == "Concat" and len(fin) > 1:
                widths = [_channels(s) or 1 for s in node.input_shapes[:len(fin)]]
                f_out = sum(f * w for f, w in zip(fin, widths)) / max(1, sum(widths))
                scale = f_out
            else:
                f_out = max(fin) if node.op_type in ("Add", "Sub", "Mul", "Sum", "Max", "Min") else f_in
                scale = f_out
            for t in node.outputs:
                frac[t] = f_out
            total_params += node.params * scale
            total_macs += (node.macs or 0) * scale
        notes = ["estimated from the layer graph (no weights read); measure after running",
                 f"{p.ratio:.0%} of the channels of every prunable layer, counts rounded to multiples of "
                 f"{p.round_to}" if p.round_to > 1 else f"{p.ratio:.0%} of the channels of every prunable layer",
                 "the final classifier keeps its outputs"]
        if p.global_pruning:
            notes.append("global pruning removes channels unevenly; the estimate assumes the same ratio everywhere")
        if p.exclude:
            notes.append("excluded layers keep their outputs; layers coupled to them through residual adds stay "
                         "whole too when pruned, which the estimate does not model")
        params_after = int(round(total_params))
        return Estimate(params=params_after, macs=int(round(total_macs)), size_bytes=4 * params_after, notes=notes)

    # ---- run -------------------------------------------------------------------------------------------------
    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        p: ChannelPruningParams = params  # type: ignore[assignment]
        self.check_accepts(artifact)
        ratios = self._override_ratios(ctx.overrides)
        batches = self._taylor_batches(artifact, ctx) if p.importance == "taylor" else None
        with removed_unless_done() as written:
            yield Progress(0.0, "loading the model")
            import torch
            import torch_pruning as tp

            model = editable_module(self.id, artifact).eval()
            examples = example_inputs(artifact)
            example = examples[0] if len(examples) == 1 else tuple(examples)
            ctx.check()
            yield Progress(0.05, "counting parameters and MACs")
            before = artifact.graph()
            ctx.check()

            yield Progress(0.1, "building the dependency graph")
            if p.importance == "bn_scale" and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                      for m in model.modules()):
                folded = " (ONNX exporters fold BatchNorm into the convolutions)" if artifact.format == "onnx" else ""
                raise WorkbenchError("prune.channels: the bn_scale importance ranks channels by their BatchNorm "
                                     f"scale, and this model has no BatchNorm layers{folded}", "use l1, l2 or taylor")
            excluded = [m for ms in resolve_layers(model, p.exclude, "exclude", before).values() for m in ms]
            modules = resolve_layers(model, ratios, "override", before)
            ratio_dict = {m: ratio for name, ratio in ratios.items() for m in modules[name]}
            channels_before = _out_channels(model)
            with _torch_pruning_errors(), torch.enable_grad():  # the dependency graph is traced through autograd
                finals = _final_modules(tp, model, example)
                ignored = list(finals.values()) + [m for m in excluded if m not in finals.values()]
                pruner = _pruner_class()(
                    model, example, importance=_importance(tp, p.importance), global_pruning=p.global_pruning,
                    pruning_ratio=p.ratio, pruning_ratio_dict=ratio_dict or None, iterative_steps=p.iterative_steps,
                    ignored_layers=ignored, round_to=p.round_to if p.round_to > 1 else None)
            for step in range(p.iterative_steps):
                ctx.check()
                with _torch_pruning_errors(), torch.enable_grad():
                    if batches is not None:
                        _accumulate_gradients(model, batches)
                    pruner.step()
                model.zero_grad(set_to_none=True)
                yield Progress(0.1 + 0.6 * (step + 1) / p.iterative_steps,
                               f"pruning step {step + 1}/{p.iterative_steps}")
            for param in model.parameters():
                param.grad = None
            ctx.check()

            with torch.no_grad():
                try:
                    model(*examples)
                except Exception as exc:  # noqa: BLE001 - a pruning Torch-Pruning could not make consistent
                    raise WorkbenchError(f"prune.channels: the pruned model no longer runs ({exc})",
                                         "exclude the layers around the failure or lower the ratio") from None
            shown = _shown_names(model)
            changed = {shown.get(name, name): [channels_before[name], c] for name, c in _out_channels(model).items()
                       if name in channels_before and channels_before[name] != c}
            yield Progress(0.75, "saving the pruned model")
            meta = {"method": self.id, "params": p.model_dump(), "overrides": dict(ctx.overrides),
                    "params_before": before.params, "macs_before": before.macs,
                    "kept_whole": sorted(shown.get(n, n) for n in finals), "channels": changed}
            written += result_files(artifact, ctx, "pruned")
            result = save_result(model, examples, artifact, ctx, "pruned", meta)
            ctx.check()
            yield Progress(0.9, "counting the pruned model")
            after = result.graph()
            result.meta.update(params_after=after.params, macs_after=after.macs)
            ctx.log(f"prune.channels: params {before.params:,} → {after.params:,} "
                    f"({after.params / max(1, before.params):.0%}), MACs {before.macs:,} → {after.macs:,} "
                    f"({after.macs / max(1, before.macs):.0%}); {len(changed)} layers narrowed")
            yield Progress(1.0, "done")
            return result

    # ---- parts -----------------------------------------------------------------------------------------------
    def _override_ratios(self, overrides: dict[str, dict[str, Any]]) -> dict[str, float]:
        """Layer name or scope → ratio from the user's overrides, validated like the parameter itself."""
        allowed = set(self.Params.per_layer_fields())
        values = {}
        for name, fields in (overrides or {}).items():
            unknown = set(fields) - allowed
            if unknown:
                raise WorkbenchError(f"{self.id}: '{', '.join(sorted(unknown))}' cannot be set per layer ({name})",
                                     f"per-layer fields: {', '.join(sorted(allowed))}")
            if "ratio" in fields:
                values[name] = self.parse_params({"ratio": fields["ratio"]}).ratio
        return values

    def _taylor_batches(self, artifact: ModelArtifact, ctx: RunContext) -> list:
        from ..core.data import check_fits

        data = ctx.data
        if data is None or data.train.y is None:
            raise WorkbenchError("prune.channels: the taylor importance needs labelled training data",
                                 "pass data with labels (--data demo or an .npz with x and y), or use l2")
        check_fits(data, artifact.input_shapes[0])
        per_sample = max(1, math.prod(artifact.input_shapes[0][1:]))
        batch = max(1, min(_IMPORTANCE_BATCH, _IMPORTANCE_BATCH_ELEMENTS // per_sample))
        n = min(len(data.train), _IMPORTANCE_DATA_BATCHES * batch)
        return list(data.train.take(n).batches(batch))


@functools.lru_cache(maxsize=1)
def _pruner_class():
    """Torch-Pruning's BasePruner, rounding kept channels to the nearest multiple (see :func:`kept_channels`).

    Built on first use so that importing this module does not import torch.
    """
    import torch_pruning as tp

    class NearestRoundingPruner(tp.pruner.BasePruner):
        def _round_to(self, n_pruned, current_channels, round_to):
            return max(0, current_channels - round_kept(current_channels - n_pruned, current_channels, round_to))

    return NearestRoundingPruner


@contextlib.contextmanager
def _torch_pruning_errors():
    """Torch-Pruning failures (layers it cannot trace or keep consistent) as one line the user can act on."""
    try:
        yield
    except (WorkbenchError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside the library
        raise WorkbenchError(f"prune.channels: Torch-Pruning could not prune this model ({type(exc).__name__}: "
                             f"{str(exc)[:200]})", "exclude the layers it fails on (attention blocks, custom "
                             "layers), or use prune.magnitude") from exc


def _importance(tp, name: str):
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    return tp.importance.TaylorImportance()


def _accumulate_gradients(model, batches: list) -> None:
    """Cross-entropy gradients over a few labelled batches (for the taylor importance); BN stays in eval mode."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    model.zero_grad(set_to_none=True)
    for x, y in batches:
        logits = model(torch.from_numpy(np.ascontiguousarray(x)))
        loss = F.cross_entropy(logits, torch.from_numpy(y)) * (len(x) / sum(len(b[0]) for b in batches))
        loss.backward()


def _final_modules(tp, model, example) -> dict[str, Any]:
    """The Conv/Linear layers that produce the model's outputs (kept whole: their outputs are the classes)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    weighted = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR)
    found: dict[str, Any] = {}
    stack = [node for node in graph.module2node.values() if not node.outputs]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, weighted):
            found[names.get(node.module, str(node.module))] = node.module
            continue
        stack.extend(node.inputs)
    return found


def _shown_names(model) -> dict[str, str]:
    """Submodule name → the layer name the user sees (the ONNX node name for a model converted from ONNX)."""
    return {module: onnx for onnx, module in (getattr(model, "onnx_layers", None) or {}).items()}


def _out_channels(model) -> dict[str, int]:
    import torch.nn as nn

    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            out[name] = m.out_channels
        elif isinstance(m, nn.Linear):
            out[name] = m.out_features
    return out


def _channels(shape) -> int | None:
    if not shape or len(shape) < 2:
        return None
    c = shape[1] if len(shape) > 2 else shape[-1]
    return c if isinstance(c, int) and c > 0 else None


def _final_layers(graph: LayerGraph, producer: dict[str, Node]) -> set[str]:
    """Names of the weighted nodes that feed the graph outputs through weightless ops only."""
    finals: set[str] = set()
    stack = [producer[o.name] for o in graph.outputs if o.name in producer]
    seen: set[str] = set()
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in WEIGHTED_OPS and node.params > 0:
            finals.add(node.name)
            continue
        stack.extend(producer[t] for t in node.inputs if t in producer)
    return finals


# ---- magnitude pruning ---------------------------------------------------------------------------------------
class MagnitudePruningParams(MethodParams):
    sparsity: float = per_layer(0.5, ge=0.0, le=0.99, description=(
        "Fraction of the weights of every convolution and linear layer set to zero (the smallest by magnitude). "
        "Can be set per layer."))
    scope: Literal["global", "per_layer"] = Field("per_layer", description=(
        "per_layer: each layer loses the same fraction; global: one magnitude threshold for all layers "
        "(layers with small weights lose more)."))


class MagnitudePruning(Method):
    id = "prune.magnitude"
    label = "Magnitude pruning (unstructured)"
    kind = "prune"
    description = ("Zeroes the smallest weights of convolutions and linear layers. The file compresses better; "
                   "dense kernels still multiply the zeros, so it does not run faster.")
    Params = MagnitudePruningParams
    input_formats = frozenset({"torch", "onnx"})

    def estimate(self, graph: LayerGraph, params: MethodParams,
                 overrides: dict[str, dict[str, Any]] | None = None) -> Estimate:
        p: MagnitudePruningParams = params  # type: ignore[assignment]
        overrides = overrides or {}
        zeroed = 0.0
        for node in graph.nodes:
            if node.op_type in WEIGHTED_OPS and node.params > 0:
                s = next((float(v["sparsity"]) for k, v in overrides.items()
                          if "sparsity" in v and _matches(node, [k])), p.sparsity)
                zeroed += node.params * s
        nonzero = graph.params - int(zeroed)
        # A sparse encoding: 4 bytes per non-zero value plus one bit per weight for the mask.
        size = 4 * nonzero + math.ceil(graph.params / 8)
        return Estimate(params=graph.params, macs=graph.macs, size_bytes=size, notes=[
            "estimated from the layer graph", f"about {nonzero:,} non-zero parameters of {graph.params:,}",
            "size: compressed (non-zero values + a 1-bit mask); the dense file stays the same size",
            "not faster: shapes are unchanged and dense kernels multiply the zeros too"])

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        p: MagnitudePruningParams = params  # type: ignore[assignment]
        self.check_accepts(artifact)
        with removed_unless_done() as written:
            yield Progress(0.0, "loading the model")
            import torch

            model = editable_module(self.id, artifact).eval()
            examples = example_inputs(artifact)
            layers = _weighted_layers(model)
            graph = artifact.graph() if ctx.overrides and artifact.format == "onnx" else None
            per_layer_sparsity = layer_values(self, model, layers, ctx.overrides, "sparsity", graph)
            ctx.check()
            yield Progress(0.2, "zeroing the smallest weights")
            with torch.no_grad():
                shared = [name for name in layers if name not in per_layer_sparsity]
                if p.scope == "global" and shared:
                    _zero_smallest([layers[n].weight for n in shared], p.sparsity)
                else:
                    per_layer_sparsity.update({n: p.sparsity for n in shared})
                for i, (name, s) in enumerate(per_layer_sparsity.items()):
                    _zero_smallest([layers[name].weight], s)
                    if i % 16 == 0:
                        ctx.check()
            total = sum(m.weight.numel() for m in layers.values())
            zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
            all_params = sum(t.numel() for t in model.parameters())
            nonzero = sum(int((t != 0).sum()) for t in model.parameters())
            ctx.check()
            yield Progress(0.5, "measuring the compressed size")
            dense, compressed = _gzip_sizes(model)
            ctx.check()
            meta = {"method": self.id, "params": p.model_dump(), "overrides": dict(ctx.overrides),
                    "sparsity_requested": p.sparsity, "sparsity_achieved": zeros / max(1, total),
                    "pruned_weights": total, "params_total": all_params, "nonzero_params": nonzero,
                    "size_dense_bytes": dense, "size_compressed_bytes": compressed,
                    "size_compressed_method": "gzip (level 6) of the raw tensors of the state_dict, measured"}
            yield Progress(0.7, "saving")
            written += result_files(artifact, ctx, "sparse")
            result = save_result(model, examples, artifact, ctx, "sparse", meta)
            ctx.log(f"prune.magnitude: {zeros / max(1, total):.1%} of {total:,} conv/linear weights are zero; "
                    f"weights gzip to {compressed / 1e6:.2f} MB (dense {dense / 1e6:.2f} MB). Shapes are "
                    "unchanged, so it runs no faster on dense kernels; fine-tuning afterwards refills the zeros "
                    "(no masks are kept)")
            yield Progress(1.0, "done")
            return result



def layer_values(method, model, layers: dict[str, Any], overrides: dict[str, dict[str, Any]], field: str,
                 graph: LayerGraph | None = None, log=None) -> dict[str, Any]:
    """Layer name (in ``layers``) → the value of ``field`` the user set per layer; a scope sets every layer beneath
    it. Keys are graph names (ONNX node names for a model converted from ONNX, given its ``graph``) or module paths;
    values are validated like the parameter itself. An unknown field is an error; a key that names no layer in
    ``layers`` is logged."""
    allowed = set(method.Params.per_layer_fields())
    out: dict[str, Any] = {}
    for name, fields in (overrides or {}).items():
        unknown = set(fields) - allowed
        if unknown:
            raise WorkbenchError(f"{method.id}: '{', '.join(sorted(unknown))}' cannot be set per layer ({name})",
                                 f"per-layer fields: {', '.join(sorted(allowed))}")
        if field not in fields:
            continue
        value = getattr(method.parse_params({field: fields[field]}), field)
        scopes = resolve_layers(model, [name], "override", graph)[name]
        hits = [n for n, layer in layers.items() if any(layer is m for scope in scopes for m in scope.modules())]
        if not hits and log is not None:
            log(f"{method.id}: override '{name}' matches no convolution or linear layer; ignored")
        out.update({n: value for n in hits})
    return out


def _weighted_layers(model) -> dict[str, Any]:
    import torch.nn as nn

    return {name: m for name, m in model.named_modules()
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and getattr(m, "weight", None) is not None}


def _zero_smallest(weights: list, sparsity: float) -> None:
    """Zero exactly ``round(sparsity × n)`` of the smallest |w| across ``weights`` (one shared threshold)."""
    import torch

    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights])
    k = int(round(sparsity * flat.numel()))
    if k <= 0:
        return
    idx = torch.topk(flat, k, largest=False, sorted=False).indices
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[idx] = False
    offset = 0
    for w in weights:
        n = w.numel()
        w.mul_(mask[offset:offset + n].view_as(w))
        offset += n


def _gzip_sizes(model) -> tuple[int, int]:
    """Bytes of the state_dict's tensors, raw and gzip-compressed (level 6)."""
    import torch

    raw = 0
    sink = io.BytesIO()
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz:
        for t in model.state_dict().values():
            data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            raw += len(data)
            gz.write(data)
    return raw, len(sink.getvalue())
