"""The bundled demo: real digits, a checkpoint that loads safely and really reaches its recorded accuracy."""

import numpy as np
import torch

from workbench.core import architectures
from workbench.core.demo import demo_dir, demo_info, demo_model_path
from workbench.core.readers import open_model
from workbench.core.demo import demo_request


def test_demo_data_is_real_balanced_digits():
    data = np.load(demo_dir() / "digits.npz")
    assert data["x_train"].shape == (4000, 28, 28) and data["x_val"].shape == (1000, 28, 28)
    assert data["x_train"].dtype == np.uint8
    assert np.bincount(data["y_val"], minlength=10).tolist() == [100] * 10
    # Handwritten digits: mostly background, with strokes of full intensity.
    assert 0.1 < (data["x_val"] > 128).mean() < 0.3
    assert (demo_dir() / "ATTRIBUTION.md").read_text().count("MNIST") >= 1


def test_demo_checkpoint_reaches_its_recorded_accuracy():
    info = demo_info()
    model = architectures.build(info["architecture"])
    model.load_state_dict(torch.load(demo_model_path(), weights_only=True))
    model.eval()
    data = np.load(demo_dir() / "digits.npz")
    x = (torch.from_numpy(data["x_val"]).float().unsqueeze(1) / 255 - info["mean"]) / info["std"]
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    accuracy = float((pred == data["y_val"]).mean())
    assert accuracy == info["val_accuracy"]
    assert accuracy >= 0.97


def test_demo_opens_as_a_layer_graph():
    g = open_model(demo_request())
    assert g.format == "torch-state-dict"
    assert g.params == sum(p.numel() for p in architectures.build("demo_digits").parameters())
    assert g.inputs[0].shape == demo_info()["input_shape"]
    assert not g.uncounted_ops
