"""Low-bit weight quantization, simulated (fake quantization), and a real half-precision ONNX export.

``quantize.bits`` shows what 2- to 8-bit weights (uniform or mixed per layer) would cost in accuracy and what the
weights would take packed at those widths. Each Conv/Linear weight is replaced by its quantize-dequantize value, so
the saved model is still float32 and runs on ordinary float kernels, but it carries exactly the rounding error of
the chosen bit widths. Integer kernels that would run such a model exist only for int8 (``quantize.int8_static``)
and 4-bit weight-only MatMul (ONNX Runtime's ``MatMulNBits``); the meta and the log say so.

``export="fp16"`` is not simulated: it writes an ONNX model whose weights (and, where ONNX Runtime's CPU provider
has half-precision kernels for every op, the computation) are float16. The model's inputs and outputs stay float32
(a Cast at each), so callers feed it as before. The result is checked against the float32 export before it is
returned.

``export="matmul_nbits"`` is real too: linear (MatMul/Gemm) weights are stored block-wise at 4 or 8 bits and run by
ONNX Runtime's ``MatMulNBits`` kernel (Gemm layers are first rewritten as MatMul + Add). It pays off for MatMul-heavy
models (transformers, MLPs); convolutions stay float32, and the result lists which layers run which kernel.

Nothing here imports torch at module import (the method registry lists methods without loading torch).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Generator, Literal

import numpy as np
from pydantic import Field

from ..core.artifact import ModelArtifact, export_onnx
from ..core.errors import WorkbenchError
from ..core.graph import LayerGraph
from ..core.methods import Estimate, Method, MethodParams, RunContext, per_layer
from ..core.progress import Progress
from .pruning import (WEIGHTED_OPS, _matches, _weighted_layers, editable_module, example_inputs, layer_values,
                      removed_unless_done, result_files, save_result)
from .quantize_int8 import _out_channels

SIMULATED_NOTE = ("simulated with fake quantization: runs as float; real integer kernels exist for int8 "
                  "(quantize.int8_static) and 4-bit weight-only MatMul (ONNX Runtime MatMulNBits)")
PACKED_NOTE = ("packed_size_bytes: the quantized weights packed at their bit widths plus one float32 scale per "
               "channel (per tensor: per layer) and, when asymmetric, one zero point each; estimated for a file "
               "that stores them so, not the size of the saved float model")
FP16_TOLERANCE = 1e-2  # largest |fp16 - fp32| output difference accepted, relative to the outputs' range


class BitWidthParams(MethodParams):
    weight_bits: int = per_layer(4, ge=2, le=8, description=(
        "Bits per weight of every convolution and linear layer (2-8). Can be set per layer, e.g. 8 bits for a "
        "sensitive layer."))
    activation_bits: int = Field(8, ge=2, le=8, description=(
        "Bits of the layer inputs, simulated with dynamic per-tensor fake quantization when below 8; 8 leaves "
        "activations untouched."))
    granularity: Literal["per_channel", "per_tensor"] = Field("per_channel", description=(
        "per_channel: one scale per output channel (much more accurate at low bit widths); per_tensor: one scale "
        "per layer."))
    symmetric: bool = Field(True, description=(
        "Symmetric range around zero (no zero point); off: an asymmetric min-max range with a zero point."))
    export: Literal["fake_quant", "fp16", "matmul_nbits"] = Field("fake_quant", description=(
        "fake_quant: a float PyTorch model carrying the low-bit rounding error (simulated); fp16: a real "
        "half-precision ONNX model (weight_bits and activation_bits do not apply); matmul_nbits: a real ONNX model "
        "whose linear (MatMul/Gemm) weights run in ONNX Runtime's block-wise 4- or 8-bit MatMulNBits kernel "
        "(weight_bits 4 or 8; convolutions stay float32)."))
    block_size: int = Field(32, ge=16, le=256, description=(
        "matmul_nbits: weights per quantization block along the input dimension (a power of two, 16-256); "
        "smaller blocks are more accurate and a little larger."))


# ---- quantize-dequantize ----------------------------------------------------------------------------------------
def channel_axis(module) -> int:
    """The output-channel axis of a layer's weight (1 for transposed convolutions, else 0)."""
    import torch.nn as nn

    return 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0


