"""ONNX → an editable PyTorch module made of real ``nn`` layers, so PyTorch-only methods work on ONNX input.

Channel pruning needs ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d`` layers whose coupling Torch-Pruning can
trace (residual adds, concatenations, depthwise groups). :func:`onnx_to_torch` rebuilds the ONNX graph as a
``torch.fx.GraphModule``: weighted ops and activations become submodules named after the ONNX layers, everything
else becomes a call to a torch function. ``module.onnx_layers`` maps each ONNX node name (as the layer graph shows
it) to the submodule that replaced it, so per-layer settings given by ONNX layer name still find their layer.

The graph is converted for the bound input shapes: ``Shape`` of a tensor becomes a constant and every subgraph
computed from constants (the Shape→Gather→Unsqueeze→Concat→Reshape chains exporters write for ``flatten``) is
folded while converting. A reshape that keeps the leading (batch) dimension keeps it free, so the module still
runs at other batch sizes. An op outside the supported set stops the conversion with an error naming the node.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import WorkbenchError

REMEDY = "prune the PyTorch model or quantize instead"
# ops of an already quantized model: its float layers are gone, so there is nothing to convert and edit
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear", "MatMulNBits"})
_INT64_MAX = 2 ** 62  # Slice ends at or beyond this mean "to the end"


@dataclass
class _Dyn:
    """A tensor computed from the model inputs: its fx node and its value on the example input."""

    node: Any
    example: Any


class _Unsupported(Exception):
    """Raised inside an op converter; turned into a WorkbenchError naming the node."""


# ---- functions the generated module calls (module level, so a saved module can be loaded again) ----------------
def hard_sigmoid(x, alpha: float, beta: float):
    import torch

    return torch.clamp(x * alpha + beta, 0.0, 1.0)


def slice_along(x, axis: int, start: int, end: int | None, step: int):
    index = (slice(None),) * axis + (slice(start, end, step),)
    return x[index]


def reshape_keep_batch(x, rest: list[int]):
    """Reshape to (batch, *rest) where the batch is whatever the input has."""
    return x.reshape(x.shape[0], *rest)


def onnx_softmax(x, axis: int, log: bool = False):
    """Softmax before opset 13: over all dimensions from ``axis`` on, taken as one."""
    import torch

    flat = torch.flatten(x, axis)
    out = torch.log_softmax(flat, -1) if log else torch.softmax(flat, -1)
    return out.reshape(x.shape)


# ---- the converter ------------------------------------------------------------------------------------------
def onnx_to_torch(model, input_shapes: list[tuple[int, ...]] | None = None, source: str | None = None):
    """``torch.fx.GraphModule`` computing what the ONNX ``ModelProto`` computes, for inputs of ``input_shapes``.

    Raises WorkbenchError naming the first node whose op (or whose use of it) has no PyTorch layer here.
    """
    import torch

    with torch.no_grad():
        return _Builder(model, input_shapes, source).build()


def convert_artifact(artifact):
    """The ONNX artifact (weights included) as a GraphModule for its bound input shapes."""
    return onnx_to_torch(artifact.load_onnx(), artifact.input_shapes, str(artifact.path))


def onnx_output_names(artifact) -> list[str]:
    import onnx

    return [vi.name for vi in onnx.load(str(artifact.path), load_external_data=False).graph.output]


def relabel_layers(module, onnx_path) -> None:
    """Point ``module.onnx_layers`` at the node names of an ONNX file exported from ``module``: the exporter names
    each node after the submodule that made it (``/features_2_conv_0_0/Conv``), which the reader reads as its scope."""
    import onnx

    from .readers.onnx_reader import _scope

    submodules = {name for name, _ in module.named_modules() if name}
    proto = onnx.load(str(onnx_path), load_external_data=False)
    layers = {}
    for i, node in enumerate(proto.graph.node):
        scope, _ = _scope(node, [])
        if scope in submodules:
            layers[node.name or f"{node.op_type}_{i}"] = scope
    module.onnx_layers = layers


def _sanitize(name: str) -> str:
    text = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    text = re.sub(r"_+", "_", text)
    if not text or text[0].isdigit():
        text = "n_" + text
    return text


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[a.name] = value
    return out


def _tensor(proto):
    import torch
    from onnx import numpy_helper

    return torch.from_numpy(np.array(numpy_helper.to_array(proto), copy=True))


class _Builder:
    def __init__(self, model, input_shapes, source):
        import torch
        import torch.fx

        self.model = model
        self.source = source
        self.g = model.graph
        self.root = torch.nn.Module()
        self.graph = torch.fx.Graph()
        self.values: dict[str, Any] = {}
        self.used_names: set[str] = set()
        self.layers: dict[str, str] = {}
        self.buffers: dict[int, Any] = {}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.input_shapes = input_shapes
        self.consumers: dict[str, list] = {}
        for n in self.g.node:
            for t in n.input:
                self.consumers.setdefault(t, []).append(n)
        self.absorbed: dict[int, str] = {}  # id(node) of an Add folded into the layer before it -> its input
        self.node = None
        self.display = ""

    # ---- entry ----------------------------------------------------------------------------------------------
    def build(self):
        import torch
        import torch.fx

        quantized = sorted({n.op_type for n in self.g.node if n.op_type in QUANTIZED_OPS})
        if quantized:
            raise WorkbenchError(f"this ONNX model is already quantized ({', '.join(quantized)}), so it has no float "
                                 "layers to convert", "apply the step to the float variant it was made from, and "
                                 "quantize last", self.source)
        for t in self.g.initializer:
            self.values[t.name] = _tensor(t)
        inputs = [vi for vi in self.g.input if vi.name not in self.values]
        shapes = self.input_shapes or [self._declared_shape(vi) for vi in inputs]
        if len(shapes) != len(inputs):
            raise WorkbenchError(f"the model has {len(inputs)} inputs but {len(shapes)} input shapes were given",
                                 "give one shape per model input", self.source)
        for vi, shape in zip(inputs, shapes):
            elem = vi.type.tensor_type.elem_type
            dtype = _torch_dtype(elem)
            example = torch.randn(*shape).to(dtype) if dtype.is_floating_point else torch.zeros(*shape, dtype=dtype)
            name = self._unique(_sanitize(vi.name))
            self.values[vi.name] = _Dyn(self.graph.placeholder(name), example)

        for i, node in enumerate(self.g.node):
            self.node = node
            self.display = node.name or f"{node.op_type}_{i}"
            if id(node) in self.absorbed:
                self.values[node.output[0]] = self.values[self.absorbed[id(node)]]
                continue
            if node.domain not in ("", "ai.onnx"):
                self._fail(f"domain {node.domain}")
            handler: Callable | None = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                self._fail()
            ins = [self.values[t] if t else None for t in node.input]
            missing = [t for t, v in zip(node.input, ins) if t and v is None]
            if missing:
                self._fail(f"input '{missing[0]}' is not available")
            try:
                outs = handler(ins, _attrs(node))
            except _Unsupported as exc:
                self._fail(str(exc))
            except WorkbenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - a shape or value the converter did not expect
                self._fail(f"{type(exc).__name__}: {str(exc)[:160]}")
            outs = outs if isinstance(outs, list) else [outs]
            for t, v in zip(node.output, outs):
                if t:
                    self.values[t] = v

        results = []
        for vi in self.g.output:
            v = self.values[vi.name]
            results.append(v.node if isinstance(v, _Dyn) else self._buffer(v))
        self.graph.output(results[0] if len(results) == 1 else tuple(results))
        module = torch.fx.GraphModule(self.root, self.graph, class_name="OnnxModule")
        module.onnx_layers = dict(self.layers)
        module.onnx_outputs = [vi.name for vi in self.g.output]
        return module.eval()

    def _declared_shape(self, vi) -> tuple[int, ...]:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if any(d is None or d <= 0 for d in dims):
            raise WorkbenchError(f"input '{vi.name}' has no fixed shape", "give the input shape", self.source)
        return tuple(dims)

    def _fail(self, why: str = ""):
        node = self.node
        detail = f": {why}" if why else ""
        raise WorkbenchError(f"cannot convert node '{self.display}' (op {node.op_type}) to PyTorch{detail}", REMEDY,
                             self.source)

    # ---- graph helpers --------------------------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        return name

    def _layer_name(self) -> str:
        from .readers.onnx_reader import _scope

        scope, _ = _scope(self.node, [])
        base = _sanitize(scope) if scope else _sanitize(self.display)
        if base in self.used_names:
            base = f"{base}_{self.node.op_type.lower()}"
        return self._unique(base)

    def _buffer(self, tensor):
        key = id(tensor)
        if key not in self.buffers:
            name = self._unique(f"const_{len(self.buffers)}")
            self.root.register_buffer(name, tensor.clone())
            self.buffers[key] = (self.graph.get_attr(name), tensor)
        return self.buffers[key][0]

    def layer(self, module, x: _Dyn, *more: _Dyn) -> _Dyn:
        name = self._layer_name()
        self.root.add_module(name, module.eval())
        self.layers[self.display] = name
        node = self.graph.call_module(name, (x.node, *(m.node for m in more)))
        return _Dyn(node, module(x.example, *(m.example for m in more)))

    def call(self, fn, *args, **kwargs):
        """``fn(*args)``: computed now when every argument is constant, else added to the graph."""
        import torch

        if not _has_dyn((args, kwargs)):
            return fn(*args, **kwargs)

        def to_node(v):
            if isinstance(v, _Dyn):
                return v.node
            if isinstance(v, torch.Tensor):
                return self._buffer(v)
            if isinstance(v, (list, tuple)):
                return type(v)(to_node(x) for x in v)
            return v

        def to_example(v):
            if isinstance(v, _Dyn):
                return v.example
            if isinstance(v, (list, tuple)):
                return type(v)(to_example(x) for x in v)
            return v

        node = self.graph.call_function(fn, to_node(args), {k: to_node(v) for k, v in kwargs.items()})
        return _Dyn(node, fn(*to_example(args), **{k: to_example(v) for k, v in kwargs.items()}))

    def outputs_of(self, result: _Dyn, count: int) -> list[_Dyn]:
        return [self.call(operator.getitem, result, i) for i in range(count)]

    # ---- small utilities ------------------------------------------------------------------------------------
    @staticmethod
    def const(v, what: str):
        import torch

        if not isinstance(v, torch.Tensor):
            raise _Unsupported(f"{what} must be a constant")
        return v

    @staticmethod
    def dyn(v, what: str = "the data input") -> _Dyn:
        if not isinstance(v, _Dyn):
            raise _Unsupported(f"{what} is constant")
        return v

    @staticmethod
    def shape(v) -> tuple[int, ...]:
        return tuple(v.example.shape) if isinstance(v, _Dyn) else tuple(v.shape)

    @staticmethod
    def ints(v) -> list[int]:
        return [int(x) for x in np.asarray(v).reshape(-1)]

    def axes_from(self, ins, attrs, pos: int) -> list[int] | None:
        if len(ins) > pos and ins[pos] is not None:
            return self.ints(self.const(ins[pos], "axes"))
        return attrs.get("axes")

    @staticmethod
    def scalar_or_tensor(v):
        """A one-element constant as a Python number (no buffer, no broadcasting surprises)."""
        import torch

        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.ndim == 0:
            return v.item()
        return v

    def spatial_pads(self, attrs, x: _Dyn, kernel: list[int], strides: list[int], dilations: list[int]):
        nd = len(kernel)
        auto = attrs.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for size, k, s, d in zip(self.shape(x)[2:], kernel, strides, dilations):
                out = -(-size // s)
                total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
                small, big = total // 2, total - total // 2
                begin.append(small if auto == "SAME_UPPER" else big)
                end.append(big if auto == "SAME_UPPER" else small)
            return begin, end
        if auto == "VALID":
            return [0] * nd, [0] * nd
        pads = list(attrs.get("pads", [0] * (2 * nd)))
        return pads[:nd], pads[nd:]

    def pad(self, x: _Dyn, begin: list[int], end: list[int], value: float = 0.0) -> _Dyn:
        import torch.nn.functional as F

        flat: list[int] = []
        for b, e in zip(reversed(begin), reversed(end)):
            flat += [b, e]
        return self.call(F.pad, x, flat, "constant", value)

    # ---- constants and plumbing -----------------------------------------------------------------------------
    def op_Constant(self, ins, attrs):
        import torch

        if "value" in attrs:
            return _tensor(attrs["value"])
        for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32),
                           ("value_int", torch.int64), ("value_ints", torch.int64)):
            if key in attrs:
                return torch.tensor(attrs[key], dtype=dtype)
        raise _Unsupported("only tensor and number constants are supported")

    def op_Identity(self, ins, attrs):
        return ins[0]

    def op_Dropout(self, ins, attrs):
        if len(self.node.output) > 1 and self.node.output[1] and self.consumers.get(self.node.output[1]):
            raise _Unsupported("the dropout mask is used")
        return ins[0]

    def op_Shape(self, ins, attrs):
        import torch

        dims = list(self.shape(ins[0]))
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return torch.tensor(dims[start:end], dtype=torch.int64)

    def op_Size(self, ins, attrs):
        import torch

        return torch.tensor(math.prod(self.shape(ins[0])), dtype=torch.int64)

    def op_Cast(self, ins, attrs):
        dtype = _torch_dtype(attrs["to"])
        return self.call(_cast, ins[0], dtype)

    def op_ConstantOfShape(self, ins, attrs):
        import torch

        shape = self.ints(self.const(ins[0], "the shape"))
        value = _tensor(attrs["value"]) if "value" in attrs else torch.zeros(1)
        return torch.full(shape, value.reshape(-1)[0].item(), dtype=value.dtype)

    def op_Range(self, ins, attrs):
        import torch

        start, limit, delta = (self.const(v, "Range inputs") for v in ins[:3])
        return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)

    # ---- weighted layers ------------------------------------------------------------------------------------
    def _conv_inputs(self, ins, what: str):
        """(input, weight, bias or None, spatial dims) of a Conv or ConvTranspose node."""
        x = self.dyn(ins[0])
        w = self.const(ins[1], "the weight").float()
        b = self.const(ins[2], "the bias").float() if len(ins) > 2 and ins[2] is not None else None
        nd = w.ndim - 2
        if nd not in (1, 2, 3):
            raise _Unsupported(f"{nd}-d {what}")
        return x, w, b, nd

    def _weighted(self, module, x: _Dyn, weight, bias):
        """``module`` with the node's weight and bias copied in, applied to ``x``."""
        module.weight.data.copy_(weight)
        if bias is not None:
            module.bias.data.copy_(bias)
        return self.layer(module, x)

    def op_Conv(self, ins, attrs):
        import torch.nn as nn

        x, w, b, nd = self._conv_inputs(ins, "convolution")
        kernel = list(w.shape[2:])
        strides = list(attrs.get("strides", [1] * nd))
        dilations = list(attrs.get("dilations", [1] * nd))
        group = int(attrs.get("group", 1))
        begin, end = self.spatial_pads(attrs, x, kernel, strides, dilations)
        padding = begin
        if begin != end:
            x, padding = self.pad(x, begin, end), [0] * nd
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
        conv = cls(w.shape[1] * group, w.shape[0], kernel, stride=strides, padding=padding, dilation=dilations,
                   groups=group, bias=b is not None)
        return self._weighted(conv, x, w, b)

    def op_ConvTranspose(self, ins, attrs):
        import torch.nn as nn

        x, w, b, nd = self._conv_inputs(ins, "transposed convolution")
        if "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise _Unsupported("output_shape / auto_pad are not supported")
        pads = list(attrs.get("pads", [0] * (2 * nd)))
        if pads[:nd] != pads[nd:]:
            raise _Unsupported("asymmetric pads are not supported")
        group = int(attrs.get("group", 1))
        cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[nd]
        conv = cls(w.shape[0], w.shape[1] * group, list(w.shape[2:]), stride=list(attrs.get("strides", [1] * nd)),
                   padding=pads[:nd], output_padding=list(attrs.get("output_padding", [0] * nd)), groups=group,
                   dilation=list(attrs.get("dilations", [1] * nd)), bias=b is not None)
        return self._weighted(conv, x, w, b)

    def _linear(self, x: _Dyn, weight, bias):
        """``nn.Linear`` with ``weight`` [out, in]."""
        import torch.nn as nn

        return self._weighted(nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None), x, weight, bias)

    def op_Gemm(self, ins, attrs):
        import torch

        a, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if attrs.get("transA", 0):
            a = self.call(torch.transpose, a, 0, 1)
        if isinstance(a, _Dyn) and isinstance(b, torch.Tensor) and (c is None or isinstance(c, torch.Tensor)):
            weight = (b if attrs.get("transB", 0) else b.T).float() * alpha
            out_features = weight.shape[0]
            bias = None
            if c is not None and c.numel() in (1, out_features) and c.shape[-1:] in ((), (1,), (out_features,)):
                bias = (c.float() * beta).reshape(-1).expand(out_features).clone()
                c = None
            y = self._linear(a, weight, bias)
            if c is not None:
                y = self.call(torch.add, y, c * beta)
            return y
        if attrs.get("transB", 0):
            b = self.call(torch.transpose, b, 0, 1)
        y = self.call(torch.matmul, a, b)
        if alpha != 1.0:
            y = self.call(torch.mul, y, alpha)
        if c is not None:
            y = self.call(torch.add, y, self.call(torch.mul, c, beta) if beta != 1.0 else c)
        return y

    def op_MatMul(self, ins, attrs):
        import torch

        a, b = ins
        if isinstance(a, _Dyn) and isinstance(b, torch.Tensor) and b.ndim == 2 and b.dtype.is_floating_point:
            bias = None
            users = self.consumers.get(self.node.output[0], [])
            graph_outputs = {o.name for o in self.g.output}
            if len(users) == 1 and users[0].op_type == "Add" and self.node.output[0] not in graph_outputs:
                add = users[0]
                other = add.input[1] if add.input[0] == self.node.output[0] else add.input[0]
                c = self.values.get(other)
                if isinstance(c, torch.Tensor) and c.numel() == b.shape[1] and c.shape[-1:] == (b.shape[1],):
                    bias = c.float().reshape(-1)
                    self.absorbed[id(add)] = self.node.output[0]
            return self._linear(a, b.T.float(), bias)
        return self.call(torch.matmul, a, b)

    def op_BatchNormalization(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        scale, bias, mean, var = (self.const(v, "BatchNorm statistics").float() for v in ins[1:5])
        rank = x.example.ndim
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(rank)
        if cls is None:
            raise _Unsupported(f"{rank}-d input")
        bn = cls(scale.numel(), eps=float(attrs.get("epsilon", 1e-5)))
        bn.weight.data.copy_(scale)
        bn.bias.data.copy_(bias)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        return self.layer(bn, x)

    def op_LayerNormalization(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        axis = int(attrs.get("axis", -1)) % x.example.ndim
        shape = list(x.example.shape[axis:])
        scale = self.const(ins[1], "the scale").float()
        bias = self.const(ins[2], "the bias").float() if len(ins) > 2 and ins[2] is not None else None
        ln = nn.LayerNorm(shape, eps=float(attrs.get("epsilon", 1e-5)), bias=bias is not None)
        ln.weight.data.copy_(scale.expand(shape))
        if bias is not None:
            ln.bias.data.copy_(bias.expand(shape))
        if len(self.node.output) > 1 and any(self.consumers.get(t) for t in self.node.output[1:] if t):
            raise _Unsupported("the mean / inverse deviation outputs are used")
        return self.layer(ln, x)

    def op_PRelu(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        slope = self.const(ins[1], "the slope").float()
        if slope.numel() > 1 and slope.numel() != x.example.shape[1]:
            raise _Unsupported("the slope is neither one value nor one per channel")
        act = nn.PReLU(slope.numel())
        act.weight.data.copy_(slope.reshape(-1))
        return self.layer(act, x)

    # ---- activations ----------------------------------------------------------------------------------------
    def _act(self, module, x):
        import torch

        if isinstance(x, torch.Tensor):
            return module(x)
        return self.layer(module, x)

    def op_Relu(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.ReLU(), ins[0])

    def op_Clip(self, ins, attrs):
        import torch
        import torch.nn as nn

        lo, hi = attrs.get("min"), attrs.get("max")
        if len(ins) > 1 and ins[1] is not None:
            lo = float(self.const(ins[1], "min"))
        if len(ins) > 2 and ins[2] is not None:
            hi = float(self.const(ins[2], "max"))
        if lo == 0.0 and hi == 6.0:
            return self._act(nn.ReLU6(), ins[0])
        if lo == 0.0 and hi is None:
            return self._act(nn.ReLU(), ins[0])
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            return self._act(nn.Hardtanh(lo, hi), ins[0])
        return self.call(torch.clamp, ins[0], lo, hi)

    def op_LeakyRelu(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.LeakyReLU(float(attrs.get("alpha", 0.01))), ins[0])

    def op_Elu(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.ELU(float(attrs.get("alpha", 1.0))), ins[0])

    def op_Sigmoid(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.Sigmoid(), ins[0])

    def op_Tanh(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.Tanh(), ins[0])

    def op_HardSwish(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.Hardswish(), ins[0])

    def op_HardSigmoid(self, ins, attrs):
        import torch.nn as nn

        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-6:
            return self._act(nn.Hardsigmoid(), ins[0])
        return self.call(hard_sigmoid, ins[0], alpha, beta)

    def op_Softplus(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.Softplus(), ins[0])

    def op_Gelu(self, ins, attrs):
        import torch.nn as nn

        return self._act(nn.GELU(approximate=attrs.get("approximate", "none")), ins[0])

    def op_Softmax(self, ins, attrs, log: bool = False):
        import torch.nn as nn

        x = ins[0]
        rank = len(self.shape(x))
        axis = int(attrs.get("axis", -1 if self.opset >= 13 else 1)) % rank
        if self.opset < 13 and axis != rank - 1:
            return self.call(onnx_softmax, x, axis, log)
        return self._act(nn.LogSoftmax(dim=axis) if log else nn.Softmax(dim=axis), x)

    def op_LogSoftmax(self, ins, attrs):
        return self.op_Softmax(ins, attrs, log=True)

    def _unary(fn_name: str):  # noqa: N805 - builds methods below
        def op(self, ins, attrs):
            import torch

            return self.call(getattr(torch, fn_name), ins[0])
        return op

    op_Erf = _unary("erf")
    op_Exp = _unary("exp")
    op_Log = _unary("log")
    op_Sqrt = _unary("sqrt")
    op_Neg = _unary("neg")
    op_Abs = _unary("abs")
    op_Reciprocal = _unary("reciprocal")
    op_Floor = _unary("floor")
    op_Ceil = _unary("ceil")
    op_Not = _unary("logical_not")

    # ---- elementwise binary ---------------------------------------------------------------------------------
    def _binary(fn_name: str, commutative: bool):  # noqa: N805 - builds methods below
        def op(self, ins, attrs):
            import torch

            fn = getattr(torch, fn_name)
            a, b = ins[0], ins[1]
            if not _has_dyn([a, b]):
                if fn_name == "div" and not a.dtype.is_floating_point and not b.dtype.is_floating_point:
                    return torch.div(a, b, rounding_mode="trunc")
                return fn(a, b)
            if commutative and not isinstance(a, _Dyn):
                a, b = b, a
            if isinstance(a, _Dyn):
                b = self.scalar_or_tensor(b)
            return self.call(fn, a, b)
        return op

    op_Add = _binary("add", True)
    op_Sub = _binary("sub", False)
    op_Mul = _binary("mul", True)
    op_Div = _binary("div", False)
    op_Pow = _binary("pow", False)
    op_Max = _binary("maximum", True)
    op_Min = _binary("minimum", True)
    op_Equal = _binary("eq", True)
    op_Less = _binary("lt", False)
    op_Greater = _binary("gt", False)
    op_And = _binary("logical_and", True)
    op_Or = _binary("logical_or", True)

    def op_Sum(self, ins, attrs):
        out = ins[0]
        for v in ins[1:]:
            out = self.op_Add([out, v], attrs)
        return out

    def op_Where(self, ins, attrs):
        import torch

        return self.call(torch.where, *ins)

    # ---- shape ops ------------------------------------------------------------------------------------------
    def op_Concat(self, ins, attrs):
        import torch

        return self.call(torch.cat, [v for v in ins if v is not None], int(attrs["axis"]))

    def op_Flatten(self, ins, attrs):
        import torch
        import torch.nn as nn

        x = ins[0]
        rank = len(self.shape(x))
        axis = int(attrs.get("axis", 1)) % (rank + 1) if rank else 0
        if axis == 1 and isinstance(x, _Dyn):
            return self.layer(nn.Flatten(1), x)
        if axis == 0:
            return self.call(torch.reshape, x, [1, -1])
        return self.call(torch.flatten, self.call(torch.flatten, x, axis), 0, axis - 1)

    def op_Reshape(self, ins, attrs):
        import torch

        x = ins[0]
        in_shape = self.shape(x)
        target = self.ints(self.const(ins[1], "the target shape"))
        if not attrs.get("allowzero", 0):
            target = [in_shape[i] if d == 0 else d for i, d in enumerate(target)]
        if not isinstance(x, _Dyn):
            return torch.reshape(x, target)
        if in_shape and len(target) >= 1 and target[0] == in_shape[0]:
            # The leading dimension is kept: leave it free so other batch sizes run too.
            rest = target[1:]
            if len(target) == 2 and (rest[0] == -1 or rest[0] * in_shape[0] == math.prod(in_shape)):
                return self.call(torch.flatten, x, 1)
            return self.call(reshape_keep_batch, x, rest)
        return self.call(torch.reshape, x, target)

    def op_Transpose(self, ins, attrs):
        import torch

        rank = len(self.shape(ins[0]))
        perm = list(attrs.get("perm", list(reversed(range(rank)))))
        return self.call(torch.permute, ins[0], perm)

    def op_Squeeze(self, ins, attrs):
        import torch

        shape = self.shape(ins[0])
        axes = self.axes_from(ins, attrs, 1)
        if axes is None:
            axes = [i for i, d in enumerate(shape) if d == 1]
        axes = sorted(a % len(shape) for a in axes)
        return self.call(torch.squeeze, ins[0], tuple(axes)) if axes else ins[0]

    def op_Unsqueeze(self, ins, attrs):
        import torch

        axes = self.axes_from(ins, attrs, 1) or []
        rank = len(self.shape(ins[0])) + len(axes)
        x = ins[0]
        for a in sorted(a % rank for a in axes):
            x = self.call(torch.unsqueeze, x, a)
        return x

    def op_Gather(self, ins, attrs):
        import torch

        data, idx = ins[0], self.const(ins[1], "the indices")
        shape = self.shape(data)
        axis = int(attrs.get("axis", 0)) % len(shape)
        idx = torch.where(idx < 0, idx + shape[axis], idx)
        if not isinstance(data, _Dyn):
            return torch.from_numpy(np.asarray(np.take(data.numpy(), idx.numpy(), axis=axis)))
        if idx.ndim == 0:
            return self.call(torch.select, data, axis, int(idx))
        if idx.ndim == 1:
            return self.call(torch.index_select, data, axis, idx)
        raise _Unsupported("indices of more than one dimension on a computed tensor")

    def op_Slice(self, ins, attrs):
        import torch

        data = ins[0]
        shape = self.shape(data)
        if len(ins) > 1:
            starts = self.ints(self.const(ins[1], "starts"))
            ends = self.ints(self.const(ins[2], "ends"))
            axes = self.ints(self.const(ins[3], "axes")) if len(ins) > 3 and ins[3] is not None else None
            steps = self.ints(self.const(ins[4], "steps")) if len(ins) > 4 and ins[4] is not None else None
        else:
            starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
        axes = [a % len(shape) for a in (axes if axes is not None else range(len(starts)))]
        steps = steps or [1] * len(starts)
        out = data
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if not isinstance(out, _Dyn):
                index = (slice(None),) * axis + (slice(start, None if abs(end) >= _INT64_MAX else end, step),)
                out = torch.from_numpy(np.ascontiguousarray(out.numpy()[index]))
                continue
            if step < 0:
                raise _Unsupported("negative steps on a computed tensor")
            out = self.call(slice_along, out, axis, start, None if end >= _INT64_MAX else end, step)
        return out

    def op_Expand(self, ins, attrs):
        shape = self.ints(self.const(ins[1], "the shape"))
        target = list(np.broadcast_shapes(self.shape(ins[0]), tuple(shape)))
        return self.call(_expand, ins[0], target)

    def op_Split(self, ins, attrs):
        import torch

        x = ins[0]
        shape = self.shape(x)
        axis = int(attrs.get("axis", 0)) % len(shape)
        outputs = len(self.node.output)
        if len(ins) > 1 and ins[1] is not None:
            sizes = self.ints(self.const(ins[1], "the split sizes"))
        elif "split" in attrs:
            sizes = list(attrs["split"])
        else:
            chunk = -(-shape[axis] // outputs)
            sizes = [min(chunk, shape[axis] - i * chunk) for i in range(outputs)]
        result = self.call(torch.split, x, sizes, axis)
        return self.outputs_of(result, outputs) if isinstance(result, _Dyn) else list(result)

    def op_Pad(self, ins, attrs):
        import torch.nn.functional as F

        x = self.dyn(ins[0])
        rank = x.example.ndim
        if len(ins) > 1:
            pads = self.ints(self.const(ins[1], "the pads"))
            value = float(self.const(ins[2], "the pad value")) if len(ins) > 2 and ins[2] is not None else 0.0
            axes = self.ints(self.const(ins[3], "the axes")) if len(ins) > 3 and ins[3] is not None else None
        else:
            pads, value, axes = list(attrs["pads"]), float(attrs.get("value", 0.0)), None
        axes = [a % rank for a in (axes if axes is not None else range(rank))]
        n = len(axes)
        begin, end = [0] * rank, [0] * rank
        for a, b, e in zip(axes, pads[:n], pads[n:]):
            begin[a], end[a] = b, e
        while begin and begin[0] == 0 and end[0] == 0 and len(begin) > 1:
            begin, end = begin[1:], end[1:]  # F.pad lists the last dimensions first; leading zeros can go
        mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(
            attrs.get("mode", "constant"))
        if mode is None:
            raise _Unsupported(f"mode {attrs.get('mode')}")
        flat: list[int] = []
        for b, e in zip(reversed(begin), reversed(end)):
            flat += [b, e]
        if mode == "constant":
            return self.call(F.pad, x, flat, mode, value)
        return self.call(F.pad, x, flat, mode)

    # ---- pooling and reductions -----------------------------------------------------------------------------
    def op_MaxPool(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        if len(self.node.output) > 1 and self.node.output[1]:
            raise _Unsupported("the indices output is not supported")
        kernel = list(attrs["kernel_shape"])
        nd = len(kernel)
        strides = list(attrs.get("strides", [1] * nd))
        dilations = list(attrs.get("dilations", [1] * nd))
        begin, end = self.spatial_pads(attrs, x, kernel, strides, dilations)
        padding = begin
        if begin != end or any(2 * p > k for p, k in zip(begin, kernel)):
            x, padding = self.pad(x, begin, end, float("-inf")), [0] * nd
        cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
        return self.layer(cls(kernel, strides, padding, dilations, ceil_mode=bool(attrs.get("ceil_mode", 0))), x)

    def op_AveragePool(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        kernel = list(attrs["kernel_shape"])
        nd = len(kernel)
        if any(d != 1 for d in attrs.get("dilations", [1] * nd)):
            raise _Unsupported("dilated average pooling")
        strides = list(attrs.get("strides", [1] * nd))
        begin, end = self.spatial_pads(attrs, x, kernel, strides, [1] * nd)
        include = bool(attrs.get("count_include_pad", 0))
        padding = begin
        if begin != end or any(2 * p > k for p, k in zip(begin, kernel)):
            if not include and any(begin + end):
                raise _Unsupported("asymmetric pads that are not counted")
            x, padding = self.pad(x, begin, end), [0] * nd
        cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd]
        return self.layer(cls(kernel, strides, padding, ceil_mode=bool(attrs.get("ceil_mode", 0)),
                              count_include_pad=include), x)

    def op_GlobalAveragePool(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        cls = {3: nn.AdaptiveAvgPool1d, 4: nn.AdaptiveAvgPool2d, 5: nn.AdaptiveAvgPool3d}[x.example.ndim]
        return self.layer(cls(1), x)

    def op_GlobalMaxPool(self, ins, attrs):
        import torch.nn as nn

        x = self.dyn(ins[0])
        cls = {3: nn.AdaptiveMaxPool1d, 4: nn.AdaptiveMaxPool2d, 5: nn.AdaptiveMaxPool3d}[x.example.ndim]
        return self.layer(cls(1), x)

    def _reduce(fn_name: str, axes_input_from: int):  # noqa: N805 - builds methods below
        def op(self, ins, attrs):
            import torch

            x = ins[0]
            rank = len(self.shape(x))
            axes = self.axes_from(ins, attrs, 1) if self.opset >= axes_input_from else attrs.get("axes")
            if not axes:
                if attrs.get("noop_with_empty_axes", 0):
                    return x
                axes = list(range(rank))
            dims = tuple(sorted(a % rank for a in axes))
            return self.call(getattr(torch, fn_name), x, dims, keepdim=bool(attrs.get("keepdims", 1)))
        return op

    op_ReduceMean = _reduce("mean", 18)
    op_ReduceSum = _reduce("sum", 13)
    op_ReduceMax = _reduce("amax", 18)
    op_ReduceMin = _reduce("amin", 18)

    del _unary, _binary, _reduce


def _cast(x, dtype):
    return x.to(dtype)


def _expand(x, shape: list[int]):
    return x.expand(*shape)


def _has_dyn(v) -> bool:
    if isinstance(v, _Dyn):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_dyn(x) for x in v)
    if isinstance(v, dict):
        return any(_has_dyn(x) for x in v.values())
    return False


def _torch_dtype(elem_type: int):
    import torch
    from onnx import helper

    return getattr(torch, str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))))
