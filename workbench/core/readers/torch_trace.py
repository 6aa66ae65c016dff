"""Record one forward pass of a PyTorch program as a LayerGraph.

A ``TorchDispatchMode`` sees every ATen operator that eager modules, TorchScript and ``torch.export`` programs run,
with real shapes. Tensors are identified by (data pointer, shape, stride, dtype): an in-place op re-produces the same
key, and a freed address reused by a later tensor is overwritten by that tensor's producer before anyone reads it.
Parameters and buffers are recognised by their storage, so views of a weight (``t()`` before ``addmm``) still count
as that weight.

Scopes come from the caller: eager modules push module paths through forward hooks, ``torch.export`` programs
through ``nn_module_stack``; TorchScript has neither, so its scopes are the module paths of the weights an op reads,
and ops without weights inherit from their producer (marked ``derived``).
"""

from __future__ import annotations

import contextlib
import sys
import types
from math import prod
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..graph import LayerGraph, Node
from ..opcount import count_macs, fold_batchnorm
from ..shapes import TensorSpec
from .aten_ops import CREATION, TRANSPARENT, classify

_VIEW_OF_WEIGHT = frozenset({"t", "transpose", "permute", "view", "_unsafe_view", "reshape", "expand",
                             "unsqueeze", "squeeze", "detach", "alias", "select", "slice", "_to_copy",
                             "clone", "contiguous", "numpy_T", "lift_fresh", "lift_fresh_copy"})
_BIAS_FIRST = frozenset({"addmm", "baddbmm", "addbmm", "addmv"})
_WEIGHT_FLOAT = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
                 torch.qint8, torch.quint8)


def _key(t: torch.Tensor) -> tuple:
    if t.is_meta:  # no addresses on meta: the recorder keeps these objects alive, so id() stays unique
        return ("id", id(t))
    try:
        ptr = t.data_ptr()
    except RuntimeError:  # tensors without storage (functional wrappers)
        return ("id", id(t))
    return ptr, tuple(t.shape), tuple(t.stride()), t.dtype


def _storage(t: torch.Tensor) -> int | tuple | None:
    if t.is_meta:
        return ("id", id(t))
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None


