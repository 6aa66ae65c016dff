"""Weight values of an opened model: per-layer statistics and histograms for the details panel.

Inspection never keeps weight values (ONNX data is dropped, PyTorch runs on the meta device), so
:class:`WeightStore` reads them again from the file the graph was opened from, once, when first asked
(the GUI calls :meth:`WeightStore.load` from a worker thread), and keeps only the tensors some layer reads.

What each format gives (names are those in ``Node.weights``):

* ``onnx``: initializers and ``Constant``-node ``value`` tensors, external data included.
* ``torchscript``: named parameters and buffers. Frozen modules inline their weights as constants
  (``constant_N`` in the graph); they are recovered by recording one more forward pass on the CPU with the input
  shapes the graph was opened with, and used only when that pass reads exactly the weights the graph lists, layer
  by layer. Otherwise (or if the pass fails) the constants are skipped.
* ``torch-export``: named parameters and buffers of ``program.module()``; lifted tensor constants
  (``constant_N``) are skipped.
* ``torch-state-dict``: the state_dict itself, with the reader's wrapper-prefix stripping.
* ``torch-module`` (pickled module or Python factory): re-opened through the reader, only when the user trusted
  the file when opening it. A factory without ``--weights`` builds freshly initialised weights each time it runs:
  the values shown are those of this store's one build.

bfloat16 and quantized tensors become float32 arrays; :meth:`WeightStore.stats` still reports their source dtype.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptModel, TrustRequired, WorkbenchError
from .graph import LayerGraph, Node

_TRUST_HINT = "open it again with --trust-code, only if you trust where it came from (loading it runs its code)"


@dataclass
class WeightStats:
    """Summary of one weight tensor. Statistics are computed in float32 over all elements.

    ``min``/``max`` and the histogram cover the finite elements only (``nonfinite`` counts the others);
    ``mean``/``std``/``abs_mean`` are NaN or infinite when the tensor holds such values. An empty tensor has NaN
    statistics and an all-zero histogram over [0, 1].
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    mean: float
    std: float
    min: float
    max: float
    abs_mean: float
    zeros_fraction: float  # exact zeros (shows unstructured sparsity after magnitude pruning)
    hist_counts: np.ndarray  # int64, `bins` values
    hist_edges: np.ndarray  # float64, bins + 1 values
    nonfinite: int = 0  # NaN and ±inf elements, left out of min, max and the histogram


def weight_stats(name: str, array: np.ndarray, bins: int = 64) -> WeightStats:
    """Statistics and a ``bins``-bin histogram of ``array`` (any numeric dtype; float32 math)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    a = np.asarray(array)
    dtype = str(a.dtype)
    if a.dtype.kind not in "biuf":  # ml_dtypes (bfloat16, float8, int4…) and the like
        a = a.astype(np.float32)
    values = a.reshape(-1).astype(np.float32, copy=False)
    count = int(values.size)
    if count == 0:
        nan = float("nan")
        return WeightStats(name, tuple(a.shape), dtype, 0, nan, nan, nan, nan, nan, nan,
                           np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1, dtype=np.float64))
    zeros = count - int(np.count_nonzero(values))  # NaN is not zero; -0.0 is
    finite_mask = None if np.isfinite(values).all() else np.isfinite(values)
    finite = values if finite_mask is None else values[finite_mask]
    nonfinite = count - int(finite.size)
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    else:
        lo = hi = float("nan")
        counts, edges = np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    return WeightStats(
        name=name, shape=tuple(int(d) for d in a.shape), dtype=dtype, count=count,
        mean=float(values.mean()), std=float(values.std()), min=lo, max=hi,
        abs_mean=float(np.abs(values).mean()), zeros_fraction=zeros / count,
        hist_counts=counts.astype(np.int64, copy=False), hist_edges=edges.astype(np.float64, copy=False),
        nonfinite=nonfinite,
    )


class WeightStore:
    """Loads a model's weight values once, lazily, and answers per-layer queries."""

    def __init__(self, graph: LayerGraph):
        self.graph = graph
        self._lock = threading.Lock()
        self._arrays: dict[str, np.ndarray] | None = None
        self._source_dtypes: dict[str, str] = {}  # where the array's dtype is not the file's (bfloat16, qint8)
        self.notes: list[str] = []  # what could not be resolved, for the GUI to show

    @property
    def loaded(self) -> bool:
        return self._arrays is not None

    def load(self) -> None:
        """Read every weight some layer lists from the file (once; thread-safe; failures are not cached)."""
        if self._arrays is not None:
            return
        with self._lock:
            if self._arrays is not None:
                return
            wanted = {w for n in self.graph.nodes for w in n.weights}
            arrays = _load(self.graph, wanted, self._source_dtypes, self.notes) if wanted else {}
            self._arrays = {k: v for k, v in arrays.items() if k in wanted}

    def arrays(self, node: Node) -> dict[str, np.ndarray]:
        """The node's weights by name (loading first if needed); names that cannot be resolved are skipped."""
        self.load()
        assert self._arrays is not None
        return {w: self._arrays[w] for w in node.weights if w in self._arrays}

    def stats(self, node: Node, bins: int = 64) -> list[WeightStats]:
        out = []
        for name, array in self.arrays(node).items():
            s = weight_stats(name, array, bins)
            if name in self._source_dtypes:
                s = replace(s, dtype=self._source_dtypes[name])
            out.append(s)
        return out


