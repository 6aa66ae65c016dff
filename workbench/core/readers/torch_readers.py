"""PyTorch files → LayerGraph, by recording one forward pass (see :mod:`.torch_trace`).

Safe formats (TorchScript, ``torch.export`` programs, state_dicts loaded with ``weights_only=True``) open directly.
A full pickled ``nn.Module`` and a Python factory file run the file's code, so they need ``trust_code``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from ..errors import CorruptModel, InputShapeError, TrustRequired, WorkbenchError
from ..graph import LayerGraph
from ..shapes import TensorSpec, bind_shapes
from .base import OpenRequest

_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar"}
_TRUST_HINT = "pass --trust-code only if you trust where the file came from (loading it runs its code)"


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_torchscript(names: list[str]) -> bool:
    return any("/code/" in n for n in names) and any(n.endswith("data.pkl") or n.endswith("constants.pkl")
                                                     for n in names)


def _is_export(names: list[str]) -> bool:
    return any(n.endswith("/archive_format") for n in names) and any("/models/" in n for n in names)


class TorchScriptReader:
    format = "torchscript"
    label = "TorchScript (torch.jit.save)"

    def match(self, path: Path, head: bytes) -> bool:
        return head[:2] == b"PK" and _is_torchscript(_zip_names(path))

    def open(self, request: OpenRequest) -> LayerGraph:
        import torch

        def load(device: str):
            try:
                module = torch.jit.load(str(request.path), map_location=device)
            except (RuntimeError, ValueError) as exc:
                if device == "meta":  # frozen modules compare constants while loading, impossible on meta
                    raise NotImplementedError(str(exc)) from None
                raise CorruptModel(f"not a loadable TorchScript file ({_first_line(exc)})",
                                   "the file may be truncated; save it again with torch.jit.save",
                                   request.path) from None
            return module.eval()

        def record(module, device: str) -> LayerGraph:
            from . import torchscript_walk

            try:
                return run_module(module, request, _script_inputs(module), self.format, scopes="jit",
                                  device=device)
            except torchscript_walk.Unsupported:
                # Control flow: run the module itself; scopes then come from weight names.
                return run_module(module, request, _script_inputs(module), self.format, scopes="weights",
                                  device=device)

        return _meta_then_cpu(load, record)


class TorchExportReader:
    format = "torch-export"
    label = "torch.export program (.pt2)"

    def match(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() == ".pt2" or (head[:2] == b"PK" and _is_export(_zip_names(path)))

    def open(self, request: OpenRequest) -> LayerGraph:
        import torch

        try:
            program = torch.export.load(str(request.path))
        except Exception as exc:  # noqa: BLE001 - any failure here means the archive is unusable
            raise CorruptModel(f"not a loadable torch.export program ({_first_line(exc)})",
                               "the file may be truncated; save it again with torch.export.save",
                               request.path) from None
        return _meta_then_cpu(lambda dev: program.module().to(dev),
                              lambda gm, dev: run_exported(program, gm, request, self.format, device=dev))


class TorchPickleReader:
    """``torch.save`` files: a state_dict (with a built-in architecture) or, when trusted, a whole ``nn.Module``."""

    format = "torch-module"
    label = "PyTorch checkpoint (torch.save)"

    def match(self, path: Path, head: bytes) -> bool:
        if head[:2] == b"PK":
            names = _zip_names(path)
            return any(n.endswith("data.pkl") for n in names) and not _is_torchscript(names)
        return path.suffix.lower() in _PICKLE_SUFFIXES and head[:1] == b"\x80"

    def open(self, request: OpenRequest) -> LayerGraph:
        import pickle

        import torch

        try:
            obj = torch.load(str(request.path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            obj = None  # holds objects beyond tensors: a pickled module, which runs code to load
        except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise CorruptModel(f"not a loadable PyTorch file ({_first_line(exc)})",
                               "the file may be truncated; save it again", request.path) from None
        if obj is not None:
            state = _find_state_dict(obj)
            if state is None:
                raise WorkbenchError("the file holds no model weights (no state_dict of tensors)",
                                     "save the model with torch.save(model.state_dict(), ...) or torch.jit.save",
                                     request.path)
            return open_state_dict(state, request)
        module = self.load_module(request)
        return _eager(module, request, _declared_inputs(module), self.format)

    def load_module(self, request: OpenRequest):
        """Unpickle the whole ``nn.Module`` (runs code from the file: needs ``trust_code``)."""
        import torch

        if not request.trust_code:
            raise TrustRequired("is a pickled PyTorch module, and loading it runs code from the file",
                                _TRUST_HINT, request.path)
        try:
            obj = torch.load(str(request.path), map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - arbitrary code ran; report whatever it raised
            raise CorruptModel(f"could not unpickle the module ({_first_line(exc)})",
                               "the classes it needs may not be importable here; export it with torch.jit.save",
                               request.path) from None
        module = obj if isinstance(obj, torch.nn.Module) else (obj.get("model") if isinstance(obj, dict) else None)
        if not isinstance(module, torch.nn.Module):
            raise WorkbenchError(f"the pickle holds a {type(obj).__name__}, not an nn.Module",
                                 "save the module itself, or its state_dict with --arch NAME", request.path)
        return module.eval()


class PythonFactoryReader:
    """``model.py:build``: import the file and call the factory (runs code, so trust is required)."""

    format = "torch-module"
    label = "Python factory (model.py:build)"

    def match(self, path: Path, head: bytes) -> bool:
        return path.suffix.lower() == ".py"

    def open(self, request: OpenRequest) -> LayerGraph:
        module, declared = self.build(request)
        return _eager(module, request, _declared_inputs(module) or declared, self.format)

    def build(self, request: OpenRequest):
        """Import the file and call its factory; returns (module in eval mode, inputs the file declares)."""
        import torch

        if not request.trust_code:
            raise TrustRequired("is Python code, and building the model runs it", _TRUST_HINT, request.path)
        factory = request.factory or "build"
        name = f"_workbench_user_model_{abs(hash(str(request.path)))}"
        spec = importlib.util.spec_from_file_location(name, request.path)
        if spec is None or spec.loader is None:
            raise WorkbenchError("cannot import the file as Python", "check it is a .py file", request.path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
            fn = getattr(mod, factory, None)
            if fn is None:
                raise WorkbenchError(f"defines no function '{factory}'",
                                     f"name the factory as {request.path}:FUNCTION", request.path)
            module = fn()
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise WorkbenchError(f"running {factory}() failed ({type(exc).__name__}: {_first_line(exc)})",
                                 "fix the model file and try again", request.path) from None
        finally:
            sys.modules.pop(name, None)
        if not isinstance(module, torch.nn.Module):
            raise WorkbenchError(f"{factory}() returned a {type(module).__name__}, not an nn.Module",
                                 "return the model from the factory", request.path)
        if request.weights is not None:
            _load_weights(module, request.weights)
        return module.eval(), _declared_inputs(mod)


def load_module(request: OpenRequest):
    """The ``nn.Module`` of a pickled module or a Python factory (with ``--weights``), built as the reader builds it.

    Both run code from the file, so ``request.trust_code`` must be set.
    """
    if request.path.suffix.lower() == ".py":
        return PythonFactoryReader().build(request)[0]
    return TorchPickleReader().load_module(request)


# ---- helpers ------------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _find_state_dict(obj: Any) -> dict | None:
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "weights", "net"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                found = _find_state_dict(inner)
                if found is not None:
                    return found
    return None


def _strip_prefix(state: dict) -> dict:
    """Remove wrapper prefixes (``module.`` from DataParallel, ``_orig_mod.`` from torch.compile)."""
    for prefix in ("module.", "_orig_mod.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def parse_arch(text: str) -> tuple[str, dict[str, Any]]:
    """``resnet50`` or ``mobilenet_v2:width_mult=0.5,num_classes=10`` → (name, kwargs)."""
    name, _, rest = text.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, _, value = item.partition("=")
        if not value:
            raise WorkbenchError(f"architecture option '{item}' is not KEY=VALUE",
                                 "write --arch NAME:key=value,key=value")
        try:
            kwargs[key.strip()] = int(value)
        except ValueError:
            try:
                kwargs[key.strip()] = float(value)
            except ValueError:
                kwargs[key.strip()] = value.strip()
    return name.strip(), kwargs


def open_state_dict(state: dict, request: OpenRequest) -> LayerGraph:
    """Build the named built-in architecture, load ``state`` into it strictly, and record it."""
    from .. import architectures

    if not request.architecture:
        raise WorkbenchError("holds only weights (a state_dict), not the architecture",
                             f"pass --arch NAME with one of: {', '.join(architectures.names())}", request.path)
    name, kwargs = parse_arch(request.architecture)
    if name not in architectures.names():
        raise WorkbenchError(f"unknown architecture '{name}'",
                             f"choose one of: {', '.join(architectures.names())}", request.path)
    state = _strip_prefix(state)
    kwargs = _infer_arch_kwargs(name, kwargs, state)
    try:
        module = architectures.build(name, **kwargs)
    except TypeError as exc:
        raise WorkbenchError(f"bad options for architecture '{name}' ({_first_line(exc)})",
                             "check the --arch options", request.path) from None
    _load_state(module, state, request.path, f"architecture '{name}'")
    module.eval()
    spec = architectures.ARCHITECTURES[name]
    shape = list(kwargs.get("input_shape") or spec.default_input_shape)
    in_ch = kwargs.get("in_channels")
    if in_ch and len(shape) == 4:
        shape[1] = in_ch
    graph = _eager(module, request, [TensorSpec("input", shape)], "torch-state-dict")
    graph.notes.append(f"architecture: {name}" + (f" {kwargs}" if kwargs else ""))
    return graph


def _infer_arch_kwargs(name: str, kwargs: dict, state: dict) -> dict:
    """Fill ``num_classes`` and ``in_channels`` from the weights when the user did not give them."""
    kwargs = dict(kwargs)
    tensors = [v for v in state.values() if hasattr(v, "dim")]
    matrices = [v for v in tensors if v.dim() == 2]
    if "num_classes" not in kwargs and matrices and name != "demo_digits":
        kwargs["num_classes"] = int(matrices[-1].shape[0])
    convs = [v for v in tensors if v.dim() == 4]
    if "in_channels" not in kwargs and convs and name != "demo_digits":
        kwargs["in_channels"] = int(convs[0].shape[1])
    return kwargs


def _load_state(module, state: dict, path: Path, what: str) -> None:
    try:
        result = module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = str(exc)
        detail = re.findall(r"size mismatch for ([\w.]+)", text)[:3]
        missing = re.findall(r'Missing key\(s\) in state_dict: ("[^"]+")', text)
        unexpected = re.findall(r'Unexpected key\(s\) in state_dict: ("[^"]+")', text)
        parts = []
        if detail:
            parts.append("size mismatch for " + ", ".join(detail))
        if missing:
            parts.append("missing " + missing[0])
        if unexpected:
            parts.append("unexpected " + unexpected[0])
        raise WorkbenchError(f"the weights do not fit {what} ({'; '.join(parts) or _first_line(exc)})",
                             "pick the architecture (and options) the weights were trained with", path) from None
    return result


def _load_weights(module, weights: Path) -> None:
    import torch

    try:
        obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CorruptModel(f"cannot read the weights file ({_first_line(exc)})",
                           "pass a state_dict saved with torch.save", weights) from None
    state = _find_state_dict(obj)
    if state is None:
        raise WorkbenchError("the weights file holds no state_dict", "save model.state_dict()", weights)
    _load_state(module, _strip_prefix(state), weights, "the model built by the factory")


def _declared_inputs(obj) -> list[TensorSpec]:
    """Input shapes a module or model file declares (``input_shape`` / ``INPUT_SHAPE``), if any."""
    for attr in ("input_shape", "INPUT_SHAPE", "example_input_shape"):
        shape = getattr(obj, attr, None)
        if isinstance(shape, (tuple, list)) and shape and all(isinstance(d, int) for d in shape):
            return [TensorSpec("input", list(shape))]
    return []


def _script_inputs(module) -> list[TensorSpec]:
    """TorchScript records input names but no shapes; shapes come from the user."""
    specs = []
    for value in list(module.graph.inputs())[1:]:
        name = value.debugName().split(".")[0]
        specs.append(TensorSpec(name, []))
    return specs


def _bind(request: OpenRequest, specs: list[TensorSpec], fmt: str) -> list[tuple[int, ...]]:
    source = str(request.path)
    if not specs:
        specs.append(TensorSpec("input", []))
    unknown = [s for s in specs if not s.shape]
    if unknown and not request.shapes:
        raise InputShapeError(f"a {fmt} file does not record its input shape",
                              "pass --input-shape, e.g. --input-shape 1x3x224x224", source, inputs=specs)
    # Specs without a recorded rank accept any rank the user gives.
    bound = []
    for i, spec in enumerate(specs):
        given = request.shapes.for_input(i, spec.name)
        if not spec.shape:
            if given is None:
                raise InputShapeError(f"no shape given for input '{spec.name}'",
                                      f"pass one --input-shape per input ({len(specs)} inputs)", source,
                                      inputs=specs)
            spec.shape = list(given)
            bound.append(tuple(given))
        else:
            bound.append(bind_shapes([spec], _single(request, i, spec.name), source)[0])
            spec.shape = list(bound[-1])
    return bound


def _single(request: OpenRequest, index: int, name: str):
    from ..shapes import ShapeRequest

    given = request.shapes.for_input(index, name)
    return ShapeRequest(by_name={name: given}) if given else ShapeRequest()


def _meta_then_cpu(load, run) -> LayerGraph:
    """Record on the meta device (shapes only: no arithmetic, no weight memory); models whose forward needs real
    values (data-dependent control flow) are loaded again and recorded on the CPU."""
    from .torch_trace import without_dynamo_import

    try:
        with without_dynamo_import():
            return run(load("meta"), "meta")
    except (InputShapeError, NotImplementedError, AttributeError, ImportError):
        return run(load("cpu"), "cpu")


def _eager(module, request: OpenRequest, specs: list[TensorSpec], fmt: str) -> LayerGraph:
    """Record an in-memory module: on meta when it can run there, else on the CPU with its real weights."""
    import copy

    try:
        meta = copy.deepcopy(module).to("meta")
    except Exception:  # noqa: BLE001 - modules holding non-tensor state may not copy; the CPU path still works
        meta = None
    if meta is not None:
        from .torch_trace import without_dynamo_import

        try:
            with without_dynamo_import():
                return run_module(meta, request, [TensorSpec(s.name, list(s.shape), s.dtype) for s in specs], fmt,
                                  scopes="hooks", device="meta")
        except (InputShapeError, NotImplementedError, AttributeError, ImportError):
            pass
    return run_module(module, request, specs, fmt, scopes="hooks", device="cpu")


def run_module(module, request: OpenRequest, specs: list[TensorSpec], fmt: str, scopes: str,
               device: str = "cpu") -> LayerGraph:
    """Run ``module`` once on example inputs under the recorder.

    ``scopes``: ``hooks`` (eager modules: forward hooks give module paths), ``jit`` (TorchScript walked graph by
    graph, see :mod:`.torchscript_walk`) or ``weights`` (module paths of the weights an op reads).
    """
    import torch

    from .torch_trace import GraphRecorder, example_inputs, finish_graph

    shapes = _bind(request, specs, fmt)
    inputs = example_inputs(shapes, device=device)
    params = dict(module.named_parameters())
    weights = {**params, **dict(module.named_buffers())}
    stack: list[str] = []
    handles = []
    if scopes == "hooks":
        def push(name):
            def hook(mod, args):
                stack.append(name)
            return hook

        def pop(mod, args, out):
            if stack:
                stack.pop()

        for name, sub in module.named_modules():
            if name:
                handles.append(sub.register_forward_pre_hook(push(name)))
                handles.append(sub.register_forward_hook(pop))
        scope_fn = lambda: stack[-1] if stack else ""  # noqa: E731
    elif scopes == "jit":
        scope_fn = lambda: stack[-1] if stack else ""  # noqa: E731
    else:
        scope_fn = lambda: None  # noqa: E731
    recorder = GraphRecorder(weights, set(params), scope_fn)
    for spec, t in zip(specs, inputs):
        recorder.register_input(t, spec.name)

    def forward():
        if scopes != "jit":
            return module(*inputs)
        from . import torchscript_walk

        def on_scope(path: str) -> None:
            stack[:] = [path]

        return torchscript_walk.run(module, inputs, on_scope)

    try:
        with torch.no_grad(), torch.jit.optimized_execution(False), recorder:
            out = forward()
    except RuntimeError as exc:
        raise InputShapeError(f"the model failed on input shape {_shapes_text(shapes)} ({_first_line(exc)})",
                              "pass the --input-shape the model expects", request.path) from None
    finally:
        for h in handles:
            h.remove()
    return finish_graph(recorder, fmt, str(request.path), specs, out)


def _shapes_text(shapes) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes)


def _module_path(stack: dict | None) -> str:
    """Module path of an exported node from its ``nn_module_stack`` (last entry, normalised)."""
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\._modules\['([^']+)'\]", r".\1", path)
    return path.strip(".")


def run_exported(program, gm, request: OpenRequest, fmt: str, device: str = "cpu") -> LayerGraph:
    """Run an ExportedProgram node by node, taking each node's scope from its ``nn_module_stack``."""
    import torch
    import torch.fx

    from .torch_trace import GraphRecorder, example_inputs, finish_graph

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs, dtypes = [], []
    for name in program.graph_signature.user_inputs:
        val = placeholders[name].meta.get("val")
        shape = [d if isinstance(d, int) else str(d) for d in getattr(val, "shape", [])]
        specs.append(TensorSpec(name, shape, str(getattr(val, "dtype", "float32")).replace("torch.", "")))
        dtypes.append(getattr(val, "dtype", torch.float32))
    shapes = bind_shapes(specs, request.shapes, str(request.path))
    for spec, s in zip(specs, shapes):
        spec.shape = list(s)
    inputs = example_inputs(shapes, dtypes, device)
    params = dict(gm.named_parameters())
    weights = {**params, **dict(gm.named_buffers())}
    current = {"scope": ""}
    recorder = GraphRecorder(weights, set(params), lambda: current["scope"])

    class ScopedInterpreter(torch.fx.Interpreter):
        def run_node(self, n):
            current["scope"] = _module_path(n.meta.get("nn_module_stack"))
            return super().run_node(n)

    for spec, t in zip(specs, inputs):
        recorder.register_input(t, spec.name)
    try:
        with torch.no_grad(), recorder:
            out = ScopedInterpreter(gm).run(*inputs)
    except RuntimeError as exc:
        raise InputShapeError(f"the program failed on input shape {_shapes_text(shapes)} ({_first_line(exc)})",
                              "pass the --input-shape the program was exported for", request.path) from None
    return finish_graph(recorder, fmt, str(request.path), specs, out)
