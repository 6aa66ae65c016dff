"""A project changed from two threads at once (the GUI measures one variant while a method makes another)."""

from __future__ import annotations

import sys
import threading

import pytest

from workbench.core.modelspec import ModelSpec
from workbench.core.project import Project
from workbench.core.variants import AccuracyMetric, Variant


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave between almost every bytecode
    yield
    sys.setswitchinterval(old)


def test_measurements_and_new_variants_from_several_threads_are_all_kept(tmp_path, fast_switching):
    project = Project.create(tmp_path / "p")
    project.set_base_model(ModelSpec.demo())
    errors: list[BaseException] = []
    per_thread = 150

    def measure(tag: int):
        try:
            for i in range(per_thread):
                project.record_accuracy("base", AccuracyMetric(0.5, 0.9, 1.0, tag * 1000 + i, "demo", "f"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def add_variants():
        try:
            for _ in range(per_thread):
                project.add_variant(Variant(project.new_variant_id(), "base", "child"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def read():
        try:
            for _ in range(per_thread):
                names = [v.name for v in project.variants.values()]  # a snapshot: never changes under the loop
                assert names[0] == "base model"
                project.to_doc()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=measure, args=(t,)) for t in range(2)]
    threads += [threading.Thread(target=add_variants) for _ in range(2)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    samples = sorted(m.samples for m in project.variant("base").accuracy)
    assert samples == sorted(t * 1000 + i for t in range(2) for i in range(per_thread))  # none lost
    assert len(project.variants) == 1 + 2 * per_thread  # every id handed out once
    project.save()
    assert len(Project.open(tmp_path / "p").variants) == 1 + 2 * per_thread


def test_a_measurement_recorded_meanwhile_by_another_thread_is_kept(tmp_path):
    from workbench.core.variants import Figure, LatencyMetric

    project = Project.create(tmp_path / "p")
    project.set_base_model(ModelSpec.demo())
    before = project.variant("base")
    # this thread measures the base model (export, counts, accuracy); meanwhile a device measures its latency
    after = before.with_changes(deploy="base.onnx", params=Figure(100), status="done",
                                accuracy=(AccuracyMetric(0.9, 1.0, 0.3, 1000, "demo", "f"),))
    board = LatencyMetric("board", 1.0, 1.1, 1.2, 50, 1, "arm")
    project.update_variant(project.variant("base").with_changes(deploy="base.onnx"), "exported by the other")
    project.record_latency("base", board)
    merged = project.merge_measurement(before, after, "Measure base")
    assert merged == project.variant("base")
    assert merged.latency == (board,) and merged.accuracy == after.accuracy  # both measurements are there
    assert merged.deploy == "base.onnx" and merged.params == Figure(100) and merged.status == "done"
    project.undo()  # one undo step takes back this measurement only
    assert project.variant("base").latency == (board,) and not project.variant("base").accuracy
