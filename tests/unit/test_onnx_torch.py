"""ONNX → PyTorch conversion (workbench.core.onnx_torch) and the PyTorch-layer methods on ONNX input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from model_files import export_onnx as export_fixed_batch
from model_files import randomize
from workbench.core import architectures
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.errors import WorkbenchError
from workbench.core.methods import RunContext, run_to_end
from workbench.core.onnx_torch import onnx_to_torch
from workbench.core.readers import open_model
from workbench.core.readers.base import OpenRequest
from workbench.core.shapes import ShapeRequest
from workbench.methods.finetune import FineTune
from workbench.methods.pruning import ChannelPruning, MagnitudePruning

MOBILENET_SHAPE = (1, 3, 96, 96)
RESNET_SHAPE = (1, 3, 64, 64)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _open(path: Path, shape: tuple) -> ModelArtifact:
    graph = open_model(OpenRequest(path=path, shapes=ShapeRequest(by_position=[shape])))
    return ModelArtifact.from_graph(graph)


def _export_dynamic(module, shape, path: Path) -> Path:
    """What ``workbench.core.artifact.export_onnx`` writes: batch axis dynamic, opset 17."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory, demo_setup, small_cnn) -> dict[str, tuple[Path, tuple, object]]:
    """name -> (ONNX file, input shape, the PyTorch module it was exported from)."""
    folder = tmp_path_factory.mktemp("onnx_torch")
    _, demo_artifact, _ = demo_setup
    out = {"demo": (export_onnx(demo_artifact, folder / "demo.onnx").path, (1, 1, 28, 28), demo_artifact.load_torch()),
           "small_cnn": (small_cnn.onnx, small_cnn.shape, small_cnn.module)}
    for name, shape in (("mobilenet_v2", MOBILENET_SHAPE), ("resnet18", RESNET_SHAPE)):
        module = randomize(architectures.build(name))
        out[f"{name}_fixed"] = (export_fixed_batch(module, shape, folder / f"{name}_fixed.onnx"), shape, module)
        out[f"{name}_dynamic"] = (_export_dynamic(module, shape, folder / f"{name}_dynamic.onnx"), shape, module)
    return out


# ---- conversion --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["demo", "small_cnn", "mobilenet_v2_fixed", "mobilenet_v2_dynamic", "resnet18_fixed",
                                  "resnet18_dynamic"])
