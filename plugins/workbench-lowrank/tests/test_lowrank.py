"""Tests of the lowrank.svd plugin: the method contract, the factorization itself, and results on real models.

Two models: the built-in ``small_cnn`` with low-rank structure planted in ``fc1`` and ``conv2`` (so the rank the
method must find is known), and the bundled demo digit classifier (trained weights, real data, real accuracy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench.core.architectures import build
from workbench.core.artifact import ModelArtifact, export_onnx, save_torch
from workbench.core.data import demo_data
from workbench.core.demo import demo_request
from workbench.core.errors import WorkbenchError
from workbench.core.evaluate import accuracy
from workbench.core.methods import RunContext, describe, discover, methods, run_to_end
from workbench.core.progress import Cancelled, CancelToken
from workbench.core.readers import open_model
from workbench.core.readers.base import OpenRequest
from workbench.core.shapes import ShapeRequest, TensorSpec
from workbench_lowrank.method import LowRankParams, LowRankSVD, _factorize

FC1_RANK, CONV2_RANK = 12, 6  # ranks planted in small_cnn's fc1 and conv2


# ---- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def method() -> LowRankSVD:
    return methods()["lowrank.svd"]


def _plant_low_rank(layer: nn.Module, rank: int, generator: torch.Generator, noise: float = 0.01) -> None:
    """Overwrite a layer's weight with rank-``rank`` structure plus a little noise (as trained weights tend to be)."""
    weight = layer.weight
    rows, cols = weight.shape[0], weight[0].numel()
    low = torch.randn(rows, rank, generator=generator) @ torch.randn(rank, cols, generator=generator)
    full = low + noise * torch.randn(rows, cols, generator=generator)
    with torch.no_grad():
        weight.copy_((full / cols ** 0.5).reshape(weight.shape))


@pytest.fixture(scope="module")
def small_cnn_artifact(tmp_path_factory) -> tuple[ModelArtifact, nn.Module]:
    torch.manual_seed(0)
    net = build("small_cnn").eval()
    generator = torch.Generator().manual_seed(1)
    _plant_low_rank(net.fc1, FC1_RANK, generator)
    _plant_low_rank(net.conv2, CONV2_RANK, generator)
    folder = tmp_path_factory.mktemp("small_cnn")
    # The input is named after SmallCNN.forward's argument, as torch.export names it.
    artifact = save_torch(net, [torch.randn(1, 1, 28, 28)], folder / "small_cnn.pt2",
                          [TensorSpec("x", [1, 1, 28, 28], "float32")], {})
    return artifact, net


@pytest.fixture(scope="module")
def small_cnn_input() -> torch.Tensor:
    return torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def demo():
    graph = open_model(demo_request())
    return graph, ModelArtifact.from_graph(graph)


@pytest.fixture(scope="module")
def demo_val():
    return demo_data().val


@pytest.fixture(scope="module")
def demo_reference(demo, demo_val):
    _, artifact = demo
    return accuracy(artifact, demo_val), _logits(artifact, demo_val.x[:512])


def _run(method, artifact, work_dir: Path, overrides=None, log=None, token=None, on_progress=None, **values):
    ctx = RunContext(work_dir=work_dir, overrides=overrides or {}, token=token or CancelToken())
    if log is not None:
        ctx.log = log
    return run_to_end(method.run(artifact, method.parse_params(values), ctx), on_progress)


def _logits(artifact: ModelArtifact, x) -> torch.Tensor:
    with torch.no_grad():
        return artifact.load_torch()(torch.as_tensor(np.ascontiguousarray(x)))


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- registration and parameters -------------------------------------------------------------------------------
def test_found_through_the_entry_point(method):
    assert isinstance(method, LowRankSVD)
    record = next(r for r in discover() if r.name == "lowrank.svd")
    assert record.error is None
    assert record.distribution == "workbench-lowrank"
    assert record.target == "workbench_lowrank.method:LowRankSVD"
    assert (method.id, method.label, method.kind) == ("lowrank.svd", "Low-rank factorization (SVD)", "transform")
    assert method.input_formats == {"torch"}
    assert not method.needs_data


