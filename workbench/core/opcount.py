"""Multiply-accumulate (MAC) counting rules, keyed by ONNX-style op type.

Every reader names its operators with ONNX op types (``Conv``, ``MatMul``, ``BatchNormalization``…), so one table
serves ONNX and PyTorch alike. The conventions are documented in docs/metrics.md:

* Conv, ConvTranspose, Gemm, MatMul and attention count one MAC per multiply-add (bias adds not counted), which is
  the convention of published figures (MobileNetV2 0.30 G, ResNet-50 4.1 G, ViT-B/16 17.6 G).
* Elementwise ops count one per output element, whatever the function (a ReLU and an Erf both count one).
* Normalization with stored statistics (inference BatchNormalization) counts one per element; when it directly
  follows a Conv/Gemm/MatMul it is folded into that layer by exporters and runtimes and counts zero
  (see :func:`fold_batchnorm`). Normalization that computes statistics at run time (LayerNorm…) counts four.
* Pooling counts the kernel window per output element; reductions count one per input element; Softmax three.
* Data movement (Reshape, Transpose, Concat, Gather…) counts zero by rule.
* Anything else has no rule: its MACs are ``None`` and the op is reported as uncounted.
"""

from __future__ import annotations

from math import prod
from typing import Any, Callable

Shape = tuple[int, ...]

ELEMENTWISE = frozenset(
    """Add Sub Mul Div Pow Mod Neg Abs Reciprocal Sqrt Exp Log Erf Sin Cos Floor Ceil Round Sign
    Relu LeakyRelu PRelu Elu Selu Celu Clip Sigmoid HardSigmoid HardSwish Tanh Softplus Softsign Mish Gelu
    Silu ThresholdedRelu Max Min Sum Mean Where Not And Or Xor Equal Greater Less GreaterOrEqual LessOrEqual
    IsNaN IsInf BitShift DynamicQuantizeLinear Resize Upsample CumSum Trilu
    Bernoulli RandomNormalLike RandomUniformLike Cast""".split()
)
# Cast converts every element, so it counts one per element like the other elementwise ops.

DATA_MOVEMENT = frozenset(
    """Reshape Transpose Flatten Squeeze Unsqueeze Concat Split Slice Gather GatherElements GatherND
    ScatterElements ScatterND Expand Tile Pad Identity Shape Size Constant ConstantOfShape Dropout Range
    NonZero DepthToSpace SpaceToDepth OneHot TopK ArgMax ArgMin EyeLike Compress Unique SplitToSequence
    SequenceConstruct SequenceAt SequenceInsert ConcatFromSequence Optional OptionalGetElement""".split()
)
# ArgMax/TopK compare rather than multiply-add; they are cheap next to the layers around them and are counted
# with the data-movement ops so the table stays honest about which ops have no rule at all.

REDUCTIONS = frozenset(
    "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp "
    "ReduceSumSquare GlobalAveragePool GlobalMaxPool GlobalLpPool".split()
)

MATMUL_LIKE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul",
                         "QLinearConv", "ConvInteger", "FusedConv", "FusedMatMul", "MatMulNBits"})


def _elems(shape: Shape | None) -> int | None:
    return None if shape is None else prod(shape)


def _conv(attrs, ins, outs, weight_index: int = 1):
    out, w = outs[0], ins[weight_index] if len(ins) > weight_index else None
    if out is None or w is None:
        return None
    return prod(out) * prod(w[1:])


def _conv_transpose(attrs, ins, outs):
    x, w = ins[0], ins[1] if len(ins) > 1 else None
    if x is None or w is None:
        return None
    return prod(x) * prod(w[1:])


def _gemm(attrs, ins, outs):
    a, out = ins[0], outs[0]
    if a is None or out is None:
        return None
    k = a[0] if attrs.get("transA") else a[-1]
    return prod(out) * k


def _matmul(attrs, ins, outs):
    a, out = ins[0], outs[0]
    if a is None or out is None:
        return None
    return prod(out) * a[-1]


def _matmul_nbits(attrs, ins, outs):
    out = outs[0]
    k = attrs.get("K")
    return None if out is None or k is None else prod(out) * int(k)


def _attention(attrs, ins, outs):
    # q (…, L, E), k (…, S, E), v (…, S, Ev): two matmuls plus a softmax over L×S scores.
    q, k, v = (ins + [None, None, None])[:3]
    if q is None or k is None or v is None:
        return None
    batch = prod(q[:-2])
    scores = batch * q[-2] * k[-2]
    return scores * q[-1] + scores * v[-1] + 3 * scores


def _recurrent(gates: int):
    def rule(attrs, ins, outs):
        x, w, r = (ins + [None, None, None])[:3]
        if x is None or w is None or r is None:
            return None
        seq, batch = x[0], x[1]
        dirs, hidden = w[0], r[-1]
        return dirs * seq * batch * gates * hidden * (x[-1] + hidden)
    return rule


def _pool(attrs, ins, outs):
    out = outs[0]
    kernel = attrs.get("kernel_shape")
    if out is None or not kernel:
        return None
    return prod(out) * prod(kernel)


def _per_input_element(attrs, ins, outs):
    return _elems(ins[0]) if ins else None


