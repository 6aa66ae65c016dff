"""Int8 quantization with ONNX Runtime: static (calibrated) and dynamic, each reporting integer-kernel coverage.

Users' first complaint about int8 is "it is slower than fp32". That happens when ONNX Runtime cannot run the
quantized layers as integer kernels and falls back to float (dequantize, float op, quantize). So after quantizing,
both methods open the result the way it will be deployed (all graph optimizations on), count the compute ops that
run as integer kernels and those left in float, store the counts in the artifact's ``meta`` and name the float ones
in the log.

Defaults (measured on this project's x86 machine with AVX512-VNNI; ``tests/benchmarks/bench_quantize.py``):

* QDQ format, uint8 activations with int8 weights (U8S8), per-channel weights. ORT fuses QDQ into ``QLinearConv``
  and friends; int8 activations (S8S8) ran 1.6-2.3x slower than U8S8 here. ``reduce_range`` (7-bit weights) is only
  needed on x86 without VNNI, where U8S8 products can saturate.
* A convolution that reads a model input whose channel count is not a multiple of 4 (an RGB or greyscale stem)
  gets a zero-filled extra input channel (a ``Pad`` before it and a zero weight slice). ORT's fast symmetric
  integer convolution needs input channels in multiples of 4; otherwise it falls back to im2col, which ran the
  MobileNetV2 stem 2-3x slower than fp32 and cost MobileNetV2 about 13 % of its int8 speed-up. The result is
  numerically unchanged (the extra channel meets zero weights). ``pad_stem_channels=False`` turns it off.
* All-zero int32 zero points of the bias ``DequantizeLinear`` nodes are dropped (they are optional in ONNX and
  zero by definition); it saves ~2 % of a MobileNetV2 file and changes nothing at run time. The quantizer's long
  generated tensor names are shortened and shape annotations dropped: in the 107 k-parameter demo they took the
  file from 34 % to 42 % of fp32.
* A layer kept in float by a per-layer override reads its input through an explicit ``(x - zero_point) * scale``
  rather than a ``DequantizeLinear``: ONNX Runtime re-quantizes (per tensor) any float Conv/Gemm fed by a
  DequantizeLinear when it loads the model, so the override would otherwise be silently undone.

Dynamic quantization suits MatMul/Gemm-heavy models (transformers, MLPs). On convolution nets ORT's ``ConvInteger``
path ran MobileNetV2 about 10x slower than fp32 here, so both ``estimate`` and ``run`` warn about it.
"""

from __future__ import annotations

import copy
import io
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Generator, Literal

import numpy as np
from pydantic import Field, ValidationError

from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.data import ArrayData, check_fits
from workbench.core.errors import WorkbenchError
from workbench.core.graph import LayerGraph
from workbench.core.methods import Estimate, Method, MethodParams, RunContext, per_layer
from workbench.core.progress import Cancelled, Progress

# Compute ops (what dominates latency) as they appear in ONNX Runtime's optimized graph.
FLOAT_COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedGemm", "FusedMatMul",
                               "NhwcFusedConv", "NhwcConv", "FusedMatMulActivation"})
INTEGER_COMPUTE_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm",
                                 "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearConvTranspose",
                                 "QAttention", "DynamicQuantizeLSTM", "NhwcQLinearConv", "MatMulInteger16"})
# Layers the estimate treats as quantized (their weights become int8).
STATIC_WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
DYNAMIC_WEIGHT_OPS = frozenset({"Conv", "Gemm", "MatMul", "Gather", "Attention", "LSTM"})
_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                          "QuantizeLinear", "DequantizeLinear"})
_CALIBRATION_BUDGET = 256 << 20  # bytes of intermediate tensors held per calibration batch
_CONV_HEAVY = 0.5
CONV_HEAVY_NOTE = ("conv nets run slower with dynamic quantization (measured ~10× slower here); "
                   "use quantize.int8_static")


# ---- parameters ----------------------------------------------------------------------------------------------
class StaticInt8Params(MethodParams):
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="How activation ranges are chosen from the calibration data: minmax (full range), "
                              "entropy (KL-divergence threshold) or percentile (clip outliers).")
    percentile: float = Field(99.99, ge=90, le=100,
                              description="Percentile of absolute activation values kept (calibration=percentile).")
    calibration_samples: int = Field(256, ge=8, le=4096,
                                     description="Number of calibration samples run through the model.")
    per_channel: bool = Field(True, description="One weight scale per output channel (more accurate, needed for "
                                                "depthwise convolutions) instead of one per tensor.")
    activation_type: Literal["auto", "uint8", "int8"] = Field(
        "auto", description="Activation data type. auto = uint8 (U8S8 with int8 weights), the combination ONNX "
                            "Runtime runs as fused integer kernels on x86.")
    reduce_range: Literal["auto", "on", "off"] = Field(
        "auto", description="Quantize weights to 7 bits to avoid saturation in U8S8 kernels. auto = on when the "
                            "x86 CPU lacks VNNI (avx512_vnni / avx_vnni), off otherwise.")
    quant_format: Literal["qdq", "qoperator"] = Field(
        "qdq", description="qdq: QuantizeLinear/DequantizeLinear around float ops (portable; ONNX Runtime fuses "
                           "them into integer kernels); qoperator: integer operators (QLinearConv, ...) directly.")
    pad_stem_channels: bool = Field(
        True, description="Give a convolution that reads a model input a zero extra input channel (e.g. RGB 3 → 4) "
                          "so ONNX Runtime uses its fast integer kernel; the results are unchanged.")
    quantize: bool = per_layer(True, description="Quantize this layer; false keeps it in float.")


