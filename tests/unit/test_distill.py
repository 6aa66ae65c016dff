"""Knowledge distillation on the bundled demo (real model, real MNIST digits)."""

from __future__ import annotations

import time

import pytest
import torch

from workbench.core import evaluate
from workbench.core import methods as registry
from workbench.core.artifact import export_onnx
from workbench.core.data import DataBundle
from workbench.core.errors import WorkbenchError
from workbench.core.methods import RunContext, run_to_end
from workbench.core.progress import Cancelled, CancelToken
from workbench.methods.distill import CHECKPOINT, KnowledgeDistillation


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(demo_setup):
    graph, artifact, data = demo_setup
    return graph, artifact, data, evaluate.accuracy(artifact, data.val)


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_demo_distils_into_a_small_cnn(demo, tmp_path):
    graph, artifact, data, base = demo
    method = KnowledgeDistillation()
    params = method.parse_params({"student": "small_cnn", "epochs": 4, "learning_rate": 3e-3})
    messages, logs = [], []
    t = time.perf_counter()
    result = run_to_end(method.run(artifact, params, RunContext(work_dir=tmp_path, data=data, log=logs.append)),
                        lambda p: messages.append(p))
    seconds = time.perf_counter() - t
    acc = evaluate.accuracy(result, data.val)
    print(f"\nteacher {base.points():.2f} %, small_cnn student after 4 epochs {acc.points():.2f} % ({seconds:.1f} s)")
    assert acc.top1 >= 0.95
    history = result.meta["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] == pytest.approx(acc.top1)  # its own measurement agrees
    assert result.meta["teacher"] == "input" and result.meta["student"]["architecture"] == "small_cnn"
    assert result.meta["student"]["options"]["in_channels"] == 1
    assert result.meta["student"]["options"]["num_classes"] == 10
    assert all(0.0 <= m.fraction <= 1.0 for m in messages) and messages[-1].fraction == 1.0
    assert any("epoch 2/4 · loss" in m.message and "val acc" in m.message for m in messages)
    assert len([line for line in logs if "val accuracy" in line]) == 4
    curves = [m.metrics for m in messages if m.metrics]
    assert [c["epoch"] for c in curves if "val accuracy" in c] == [1.0, 2.0, 3.0, 4.0]
    assert [c["val accuracy"] for c in curves if "val accuracy" in c] == \
        pytest.approx([h["val_accuracy"] for h in history])
    losses = [c for c in curves if "train loss" in c]
    assert losses[-1]["epoch"] == pytest.approx(4.0) and losses[-1]["train loss"] < losses[0]["train loss"]
    assert _files(tmp_path) == ["student.module.pt", "student.pt2"]  # the checkpoint is gone
    # the estimate counts the student exactly (built on the meta device) and says how MACs were guessed
    est = method.estimate(graph, params)
    assert est.params == result.graph().params == sum(t.numel() for t in result.load_torch().parameters())
    assert any("approximated" in n for n in est.notes) and est.provenance == "estimated"
    same = method.estimate(graph, method.parse_params({"student": "input", "teacher": "x.onnx"}))
    assert (same.params, same.macs) == (graph.params, graph.macs)


def test_pruned_input_recovers_from_the_original_teacher(demo, tmp_path):
    _, artifact, data, base = demo
    prune = registry.get("prune.channels")
    pruned = run_to_end(prune.run(artifact, prune.parse_params({"ratio": 0.5}), RunContext(work_dir=tmp_path / "p")))
    before = evaluate.accuracy(pruned, data.val)
    # the demo checkpoint is a bare state_dict, which needs --arch to open: the teacher file is its ONNX export
    teacher = export_onnx(artifact, tmp_path / "teacher.onnx")
    method = KnowledgeDistillation()
    params = method.parse_params({"student": "input", "teacher": str(teacher.path), "epochs": 3})
    t = time.perf_counter()
    result = run_to_end(method.run(pruned, params, RunContext(work_dir=tmp_path / "kd", data=data)))
    seconds = time.perf_counter() - t
    after = evaluate.accuracy(result, data.val)
    print(f"\nteacher {base.points():.2f} %, pruned 50 % {before.points():.2f} %, "
          f"+ 3 epochs of distillation {after.points():.2f} % ({seconds:.1f} s)")
    assert base.top1 - after.top1 <= 0.02, (base.top1, before.top1, after.top1)
    assert result.meta["student"] == "input" and result.meta["teacher"] == str(teacher.path)
    assert result.graph().params == pruned.graph().params  # the student kept its pruned shape


def test_cancel_after_an_epoch_keeps_a_checkpoint_and_resume_continues(demo, tmp_path):
    _, artifact, data, _ = demo
    small = DataBundle("demo-small", data.train.take(1024), data.val.take(256), data.train.take(64))
    method = KnowledgeDistillation()
    params = {"student": "small_cnn", "epochs": 2, "seed": 1}
    work = tmp_path / "w"
    token = CancelToken()
    with pytest.raises(Cancelled):
        run_to_end(method.run(artifact, method.parse_params(params), RunContext(work_dir=work, data=small,
                                                                                token=token)),
                   lambda p: token.cancel() if "epoch 2" in p.message else None)
    assert _files(work) == [CHECKPOINT]  # no partial output, the epoch-1 checkpoint stays

    messages = []
    resumed = run_to_end(method.run(artifact, method.parse_params({**params, "resume": True}),
                                    RunContext(work_dir=work, data=small)), lambda p: messages.append(p.message))
    assert [h["epoch"] for h in resumed.meta["history"]] == [1, 2]
    assert resumed.meta["resumed_after_epoch"] == 1
    assert not any("epoch 1/2" in m for m in messages) and any("epoch 2/2 · loss" in m for m in messages)
    assert _files(work) == ["student.module.pt", "student.pt2"]

    # the resumed run ends where an uninterrupted one does (same data order, optimizer state and weights)
    straight = run_to_end(method.run(artifact, method.parse_params(params),
                                     RunContext(work_dir=tmp_path / "s", data=small)))
    assert [h["loss"] for h in resumed.meta["history"]] == pytest.approx(
        [h["loss"] for h in straight.meta["history"]], rel=1e-5)
    a, b = (r.load_torch(editable=True).state_dict() for r in (resumed, straight))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    # a checkpoint made with other settings is refused, not silently mixed in
    token = CancelToken()
    with pytest.raises(Cancelled):
        run_to_end(method.run(artifact, method.parse_params(params), RunContext(work_dir=tmp_path / "x", data=small,
                                                                                token=token)),
                   lambda p: token.cancel() if "epoch 2" in p.message else None)
    with pytest.raises(WorkbenchError, match="other settings"):
        run_to_end(method.run(artifact, method.parse_params({**params, "seed": 2, "resume": True}),
                              RunContext(work_dir=tmp_path / "x", data=small)))


def test_bad_inputs_are_clear_errors_and_leave_no_files(demo, tmp_path):
    _, artifact, data, _ = demo
    method = KnowledgeDistillation()
    work = tmp_path / "work"
    missing = tmp_path / "no_such_teacher.onnx"
    with pytest.raises(WorkbenchError, match="no_such_teacher.onnx"):
        run_to_end(method.run(artifact, method.parse_params({"teacher": str(missing)}),
                              RunContext(work_dir=work, data=data)))
    with pytest.raises(WorkbenchError, match="teacher"):
        run_to_end(method.run(artifact, method.parse_params({"student": "input"}), RunContext(work_dir=work,
                                                                                               data=data)))
    unlabelled = DataBundle("x", data.train.take(64), data.val.take(64), data.train.take(64))
    unlabelled.train.y = None
    with pytest.raises(WorkbenchError, match="labels"):
        run_to_end(method.run(artifact, method.parse_params({}), RunContext(work_dir=work, data=unlabelled)))
    with pytest.raises(WorkbenchError, match="data"):
        run_to_end(method.run(artifact, method.parse_params({}), RunContext(work_dir=work)))
    for bad in ({"temperature": 0.5}, {"alpha": 1.5}, {"epochs": 0}, {"student": "alexnet"}, {"optimizer": "lion"}):
        with pytest.raises(WorkbenchError):
            method.parse_params(bad)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(method.run(artifact, method.parse_params({"epochs": 1}), RunContext(work_dir=work, data=data,
                                                                                        token=token)))
    assert _files(work) == []