# ---- loading ------------------------------------------------------------------------------------------------


def _load(graph: LayerGraph, wanted: set[str], dtypes: dict[str, str], notes: list[str]) -> dict[str, np.ndarray]:
    request = graph.request
    if request is None:
        raise WorkbenchError("the model does not record how it was opened, so its weights cannot be read",
                             "open the model from its file", graph.source or None)
    for path in (request.path, getattr(request, "weights", None)):
        if path is not None and not Path(path).is_file():
            raise WorkbenchError("the file is gone since the model was opened, so its weights cannot be read",
                                 "restore the file or open the model again", path)
    fmt = graph.format
    if fmt == "onnx":
        return _load_onnx(Path(request.path), wanted, dtypes)
    if fmt == "torchscript":
        return _load_torchscript(graph, wanted, dtypes, notes)
    if fmt == "torch-export":
        return _load_export(Path(request.path), wanted, dtypes, notes)
    if fmt == "torch-state-dict":
        return _load_state_dict(Path(request.path), wanted, dtypes)
    if fmt == "torch-module":
        if not request.trust_code:
            raise TrustRequired("loading the weights runs code from the file, and it was not opened as trusted",
                                _TRUST_HINT, request.path)
        return _named_tensors(_rebuild_module(request), wanted, dtypes)
    raise WorkbenchError(f"reading weights of '{fmt}' models is not supported", "", request.path)


