"""Profiled ONNX Runtime node times placed on the layers of the graph they were measured on."""

from __future__ import annotations

import pytest

from workbench.core import metrics
from workbench.core.op_latency import map_ops, register_latency_metric


@pytest.fixture(scope="module")
def onnx_graph(small_cnn):
    from workbench.core.readers import open_model
    from workbench.core.readers.base import OpenRequest

    return open_model(OpenRequest(path=small_cnn.onnx))


def test_exact_fused_and_scoped_names_land_on_layers_and_the_rest_is_reported(onnx_graph):
    graph = onnx_graph
    conv = next(n for n in graph.nodes if n.op_type == "Conv")
    ops = [{"name": conv.name, "total_ms": 2.0},
           {"name": conv.name + "_output_0_nchwc", "total_ms": 1.0},  # ORT's fused / re-laid-out variant of it
           {"name": "ReorderOutput_token_7", "total_ms": 0.5}]  # a node ORT made up: not any layer
    times = map_ops(graph, ops, "test-cpu")
    assert times.per_node == {graph.nodes.index(conv): 3.0}
    assert times.unmatched_ms == 0.5 and times.total_ms == 3.5
    assert times.matched_share == pytest.approx(3.0 / 3.5)
    source = register_latency_metric(graph, times)
    assert metrics.get("latency") is source and source.provenance == "measured" and "test-cpu" in source.label
    assert source.value(graph, conv) == 3.0
    other = next(n for n in graph.nodes if n is not conv)
    assert source.value(graph, other) is None


def test_a_fused_kernel_named_after_its_activation_goes_to_the_convolution(onnx_graph):
    graph = onnx_graph
    edges = {(e.src, e.dst) for e in graph.edges}
    conv, relu = next((a, b) for a, b in edges if graph.nodes[a].op_type == "Conv"
                      and graph.nodes[b].op_type == "Relu")
    # what ONNX Runtime's NCHWc pass reports for Conv+Relu: the Relu's output name, op type Conv
    times = map_ops(graph, [{"name": graph.nodes[relu].name + "_output_0_nchwc", "op_type": "Conv",
                             "total_ms": 1.5},
                            {"name": "fused " + graph.nodes[relu].name, "op_type": "Relu", "total_ms": 0.1}])
    assert times.per_node == {conv: 1.5, relu: 0.1}


def test_real_profile_of_the_local_device_covers_most_of_the_time(onnx_graph, small_cnn):
    from workbench.devices.base import BenchConfig
    from workbench.devices.local import LocalDevice

    report = LocalDevice().benchmark(small_cnn.onnx, BenchConfig(warmup=3, runs=10, profile_runs=5))
    times = map_ops(onnx_graph, report.ops, report.device, report.profile_runs)
    assert report.ops and times.total_ms > 0 and report.profile_runs == 5
    assert times.total_ms == pytest.approx(sum(op.total_ms for op in report.ops) / 5)  # per inference
    assert times.matched_share > 0.5, [op.name for op in report.ops]  # conv/gemm time found its layers
    convs = [i for i, n in enumerate(onnx_graph.nodes) if n.op_type == "Conv"]
    assert all(i in times.per_node for i in convs)  # every convolution got its kernel's time
