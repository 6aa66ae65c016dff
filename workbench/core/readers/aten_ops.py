"""How ATen operators (as seen below autograd) map onto the ONNX-style op types the counters use."""

from __future__ import annotations

from typing import Any

# ATen op (overload packet name, trailing "_" of in-place ops removed) → op type.
SIMPLE = {
    "addmm": "Gemm", "mm": "MatMul", "bmm": "MatMul", "baddbmm": "MatMul", "matmul": "MatMul", "linear": "Gemm",
    "native_batch_norm": "BatchNormalization", "_native_batch_norm_legit_no_training": "BatchNormalization",
    "_native_batch_norm_legit": "BatchNormalization", "batch_norm": "BatchNormalization",
    "native_layer_norm": "LayerNormalization", "layer_norm": "LayerNormalization",
    "native_group_norm": "GroupNormalization", "group_norm": "GroupNormalization",
    "_fused_rms_norm": "RMSNormalization", "rms_norm": "RMSNormalization",
    "relu": "Relu", "hardtanh": "Clip", "clamp": "Clip", "clamp_min": "Clip", "clamp_max": "Clip",
    "gelu": "Gelu", "silu": "Silu", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid", "leaky_relu": "LeakyRelu", "elu": "Elu", "selu": "Selu", "softplus": "Softplus",
    "mish": "Mish", "prelu": "PRelu", "_prelu_kernel": "PRelu", "erf": "Erf", "exp": "Exp", "log": "Log",
    "sqrt": "Sqrt", "rsqrt": "Reciprocal", "pow": "Pow", "neg": "Neg", "abs": "Abs", "reciprocal": "Reciprocal",
    "where": "Where", "maximum": "Max", "minimum": "Min", "sin": "Sin", "cos": "Cos", "floor": "Floor",
    "ceil": "Ceil", "round": "Round", "sign": "Sign", "eq": "Equal", "gt": "Greater", "lt": "Less",
    "ge": "GreaterOrEqual", "le": "LessOrEqual", "logical_not": "Not", "logical_and": "And", "logical_or": "Or",
    "add": "Add", "sub": "Sub", "rsub": "Sub", "mul": "Mul", "div": "Div", "fmod": "Mod", "remainder": "Mod",
    "_softmax": "Softmax", "softmax": "Softmax", "_log_softmax": "LogSoftmax", "log_softmax": "LogSoftmax",
    "mean": "ReduceMean", "sum": "ReduceSum", "amax": "ReduceMax", "amin": "ReduceMin", "prod": "ReduceProd",
    "var": "ReduceMean", "var_mean": "ReduceMean", "std": "ReduceMean", "norm": "ReduceL2",
    "linalg_vector_norm": "ReduceL2", "argmax": "ArgMax", "argmin": "ArgMin", "topk": "TopK", "cumsum": "CumSum",
    "view": "Reshape", "_unsafe_view": "Reshape", "reshape": "Reshape", "flatten": "Flatten",
    "view_as": "Reshape", "unflatten": "Reshape", "permute": "Transpose", "transpose": "Transpose", "t": "Transpose",
    "unsqueeze": "Unsqueeze", "squeeze": "Squeeze", "cat": "Concat", "concat": "Concat", "stack": "Concat",
    "split": "Split", "split_with_sizes": "Split", "chunk": "Split", "unbind": "Split", "slice": "Slice",
    "select": "Gather", "narrow": "Slice", "index": "Gather", "index_select": "Gather", "embedding": "Gather",
    "gather": "GatherElements", "expand": "Expand", "repeat": "Tile", "constant_pad_nd": "Pad", "pad": "Pad",
    "reflection_pad2d": "Pad", "replication_pad2d": "Pad", "_to_copy": "Cast", "to": "Cast",
    "upsample_nearest2d": "Resize", "upsample_bilinear2d": "Resize", "_upsample_bilinear2d_aa": "Resize",
    "upsample_nearest1d": "Resize", "upsample_linear1d": "Resize", "pixel_shuffle": "DepthToSpace",
    "pixel_unshuffle": "SpaceToDepth", "dropout": "Dropout", "native_dropout": "Dropout", "tril": "Trilu",
    "triu": "Trilu", "masked_fill": "Where", "roll": "Slice", "flip": "Slice",
    "_scaled_dot_product_flash_attention_for_cpu": "Attention", "_scaled_dot_product_attention_math": "Attention",
    "scaled_dot_product_attention": "Attention", "_scaled_dot_product_efficient_attention": "Attention",
    "_scaled_dot_product_flash_attention": "Attention", "max_pool2d_with_indices": "MaxPool",
    "max_pool2d": "MaxPool", "max_pool1d": "MaxPool", "max_pool3d_with_indices": "MaxPool",
    "max_pool1d_with_indices": "MaxPool", "avg_pool2d": "AveragePool", "avg_pool1d": "AveragePool",
    "avg_pool3d": "AveragePool", "_adaptive_avg_pool2d": "AdaptiveAvgPool", "adaptive_avg_pool2d": "AdaptiveAvgPool",
    "adaptive_avg_pool1d": "AdaptiveAvgPool", "_adaptive_avg_pool3d": "AdaptiveAvgPool",
    "adaptive_max_pool2d": "AdaptiveMaxPool", "convolution": "Conv", "_convolution": "Conv",
}