def test_conversion_reproduces_onnx_runtime_with_real_layers(onnx_models, name):
    path, shape, source = onnx_models[name]
    proto = onnx.load(str(path))
    module = onnx_to_torch(proto, [shape])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ours = module(torch.from_numpy(x)).numpy()
    assert np.abs(ours - _run_ort(path, x)).max() < 1e-4

    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    layers = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == len(convs)  # every Conv became an nn.Conv2d, with its groups
    groups = sorted(next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs)
    assert sorted(m.groups for m in layers) == groups
    assert any(isinstance(m, nn.Linear) for m in module.modules())
    # Every Conv/Gemm is reachable by the name the layer graph shows for it.
    shown = {n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm")}
    assert shown <= set(module.onnx_layers)
    # The leading dimension stays free: another batch size gives what the source module gives.
    x3 = torch.randn(3, *shape[1:])
    with torch.no_grad():
        assert (module(x3) - source(x3)).abs().max() < 1e-4


class _Zoo(nn.Module):
    """Most ops a CNN/MLP export contains, in one small model."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8)
        self.dw, self.pw = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 1)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.c3, self.bn3 = nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16)
        self.up = nn.ConvTranspose2d(16, 4, 2, stride=2)
        self.c1d = nn.Conv1d(16, 16, 3, padding=1)
        self.tokens = nn.Linear(16, 12)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        x = F.hardswish(self.bn1(self.c1(F.pad(x, (0, 1, 0, 1)))))
        y = torch.cat([F.leaky_relu(self.pw(self.dw(x)), 0.1), F.silu(F.gelu(self.dilated(x)))], 1)
        y = F.max_pool2d(y, 3, 2, ceil_mode=True)
        y = torch.tanh(self.bn3(self.c3(y))) + torch.sigmoid(y) * F.hardsigmoid(y) - y / 4
        y = F.avg_pool2d(y, 2, padding=1, count_include_pad=False)
        u = self.up(y).mean(dim=(2, 3), keepdim=True)
        t = F.relu(self.c1d(y.flatten(2))).transpose(1, 2)
        t = self.tokens(t)[:, :4]  # MatMul + Add (3-d input), then Slice
        z = self.fc(t.reshape(t.size(0), -1))  # Shape → Gather → Unsqueeze → Concat → Reshape
        return torch.softmax(z, -1) + u.reshape(u.size(0), -1).sum(1, keepdim=True)


@pytest.mark.parametrize("mode", ["eval", "batchnorm_kept"])
def test_conversion_of_many_ops(tmp_path, mode):
    torch.manual_seed(0)
    model = _Zoo().eval()
    for bn in (model.bn1, model.bn3):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    shape = (1, 3, 33, 33)
    path = tmp_path / "zoo.onnx"
    keep = mode == "batchnorm_kept"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["out"], dynamic_axes={"input": {0: "b"}},
                          training=torch.onnx.TrainingMode.PRESERVE if keep else torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=not keep)
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"Pad", "Concat", "Erf", "MatMul", "Shape", "Gather", "Reshape", "ConvTranspose", "Slice"} <= ops
    assert ("BatchNormalization" in ops) == keep
    module = onnx_to_torch(proto, [shape])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        assert np.abs(module(torch.from_numpy(x)).numpy() - _run_ort(path, x)).max() < 1e-4
        x2 = torch.randn(2, *shape[1:])
        assert (module(x2) - model(x2)).abs().max() < 1e-4
    kinds = {type(m) for m in module.modules()}
    assert {nn.Conv1d, nn.ConvTranspose2d, nn.Linear, nn.Hardswish, nn.LeakyReLU} <= kinds
    assert (nn.BatchNorm2d in kinds) == keep


def _tensor(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def test_conversion_of_hand_written_graph(tmp_path):
    """Attributes the PyTorch exporter never writes: asymmetric and SAME pads, Gemm without transB, alpha/beta,
    Clip to other bounds, HardSigmoid with ONNX's defaults, axes as inputs (opset 18)."""
    rng = np.random.default_rng(2)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv_asym", pads=[0, 1, 2, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"], name="clip"),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], name="conv_same", auto_pad="SAME_UPPER", strides=[2, 2],
                         group=2),
        helper.make_node("HardSigmoid", ["c2"], ["a2"], name="hsig"),
        helper.make_node("MaxPool", ["a2"], ["p"], name="pool", kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("ReduceMean", ["p", "axes"], ["r"], name="mean", keepdims=0),
        helper.make_node("Gemm", ["r", "wg", "bg"], ["g"], name="gemm", alpha=0.5, beta=2.0),
        helper.make_node("Unsqueeze", ["g", "ax1"], ["u"], name="unsq"),
        helper.make_node("Squeeze", ["u", "ax1"], ["s"], name="sq"),
        helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=1),
    ]
    inits = [_tensor("w1", f32(4, 3, 3, 3)), _tensor("b1", f32(4)), _tensor("lo", np.float32(-0.5)),
             _tensor("hi", np.float32(1.5)), _tensor("w2", f32(6, 2, 3, 3)), _tensor("axes", np.int64([2, 3])),
             _tensor("wg", f32(6, 5)), _tensor("bg", f32(5)), _tensor("ax1", np.int64([1]))]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 17, 17])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    path = tmp_path / "hand.onnx"
    onnx.save(proto, str(path))
    module = onnx_to_torch(proto, [(1, 3, 17, 17)])
    x = f32(1, 3, 17, 17)
    with torch.no_grad():
        assert np.abs(module(torch.from_numpy(x)).numpy() - _run_ort(path, x)).max() < 1e-4
    assert isinstance(getattr(module, module.onnx_layers["gemm"]), nn.Linear)
    assert isinstance(getattr(module, module.onnx_layers["clip"]), nn.Hardtanh)


