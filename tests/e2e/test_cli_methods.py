"""`workbench methods` and `workbench apply` as a user runs them."""

import hashlib
import json

import numpy as np

from cli_process import assert_one_line_error as _one_line_error, run_cli as run
from workbench.core.demo import demo_model_path


def test_methods_lists_every_built_in_with_its_parameters():
    proc = run("methods", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ids = {m["id"] for m in doc["methods"]}
    assert {"prune.channels", "prune.magnitude", "finetune", "quantize.int8_static", "quantize.int8_dynamic"} <= ids
    assert not doc["failed"]
    channels = next(m for m in doc["methods"] if m["id"] == "prune.channels")
    ratio = next(p for p in channels["params"] if p["name"] == "ratio")
    assert ratio["per_layer"] and ratio["maximum"] is not None
    text = run("methods")
    assert text.returncode == 0 and "[per layer]" in text.stdout


def test_apply_writes_the_result_and_leaves_the_input_alone(tmp_path):
    source = demo_model_path()
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "sparse.pt2"
    proc = run("apply", "--demo", "--method", "prune.magnitude", "--param", "sparsity=0.5", "--out", str(out),
               "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert out.is_file() and doc["out"] == str(out)
    assert doc["after"]["params"] == doc["before"]["params"]  # unstructured: same shapes, half zeros
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    onnx_out = tmp_path / "pruned.onnx"
    proc = run("apply", "--demo", "--method", "prune.channels", "--param", "ratio=0.5", "--out", str(onnx_out))
    assert proc.returncode == 0, proc.stderr
    assert onnx_out.is_file() and "MACs" in proc.stdout and "counted" in proc.stdout


def test_bad_input_gets_one_clear_line(tmp_path):
    out = tmp_path / "x.pt2"
    _one_line_error(run("apply", "--demo", "--method", "prune.channels", "--param", "ratio=2", "--out", str(out)),
                    "ratio", "Allowed")
    _one_line_error(run("apply", "--demo", "--method", "quantize.int8_static", "--out", str(tmp_path / "q.onnx")),
                    "needs data", "--data demo")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((16, 3, 32, 32), np.float32), y=np.zeros(16, np.int64))
    _one_line_error(run("apply", "--demo", "--method", "quantize.int8_static", "--data", str(wrong), "--out",
                        str(tmp_path / "q.onnx")), "samples of shape 3x32x32", "takes 1x28x28")
    _one_line_error(run("apply", "--demo", "--method", "nope", "--out", str(out)), "unknown method", "prune.channels")
    _one_line_error(run("apply", "--demo", "--method", "prune.channels", "--param", "speed=3", "--out", str(out)),
                    "no parameter 'speed'")
    assert not out.exists() and not (tmp_path / "q.onnx").exists()
