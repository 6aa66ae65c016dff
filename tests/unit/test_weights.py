"""Weight values read back from every format agree with the tensors the files were made from."""

import dataclasses
import shutil
import textwrap
import threading
import warnings

import numpy as np
import pytest
import torch

from workbench.core import weights as weights_mod
from workbench.core.errors import TrustRequired, WorkbenchError
from workbench.core.readers import OpenRequest, open_model
from workbench.core.shapes import ShapeRequest
from workbench.core.weights import WeightStore, weight_stats

SHAPE = "1x1x28x28"


def _open(path, shapes=(SHAPE,), **kw):
    return open_model(OpenRequest(path=path, shapes=ShapeRequest.parse(list(shapes)), **kw))


def _reference(module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _assert_matches(stats, ref: np.ndarray):
    """The store's figures are numpy's own on the original tensor."""
    assert stats.shape == ref.shape and stats.count == ref.size
    assert stats.mean == pytest.approx(float(np.mean(ref)), abs=1e-6)
    assert stats.std == pytest.approx(float(np.std(ref)), abs=1e-6)
    assert stats.min == pytest.approx(float(np.min(ref)), abs=1e-6)
    assert stats.max == pytest.approx(float(np.max(ref)), abs=1e-6)
    assert stats.abs_mean == pytest.approx(float(np.mean(np.abs(ref))), abs=1e-6)
    assert stats.hist_counts.dtype == np.int64 and stats.hist_edges.dtype == np.float64
    assert len(stats.hist_counts) == 64 and len(stats.hist_edges) == 65
    assert int(stats.hist_counts.sum()) == ref.size
    assert stats.hist_edges[0] == pytest.approx(stats.min) and stats.hist_edges[-1] == pytest.approx(stats.max)


def _first(graph, op_type):
    return next(n for n in graph.nodes if n.op_type == op_type and n.weights)


@pytest.fixture(scope="module")
def graphs(small_cnn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    pt2 = folder / "m.pt2"
    torch.export.save(torch.export.export(small_cnn.module, (torch.randn(1, 1, 28, 28),)), pt2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.script(small_cnn.module))
    frozen_path = folder / "frozen.pt"
    torch.jit.save(frozen, frozen_path)
    return {
        "onnx": _open(small_cnn.onnx, shapes=()),
        "torchscript": _open(small_cnn.torchscript),
        "state_dict": _open(small_cnn.state_dict, shapes=(), architecture="small_cnn"),
        "export": _open(pt2, shapes=()),
        "frozen": _open(frozen_path),
    }


@pytest.mark.parametrize("kind", ["onnx", "torchscript", "state_dict", "export"])
def test_every_weight_equals_the_source_tensor(graphs, small_cnn, kind):
    graph = graphs[kind]
    ref = _reference(small_cnn.module)
    store = WeightStore(graph)
    conv = _first(graph, "Conv")
    assert conv.weights[0] == "conv1.weight"
    _assert_matches(store.stats(conv)[0], ref["conv1.weight"])
    # Every weight any layer lists resolves, and holds exactly the source values. ONNX folds BatchNorm into
    # convolutions under new names: only names that exist in both are compared (small_cnn has no BatchNorm).
    listed = {w for n in graph.nodes for w in n.weights}
    for node in graph.nodes:
        for name, array in store.arrays(node).items():
            if name in ref:
                np.testing.assert_array_equal(array, ref[name])
    found = {w for n in graph.nodes for w in store.arrays(n)}
    assert found == listed and listed & set(ref) == listed
    assert [s.name for s in store.stats(conv)] == conv.weights


def test_frozen_torchscript_constants_are_recovered_in_order(graphs, small_cnn):
    graph = graphs["frozen"]
    ref = _reference(small_cnn.module)
    store = WeightStore(graph)
    order = [w for n in graph.nodes for w in n.weights]
    assert order and all(w.startswith("constant_") for w in order)
    arrays = {w: a for n in graph.nodes for w, a in store.arrays(n).items()}
    assert list(arrays) == order and not store.notes
    # Freezing inlines the parameters in forward order (the Linear weights as they are, transposed by an op).
    expected = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
                "fc2.weight", "fc2.bias"]
    for const, name in zip(order, expected):
        np.testing.assert_array_equal(arrays[const], ref[name])
    _assert_matches(store.stats(_first(graph, "Conv"))[0], ref["conv1.weight"])


def test_onnx_batchnorm_folding_compares_the_weights_both_keep(tmp_path):
    class ConvBN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.bn(self.conv(x)).mean((2, 3)))

    from model_files import export_onnx, randomize

    module = randomize(ConvBN())
    graph = _open(export_onnx(module, (1, 3, 8, 8), tmp_path / "bn.onnx"), shapes=())
    ref = _reference(module)
    store = WeightStore(graph)
    conv = _first(graph, "Conv")
    folded = store.arrays(conv)
    assert len(folded) == 2 and not set(folded) & set(ref)  # new names: the folded weight and bias
    w = ref["conv.weight"] * (ref["bn.weight"] / np.sqrt(ref["bn.running_var"] + 1e-5))[:, None, None, None]
    np.testing.assert_allclose(next(iter(folded.values())), w, rtol=1e-5, atol=1e-6)
    gemm = _first(graph, "Gemm")
    assert store.arrays(gemm).keys() == {"fc.weight", "fc.bias"}
    _assert_matches(store.stats(gemm)[0], ref["fc.weight"])


