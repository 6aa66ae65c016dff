"""The local device (ONNX Runtime in a child process), device (de)serialisation and the --device parser."""

from __future__ import annotations

import time

import pytest

from workbench.core.artifact import export_onnx
from workbench.core.errors import WorkbenchError
from workbench.core.progress import CancelToken, Cancelled
from workbench.devices import BenchConfig, device_from_dict, parse_device
from workbench.devices.agent import AgentDevice
from workbench.devices.local import LocalDevice


@pytest.fixture(scope="module")
def demo_onnx(demo_setup, tmp_path_factory):
    _, artifact, _ = demo_setup
    return export_onnx(artifact, tmp_path_factory.mktemp("devices") / "demo.onnx")


def test_local_benchmark_of_the_demo_reports_every_figure(demo_onnx):
    progress = []
    steps = LocalDevice().benchmark_steps(demo_onnx, BenchConfig(runs=40, warmup=4, profile_runs=5))
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            report = stop.value
            break
    assert report.runs == 40 and report.warmup == 4 and report.threads == 1
    assert 0 < report.min_ms <= report.p50_ms <= report.p90_ms <= report.p99_ms and report.std_ms >= 0
    assert report.load_ms > 0 and report.first_inference_ms > 0
    assert report.ops and all(op.calls == 5 for op in report.ops)
    assert [op.total_ms for op in report.ops] == sorted((op.total_ms for op in report.ops), reverse=True)
    assert report.op_types()[0][0] == "Conv"
    assert report.device_info["onnxruntime"] and report.device_info["cpu_model"]
    fractions = [p.fraction for p in progress if p.fraction is not None]
    assert fractions[-1] == 1.0 and any("timing run" in p.message for p in progress)


def test_a_torch_artifact_is_exported_and_its_shapes_used(demo_setup):
    _, artifact, _ = demo_setup
    report = LocalDevice().benchmark(artifact, BenchConfig(runs=5, warmup=1, profile_runs=0))
    assert report.input_shapes == {artifact.inputs[0].name: [1, 1, 28, 28]} and report.ops == []


def test_batch_and_threads_reach_onnx_runtime(demo_onnx):
    config = BenchConfig(runs=5, warmup=1, profile_runs=0, threads=2, batch=3, input_shapes=None)
    report = LocalDevice().benchmark(demo_onnx.path, config)  # a bare path: the dynamic batch axis takes ``batch``
    assert report.input_shapes == {"input": [3, 1, 28, 28]} and report.threads == 2


def test_cancel_stops_a_long_benchmark_quickly(demo_onnx):
    token = CancelToken()
    steps = LocalDevice().benchmark_steps(demo_onnx, BenchConfig(runs=10**6, warmup=0, profile_runs=0), token)
    t = time.monotonic()
    with pytest.raises(Cancelled):
        for progress in steps:
            if progress.fraction and progress.fraction > 0:
                token.cancel()
    assert time.monotonic() - t < 30


def test_time_limit_and_unloadable_models_are_clear_errors(demo_onnx, tmp_path):
    with pytest.raises(WorkbenchError, match="ran past its 1 s limit"):
        LocalDevice().benchmark(demo_onnx, BenchConfig(runs=10**6, warmup=0, profile_runs=0, timeout_s=1))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model at all")
    with pytest.raises(WorkbenchError, match="onnxruntime cannot load the model") as err:
        LocalDevice().benchmark(broken)
    assert str(broken) in err.value.one_line()
    with pytest.raises(WorkbenchError, match="execution provider NoSuchExecutionProvider"):
        LocalDevice(provider="NoSuchExecutionProvider").benchmark(demo_onnx, BenchConfig(runs=2, warmup=0))


def test_devices_round_trip_through_dicts_with_their_token():
    for device in (LocalDevice(provider="CPUExecutionProvider"), AgentDevice("10.0.0.7", 9000, "s3cret", "pi")):
        again = device_from_dict(device.to_dict())
        assert type(again) is type(device) and again.to_dict() == device.to_dict()
    assert device_from_dict({"kind": "agent", "host": "h", "port": 1, "token": "t"}).token == "t"
    with pytest.raises(WorkbenchError, match="unknown device kind"):
        device_from_dict({"kind": "cloud"})


def test_device_option_parsing():
    assert isinstance(parse_device("local"), LocalDevice)
    pi = parse_device("agent://192.168.1.20:8765", token="t")
    assert (pi.host, pi.port, pi.name) == ("192.168.1.20", 8765, "agent://192.168.1.20:8765")
    for text, message in (("agent://nohost", "is not agent://HOST:PORT"), ("gpu", "unknown device")):
        with pytest.raises(WorkbenchError, match=message):
            parse_device(text, token="t")
    with pytest.raises(WorkbenchError, match="no token"):
        parse_device("agent://h:1")


def test_an_agent_that_is_not_there_is_a_clear_error(demo_onnx):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WorkbenchError, match="refused the connection") as err:
        AgentDevice("127.0.0.1", port, "t").benchmark(demo_onnx)
    assert "start the agent" in err.value.one_line().lower()
