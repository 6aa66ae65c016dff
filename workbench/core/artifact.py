"""ModelArtifact: one concrete model on disk — what methods take, produce, evaluate and export."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WorkbenchError
from .fileio import file_sha256
from .shapes import ShapeRequest, TensorSpec

TORCH_FORMATS = {"torchscript", "torch-export", "torch-module", "torch-state-dict"}
_EXPORT_LOCK = threading.Lock()


@dataclass
class ModelArtifact:
    """A model file with its format and bound input shapes. Loads lazily; never modified in place.

    ``architecture`` names the built-in architecture of a ``torch-state-dict``; ``trust_code`` records that the
    user allowed a code-running format; ``meta`` carries what produced it (method, params) for lineage.
    """

    path: Path
    format: str
    inputs: list[TensorSpec]
    architecture: str | None = None
    trust_code: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    _sha256: str | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    @property
    def is_torch(self) -> bool:
        return self.format in TORCH_FORMATS

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in spec.shape) for spec in self.inputs]

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_graph(cls, graph) -> "ModelArtifact":
        """The artifact behind an opened LayerGraph (its request names the file and options)."""
        request = graph.request
        arch = request.architecture if graph.format == "torch-state-dict" else None
        return cls(path=Path(request.path), format=graph.format,
                   inputs=[TensorSpec(s.name, list(s.shape), s.dtype) for s in graph.inputs],
                   architecture=arch, trust_code=request.trust_code)

    def request(self):
        """An OpenRequest that reopens this artifact with the same shapes."""
        from .readers.base import OpenRequest

        shapes = ShapeRequest(by_name={s.name: tuple(int(d) for d in s.shape) for s in self.inputs})
        if self.format.startswith("torch"):  # torch input names depend on how the file was made: go by position
            shapes = ShapeRequest(by_position=[tuple(int(d) for d in s.shape) for s in self.inputs])
        return OpenRequest(path=self.path, shapes=shapes, trust_code=self.trust_code,
                           architecture=self.architecture)

    def graph(self):
        """Open the artifact as a LayerGraph."""
        from .readers import open_model

        return open_model(self.request())

    # ---- loading -----------------------------------------------------------------------------------------
    def load_torch(self, editable: bool = False):
        """The model as an ``nn.Module`` on the CPU in eval mode.

        ``editable`` asks for real ``nn.Module`` layers that can be restructured or trained (not a ScriptModule or
        an exported graph); raises WorkbenchError when the file cannot give that.
        """
        import torch

        module_file = self.meta.get("module_file")
        if module_file and (self.path.parent / module_file).is_file():
            if editable or self.format == "torch-export":
                return torch.load(str(self.path.parent / module_file), map_location="cpu", weights_only=False).eval()
        if editable and self.format in ("torchscript", "torch-export"):
            raise WorkbenchError(f"a {self.format} file holds a compiled graph, not editable PyTorch layers",
                                 "open the model as a state_dict with --arch, a pickled module or model.py:build",
                                 self.path)
        if self.format == "torchscript":
            return torch.jit.load(str(self.path), map_location="cpu").eval()
        if self.format == "torch-export":
            return torch.export.load(str(self.path)).module()
        if self.format == "torch-state-dict":
            from . import architectures
            from .readers.torch_readers import _find_state_dict, _infer_arch_kwargs, _strip_prefix, parse_arch

            name, kwargs = parse_arch(self.architecture or "")
            state = _strip_prefix(_find_state_dict(torch.load(str(self.path), map_location="cpu",
                                                              weights_only=True)) or {})
            module = architectures.build(name, **_infer_arch_kwargs(name, kwargs, state))
            module.load_state_dict(state)
            return module.eval()
        if self.format == "torch-module":
            from .readers.torch_readers import load_module

            return load_module(self.request())
        raise WorkbenchError(f"a {self.format} model cannot be loaded into PyTorch",
                             "use a method that works on ONNX models", self.path)

    def load_onnx(self):
        import onnx

        if self.format != "onnx":
            raise WorkbenchError(f"a {self.format} model is not ONNX", "export it to ONNX first", self.path)
        return onnx.load(str(self.path))


def torch_output_files(path: Path) -> list[Path]:
    """Every file :func:`save_torch` writes for ``path``, finished or partial: the program, the editable module, and
    their temporary names (so a caller can remove them all after a failure or Cancel)."""
    module_path = path.with_suffix(".module.pt")
    return [path, path.with_name(path.stem + ".part.pt2"), module_path, module_path.with_suffix(".part")]


def save_torch(module, example_inputs: list, path: Path, inputs: list[TensorSpec], meta: dict) -> ModelArtifact:
    """Persist a module with its architecture (a ``torch.export`` program), never only its weights.

    A pruned state_dict no longer fits the original class ("size mismatch" on reload); an exported program carries
    the new shapes. The batch dimension stays dynamic so evaluation can batch.
    """
    import torch

    module = module.eval()
    # torch.export fixes any dimension whose example size is 1: trace with a batch of two so the batch stays free.
    example_inputs = [x.expand(2, *x.shape[1:]).clone() if x.shape[0] == 1 else x for x in example_inputs]
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} for _ in example_inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(module, tuple(example_inputs), dynamic_shapes=dynamic)
        except Exception:  # noqa: BLE001 - some models specialise the batch size; a fixed one still reloads
            program = torch.export.export(module, tuple(example_inputs))
    path.parent.mkdir(parents=True, exist_ok=True)
    _, tmp, module_path, module_tmp = torch_output_files(path)  # tmp ends in .pt2, as torch.export.save wants
    torch.export.save(program, str(tmp))
    # The editable module beside it: later steps (more pruning, fine-tuning) need real nn.Modules, which an
    # exported program no longer has. It is our own output, so loading it back is trusted.
    torch.save(module, str(module_tmp))
    tmp.replace(path)
    module_tmp.replace(module_path)
    names = list(program.graph_signature.user_inputs)
    specs = [TensorSpec(names[i] if i < len(names) else s.name, list(s.shape), s.dtype) for i, s in enumerate(inputs)]
    return ModelArtifact(path=path, format="torch-export", inputs=specs,
                         meta={**meta, "module_file": module_path.name})


def export_onnx(artifact: ModelArtifact, path: Path, opset: int = 17) -> ModelArtifact:
    """An ONNX copy of a PyTorch artifact (batch axis dynamic); ONNX artifacts are returned unchanged."""
    import torch

    if artifact.format == "onnx":
        return artifact
    module = artifact.load_torch()
    examples = [torch.randn(*shape) for shape in artifact.input_shapes]
    write_onnx(module, examples, path, [s.name for s in artifact.inputs], ["output"], opset)
    return ModelArtifact(path=path, format="onnx", inputs=artifact.inputs, meta={**artifact.meta, "exported": True})


def write_onnx(module, examples: list, path: Path, input_names: list[str], output_names: list[str],
               opset: int = 17) -> None:
    """``torch.onnx.export`` (TorchScript exporter) with the batch axis dynamic, written atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.onnx")
    names = list(input_names) + list(output_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _EXPORT_LOCK:  # torch's ONNX exporter keeps global state: two threads exporting at once corrupt it
            torch.onnx.export(module.eval(), tuple(examples), str(tmp), dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes={n: {0: "batch"} for n in names})
    tmp.replace(path)


def onnx_output_files(path: Path) -> list[Path]:
    """Every file :func:`save_onnx_module` writes for ``path``, finished or partial."""
    module_path = path.with_suffix(".module.pt")
    return [path, path.with_suffix(".part.onnx"), module_path, module_path.with_suffix(".part")]


def save_onnx_module(module, example_inputs: list, path: Path, inputs: list[TensorSpec], output_names: list[str],
                     meta: dict) -> ModelArtifact:
    """An edited model that came from ONNX goes back to ONNX (same input and output names), with the editable
    module beside it so a later step (fine-tuning after pruning) starts from the same layers."""
    import torch

    _, _, module_path, module_tmp = onnx_output_files(path)
    write_onnx(module, example_inputs, path, [s.name for s in inputs], output_names)
    if getattr(module, "onnx_layers", None) is not None:
        from .onnx_torch import relabel_layers

        relabel_layers(module, path)  # the new file names its nodes after the submodules
    torch.save(module, str(module_tmp))
    module_tmp.replace(module_path)
    return ModelArtifact(path=path, format="onnx", inputs=inputs, meta={**meta, "module_file": module_path.name})