def fake_quantize(weight, bits: int, per_channel: bool = True, symmetric: bool = True, axis: int = 0):
    """``weight`` quantized to ``bits`` and dequantized again; returns (tensor, number of scales).

    Symmetric: scale = max|w| / (2^(b-1) - 1), integers in [-(2^(b-1) - 1), 2^(b-1) - 1] (the narrow range, so
    zero is exact and the grid is symmetric). Asymmetric: scale = (max - min) / (2^b - 1) with an integer zero
    point, integers in [0, 2^b - 1]. Per channel, the range is taken over every axis but ``axis``.
    """
    import torch

    w = weight.detach().float()
    if per_channel and w.ndim > 1:
        dims = [d for d in range(w.ndim) if d != axis]
        shape = [1] * w.ndim
        shape[axis] = w.shape[axis]
        lo = w.amin(dim=dims).reshape(shape)
        hi = w.amax(dim=dims).reshape(shape)
        count = int(w.shape[axis])
    else:
        lo, hi, count = w.min(), w.max(), 1
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = torch.maximum(torch.maximum(hi.abs(), lo.abs()) / qmax, torch.tensor(tiny))
        q = torch.clamp(torch.round(w / scale), -qmax, qmax)
        out = q * scale
    else:
        qmax = 2 ** bits - 1
        lo, hi = torch.minimum(lo, torch.zeros(())), torch.maximum(hi, torch.zeros(()))  # zero stays exact
        scale = torch.maximum((hi - lo) / qmax, torch.tensor(tiny))
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(w / scale) + zero, 0, qmax)
        out = (q - zero) * scale
    return out.to(weight.dtype), count


def packed_bytes(numel: int, bits: int, scales: int, symmetric: bool) -> int:
    """Bytes of ``numel`` weights packed at ``bits`` plus float32 scales (and 1-byte zero points if asymmetric)."""
    return math.ceil(numel * bits / 8) + scales * (4 + (0 if symmetric else 1))


class InputFakeQuant:
    """A forward pre-hook that fake-quantizes a layer's input per tensor with its dynamic (per batch) range.

    A module-level class, not a closure, so the module saved beside the exported program still pickles.
    """

    def __init__(self, bits: int, symmetric: bool) -> None:
        self.bits, self.symmetric = bits, symmetric

    def __call__(self, module, args):
        x = args[0]
        return (fake_quantize(x, self.bits, per_channel=False, symmetric=self.symmetric)[0], *args[1:])


