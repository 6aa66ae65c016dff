"""Acceptance: published counts at 224×224 from ONNX and TorchScript files, and the two readers agree."""

import pytest

from model_files import ModelFiles
from workbench.core.readers import OpenRequest, open_model
from workbench.core.shapes import ShapeRequest

# name: (published params, published MACs)
PUBLISHED = {
    "mobilenet_v2": (3.50e6, 0.30e9),
    "resnet50": (25.56e6, 4.1e9),
    "vit_b_16": (86.6e6, 17.6e9),
}


@pytest.fixture(scope="module", params=sorted(PUBLISHED))
def reference(request, model_dir):
    return ModelFiles(request.param, (1, 3, 224, 224), model_dir / request.param)


@pytest.mark.slow
def test_published_counts_from_onnx_and_torchscript(reference):
    params, macs = PUBLISHED[reference.name]
    onnx_graph = open_model(OpenRequest(reference.onnx))
    ts_graph = open_model(OpenRequest(reference.torchscript, shapes=ShapeRequest.parse(["1x3x224x224"])))
    for g in (onnx_graph, ts_graph):
        assert abs(g.macs - macs) <= 0.03 * macs, (g.format, g.macs)
        assert not g.uncounted_ops, g.uncounted_ops
    assert abs(ts_graph.params - params) <= 0.005 * params
    assert ts_graph.params == reference.params
    # The readers agree: MACs within 1 %, params exactly up to BatchNorm folding.
    assert abs(onnx_graph.macs - ts_graph.macs) <= 0.01 * ts_graph.macs
    assert onnx_graph.params == reference.params - reference.bn_fold_delta
