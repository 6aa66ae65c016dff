"""The contract every registered method passes — built-ins and installed plugins alike."""

from __future__ import annotations

import hashlib

import onnx
import pytest

from workbench.core import methods as registry
from workbench.core.artifact import ModelArtifact, export_onnx
from workbench.core.methods import Estimate, RunContext, run_to_end
from workbench.core.progress import CancelToken, Cancelled

# Quick settings for methods that train or calibrate; everything else runs with its defaults.
FAST = {"finetune": {"epochs": 1}, "quantize.int8_static": {"calibration_samples": 32}, "distill.kd": {"epochs": 1},
        "analysis.sensitivity": {"samples": 100}}
METHOD_IDS = sorted(registry.methods())


@pytest.fixture(scope="module")
def demo(demo_setup):
    return demo_setup


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_built_in_methods_are_registered_through_entry_points():
    assert {"quantize.int8_static", "quantize.int8_dynamic", "prune.channels", "prune.magnitude",
            "finetune"} <= set(METHOD_IDS)
    assert not registry.failed(), [(r.name, r.error) for r in registry.failed()]


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_params_round_trip_and_are_described(method_id):
    method = registry.get(method_id)
    defaults = method.parse_params({})
    assert method.parse_params(defaults.model_dump()) == defaults
    schema = method.Params.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{method_id}.{name} has no description"
    described = registry.describe(method)
    assert described["id"] == method_id and described["kind"] in registry.KINDS


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_estimate_is_instant_and_labelled(method_id, demo):
    graph, _, _ = demo
    method = registry.get(method_id)
    est = method.estimate(graph, method.parse_params(FAST.get(method_id, {})))
    assert isinstance(est, Estimate) and est.provenance == "estimated"
    assert est.params > 0 and est.macs > 0 and est.size_bytes > 0


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_run_on_the_demo_gives_a_loadable_artifact_with_valid_onnx(method_id, demo, tmp_path):
    _, artifact, data = demo
    method = registry.get(method_id)
    before = _sha(artifact.path)
    ctx = RunContext(work_dir=tmp_path / "work", data=data)
    result = run_to_end(method.run(artifact, method.parse_params(FAST.get(method_id, {})), ctx))
    assert isinstance(result, ModelArtifact) and result.path.is_file()
    graph = result.graph()
    assert graph.params > 0 and graph.macs > 0
    exported = export_onnx(result, tmp_path / "check.onnx")
    onnx.checker.check_model(onnx.load(str(exported.path)))
    assert _sha(artifact.path) == before, "the input model was modified"


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_cancel_leaves_nothing_behind(method_id, demo, tmp_path):
    _, artifact, data = demo
    method = registry.get(method_id)
    token = CancelToken()
    token.cancel()
    work = tmp_path / "work"
    ctx = RunContext(work_dir=work, token=token, data=data)
    with pytest.raises(Cancelled):
        run_to_end(method.run(artifact, method.parse_params(FAST.get(method_id, {})), ctx))
    leftovers = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert not leftovers, leftovers