class DynamicInt8Params(MethodParams):
    weight_type: Literal["int8", "uint8"] = Field("int8", description="Data type of the quantized weights.")
    per_channel: bool = Field(False, description="One weight scale per output channel instead of one per tensor.")
    reduce_range: Literal["auto", "on", "off"] = Field(
        "auto", description="Quantize weights to 7 bits to avoid saturation in U8S8 kernels. auto = on when the "
                            "x86 CPU lacks VNNI (avx512_vnni / avx_vnni), off otherwise.")
    quantize: bool = per_layer(True, description="Quantize this layer; false keeps it in float.")


# ---- CPU -----------------------------------------------------------------------------------------------------
def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def has_vnni() -> bool:
    """Whether this CPU has x86 VNNI (8-bit dot products without the U8S8 saturation risk)."""
    return bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


def resolve_reduce_range(choice: str) -> bool:
    if choice != "auto":
        return choice == "on"
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    return x86 and not has_vnni()


# ---- estimates -----------------------------------------------------------------------------------------------
def _out_channels(node) -> int:
    shape = node.output_shapes[0] if node.output_shapes else None
    if not shape:
        return 0
    if node.op_type in ("Conv", "ConvTranspose") and len(shape) > 1:
        return int(shape[1] or 0)
    return int(shape[-1] or 0)


def _int8_size(graph: LayerGraph, weight_ops: frozenset[str]) -> int:
    """Bytes after quantizing the weights of ``weight_ops`` layers to int8, from counts alone.

    Quantized layers: 1 byte a weight plus, per output channel, an int32 bias and the scales (13 bytes).
    BatchNormalization folds into the preceding convolution on export: 4 bytes a channel. Everything else stays
    float32. Graph structure (names, Q/DQ nodes) costs a few hundred bytes per layer.
    """
    size = 0
    for node in graph.nodes:
        if node.op_type in weight_ops and node.params:
            size += node.params + 13 * _out_channels(node)
        elif node.op_type == "BatchNormalization":
            size += node.params  # 4 params a channel -> one 4-byte bias a channel
        else:
            size += 4 * node.params
    return size + 400 * len(graph.nodes) + 4096


def conv_mac_share(graph: LayerGraph) -> float:
    total = graph.macs
    conv = sum(n.macs or 0 for n in graph.nodes if n.op_type in ("Conv", "ConvTranspose"))
    return conv / total if total else 0.0


# ---- shared machinery ----------------------------------------------------------------------------------------
class _MuteThread(io.TextIOBase):
    """A stand-in for sys.stdout that drops what one thread prints and passes everything else through.

    ONNX Runtime's histogram calibrators print progress with print(); on the command line that would corrupt
    ``--json`` output. Other threads keep printing normally.
    """

    def __init__(self, target, thread: threading.Thread) -> None:
        self.target, self.thread = target, thread

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if threading.current_thread() is self.thread:
            return len(text)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


