"""Many rows through a model whose ONNX input fixes the batch size (models are often exported with batch 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.ort_rows import fixed_batch_of, run_rows


def _linear_onnx(path, batch: int | None):
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 3).eval()
    dynamic = {"x": {0: "n"}} if batch is None else None
    torch.onnx.export(layer, (torch.randn(batch or 2, 6),), str(path), input_names=["x"], dynamic_axes=dynamic,
                      dynamo=False)
    return layer


@pytest.mark.parametrize("batch", [1, 4, None])
def test_every_row_gets_its_own_output_whatever_batch_the_input_fixes(tmp_path, batch):
    import onnxruntime as ort

    layer = _linear_onnx(tmp_path / "m.onnx", batch)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert fixed_batch_of(session) == batch
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float64)  # 7: not a multiple of 4
    out = run_rows(session, x, batch=3)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x.astype(np.float32))).numpy()
    assert out.shape == (7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_accuracy_of_a_batch_one_model_is_measured(small_cnn):
    """The evaluation runs 256 images at a time; a batch-1 ONNX file gets them one by one, with the result of the
    same network in torch."""
    import onnx

    from workbench.core.artifact import ModelArtifact
    from workbench.core.datasets import DatasetConfig, load_dataset
    from workbench.core.evaluate import accuracy
    from workbench.core.readers import open_model
    from workbench.core.readers.base import OpenRequest

    assert onnx.load(str(small_cnn.onnx)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    data = load_dataset(DatasetConfig(kind="demo")).val.take(300)
    measured = accuracy(ModelArtifact.from_graph(open_model(OpenRequest(path=small_cnn.onnx))), data)
    with torch.no_grad():
        predicted = small_cnn.module.eval()(torch.from_numpy(data.x)).argmax(1).numpy()
    assert measured.samples == 300 and measured.runtime == "onnxruntime"
    assert measured.top1 == pytest.approx(float((predicted == data.y).mean()), abs=1 / 300)

