"""The loader process: models open in a child; its errors, crashes and cancellation reach the caller cleanly."""

import pickle
import textwrap

import pytest

from workbench.core.errors import InputShapeError, WorkbenchError
from workbench.core.loader import LoaderProcess
from workbench.core.methods import run_to_end
from workbench.core.progress import CancelToken, Cancelled
from workbench.core.readers import OpenRequest
from workbench.core.shapes import ShapeRequest, TensorSpec


@pytest.fixture(scope="module")
def loader():
    proc = LoaderProcess(preload=())
    yield proc
    proc.close()
    assert not proc.alive


def test_errors_keep_their_fields_across_processes():
    err = InputShapeError("input 'x' has dynamic shape ?", "pass --input-shape x:1x3", "/m.onnx",
                          inputs=[TensorSpec("x", ["batch", 3])])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is InputShapeError and back.one_line() == err.one_line()
    assert back.inputs[0].name == "x" and back.hint == err.hint and back.path == "/m.onnx"


def test_opens_in_the_child_and_returns_the_graph(loader, small_cnn):
    graph = run_to_end(loader.open(OpenRequest(small_cnn.onnx)))
    assert graph.params == small_cnn.params and graph.request.path == small_cnn.onnx
    with pytest.raises(InputShapeError) as err:
        run_to_end(loader.open(OpenRequest(small_cnn.torchscript)))
    assert err.value.inputs  # the GUI's shape dialog needs them
    graph = run_to_end(loader.open(OpenRequest(small_cnn.torchscript, shapes=ShapeRequest.parse(["1x1x28x28"]))))
    assert graph.macs > 0


def test_a_crashing_reader_is_reported_and_the_loader_recovers(loader, tmp_path, small_cnn):
    crash = tmp_path / "crash.py"
    crash.write_text(textwrap.dedent("""
        import os
        def build():
            os._exit(3)   # what a segfaulting extension looks like from outside
    """))
    with pytest.raises(WorkbenchError, match="stopped unexpectedly \\(exit code 3\\)"):
        run_to_end(loader.open(OpenRequest(crash, trust_code=True)))
    assert run_to_end(loader.open(OpenRequest(small_cnn.onnx))).params == small_cnn.params


def test_cancel_stops_the_child_at_once(loader, tmp_path, small_cnn):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ndef build():\n    time.sleep(60)\n")
    token = CancelToken()
    gen = loader.open(OpenRequest(slow, trust_code=True), token)
    next(gen)
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(gen)
    assert run_to_end(loader.open(OpenRequest(small_cnn.onnx))).params == small_cnn.params