def _run_in_thread(fn: Callable[[], Any], status: Callable[[], Progress], ctx: RunContext,
                   stop: threading.Event) -> Generator[Progress, None, Any]:
    """Run a blocking call in a worker thread, yielding progress while it works.

    Cancelling sets ``stop`` (the calibration reader raises Cancelled at its next sample); the worker is always
    joined before this returns or raises, so no file is written behind the caller's back.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="int8-quantize", daemon=True)
    original = sys.stdout
    muted = _MuteThread(original, worker)
    sys.stdout = muted
    worker.start()
    last = None
    try:
        while worker.is_alive():
            worker.join(0.1)
            if ctx.cancelled:
                stop.set()
                continue
            current = status()
            if current != last:
                last = current
                yield current
    finally:
        if worker.is_alive():  # closed or failed while the worker runs: stop it at its next sample
            stop.set()
            worker.join()
        if sys.stdout is muted:
            sys.stdout = original
    if "error" in box:
        raise box["error"]
    ctx.check()
    return box.get("value")


def _onnx_dtype(elem_type: int):
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _per_sample_bytes(model) -> int:
    """Upper bound of the intermediate tensors of one sample (shapes from inference; symbolic dims count 1)."""
    total = 0
    for vi in model.graph.value_info:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        numel = 1
        for d in tt.shape.dim:
            numel *= d.dim_value if d.dim_value > 0 else 1
        try:
            total += numel * _onnx_dtype(tt.elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            total += numel * 4
    return total


def _make_reader(x: np.ndarray, input_name: str, batch: int, fixed: bool, ctx: RunContext, stop: threading.Event):
    """A CalibrationDataReader over ``x`` in batches (only full ones when the model's batch is ``fixed``).

    It raises Cancelled when asked to stop; ``done`` counts the samples handed out (for progress).
    """
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.starts = list(range(0, len(x) - batch + 1 if fixed else len(x), batch))
            self.window = (0, len(self.starts))
            self.pos = 0
            self.done = 0

        def __len__(self) -> int:
            return len(self.starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.window = (start_index, min(end_index, len(self.starts)))
            self.pos = start_index

        def get_next(self):
            if stop.is_set() or ctx.cancelled:
                raise Cancelled()
            if self.pos >= self.window[1]:
                return None
            start = self.starts[self.pos]
            self.pos += 1
            self.done = min(start + batch, len(x))
            return {input_name: x[start:start + batch]}

    return Reader()


def _prepare_onnx(artifact: ModelArtifact, tmp: Path, ctx: RunContext, pre_process: bool = True
                  ) -> Generator[Progress, None, Path]:
    """The artifact as an ONNX file in ``tmp`` (exported from PyTorch when needed), pre-processed when possible."""
    if artifact.format == "onnx":
        source = artifact.path
    else:
        yield Progress(0.02, "exporting to ONNX")
        source = export_onnx(artifact, tmp / "fp32.onnx").path
        ctx.check()
    if not pre_process:
        return source
    yield Progress(0.1, "preparing the model (shape inference, optimization)")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tmp / "prepared.onnx"
    try:
        quant_pre_process(str(source), str(prepared))
    except Exception as exc:  # noqa: BLE001 - optional step: quantization works without it
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        ctx.log(f"pre-processing (shape inference + optimization) skipped: {reason}")
        prepared.unlink(missing_ok=True)
        return source
    ctx.check()
    return prepared


def _name_nodes(model) -> None:
    """Give unnamed nodes the names the layer graph uses (``OpType_index``) so they can be excluded."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _layer_choices(model_path: Path, inputs, default: bool, overrides: dict[str, dict[str, Any]],
                   params: MethodParams, ctx: RunContext) -> dict[str, bool]:
    """Per ONNX node: quantize or not, from ``params.quantize`` and the per-layer overrides.

    An override key may be an ONNX node name, a layer-graph name (``scope/OpType``) or a scope; a scope covers
    everything beneath it. The most specific key wins: node name, then scope/op, then the longest scope.
    """
    import onnx

    names = [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node]
    choice = {name: default for name in names}
    wanted = {key: fields for key, fields in overrides.items() if "quantize" in fields}
    for key, fields in overrides.items():
        others = sorted(set(fields) - set(type(params).per_layer_fields()))
        if others:
            ctx.log(f"override '{key}': {', '.join(others)} cannot be set per layer here (ignored)")
    if not wanted:
        return choice
    values = {}
    for key, fields in wanted.items():
        try:
            values[key] = type(params).model_validate({**params.model_dump(), "quantize": fields["quantize"]}).quantize
        except ValidationError:
            raise WorkbenchError(f"override '{key}': quantize must be true or false, not {fields['quantize']!r}",
                                 "set quantize to true or false for the layer") from None
    scopes: dict[str, tuple[str, str]] = {}
    try:
        graph = ModelArtifact(path=model_path, format="onnx", inputs=inputs).graph()
        scopes = {n.name: (n.scope, n.op_type) for n in graph.nodes}
    except Exception as exc:  # noqa: BLE001 - names still match without scopes
        ctx.log(f"layer scopes unavailable ({type(exc).__name__}); overrides match ONNX node names only")
    matched: set[str] = set()
    for name in names:
        scope, op = scopes.get(name, ("", ""))
        best, rank = None, -1
        for key in values:
            if key == name:
                r = 10_000
            elif scope and key == f"{scope}/{op}":
                r = 5_000
            elif scope and (scope == key or scope.startswith(key + ".")):
                r = len(key)
            else:
                continue
            if r > rank:
                best, rank = key, r
        if best is not None:
            choice[name] = values[best]
            matched.add(best)
    for key in values:
        if key not in matched:
            ctx.log(f"override '{key}' matches no layer of the model (ignored)")
    return choice


def _initializers(model) -> dict:
    return {t.name: t for t in model.graph.initializer}


