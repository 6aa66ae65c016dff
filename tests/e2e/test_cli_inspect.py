"""`workbench inspect` as a user runs it: one JSON document, or one clear error line and a non-zero exit."""

import json

import onnx
import pytest

from cli_process import assert_one_line_error as _assert_one_line_error, run_cli
from workbench.core.demo import demo_info


def run(*args):
    return run_cli(*args, timeout=300)


def test_demo_json_is_one_document_with_the_documented_keys():
    proc = run("inspect", "--demo", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one document: json.loads fails on trailing text
    for key in ("format", "inputs", "outputs", "params", "macs", "flops", "nodes", "layers", "uncounted_ops"):
        assert key in doc
    assert doc["flops"] == 2 * doc["macs"]
    assert doc["nodes"] == len(doc["layers"])
    assert doc["inputs"][0]["shape"] == demo_info()["input_shape"]
    assert doc["params"] == sum(layer["params"] for layer in doc["layers"])
    assert 80_000 < doc["params"] < 150_000
    layer = doc["layers"][0]
    assert set(layer) >= {"name", "op_type", "scope", "params", "macs", "output_shapes"}


def test_text_report_shows_totals_and_top_layers(small_cnn):
    proc = run("inspect", str(small_cnn.onnx), "--top", "3")
    assert proc.returncode == 0, proc.stderr
    assert "Parameters" in proc.stdout and "FLOPs (2 x MACs)" in proc.stdout
    assert "Top 3 layers by MACs" in proc.stdout
    assert "not measured" in proc.stdout


def test_bad_inputs_give_one_clear_line(tmp_path, small_cnn):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(small_cnn.onnx.read_bytes()[:500])
    _assert_one_line_error(run("inspect", str(truncated)), str(truncated), "not a readable ONNX file")

    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello")
    _assert_one_line_error(run("inspect", str(unknown)), str(unknown), "unknown model format", "Supported")

    _assert_one_line_error(run("inspect", str(tmp_path / "absent.onnx")), "absent.onnx", "no such file")

    import torch

    pickled = tmp_path / "full.pt"
    torch.save(small_cnn.module, pickled)
    _assert_one_line_error(run("inspect", str(pickled), "--input-shape", "1x1x28x28"), str(pickled),
                           "runs code", "--trust-code")

    _assert_one_line_error(run("inspect", str(small_cnn.torchscript)), "input shape", "--input-shape")
    _assert_one_line_error(run("inspect", str(small_cnn.onnx), "--input-shape", "1x1x28"),
                           "has 4 dimensions", "--input-shape")
    _assert_one_line_error(run("inspect", str(small_cnn.onnx), "--input-shape", "one"), "not a list of integers")


def test_missing_external_data_names_the_file(tmp_path, small_cnn):
    model = onnx.load(str(small_cnn.onnx))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin")
    (tmp_path / "weights.bin").unlink()
    _assert_one_line_error(run("inspect", str(path)), "weights.bin", "missing")


def test_debug_shows_the_traceback(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 8)
    proc = run("--debug", "inspect", str(junk))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["archs"]])
def test_help_version_and_architecture_list(argv):
    proc = run(*argv)
    assert proc.returncode == 0 and proc.stdout.strip()