def test_zeros_fraction_is_exact_after_magnitude_pruning(small_cnn, tmp_path):
    state = {k: v.clone() for k, v in small_cnn.module.state_dict().items()}
    w = state["conv2.weight"]
    cut = w.abs().flatten().kthvalue(w.numel() * 3 // 8).values
    w[w.abs() <= cut] = 0.0
    zeros = int((w == 0).sum())
    assert zeros == w.numel() * 3 // 8
    path = tmp_path / "pruned.pt"
    torch.save(state, path)
    graph = _open(path, shapes=(), architecture="small_cnn")
    conv2 = [n for n in graph.nodes if n.op_type == "Conv"][1]
    s = WeightStore(graph).stats(conv2)[0]
    assert s.name == "conv2.weight" and s.zeros_fraction == zeros / w.numel()
    assert WeightStore(graph).stats(_first(graph, "Conv"))[0].zeros_fraction == 0.0


def test_weight_stats_on_known_values():
    a = np.array([[0.0, -0.0, 1.0, -3.0], [0.0, 2.0, 0.0, 4.0]], dtype=np.float32)
    s = weight_stats("w", a, bins=4)
    assert (s.shape, s.dtype, s.count) == ((2, 4), "float32", 8)
    assert s.zeros_fraction == 4 / 8
    assert (s.min, s.max, s.mean) == (-3.0, 4.0, 0.5)
    assert s.abs_mean == pytest.approx(10 / 8) and s.std == pytest.approx(float(np.std(a)))
    assert s.hist_counts.tolist() == [1, 4, 2, 1] and s.hist_edges.tolist() == [-3.0, -1.25, 0.5, 2.25, 4.0]

    q = weight_stats("q", np.array([-128, 0, 0, 127], dtype=np.int8), bins=8)
    assert (q.dtype, q.min, q.max, q.zeros_fraction, int(q.hist_counts.sum())) == ("int8", -128, 127, 0.5, 4)

    n = weight_stats("n", np.array([1.0, np.nan, np.inf, 3.0], dtype=np.float32), bins=2)
    assert (n.min, n.max, n.nonfinite, n.hist_counts.tolist()) == (1.0, 3.0, 2, [1, 1])
    assert np.isnan(n.mean)

    flat = weight_stats("c", np.full(5, 0.25, dtype=np.float16))
    assert (flat.min, flat.max, flat.std, int(flat.hist_counts.sum())) == (0.25, 0.25, 0.0, 5)


def test_bfloat16_state_dict_reads_as_float32_and_reports_its_dtype(small_cnn, tmp_path):
    path = tmp_path / "bf16.pt"
    state = {k: v.to(torch.bfloat16) for k, v in small_cnn.module.state_dict().items()}
    torch.save(state, path)
    graph = _open(path, shapes=(), architecture="small_cnn")
    store = WeightStore(graph)
    conv = _first(graph, "Conv")
    array = store.arrays(conv)["conv1.weight"]
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, state["conv1.weight"].float().numpy())
    assert store.stats(conv)[0].dtype == "bfloat16"