def _unshare_initializers(model, node_names: set[str]) -> None:
    """Give float-kept nodes their own copies of initializers shared with quantized nodes.

    Exporters de-duplicate equal tensors (all-zero biases of fresh models). A shared initializer is quantized for
    the quantized user, and the float user would then read it through a DequantizeLinear at run time, which stops
    ONNX Runtime from pre-packing its weights.
    """
    inits = _initializers(model)
    users = Counter(t for n in model.graph.node for t in n.input if t in inits)
    for node in model.graph.node:
        if node.name not in node_names:
            continue
        for k, t in enumerate(node.input):
            if t in inits and users[t] > 1:
                clone = copy.deepcopy(inits[t])
                clone.name = f"{t}__{node.name}"
                model.graph.initializer.append(clone)
                node.input[k] = clone.name
                users[t] -= 1


def _pad_stem_channels(model, keep_float: set[str]) -> tuple[list[str], list[str]]:
    """Zero-pad the input channels of convolutions that read a model input to a multiple of 4.

    Returns (padded conv names, added Pad node names). Only 2-D, ungrouped convolutions with a constant weight.
    """
    from onnx import helper, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        return [], []
    graph = model.graph
    inits = _initializers(model)
    graph_inputs = {vi.name for vi in graph.input if vi.name not in inits}
    padded, pads = [], []
    new_nodes = []
    for node in graph.node:
        if (node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.name in keep_float
                or not node.input or node.input[0] not in graph_inputs or len(node.input) < 2
                or node.input[1] not in inits):
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = numpy_helper.to_array(inits[node.input[1]])
        cin = w.shape[1] if w.ndim == 4 else 0
        if attrs.get("group", 1) != 1 or w.ndim != 4 or cin % 4 == 0 or w.dtype != np.float32:
            new_nodes.append(node)
            continue
        extra = 4 - cin % 4
        w_pad = np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], axis=1)
        w_name = f"{node.input[1]}__pad{cin + extra}"
        graph.initializer.append(numpy_helper.from_array(w_pad, w_name))
        pads_name = f"{node.name}__pad_channels"
        graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64),
                                                         pads_name))
        padded_input = f"{node.input[0]}__pad{cin + extra}__{len(pads)}"
        pad_name = f"{node.name}/PadChannels"
        new_nodes.append(helper.make_node("Pad", [node.input[0], pads_name], [padded_input], name=pad_name))
        node.input[0] = padded_input
        node.input[1] = w_name
        new_nodes.append(node)
        padded.append(node.name)
        pads.append(pad_name)
    if padded:
        del graph.node[:]
        graph.node.extend(new_nodes)
        used = {t for n in graph.node for t in n.input}
        keep = [t for t in graph.initializer if t.name in used or t.name not in inits]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return padded, pads


def _strip_zero_bias_zero_points(model) -> int:
    """Drop all-zero int32 zero points of DequantizeLinear (optional input, zero by definition)."""
    from onnx import TensorProto, numpy_helper

    inits = _initializers(model)
    users = Counter(t for n in model.graph.node for t in n.input)
    dropped = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) != 3:
            continue
        zp = inits.get(node.input[2])
        if zp is None or zp.data_type != TensorProto.INT32 or numpy_helper.to_array(zp).any():
            continue
        users[node.input[2]] -= 1
        del node.input[2]
        dropped += 1
    if dropped:
        keep = [t for t in model.graph.initializer if t.name not in inits or users.get(t.name, 0) > 0
                or t.data_type != TensorProto.INT32]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return dropped


