"""Deployment packages: contents, validation, atomic writing (workbench.core.export)."""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workbench.core import export_checks, export_writer
from workbench.core.errors import WorkbenchError
from workbench.core.export import (FP32_FILE, INT8_FILE, ExportRequest, Tolerance, demo_info, export_package,
                                   export_to_end)
from workbench.core.progress import CancelToken, Cancelled

EVERY_FILE = {"model.onnx", "model.int8.onnx", "deploy.json", "README.md", "infer.py", "requirements.txt",
              "sample.npz", "latency.json", "SHA256SUMS"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _request(demo_setup, out: Path, **kwargs) -> ExportRequest:
    _, artifact, data = demo_setup
    kwargs.setdefault("data", data)
    return ExportRequest(source=artifact, out=out, info=demo_info(), **kwargs)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".export-" in p.name)


@pytest.fixture(scope="module")
def package(tmp_path_factory, demo_setup, one_thread) -> Path:
    out = tmp_path_factory.mktemp("export") / "digits"
    export_to_end(_request(demo_setup, out, make_int8=True, measure_latency=True, latency_runs=30,
                           recipe={"steps": [{"method": "quantize.int8_static"}]}))
    return out


def test_package_holds_every_file_with_matching_sha256(package):
    assert {p.name for p in package.iterdir()} == EVERY_FILE
    deploy = json.loads((package / "deploy.json").read_text())
    assert set(deploy["files"]) == EVERY_FILE - {"deploy.json", "SHA256SUMS"}
    for name, entry in deploy["files"].items():
        assert entry["sha256"] == _sha(package / name), name
        assert entry["bytes"] == (package / name).stat().st_size
    sums = dict(line.split("  ")[::-1] for line in (package / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == EVERY_FILE - {"SHA256SUMS"}
    assert all(sums[name] == _sha(package / name) for name in sums)
    readme = (package / "README.md").read_text()
    assert deploy["files"]["model.int8.onnx"]["sha256"] in readme
    assert "Accuracy was not measured" not in readme  # the demo package measured it


def test_deploy_json_describes_the_model(package, demo_setup):
    deploy = json.loads((package / "deploy.json").read_text())
    assert deploy["schema_version"] == 1 and deploy["name"] == "demo_digits"
    assert deploy["inputs"] == [{"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float32"}]
    assert deploy["outputs"][0]["shape"] == ["batch", 10] and deploy["outputs"][0]["dtype"] == "float32"
    assert deploy["labels"] == [str(d) for d in range(10)]
    pre = deploy["preprocessing"]
    assert pre["mean"] == [0.1307] and pre["std"] == [0.3081]
    assert pre["color"] == "grayscale" and pre["size"] == [28, 28] and pre["layout"] == "NCHW"
    assert deploy["default_model"] == INT8_FILE
    assert [m["precision"] for m in deploy["models"]] == ["fp32", "int8"]
    assert deploy["models"][1]["quantization"]["method"] == "quantize.int8_static"
    assert deploy["recipe"] == {"steps": [{"method": "quantize.int8_static"}]}
    assert {"workbench", "onnx", "onnxruntime", "numpy", "torch", "python"} <= set(deploy["tools"])
    # accuracy measured on the whole validation split, saying where and how
    accuracy = {m["model"]: m for m in deploy["metrics"] if m["name"] == "top1_accuracy"}
    assert set(accuracy) == {FP32_FILE, INT8_FILE}
    assert all(m["provenance"] == "measured" and m["how"]["samples"] == 1000 for m in accuracy.values())
    assert accuracy[FP32_FILE]["value"] > 0.95
    latency = json.loads((package / "latency.json").read_text())
    assert latency["provenance"] == "measured" and latency["runs"] == 30
    assert set(latency["models"]) == {FP32_FILE, INT8_FILE} and latency["models"][FP32_FILE]["p50"] > 0
    # the bundled sample: one real validation digit per class, with its label
    sample = np.load(package / "sample.npz")
    assert sorted(sample["y"].tolist()) == list(range(10)) and sample["x"].shape == (10, 1, 28, 28)
    assert deploy["sample"]["count"] == 10 and deploy["sample"]["labels_known"]


def test_validation_is_recorded_with_tolerances_and_differences(package):
    validation = json.loads((package / "deploy.json").read_text())["validation"]
    assert validation["onnx_checker"]["full_check"] and validation["onnx_checker"]["passed"] == [FP32_FILE, INT8_FILE]
    fp32, int8 = validation["checks"]
    assert fp32["model"] == FP32_FILE and fp32["reference"].startswith("torch")
    assert fp32["atol"] == 1e-4 and 0 <= fp32["max_abs_diff"] < 1e-4 and fp32["passed"]
    assert fp32["inputs"] == 10 + 64
    assert int8["model"] == INT8_FILE and int8["min_top1_agreement"] == 0.9 and int8["top1_agreement"] >= 0.9
    assert int8["max_abs_diff"] > fp32["max_abs_diff"]  # int8 really differs; the figure is measured, not copied


def test_packaged_models_carry_the_facts_in_metadata_and_pass_the_checker(package):
    import onnx

    deploy = json.loads((package / "deploy.json").read_text())
    for name, precision in ((FP32_FILE, "fp32"), (INT8_FILE, "int8")):
        onnx.checker.check_model(str(package / name), full_check=True)
        props = {p.key: p.value for p in onnx.load(str(package / name)).metadata_props}
        assert props["precision"] == precision and json.loads(props["name"]) == "demo_digits"
        assert json.loads(props["labels"]) == deploy["labels"]
        assert json.loads(props["preprocessing"]) == deploy["preprocessing"]
        assert json.loads(props["metrics"]) == deploy["metrics"]
        assert json.loads(props["tools"]) == deploy["tools"]


def test_infer_script_classifies_the_sample_and_arrays(package, tmp_path):
    import onnxruntime as ort

    sample = np.load(package / "sample.npz")
    session = ort.InferenceSession(str(package / INT8_FILE), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": sample["x"]})[0].argmax(1)
    proc = subprocess.run([sys.executable, "infer.py"], cwd=package, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("sample ")]
    assert [int(line.split("predicted ")[1].split()[0]) for line in lines] == expected.tolist()
    assert all(", true " in line for line in lines) and "(int8)" in proc.stdout
    np.save(tmp_path / "three.npy", sample["x"][:3])
    proc = subprocess.run([sys.executable, str(package / "infer.py"), str(tmp_path / "three.npy"), "--fp32"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "(fp32)" in proc.stdout and proc.stdout.count("three.npy ") == 3


def test_infer_script_without_pillow_says_how_to_read_images(package, tmp_path):
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code = ("import sys; sys.modules['PIL'] = None; sys.argv = ['infer.py', sys.argv[1]]; "
            "import runpy; runpy.run_path('infer.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "digit.png")], cwd=package,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs Pillow (pip install pillow)" in proc.stderr


def test_infer_script_refuses_a_changed_model(package, tmp_path):
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    data = bytearray((copy / INT8_FILE).read_bytes())
    data[-1] ^= 0xFF
    (copy / INT8_FILE).write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "infer.py"], cwd=copy, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "sha256" in proc.stderr


def test_zip_output_holds_the_package_under_one_folder(demo_setup, tmp_path, one_thread):
    out = tmp_path / "digits.zip"
    result = export_to_end(_request(demo_setup, out, measure_accuracy=False))
    assert result.out == out.absolute() and out.is_file() and _leftovers(tmp_path) == []
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {f"digits/{n}" for n in EVERY_FILE - {INT8_FILE, "latency.json"}}
        deploy = json.loads(zf.read("digits/deploy.json"))
        for name, entry in deploy["files"].items():
            assert hashlib.sha256(zf.read(f"digits/{name}")).hexdigest() == entry["sha256"]


def test_existing_output_is_refused_unless_forced(demo_setup, tmp_path, one_thread):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(WorkbenchError, match="already exists"):
        export_to_end(_request(demo_setup, out))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export_to_end(_request(demo_setup, out, force=True, measure_accuracy=False))
    assert (out / "deploy.json").is_file() and not (out / "keep.txt").exists()
    assert _leftovers(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    export_to_end(_request(demo_setup, empty, measure_accuracy=False))  # an empty folder is not "existing"
    assert (empty / "infer.py").is_file()


def test_a_failed_write_leaves_no_partial_package_and_keeps_the_old_one(demo_setup, tmp_path, monkeypatch,
                                                                        one_thread):
    out = tmp_path / "pkg"
    export_to_end(_request(demo_setup, out, measure_accuracy=False))
    before = {p.name: _sha(p) for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_writer, "requirements_text", disk_full)  # half the files are written by then
    with pytest.raises(WorkbenchError, match="not enough disk space") as err:
        export_to_end(_request(demo_setup, out, force=True, measure_accuracy=False))
    assert "nothing was written" in err.value.one_line()
    assert {p.name: _sha(p) for p in out.iterdir()} == before
    with pytest.raises(WorkbenchError, match="not enough disk space"):
        export_to_end(_request(demo_setup, tmp_path / "new.zip", measure_accuracy=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_cancel_leaves_nothing(demo_setup, tmp_path, one_thread):
    token = CancelToken()
    out = tmp_path / "pkg"
    gen = export_package(_request(demo_setup, out, make_int8=True), token)
    seen = []
    with pytest.raises(Cancelled):
        for progress in gen:
            seen.append(progress)
            if "calibrating" in progress.message:
                token.cancel()
    assert seen and not out.exists() and list(tmp_path.iterdir()) == []


def test_fp32_outside_tolerance_is_refused_with_the_measured_difference(demo_setup, tmp_path, monkeypatch,
                                                                         one_thread):
    real = export_checks.reference_outputs

    def drifted(source, fp32, x):  # a source model that computes something slightly different
        out, name = real(source, fp32, x)
        return out + 0.01, name

    monkeypatch.setattr(export_checks, "reference_outputs", drifted)
    with pytest.raises(WorkbenchError, match=r"differs from the source model: max abs diff 0\.01") as err:
        export_to_end(_request(demo_setup, tmp_path / "pkg"))
    assert "atol 0.0001" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    # the same drift within a stated looser tolerance passes, and the package records it
    result = export_to_end(_request(demo_setup, tmp_path / "pkg", tolerance=Tolerance(atol=0.02),
                                    measure_accuracy=False))
    check = result.deploy["validation"]["checks"][0]
    assert check["atol"] == 0.02 and 0.0099 < check["max_abs_diff"] < 0.0101


def test_int8_disagreement_is_refused(demo_setup, tmp_path, one_thread):
    with pytest.raises(WorkbenchError, match=r"agrees with the fp32 model's top-1 class on only"):
        export_to_end(_request(demo_setup, tmp_path / "pkg", make_int8=True,
                               tolerance=Tolerance(int8_min_top1_agreement=1.01)))
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_onnx_model_fails_the_checker(demo_setup, tmp_path, package):
    import onnx

    from workbench.core.artifact import ModelArtifact

    broken = onnx.load(str(package / INT8_FILE))
    broken.graph.node.append(broken.graph.node[0])  # the same output produced twice: not single assignment
    onnx.save(broken, str(tmp_path / "broken.onnx"))
    _, artifact, _ = demo_setup
    bad = ModelArtifact(path=tmp_path / "broken.onnx", format="onnx", inputs=artifact.inputs)
    with pytest.raises(WorkbenchError, match="model.int8.onnx fails the ONNX checker"):
        export_to_end(_request(demo_setup, tmp_path / "pkg", int8=bad))
    assert not (tmp_path / "pkg").exists() and _leftovers(tmp_path) == []


def test_wrong_label_count_is_a_clear_error(demo_setup, tmp_path):
    request = _request(demo_setup, tmp_path / "pkg", measure_accuracy=False)
    request.info.labels = ["cat", "dog"]
    with pytest.raises(WorkbenchError, match="2 labels were given but the model has 10 outputs"):
        export_to_end(request)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_any_model_exports_without_data_using_made_up_inputs(small_cnn, tmp_path, fmt, one_thread):
    from workbench.core.artifact import ModelArtifact
    from workbench.core.export import PackageInfo
    from workbench.core.shapes import TensorSpec

    path = small_cnn.torchscript if fmt == "torchscript" else small_cnn.onnx
    artifact = ModelArtifact(path=path, format=fmt, inputs=[TensorSpec("input", list(small_cnn.shape), "float32")])
    result = export_to_end(ExportRequest(source=artifact, out=tmp_path / "pkg", info=PackageInfo(name="small")))
    deploy = result.deploy
    check = deploy["validation"]["checks"][0]
    assert check["reference"].startswith("torch" if fmt == "torchscript" else "onnxruntime")
    assert check["passed"] and check["inputs"] == 4
    assert deploy["sample"]["source"] == "random (no data given)" and not deploy["sample"]["labels_known"]
    assert not deploy["labels_given"] and deploy["labels"] == [str(i) for i in range(len(deploy["labels"]))]
    assert deploy["preprocessing"]["mean"] is None and deploy["metrics"] == []
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "Accuracy was not measured: no labelled data was given." in card
    proc = subprocess.run([sys.executable, "infer.py"], cwd=tmp_path / "pkg", capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("predicted") == 4 and "true" not in proc.stdout


def test_a_model_with_a_fixed_batch_of_two_runs_an_odd_number_of_samples(small_cnn, tmp_path, one_thread):
    from model_files import export_onnx as save_onnx

    from workbench.core.artifact import ModelArtifact
    from workbench.core.data import ArrayData
    from workbench.core.export import PackageInfo
    from workbench.core.shapes import TensorSpec

    path = save_onnx(small_cnn.module, (2, 1, 28, 28), tmp_path / "batch2.onnx")
    artifact = ModelArtifact(path=path, format="onnx", inputs=[TensorSpec("input", [2, 1, 28, 28], "float32")])
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    result = export_to_end(ExportRequest(source=artifact, out=tmp_path / "pkg",
                                         info=PackageInfo(name="b2", samples=ArrayData("three", x))))
    assert result.deploy["inputs"][0]["shape"][0] == 2 and result.deploy["validation"]["checks"][0]["inputs"] == 3
    proc = subprocess.run([sys.executable, "infer.py"], cwd=tmp_path / "pkg", capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("predicted") == 3
