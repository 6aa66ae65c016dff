"""A deployment package from a project's variant: int8 variants ship with their float parent, figures and recipe."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.core.errors import WorkbenchError
from workbench.core.export import export_to_end
from workbench.core.methods import run_to_end
from workbench.core.modelspec import ModelSpec
from workbench.core.datasets import DatasetConfig
from workbench.core.project import Project
from workbench.core.project_export import export_request_for_variant
from workbench.core.runner import local_latency, run_step
from workbench.core.variants import Step

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = Project.create(tmp_path_factory.mktemp("p") / "digits")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    run_to_end(run_step(project, "base", Step("quantize.int8_static", {"calibration_samples": 64}),
                        measure_latency=local_latency(runs=20)))
    project.save()
    return project


def test_int8_variant_packages_with_its_float_parent_and_its_recipe(project, tmp_path):
    request = export_request_for_variant(project, "v1", tmp_path / "pkg")
    result = export_to_end(request)
    deploy = json.loads((result.out / "deploy.json").read_text())
    assert {"model.onnx", "model.int8.onnx"} <= set(deploy["files"])
    assert deploy["recipe"]["steps"][0]["method"] == "quantize.int8_static"
    names = {(m["name"], m.get("model")) for m in deploy["metrics"]}
    assert ("latency p50 on local", "model.int8.onnx") in names  # measured in the project, carried over
    measured = [m for m in deploy["metrics"] if m["name"] == "top1_accuracy" and m.get("model") == "model.int8.onnx"]
    assert measured and measured[0]["value"] == pytest.approx(project.variant("v1").accuracy[-1].top1, abs=0.002)
    with pytest.raises(WorkbenchError, match="no variant"):
        export_request_for_variant(project, "v9", tmp_path / "x")


def test_cli_exports_a_project_variant(project, tmp_path):
    out = tmp_path / "pkg.zip"
    cmd = [sys.executable, "-m", "workbench.cli", "export", str(project.folder), "--variant", "base", "--out", str(out),
           "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and json.loads(done.stdout)["default_model"] == "model.onnx"
    missing = subprocess.run(cmd[:5] + ["--out", str(tmp_path / "y")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--variant" in missing.stderr and "v1" in missing.stderr