class GraphRecorder(TorchDispatchMode):
    """Collects nodes while active. ``scope_fn`` returns the current module path (or None when unknown)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ to keep Dynamo out of it, and that wrapper imports
        # torch._dynamo on first use: 1.7 s of a 2.6 s inspect here. Nothing compiles inside this mode.
        return False

    def __init__(self, weights: dict[str, torch.Tensor], parameter_names: set[str],
                 scope_fn: Callable[[], str | None] = lambda: None):
        super().__init__()
        self.scope_fn = scope_fn
        self.nodes: list[Node] = []
        self.producer: dict[tuple, str] = {}  # tensor key -> tensor name
        self.weight_of_storage: dict[int, str] = {}
        self.weight_numel: dict[str, tuple[int, int, bool]] = {}  # name -> (numel, bytes, is_parameter)
        for name, t in weights.items():
            s = _storage(t)
            if s is not None and s not in self.weight_of_storage and t.numel() > 0:
                self.weight_of_storage[s] = name
                self.weight_numel[name] = (t.numel(), t.numel() * t.element_size(), name in parameter_names)
        self.weight_alias: dict[tuple, str] = {}
        self._counted: set[str] = set()
        self._names: dict[str, int] = {}
        self._consts = 0
        self._alive: list[torch.Tensor] = list(weights.values())  # keeps id()-keys of meta tensors unique
        self.created: set[tuple] = set()  # tensors made inside forward (zeros, arange…): neither inputs nor weights

    # -- identification -----------------------------------------------------------------------------------------
    def register_input(self, t: torch.Tensor, name: str) -> None:
        self._alive.append(t)
        self.producer[_key(t)] = name

    def tensor_name(self, t: torch.Tensor) -> str | None:
        return self.producer.get(_key(t))

    def _weight_name(self, t: torch.Tensor) -> str | None:
        k = _key(t)
        if k in self.producer:
            return None
        if k in self.weight_alias:
            return self.weight_alias[k]
        s = _storage(t)
        return self.weight_of_storage.get(s) if s is not None else None

    def _constant(self, t: torch.Tensor) -> str | None:
        """Name a tensor nobody produced: frozen/inlined weights become constants, like ONNX initializers."""
        if t.dtype not in _WEIGHT_FLOAT or t.numel() <= 1:
            return None
        self._consts += 1
        name = f"constant_{self._consts}"
        s = _storage(t)
        if s is not None:
            self.weight_of_storage[s] = name
        self.weight_numel[name] = (t.numel(), t.numel() * t.element_size(), True)
        return name

    # -- recording ----------------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._record(func, args, kwargs, out)
        except Exception as exc:  # noqa: BLE001 - recording must never change what the model computes
            self.nodes.append(Node(name=f"unrecorded_{len(self.nodes)}", op_type=f"aten::{func.__name__}",
                                   macs=None, mac_rule=f"could not record: {exc}"))
        return out

    def _record(self, func, args, kwargs, out) -> None:
        name = func._schema.name.split("::")[-1]
        flat_in = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        flat_out = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        if not flat_out:
            return
        if flat_out[0].is_meta:
            self._alive.extend(flat_out)
        if name in CREATION or not flat_in:
            self.created.update(_key(o) for o in flat_out)
            return
        if name in _BIAS_FIRST and len(flat_in) >= 3:
            flat_in = flat_in[1:3] + [flat_in[0]] + flat_in[3:]  # (bias, a, b) → (a, b, bias) like ONNX Gemm
        weight_ins = [self._weight_name(t) for t in flat_in]
        base = name.rstrip("_") if not name.startswith("_") else name
        if base in _VIEW_OF_WEIGHT and weight_ins[0] is not None:
            for o in flat_out:
                self.weight_alias[_key(o)] = weight_ins[0]
            return
        if base in TRANSPARENT and len(flat_in) >= 1:
            src = self.tensor_name(flat_in[0])
            if src is not None:
                for o in flat_out:
                    self.producer[_key(o)] = src
            return

        input_shapes = [tuple(t.shape) for t in flat_in]
        op_type, attrs = classify(name, args, kwargs, input_shapes)
        node = Node(name="", op_type=op_type, attributes=attrs)
        node.input_shapes = input_shapes
        # BatchNorm returns (out, mean, invstd…): only the first output is the activation.
        outs = flat_out[:1] if op_type in ("BatchNormalization", "LayerNormalization", "GroupNormalization",
                                           "MaxPool", "Attention", "Dropout") else flat_out
        node.output_shapes = [tuple(o.shape) for o in outs]
        for t, wname in zip(flat_in, weight_ins):
            if wname is None:
                src = self.tensor_name(t)
                if src is None and _key(t) not in self.created:
                    wname = self._constant(t)
                if wname is None:
                    if src is not None and src not in node.inputs:
                        node.inputs.append(src)
                    continue
            if wname not in node.weights:
                node.weights.append(wname)
            if wname not in self._counted:
                self._counted.add(wname)
                numel, nbytes, is_param = self.weight_numel[wname]
                node.params += numel if is_param else 0
                node.weight_bytes += nbytes
        scope = self.scope_fn()
        if scope is None:
            scope = self._weight_scope(node.weights)
            node.scope_source = "module" if scope else "derived"
        node.scope = scope or ""
        node.name = self._unique(f"{scope}/{op_type}" if scope else op_type)
        for k, o in enumerate(outs):
            tname = node.name if len(outs) == 1 else f"{node.name}:{k}"
            node.outputs.append(tname)
            self.producer[_key(o)] = tname
        node.activation_bytes = sum(o.numel() * o.element_size() for o in outs)
        node.macs, node.mac_rule = count_macs(op_type, attrs, node.input_shapes, node.output_shapes)
        self.nodes.append(node)

    def _weight_scope(self, weights: list[str]) -> str | None:
        for w in weights:
            if not w.startswith("constant_") and "." in w:
                return w.rsplit(".", 1)[0]
        return None

    def _unique(self, base: str) -> str:
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"


@contextlib.contextmanager
def without_dynamo_import():
    """Keep meta kernels from importing torch._dynamo while a pass is recorded.

    Many meta kernels are Python references wrapped so that Dynamo never traces them; the wrapper imports
    torch._dynamo on first use (1.5 s here, most of an inspect). Nothing is compiled while recording, so a stand-in
    whose ``disable`` returns the function unchanged serves; it is removed afterwards. Callers retry without it if
    a model's forward needs the real module.
    """
    if "torch._dynamo" in sys.modules:
        yield
        return
    touched: list = []

    def disable(fn=None, recursive=True, wrapping=True, **kw):
        touched.append(fn)
        return fn

    stub = types.ModuleType("torch._dynamo")
    stub.disable = disable  # type: ignore[attr-defined]
    stub.is_compiling = lambda: False  # type: ignore[attr-defined]
    sys.modules["torch._dynamo"] = stub
    try:
        yield
    finally:
        if sys.modules.get("torch._dynamo") is stub:
            del sys.modules["torch._dynamo"]
        if vars(torch).get("_dynamo") is stub:  # not getattr: torch's lazy __getattr__ would import the real one
            delattr(torch, "_dynamo")
        # The wrapper caches what disable() returned on each function; drop those so the real Dynamo, if it is
        # imported later in this process, wraps them properly.
        for fn in touched:
            if getattr(fn, "__dynamo_disable", None) is fn:
                delattr(fn, "__dynamo_disable")


def derive_missing_scopes(nodes: list[Node]) -> None:
    """For nodes with no scope (TorchScript ops without weights): take the scope of the producing layer's module."""
    producer = {t: n for n in nodes for t in n.outputs}
    for n in nodes:
        if n.scope or n.scope_source == "module":
            continue
        for t in n.inputs:
            src = producer.get(t)
            if src is not None and src.scope:
                # A layer with weights is a leaf module: its siblings live in the parent module.
                n.scope = src.scope.rsplit(".", 1)[0] if src.weights and "." in src.scope else (
                    "" if src.weights else src.scope)
                break
        n.name = n.name if "/" in n.name or not n.scope else f"{n.scope}/{n.name}"


