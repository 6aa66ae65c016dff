"""Saving PyTorch results: a failed save can be cleaned up completely."""

import pytest
import torch

from workbench.core import architectures
from workbench.core.artifact import save_torch, torch_output_files
from workbench.core.shapes import TensorSpec


def test_torch_output_files_names_everything_an_interrupted_save_leaves(tmp_path, monkeypatch):
    module = architectures.build("small_cnn").eval()
    path = tmp_path / "result.pt2"

    def disk_full(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # fails after the program's temporary file is written
    with pytest.raises(OSError):
        save_torch(module, [torch.randn(1, 1, 28, 28)], path, [TensorSpec("input", [1, 1, 28, 28])], {})
    left = set(tmp_path.iterdir())
    assert left, "the interrupted save should have left its partial program"
    assert left <= set(torch_output_files(path))


def test_saved_program_keeps_a_free_batch_and_its_own_input_names(tmp_path):
    module = architectures.build("small_cnn").eval()
    result = save_torch(module, [torch.randn(1, 1, 28, 28)], tmp_path / "r.pt2",
                        [TensorSpec("input", [1, 1, 28, 28])], {})
    assert [s.name for s in result.inputs] == ["x"]
    program = torch.export.load(str(result.path)).module()
    assert program(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert set(tmp_path.iterdir()) == {result.path, tmp_path / "r.module.pt"}
