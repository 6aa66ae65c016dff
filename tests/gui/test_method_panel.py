"""The Compress panel: generated from each method's Params, live estimate, apply and cancel on a worker."""

from __future__ import annotations

import hashlib

import pytest
from PySide6.QtCore import Qt

from workbench.core import methods as registry
from gui_helpers import apply_from_panel
from workbench.core.datasets import DatasetConfig

METHOD_IDS = sorted(registry.methods())


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _open_demo(qtbot, window):
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_demo()


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_every_method_gets_a_panel_whose_values_round_trip(qtbot, window, method_id):
    panel = window.compress
    panel.select_method(method_id)
    method = registry.get(method_id)
    assert panel.form is not None and set(panel.form.widgets) == set(method.Params.model_fields)
    assert method.parse_params(panel.form.values()) == method.parse_params({})


def test_estimate_updates_as_a_value_moves_and_says_estimated(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.compress
    panel.select_method("prune.channels")
    panel.form.set_values({"ratio": 0.1})
    light = panel.estimate_label.text()
    panel.form.set_values({"ratio": 0.6})
    heavy = panel.estimate_label.text()
    assert "Estimated" in heavy and "not measured" in heavy and light != heavy
    assert panel.last_estimate.params < window.state.graph.params


def test_apply_runs_off_the_gui_thread_and_shows_the_result(qtbot, window):
    _open_demo(qtbot, window)
    source = window.artifact.path
    before = _sha(source)
    panel = window.compress
    panel.select_method("prune.magnitude")
    panel.form.set_values({"sparsity": 0.5})
    with qtbot.waitSignal(window.view_ready, timeout=120000):
        qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    variant = window.project.variant(window.current_variant)
    assert window.artifact.path != source and window.artifact.path.parent == window.project.artifacts_dir
    assert variant.step.method == "prune.magnitude" and variant.status == "done" and variant.parent == "base"
    assert variant.accuracy and variant.accuracy[-1].samples == 1000  # measured on the validation split
    assert "prune.magnitude" in panel.status.text() and "counted" in panel.status.text()
    assert "measured" in panel.status.text()
    assert _sha(source) == before


def test_cancel_keeps_the_model_unchanged(qtbot, window):
    _open_demo(qtbot, window)
    artifact = window.artifact
    panel = window.compress
    panel.select_method("finetune")
    panel.form.set_values({"epochs": 20})
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    assert panel.cancel_button.isEnabled()
    task = window.methods_task.current
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    assert "Cancelled" in panel.status.text() and window.artifact is artifact
    qtbot.waitUntil(lambda: not window.methods_task.busy(), timeout=60000)


def test_per_layer_override_from_the_graph_is_validated(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.compress
    panel.select_method("prune.channels")
    window.ask_override_value = lambda layer, field, current: "0.25"
    window.override_layer("features.3", "ratio")
    assert panel.overrides == {"features.3": {"ratio": 0.25}}
    window.ask_override_value = lambda layer, field, current: "5"
    window.override_layer("features.4", "ratio")
    assert "features.4" not in panel.overrides and "ratio" in panel.status.text()


def test_a_method_that_needs_data_says_so(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.compress
    qtbot.waitUntil(lambda: bool(window.project.variant("base").accuracy), timeout=60000)  # measured first
    window.project.set_dataset(None)
    panel.select_method("quantize.int8_static")
    panel.data_combo.setCurrentIndex(panel.data_combo.findData(""))  # the project's dataset: none now
    qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Failed" in panel.status.text(), timeout=30000)
    assert "no dataset" in panel.status.text() and "unchanged" in panel.status.text()
    failed = [v for v in window.project.variants.values() if v.status == "failed"]
    assert len(failed) == 1 and "no dataset" in failed[0].error  # the attempt is on record, with its reason


def test_sensitivity_paints_the_graph_and_offers_mixed_precision(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.compress
    apply_from_panel(qtbot, window, "analysis.sensitivity", {"samples": 100})
    assert window.graph_view.metric_id == "sensitivity"
    assert "Accuracy drop (measured)" in window.graph_view.legend.text()
    assert panel.suggestion_button.isVisible()
    rows = window.artifact.meta["sensitivity"]
    table = window.sensitivity.table
    assert table.rowCount() == len(rows) and "100 samples" in window.sensitivity.summary.text()
    drops = [float(table.item(r, 2).text()) for r in range(table.rowCount())]
    assert drops == sorted(drops, reverse=True)
    assert table.item(0, 0).text() == rows[0]["layer"]
    table.selectRow(0)  # a row click selects the layer in the graph
    node = window.state.graph.nodes[window.table.selected_node()]
    assert rows[0]["layer"] in (node.name, node.scope) or node.scope.startswith(rows[0]["layer"])
    suggestion = dict(panel.suggestion)
    qtbot.mouseClick(panel.suggestion_button, Qt.LeftButton)
    assert panel.method.id == "quantize.bits"
    assert {layer: d["weight_bits"] for layer, d in panel.overrides.items()} == \
        {layer: d["weight_bits"] for layer, d in suggestion.items()}


def test_per_layer_override_from_the_layer_table(qtbot, window):
    _open_demo(qtbot, window)
    window.compress.select_method("prune.channels")
    source_row = next(i for i, n in enumerate(window.state.graph.nodes) if n.op_type == "Conv")
    row = window.table.model.row_of(source_row)
    actions = window.table.override_actions(row)
    assert [f for _, _, f in actions] == ["ratio"]
    _, layer, field = actions[0]
    window.ask_override_value = lambda layer, field, current: "0.4"
    window.table.override_requested.emit(layer, field)
    assert window.compress.overrides == {layer: {"ratio": 0.4}}


def test_finetune_draws_live_training_curves(qtbot, window):
    _open_demo(qtbot, window)
    apply_from_panel(qtbot, window, "finetune", {"epochs": 1})
    series = window.training.series
    epochs, losses = series["train loss"]
    assert len(epochs) >= 3 and epochs == sorted(epochs) and epochs[-1] == pytest.approx(1.0)
    assert series["val accuracy"][0] == [1.0]
    measured = window.project.variant(window.current_variant).accuracy[-1]  # the variant, evaluated in ONNX Runtime
    assert series["val accuracy"][1][0] == pytest.approx(100 * measured.top1, abs=0.3)
    assert "finetune" in window.training.title.text()


def test_a_method_that_needs_data_warns_before_apply_when_the_project_has_none(qtbot, window, small_cnn):
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_path(str(small_cnn.onnx))
    panel = window.compress
    assert panel.data_combo.itemText(0) == "The project's dataset (none yet)"
    panel.select_method("quantize.int8_static")
    assert not panel.data_note.isHidden() and "needs data" in panel.data_note.text()
    panel.select_method("prune.channels")  # needs no data: no warning
    assert panel.data_note.isHidden()
    panel.select_method("finetune")
    assert not panel.data_note.isHidden()
    panel.data_combo.setCurrentIndex(panel.data_combo.findData("demo"))  # data picked here: the warning goes
    assert panel.data_note.isHidden()
    panel.data_combo.setCurrentIndex(0)
    window.set_project_dataset(DatasetConfig(kind="demo"))
    assert panel.data_combo.itemText(0) == "The project's dataset (demo digits)" and panel.data_note.isHidden()
    qtbot.waitUntil(window.measure_task.idle, timeout=60000)
