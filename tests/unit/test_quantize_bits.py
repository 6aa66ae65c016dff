"""Low-bit (simulated) quantization and the fp16 ONNX export on the bundled demo (real model, real MNIST digits)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench.core import evaluate
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.errors import WorkbenchError
from workbench.core.methods import RunContext, run_to_end
from workbench.core.progress import Cancelled, CancelToken
from workbench.methods.pruning import _weighted_layers
from workbench.methods.quantize_bits import BitWidthQuantization, fake_quantize, packed_bytes

METHOD = BitWidthQuantization()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(demo_setup):
    graph, artifact, data = demo_setup
    return graph, artifact, data, evaluate.accuracy(artifact, data.val).points()


@pytest.fixture(scope="module")
def runs(demo, tmp_path_factory):
    """Runs by a name, each once per module: (result artifact, accuracy cost in points on the 1,000 val digits)."""
    _, artifact, data, base = demo
    digest = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    cache: dict[str, tuple[ModelArtifact, float]] = {}

    def get(name: str, values: dict, overrides: dict | None = None):
        if name not in cache:
            ctx = RunContext(work_dir=tmp_path_factory.mktemp(name), overrides=overrides or {})
            result = run_to_end(METHOD.run(artifact, METHOD.parse_params(values), ctx))
            cost = base - evaluate.accuracy(result, data.val).points() if result.format != "onnx" else 0.0
            cache[name] = (result, cost)
            assert hashlib.sha256(artifact.path.read_bytes()).hexdigest() == digest, "the input was modified"
        return cache[name]

    return get


def test_fake_quantize_uses_at_most_2_to_the_bits_levels_and_bounded_error():
    w = torch.randn(8, 3, 3, 3)
    for bits in (2, 4, 8):
        q, scales = fake_quantize(w, bits, per_channel=True, symmetric=True)
        assert scales == 8
        for c in range(8):
            levels = torch.unique(q[c]).numel()
            assert levels <= 2 ** bits - 1
            step = w[c].abs().max() / (2 ** (bits - 1) - 1)
            assert float((q[c] - w[c]).abs().max()) <= float(step) / 2 + 1e-6
        qa, one = fake_quantize(w, bits, per_channel=False, symmetric=False)
        assert one == 1 and torch.unique(qa).numel() <= 2 ** bits
    # zero stays exactly zero in both modes
    w[0, 0, 0, 0] = 0.0
    assert fake_quantize(w, 3, True, False)[0][0, 0, 0, 0] == 0.0


def test_8_bit_weights_cost_under_half_a_point(runs):
    result, cost = runs("w8", {"weight_bits": 8})
    assert cost < 0.5, cost  # measured -0.1 (noise)
    assert set(result.meta["weight_bits"].values()) == {8}


def test_4_bit_per_channel_costs_under_3_points_and_packs_to_an_eighth(runs, demo):
    result, cost = runs("w4", {"weight_bits": 4})
    assert cost < 3.0, cost  # measured 0.0 points on the 1,000 validation digits
    meta = result.meta
    assert meta["simulated"] is True and "MatMulNBits" in meta["note"] and "quantize.int8_static" in meta["note"]
    layers = _weighted_layers(demo[1].load_torch(editable=True))
    expected = sum(packed_bytes(m.weight.numel(), 4, m.weight.shape[0], True) for m in layers.values())
    fp32 = 4 * sum(m.weight.numel() for m in layers.values())
    assert meta["packed_size_bytes"] == expected and meta["fp32_weight_bytes"] == fp32
    assert fp32 / 8 <= meta["packed_size_bytes"] <= 1.2 * fp32 / 8  # an eighth plus one float32 scale a channel
    assert "packed" in meta["packed_size_note"] and "estimated" in meta["packed_size_note"]
    # the saved weights carry the rounding: at most 15 distinct values per output channel
    module = result.load_torch(editable=True)
    w = _weighted_layers(module)["features.7.conv.0.0"].weight
    assert all(torch.unique(w[c]).numel() <= 15 for c in range(w.shape[0]))


def test_2_bit_weights_hurt_much_more_than_4_bit(runs):
    _, cost4 = runs("w4", {"weight_bits": 4})
    _, cost2 = runs("w2", {"weight_bits": 2})
    assert cost2 > cost4 + 10, (cost2, cost4)  # measured 81 points vs 0


def test_per_layer_override_to_8_bits_shows_in_meta(runs):
    overrides = {"features.2.conv.0.0": {"weight_bits": 8}, "features.1": {"weight_bits": 6}}
    result, _ = runs("mixed", {"weight_bits": 4}, overrides)
    bits = result.meta["weight_bits"]
    assert bits["features.2.conv.0.0"] == 8
    assert bits["features.1.conv.0.0"] == 6 and bits["features.1.conv.1"] == 6  # a scope sets every layer in it
    assert bits["classifier.1"] == 4
    assert result.meta["packed_size_bytes"] > runs("w4", {"weight_bits": 4})[0].meta["packed_size_bytes"]


def test_override_of_a_field_that_is_not_per_layer_is_an_error(demo, tmp_path):
    ctx = RunContext(work_dir=tmp_path / "w", overrides={"features.1": {"granularity": "per_tensor"}})
    with pytest.raises(WorkbenchError, match="cannot be set per layer"):
        run_to_end(METHOD.run(demo[1], METHOD.parse_params({}), ctx))
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_fp16_export_runs_in_onnx_runtime_matching_fp32_at_half_the_size(runs, demo, tmp_path):
    _, artifact, data, _ = demo
    result, _ = runs("fp16", {"export": "fp16"})
    assert result.format == "onnx" and result.meta["simulated"] is False
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)
    assert {t.data_type for t in model.graph.initializer if t.data_type in (1, 10)} == {10}  # float16 only
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = data.val.x[:64]
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = artifact.load_torch()(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 1e-2 * max(1.0, np.abs(ref).max())
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.98
    fp32 = export_onnx(artifact, tmp_path / "fp32.onnx").path.stat().st_size
    assert 0.4 < result.size_bytes / fp32 < 0.6, (result.size_bytes, fp32)  # measured 227 kB vs 436 kB


def test_estimate_sizes_from_bits_and_keeps_macs(demo):
    graph = demo[0]
    e4 = METHOD.estimate(graph, METHOD.parse_params({"weight_bits": 4}))
    e8 = METHOD.estimate(graph, METHOD.parse_params({"weight_bits": 8}))
    mixed = METHOD.estimate(graph, METHOD.parse_params({"weight_bits": 4}), {"features.7": {"weight_bits": 8}})
    assert e4.macs == e8.macs == graph.macs and e4.params == graph.params
    assert e4.size_bytes < mixed.size_bytes < e8.size_bytes < 4 * graph.params / 3
    assert e4.provenance == "estimated" and any("simulated" in n for n in e4.notes)
    assert math.isclose(METHOD.estimate(graph, METHOD.parse_params({"export": "fp16"})).size_bytes,
                        2 * graph.params, rel_tol=0.2)


def test_cancelled_fp16_export_leaves_nothing(demo, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(METHOD.run(demo[1], METHOD.parse_params({"export": "fp16"}),
                              RunContext(work_dir=tmp_path / "w", token=token)))
    work = Path(tmp_path / "w")
    assert not work.exists() or not [p for p in work.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """A small ViT (2.7 M params, 25 linear layers) saved as a .pt2: the MatMul-heavy case MatMulNBits is for."""
    from workbench.core.architectures import build
    from workbench.core.artifact import save_torch
    from workbench.core.shapes import TensorSpec

    torch.manual_seed(0)
    model = build("vit_small", num_classes=10).eval()
    folder = tmp_path_factory.mktemp("vit")
    artifact = save_torch(model, [torch.randn(1, 3, 32, 32)], folder / "vit.pt2",
                          [TensorSpec("x", [1, 3, 32, 32], "float32")], {})
    return artifact, export_onnx(artifact, folder / "vit.onnx")


def _ops(path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_matmul_nbits_runs_every_linear_layer_as_a_real_4_bit_kernel(vit, tmp_path):
    artifact, fp32 = vit
    params = METHOD.parse_params({"export": "matmul_nbits", "weight_bits": 4})
    logs = []
    result = run_to_end(METHOD.run(artifact, params, RunContext(work_dir=tmp_path, log=logs.append)))
    assert result.format == "onnx" and result.meta["simulated"] is False
    ops = _ops(result.path)
    assert ops.get("MatMulNBits") == 25 and "Gemm" not in ops  # 6 blocks × (qkv, proj, fc1, fc2) + the head
    assert result.meta["float_linear_layers"] == [] and len(result.meta["nbits_layers"]) == 25
    assert "MatMul between activations" in result.meta["float_heavy_ops"]  # attention scores stay float, said so
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    ref = ort.InferenceSession(str(fp32.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    out = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    cosine = float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref))
    assert cosine > 0.95, cosine  # 4-bit rounding of random-init weights (measured 0.978), not garbage
    ratio = result.size_bytes / fp32.size_bytes
    assert 0.12 < ratio < 0.25, ratio  # measured 1.86 MB vs 10.8 MB: about 4.5 bits per weight with the scales
    estimate = METHOD.estimate(artifact.graph(), params)
    assert abs(estimate.size_bytes - result.size_bytes) < 0.1 * result.size_bytes
    assert any("MatMulNBits" in line and "real" in line for line in logs)


def test_matmul_nbits_keeps_overridden_layers_float_and_refuses_other_widths(vit, tmp_path):
    artifact, _ = vit
    params = METHOD.parse_params({"export": "matmul_nbits", "weight_bits": 8})
    result = run_to_end(METHOD.run(artifact, params, RunContext(work_dir=tmp_path / "a",
                                                                overrides={"head": {"weight_bits": 8}})))
    assert len(result.meta["nbits_layers"]) == 24 and len(result.meta["float_linear_layers"]) == 1
    assert result.meta["max_abs_diff_vs_fp32"] < 0.02  # 8-bit blocks: measured 0.008 on outputs of about 1
    assert "head" in result.meta["float_linear_layers"][0]
    with pytest.raises(WorkbenchError, match="4- or 8-bit"):
        run_to_end(METHOD.run(artifact, METHOD.parse_params({"export": "matmul_nbits", "weight_bits": 3}),
                              RunContext(work_dir=tmp_path / "b")))


def test_matmul_nbits_on_the_demo_quantizes_the_classifier_and_keeps_accuracy(demo, tmp_path):
    _, artifact, data, base = demo
    result = run_to_end(METHOD.run(artifact, METHOD.parse_params({"export": "matmul_nbits"}),
                                   RunContext(work_dir=tmp_path, data=data)))
    assert len(result.meta["nbits_layers"]) == 1 and result.meta["float_heavy_ops"] == ["Conv"]
    assert base - evaluate.accuracy(result, data.val).points() < 0.5
    assert result.meta["checked_on"] == 64 and result.meta["top1_agreement_vs_fp32"] >= 0.95


def test_fake_quantization_of_an_onnx_model_gives_onnx_with_the_torch_results_accuracy(demo, tmp_path):
    from workbench.core.readers import open_model
    from workbench.core.readers.base import OpenRequest

    _, artifact, data, base = demo
    exported = export_onnx(artifact, tmp_path / "demo.onnx")
    from workbench.core.shapes import ShapeRequest

    request = OpenRequest(path=exported.path, shapes=ShapeRequest(by_position=[[1, 1, 28, 28]]))
    onnx_in = ModelArtifact.from_graph(open_model(request))
    convs = [n.name for n in onnx_in.graph().nodes if n.op_type == "Conv"]
    params = METHOD.parse_params({"weight_bits": 3})
    overrides = {convs[0]: {"weight_bits": 8}}  # an ONNX node name, as the graph shows it
    from_onnx = run_to_end(METHOD.run(onnx_in, params, RunContext(work_dir=tmp_path / "o", overrides=overrides)))
    assert from_onnx.format == "onnx" and from_onnx.meta["simulated"]
    assert sorted(set(from_onnx.meta["weight_bits"].values())) == [3, 8]
    assert list(from_onnx.meta["weight_bits"].values()).count(8) == 1
    from_torch = run_to_end(METHOD.run(artifact, params, RunContext(work_dir=tmp_path / "t")))
    cost_onnx = base - evaluate.accuracy(from_onnx, data.val).points()
    cost_torch = base - evaluate.accuracy(from_torch, data.val).points()
    assert abs(cost_onnx - cost_torch) <= 1.5  # one 8-bit layer apart, the same network either way


def test_an_int8_onnx_model_is_refused_for_fake_quantization_with_the_reason(demo, tmp_path):
    from workbench.methods.quantize_int8 import StaticInt8

    _, artifact, data, _ = demo
    int8 = run_to_end(StaticInt8().run(artifact, StaticInt8().parse_params({"calibration_samples": 32}),
                                       RunContext(work_dir=tmp_path / "q", data=data)))
    with pytest.raises(WorkbenchError, match="already quantized") as info:
        run_to_end(METHOD.run(int8, METHOD.parse_params({}), RunContext(work_dir=tmp_path / "b")))
    assert "float variant" in info.value.hint
