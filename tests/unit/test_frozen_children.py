"""Child processes inside the desktop bundle: with ``sys.frozen`` set and ``sys.executable`` being the app (here a
stand-in launcher that runs workbench.frozen the way the PyInstaller bundle does), the model reader and the local
device's agent modes still start and answer. The real bundle is checked by `make package`."""

from __future__ import annotations

import stat
import sys

import pytest

from workbench.agent import server
from workbench.core.artifact import export_onnx
from workbench.core.child import FROZEN_CHILD_FLAG, child_command
from workbench.core.demo import demo_request
from workbench.core.loader import LoaderProcess
from workbench.core.methods import run_to_end
from workbench.core.readers import open_model
from workbench.devices import BenchConfig
from workbench.devices import local


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    """Pretend to be the bundle: sys.executable is a program that only understands the bundle's arguments."""
    launcher = tmp_path / "ModelWorkbench"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; sys.frozen = True; '
                        f'from workbench.frozen import main; sys.exit(main())" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(launcher))
    monkeypatch.setattr(local, "_described", None)
    return launcher


def test_from_source_children_run_python_code():
    assert child_command("loader", "7") == [sys.executable, "-m", "workbench.core.loader", "7"]
    agent = child_command("agent", "--describe")
    assert agent[0] == sys.executable and agent[1].endswith("agent/server.py") and agent[2:] == ["--describe"]
    with pytest.raises(ValueError):
        child_command("shell")


def test_frozen_children_run_the_app_itself(frozen):
    assert child_command("loader", "7", "torch") == [str(frozen), FROZEN_CHILD_FLAG, "loader", "7", "torch"]
    assert server._self_command("--job", "j.json") == [str(frozen), FROZEN_CHILD_FLAG, "agent", "--job", "j.json"]


def test_the_model_reader_opens_the_demo_in_the_frozen_child(frozen):
    loader = LoaderProcess(preload=())
    try:
        assert loader._proc.args[:3] == [str(frozen), FROZEN_CHILD_FLAG, "loader"]
        graph = run_to_end(loader.open(demo_request()))
    finally:
        loader.close()
    here = open_model(demo_request())
    assert graph.params == here.params > 100_000 and graph.macs == here.macs > 0


def test_the_local_device_measures_through_the_frozen_agent_mode(frozen, demo_setup, tmp_path):
    _, artifact, _ = demo_setup
    onnx = export_onnx(artifact, tmp_path / "demo.onnx")
    report = local.LocalDevice().benchmark(onnx, BenchConfig(runs=5, warmup=1, profile_runs=0))
    assert report.runs == 5 and 0 < report.min_ms <= report.p50_ms
    assert report.device_info["onnxruntime"]  # from the frozen child's --describe
