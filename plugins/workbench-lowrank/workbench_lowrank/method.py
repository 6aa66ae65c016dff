"""Low-rank factorization by truncated SVD: one wide layer becomes two thin ones.

A ``Linear(in, out)`` whose weight ``W`` (out × in) is close to rank ``r`` is replaced by
``Sequential(Linear(in, r, bias=False), Linear(r, out))``; the two weights are ``sqrt(S) Vᵀ`` and ``U sqrt(S)`` from
the SVD ``W ≈ U S Vᵀ`` truncated to ``r`` singular values. A ``Conv2d`` with ``groups == 1`` is treated the same way
on its weight reshaped to out × (in·kh·kw): a kh×kw convolution to ``r`` channels (same stride, padding, dilation)
followed by a 1×1 convolution to ``out`` channels that carries the bias.

The rank of each layer is the smallest that keeps the fraction ``energy`` of the sum of squared singular values
(at least ``min_rank``). A layer keeps its original form when the two factors would hold as many parameters as the
original or more, unless ``skip_if_no_savings`` is off.

torch is imported inside the functions that need it, so listing the installed methods stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Generator, Literal

from pydantic import Field, ValidationError

from workbench.core.artifact import ModelArtifact, save_torch
from workbench.core.errors import WorkbenchError
from workbench.core.graph import LayerGraph, Node
from workbench.core.methods import Estimate, Method, MethodParams, RunContext, describe_field, per_layer
from workbench.core.progress import Progress

OUTPUT_STEM = "lowrank"
LINEAR_OPS = {"Gemm", "MatMul", "Linear"}
CONV_OPS = {"Conv"}


class LowRankParams(MethodParams):
    energy: float = per_layer(
        0.9, ge=0.5, le=1.0,
        description="Fraction of the weight's squared singular values to keep; higher keeps more rank and accuracy, "
                    "lower saves more parameters. May be set per layer.")
    min_rank: int = Field(4, ge=1, le=4096, description="Never factorize a layer below this rank.")
    layers: Literal["linear", "conv", "both"] = Field(
        "linear", description="Which layers to factorize: fully connected, 2-D convolutions (groups = 1), or both.")
    skip_if_no_savings: bool = Field(
        True, description="Keep a layer unchanged when its two factors would not hold fewer parameters.")


class LowRankSVD(Method):
    id = "lowrank.svd"
    label = "Low-rank factorization (SVD)"
    kind = "transform"
    description = ("Replaces linear and convolution layers by two thinner layers from a truncated SVD of their "
                   "weights, keeping a chosen fraction of the singular-value energy.")
    Params = LowRankParams
    needs_data = False
    input_formats = frozenset({"torch"})

    # ---- estimate: instant, from the graph only ---------------------------------------------------------------
    def estimate(self, graph: LayerGraph, params: LowRankParams) -> Estimate:
        params_total, macs_total, size_total = graph.params, graph.macs, graph.weight_bytes
        changed = considered = 0
        for node in graph.nodes:
            shape = _weight_shape(node, params.layers)
            if shape is None:
                continue
            considered += 1
            out_ch, fan_in = shape
            full = min(out_ch, fan_in)
            rank = _estimated_rank(params.energy, full, params.min_rank)
            before, after = out_ch * fan_in, rank * (out_ch + fan_in)
            if after >= before and params.skip_if_no_savings:
                continue
            changed += 1
            delta = after - before
            bytes_per_value = node.weight_bytes / node.params if node.params else 4
            params_total += delta
            size_total += int(round(delta * bytes_per_value))
            if node.macs:
                # Both factors run at the original layer's output positions: MACs scale like the weight.
                macs_total += int(round(node.macs * (after / before))) - node.macs
        notes = [
            "estimated: each layer's rank is taken as energy × its full rank (at least min_rank); the real rank "
            "comes from the singular values of the weights and is known only after a run",
            f"{changed} of {considered} eligible layers ({params.layers}) would be factorized",
        ]
        return Estimate(params=params_total, macs=macs_total, size_bytes=size_total, notes=notes)

    # ---- run ------------------------------------------------------------------------------------------------------
    def run(self, artifact: ModelArtifact, params: LowRankParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        self.check_accepts(artifact)
        resolve = _OverrideResolver(params, ctx.overrides)
        yield Progress(0.0, "loading the model")
        model = artifact.load_torch(editable=True)
        ctx.check()

        targets = _targets(model, params.layers)
        unused = resolve.unused_keys({path for path, _ in targets})
        for key in unused:
            ctx.log(f"{self.id}: no {params.layers} layer matches the override '{key}'; it is ignored")
        params_before = _count(model)
        ranks: dict[str, int] = {}
        factorized: list[str] = []
        total = max(1, len(targets))
        for i, (path, layer) in enumerate(targets):
            ctx.check()
            yield Progress(0.9 * i / total, f"factorizing {path} ({i + 1} of {len(targets)})")
            layer_params = resolve(path)
            replacement, rank, full = _factorize(layer, layer_params.energy, layer_params.min_rank)
            old, new = _count(layer), _count(replacement)
            if new >= old and layer_params.skip_if_no_savings:
                ctx.log(f"{path}: kept (rank {rank} of {full} would hold {new:,} parameters, not fewer than {old:,})")
                continue
            _replace(model, path, replacement)
            ranks[path] = rank
            factorized.append(path)
            ctx.log(f"{path}: rank {rank} of {full}, {old:,} → {new:,} parameters")
        ctx.check()

        params_after = _count(model)
        meta = {"method": self.id, "params": params.model_dump(), "layers_factorized": factorized,
                "ranks": ranks, "params_before": params_before, "params_after": params_after}
        if ctx.overrides:
            meta["overrides"] = {k: dict(v) for k, v in ctx.overrides.items()}
        yield Progress(0.9, f"saving ({len(factorized)} layers factorized, "
                            f"{params_before:,} → {params_after:,} parameters)")
        ctx.check()
        examples = _example_inputs(artifact)
        path = ctx.output_path(OUTPUT_STEM, ".pt2")
        before = set(path.parent.iterdir())
        try:
            # The last step: nothing is yielded after it, so a run that got this far completes.
            return save_torch(model, examples, path, artifact.inputs, meta)
        except BaseException:
            _remove_new_files(path.parent, before)
            raise


# ---- layer selection and factorization ---------------------------------------------------------------------------
def _targets(model, layers: str) -> list[tuple[str, Any]]:
    """(module path, module) of every layer the method may factorize, in model order."""
    from torch import nn

    found = []
    for path, module in model.named_modules():
        if not path or getattr(module, "parametrizations", None):
            continue
        # Exact types only: subclasses (e.g. the attention output projection of nn.MultiheadAttention) are often
        # read through ``.weight`` by their parent, which a Sequential in their place would break.
        if type(module) is nn.Linear and layers in ("linear", "both"):
            found.append((path, module))
        elif type(module) is nn.Conv2d and module.groups == 1 and layers in ("conv", "both"):
            found.append((path, module))
    return found


def _choose_rank(singular_values, energy: float, min_rank: int) -> int:
    full = int(singular_values.numel())
    squared = singular_values.double() ** 2
    total = float(squared.sum())
    if energy >= 1.0 or total <= 0.0:
        rank = full if total > 0.0 else 1
    else:
        kept = squared.cumsum(0)
        # Prefixes still below the target, plus one: the smallest rank that reaches it.
        rank = int((kept < energy * total * (1 - 1e-12)).sum()) + 1
    return max(1, min(full, max(rank, min_rank)))


def _factorize(layer, energy: float, min_rank: int):
    """The two-layer replacement of ``layer``, its rank and the full rank."""
    import torch
    from torch import nn

    weight = layer.weight.detach()
    matrix = weight.reshape(weight.shape[0], -1).double()
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    rank = _choose_rank(s, energy, min_rank)
    root = s[:rank].sqrt()
    first = (root[:, None] * vh[:rank]).to(weight.dtype)  # r × fan_in
    second = (u[:, :rank] * root[None, :]).to(weight.dtype)  # out × r
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        a = nn.Linear(layer.in_features, rank, bias=False)
        b = nn.Linear(rank, layer.out_features, bias=bias)
        a.weight.data.copy_(first)
        b.weight.data.copy_(second)
    else:
        a = nn.Conv2d(layer.in_channels, rank, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                      dilation=layer.dilation, bias=False, padding_mode=layer.padding_mode)
        b = nn.Conv2d(rank, layer.out_channels, 1, bias=bias)
        a.weight.data.copy_(first.reshape(rank, *weight.shape[1:]))
        b.weight.data.copy_(second.reshape(layer.out_channels, rank, 1, 1))
    if bias:
        b.bias.data.copy_(layer.bias.detach())
    replacement = nn.Sequential(a, b).to(weight.device)
    replacement.train(layer.training)
    return replacement, rank, int(s.numel())


def _replace(model, path: str, replacement) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, replacement)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _example_inputs(artifact: ModelArtifact) -> list:
    """One example tensor per input, for torch.export to trace (the batch axis stays dynamic)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    examples = []
    for spec, shape in zip(artifact.inputs, artifact.input_shapes):
        if spec.dtype.startswith(("int", "uint", "bool")):
            examples.append(torch.zeros(shape, dtype=torch.int64))
        else:
            examples.append(torch.randn(shape, generator=generator))
    return examples


