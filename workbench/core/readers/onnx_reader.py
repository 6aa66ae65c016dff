"""ONNX files (with external data) → LayerGraph.

Weights are never needed to count: large tensors are dropped from memory before shape inference, so inspecting a
model costs little more than its protobuf. Weights stored in ``Constant`` nodes are treated like initializers.
"""

from __future__ import annotations

import ast
from math import prod
from pathlib import Path

import numpy as np

from ..errors import CorruptModel, InputShapeError, WorkbenchError
from ..graph import LayerGraph, Node
from ..opcount import count_macs, fold_batchnorm
from ..shapes import TensorSpec, bind_shapes
from .base import OpenRequest

# Inputs of quantization ops that hold scales and zero points, not weights.
_NON_WEIGHT_INPUTS = {
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7}, "MatMulInteger": {2, 3}, "ConvInteger": {2, 3},
}
_WEIGHT_DTYPES = {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int4", "uint4"}
_KEEP_BYTES = 4096  # tensors at most this large keep their data (shape tensors, small constants)


class OnnxReader:
    format = "onnx"
    label = "ONNX model (.onnx)"

    def match(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() == ".onnx"

    def open(self, request: OpenRequest) -> LayerGraph:
        model = _load(request.path)
        return graph_from_onnx(model, request, fmt=self.format)


def _load(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CorruptModel(f"not a readable ONNX file ({_short(exc)})",
                           "the file may be truncated or not ONNX; export it again", path) from None
    except MemoryError:
        raise CorruptModel("not a readable ONNX file (parser ran out of memory)",
                           "the file may be corrupt; export it again", path) from None
    if not model.graph.node:
        raise CorruptModel("the ONNX file holds no graph nodes",
                           "the file may be truncated or not ONNX; export it again", path)
    _check_external_data(model, path)
    return model


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _check_external_data(model, path: Path) -> None:
    from onnx.external_data_helper import uses_external_data

    base = path.parent
    for tensor in _all_tensors(model):
        if not uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if base.resolve() not in target.parents and target != base.resolve():
            raise CorruptModel(f"external data '{location}' of tensor '{tensor.name}' points outside the model folder",
                               "keep external data files next to the model", path)
        if not target.is_file():
            raise WorkbenchError(f"external data file '{location}' (tensor '{tensor.name}') is missing",
                                 f"copy '{location}' into {base} next to the model", path)
        need = int(info.get("offset", 0)) + int(info.get("length", 0) or 0)
        if need and target.stat().st_size < need:
            raise CorruptModel(f"external data file '{location}' is shorter than tensor '{tensor.name}' needs",
                               "the file may be truncated; copy it again", path)


def _all_tensors(model):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == attr.TENSOR:
                yield attr.t


def _dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        from onnx import TensorProto

        return TensorProto.DataType.Name(elem_type).lower()


def _itemsize(dtype: str) -> float:
    if dtype in ("int4", "uint4"):
        return 0.5
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 4


def _value_shape(vi) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def graph_from_onnx(model, request: OpenRequest, fmt: str = "onnx") -> LayerGraph:
    """Build the LayerGraph of an ONNX ``ModelProto`` bound to the requested input shapes.

    The model is modified in place (large tensor data dropped, input dims bound).
    """

    g = model.graph
    source = str(request.path)

    weights: dict[str, tuple[tuple[int, ...], str]] = {}  # name -> (dims, dtype)
    for t in g.initializer:
        weights[t.name] = (tuple(int(d) for d in t.dims), _dtype(t.data_type))
    for node in g.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == attr.TENSOR:
                    weights[node.output[0]] = (tuple(int(d) for d in attr.t.dims), _dtype(attr.t.data_type))
    # Exporters alias de-duplicated weights through Identity nodes; those are weights, not layers.
    aliases: set[int] = set()
    for i, node in enumerate(g.node):
        if node.op_type == "Identity" and node.input and node.input[0] in weights and node.output:
            weights[node.output[0]] = weights[node.input[0]]
            aliases.add(i)
    _drop_large_data(model)

    inputs = [TensorSpec(vi.name, _value_shape(vi), _dtype(vi.type.tensor_type.elem_type))
              for vi in g.input if vi.name not in weights]
    if not inputs:
        raise InputShapeError("the model declares no inputs", "export it with at least one graph input", source)
    bound = bind_shapes(inputs, request.shapes, source)
    by_name = {vi.name: vi for vi in g.input}
    for spec, dims in zip(inputs, bound):
        shape = by_name[spec.name].type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            shape.dim.add().dim_value = d
        spec.shape = list(dims)

    shapes, dtypes = _infer(model, source)
    for name, (dims, dtype) in weights.items():
        shapes[name] = dims
        dtypes[name] = dtype

    counted: set[str] = set()
    nodes: list[Node] = []
    for i, pn in enumerate(g.node):
        if pn.op_type == "Constant" or i in aliases:
            continue
        name = pn.name or f"{pn.op_type}_{i}"
        ins = [t for t in pn.input if t]
        outs = [t for t in pn.output if t]
        node = Node(
            name=name,
            op_type=pn.op_type if pn.domain in ("", "ai.onnx") else f"{pn.op_type}",
            attributes=_attributes(pn),
            inputs=[t for t in ins if t not in weights],
            outputs=outs,
            input_shapes=[shapes.get(t) for t in ins],
            output_shapes=[shapes.get(t) for t in outs],
        )
        if pn.domain not in ("", "ai.onnx"):
            node.attributes["domain"] = pn.domain
        skip = _NON_WEIGHT_INPUTS.get(pn.op_type, set())
        for pos, t in enumerate(ins):
            if t not in weights:
                continue
            dims, dtype = weights[t]
            numel = prod(dims)
            if pos in skip or dtype not in _WEIGHT_DTYPES or numel <= 1:
                continue
            node.weights.append(t)
            if t not in counted:
                counted.add(t)
                node.params += numel
                node.weight_bytes += int(numel * _itemsize(dtype))
        node.activation_bytes = int(sum(prod(shapes[t]) * _itemsize(dtypes.get(t, "float32"))
                                        for t in outs if shapes.get(t) is not None))
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in pn.attribute):
            node.macs, node.mac_rule = None, "control flow: the subgraph is not counted"
        else:
            node.macs, node.mac_rule = count_macs(node.op_type, node.attributes, node.input_shapes,
                                                  node.output_shapes)
        node.scope, node.scope_source = _scope(pn, node.weights)
        nodes.append(node)

    _inherit_scopes(nodes)
    fold_batchnorm(nodes)
    outputs = [TensorSpec(vi.name, list(shapes.get(vi.name) or _value_shape(vi)),
                          _dtype(vi.type.tensor_type.elem_type)) for vi in g.output]
    graph = LayerGraph(format=fmt, source=source, nodes=nodes, inputs=inputs, outputs=outputs)
    graph.build_edges()
    missing = sum(1 for n in nodes for s in n.output_shapes if s is None)
    if missing:
        graph.notes.append(f"{missing} tensor shape(s) could not be inferred; their layers are uncounted")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    graph.notes.append("opset " + ", ".join(f"{d} {v}" for d, v in opsets.items()))
    return graph


def _drop_large_data(model) -> None:
    """Drop the data of large float tensors: counting needs dims only, and it keeps shape inference cheap."""
    from onnx import TensorProto

    keep = {TensorProto.INT64, TensorProto.INT32}
    for t in _all_tensors(model):
        if t.data_type in keep:
            continue
        if t.HasField("raw_data") and len(t.raw_data) > _KEEP_BYTES:
            t.ClearField("raw_data")
        elif len(t.float_data) * 4 > _KEEP_BYTES:
            t.ClearField("float_data")
        if t.external_data and t.data_location == TensorProto.EXTERNAL:
            del t.external_data[:]
            t.data_location = TensorProto.DEFAULT


def _infer(model, source: str) -> tuple[dict, dict]:
    """Shapes and dtypes of every tensor, by ONNX shape inference, then ONNX Runtime's symbolic inference."""
    import onnx

    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}

    def collect(m) -> None:
        for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
            tt = vi.type.tensor_type
            dims = _value_shape(vi)
            if tt.HasField("shape") and all(isinstance(d, int) and d >= 0 for d in dims):
                shapes.setdefault(vi.name, tuple(dims))  # () is a scalar
            if vi.type.tensor_type.elem_type:
                dtypes.setdefault(vi.name, _dtype(vi.type.tensor_type.elem_type))

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        collect(inferred)
    except Exception:  # noqa: BLE001 - inference failures are reported as uncounted layers, not fatal
        inferred = model
    produced = {t for n in model.graph.node for t in n.output if t}
    if produced - set(shapes):
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            more = SymbolicShapeInference.infer_shapes(_without_dropped_data(inferred), auto_merge=True,
                                                       guess_output_rank=True)
            if more is not None:
                collect(more)
        except Exception:  # noqa: BLE001 - best effort; remaining gaps are reported
            pass
    return shapes, dtypes


def _without_dropped_data(model):
    """A copy where initializers whose data was dropped become graph inputs of the same shape.

    ONNX Runtime's symbolic inference converts every initializer to an array; an emptied one would fail. As inputs
    they keep their shapes, which is all inference needs. Only small tensors are copied (the large ones are empty).
    """
    import onnx
    from onnx import helper

    light = onnx.ModelProto()
    light.CopyFrom(model)
    g = light.graph
    keep, moved = [], []
    for t in g.initializer:
        empty = not (t.raw_data or t.float_data or t.int64_data or t.int32_data or t.double_data)
        if empty and any(t.dims):
            moved.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            keep.append(t)
    if moved:
        del g.initializer[:]
        g.initializer.extend(keep)
        g.input.extend(moved)
    return light


def _attributes(pn) -> dict:
    from onnx import helper

    out = {}
    for attr in pn.attribute:
        if attr.type in (attr.GRAPH, attr.GRAPHS):
            out[attr.name] = "<subgraph>"
        elif attr.type == attr.TENSOR:
            out[attr.name] = f"<tensor {list(attr.t.dims)}>"
        else:
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list):
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
            out[attr.name] = value
    return out