# ---- overrides ---------------------------------------------------------------------------------------------------
# ---- fp16 ONNX -----------------------------------------------------------------------------------------------------
def to_fp16(model, compute: bool = True) -> None:
    """Convert an fp32 ONNX model to float16 in place; the graph's inputs and outputs stay float32.

    ``compute``: every float initializer and Constant becomes float16 and Casts sit at the graph inputs and
    outputs, so the whole graph computes in half precision. Otherwise only the weights are stored as float16, each
    followed by a Cast to float32 (half the file, float32 arithmetic: for runtimes without fp16 kernels).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    floats = [t for t in graph.initializer if t.data_type == TensorProto.FLOAT]
    del graph.value_info[:]  # stale element types; ONNX Runtime re-infers them
    if not compute:
        casts = []
        for t in floats:
            half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name + "_fp16")
            t.CopyFrom(half)
            casts.append(helper.make_node("Cast", [half.name], [half.name[:-len("_fp16")]], to=TensorProto.FLOAT,
                                          name=half.name + "_cast"))
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        return
    for t in floats:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16),
                                                        attr.t.name))
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    renames: dict[str, str] = {}
    head = []
    for vi in graph.input:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            renames[vi.name] = vi.name + "_fp16"
            head.append(helper.make_node("Cast", [vi.name], [vi.name + "_fp16"], to=TensorProto.FLOAT16,
                                         name=vi.name + "_to_fp16"))
    tail = []
    for vi in graph.output:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            renames[vi.name] = vi.name + "_fp16"
            tail.append(helper.make_node("Cast", [vi.name + "_fp16"], [vi.name], to=TensorProto.FLOAT,
                                         name=vi.name + "_to_fp32"))
    outputs = {vi.name for vi in graph.output if vi.name in renames}
    for node in graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames[o] if o in outputs else o for o in node.output]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def fp16_export(artifact: ModelArtifact, path: Path, tmp: Path, log) -> tuple[ModelArtifact, dict[str, Any]]:
    """Export ``artifact`` to a float16 ONNX file at ``path``, checked in ONNX Runtime against the fp32 export."""
    import onnx

    fp32 = export_onnx(artifact, tmp / "fp32.onnx")
    x = np.random.default_rng(0).standard_normal((2, *artifact.input_shapes[0][1:])).astype(np.float32)
    reference = _run_onnx(fp32.path, x)
    span = float(np.abs(reference).max()) or 1.0
    last_error = ""
    for compute in (True, False):
        model = onnx.load(str(fp32.path))
        to_fp16(model, compute=compute)
        candidate = tmp / f"fp16_{int(compute)}.onnx"
        onnx.save(model, str(candidate))
        try:
            out = _run_onnx(candidate, x)
        except Exception as exc:  # noqa: BLE001 - no fp16 kernel for some op here: fall back to fp16 storage
            last_error = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            log(f"quantize.bits: ONNX Runtime (CPU) cannot compute this model in float16 ({last_error}); "
                "storing the weights in float16 and computing in float32")
            continue
        diff = float(np.abs(out.astype(np.float32) - reference).max())
        if diff > FP16_TOLERANCE * max(1.0, span):
            last_error = f"outputs differ from float32 by {diff:.3g}"
            log(f"quantize.bits: float16 computation {last_error}; storing the weights in float16 instead")
            continue
        part = path.with_suffix(".part.onnx")
        shutil.copyfile(candidate, part)
        part.replace(path)
        info = {"fp16_compute": compute, "max_abs_diff_vs_fp32": diff, "fp32_onnx_bytes": fp32.path.stat().st_size}
        return ModelArtifact(path=path, format="onnx", inputs=fp32.inputs), info
    raise WorkbenchError(f"quantize.bits: the float16 export does not run correctly in ONNX Runtime ({last_error})",
                         "use export=fake_quant, or quantize.int8_static for a real smaller model")


# ---- 4/8-bit weight-only MatMul (ONNX Runtime MatMulNBits) ----------------------------------------------------------
NBITS_NOTE = ("real: linear-layer weights stored block-wise at weight_bits and run by ONNX Runtime's MatMulNBits "
              "kernel; every other op (convolutions included) stays float32")


def gemm_to_matmul(model) -> int:
    """Rewrite each Gemm with a constant weight as MatMul (+ Add of the bias) so MatMulNBits can take it.

    alpha is folded into the weight and beta into the bias; a Gemm that transposes its data input, shares its weight
    or takes a weight or bias computed at run time is left alone. Returns how many were rewritten.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = inits.get(node.input[2]) if has_bias else None
        if weight is None or attrs.get("transA", 0) or users.get(weight.name, 0) != 1 or (has_bias and bias is None):
            nodes.append(node)  # not a plain linear layer with a constant weight and bias
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        w = (w.T if attrs.get("transB", 0) else w) * float(attrs.get("alpha", 1.0))
        weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), weight.name))
        name = node.name or node.output[0]
        if bias is None:
            nodes.append(helper.make_node("MatMul", [node.input[0], weight.name], list(node.output), name=name))
        else:
            beta = float(attrs.get("beta", 1.0))
            if beta != 1.0:
                scaled = numpy_helper.to_array(bias).astype(np.float32) * beta
                bias.CopyFrom(numpy_helper.from_array(scaled, bias.name))
            product = node.output[0] + "_matmul"
            nodes.append(helper.make_node("MatMul", [node.input[0], weight.name], [product], name=name))
            nodes.append(helper.make_node("Add", [product, bias.name], list(node.output), name=name + "_bias"))
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


