"""A project survives the process being killed in the middle of a run: what was saved is all still there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from workbench.core.project import Project

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from workbench.core.datasets import DatasetConfig
    from workbench.core.methods import run_to_end
    from workbench.core.modelspec import ModelSpec
    from workbench.core.project import Project
    from workbench.core.runner import evaluate_variant, run_step
    from workbench.core.variants import Step

    project = Project.create(Path(sys.argv[1]))
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    run_to_end(evaluate_variant(project, "base"))
    project.save()
    print("base measured", flush=True)
    # a long fine-tune: the test kills the process while it runs
    run_to_end(run_step(project, "base", Step("finetune", {"epochs": 50})),
               lambda p: print("progress", p.message, flush=True))
""")


def test_killed_mid_run_reopens_with_the_measured_base_and_an_interrupted_variant(tmp_path):
    folder = tmp_path / "project"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("progress") and "epoch 1/50" in line:
                break
            assert time.monotonic() < deadline, seen[-5:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    project = Project.open(folder)
    base = project.variant("base")
    assert base.status == "done" and base.accuracy and base.accuracy[-1].top1 > 0.98  # saved, kept
    running = [v for v in project.variants.values() if v.id != "base"]
    assert len(running) == 1 and running[0].status == "interrupted" and running[0].step.method == "finetune"
    assert project.recovery.interrupted == [running[0].id]
    assert not [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part"))]  # no half-written files left