def _einsum_model(path: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Einsum", ["r", "w"], ["y"], name="mix_tokens", equation="bi,ij->bj")]
    graph = helper.make_graph(nodes, "unsupported", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [_tensor("w", np.ones((4, 3), np.float32))])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


def test_unsupported_op_names_the_node_and_op(tmp_path):
    path = _einsum_model(tmp_path / "einsum.onnx")
    with pytest.raises(WorkbenchError) as err:
        onnx_to_torch(onnx.load(str(path)), [(1, 4)])
    message = str(err.value)
    assert "'mix_tokens'" in message and "op Einsum" in message and "quantize instead" in message
    # The method says the same, without writing anything.
    work = tmp_path / "work"
    method = ChannelPruning()
    with pytest.raises(WorkbenchError, match="mix_tokens.*Einsum"):
        run_to_end(method.run(_open(path, (1, 4)), method.parse_params({}), RunContext(work_dir=work)))
    assert not work.exists() or not any(work.iterdir())


# ---- prune.channels on ONNX ---------------------------------------------------------------------------------
def _conv_shapes(path: Path) -> dict[str, list]:
    proto = onnx.load(str(path))
    return {i.name: list(i.dims) for i in proto.graph.initializer}


def test_prune_channels_on_mobilenet_onnx_gives_a_smaller_onnx(onnx_models, tmp_path):
    path, shape, _ = onnx_models["mobilenet_v2_dynamic"]
    graph = open_model(OpenRequest(path=path, shapes=ShapeRequest(by_position=[shape])))
    artifact = ModelArtifact.from_graph(graph)
    method = ChannelPruning()
    params = method.parse_params({"ratio": 0.5})
    estimate = method.estimate(graph, params)
    result = run_to_end(method.run(artifact, params, RunContext(work_dir=tmp_path / "w")))
    assert result.format == "onnx" and result.path.suffix == ".onnx"
    after = result.graph()
    assert after.macs < 0.4 * graph.macs and after.params < 0.5 * graph.params
    assert after.macs == estimate.macs  # same ratio everywhere: the analytic estimate is exact
    assert result.meta["macs_after"] == after.macs
    # ONNX Runtime runs it, with the same input/output names, at another batch size too.
    session = _session(result.path)
    assert [i.name for i in session.get_inputs()] == ["input"] and session.get_outputs()[0].name == "output"
    out = session.run(None, {"input": np.random.default_rng(3).standard_normal((2, *shape[1:])).astype(np.float32)})
    assert out[0].shape == (2, 1000)
    # Per-layer figures are keyed by the ONNX layer names the user saw.
    assert "/features/features.0/features.0.0/Conv" in result.meta["channels"]
    assert result.meta["kept_whole"] == ["/classifier/classifier.1/Gemm"]


def test_prune_channels_at_ratio_zero_keeps_the_function(onnx_models, tmp_path):
    """Convert → (no pruning) → export back gives the same outputs: the round trip itself loses nothing."""
    path, shape, _ = onnx_models["resnet18_fixed"]
    method = ChannelPruning()
    result = run_to_end(method.run(_open(path, shape), method.parse_params({"ratio": 0.0}),
                                   RunContext(work_dir=tmp_path / "w")))
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    assert np.abs(_run_ort(result.path, x) - _run_ort(path, x)).max() < 1e-4
    assert result.meta["channels"] == {}


def test_prune_channels_keeps_residual_adds_consistent(onnx_models, tmp_path):
    path, shape, _ = onnx_models["resnet18_fixed"]
    method = ChannelPruning()
    result = run_to_end(method.run(_open(path, shape), method.parse_params({"ratio": 0.5}),
                                   RunContext(work_dir=tmp_path / "w")))
    after = result.graph()
    adds = [n for n in after.nodes if n.op_type == "Add"]
    assert len(adds) == 8
    for node in adds:  # both sides of every residual add were narrowed together
        assert node.input_shapes[0] == node.input_shapes[1] == node.output_shapes[0]
        assert node.output_shapes[0][1] < 512
    assert result.meta["channels"]["/layer1/layer1.0/conv2/Conv"] == [64, 32]
    assert result.meta["channels"]["/conv1/Conv"] == [64, 32]  # coupled to layer1's adds
    assert _run_ort(result.path, np.zeros(shape, np.float32)).shape == (1, 1000)


def test_per_layer_exclusion_and_ratio_by_onnx_name(onnx_models, tmp_path):
    path, shape, _ = onnx_models["mobilenet_v2_fixed"]
    artifact = _open(path, shape)
    excluded = "/features/features.2/conv/conv.0/conv.0.0/Conv"
    override = "features.3.conv.0.0"  # a scope, as the graph's tree shows it
    method = ChannelPruning()
    result = run_to_end(method.run(artifact, method.parse_params({"ratio": 0.5, "exclude": [excluded]}),
                                   RunContext(work_dir=tmp_path / "w", overrides={override: {"ratio": 0.25}})))
    module = torch.load(str(result.path.parent / result.meta["module_file"]), weights_only=False)
    layers = onnx_to_torch(onnx.load(str(path)), [shape]).onnx_layers  # ONNX node name -> submodule
    assert getattr(module, layers[excluded]).out_channels == 96  # untouched
    assert excluded not in result.meta["channels"]
    assert result.meta["channels"]["/features/features.3/conv/conv.0/conv.0.0/Conv"] == [144, 112]  # 108 → 112 (/8)
    assert result.meta["channels"]["/features/features.4/conv/conv.0/conv.0.0/Conv"] == [144, 72]
    # The pruned ONNX file carries the same widths.
    shapes = _conv_shapes(result.path)
    assert shapes[layers[excluded] + ".weight"][0] == 96
    assert shapes[layers["/features/features.3/conv/conv.0/conv.0.0/Conv"] + ".weight"][0] == 112
    # The pruned file names its layers after the submodules; the next step finds them by those names.
    renamed = next(n.name for n in onnx.load(str(result.path)).graph.node if n.op_type == "Gemm")
    assert module.onnx_layers[renamed] == "classifier_1"
    sparse = run_to_end(MagnitudePruning().run(result, MagnitudePruning().parse_params({"sparsity": 0.0}),
                                               RunContext(work_dir=tmp_path / "m",
                                                          overrides={renamed: {"sparsity": 0.75}})))
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(sparse.path)).graph.initializer}
    assert float((weights["classifier_1.weight"] == 0).mean()) == pytest.approx(0.75, abs=0.01)
    assert float((weights[layers[excluded] + ".weight"] == 0).mean()) == 0.0
    with pytest.raises(WorkbenchError, match="no layer or scope named 'features.99'"):
        run_to_end(method.run(artifact, method.parse_params({"exclude": ["features.99"]}),
                              RunContext(work_dir=tmp_path / "w2")))