def excluded_nodes(path: Path, overrides: dict[str, dict[str, Any]]) -> list[str]:
    """ONNX node names under the layers given a per-layer override: they stay float32 (one width per model here).

    Layer names are module paths (``classifier.1``); exported node names carry them as ``/classifier/classifier.1/…``
    scopes or as the name itself.
    """
    import onnx

    keys = [k for k, v in overrides.items() if v]
    names = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node]
    return [n for n in names if any(n == k or n.startswith(k + ".") or f"/{k}/" in n + "/" for k in keys)]


def nbits_export(fp32_path: Path, path: Path, bits: int, block_size: int, symmetric: bool,
                 exclude: list[str]) -> dict[str, Any]:
    """Quantize the linear weights of an ONNX file to ``bits`` with MatMulNBits; returns what runs where."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    gemm_to_matmul(model)
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=symmetric,
                                     accuracy_level=4 if bits == 4 else None, nodes_to_exclude=list(exclude))
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    out = quantizer.model.model
    real = [n.name for n in out.graph.node if n.op_type == "MatMulNBits"]
    constants = {t.name for t in out.graph.initializer}
    still_float = [n.name for n in out.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
                   and n.input[1] in constants]
    if not real:
        raise WorkbenchError("quantize.bits: the model has no linear layer with a constant weight that MatMulNBits "
                             "can take" + (f" (excluded: {', '.join(exclude)})" if exclude else ""),
                             "use export=fp16, or quantize.int8_static for convolutional models")
    part = path.with_suffix(".part.onnx")
    onnx.save(out, str(part))
    part.replace(path)
    heavy = sorted({n.op_type for n in out.graph.node if n.op_type in ("Conv", "ConvTranspose")}
                   | {f"{n.op_type} between activations" for n in out.graph.node
                      if n.op_type in ("MatMul", "Gemm") and n.input[1] not in constants})
    return {"nbits_layers": real, "float_linear_layers": still_float, "float_heavy_ops": heavy}


# ---- the method ----------------------------------------------------------------------------------------------------
class BitWidthQuantization(Method):
    id = "quantize.bits"
    label = "Low-bit quantization (2-8 bit simulated; real fp16 and 4/8-bit MatMul)"
    kind = "quantize"
    description = ("Shows the accuracy cost and packed size of 2- to 8-bit weights, uniform or mixed per layer, by "
                   "fake quantization (the model still runs as float). export=fp16 writes a real half-precision "
                   "ONNX model; export=matmul_nbits a real ONNX model whose linear layers run 4- or 8-bit weights "
                   "in ONNX Runtime's MatMulNBits kernel.")
    Params = BitWidthParams
    needs_data = False
    input_formats = frozenset({"torch", "onnx"})

    def estimate(self, graph: LayerGraph, params: MethodParams,
                 overrides: dict[str, dict[str, Any]] | None = None) -> Estimate:
        p: BitWidthParams = params  # type: ignore[assignment]
        if p.export == "fp16":
            return Estimate(params=graph.params, macs=graph.macs, size_bytes=2 * graph.params + 400 * len(graph.nodes),
                            notes=["estimated from the layer graph", "fp16: every weight in 2 bytes (real, runs in "
                                   "ONNX Runtime); MACs unchanged"])
        overrides = overrides or {}
        if p.export == "matmul_nbits":
            size = 0
            for node in graph.nodes:
                kept = any(_matches(node, [k]) for k in overrides)
                if node.op_type in ("Gemm", "MatMul") and node.params > 0 and not kept:
                    blocks = math.ceil(node.params / p.block_size)
                    size += math.ceil(node.params * p.weight_bits / 8) + 4 * blocks + (0 if p.symmetric else blocks)
                else:
                    size += 4 * node.params
            return Estimate(params=graph.params, macs=graph.macs, size_bytes=max(1, size), notes=[
                "estimated from the layer graph", f"size: linear weights at {p.weight_bits} bits in blocks of "
                f"{p.block_size} with a float32 scale each; layers with a per-layer override stay float32",
                NBITS_NOTE])
        size = 0
        for node in graph.nodes:
            if node.op_type in WEIGHTED_OPS and node.params > 0:
                bits = next((int(v["weight_bits"]) for k, v in overrides.items()
                             if "weight_bits" in v and _matches(node, [k])), p.weight_bits)
                channels = _out_channels(node) if p.granularity == "per_channel" else 1
                size += packed_bytes(node.params, bits, max(1, channels), p.symmetric)
            else:
                size += 4 * node.params
        return Estimate(params=graph.params, macs=graph.macs, size_bytes=max(1, size), notes=[
            "estimated from the layer graph",
            f"size: convolution/linear weights packed at {p.weight_bits} bits (per-layer overrides applied) plus "
            "scales; other parameters float32",
            SIMULATED_NOTE, "MACs unchanged; the saved model is float32 and runs no faster"])

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        p: BitWidthParams = params  # type: ignore[assignment]
        self.check_accepts(artifact)
        if p.export == "fp16":
            return (yield from self._run_fp16(artifact, p, ctx))
        if p.export == "matmul_nbits":
            return (yield from self._run_nbits(artifact, p, ctx))
        with removed_unless_done() as written:
            yield Progress(0.0, "loading the model")
            import torch

            model = editable_module(self.id, artifact).eval()
            examples = example_inputs(artifact)
            layers = _weighted_layers(model)
            bits = {name: p.weight_bits for name in layers}
            graph = artifact.graph() if ctx.overrides and artifact.format == "onnx" else None  # overrides: ONNX names
            bits.update(layer_values(self, model, layers, ctx.overrides, "weight_bits", graph, ctx.log))
            ctx.check()
            per_channel = p.granularity == "per_channel"
            packed = 0
            quantized_numel = 0
            with torch.no_grad():
                for i, (name, layer) in enumerate(layers.items()):
                    if i % 8 == 0:
                        yield Progress(0.1 + 0.5 * i / max(1, len(layers)), f"quantizing {name} to {bits[name]} bits")
                        ctx.check()
                    q, scales = fake_quantize(layer.weight, bits[name], per_channel, p.symmetric,
                                              channel_axis(layer))
                    layer.weight.copy_(q)
                    packed += packed_bytes(layer.weight.numel(), bits[name], scales, p.symmetric)
                    quantized_numel += layer.weight.numel()
                    if p.activation_bits < 8:
                        layer.register_forward_pre_hook(InputFakeQuant(p.activation_bits, p.symmetric))
            ctx.check()
            total = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers()
                                                                      if t.is_floating_point())
            other = total - quantized_numel
            meta = {"method": self.id, "params": p.model_dump(), "overrides": dict(ctx.overrides),
                    "weight_bits": bits, "activation_bits": p.activation_bits, "simulated": True,
                    "packed_size_bytes": packed, "fp32_weight_bytes": 4 * quantized_numel,
                    "packed_total_bytes": packed + 4 * other,
                    "packed_size_note": PACKED_NOTE + "; packed_total_bytes adds the other parameters and buffers "
                                                      "(biases, normalisation) as float32",
                    "note": SIMULATED_NOTE}
            yield Progress(0.7, "saving")
            written += result_files(artifact, ctx, "lowbit")
            result = save_result(model, examples, artifact, ctx, "lowbit", meta)
            mixed = sorted(set(bits.values()))
            ctx.log(f"quantize.bits: {len(layers)} layers at {'/'.join(map(str, mixed))} bits; weights packed "
                    f"{packed / 1e3:.1f} kB vs {4 * quantized_numel / 1e3:.1f} kB float32 (estimated). "
                    + SIMULATED_NOTE)
            yield Progress(1.0, "done")
            return result

    def _run_nbits(self, artifact: ModelArtifact, p: BitWidthParams,
                   ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        if p.weight_bits not in (4, 8):
            raise WorkbenchError(f"quantize.bits: MatMulNBits runs 4- or 8-bit weights, not {p.weight_bits}",
                                 "set weight_bits to 4 or 8, or use export=fake_quant to simulate other widths")
        if p.block_size & (p.block_size - 1):
            raise WorkbenchError(f"quantize.bits: block_size {p.block_size} is not a power of two",
                                 "use 16, 32, 64, 128 or 256")
        yield Progress(0.0, "exporting to ONNX")
        with tempfile.TemporaryDirectory(prefix="workbench-nbits-", ignore_cleanup_errors=True) as folder, \
                removed_unless_done() as written:
            tmp = Path(folder)
            fp32 = export_onnx(artifact, tmp / "fp32.onnx")
            ctx.check()
            exclude = excluded_nodes(fp32.path, ctx.overrides)
            yield Progress(0.3, f"quantizing linear weights to {p.weight_bits} bits (MatMulNBits)")
            final = ctx.output_path(f"int{p.weight_bits}_matmul", ".onnx")
            written += [final, final.with_suffix(".part.onnx")]
            info = nbits_export(fp32.path, final, p.weight_bits, p.block_size, p.symmetric, exclude)
            ctx.check()
            yield Progress(0.8, "checking it in ONNX Runtime against float32")
            x = (ctx.data.calibration.x[:64] if ctx.data is not None else
                 np.random.default_rng(0).standard_normal((8, *artifact.input_shapes[0][1:])).astype(np.float32))
            reference, out = _run_onnx(fp32.path, x), _run_onnx(final, x)
            diff = float(np.abs(out - reference).max())
            agree = float((out.argmax(1) == reference.argmax(1)).mean()) if out.ndim == 2 else None
            result = ModelArtifact(path=final, format="onnx", inputs=fp32.inputs)
            result.meta = {"method": self.id, "params": p.model_dump(), "overrides": dict(ctx.overrides),
                           "simulated": False, **info, "max_abs_diff_vs_fp32": diff, "top1_agreement_vs_fp32": agree,
                           "checked_on": len(x), "fp32_onnx_bytes": fp32.path.stat().st_size, "note": NBITS_NOTE}
            ctx.log(f"quantize.bits: {len(info['nbits_layers'])} linear layers run as real {p.weight_bits}-bit "
                    f"MatMulNBits, {len(info['float_linear_layers'])} stay float32; still float: "
                    f"{', '.join(info['float_heavy_ops']) or 'no heavy ops'}. File {result.size_bytes / 1e3:.1f} kB "
                    f"vs {result.meta['fp32_onnx_bytes'] / 1e3:.1f} kB float32; max output difference {diff:.3g}"
                    + (f", top-1 agreement {100 * agree:.1f} % on {len(x)} inputs" if agree is not None else ""))
            yield Progress(1.0, "done")
            return result

    def _run_fp16(self, artifact: ModelArtifact, p: BitWidthParams,
                  ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        yield Progress(0.0, "exporting to ONNX")
        with tempfile.TemporaryDirectory(prefix="workbench-fp16-", ignore_cleanup_errors=True) as folder, \
                removed_unless_done() as written:
            ctx.check()
            yield Progress(0.2, "converting to float16 and checking it in ONNX Runtime")
            final = ctx.output_path("fp16", ".onnx")
            written += [final, final.with_suffix(".part.onnx")]
            result, info = fp16_export(artifact, final, Path(folder), ctx.log)
            ctx.check()
            result.meta = {"method": self.id, "params": p.model_dump(), "simulated": False, **info,
                           "note": "real float16 weights" + (" and computation" if info["fp16_compute"] else
                                                             " (computed in float32)")
                                   + "; weight_bits/activation_bits do not apply to export=fp16"}
            ctx.log(f"quantize.bits: float16 ONNX {result.size_bytes / 1e3:.1f} kB vs "
                    f"{info['fp32_onnx_bytes'] / 1e3:.1f} kB float32; max output difference "
                    f"{info['max_abs_diff_vs_fp32']:.2g}")
            yield Progress(1.0, "done")
            return result