def test_importing_the_plugin_loads_neither_qt_nor_torch():
    # Listing methods imports every plugin: it must stay fast and must work without a display.
    code = ("import sys, workbench_lowrank.method; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_params_defaults_bounds_and_round_trip(method):
    params = method.parse_params({})
    assert params == LowRankParams(energy=0.9, min_rank=4, layers="linear", skip_if_no_savings=True)
    assert LowRankParams.per_layer_fields() == ["energy"]
    changed = method.parse_params({"energy": 0.75, "layers": "both", "min_rank": 2, "skip_if_no_savings": False})
    assert method.parse_params(changed.model_dump()) == changed
    assert LowRankParams.model_validate_json(changed.model_dump_json()) == changed

    with pytest.raises(WorkbenchError, match=r"energy.*0\.5"):
        method.parse_params({"energy": 0.3})
    with pytest.raises(WorkbenchError, match="linear, conv, both"):
        method.parse_params({"layers": "all"})
    with pytest.raises(WorkbenchError, match="rank"):
        method.parse_params({"rank": 8})

    info = describe(method)
    json.dumps(info)  # the panel and `workbench methods --json` need it JSON-able
    fields = {p["name"]: p for p in info["params"]}
    assert fields["energy"]["per_layer"] and (fields["energy"]["minimum"], fields["energy"]["maximum"]) == (0.5, 1.0)
    assert fields["energy"]["description"]
    assert fields["layers"]["choices"] == ["linear", "conv", "both"] and not fields["layers"]["per_layer"]
    assert fields["skip_if_no_savings"]["type"] == "boolean" and fields["skip_if_no_savings"]["default"] is True
    assert fields["min_rank"]["minimum"] == 1


# ---- the factorization itself ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, x", [
    (nn.Linear(48, 24), torch.randn(5, 48)),
    (nn.Linear(48, 24, bias=False), torch.randn(2, 7, 48)),
    (nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2), torch.randn(2, 8, 17, 17)),
    (nn.Conv2d(8, 16, (3, 1), padding=(1, 0), bias=False, padding_mode="reflect"), torch.randn(2, 8, 9, 9)),
])
def test_full_rank_factorization_is_exact(layer, x):
    layer.eval()
    replacement, rank, full = _factorize(layer, energy=1.0, min_rank=1)
    assert rank == full == min(layer.weight.shape[0], layer.weight[0].numel())
    first, second = replacement
    assert first.bias is None and (second.bias is None) == (layer.bias is None)
    if isinstance(layer, nn.Conv2d):
        assert (first.kernel_size, first.stride, first.padding, first.dilation) == \
               (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        assert second.kernel_size == (1, 1) and first.out_channels == second.in_channels == rank
    with torch.no_grad():
        torch.testing.assert_close(replacement(x), layer(x), rtol=1e-4, atol=1e-5)


def test_rank_follows_energy_and_min_rank():
    layer = nn.Linear(64, 32)
    with torch.no_grad():  # singular values 2^-i: each one holds a quarter of the previous one's energy
        u, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(3)))
        v, _ = torch.linalg.qr(torch.randn(64, 32, generator=torch.Generator().manual_seed(4)))
        layer.weight.copy_(u @ torch.diag(2.0 ** -torch.arange(32.0)) @ v.T)
    # Kept energy after k values: 1 - 4^-k. 0.7 needs 1 value, 0.9 needs 2, 0.99 needs 4.
    assert _factorize(layer, 0.7, 1)[1] == 1
    assert _factorize(layer, 0.9, 1)[1] == 2
    assert _factorize(layer, 0.99, 1)[1] == 4
    assert _factorize(layer, 0.9, 6)[1] == 6
    assert _factorize(layer, 1.0, 1)[1] == 32