# ---- other methods on ONNX ----------------------------------------------------------------------------------
def test_magnitude_pruning_on_onnx(onnx_models, tmp_path):
    path, shape, _ = onnx_models["small_cnn"]
    method = MagnitudePruning()
    gemm = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Gemm")
    result = run_to_end(method.run(_open(path, shape), method.parse_params({"sparsity": 0.5}),
                                   RunContext(work_dir=tmp_path / "w", overrides={gemm: {"sparsity": 0.9}})))
    assert result.format == "onnx"
    before, after = _conv_shapes(path), _conv_shapes(result.path)
    assert sorted(before.values()) == sorted(after.values())  # shapes unchanged
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(result.path)).graph.initializer}
    fractions = sorted(float((w == 0).mean()) for w in weights.values() if w.ndim >= 2)
    assert fractions[-1] == pytest.approx(0.9, abs=0.01)  # the Gemm override
    assert all(f == pytest.approx(0.5, abs=0.01) for f in fractions[:-1])
    assert _run_ort(result.path, np.zeros(shape, np.float32)).shape == (1, 10)


def test_finetune_on_onnx_returns_onnx_that_learned(onnx_models, demo_setup, tmp_path):
    from workbench.core.data import DataBundle

    _, _, data = demo_setup
    path, shape, _ = onnx_models["demo"]
    small = DataBundle("demo-small", data.train.take(256), data.val.take(128), data.train.take(64))
    method = FineTune()
    result = run_to_end(method.run(_open(path, shape), method.parse_params({"epochs": 1, "batch_size": 32}),
                                   RunContext(work_dir=tmp_path / "w", data=small)))
    assert result.format == "onnx"
    assert result.meta["val_accuracy"][0] is not None
    before = _run_ort(path, small.val.x[:16].astype(np.float32))
    after = _run_ort(result.path, small.val.x[:16].astype(np.float32))
    assert after.shape == before.shape and np.abs(after - before).max() > 1e-3  # the weights moved
