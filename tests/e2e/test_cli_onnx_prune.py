"""`workbench apply model.onnx --method prune.channels` as a user runs it: ONNX in, smaller ONNX out."""

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from cli_process import run_cli as run


def test_apply_prune_channels_to_an_onnx_file(small_cnn, tmp_path):
    out = tmp_path / "pruned.onnx"
    proc = run("apply", str(small_cnn.onnx), "--method", "prune.channels", "--param", "ratio=0.5", "--out", str(out),
               "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"] == "onnx" and doc["after"]["macs"] < doc["before"]["macs"] * 0.6
    assert doc["after"]["params"] < doc["before"]["params"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input"
    assert session.run(None, {"input": np.zeros((1, 1, 28, 28), np.float32)})[0].shape == (1, 10)


def test_apply_names_the_node_it_cannot_convert(tmp_path):
    nodes = [helper.make_node("Einsum", ["x", "w"], ["y"], name="mix", equation="bi,ij->bj")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.5] * 12)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "einsum.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "out.onnx"
    proc = run("apply", str(path), "--method", "prune.channels", "--out", str(out))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "'mix' (op Einsum)" in lines[0], proc.stderr
    assert not out.exists()
