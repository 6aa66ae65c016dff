"""The demo pipeline's shape and its cancel (the full run is the slow end-to-end test)."""

from __future__ import annotations

import pytest

from workbench.core.demo_pipeline import DemoSettings, demo_stages, prepare_demo_project, run_demo
from workbench.core.methods import get
from workbench.core.progress import Cancelled, CancelToken
from workbench.core.project import ROOT_ID, Project


def test_stages_are_valid_steps_in_run_order():
    stages = demo_stages(DemoSettings())
    assert [s.step.method for s in stages] == ["prune.channels", "finetune", "quantize.int8_static", "distill.kd"]
    seen = {ROOT_ID}
    for s in stages:
        assert s.parent in seen, f"{s.key} runs before its parent"
        seen.add(s.key)
        get(s.step.method).parse_params(s.step.params)  # every parameter accepted by its method


def test_cancel_keeps_what_finished(tmp_path):
    token = CancelToken()
    steps = run_demo(tmp_path / "demo", DemoSettings(latency_runs=5), token)
    with pytest.raises(Cancelled):
        for progress in steps:
            if progress.message.startswith("1/4"):  # the base model is measured; pruning starts
                token.cancel()
    project = Project.open(tmp_path / "demo")
    base = project.variant(ROOT_ID)
    assert base.status == "done" and base.accuracy_on().samples == 1000
    assert base.latency == ()  # every variant is timed at the end, together
    assert [v.status for v in project.variants.values() if v.id != ROOT_ID] == ["cancelled"]
    assert not (tmp_path / "demo" / "demo-run.json").exists()


def test_prepare_reuses_a_project(tmp_path):
    made = prepare_demo_project(tmp_path / "d")
    assert made.base_model.is_demo and made.dataset.kind == "demo"
    assert prepare_demo_project(tmp_path / "d").folder == made.folder
    headless = tmp_path / "h"
    Project.create(headless / "project")
    assert prepare_demo_project(headless).folder == headless / "project"