def _load_onnx(path: Path, wanted: set[str], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    from .readers.onnx_reader import _load as load_onnx

    model = load_onnx(path)  # no external data yet; checks external files exist and stay in the model folder
    g = model.graph
    tensors = [t for t in g.initializer if t.name in wanted]
    for node in g.node:
        if node.op_type == "Constant" and node.output and node.output[0] in wanted:
            for attr in node.attribute:
                if attr.name == "value" and attr.type == attr.TENSOR:
                    attr.t.name = node.output[0]
                    tensors.append(attr.t)
    out: dict[str, np.ndarray] = {}
    for t in tensors:
        try:
            array = numpy_helper.to_array(t, base_dir=str(path.parent))
        except (ValueError, TypeError, OSError) as exc:
            raise CorruptModel(f"cannot read weight '{t.name}' ({_first_line(exc)})",
                               "export the model again", path) from None
        if array.dtype.kind not in "biuf":  # bfloat16, float8, int4… from ml_dtypes
            dtypes[t.name] = str(array.dtype)
            array = array.astype(np.float32)
        out[t.name] = array
        t.ClearField("raw_data")  # the proto's copy is no longer needed
    return out


def _load_torchscript(graph: LayerGraph, wanted: set[str], dtypes: dict[str, str],
                      notes: list[str]) -> dict[str, np.ndarray]:
    import torch

    path = Path(graph.request.path)
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as exc:
        raise CorruptModel(f"not a loadable TorchScript file ({_first_line(exc)})",
                           "the file may be truncated; save it again with torch.jit.save", path) from None
    out = _named_tensors(module, wanted, dtypes)
    if wanted - set(out):
        constants = _script_constants(module, graph)
        out.update(_to_numpy_dict({k: v for k, v in constants.items() if k in wanted}, dtypes))
    _note_missing(wanted, out, notes)
    return out


def _script_constants(module, graph: LayerGraph) -> dict[str, Any]:
    """Tensors of ``constant_N`` weights (inlined by freezing), by recording one more forward pass on the CPU.

    The recorder names constants in the order ops read them, so a pass over the same inputs gives the same names;
    the result is used only if every recorded layer reads the same weight names as the graph's layer.
    """
    import torch

    from .readers.torch_trace import GraphRecorder, example_inputs

    class ConstantCollector(GraphRecorder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.constant_tensors: dict[str, torch.Tensor] = {}

        def _constant(self, t):
            name = super()._constant(t)
            if name is not None:
                self.constant_tensors[name] = t
            return name

    try:
        inputs = example_inputs([tuple(int(d) for d in spec.shape) for spec in graph.inputs])  # as the reader
        params = dict(module.named_parameters())
        recorder = ConstantCollector({**params, **dict(module.named_buffers())}, set(params))
        for spec, t in zip(graph.inputs, inputs):
            recorder.register_input(t, spec.name)
        with torch.no_grad(), torch.jit.optimized_execution(False), recorder:
            module(*inputs)
    except Exception:  # noqa: BLE001 - best effort: the constants are then skipped
        return {}
    if [n.weights for n in recorder.nodes] != [n.weights for n in graph.nodes]:
        return {}
    return recorder.constant_tensors


def _load_export(path: Path, wanted: set[str], dtypes: dict[str, str], notes: list[str]) -> dict[str, np.ndarray]:
    import torch

    try:
        gm = torch.export.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - any failure here means the archive is unusable
        raise CorruptModel(f"not a loadable torch.export program ({_first_line(exc)})",
                           "the file may be truncated; save it again with torch.export.save", path) from None
    out = _named_tensors(gm, wanted, dtypes)
    _note_missing(wanted, out, notes)
    return out


def _load_state_dict(path: Path, wanted: set[str], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    import torch

    from .readers.torch_readers import _find_state_dict, _strip_prefix

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - it opened before: the file changed since
        raise CorruptModel(f"cannot read the weights any more ({_first_line(exc)})",
                           "the file may have changed since it was opened; open it again", path) from None
    state = _find_state_dict(obj)
    if state is None:
        raise WorkbenchError("the file holds no state_dict any more", "open the model again", path)
    state = _strip_prefix(state)
    return _to_numpy_dict({k: v for k, v in state.items() if k in wanted}, dtypes)


def _rebuild_module(request):
    """The ``nn.Module`` a trusted pickle or factory yields, built by the reader's own code."""
    from .readers.torch_readers import load_module

    return load_module(request)


# ---- tensors → numpy ----------------------------------------------------------------------------------------


def _named_tensors(module, wanted: set[str], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    tensors = {}
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if name in wanted and name not in tensors:
            tensors[name] = t
    return _to_numpy_dict(tensors, dtypes)


def _to_numpy_dict(tensors: dict, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for name, t in tensors.items():
        array = _to_numpy(t)
        if array is None:
            continue
        source = str(t.dtype).replace("torch.", "")
        if source != str(array.dtype):
            dtypes[name] = source
        out[name] = array
    return out


def _to_numpy(t) -> np.ndarray | None:
    """``tensor.detach().cpu().numpy()``; bfloat16 and other types numpy lacks become float32, quantized tensors
    are dequantized; tensors without values (meta, sparse that will not densify) give None."""
    import torch

    if not isinstance(t, torch.Tensor) or t.is_meta:
        return None
    try:
        t = t.detach().cpu()
        if t.is_quantized:
            t = t.dequantize()
        if t.layout != torch.strided:
            t = t.to_dense()
        try:
            return t.numpy()
        except TypeError:  # bfloat16, float8…: no numpy dtype
            return t.to(torch.float32).numpy()
    except (RuntimeError, TypeError):
        return None


def _note_missing(wanted: set[str], found: dict, notes: list[str]) -> None:
    missing = sorted(wanted - set(found))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        notes.append(f"{len(missing)} weight(s) inlined in the program could not be read: {shown}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]