def _float_inputs_for_kept_layers(model, kept_float: set[str]) -> list[str]:
    """Feed layers kept in float through an explicit (x - zero_point) * scale instead of a DequantizeLinear.

    ONNX Runtime re-quantizes a float Conv/Gemm whose input comes from a DequantizeLinear at load time
    (``WeightBiasQuantization``: per-tensor int8 weights) and then fuses it with its neighbours' Q/DQ into an
    integer kernel, so a layer excluded from quantization would still run in int8. The same arithmetic spelled
    out with Cast, Sub and Mul is not a Q/DQ pattern: the layer stays float. Returns the layers changed.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = _initializers(model)
    producer = {t: n for n in graph.node for t in n.output}
    rewired: dict[str, str] = {}
    added, changed = [], []
    for node in graph.node:
        if node.name not in kept_float:
            continue
        for k, t in enumerate(node.input):
            dq = producer.get(t)
            if (dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits
                    or dq.input[1] not in inits or numpy_helper.to_array(inits[dq.input[1]]).size != 1):
                continue
            if t not in rewired:
                base = f"{t}__float"
                cast = helper.make_node("Cast", [dq.input[0]], [f"{base}_cast"], to=TensorProto.FLOAT,
                                        name=f"{base}_Cast")
                added.append(cast)
                value = f"{base}_cast"
                if len(dq.input) > 2 and dq.input[2] in inits:
                    zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32).reshape(())
                    graph.initializer.append(numpy_helper.from_array(zp, f"{base}_zero_point"))
                    added.append(helper.make_node("Sub", [value, f"{base}_zero_point"], [f"{base}_centred"],
                                                  name=f"{base}_Sub"))
                    value = f"{base}_centred"
                added.append(helper.make_node("Mul", [value, dq.input[1]], [base], name=f"{base}_Mul"))
                rewired[t] = base
            node.input[k] = rewired[t]
            changed.append(node.name)
    if added:
        # Insert each spelled-out dequantization right after the DequantizeLinear it replaces (topological order).
        order = []
        by_source = {}
        for n in added:
            by_source.setdefault(n.name.split("__float")[0], []).append(n)
        for n in graph.node:
            order.append(n)
            if n.op_type == "DequantizeLinear" and n.output[0] in rewired:
                order.extend(by_source.pop(n.output[0], []))
        del graph.node[:]
        graph.node.extend(order)
    return sorted(set(changed))


def _tensor_names(model) -> set[str]:
    g = model.graph
    return ({t for n in g.node for t in (*n.input, *n.output) if t} | {t.name for t in g.initializer}
            | {vi.name for vi in (*g.input, *g.output)})


def _compact(model, keep_tensors: set[str], keep_nodes: set[str]) -> None:
    """Drop shape annotations and give what the quantizer added short names.

    The quantizer names each Q/DQ tensor, scale and zero point after the full tensor path plus a suffix
    (``/features/features.1/conv/conv.0/conv.0.2/Clip_output_0_QuantizeLinear_Output``); in a small model those
    names outweigh the int8 weights' savings (the demo's file went from 42 % to 34 % of fp32). Tensor names that
    were in the float model and every original node name are kept; added Q/DQ nodes lose their names.
    """
    g = model.graph
    del g.value_info[:]
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep_tensors:
            return name
        if name not in mapping:
            candidate = f"_q{len(mapping)}"
            while candidate in keep_tensors:
                candidate += "_"
            mapping[name] = candidate
        return mapping[name]

    for node in g.node:
        for k, t in enumerate(node.input):
            node.input[k] = short(t)
        for k, t in enumerate(node.output):
            node.output[k] = short(t)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.name not in keep_nodes:
            node.name = ""
    for t in g.initializer:
        t.name = short(t.name)


def _layer_name(node_name: str, names: set[str], producer: dict[str, Any]) -> str:
    """The layer an optimized-graph node came from (ORT renames fused/re-laid-out nodes)."""
    clean = node_name
    while True:
        stripped = re.sub(r"(/\w*Fusion|_nchwc|_token_\d+|_fused\w*|_MatMul|_quant)$", "", clean)
        if stripped == clean:
            break
        clean = stripped
    if clean in names:
        return clean
    node = producer.get(clean)
    seen = 0
    while node is not None and node.op_type in _ACTIVATIONS and node.input and seen < 8:
        node = producer.get(node.input[0])
        seen += 1
    if node is not None and node.op_type in FLOAT_COMPUTE_OPS | INTEGER_COMPUTE_OPS:
        return node.name
    return clean


def integer_coverage(path: Path, tmp: Path, layer_names: set[str] | None = None) -> dict[str, Any]:
    """Count compute ops that run as integer kernels vs. float in ONNX Runtime's fully optimized graph.

    Float ops are named after the layer they came from (``layer_names``: the node names before quantizing).
    """
    import onnx
    import onnxruntime as ort

    optimized = tmp / "optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    options.log_severity_level = 3  # the NCHWc "hardware specific" notice is expected here
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(optimized))
    source = onnx.load(str(path), load_external_data=False)
    names = {n.name for n in source.graph.node} | (layer_names or set())
    producer = {t: n for n in source.graph.node for t in n.output}
    ops = Counter(n.op_type for n in opt.graph.node)
    integer = sum(c for op, c in ops.items() if op in INTEGER_COMPUTE_OPS)
    float_names = [_layer_name(n.name, names, producer) for n in opt.graph.node if n.op_type in FLOAT_COMPUTE_OPS]
    optimized.unlink(missing_ok=True)
    return {"integer_ops": integer, "float_compute_ops": len(float_names), "float_op_names": float_names[:20],
            "_float_names_all": float_names, "op_types": dict(sorted(ops.items()))}


def _report_coverage(cov: dict[str, Any], kept_float: set[str], ctx: RunContext, method_id: str) -> None:
    names = cov.pop("_float_names_all")
    ctx.log(f"{method_id}: {cov['integer_ops']} compute ops run as integer kernels, "
            f"{cov['float_compute_ops']} stay in float")
    if not names:
        return
    chosen = [n for n in names if n in kept_float]
    fallback = [n for n in names if n not in kept_float]
    if fallback:
        shown = ", ".join(fallback[:10]) + (f", … ({len(fallback) - 10} more)" if len(fallback) > 10 else "")
        ctx.log(f"warning: {len(fallback)} compute layer(s) fall back to float (no integer kernel): {shown}")
    if chosen:
        ctx.log(f"kept in float by per-layer override: {', '.join(chosen[:10])}"
                + (f", … ({len(chosen) - 10} more)" if len(chosen) > 10 else ""))


def _save(model, path: Path) -> None:
    import onnx

    large = model.ByteSize() > 1_800_000_000
    onnx.save(model, str(path), save_as_external_data=large, all_tensors_to_one_file=True,
              location=path.name + ".data" if large else None)


def _check_and_publish(part: Path, final: Path, tmp: Path, keep_tensors, keep_nodes, kept_float: set[str],
                       ctx: RunContext, method_id: str, fraction: float,
                       edit: Callable | None = None) -> Generator[Progress, None, dict[str, Any]]:
    """The last part of both int8 methods: reload the quantizer's output, ``edit`` it, compact and save it, count
    which layers run as integer kernels (logged), and move it into place; returns the coverage."""
    import onnx

    quantized = onnx.load(str(part))
    if edit is not None:
        edit(quantized)
    _compact(quantized, keep_tensors, keep_nodes)
    _save(quantized, part)
    del quantized
    ctx.check()
    yield Progress(fraction, "checking which layers run as integer kernels")
    cov = integer_coverage(part, tmp, keep_nodes)
    _report_coverage(cov, kept_float, ctx, method_id)
    ctx.check()
    _finish(part, final)
    return cov


def _coverage_meta(cov: dict[str, Any]) -> dict[str, Any]:
    """The integer-kernel coverage an int8 artifact's meta carries (the device check reads it)."""
    return {k: cov[k] for k in ("integer_ops", "float_compute_ops", "float_op_names", "op_types")}


