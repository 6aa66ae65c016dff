"""Models measured in interleaved rounds on one device: every round runs every model, figures combine by round."""

from __future__ import annotations

from workbench.core.methods import run_to_end
from workbench.core.progress import Cancelled, CancelToken
from workbench.devices.base import BenchConfig, LatencyReport
from workbench.devices.compare import combine, measure_interleaved
from workbench.devices.local import LocalDevice


def _report(p50, p90, p99, runs=10):
    return LatencyReport("d", p50, p90, p99, p50 / 2, 0.1, runs, 2, 1, 5.0, 1.0, {})


def test_combine_takes_round_medians_the_worst_tail_and_all_runs():
    c = combine([_report(1.0, 2.0, 3.0), _report(5.0, 6.0, 9.0), _report(2.0, 3.0, 4.0)])
    assert (c.p50_ms, c.p90_ms, c.p99_ms, c.min_ms, c.runs) == (2.0, 3.0, 9.0, 0.5, 30)


def test_two_models_alternate_on_the_local_device(small_cnn):
    order = []
    config = BenchConfig(warmup=2, runs=9, profile_runs=3)
    gen = measure_interleaved(LocalDevice(), {"a": small_cnn.onnx, "b": small_cnn.onnx}, config, rounds=3)
    result = run_to_end(gen, lambda p: order.append(p.message.split(":")[1].strip()) if "round" in p.message else None)
    firsts = []
    for key in order:  # the first message of each benchmark names its model: a, b, a, b, a, b
        if not firsts or firsts[-1] != key:
            firsts.append(key)
    assert firsts == ["a", "b"] * 3
    assert set(result) == {"a", "b"} and all(r.runs == 9 for r in result.values())
    assert all(r.ops for r in result.values())  # the last round profiles
    token = CancelToken()
    token.cancel()
    try:
        run_to_end(measure_interleaved(LocalDevice(), {"a": small_cnn.onnx}, config, token=token))
    except Cancelled:
        pass
    else:
        raise AssertionError("a cancelled comparison must stop")
