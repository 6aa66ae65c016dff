"""The ONNX reader on hand-built and exported models, including the shapes real exporters produce."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.core.errors import CorruptModel, InputShapeError, WorkbenchError
from workbench.core.readers import OpenRequest, open_model
from workbench.core.shapes import ShapeRequest


def _conv_model(weights_in_constants: bool, dims=(1, 3, 16, 16)) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.weight")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv.bias")
    fc = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc.weight")
    nodes, inits = [], []
    if weights_in_constants:
        for t in (w, b, fc):
            nodes.append(helper.make_node("Constant", [], [t.name], value=t))
    else:
        inits = [w, b, fc]
    nodes += [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="/features/conv/Conv",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="/features/relu/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        helper.make_node("Gemm", ["f", "fc.weight"], ["y"], name="/fc/Gemm", transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


EXPECTED_PARAMS = 8 * 3 * 9 + 8 + 80
EXPECTED_MACS = 8 * 16 * 16 * 27 + 8 * 256 + 8 * 256 + 80  # conv, relu, global pool, gemm


def _open(path: Path, *shapes: str):
    return open_model(OpenRequest(path=path, shapes=ShapeRequest.parse(list(shapes))))


@pytest.mark.parametrize("constants", [False, True], ids=["initializers", "constant-nodes"])
def test_weights_in_initializers_or_constant_nodes_count_the_same(tmp_path, constants):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(constants), path)
    g = _open(path)
    assert g.params == EXPECTED_PARAMS
    assert g.macs == EXPECTED_MACS
    assert [n.op_type for n in g.nodes] == ["Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    conv = g.nodes[0]
    assert conv.weights == ["conv.weight", "conv.bias"] and conv.output_shapes == [(1, 8, 16, 16)]
    assert conv.scope == "features.conv" and g.nodes[4].scope == "fc"
    assert g.outputs[0].shape == [1, 10]
    assert [(e.src, e.dst) for e in g.edges] == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_all_dynamic_dimensions_need_and_take_an_input_shape(tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(_conv_model(False, dims=("batch", "channels", "height", "width")), path)
    with pytest.raises(InputShapeError) as err:
        _open(path)
    assert "dynamic shape" in str(err.value) and "--input-shape x:" in str(err.value)
    g = _open(path, "2x3x16x16")
    assert g.macs == 2 * EXPECTED_MACS and g.inputs[0].shape == [2, 3, 16, 16]
    g = _open(path, "x:1x3x32x32")
    assert g.nodes[0].output_shapes == [(1, 8, 32, 32)]


def test_shape_that_contradicts_fixed_dims_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(False), path)
    with pytest.raises(InputShapeError, match="fixed size 3 on axis 1"):
        _open(path, "1x4x16x16")
    with pytest.raises(InputShapeError, match="no input named"):
        _open(path, "image:1x3x16x16")


def test_external_data_is_read_and_a_missing_file_is_named(tmp_path):
    model = _conv_model(False)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    assert _open(path).params == EXPECTED_PARAMS
    (tmp_path / "ext.data").unlink()
    with pytest.raises(WorkbenchError) as err:
        _open(path)
    assert "ext.data" in str(err.value) and "missing" in str(err.value)


def test_truncated_and_garbage_files_are_reported_as_corrupt(tmp_path):
    good = tmp_path / "m.onnx"
    onnx.save(_conv_model(False), good)
    data = good.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModel):
        _open(cut)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(CorruptModel):
        _open(junk)


def test_unknown_ops_are_listed_not_counted(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Frobnicate", ["r"], ["y"], name="custom", domain="com.example")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    g = _open(path)
    assert g.uncounted_ops == {"Frobnicate": 1}
    assert g.macs == 4  # the Relu only; the custom op is listed, not summed as zero
    assert g.nodes[1].macs is None


def test_exported_torch_model_gets_module_scopes_and_a_scope_tree(small_cnn):
    g = _open(small_cnn.onnx)
    convs = [n for n in g.nodes if n.op_type == "Conv"]
    assert convs and all(n.scope for n in convs)
    tree = g.scope_tree
    assert tree.params == g.params and tree.macs == g.macs
    top = {child.path for child in tree.children.values()}
    assert top  # module hierarchy exists
    for scope in tree.walk():
        assert scope.macs == sum(c.macs for c in scope.children.values()) + sum(
            g.nodes[i].macs or 0 for i in scope.node_indices)


def test_several_inputs_bind_by_name_or_position(tmp_path):
    a = helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["batch", 16])
    b = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((16, 4), np.float32) * np.arange(4, dtype=np.float32), "w")
    nodes = [helper.make_node("Mul", ["ids", "mask"], ["m"], name="mul"),
             helper.make_node("MatMul", ["m", "w"], ["y"], name="proj/MatMul")]
    model = helper.make_model(helper.make_graph(nodes, "g", [a, b], [y], initializer=[w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    with pytest.raises(InputShapeError, match="'ids' has dynamic shape"):
        _open(path)
    by_name = _open(path, "mask:3x16", "ids:3x16")
    by_position = _open(path, "3x16", "3x16")
    assert by_name.macs == by_position.macs == 3 * 16 + 3 * 4 * 16
    assert [s.shape for s in by_name.inputs] == [[3, 16], [3, 16]]
    with pytest.raises(InputShapeError, match="3 input shapes given"):
        _open(path, "3x16", "3x16", "3x16")


@pytest.mark.parametrize("parts, path", [
    (["features", "features.1", "conv", "conv.0", "conv.0.0"], "features.1.conv.0.0"),
    (["layer1", "layer1.0", "conv1"], "layer1.0.conv1"),
    (["layer1", "layer1.0", "downsample", "downsample.0"], "layer1.0.downsample.0"),
    (["", "encoder", "encoder.layers", "encoder.layers.0", "attn", "qkv"], "encoder.layers.0.attn.qkv"),
    (["model", "block", "conv"], "model.block.conv"),
])
def test_exporter_name_scopes_become_module_paths(parts, path):
    from workbench.core.readers.onnx_reader import _join_path

    assert _join_path(parts) == path


def test_onnx_scopes_match_the_torch_module_paths(mobilenet):
    g = _open(mobilenet.onnx)
    modules = {name for name, _ in mobilenet.module.named_modules()}
    convs = [n for n in g.nodes if n.op_type == "Conv"]
    assert convs and all(n.scope in modules for n in convs), [n.scope for n in convs if n.scope not in modules]
