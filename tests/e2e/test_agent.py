"""The device agent as a real process on 127.0.0.1, driven by the client, raw HTTP and `workbench bench`."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agent_process import AGENT_FILE, AgentProcess
from cli_process import WORKBENCH
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.errors import WorkbenchError
from workbench.devices import BenchConfig
QUICK = BenchConfig(runs=30, warmup=3, profile_runs=3)
LONG = BenchConfig(runs=10**6, warmup=0, profile_runs=0)  # ~100 s of the demo: long enough to be killed mid-job


@pytest.fixture(scope="module")
def demo_onnx(demo_setup, tmp_path_factory) -> ModelArtifact:
    _, artifact, _ = demo_setup
    return export_onnx(artifact, tmp_path_factory.mktemp("agent") / "demo.onnx")


@pytest.fixture
def agent(tmp_path):
    made = []

    def start(*extra: str, **kwargs) -> AgentProcess:
        process = AgentProcess(tmp_path / f"store{len(made)}", *extra, **kwargs)
        made.append(process)
        return process

    yield start
    for process in made:
        process.kill()


def raw(agent: AgentProcess, method: str, path: str, body: bytes | None = None, token: str | None = "",
        length: int | None = None) -> tuple[int, dict]:
    """One request as any HTTP client could send it; ``length`` sends only headers claiming that body size."""
    conn = http.client.HTTPConnection(agent.host, agent.port, timeout=30)
    conn.putrequest(method, path)
    if token is not None:
        conn.putheader("Authorization", f"Bearer {token or agent.token}")
    size = length if length is not None else (len(body) if body is not None else 0)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    if body is not None and length is None:
        conn.send(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else {})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_benchmark_of_the_demo_then_a_second_run_skips_the_upload(agent, demo_onnx):
    a = agent()
    device = a.device()
    report = device.benchmark(demo_onnx, QUICK)
    assert report.runs == 30 and report.threads == 1 and report.measured
    assert 0 < report.min_ms <= report.p50_ms <= report.p90_ms <= report.p99_ms
    assert report.load_ms > 0 and report.first_inference_ms > 0
    assert report.input_shapes == {"input": [1, 1, 28, 28]}
    assert report.ops and report.ops[0].total_ms >= report.ops[-1].total_ms
    assert "Conv" in {op.op_type for op in report.ops} and all(op.calls == 3 for op in report.ops)
    info = report.device_info
    assert info["onnxruntime"] and "CPUExecutionProvider" in info["providers"] and info["cores"] >= 1
    assert report.device == f"agent://127.0.0.1:{a.port}"
    assert a.stored_models() == [f"{demo_onnx.sha256}.onnx"]
    stored = a.store / f"{demo_onnx.sha256}.onnx"
    mtime = stored.stat().st_mtime_ns

    assert device.upload(demo_onnx.path) is False  # the agent has it: nothing sent
    again = device.benchmark(demo_onnx, QUICK)
    stats = device.capabilities(refresh=True)["stats"]
    assert stats["models_stored"] == 1 and stats["jobs_started"] == 2 and stats["jobs_finished"] == 2
    assert stored.stat().st_mtime_ns == mtime and again.runs == 30


def test_wrong_or_missing_token_is_refused_and_nothing_is_stored_or_run(agent, demo_onnx):
    a = agent()
    data = demo_onnx.path.read_bytes()
    with pytest.raises(WorkbenchError, match="refused the token"):
        a.device(token="not-the-token").benchmark(demo_onnx, QUICK)
    for token in ("wrong", None):
        status, doc = raw(a, "PUT", f"/models/{sha(data)}", data, token=token)
        assert status == 401 and doc["code"] == "unauthorized" and "token" in doc["error"]
        job = json.dumps({"model_sha256": sha(data), "runs": 5}).encode()
        assert raw(a, "POST", "/jobs", job, token=token)[0] == 401
        assert raw(a, "GET", "/capabilities", token=token)[0] == 401
    assert a.stored_models() == []
    stats = a.device().capabilities()["stats"]
    assert stats["jobs_started"] == 0 and stats["models_stored"] == 0


def test_oversized_upload_is_refused_by_its_length_before_the_body_is_read(agent, demo_onnx):
    a = agent("--max-upload-mb", "0.01")
    size = demo_onnx.path.stat().st_size
    status, doc = raw(a, "PUT", f"/models/{demo_onnx.sha256}", length=size)  # headers only: no body sent
    assert status == 413 and doc["code"] == "too_large" and str(size) in doc["error"]
    with pytest.raises(WorkbenchError, match="accepts at most 0.0 MiB"):
        a.device().benchmark(demo_onnx, QUICK)
    assert a.stored_models() == [] and not list(a.store.glob(".upload-*"))


def _custom_domain_model() -> bytes:
    node = helper.make_node("MyOp", ["x"], ["y"], domain="com.example.custom")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example.custom", 1)])
    return model.SerializeToString()


def _external_data_model(tmp_path) -> bytes:
    weights = numpy_helper.from_array(np.full([16], 2.0, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    data = (tmp_path / "ext.onnx").read_bytes()
    assert b"ext.bin" in data  # the file names its data file: a path the agent must never follow
    return data


def test_non_onnx_custom_ops_external_data_and_wrong_hash_are_refused(agent, demo_onnx, tmp_path):
    a = agent()
    cases = {"not_onnx": os.urandom(4096), "custom_ops": _custom_domain_model(),
             "external_data": _external_data_model(tmp_path)}
    for code, data in cases.items():
        status, doc = raw(a, "PUT", f"/models/{sha(data)}", data)
        assert (status, doc["code"]) == (415, code), doc
    text = b"this is a text file, not a model\n" * 10
    assert raw(a, "PUT", f"/models/{sha(text)}", text)[1]["code"] == "not_onnx"
    data = demo_onnx.path.read_bytes()
    status, doc = raw(a, "PUT", f"/models/{sha(b'other')}", data)
    assert status == 400 and doc["code"] == "sha_mismatch"
    assert raw(a, "PUT", "/models/..%2F..%2Fetc", data)[0] == 400  # names are hashes, never paths
    status, doc = raw(a, "POST", "/jobs", json.dumps({"model_sha256": sha(data)}).encode())
    assert status == 404 and doc["code"] == "unknown_model"
    assert a.stored_models() == [] and not list(a.store.glob(".upload-*"))
    assert a.device().capabilities()["stats"]["jobs_started"] == 0


def test_agent_killed_mid_job_is_a_clear_error_for_the_client(agent, demo_onnx):
    a = agent()
    device = a.device()
    device.upload(demo_onnx.path)
    outcome: dict = {}

    def bench() -> None:
        try:
            outcome["report"] = device.benchmark(demo_onnx, LONG)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    worker = threading.Thread(target=bench)
    worker.start()
    a.wait_until_busy()
    a.kill()
    worker.join(timeout=30)
    error = outcome.get("error")
    assert isinstance(error, WorkbenchError), outcome
    assert f"agent://127.0.0.1:{a.port}" in str(error) and "closed the connection during the benchmark" in str(error)
    assert "agent is still running" in error.one_line()


def test_workbench_bench_exits_2_with_one_line_when_the_agent_dies(agent, demo_onnx):
    a = agent()
    env = {**os.environ, "WORKBENCH_AGENT_TOKEN": a.token}
    proc = subprocess.Popen(WORKBENCH + ["bench", str(demo_onnx.path), "--input-shape", "1x1x28x28", "--device",
                                         f"agent://127.0.0.1:{a.port}", "--runs", str(LONG.runs), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        a.wait_until_busy(timeout=60)
        a.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and f"127.0.0.1:{a.port}" in lines[0] and not out


def test_workbench_bench_json_on_an_agent_and_on_this_machine(agent, demo_onnx):
    a = agent()
    env = {**os.environ, "WORKBENCH_AGENT_TOKEN": a.token}
    shape = ["--input-shape", "1x1x28x28", "--runs", "20", "--warmup", "2", "--json"]
    for device in (f"agent://127.0.0.1:{a.port}", "local"):
        proc = subprocess.run(WORKBENCH + ["bench", str(demo_onnx.path), "--device", device, *shape],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert {"device", "p50_ms", "p90_ms", "p99_ms", "runs", "threads", "load_ms", "ops"} <= set(doc)
        assert doc["runs"] == 20 and doc["threads"] == 1 and 0 < doc["p50_ms"] <= doc["p99_ms"]
        assert doc["ops"] and {"name", "op_type", "total_ms", "mean_ms"} <= set(doc["ops"][0])
        assert doc["device"].startswith(device if device != "local" else "local")
    bad = subprocess.run(WORKBENCH + ["bench", str(demo_onnx.path), "--device", f"agent://127.0.0.1:{a.port}",
                                      "--token", "wrong", *shape], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "refused the token" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_human_output_names_the_device_and_the_spread():
    proc = subprocess.run(WORKBENCH + ["bench", "--demo", "--runs", "20", "--warmup", "2"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("p50 ") and "p90" in first and "20 runs" in first
    assert second.startswith("measured on local")


def test_the_agent_file_runs_alone_from_a_copy(agent, demo_onnx, tmp_path):
    """server.py copied into an empty folder, with the workbench package made unimportable, serves a benchmark."""
    alone = tmp_path / "board"
    alone.mkdir()
    shutil.copy(AGENT_FILE, alone / "server.py")
    launcher = ("import runpy, sys; sys.modules['workbench'] = None; sys.argv = ['server.py'] + sys.argv[1:]; "
                "runpy.run_path('server.py', run_name='__main__')")
    a = agent(command=[sys.executable, "-c", launcher], cwd=alone)
    report = a.device().benchmark(demo_onnx, QUICK)
    assert report.runs == 30 and report.ops


def test_workbench_agent_command_runs_the_same_server(agent, demo_onnx):
    a = agent(command=WORKBENCH + ["agent"])
    caps = a.device().capabilities()
    assert caps["agent_version"] and caps["max_upload_bytes"] == 512 << 20 and "isa_flags" in caps
    assert raw(a, "GET", "/capabilities", token="wrong")[0] == 401
