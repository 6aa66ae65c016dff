"""Real model files for tests: one architecture saved as ONNX, TorchScript and a state_dict."""

from __future__ import annotations

import warnings
from pathlib import Path


def randomize(module, seed: int = 0):
    """Give every parameter and buffer distinct values, as a trained model has.

    Fresh models have identical LayerNorm/BatchNorm weights (all ones), which the ONNX exporter de-duplicates;
    trained weights never collide, so counts are compared on randomised ones.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=gen) * 0.05)
    return module.eval()


def export_onnx(module, shape, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
    return path


def save_torchscript(module, shape, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, torch.randn(*shape)), str(path))
    return path


class ModelFiles:
    """One architecture saved in every format, plus the facts tests compare against."""

    def __init__(self, name: str, shape: tuple, folder: Path, **kwargs):
        import torch

        from workbench.core import architectures

        self.name, self.shape, self.kwargs = name, shape, kwargs
        self.module = randomize(architectures.build(name, **kwargs))
        self.params = sum(p.numel() for p in self.module.parameters())
        # BatchNorm folding turns each BN's weight+bias (2C) into a conv bias (C) when the conv had none.
        self.bn_fold_delta = sum(m.num_features for m in self.module.modules()
                                 if isinstance(m, torch.nn.BatchNorm2d))
        folder.mkdir(parents=True, exist_ok=True)
        self.onnx = export_onnx(self.module, shape, folder / f"{name}.onnx")
        self.torchscript = save_torchscript(self.module, shape, folder / f"{name}.pt")
        self.state_dict = folder / f"{name}_state.pt"
        torch.save(self.module.state_dict(), self.state_dict)