def _finish(part: Path, final: Path) -> None:
    """Move the finished model (and any external data beside it) into place atomically."""
    data = part.with_name(part.name + ".data")
    if data.exists():
        os.replace(data, final.with_name(part.name + ".data"))
    os.replace(part, final)


# ---- static --------------------------------------------------------------------------------------------------
def _named_model(artifact: ModelArtifact, tmp: Path, ctx: RunContext):
    """The input as pre-processed ONNX with every node named, saved as ``tmp/named.onnx``; returns (path, model).

    A generator (pre-processing yields progress), shared by the static and dynamic paths.
    """
    import onnx

    prepared = yield from _prepare_onnx(artifact, tmp, ctx)
    model = onnx.load(str(prepared))
    _name_nodes(model)
    named = tmp / "named.onnx"
    _save(model, named)
    return named, model


class StaticInt8(Method):
    id = "quantize.int8_static"
    label = "Int8 quantization (static, calibrated)"
    kind = "quantize"
    description = ("ONNX Runtime static int8: weights and activations in int8, activation ranges calibrated on "
                   "sample data; reports how many layers run as integer kernels.")
    Params = StaticInt8Params
    needs_data = True
    input_formats = frozenset({"torch", "onnx"})

    def estimate(self, graph: LayerGraph, params: MethodParams) -> Estimate:
        quantized = sum(n.params for n in graph.nodes if n.op_type in STATIC_WEIGHT_OPS)
        notes = ["int8 weights; latency depends on integer-kernel coverage"]
        if graph.params and quantized < 0.5 * graph.params:
            notes.append(f"only {100 * quantized / graph.params:.0f} % of the parameters are in Conv/Gemm/MatMul "
                         "layers; the rest stay float")
        return Estimate(params=graph.params, macs=graph.macs, size_bytes=_int8_size(graph, STATIC_WEIGHT_OPS),
                        notes=notes)

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        assert isinstance(params, StaticInt8Params)
        self.check_accepts(artifact)
        x = self._calibration_inputs(artifact, params, ctx)
        reduce_range = resolve_reduce_range(params.reduce_range)
        vnni = has_vnni()
        activation = "uint8" if params.activation_type == "auto" else params.activation_type
        final = ctx.output_path("int8", ".onnx")
        tmp = Path(tempfile.mkdtemp(prefix=".int8-static-", dir=ctx.work_dir))
        part = tmp / "int8.part.onnx"
        try:
            ctx.check()
            yield Progress(0.0, "starting static int8 quantization")
            named, model = yield from _named_model(artifact, tmp, ctx)
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

            ctx.check()
            choice = _layer_choices(named, artifact.inputs, params.quantize, ctx.overrides, params, ctx)
            kept_float = {name for name, q in choice.items() if not q}
            if not any(choice.values()):
                raise WorkbenchError("no layer is left to quantize (quantize is false for every layer)",
                                     "set quantize to true for at least one layer")
            _unshare_initializers(model, kept_float)
            pads: list[str] = []
            if params.pad_stem_channels:
                padded, pads = _pad_stem_channels(model, kept_float)
                if padded:
                    ctx.log(f"padded the input channels of {', '.join(padded)} to a multiple of 4 "
                            "(ONNX Runtime's fast integer convolution needs that)")
            input_name = next(vi.name for vi in model.graph.input
                              if vi.name not in _initializers(model))
            batch, fixed = self._batch(model, len(x))
            keep_tensors, keep_nodes = _tensor_names(model), {n.name for n in model.graph.node}
            _save(model, named)
            del model
            ctx.check()

            stop = threading.Event()
            reader = _make_reader(x, input_name, batch, fixed, ctx, stop)
            used = min(len(reader) * batch, len(x))
            if not used:
                raise WorkbenchError(f"the model takes batches of exactly {batch} but there are only {len(x)} "
                                     "calibration samples", f"provide at least {batch} samples", artifact.path)
            ctx.log(f"calibrating with {used} samples ({params.calibration}), activations {activation}, weights "
                    f"int8{' per channel' if params.per_channel else ''}, reduce_range "
                    f"{'on' if reduce_range else 'off'} (CPU {'has' if vnni else 'lacks'} VNNI), "
                    f"{params.quant_format.upper()} format")
            if activation == "int8":
                ctx.log("note: int8 activations (S8S8) ran 1.6-2.3x slower than uint8 (U8S8) on x86 here, and ONNX "
                        "Runtime left more layers in float")
            method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                      "percentile": CalibrationMethod.Percentile}[params.calibration]
            extra: dict[str, Any] = {"CalibStridedMinMax": 1}  # one batch at a time: bounded memory
            if params.calibration == "percentile":
                extra["CalibPercentile"] = params.percentile
            exclude = sorted(kept_float) + pads
            include = [name for name, q in choice.items() if q] if not params.quantize else None

            def quantize() -> None:
                quantize_static(
                    str(named), str(part), reader,
                    quant_format=QuantFormat.QDQ if params.quant_format == "qdq" else QuantFormat.QOperator,
                    per_channel=params.per_channel, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, nodes_to_quantize=include, nodes_to_exclude=exclude or None,
                    calibrate_method=method, extra_options=extra)

            def status() -> Progress:
                done = min(reader.done, used)
                if done < used:
                    return Progress(0.15 + 0.65 * done / max(used, 1), f"calibrating: {done}/{used} samples")
                return Progress(0.82, "computing ranges and quantizing weights")

            yield Progress(0.15, f"calibrating: 0/{used} samples")
            yield from _run_in_thread(quantize, status, ctx, stop)
            ctx.check()

            def edit(model) -> None:
                _float_inputs_for_kept_layers(model, kept_float)
                _strip_zero_bias_zero_points(model)

            cov = yield from _check_and_publish(part, final, tmp, keep_tensors, keep_nodes, kept_float, ctx, self.id,
                                                0.9, edit)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        yield Progress(1.0, "done")
        meta = {"method": self.id, "params": params.model_dump(), **_coverage_meta(cov),
                "activation_type": activation, "reduce_range": reduce_range, "vnni": vnni,
                "calibration_samples_used": used,
                "kept_float": sorted(kept_float), "source": str(artifact.path)}
        return ModelArtifact(path=final, format="onnx", inputs=artifact.inputs, meta=meta)

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _calibration_inputs(self, artifact: ModelArtifact, params: StaticInt8Params, ctx: RunContext) -> np.ndarray:
        data = ctx.data
        if data is None:
            raise WorkbenchError("quantize.int8_static needs calibration data: pass --data demo or an .npz")
        if len(artifact.inputs) != 1:
            raise WorkbenchError(f"static int8 calibrates models with one input; this model has "
                                 f"{len(artifact.inputs)}", "use quantize.int8_dynamic", artifact.path)
        shape = tuple(artifact.input_shapes[0])
        check_fits(data, shape, str(artifact.path))
        calibration: ArrayData = data.calibration
        if len(calibration) < params.calibration_samples and len(data.train) > len(calibration):
            calibration = data.train  # the calibration split is a prefix of train: take more of it
        if tuple(calibration.x.shape[1:]) != shape[1:]:
            want = "x".join(map(str, shape[1:]))
            raise WorkbenchError(f"the calibration data '{calibration.name}' has samples of shape "
                                 f"{'x'.join(map(str, calibration.x.shape[1:]))} but the model takes {want}",
                                 f"provide calibration inputs of shape N x {want}", str(artifact.path))
        n = min(params.calibration_samples, len(calibration))
        if n == 0:
            raise WorkbenchError(f"the calibration data '{calibration.name}' is empty",
                                 "provide at least one calibration sample")
        if n < params.calibration_samples:
            ctx.log(f"calibration data has {n} samples (asked for {params.calibration_samples}); using {n}")
        dtype = np.dtype(artifact.inputs[0].dtype) if artifact.inputs[0].dtype else np.dtype(np.float32)
        return np.ascontiguousarray(calibration.x[:n], dtype=dtype)

    @staticmethod
    def _batch(model, samples: int) -> tuple[int, bool]:
        """Calibration batch and whether the model fixes it: its own batch size, else as many samples as fit
        the memory budget for intermediate tensors."""
        graph_input = next(vi for vi in model.graph.input if vi.name not in _initializers(model))
        dims = graph_input.type.tensor_type.shape.dim
        if dims and dims[0].dim_value > 0:
            return int(dims[0].dim_value), True
        per_sample = max(_per_sample_bytes(model), 1)
        return int(max(1, min(64, samples, _CALIBRATION_BUDGET // per_sample))), False


# ---- dynamic -------------------------------------------------------------------------------------------------
class DynamicInt8(Method):
    id = "quantize.int8_dynamic"
    label = "Int8 quantization (dynamic)"
    kind = "quantize"
    description = ("ONNX Runtime dynamic int8: weights in int8, activations quantized at run time; for "
                   "MatMul/Gemm-heavy models (transformers, MLPs). No calibration data needed.")
    Params = DynamicInt8Params
    needs_data = False
    input_formats = frozenset({"torch", "onnx"})

    def estimate(self, graph: LayerGraph, params: MethodParams) -> Estimate:
        notes = ["int8 weights, activations quantized at run time; latency depends on integer-kernel coverage"]
        if conv_mac_share(graph) > _CONV_HEAVY:
            notes.append(CONV_HEAVY_NOTE)
        return Estimate(params=graph.params, macs=graph.macs, size_bytes=_int8_size(graph, DYNAMIC_WEIGHT_OPS),
                        notes=notes)

    def run(self, artifact: ModelArtifact, params: MethodParams,
            ctx: RunContext) -> Generator[Progress, None, ModelArtifact]:
        assert isinstance(params, DynamicInt8Params)
        self.check_accepts(artifact)
        reduce_range = resolve_reduce_range(params.reduce_range)
        vnni = has_vnni()
        final = ctx.output_path("int8_dynamic", ".onnx")
        tmp = Path(tempfile.mkdtemp(prefix=".int8-dynamic-", dir=ctx.work_dir))
        part = tmp / "int8.part.onnx"
        try:
            ctx.check()
            yield Progress(0.0, "starting dynamic int8 quantization")
            named, model = yield from _named_model(artifact, tmp, ctx)
            from onnxruntime.quantization import QuantType, quantize_dynamic

            try:
                share = conv_mac_share(ModelArtifact(path=named, format="onnx", inputs=artifact.inputs).graph())
            except Exception:  # noqa: BLE001 - only for the warning
                share = 0.0
            if share > _CONV_HEAVY:
                ctx.log(f"warning: {100 * share:.0f} % of the MACs are convolutions: {CONV_HEAVY_NOTE}")
            ctx.check()
            choice = _layer_choices(named, artifact.inputs, params.quantize, ctx.overrides, params, ctx)
            kept_float = {name for name, q in choice.items() if not q}
            if not any(choice.values()):
                raise WorkbenchError("no layer is left to quantize (quantize is false for every layer)",
                                     "set quantize to true for at least one layer")
            _unshare_initializers(model, kept_float)
            # ORT's dynamic quantizer rewrites Gemm as MatMul + Add named <gemm>_MatMul / <gemm>_Add.
            gemms = {n.name for n in model.graph.node if n.op_type == "Gemm"}
            keep_tensors, keep_nodes = _tensor_names(model), {n.name for n in model.graph.node}
            _save(model, named)
            del model
            ctx.check()
            yield Progress(0.4, "quantizing weights")
            include = [name for name, q in choice.items() if q] if not params.quantize else None
            exclude = sorted(kept_float)

            def with_gemm_aliases(names: list[str] | None) -> list[str] | None:
                return None if names is None else names + [f"{n}_MatMul" for n in names if n in gemms]

            quantize_dynamic(str(named), str(part), per_channel=params.per_channel, reduce_range=reduce_range,
                             weight_type=QuantType.QInt8 if params.weight_type == "int8" else QuantType.QUInt8,
                             nodes_to_quantize=with_gemm_aliases(include),
                             nodes_to_exclude=with_gemm_aliases(exclude) or None)
            ctx.check()
            cov = yield from _check_and_publish(part, final, tmp, keep_tensors, keep_nodes, kept_float, ctx, self.id,
                                                0.8)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        yield Progress(1.0, "done")
        meta = {"method": self.id, "params": params.model_dump(), **_coverage_meta(cov),
                "activation_type": "uint8 (dynamic)", "reduce_range": reduce_range, "vnni": vnni,
                "conv_mac_share": round(share, 3), "kept_float": sorted(kept_float),
                "source": str(artifact.path)}
        return ModelArtifact(path=final, format="onnx", inputs=artifact.inputs, meta=meta)