def test_layer_without_weights_has_no_stats(graphs):
    for graph in (graphs["onnx"], graphs["state_dict"]):
        relu = next(n for n in graph.nodes if n.op_type == "Relu")
        store = WeightStore(graph)
        assert relu.weights == [] and store.stats(relu) == [] and store.arrays(relu) == {}


def test_deleted_file_is_named_in_the_error(small_cnn, tmp_path):
    for src, kw in ((small_cnn.onnx, {}), (small_cnn.state_dict, {"architecture": "small_cnn"})):
        path = tmp_path / src.name
        shutil.copy(src, path)
        store = WeightStore(_open(path, shapes=(), **kw))
        path.unlink()
        with pytest.raises(WorkbenchError, match="gone since the model was opened") as err:
            store.load()
        assert err.value.path == str(path) and str(path) in str(err.value)
        assert not store.loaded


def test_trusted_pickle_and_factory_reload_through_the_reader(small_cnn, tmp_path):
    ref = _reference(small_cnn.module)
    pickled = tmp_path / "full.pt"
    torch.save(small_cnn.module, pickled)
    src = tmp_path / "model.py"
    src.write_text(textwrap.dedent("""
        from workbench.core import architectures
        INPUT_SHAPE = (1, 1, 28, 28)
        def build():
            return architectures.build("small_cnn")
    """))
    for graph in (_open(pickled, trust_code=True),
                  _open(src, shapes=(), factory="build", trust_code=True, weights=small_cnn.state_dict)):
        assert graph.format == "torch-module"
        conv = _first(graph, "Conv")
        store = WeightStore(graph)
        _assert_matches(store.stats(conv)[0], ref["conv1.weight"])
        np.testing.assert_array_equal(store.arrays(_first(graph, "Gemm"))["fc1.weight"], ref["fc1.weight"])
        untrusted = dataclasses.replace(graph, request=dataclasses.replace(graph.request, trust_code=False))
        with pytest.raises(TrustRequired, match="--trust-code"):
            WeightStore(untrusted).load()
    # The reader is left as it was: opening records a graph again.
    assert _open(pickled, trust_code=True).params == small_cnn.params


def test_load_runs_once_across_threads(graphs, monkeypatch):
    calls = []
    real = weights_mod._load

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(weights_mod, "_load", counting)
    store = WeightStore(graphs["onnx"])
    threads = [threading.Thread(target=store.load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and store.loaded
    conv = _first(graphs["onnx"], "Conv")
    assert store.arrays(conv)["conv1.weight"] is store.arrays(conv)["conv1.weight"]


def test_onnx_external_data_is_read_and_a_missing_data_file_is_named(small_cnn, tmp_path):
    import onnx

    path = tmp_path / "ext.onnx"
    onnx.save_model(onnx.load(str(small_cnn.onnx)), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    graph = _open(path, shapes=())
    conv = _first(graph, "Conv")
    np.testing.assert_array_equal(WeightStore(graph).arrays(conv)["conv1.weight"],
                                  _reference(small_cnn.module)["conv1.weight"])
    (tmp_path / "ext.data").unlink()
    with pytest.raises(WorkbenchError, match="ext.data"):
        WeightStore(graph).load()
