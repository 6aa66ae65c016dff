"""Plugins are found by entry point and loaded defensively: one broken plugin breaks nothing else."""

from importlib.metadata import EntryPoint

import pytest

from workbench.core import methods as registry
from workbench.core.errors import WorkbenchError
from workbench.core.methods import Estimate, Method, MethodParams, per_layer


class GoodParams(MethodParams):
    strength: float = per_layer(0.5, ge=0.0, le=1.0, description="how hard")


class Good(Method):
    id = "test.good"
    label = "Good"
    kind = "transform"
    Params = GoodParams

    def estimate(self, graph, params):
        return Estimate(graph.params, graph.macs, 4 * graph.params)


class NotAMethod:
    id = "test.bad"


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps = [EntryPoint("test.good", f"{__name__}:Good", registry.ENTRY_POINT_GROUP),
           EntryPoint("test.missing", "no_such_module_anywhere:Thing", registry.ENTRY_POINT_GROUP),
           EntryPoint("test.bad", f"{__name__}:NotAMethod", registry.ENTRY_POINT_GROUP)]
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps)
    registry.discover(reload=True)
    yield
    monkeypatch.undo()
    registry.discover(reload=True)


def test_broken_plugins_are_listed_with_the_reason_and_the_rest_load(fake_entry_points):
    assert set(registry.methods()) == {"test.good"}
    failed = {r.name: r.error for r in registry.failed()}
    assert "ModuleNotFoundError" in failed["test.missing"]
    assert "missing 'label'" in failed["test.bad"]
    with pytest.raises(WorkbenchError, match="failed to load"):
        registry.get("test.missing")
    with pytest.raises(WorkbenchError, match="unknown method 'nope'.*test.good"):
        registry.get("nope")


def test_params_validation_names_the_field_and_its_range(fake_entry_points):
    method = registry.get("test.good")
    assert method.Params.per_layer_fields() == ["strength"]
    with pytest.raises(WorkbenchError, match=r"strength: Input should be less than or equal to 1. Allowed: 0.0 … 1.0"):
        method.parse_params({"strength": 3})
    with pytest.raises(WorkbenchError, match="Extra inputs are not permitted"):
        method.parse_params({"strenght": 0.1})