def _per_output_element(factor: int):
    def rule(attrs, ins, outs):
        n = _elems(outs[0]) if outs else None
        return None if n is None else factor * n
    return rule


Rule = Callable[[dict[str, Any], list[Shape | None], list[Shape | None]], int | None]

RULES: dict[str, tuple[Rule, str]] = {
    "Conv": (_conv, "output elements × input channels per group × kernel"),
    "ConvInteger": (_conv, "output elements × input channels per group × kernel"),
    "FusedConv": (_conv, "output elements × input channels per group × kernel"),
    "QLinearConv": (lambda a, i, o: _conv(a, i, o, weight_index=3), "output × Cin/group × kernel (int8)"),
    "ConvTranspose": (_conv_transpose, "input elements × output channels per group × kernel"),
    "Gemm": (_gemm, "M × N × K"),
    "MatMul": (_matmul, "output elements × K"),
    "FusedMatMul": (_matmul, "output elements × K"),
    "MatMulInteger": (_matmul, "output elements × K (int8)"),
    "QLinearMatMul": (_matmul, "output elements × K (int8)"),
    "MatMulNBits": (_matmul_nbits, "output elements × K (low-bit weights)"),
    "Attention": (_attention, "L×S×E + L×S×Ev + 3 per score (softmax)"),
    "LSTM": (_recurrent(4), "dirs × seq × batch × 4 gates × hidden × (input + hidden)"),
    "GRU": (_recurrent(3), "dirs × seq × batch × 3 gates × hidden × (input + hidden)"),
    "RNN": (_recurrent(1), "dirs × seq × batch × hidden × (input + hidden)"),
    "BatchNormalization": (_per_output_element(1), "1 per element (scale and shift)"),
    "LayerNormalization": (_per_output_element(4), "4 per element (mean, variance, normalise, affine)"),
    "GroupNormalization": (_per_output_element(4), "4 per element (mean, variance, normalise, affine)"),
    "InstanceNormalization": (_per_output_element(4), "4 per element (mean, variance, normalise, affine)"),
    "SimplifiedLayerNormalization": (_per_output_element(3), "3 per element (mean square, normalise, scale)"),
    "RMSNormalization": (_per_output_element(3), "3 per element (mean square, normalise, scale)"),
    "LpNormalization": (_per_output_element(3), "3 per element"),
    "Softmax": (_per_output_element(3), "3 per element (exp, sum, divide)"),
    "LogSoftmax": (_per_output_element(3), "3 per element (exp, sum, log-divide)"),
    "MaxPool": (_pool, "output elements × kernel window"),
    "AveragePool": (_pool, "output elements × kernel window"),
    "LpPool": (_pool, "output elements × kernel window"),
}
for _op in REDUCTIONS:
    RULES[_op] = (_per_input_element, "1 per input element")
for _op in ELEMENTWISE:
    RULES.setdefault(_op, (_per_output_element(1), "1 per output element"))
for _op in DATA_MOVEMENT:
    RULES[_op] = (lambda a, i, o: 0, "data movement: no arithmetic")
# In a QDQ int8 graph, QuantizeLinear/DequantizeLinear pairs mark where a layer runs on integers; the runtime fuses
# them into the integer kernel (QLinearConv, MatMulInteger…), so they add no arithmetic of their own. Counting them
# per element made an int8 model look heavier than its float original.
for _op in ("QuantizeLinear", "DequantizeLinear"):
    RULES[_op] = (lambda a, i, o: 0, "QDQ marker: fused into the integer kernel, 0")


def count_macs(op_type: str, attrs: dict[str, Any], input_shapes: list[Shape | None],
               output_shapes: list[Shape | None]) -> tuple[int | None, str]:
    """MACs of one operator and the rule used; ``(None, reason)`` when no rule applies or shapes are unknown."""
    entry = RULES.get(op_type)
    if entry is None:
        return None, "no counting rule for this op type"
    rule, text = entry
    try:
        macs = rule(attrs, list(input_shapes), list(output_shapes))
    except (IndexError, TypeError, ValueError):
        macs = None
    if macs is None:
        return None, "shapes unknown: " + text
    return int(macs), text


def fold_batchnorm(nodes) -> None:
    """Count BatchNormalization as zero MACs where it directly follows a Conv/Gemm/MatMul.

    Exporters (torch.onnx in eval mode) and runtimes fold such a BatchNormalization into the weights of the layer
    before it, so it costs nothing at deployment; counting it would also make the same model's PyTorch and ONNX
    figures disagree. A BatchNormalization anywhere else keeps its one MAC per element.
    """
    producer = {t: n for n in nodes for t in n.outputs}
    consumers: dict[str, int] = {}
    for n in nodes:
        for t in n.inputs:
            consumers[t] = consumers.get(t, 0) + 1
    for n in nodes:
        if n.op_type != "BatchNormalization" or not n.inputs:
            continue
        src = producer.get(n.inputs[0])
        if src is not None and src.op_type in MATMUL_LIKE and consumers.get(n.inputs[0], 0) == 1:
            n.macs = 0
            n.mac_rule = f"folded into {src.name} at deployment"