# ---- runs on small_cnn -------------------------------------------------------------------------------------------
def test_linear_layers_recover_the_planted_rank(method, small_cnn_artifact, small_cnn_input, tmp_path):
    artifact, net = small_cnn_artifact
    result = _run(method, artifact, tmp_path, energy=0.99)
    meta = result.meta
    assert meta["method"] == "lowrank.svd" and meta["params"]["energy"] == 0.99
    assert meta["layers_factorized"] == ["fc1"] and meta["ranks"] == {"fc1": FC1_RANK}
    assert meta["params_before"] == 206_922
    assert meta["params_after"] == 206_922 - 1568 * 128 + FC1_RANK * (1568 + 128)  # 26,570

    model = result.load_torch(editable=True)
    assert isinstance(model.fc1, nn.Sequential)
    assert [(m.in_features, m.out_features, m.bias is not None) for m in model.fc1] == \
           [(1568, FC1_RANK, False), (FC1_RANK, 128, True)]
    assert isinstance(model.fc2, nn.Linear)  # 10 x 128 at rank 10: factors would be larger, so it is kept
    assert sum(p.numel() for p in model.parameters()) == meta["params_after"]
    with torch.no_grad():
        reference = net(small_cnn_input)
        assert _relative_error(model(small_cnn_input), reference) < 0.01
        assert _relative_error(result.load_torch()(small_cnn_input), reference) < 0.01  # the exported program


def test_conv_layers_become_kxk_then_1x1(method, small_cnn_artifact, small_cnn_input, tmp_path):
    artifact, net = small_cnn_artifact
    result = _run(method, artifact, tmp_path, energy=0.99, layers="conv")
    assert result.meta["ranks"] == {"conv2": CONV2_RANK}  # conv1 (1 input channel, rank ≤ 9) saves nothing
    model = result.load_torch(editable=True)
    kxk, pointwise = model.conv2
    assert (kxk.in_channels, kxk.out_channels, kxk.kernel_size, kxk.padding) == (16, CONV2_RANK, (3, 3), (1, 1))
    assert (pointwise.in_channels, pointwise.out_channels, pointwise.kernel_size) == (CONV2_RANK, 32, (1, 1))
    assert isinstance(model.conv1, nn.Conv2d) and isinstance(model.fc1, nn.Linear)
    assert result.meta["params_after"] < result.meta["params_before"]
    with torch.no_grad():
        assert _relative_error(result.load_torch()(small_cnn_input), net(small_cnn_input)) < 0.01


def test_layers_without_savings_are_kept_unless_asked(method, small_cnn_artifact, small_cnn_input, tmp_path):
    artifact, net = small_cnn_artifact
    kept = _run(method, artifact, tmp_path / "kept", energy=1.0, layers="both")
    assert kept.meta["layers_factorized"] == [] and kept.meta["params_after"] == kept.meta["params_before"]

    forced = _run(method, artifact, tmp_path / "forced", energy=1.0, layers="both", skip_if_no_savings=False)
    assert forced.meta["layers_factorized"] == ["conv1", "conv2", "fc1", "fc2"]
    assert forced.meta["params_after"] > forced.meta["params_before"]
    with torch.no_grad():  # full rank: the same function, only more parameters
        torch.testing.assert_close(forced.load_torch()(small_cnn_input), net(small_cnn_input), rtol=1e-3, atol=1e-4)