def _scope(pn, weight_names: list[str]) -> tuple[str, str]:
    """Module path of a node: exporter metadata, else the node name's path, else its weight's name."""
    for prop in pn.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                scopes = []
            if scopes:
                return _join_path(scopes), "module"
    if "/" in pn.name:
        parts = [p for p in pn.name.split("/") if p][:-1]
        if parts:
            return _join_path(parts), "derived"
    if weight_names and "." in weight_names[0]:
        return weight_names[0].rsplit(".", 1)[0], "derived"
    return "", "derived"


def _join_path(parts: list[str]) -> str:
    """Join name-scope parts into a module path.

    Exporters write each part relative to the module that holds it, and a container's children carry the
    container's name: ``features / features.1 / conv / conv.0 / conv.0.0`` is ``features.1.conv.0.0``. A part that
    extends the previous part (``conv.0`` after ``conv``) shares the previous part's base; any other part is a child
    of the path so far.
    """
    base = full = prev = ""
    for p in (p.strip(".") for p in parts):
        if not p or p == prev:
            continue
        if not (prev and p.startswith(prev + ".")):
            base = full
        full = f"{base}.{p}" if base else p
        prev = p
    return full


def _inherit_scopes(nodes: list[Node]) -> None:
    """Give scope-less nodes the scope of the node that produced their first input."""
    producer = {t: n for n in nodes for t in n.outputs}
    for n in nodes:
        if n.scope:
            continue
        for t in n.inputs:
            src = producer.get(t)
            if src is not None and src.scope:
                n.scope = src.scope if src.scope_source == "derived" and not src.weights else _parent(src.scope)
                n.scope_source = "derived"
                break


def _parent(scope: str) -> str:
    return scope.rsplit(".", 1)[0] if "." in scope else ""
