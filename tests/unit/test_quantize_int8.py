"""Int8 quantization with ONNX Runtime (quantize.int8_static, quantize.int8_dynamic) on real models."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench.core import architectures, evaluate
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.data import ArrayData, DataBundle, demo_data
from workbench.core.demo import demo_request
from workbench.core.errors import WorkbenchError
from workbench.core.methods import RunContext, run_to_end
from workbench.core.progress import CancelToken, Cancelled
from workbench.core.readers import open_model
from workbench.core.shapes import TensorSpec
from workbench.methods import quantize_int8
from workbench.methods.quantize_int8 import CONV_HEAVY_NOTE, DynamicInt8, StaticInt8

FAST = {"calibration_samples": 64}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    graph = open_model(demo_request())
    artifact = ModelArtifact.from_graph(graph)
    root = tmp_path_factory.mktemp("int8")
    return SimpleNamespace(graph=graph, artifact=artifact, data=demo_data(), root=root,
                           fp32=export_onnx(artifact, root / "fp32.onnx"))


def _run(method, artifact, values, ctx, progress=None):
    return run_to_end(method.run(artifact, method.parse_params(values), ctx), progress)


@pytest.fixture(scope="module")
def static_default(demo):
    """Static int8 with every default (256 calibration samples), run once for several tests."""
    logs, progress = [], []
    ctx = RunContext(work_dir=demo.root / "static", data=demo.data, log=logs.append)
    result = _run(StaticInt8(), demo.artifact, {}, ctx, progress.append)
    return SimpleNamespace(result=result, logs=logs, progress=progress, work=ctx.work_dir)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# ---- static --------------------------------------------------------------------------------------------------
def test_static_int8_keeps_demo_accuracy_runs_integer_kernels_and_shrinks(demo, static_default):
    result = static_default.result
    assert result.format == "onnx" and result.path == demo.root / "static" / "int8.onnx"
    assert result.inputs == demo.artifact.inputs
    onnx.checker.check_model(onnx.load(str(result.path)))
    ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])

    fp32 = evaluate.accuracy(demo.fp32, demo.data.val)
    int8 = evaluate.accuracy(result, demo.data.val)
    assert fp32.runtime == int8.runtime == "onnxruntime" and int8.samples == 1000
    assert fp32.points() > 97
    assert int8.points() >= fp32.points() - 0.5, (fp32.points(), int8.points())

    meta = result.meta
    assert meta["method"] == "quantize.int8_static" and meta["params"] == StaticInt8().parse_params({}).model_dump()
    assert meta["integer_ops"] > 0 and meta["activation_type"] == "uint8"
    assert meta["float_compute_ops"] == 0 and meta["float_op_names"] == []  # U8S8: every Conv/Gemm fused
    assert meta["op_types"].get("QLinearConv", 0) > 0 and "Conv" not in meta["op_types"]
    assert isinstance(meta["vnni"], bool) and meta["reduce_range"] is (not meta["vnni"])
    assert result.size_bytes <= 0.35 * demo.fp32.size_bytes, result.size_bytes / demo.fp32.size_bytes


def test_static_int8_reports_progress_and_leaves_only_its_output(static_default):
    fractions = [p.fraction for p in static_default.progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(p.message.startswith("calibrating") for p in static_default.progress)
    assert _files(static_default.work) == [static_default.work / "int8.onnx"]
    assert any("run as integer kernels" in line for line in static_default.logs)


@pytest.mark.parametrize("key", ["features.2.conv.0.0", "/features/features.2/conv/conv.0/conv.0.0/Conv",
                                 "features.2.conv.0.0/Conv"])
def test_per_layer_override_keeps_one_conv_in_float(demo, static_default, tmp_path, key):
    logs = []
    ctx = RunContext(work_dir=tmp_path, data=demo.data, overrides={key: {"quantize": False}}, log=logs.append)
    result = _run(StaticInt8(), demo.artifact, FAST, ctx)
    base = static_default.result.meta
    assert result.meta["float_compute_ops"] == base["float_compute_ops"] + 1
    assert result.meta["integer_ops"] == base["integer_ops"] - 1
    assert result.meta["float_op_names"] == ["/features/features.2/conv/conv.0/conv.0.0/Conv"]
    assert any("kept in float by per-layer override" in line for line in logs)
    assert evaluate.accuracy(result, demo.data.val).points() > 97


def test_override_of_a_scope_covers_every_layer_beneath_it(demo, tmp_path):
    logs = []
    ctx = RunContext(work_dir=tmp_path, data=demo.data, log=logs.append,
                     overrides={"features.2": {"quantize": False}, "no.such.layer": {"quantize": False}})
    result = _run(StaticInt8(), demo.artifact, FAST, ctx)
    assert result.meta["float_compute_ops"] == 3  # features.2: expand, depthwise, project convolutions
    assert all("features.2/" in name for name in result.meta["float_op_names"])
    assert any("'no.such.layer' matches no layer" in line for line in logs)


def test_calibration_data_of_the_wrong_shape_is_a_clear_error(demo, tmp_path):
    x = np.zeros((16, 1, 32, 32), np.float32)
    wrong = ArrayData("wrong", x, np.zeros(16, np.int64))
    ctx = RunContext(work_dir=tmp_path / "work", data=DataBundle("wrong", wrong, wrong, wrong))
    with pytest.raises(WorkbenchError) as err:
        _run(StaticInt8(), demo.artifact, FAST, ctx)
    assert "1x32x32" in str(err.value) and "1x28x28" in str(err.value)
    assert _files(ctx.work_dir) == []


def test_missing_calibration_data_says_how_to_provide_it(demo, tmp_path):
    ctx = RunContext(work_dir=tmp_path / "work")
    with pytest.raises(WorkbenchError, match="quantize.int8_static needs calibration data: pass --data demo or an "
                                             r"\.npz"):
        _run(StaticInt8(), demo.artifact, FAST, ctx)
    assert _files(ctx.work_dir) == []


def test_cancel_before_start_raises_cancelled_and_writes_nothing(demo, tmp_path):
    token = CancelToken()
    token.cancel()
    ctx = RunContext(work_dir=tmp_path / "work", token=token, data=demo.data)
    with pytest.raises(Cancelled):
        _run(StaticInt8(), demo.artifact, FAST, ctx)
    assert _files(ctx.work_dir) == []


@pytest.mark.parametrize("stage", ["exporting", "preparing", "calibrating", "computing ranges", "checking"])
def test_cancel_while_running_raises_cancelled_and_writes_nothing(demo, tmp_path, stage):
    token = CancelToken()
    ctx = RunContext(work_dir=tmp_path / "work", token=token, data=demo.data)
    seen = []

    def on_progress(p):
        seen.append(p.message)
        if p.message.startswith(stage):
            token.cancel()

    with pytest.raises(Cancelled):
        _run(StaticInt8(), demo.artifact, {"calibration_samples": 256}, ctx, on_progress)
    assert any(m.startswith(stage) for m in seen), seen
    assert _files(ctx.work_dir) == []


def test_bad_parameters_name_the_allowed_range():
    with pytest.raises(WorkbenchError, match="percentile"):
        StaticInt8().parse_params({"percentile": 80})
    with pytest.raises(WorkbenchError, match="minmax, entropy, percentile"):
        StaticInt8().parse_params({"calibration": "kl"})
    assert StaticInt8.Params.per_layer_fields() == ["quantize"] == DynamicInt8.Params.per_layer_fields()


@pytest.mark.parametrize("values", [{"calibration": "percentile", "percentile": 99.9},
                                    {"quant_format": "qoperator", "per_channel": False}])
def test_other_calibrations_and_formats_keep_accuracy(demo, tmp_path, values):
    result = _run(StaticInt8(), demo.artifact, {**FAST, **values}, RunContext(work_dir=tmp_path, data=demo.data))
    assert result.meta["integer_ops"] > 0
    assert evaluate.accuracy(result, demo.data.val).points() > 97


def test_stem_channel_padding_leaves_the_float_model_unchanged(demo):
    model = onnx.load(str(demo.fp32.path))
    padded, pads = quantize_int8._pad_stem_channels(model, set())
    assert padded == ["/features/features.0/features.0.0/Conv"] and len(pads) == 1
    onnx.checker.check_model(model)
    x = demo.data.val.x[:32]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, _run_onnx(demo.fp32.path, x), rtol=1e-4, atol=1e-4)


def test_reduce_range_auto_follows_vnni(monkeypatch):
    monkeypatch.setattr(quantize_int8.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(quantize_int8, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert quantize_int8.resolve_reduce_range("auto") is True
    monkeypatch.setattr(quantize_int8, "cpu_flags", lambda: {"avx2", "avx_vnni"})
    assert quantize_int8.resolve_reduce_range("auto") is False
    assert quantize_int8.resolve_reduce_range("on") is True and quantize_int8.resolve_reduce_range("off") is False


def test_static_estimate_is_int8_sized_with_unchanged_counts(demo):
    est = StaticInt8().estimate(demo.graph, StaticInt8().parse_params({}))
    assert est.params == demo.graph.params and est.macs == demo.graph.macs
    assert est.notes[0] == "int8 weights; latency depends on integer-kernel coverage"
    assert 0.25 * demo.fp32.size_bytes < est.size_bytes < 0.45 * demo.fp32.size_bytes


# ---- dynamic -------------------------------------------------------------------------------------------------
def _onnx_artifact(module: torch.nn.Module, shape: tuple[int, ...], path: Path) -> ModelArtifact:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return ModelArtifact(path=path, format="onnx", inputs=[TensorSpec("input", list(shape), "float32")])


def _op_types(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_dynamic_int8_on_vit_small_runs_with_integer_matmuls(tmp_path):
    torch.manual_seed(0)
    shape = architectures.ARCHITECTURES["vit_small"].default_input_shape
    fp32 = _onnx_artifact(architectures.build("vit_small"), shape, tmp_path / "vit_small.onnx")
    logs = []
    result = _run(DynamicInt8(), fp32, {}, RunContext(work_dir=tmp_path / "work", log=logs.append))
    onnx.checker.check_model(onnx.load(str(result.path)))
    assert _op_types(result.path)["MatMulInteger"] > 0
    assert result.meta["integer_ops"] > 0 and result.meta["method"] == "quantize.int8_dynamic"
    assert result.size_bytes < 0.4 * fp32.size_bytes
    x = np.random.default_rng(0).standard_normal((4, *shape[1:])).astype(np.float32)
    ref, out = _run_onnx(fp32.path, x), _run_onnx(result.path, x)
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.95
    assert not any(CONV_HEAVY_NOTE in line for line in logs)
    assert _files(tmp_path / "work") == [result.path]


def test_dynamic_int8_quantizes_the_gemm_layers_of_an_mlp(tmp_path):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    fp32 = _onnx_artifact(mlp, (1, 64), tmp_path / "mlp.onnx")
    assert _op_types(fp32.path)["Gemm"] == 3
    ctx = RunContext(work_dir=tmp_path / "work", overrides={"/4/Gemm": {"quantize": False}})
    result = _run(DynamicInt8(), fp32, {}, ctx)
    ops = _op_types(result.path)
    assert ops["MatMulInteger"] == 2 and ops["MatMul"] == 1  # the last layer kept float by the override
    assert result.meta["integer_ops"] == 2 and result.meta["float_compute_ops"] == 1
    assert result.meta["float_op_names"] == ["/4/Gemm"]
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    np.testing.assert_allclose(_run_onnx(result.path, x), _run_onnx(fp32.path, x), atol=0.05)


def test_dynamic_estimate_warns_on_conv_nets_only(demo, tmp_path):
    est = DynamicInt8().estimate(demo.graph, DynamicInt8().parse_params({}))
    assert est.params == demo.graph.params and est.macs == demo.graph.macs
    assert CONV_HEAVY_NOTE in est.notes
    assert "measured ~10× slower here" in CONV_HEAVY_NOTE and "quantize.int8_static" in CONV_HEAVY_NOTE
    shape = architectures.ARCHITECTURES["vit_small"].default_input_shape
    vit = _onnx_artifact(architectures.build("vit_small"), shape, tmp_path / "vit.onnx").graph()
    assert CONV_HEAVY_NOTE not in DynamicInt8().estimate(vit, DynamicInt8().parse_params({})).notes


def test_dynamic_int8_on_a_conv_net_warns_in_the_log(demo, tmp_path):
    logs = []
    result = _run(DynamicInt8(), demo.fp32, {}, RunContext(work_dir=tmp_path, log=logs.append))
    assert any(line.startswith("warning:") and CONV_HEAVY_NOTE in line for line in logs)
    assert result.meta["conv_mac_share"] > 0.5