def test_per_layer_overrides(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    messages: list[str] = []
    result = _run(method, artifact, tmp_path / "a", log=messages.append, energy=0.99, layers="both",
                  overrides={"fc1": {"energy": 0.5}, "conv2/Conv": {"energy": 0.6}, "nowhere": {"energy": 0.8}})
    assert result.meta["ranks"]["fc1"] < FC1_RANK and result.meta["ranks"]["conv2"] < CONV2_RANK
    assert result.meta["overrides"]["fc1"] == {"energy": 0.5}
    assert any("nowhere" in m for m in messages)  # a key that matches no layer is reported, not silently dropped
    assert any(m.startswith("fc1: rank") for m in messages)

    # A scope covers the layers below it; the most specific key wins.
    scoped = _run(method, artifact, tmp_path / "b", energy=0.99, layers="both",
                  overrides={"": {"energy": 0.5}, "fc1": {"energy": 0.99}})
    assert scoped.meta["ranks"]["fc1"] == FC1_RANK and scoped.meta["ranks"]["conv2"] < CONV2_RANK

    with pytest.raises(WorkbenchError, match="energy"):
        _run(method, artifact, tmp_path / "c", overrides={"fc1": {"energy": 1.5}})
    with pytest.raises(WorkbenchError, match="min_rank"):
        _run(method, artifact, tmp_path / "d", overrides={"fc1": {"min_rank": 2}})
    assert _files(tmp_path / "c") == [] and _files(tmp_path / "d") == []


def test_progress_reports_each_layer(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    seen = []
    _run(method, artifact, tmp_path, on_progress=seen.append, layers="both")
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        assert any(layer in p.message for p in seen)


def test_small_cnn_result_exports_to_valid_onnx(method, small_cnn_artifact, small_cnn_input, tmp_path):
    artifact, net = small_cnn_artifact
    result = _run(method, artifact, tmp_path, energy=0.99, layers="both")
    exported = export_onnx(result, tmp_path / "lowrank.onnx")
    onnx.checker.check_model(onnx.load(str(exported.path)), full_check=True)
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: small_cnn_input.numpy()})
    with torch.no_grad():
        assert _relative_error(torch.from_numpy(got), net(small_cnn_input)) < 0.01
    # The new file opens as a layer graph whose count matches the run's.
    graph = result.graph()
    assert graph.params == result.meta["params_after"]


