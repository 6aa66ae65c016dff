"""The wheel is complete: built from pyproject, installed into a fresh virtual environment (no system packages, no
access to this checkout), its ``workbench`` command opens the bundled demo and finds the built-in methods.

Slow (about two minutes, most of it pip installing torch and the other dependencies from the package registry): the
only way to prove the wheel carries everything is to install it where nothing else is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.demo import demo_request
from workbench.core.readers import open_model

ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = {"quantize.int8_static", "quantize.int8_dynamic", "prune.channels", "prune.magnitude", "finetune",
             "distill.kd", "quantize.bits", "analysis.sensitivity"}


def _run(cmd: list, cwd: Path, env: dict, timeout: float) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # Build from a clean copy of the sources, so no stale build/ folder or egg-info of the checkout leaks in.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "workbench", src / "workbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, src],
         tmp_path, env, 300)
    wheel = next(dist.glob("model_workbench-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env, 120)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel], tmp_path, env, 900)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = json.loads(_run([py, "-c", "import json, workbench, workbench.core.demo as d; "
                                       "print(json.dumps([workbench.__file__, str(d.resources_dir())]))"],
                            outside, env, 60))
    site = (venv / "lib").resolve()
    assert all(Path(p).resolve().is_relative_to(site) for p in where), where  # not this checkout
    resources = Path(where[1])
    for name in ("demo/demo_digits.pt", "demo/demo_digits.json", "demo/digits.npz", "demo/ATTRIBUTION.md",
                 "icons/model-workbench.png", "icons/model-workbench.svg"):
        assert (resources / name).is_file(), name
    assert (Path(where[0]).parent / "core" / "templates" / "infer.py").is_file()

    report = json.loads(_run([venv / "bin" / "workbench", "inspect", "--demo", "--json"], outside, env, 300))
    expected = open_model(demo_request())
    assert (report["params"], report["macs"], report["nodes"]) == (expected.params, expected.macs,
                                                                    len(expected.nodes))
    assert Path(report["source"]).resolve().is_relative_to(site)
    text = _run([venv / "bin" / "workbench", "inspect", "--demo"], outside, env, 300)
    assert f"{expected.params:,}" in text and f"{expected.macs:,}" in text

    listed = json.loads(_run([venv / "bin" / "workbench", "methods", "--json"], outside, env, 300))
    assert {m["id"] for m in listed["methods"]} == BUILT_INS and listed["failed"] == []  # entry points from the wheel
