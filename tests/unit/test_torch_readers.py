"""PyTorch readers: every format of the same model yields the same graph figures; code-running files need trust."""

import textwrap
import warnings

import pytest
import torch

from workbench.core.errors import InputShapeError, TrustRequired, WorkbenchError
from workbench.core.readers import OpenRequest, open_model, split_factory
from workbench.core.shapes import ShapeRequest

SHAPE = "1x1x28x28"


def _open(path, shapes=(SHAPE,), **kw):
    return open_model(OpenRequest(path=path, shapes=ShapeRequest.parse(list(shapes)), **kw))


@pytest.fixture(scope="module")
def formats(small_cnn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    m = small_cnn.module
    x = torch.randn(1, 1, 28, 28)
    pt2 = folder / "m.pt2"
    torch.export.save(torch.export.export(m, (x,)), pt2)
    pickled = folder / "full.pt"
    torch.save(m, pickled)
    return {"onnx": small_cnn.onnx, "torchscript": small_cnn.torchscript, "export": pt2, "pickle": pickled,
            "state_dict": small_cnn.state_dict}


def test_all_torch_formats_agree_with_each_other_and_with_onnx(formats, small_cnn):
    ts = _open(formats["torchscript"])
    ex = _open(formats["export"], shapes=())  # the program records its input shape
    pk = _open(formats["pickle"], trust_code=True)
    sd = _open(formats["state_dict"], shapes=(), architecture="small_cnn")
    onnx_graph = _open(formats["onnx"], shapes=())
    for g in (ts, ex, pk, sd):
        assert g.params == small_cnn.params
        assert g.macs == ts.macs
        assert [n.op_type for n in g.nodes if n.macs] == [n.op_type for n in ts.nodes if n.macs]
    assert abs(onnx_graph.macs - ts.macs) <= 0.01 * ts.macs
    assert onnx_graph.params == small_cnn.params - small_cnn.bn_fold_delta
    assert {g.format for g in (ts, ex, pk, sd)} == {"torchscript", "torch-export", "torch-module",
                                                    "torch-state-dict"}


def test_module_scopes_come_from_the_module_tree(formats, small_cnn):
    eager = _open(formats["pickle"], trust_code=True)
    exported = _open(formats["export"], shapes=())
    names = {name for name, mod in small_cnn.module.named_modules() if name}
    for g in (eager, exported):
        convs = [n for n in g.nodes if n.op_type in ("Conv", "Gemm")]
        assert convs and all(n.scope in names and n.scope_source == "module" for n in convs)
    ts = _open(formats["torchscript"])
    assert all(n.scope in names for n in ts.nodes if n.weights)


def test_torchscript_needs_an_input_shape_and_a_wrong_one_is_explained(formats):
    with pytest.raises(InputShapeError, match="--input-shape"):
        _open(formats["torchscript"], shapes=())
    with pytest.raises(InputShapeError, match="failed on input shape 1x3x28x28"):
        _open(formats["torchscript"], shapes=("1x3x28x28",))


def test_pickled_module_is_refused_without_trust(formats):
    with pytest.raises(TrustRequired, match="--trust-code"):
        _open(formats["pickle"])


def test_python_factory_needs_trust_and_loads_optional_weights(tmp_path, small_cnn):
    src = tmp_path / "model.py"
    src.write_text(textwrap.dedent("""
        from workbench.core import architectures
        INPUT_SHAPE = (1, 1, 28, 28)
        def build():
            return architectures.build("small_cnn")
        def broken():
            raise ValueError("no weights here")
    """))
    path, factory = split_factory(f"{src}:build")
    assert (path, factory) == (src, "build")
    with pytest.raises(TrustRequired):
        _open(path, shapes=(), factory=factory)
    g = _open(path, shapes=(), factory=factory, trust_code=True, weights=small_cnn.state_dict)
    assert g.params == small_cnn.params
    with pytest.raises(WorkbenchError, match="broken\\(\\) failed .*ValueError: no weights here"):
        _open(path, shapes=(), factory="broken", trust_code=True)


def test_state_dict_needs_a_fitting_architecture(formats):
    with pytest.raises(WorkbenchError, match="--arch NAME"):
        _open(formats["state_dict"], shapes=())
    with pytest.raises(WorkbenchError, match="unknown architecture 'resnet9000'"):
        _open(formats["state_dict"], shapes=(), architecture="resnet9000")
    with pytest.raises(WorkbenchError, match="do not fit architecture 'resnet18'"):
        _open(formats["state_dict"], shapes=(), architecture="resnet18")


def test_frozen_torchscript_counts_inlined_weights_as_constants(small_cnn, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.script(small_cnn.module))
    path = tmp_path / "frozen.pt"
    torch.jit.save(frozen, path)
    g = _open(path)
    # Freezing folds BatchNorm into the convolutions, like the ONNX exporter does.
    assert g.params == small_cnn.params - small_cnn.bn_fold_delta
    assert g.macs == _open(small_cnn.torchscript).macs


def test_recording_leaves_torch_as_it_found_it(small_cnn):
    """The meta pass keeps torch._dynamo from loading; afterwards the real one imports and export still works."""
    import subprocess
    import sys

    code = f"""
import sys, torch
from pathlib import Path
from workbench.core.readers import OpenRequest, open_model
from workbench.core.shapes import ShapeRequest
g = open_model(OpenRequest(Path({str(small_cnn.torchscript)!r}), shapes=ShapeRequest.parse(["1x1x28x28"])))
assert "torch._dynamo" not in sys.modules, "dynamo was imported"
import torch._dynamo
assert hasattr(torch._dynamo, "optimize"), "a stand-in was left behind"
from workbench.core import architectures
m = architectures.build("small_cnn").eval()
torch.export.export(m, (torch.randn(1, 1, 28, 28),))
print("ok", g.macs)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_export_program_with_dynamic_batch_binds_the_given_shape(small_cnn, tmp_path):
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(small_cnn.module, (torch.randn(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    path = tmp_path / "dyn.pt2"
    torch.export.save(program, path)
    with pytest.raises(InputShapeError, match="dynamic shape"):
        _open(path, shapes=())
    one = _open(path, shapes=("1x1x28x28",))
    four = _open(path, shapes=("4x1x28x28",))
    assert four.macs == 4 * one.macs and four.params == one.params == small_cnn.params


def test_torchscript_layers_get_their_exact_module_paths(tmp_path):
    from model_files import save_torchscript
    from workbench.core import architectures

    vit = architectures.build("vit_small").eval()
    path = save_torchscript(vit, (1, 3, 32, 32), tmp_path / "vit.pt")
    g = _open(path, shapes=("1x3x32x32",))
    modules = {name for name, _ in vit.named_modules()}
    assert all(n.scope_source == "module" and n.scope in modules for n in g.nodes)
    adds = [n for n in g.nodes if n.op_type == "Add" and n.scope.startswith("encoder.layers.")]
    # Each block's two residual adds live in the block itself, not in its attention or MLP.
    assert {n.scope for n in adds} == {f"encoder.layers.{i}" for i in range(6)}


def test_scripted_control_flow_falls_back_to_weight_scopes(tmp_path):
    class Gate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            if x.sum() > 0:
                x = torch.relu(x)
            return self.fc(x)

    path = tmp_path / "gate.pt"
    torch.jit.save(torch.jit.script(Gate()), path)
    g = _open(path, shapes=("2x4",))
    gemm = next(n for n in g.nodes if n.op_type == "Gemm")
    assert gemm.scope == "fc" and g.params == 20