def test_rejects_models_that_are_not_pytorch(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    as_onnx = export_onnx(artifact, tmp_path / "small.onnx")
    assert not method.accepts(as_onnx)
    with pytest.raises(WorkbenchError, match="torch"):
        _run(method, as_onnx, tmp_path / "work")
    assert _files(tmp_path / "work") == []


# ---- cancel leaves nothing -------------------------------------------------------------------------------------
def test_cancel_before_start_writes_nothing(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        _run(method, artifact, tmp_path / "work", token=token)
    assert _files(tmp_path / "work") == []


def test_cancel_between_layers_writes_nothing(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    token = CancelToken()

    def cancel_on_second_layer(progress):
        if "conv2" in progress.message:
            token.cancel()

    with pytest.raises(Cancelled):
        _run(method, artifact, tmp_path / "work", token=token, on_progress=cancel_on_second_layer, layers="both")
    assert _files(tmp_path / "work") == []


def test_closing_the_run_before_it_saves_writes_nothing(method, small_cnn_artifact, tmp_path):
    artifact, _ = small_cnn_artifact
    gen = method.run(artifact, method.parse_params({}), RunContext(work_dir=tmp_path / "work"))
    for progress in gen:
        if progress.message.startswith("saving"):
            gen.close()  # what a caller does when the user cancels while the run is suspended
            break
    assert _files(tmp_path / "work") == []


def test_interrupted_save_removes_partial_files(method, small_cnn_artifact, tmp_path, monkeypatch):
    artifact, _ = small_cnn_artifact
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "other.txt").write_text("not ours")

    def save_then_stop(module, examples, path, inputs, meta):
        path.with_suffix(path.suffix + ".part").write_bytes(b"half")
        raise Cancelled()

    monkeypatch.setattr("workbench_lowrank.method.save_torch", save_then_stop)
    with pytest.raises(Cancelled):
        _run(method, artifact, tmp_path / "work")
    assert [p.name for p in _files(tmp_path / "work")] == ["other.txt"]


# ---- estimate ---------------------------------------------------------------------------------------------------
def test_estimate_follows_the_stated_rule(method, small_cnn_artifact):
    artifact, _ = small_cnn_artifact
    graph = artifact.graph()
    est = method.estimate(graph, method.parse_params({"energy": 0.5}))
    # fc1 1568x128: rank 0.5*128 = 64; fc2 128x10: rank max(min_rank 4, 5) = 5.
    assert est.params == graph.params - 1568 * 128 + 64 * (1568 + 128) - 128 * 10 + 5 * (128 + 10)
    assert est.macs < graph.macs and est.size_bytes < graph.weight_bytes
    assert est.provenance == "estimated" and est.notes[0].startswith("estimated")

    unchanged = method.estimate(graph, method.parse_params({"energy": 1.0, "layers": "both"}))
    assert (unchanged.params, unchanged.macs, unchanged.size_bytes) == \
           (graph.params, graph.macs, graph.weight_bytes)


def test_estimate_is_instant_and_uses_only_the_graph(method, demo):
    graph, _ = demo
    detached = dataclasses.replace(graph, request=None)  # no way back to the weights
    start = time.perf_counter()
    est = method.estimate(detached, method.parse_params({"energy": 0.6, "layers": "both"}))
    assert time.perf_counter() - start < 0.5
    assert est.params < graph.params and est.macs < graph.macs


# ---- the demo model: trained weights, real data -------------------------------------------------------------------
def test_demo_params_drop_and_accuracy_holds(method, demo, demo_val, demo_reference, tmp_path):
    graph, artifact = demo
    before, _ = demo_reference
    source_digest = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    result = _run(method, artifact, tmp_path, energy=0.9, layers="both")
    assert hashlib.sha256(artifact.path.read_bytes()).hexdigest() == source_digest  # the input is never touched
    assert result.path.parent == tmp_path and result.path.name == "lowrank.pt2"
    assert result.meta["params_before"] == graph.params == 106_954
    assert result.meta["params_after"] < 0.92 * graph.params
    after = accuracy(result, demo_val)
    assert after.samples == before.samples == 1000
    assert after.top1 >= before.top1 - 0.02


def test_demo_outputs_stay_close_at_energy_099(method, demo, demo_val, demo_reference, tmp_path):
    _, artifact = demo
    _, reference = demo_reference
    # At 0.99 no layer of the demo gets smaller, so force the factorization to see what it costs in outputs.
    result = _run(method, artifact, tmp_path, energy=0.99, layers="both", skip_if_no_savings=False)
    assert len(result.meta["layers_factorized"]) == 16
    logits = _logits(result, demo_val.x[:512])
    assert _relative_error(logits, reference) < 0.15
    assert float((logits.argmax(1) == reference.argmax(1)).float().mean()) >= 0.98


def test_demo_result_reloads_and_exports_to_onnx(method, demo, demo_val, tmp_path):
    _, artifact = demo
    result = _run(method, artifact, tmp_path, energy=0.9, layers="both")
    x = torch.from_numpy(demo_val.x[:64])
    with torch.no_grad():
        program_out = result.load_torch()(x)
        module_out = result.load_torch(editable=True)(x)
    torch.testing.assert_close(program_out, module_out)

    reopened = open_model(OpenRequest(path=result.path, shapes=ShapeRequest(by_position=result.input_shapes)))
    assert reopened.params == result.meta["params_after"]
    assert any(n.scope.startswith("features.8.0.") for n in reopened.nodes)  # the factorized last conv

    exported = export_onnx(result, tmp_path / "demo_lowrank.onnx")
    onnx.checker.check_model(onnx.load(str(exported.path)), full_check=True)
    on_ort = accuracy(exported, demo_val)
    on_torch = accuracy(result, demo_val)
    assert on_ort.runtime == "onnxruntime" and abs(on_ort.top1 - on_torch.top1) <= 0.002


def test_demo_result_opens_as_a_graph(method, demo, tmp_path):
    _, artifact = demo
    result = _run(method, artifact, tmp_path, energy=0.9, layers="both")
    assert result.graph().params == result.meta["params_after"]
