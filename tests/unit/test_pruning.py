"""Channel pruning, magnitude pruning and fine-tuning on the bundled demo (real model, real MNIST digits)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core import evaluate
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.data import DataBundle
from workbench.core.errors import WorkbenchError
from workbench.core.methods import RunContext, run_to_end
from workbench.core.progress import Cancelled, CancelToken
from workbench.methods.finetune import FineTune
from workbench.methods.pruning import ChannelPruning, MagnitudePruning, kept_channels


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(demo_setup):
    graph, artifact, data = demo_setup
    return graph, artifact, data, evaluate.accuracy(artifact, data.val)


@pytest.fixture(scope="module")
def pruned50(demo, tmp_path_factory):
    graph, artifact, data, _ = demo
    digest = _sha256(artifact.path)
    method = ChannelPruning()
    params = method.parse_params({"ratio": 0.5, "round_to": 8})
    messages = []
    result = run_to_end(method.run(artifact, params, RunContext(work_dir=tmp_path_factory.mktemp("pruned50"),
                                                                data=data)),
                        lambda p: messages.append(p))
    return result, digest, messages


def _convs(module):
    return {n: m for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}


# ---- channel pruning -----------------------------------------------------------------------------------------
def test_channel_pruning_shrinks_the_model_and_reloads(demo, pruned50):
    graph, artifact, _, _ = demo
    result, digest, messages = pruned50
    assert _sha256(artifact.path) == digest, "the input file must not change"
    assert all(0.0 <= p.fraction <= 1.0 for p in messages) and messages[-1].fraction == 1.0

    # Reopen from the file alone (no in-memory meta), as a later session would.
    fresh = ModelArtifact(path=result.path, format="torch-export", inputs=result.inputs)
    reread = fresh.graph()
    assert reread.params == result.meta["params_after"] and reread.macs == result.meta["macs_after"]
    assert result.meta["params_before"] == graph.params and result.meta["macs_before"] == graph.macs
    assert reread.params < 0.45 * graph.params, (reread.params, graph.params)
    assert reread.macs < 0.45 * graph.macs, (reread.macs, graph.macs)

    convs = [n for n in reread.nodes if n.op_type == "Conv"]
    assert convs and all(n.output_shapes[0][1] % 8 == 0 for n in convs), \
        [(n.name, n.output_shapes[0]) for n in convs]
    module = fresh.load_torch()
    x = torch.from_numpy(demo[2].val.x[:8])
    with torch.no_grad():
        assert module(x).shape == (8, 10)
    editable = result.load_torch(editable=True)
    for name, conv in _convs(editable).items():
        assert conv.out_channels % 8 == 0, (name, conv.out_channels)
        if name != "features.0.0":  # the first convolution reads the 1-channel image
            assert conv.in_channels % 8 == 0, (name, conv.in_channels)
    assert editable.classifier[1].out_features == 10  # the classifier keeps its classes


def test_pruned_model_exports_to_valid_onnx(demo, pruned50, tmp_path):
    import onnx
    import onnxruntime as ort

    _, _, data, _ = demo
    result = pruned50[0]
    onnx_artifact = export_onnx(result, tmp_path / "pruned.onnx")
    onnx.checker.check_model(onnx.load(str(onnx_artifact.path)))
    session = ort.InferenceSession(str(onnx_artifact.path), providers=["CPUExecutionProvider"])
    x = data.val.x[:32]
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = result.load_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_pruning_then_short_finetune_costs_at_most_two_points(demo, pruned50, tmp_path):
    _, _, data, base = demo
    pruned = evaluate.accuracy(pruned50[0], data.val)
    method = FineTune()
    messages, logs, points = [], [], []
    tuned = run_to_end(method.run(pruned50[0], method.parse_params({"epochs": 3, "learning_rate": 1e-3}),
                                  RunContext(work_dir=tmp_path, data=data, log=logs.append)),
                       lambda p: messages.append(p.message) or points.append(p.metrics))
    after = evaluate.accuracy(tuned, data.val)
    print(f"\ndemo val accuracy: base {base.points():.2f} %, pruned 50 % {pruned.points():.2f} %, "
          f"pruned + 3 epochs {after.points():.2f} %")
    assert base.top1 > 0.98
    assert base.top1 - after.top1 <= 0.02, (base.top1, pruned.top1, after.top1)
    # the fine-tune's own per-epoch measurement agrees with an independent evaluation of the saved model
    assert len(tuned.meta["val_accuracy"]) == 3 and tuned.meta["val_accuracy"][-1] == pytest.approx(after.top1)
    assert any("epoch 1/3 · loss" in m for m in messages) and any("epoch 3/3 · loss" in m for m in messages)
    assert len([line for line in logs if "val accuracy" in line]) == 3
    assert np.isfinite(tuned.meta["train_loss"]) and tuned.meta["train_loss"] < 0.5
    # live-curve points: train loss at increasing fractional epochs, one validation point per epoch
    train = [m for m in points if m and "train loss" in m]
    val = [m for m in points if m and "val accuracy" in m]
    assert len(train) >= 6 and all(a["epoch"] < b["epoch"] for a, b in zip(train, train[1:]))
    assert train[-1]["epoch"] == pytest.approx(3.0) and all(np.isfinite(m["train loss"]) for m in train)
    assert [m["epoch"] for m in val] == [1.0, 2.0, 3.0]
    assert [m["val accuracy"] for m in val] == pytest.approx(tuned.meta["val_accuracy"])


def test_per_layer_override_and_exclude(demo, tmp_path):
    _, artifact, data, _ = demo
    method = ChannelPruning()
    ctx = RunContext(work_dir=tmp_path, data=data, overrides={
        "features.3.conv.0.0": {"ratio": 0.75},          # a module path
        "features.6.conv.0.0/Conv": {"ratio": 0.25},     # a layer name as the graph shows it
    })
    params = method.parse_params({"ratio": 0.5, "exclude": ["features.5.conv.0.0"]})
    result = run_to_end(method.run(artifact, params, ctx))
    convs = _convs(result.load_torch(editable=True))
    assert convs["features.3.conv.0.0"].out_channels == kept_channels(96, 0.75, 8) == 24
    assert convs["features.6.conv.0.0"].out_channels == kept_channels(160, 0.25, 8) == 120
    assert convs["features.5.conv.0.0"].out_channels == 160            # excluded: kept whole
    assert convs["features.5.conv.1.0"].out_channels == 160            # and its depthwise partner with it
    assert convs["features.4.conv.0.0"].out_channels == 48             # the global ratio elsewhere
    est = method.estimate(demo[0], params, overrides=ctx.overrides)
    assert est.params == pytest.approx(result.meta["params_after"], rel=0.1)
    assert est.macs == pytest.approx(result.meta["macs_after"], rel=0.1)


def test_invalid_parameters_and_inputs_are_clear_errors(demo, tmp_path):
    _, artifact, data, _ = demo
    method = ChannelPruning()
    for bad in ({"ratio": 0.95}, {"ratio": -0.1}, {"round_to": 0}, {"importance": "random"}, {"colour": 1}):
        with pytest.raises(WorkbenchError):
            method.parse_params(bad)
    with pytest.raises(WorkbenchError, match="ratio"):
        method.parse_params({"ratio": 0.95})
    with pytest.raises(WorkbenchError):
        MagnitudePruning().parse_params({"sparsity": 1.0})
    with pytest.raises(WorkbenchError):
        FineTune().parse_params({"epochs": 0})

    traced = tmp_path / "demo_traced.pt"
    module = artifact.load_torch()
    torch.jit.save(torch.jit.trace(module, torch.randn(1, 1, 28, 28)), str(traced))
    scripted = ModelArtifact(path=traced, format="torchscript", inputs=artifact.inputs)
    work = tmp_path / "work"
    for m in (method, MagnitudePruning(), FineTune()):
        with pytest.raises(WorkbenchError, match="needs PyTorch layers") as err:
            run_to_end(m.run(scripted, m.parse_params({}), RunContext(work_dir=work, data=data)))
        assert "state_dict with --arch" in str(err.value)
    with pytest.raises(WorkbenchError, match="labelled"):
        run_to_end(method.run(artifact, method.parse_params({"importance": "taylor"}), RunContext(work_dir=work)))
    for bad in ({"features.3": {"ratio": 0.95}}, {"features.3": {"importance": "l1"}}):
        with pytest.raises(WorkbenchError):
            run_to_end(method.run(artifact, method.parse_params({}), RunContext(work_dir=work, overrides=bad)))
    with pytest.raises(WorkbenchError, match="no layer or scope"):
        run_to_end(method.run(artifact, method.parse_params({"exclude": ["features.99"]}),
                              RunContext(work_dir=work)))
    unlabelled = DataBundle("x", data.train.take(64), data.val.take(64), data.train.take(64))
    unlabelled.train.y = None
    with pytest.raises(WorkbenchError, match="labels"):
        run_to_end(FineTune().run(artifact, FineTune().parse_params({}), RunContext(work_dir=work,
                                                                                       data=unlabelled)))
    assert not work.exists() or not any(work.iterdir())


@pytest.mark.parametrize("stop_at", ["building", "saving"])
def test_cancel_leaves_no_files(demo, tmp_path, stop_at):
    _, artifact, _, _ = demo
    method = ChannelPruning()
    token = CancelToken()
    gen = method.run(artifact, method.parse_params({"ratio": 0.5}), RunContext(work_dir=tmp_path / "w", token=token))
    with pytest.raises(Cancelled):
        run_to_end(gen, lambda p: token.cancel() if p.message.startswith(stop_at) else None)
    left = list((tmp_path / "w").rglob("*")) if (tmp_path / "w").exists() else []
    assert left == []


def test_finetune_cancel_and_determinism(demo, tmp_path):
    _, artifact, data, _ = demo
    small = DataBundle("demo-small", data.train.take(256), data.val.take(128), data.train.take(64))
    method = FineTune()
    params = method.parse_params({"epochs": 1, "batch_size": 32, "seed": 3})
    token = CancelToken()
    with pytest.raises(Cancelled):
        run_to_end(method.run(artifact, params, RunContext(work_dir=tmp_path / "c", data=small, token=token)),
                   lambda p: token.cancel() if "loss" in p.message else None)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())

    runs = [run_to_end(method.run(artifact, params, RunContext(work_dir=tmp_path / f"r{i}", data=small)))
            for i in range(2)]
    assert runs[0].meta["train_loss"] == runs[1].meta["train_loss"]
    a, b = (r.load_torch(editable=True).state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_taylor_importance_uses_labelled_data(demo, tmp_path):
    _, artifact, data, _ = demo
    method = ChannelPruning()
    result = run_to_end(method.run(artifact, method.parse_params({"ratio": 0.3, "importance": "taylor",
                                                                  "iterative_steps": 2}),
                                   RunContext(work_dir=tmp_path, data=data)))
    assert result.meta["params_after"] < result.meta["params_before"]
    assert evaluate.accuracy(result, data.val.take(200)).top1 >= 0.0  # runs end to end


# ---- estimate ------------------------------------------------------------------------------------------------
def test_estimate_is_instant_and_close_to_measured(demo, pruned50):
    graph = demo[0]
    result = pruned50[0]
    method = ChannelPruning()
    t = time.perf_counter()
    est = method.estimate(graph, method.parse_params({"ratio": 0.5, "round_to": 8}))
    assert time.perf_counter() - t < 0.1
    assert est.provenance == "estimated" and any("estimated" in n for n in est.notes)
    assert est.params == pytest.approx(result.meta["params_after"], rel=0.3)
    assert est.macs == pytest.approx(result.meta["macs_after"], rel=0.3)
    assert est.size_bytes == 4 * est.params
    lighter = method.estimate(graph, method.parse_params({"ratio": 0.3}))
    assert est.params < lighter.params < graph.params


# ---- magnitude pruning ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["per_layer", "global"])
def test_magnitude_pruning_reaches_the_sparsity_and_keeps_shapes(demo, tmp_path, scope):
    _, artifact, data, _ = demo
    method = MagnitudePruning()
    logs = []
    result = run_to_end(method.run(artifact, method.parse_params({"sparsity": 0.6, "scope": scope}),
                                   RunContext(work_dir=tmp_path, log=logs.append)))
    meta = result.meta
    assert abs(meta["sparsity_achieved"] - 0.6) <= 0.01, meta["sparsity_achieved"]
    original = artifact.load_torch().state_dict()
    sparse = result.load_torch(editable=True)
    state = sparse.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in original.items()}
    weights = [m.weight for m in sparse.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(meta["sparsity_achieved"], abs=1e-6)
    bn = [m for m in sparse.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(int((m.weight == 0).sum()) == 0 for m in bn)  # BatchNorm untouched
    assert meta["nonzero_params"] < sum(v.numel() for v in original.values())
    assert meta["size_compressed_bytes"] < meta["size_dense_bytes"]
    assert any("no faster" in line for line in logs)
    est = method.estimate(demo[0], method.parse_params({"sparsity": 0.6}))
    assert est.macs == demo[0].macs and any("not faster" in n for n in est.notes)
