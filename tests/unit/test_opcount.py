"""MAC rules, checked against hand-computed counts."""

from workbench.core.graph import Node
from workbench.core.opcount import count_macs, fold_batchnorm


def test_conv_counts_output_elements_times_kernel_and_input_channels():
    macs, _ = count_macs("Conv", {}, [(1, 16, 32, 32), (32, 16, 3, 3)], [(1, 32, 30, 30)])
    assert macs == 32 * 30 * 30 * 16 * 3 * 3


def test_grouped_and_depthwise_conv_use_channels_per_group():
    grouped, _ = count_macs("Conv", {"group": 4}, [(1, 16, 8, 8), (32, 4, 3, 3)], [(1, 32, 8, 8)])
    assert grouped == 32 * 8 * 8 * 4 * 9
    depthwise, _ = count_macs("Conv", {"group": 16}, [(1, 16, 8, 8), (16, 1, 3, 3)], [(1, 16, 8, 8)])
    assert depthwise == 16 * 8 * 8 * 9


def test_conv_transpose_counts_per_input_element():
    macs, _ = count_macs("ConvTranspose", {}, [(1, 8, 4, 4), (8, 3, 2, 2)], [(1, 3, 8, 8)])
    assert macs == 8 * 4 * 4 * 3 * 2 * 2


def test_gemm_respects_trans_a_and_batched_matmul():
    assert count_macs("Gemm", {}, [(2, 64), (64, 10)], [(2, 10)])[0] == 2 * 10 * 64
    assert count_macs("Gemm", {"transA": 1}, [(64, 2), (64, 10)], [(2, 10)])[0] == 2 * 10 * 64
    # attention scores: (batch, heads, L, E) @ (batch, heads, E, S)
    assert count_macs("MatMul", {}, [(1, 12, 197, 64), (1, 12, 64, 197)], [(1, 12, 197, 197)])[0] == \
        12 * 197 * 197 * 64


def test_fused_attention_counts_both_matmuls_and_softmax():
    q = (1, 12, 197, 64)
    macs, _ = count_macs("Attention", {}, [q, q, q], [q])
    scores = 12 * 197 * 197
    assert macs == scores * 64 * 2 + 3 * scores


def test_pooling_normalization_elementwise_softmax():
    assert count_macs("MaxPool", {"kernel_shape": [3, 3]}, [(1, 8, 16, 16)], [(1, 8, 8, 8)])[0] == 8 * 64 * 9
    assert count_macs("GlobalAveragePool", {}, [(1, 8, 7, 7)], [(1, 8, 1, 1)])[0] == 8 * 49
    assert count_macs("BatchNormalization", {}, [(1, 8, 4, 4)], [(1, 8, 4, 4)])[0] == 128
    assert count_macs("LayerNormalization", {}, [(1, 10, 16)], [(1, 10, 16)])[0] == 4 * 160
    assert count_macs("Add", {}, [(1, 8), (1, 8)], [(1, 8)])[0] == 8
    assert count_macs("Softmax", {}, [(2, 5)], [(2, 5)])[0] == 30
    assert count_macs("Reshape", {}, [(2, 5), (2,)], [(10,)])[0] == 0


def test_unknown_op_and_unknown_shapes_are_not_counted_as_zero():
    macs, why = count_macs("MyCustomOp", {}, [(1, 2)], [(1, 2)])
    assert macs is None and "no counting rule" in why
    macs, why = count_macs("Conv", {}, [(1, 3, 8, 8), None], [(1, 8, 8, 8)])
    assert macs is None and "shapes unknown" in why


def test_batchnorm_after_conv_is_folded_but_standalone_is_not():
    conv = Node("c", "Conv", inputs=["x"], outputs=["c"], macs=100)
    bn = Node("b", "BatchNormalization", inputs=["c"], outputs=["b"], macs=8)
    relu = Node("r", "Relu", inputs=["b"], outputs=["r"], macs=8)
    bn2 = Node("b2", "BatchNormalization", inputs=["r"], outputs=["b2"], macs=8)
    fold_batchnorm([conv, bn, relu, bn2])
    assert bn.macs == 0 and "folded into c" in bn.mac_rule
    assert bn2.macs == 8