def _remove_new_files(folder: Path, before: set[Path]) -> None:
    """After a failed or interrupted save: delete what this run wrote (its final and ``.part`` files)."""
    for path in set(folder.iterdir()) - before:
        if path.name.startswith(OUTPUT_STEM) and path.is_file():
            path.unlink(missing_ok=True)


# ---- per-layer overrides ------------------------------------------------------------------------------------------
class _OverrideResolver:
    """Parameters for one module path: the run's values, updated by the most specific matching override.

    A key matches a layer when it is its module path (``features.3.conv.2``), a layer name from the graph
    (``features.3.conv.2/Conv``), or a scope above it (``features.3``); the longest match wins.
    """

    def __init__(self, params: LowRankParams, overrides: dict[str, dict[str, Any]]):
        self.params = params
        self.by_scope: dict[str, LowRankParams] = {}
        allowed = set(type(params).per_layer_fields())
        for key, values in (overrides or {}).items():
            unknown = set(values) - allowed
            if unknown:
                raise WorkbenchError(f"lowrank.svd: override for '{key}' sets {', '.join(sorted(unknown))}",
                                     f"only {', '.join(sorted(allowed))} may be set per layer")
            try:
                merged = type(params)(**{**params.model_dump(), **values})
            except ValidationError as exc:
                field = ".".join(str(p) for p in exc.errors()[0].get("loc", ())) or "value"
                raise WorkbenchError(f"lowrank.svd: override for '{key}': {field}: {exc.errors()[0]['msg']}",
                                     f"allowed: {describe_field(type(params), field)}") from None
            self.by_scope[_scope_of(key)] = merged

    def __call__(self, path: str) -> LowRankParams:
        best, best_len = self.params, -1
        for scope, values in self.by_scope.items():
            if _covers(scope, path) and len(scope) > best_len:
                best, best_len = values, len(scope)
        return best

    def unused_keys(self, paths: set[str]) -> list[str]:
        return [scope for scope in self.by_scope if not any(_covers(scope, p) for p in paths)]


def _scope_of(key: str) -> str:
    """``features.3.conv.2/Conv`` (a layer name) → ``features.3.conv.2`` (its module path)."""
    return key.split("/", 1)[0].strip()


def _covers(scope: str, path: str) -> bool:
    return scope == "" or path == scope or path.startswith(scope + ".")


# ---- estimate helpers ---------------------------------------------------------------------------------------------
def _weight_shape(node: Node, layers: str) -> tuple[int, int] | None:
    """(rows, columns) of the weight matrix the method would factorize at this node, or None."""
    if not node.weights or len(node.input_shapes) < 2 or node.input_shapes[1] is None:
        return None
    shape = tuple(node.input_shapes[1])
    if node.op_type in LINEAR_OPS and layers in ("linear", "both") and len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if node.op_type in CONV_OPS and layers in ("conv", "both") and len(shape) == 4:
        if int(node.attributes.get("group", 1) or 1) != 1:
            return None
        return int(shape[0]), int(math.prod(shape[1:]))
    return None


def _estimated_rank(energy: float, full: int, min_rank: int) -> int:
    return max(1, min(full, max(min_rank, math.ceil(energy * full - 1e-9))))
