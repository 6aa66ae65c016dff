"""Projects: save/open, undo/redo of every change, listeners, autosave, crash recovery, migration, immutability."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.core.datasets import DatasetConfig
from workbench.core.errors import WorkbenchError
from workbench.core.modelspec import ModelSpec
from workbench.core.project import Project
from workbench.core.variants import AccuracyMetric, Figure, LatencyMetric, Step, Variant

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _acc(top1=0.9, fp="fp1"):
    return AccuracyMetric(top1, 1.0, 0.3, 100, "demo/val", fp)


def _lat(device="local", p50=1.0):
    return LatencyMetric(device, p50, p50 * 1.1, p50 * 1.2, 50, 1, "cpu")


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "proj")
    p.set_base_model(ModelSpec.demo())
    p.set_dataset(DatasetConfig(kind="demo"))
    return p


def test_save_and_open_round_trip(project):
    project.add_variant(Variant("v1", "base", "pruned", step=Step("prune.channels", {"ratio": 0.3}, {"fc": {"ratio":
                        0.0}}), status="done", artifact="v1.pt2", params=Figure(10), accuracy=(_acc(),)))
    project.add_device({"name": "board", "kind": "agent", "host": "127.0.0.1"})
    project.save()
    doc = json.loads((project.folder / "project.json").read_text())
    assert doc["schema_version"] == 1
    again = Project.open(project.folder)
    assert again.to_doc() == project.to_doc()
    assert again.variants["v1"].step.overrides == {"fc": {"ratio": 0.0}}
    assert again.recovery.clean and not again.dirty
    with pytest.raises(WorkbenchError, match="already holds a project"):
        Project.create(project.folder)


def test_every_change_undoes_and_redoes(project):
    seen = []
    project.add_listener(seen.append)
    start = project.to_doc()
    project.add_variant(Variant("v1", "base", "a", step=Step("prune.channels")))
    project.rename("v1", "renamed")
    project.add_device({"name": "local"})
    project.record_latency("v1", _lat())
    project.record_accuracy("v1", _acc())
    project.set_dataset(DatasetConfig(kind="npz", path="x.npz"))
    project.rename_project("new name")
    project.add_variant(Variant("v2", "v1", "b", step=Step("finetune")))
    project.remove_variant("v1")  # takes v2 with it
    project.remove_device("local")
    end = project.to_doc()
    assert "v1" not in project.variants and "v2" not in project.variants
    assert project.undo_label == "Remove device local"
    states = []
    while project.can_undo:
        states.append(project.to_doc())
        project.undo()
    assert project.to_doc()["variants"] == [] and project.base_model is None
    while project.can_redo:
        project.redo()
    assert project.to_doc() == end
    for _ in range(10):  # back to just after the base model and dataset were set
        project.undo()
    # Ids are never handed out twice (a removed variant's files stay until clean_orphans): next_id only grows.
    assert project.to_doc() | {"next_id": 1} == start and project.new_variant_id() == "v3"
    assert {c.kind for c in seen} >= {"variant", "device", "dataset", "project", "undo", "redo"}
    assert states[0] == end


def test_remove_and_undo_keeps_the_tree_order(project):
    for i in (1, 2, 3):
        project.add_variant(Variant(f"v{i}", "base", f"n{i}"))
    project.remove_variant("v2")
    project.undo()
    assert list(project.variants) == ["base", "v1", "v2", "v3"]


def test_autosave_writes_only_when_dirty(project):
    assert project.autosave() is True
    mtime = (project.folder / "project.json").stat().st_mtime_ns
    assert project.autosave() is False
    assert (project.folder / "project.json").stat().st_mtime_ns == mtime
    project.rename("base", "the base")
    assert project.dirty and project.autosave() and not project.dirty


def test_measured_variants_are_immutable(project):
    project.add_variant(Variant("v1", "base", "a", step=Step("prune.channels"), status="done", artifact="v1.pt2",
                                params=Figure(10), accuracy=(_acc(),)))
    v = project.variants["v1"]
    with pytest.raises(WorkbenchError, match="cannot change"):
        project.update_variant(v.with_changes(step=Step("prune.channels", {"ratio": 0.9})), "edit")
    with pytest.raises(WorkbenchError, match="measurements are kept"):
        project.update_variant(v.with_changes(accuracy=()), "drop")
    project.record_latency("v1", _lat("local", 1.0))
    project.record_latency("v1", _lat("local", 2.0))
    project.record_latency("v1", _lat("board", 5.0))
    by_device = project.variants["v1"].latency_by_device()
    assert by_device["local"].p50 == 2.0 and by_device["board"].p50 == 5.0
    assert len(project.variants["v1"].latency) == 3  # appended, none replaced
    with pytest.raises(WorkbenchError, match="variants made from its base model"):
        project.set_base_model(ModelSpec(path="other.onnx"))


def test_recovery_after_a_crash(project):
    project.add_variant(Variant("v1", "base", "kept", step=Step("finetune"), status="done", artifact="v1.onnx",
                                deploy="v1.onnx"))
    project.artifact_path("v1.onnx").write_bytes(b"onnx")
    project.start_run(Variant("v2", "v1", "running one", step=Step("quantize.int8_static")))
    project.save()
    good = (project.folder / "project.json").read_text()
    # What a crash leaves: a temp file of an interrupted save, a half-copied artifact, an unreferenced artifact.
    (project.folder / ".project.json.abc.tmp").write_text('{"schema_version": 1, "na')
    project.artifact_path("v2.onnx.part").write_bytes(b"half")
    project.artifact_path("v9.onnx").write_bytes(b"orphan")
    again = Project.open(project.folder)
    report = again.recovery
    assert report.interrupted == ["v2"] and again.variants["v2"].status == "interrupted"
    assert again.variants["v2"].step == Step("quantize.int8_static")  # what was saved is kept
    assert sorted(report.removed_temps) == [".project.json.abc.tmp", "artifacts/v2.onnx.part"]
    assert report.orphans == ["artifacts/v9.onnx"]
    assert (project.folder / "project.json").read_text() == good
    assert again.dirty
    assert again.clean_orphans() == ["v9.onnx"]
    assert sorted(p.name for p in again.artifacts_dir.iterdir()) == ["v1.onnx"]


def test_a_failed_write_leaves_the_old_file(project, monkeypatch):
    project.save()
    before = (project.folder / "project.json").read_text()
    project.rename_project("changed")

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)
    with pytest.raises(OSError):
        project.save()
    monkeypatch.undo()
    assert (project.folder / "project.json").read_text() == before
    assert not list(project.folder.glob(".*.tmp"))


def test_v0_project_migrates(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(FIXTURES / "project_v0", folder)
    p = Project.open(folder)
    assert p.name == "digits, first prototype" and p.base_model == ModelSpec.demo()
    assert p.dataset == DatasetConfig(kind="demo")
    assert [(v.id, v.parent, v.status) for v in p.variants.values()] == [
        ("base", None, "done"), ("e1", "base", "done"), ("e2", "e1", "failed")]
    assert p.variants["e1"].step == Step("prune.channels", {"ratio": 0.3})
    assert p.variants["e1"].accuracy_on().top1 == 0.375 and p.variants["e1"].deploy == "e1.onnx"
    assert p.variants["e2"].error == "calibration failed"
    assert p.recovery.orphans == [] and p.dirty  # migrated: saved as schema 1 on the next autosave
    p.autosave()
    assert json.loads((folder / "project.json").read_text())["schema_version"] == 1
    assert p.new_variant_id() == "v3"


def test_a_newer_schema_is_refused(tmp_path):
    (tmp_path / "project.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(WorkbenchError, match="newer Model Workbench"):
        Project.open(tmp_path)


def test_a_damaged_project_file_is_named(tmp_path):
    (tmp_path / "project.json").write_text(json.dumps({"schema_version": 1, "base_model": {"paht": "x"}}))
    with pytest.raises(WorkbenchError, match="project.json is damaged"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text("{not json")
    with pytest.raises(WorkbenchError, match="cannot be read"):
        Project.open(tmp_path)
