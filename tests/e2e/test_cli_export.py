"""`workbench export` as a user runs it, and the acceptance test: a package runs alone in a fresh virtual env."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cli_process import assert_one_line_error as _one_line_error, run_cli as run


def test_export_demo_to_a_zip_with_int8(tmp_path):
    out = tmp_path / "digits.zip"
    proc = run("export", "--demo", "--int8", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["out"] == str(out) and doc["default_model"] == "model.int8.onnx"
    assert [c["model"] for c in doc["validation"]["checks"]] == ["model.onnx", "model.int8.onnx"]
    with zipfile.ZipFile(out) as zf:
        assert {"digits/model.int8.onnx", "digits/infer.py", "digits/deploy.json"} <= set(zf.namelist())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.zip"]


def test_export_an_onnx_file_with_labels_and_refuse_to_overwrite(tmp_path, small_cnn):
    model = small_cnn.onnx
    out = tmp_path / "pkg"
    labels = ",".join(f"digit {d}" for d in range(10))
    proc = run("export", str(model), "--input-shape", "1x1x28x28", "--data", "demo", "--labels", labels,
               "--mean", "0.1307", "--std", "0.3081", "--latency", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "on the source ONNX file" in proc.stdout and "measured" in proc.stdout
    deploy = json.loads((out / "deploy.json").read_text())
    assert deploy["labels"][3] == "digit 3" and deploy["preprocessing"]["mean"] == [0.1307]
    assert deploy["name"] == "small_cnn" and deploy["default_model"] == "model.onnx"
    # the file fixes batch 1: accuracy and latency ran in batches of 1
    assert deploy["latency"]["batch"] == 1 and deploy["latency"]["models"]["model.onnx"]["p50"] > 0
    assert deploy["metrics"][0]["how"]["samples"] == 1000 and deploy["metrics"][0]["provenance"] == "measured"
    before = (out / "deploy.json").read_bytes()
    _one_line_error(run("export", str(model), "--input-shape", "1x1x28x28", "--out", str(out)),
                    "already exists", "--force")
    assert (out / "deploy.json").read_bytes() == before
    proc = run("export", str(model), "--input-shape", "1x1x28x28", "--out", str(out), "--force", "--name", "again")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "deploy.json").read_text())["name"] == "again"


def test_bad_export_input_gets_one_clear_line(tmp_path):
    _one_line_error(run("export", "--demo", "--labels", "a,b", "--out", str(tmp_path / "p")), "2 labels", "10 outputs")
    _one_line_error(run("export", "--demo", "--int8-model", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "q")),
                    "--int8-model")
    _one_line_error(run("export", "--demo", "--mean", "0.5", "--out", str(tmp_path / "r")), "--mean and --std go")
    assert list(tmp_path.iterdir()) == []


def _clean_env(venv: Path) -> dict[str, str]:
    """What a person's fresh shell has: no PYTHONPATH, no active virtual env, the new venv first on PATH."""
    keep = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "HOME", "LANG", "LC_", "TMPDIR"))
            or k.lower().endswith("_proxy")}
    return {**keep, "PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}"}


@pytest.mark.slow
def test_acceptance_package_runs_alone_in_a_fresh_virtual_env(tmp_path):
    """An exported package, copied alone into a fresh venv with only its requirements.txt, prints the predicted
    class of each bundled sample, and the predictions are those computed here."""
    import onnxruntime as ort

    started = time.perf_counter()
    built = tmp_path / "built"
    proc = run("export", "--demo", "--int8", "--out", str(built))
    assert proc.returncode == 0, proc.stderr
    exported = time.perf_counter()

    alone = tmp_path / "elsewhere" / "digits"
    shutil.copytree(built, alone)
    venv = tmp_path / "elsewhere" / ".venv"
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300, env=_clean_env(venv))
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
                             cwd=alone, capture_output=True, text=True, timeout=900, env=_clean_env(venv))
    assert install.returncode == 0, install.stdout + install.stderr
    installed = time.perf_counter()
    # the fresh env really has nothing of ours
    isolated = subprocess.run([str(python), "-c", "import workbench"], capture_output=True, text=True, cwd=tmp_path,
                              env=_clean_env(venv))
    assert isolated.returncode != 0 and "No module named 'workbench'" in isolated.stderr
    proc = subprocess.run([str(python), "infer.py"], cwd=alone, capture_output=True, text=True, timeout=300,
                          env=_clean_env(venv))
    ran = time.perf_counter()
    assert proc.returncode == 0, proc.stdout + proc.stderr

    sample = np.load(built / "sample.npz")
    session = ort.InferenceSession(str(built / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": sample["x"]})[0].argmax(1)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("sample ")]
    assert len(lines) == len(expected) == 10
    for i, (line, want, truth) in enumerate(zip(lines, expected, sample["y"])):
        assert line.startswith(f"sample {i}: predicted {want} (p="), line
        assert line.endswith(f", true {truth}"), line
    print(f"\nacceptance: export {exported - started:.1f} s, venv + pip install {installed - exported:.1f} s, "
          f"infer.py {ran - installed:.1f} s")

    # Beyond the acceptance criterion: with Pillow added, infer.py preprocesses an image file as deploy.json says.
    # The digit is sample 3 turned back into 8-bit pixels, so it must get the same prediction as the sample.
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pillow"], capture_output=True, text=True,
                         timeout=900, env=_clean_env(venv))
    assert pip.returncode == 0, pip.stdout + pip.stderr
    from workbench.core.architectures import DEMO_MEAN, DEMO_STD

    pixels = np.clip(np.round((sample["x"][3, 0] * DEMO_STD + DEMO_MEAN) * 255), 0, 255).astype(np.uint8)
    np.save(tmp_path / "digit.npy", pixels)
    subprocess.run([str(python), "-c", "import sys, numpy; from PIL import Image; "
                    "Image.fromarray(numpy.load(sys.argv[1])).save(sys.argv[2])", str(tmp_path / "digit.npy"),
                    str(tmp_path / "digit.png")], check=True, timeout=120, env=_clean_env(venv))
    image = subprocess.run([str(python), "infer.py", str(tmp_path / "digit.png")], cwd=alone, capture_output=True,
                           text=True, timeout=300, env=_clean_env(venv))
    assert image.returncode == 0, image.stdout + image.stderr
    assert f"digit.png 0: predicted {expected[3]} (p=" in image.stdout, image.stdout
