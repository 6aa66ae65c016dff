"""Model readers: one per format, each with ``match`` and ``open``, all producing a LayerGraph.

:func:`open_model` picks the reader and turns every failure into a one-line :class:`WorkbenchError`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CorruptModel, UnsupportedFormat, WorkbenchError
from ..graph import LayerGraph
from .base import OpenRequest, Reader


def readers() -> list[Reader]:
    """All readers, most specific first."""
    from .onnx_reader import OnnxReader
    from .torch_readers import PythonFactoryReader, TorchExportReader, TorchPickleReader, TorchScriptReader

    return [OnnxReader(), PythonFactoryReader(), TorchExportReader(), TorchScriptReader(), TorchPickleReader()]


SUPPORTED = (".onnx (ONNX), .pt/.pth with torch.jit.save (TorchScript), .pt2 (torch.export), "
             "a state_dict with --arch NAME, a pickled nn.Module or model.py:factory with --trust-code")


def split_factory(spec: str) -> tuple[Path, str | None]:
    """``path/model.py:build`` → (path, "build"); any other path → (path, None)."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if head.endswith(".py") and tail.isidentifier():
            return Path(head), tail
    return Path(spec), None


def open_model(request: OpenRequest) -> LayerGraph:
    """Open ``request.path`` with the first reader that matches it and return its LayerGraph."""
    path = request.path
    if not path.exists():
        raise WorkbenchError("no such file", "check the path", path)
    if path.is_dir():
        raise UnsupportedFormat("is a folder, not a model file", f"pick a model file; supported: {SUPPORTED}", path)
    if path.stat().st_size == 0:
        raise CorruptModel("the file is empty", "export the model again", path)
    with open(path, "rb") as fh:
        head = fh.read(64)
    for reader in readers():
        if reader.match(path, head):
            try:
                graph = reader.open(request)
                graph.request = request
                return graph
            except WorkbenchError:
                raise
            except MemoryError:
                raise WorkbenchError("ran out of memory while reading the model",
                                     "close other programs or try a smaller input shape", path) from None
    raise UnsupportedFormat("unknown model format", f"supported: {SUPPORTED}", path)