def finish_graph(recorder: GraphRecorder, fmt: str, source: str, inputs: list[TensorSpec],
                 outputs: Any) -> LayerGraph:
    """Turn a recorder's nodes into a LayerGraph with edges, outputs and folded BatchNorms."""
    nodes = recorder.nodes
    derive_missing_scopes(nodes)
    fold_batchnorm(nodes)
    out_specs = []
    for i, o in enumerate(t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor)):
        out_specs.append(TensorSpec(recorder.tensor_name(o) or f"output_{i}", list(o.shape),
                                    str(o.dtype).replace("torch.", "")))
    graph = LayerGraph(format=fmt, source=source, nodes=nodes, inputs=inputs, outputs=out_specs)
    graph.build_edges()
    return graph


def example_inputs(shapes: list[tuple[int, ...]], dtypes: list[torch.dtype] | None = None,
                   device: str = "cpu") -> list[torch.Tensor]:
    """Deterministic inputs of the given shapes (normal noise for floats, zeros for integers)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for i, s in enumerate(shapes):
        dt = (dtypes[i] if dtypes and i < len(dtypes) else None) or torch.float32
        if device == "meta":
            out.append(torch.empty(*s, dtype=dt, device="meta"))
        elif dt.is_floating_point:
            out.append(torch.randn(*s, generator=gen, dtype=dt))
        else:
            out.append(torch.zeros(*s, dtype=dt))
    return out


def numel(shape) -> int:
    return prod(shape)