# Ops that return their input (or an alias of it) and carry no meaning in a layer graph.
TRANSPARENT = frozenset({"detach", "alias", "lift_fresh", "lift_fresh_copy", "clone", "contiguous",
                         "_conj", "resolve_conj", "resolve_neg", "copy", "_assert_tensor_metadata"})

# Ops that create tensors from nothing (their results are constants, not layers).
CREATION = frozenset({"empty", "zeros", "ones", "full", "arange", "scalar_tensor", "empty_like", "zeros_like",
                      "ones_like", "full_like", "rand", "randn", "empty_strided", "new_empty", "new_zeros",
                      "new_ones", "new_full", "tensor", "sym_size", "sym_numel", "_local_scalar_dense",
                      "item", "linspace", "eye", "randn_like", "rand_like", "bernoulli", "normal"})


def _ints(v) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [int(x) for x in v]
    return [int(v)]


def classify(name: str, args: tuple, kwargs: dict, input_shapes: list) -> tuple[str, dict[str, Any]]:
    """Return (op type, attributes) for an ATen op; unknown ops become ``aten::NAME``."""
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    op = SIMPLE.get(base)
    if op is None:
        return f"aten::{name}", {}
    attrs: dict[str, Any] = {}
    if op == "Conv":
        w = input_shapes[1] if len(input_shapes) > 1 else None
        stride, padding, dilation, transposed = args[3], args[4], args[5], bool(args[6])
        groups = int(args[8]) if len(args) > 8 else 1
        attrs = {"kernel_shape": list(w[2:]) if w else None, "strides": _ints(stride), "pads": _ints(padding),
                 "dilations": _ints(dilation), "group": groups}
        if transposed:
            op = "ConvTranspose"
            attrs["output_padding"] = _ints(args[7])
    elif op == "MaxPool":
        k = _ints(args[1])
        attrs = {"kernel_shape": k, "strides": _ints(args[2]) if len(args) > 2 and args[2] else k,
                 "pads": _ints(args[3]) if len(args) > 3 else [0]}
    elif op == "AveragePool":
        k = _ints(args[1])
        attrs = {"kernel_shape": k, "strides": _ints(args[2]) if len(args) > 2 and args[2] else k}
    elif op in ("AdaptiveAvgPool", "AdaptiveMaxPool"):
        out = _ints(args[1])
        x = input_shapes[0]
        kind = "Average" if op == "AdaptiveAvgPool" else "Max"
        if all(o == 1 for o in out):
            op = f"Global{kind}Pool"
        else:
            op = f"{kind}Pool"
            spatial = list(x[-len(out):]) if x else []
            # Adaptive pooling whose input is a multiple of the output is an ordinary pool with this window.
            attrs = {"kernel_shape": [max(1, -(-s // o)) for s, o in zip(spatial, out)], "output_size": out}
    elif op == "Clip":
        if base == "hardtanh":
            attrs = {"min": float(args[1]) if len(args) > 1 else -1.0, "max": float(args[2]) if len(args) > 2 else 1.0}
    elif op == "Gelu":
        attrs = {"approximate": kwargs.get("approximate", "none")}
    elif op in ("Softmax", "LogSoftmax", "Concat"):
        if len(args) > 1 and isinstance(args[1], int):
            attrs = {"axis": args[1]}
    elif op == "Transpose" and base == "permute":
        attrs = {"perm": _ints(args[1])}
    elif op == "Reshape" and len(args) > 1 and isinstance(args[1], (list, tuple)):
        attrs = {"shape": [int(x) for x in args[1]]}
    attrs["aten"] = name
    return op, attrs
