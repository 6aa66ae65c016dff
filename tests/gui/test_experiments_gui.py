"""Experiments in the window: measured variants, charts, undo/redo, compare, recipes, devices, projects."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gui_helpers import apply_from_panel
from workbench.core.datasets import DatasetConfig
from workbench.core.recipes import load_recipe, recipe_from_lineage


def _open_demo(qtbot, window):
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_demo()
    # the base model is measured at once on a worker (accuracy on the validation split, latency here)
    qtbot.waitUntil(lambda: bool(window.project.variant("base").accuracy), timeout=60000)
    qtbot.waitUntil(window.measure_task.idle, timeout=60000)  # its latency comes after


def test_variants_charts_undo_compare_and_recipe(qtbot, window, tmp_path):
    _open_demo(qtbot, window)
    panel, chart = window.variants_panel, window.charts.size_chart
    qtbot.waitUntil(lambda: panel.items["base"].text(6) != "—", timeout=10000)
    assert float(panel.items["base"].text(6)) == pytest.approx(98.9, abs=0.2)  # the demo's measured top-1
    pruned = apply_from_panel(qtbot, window, "prune.channels", {"ratio": 0.3})
    assert pruned.status == "done" and pruned.parent == "base" and pruned.accuracy and pruned.latency
    def variants_plotted():  # the Compress panel's estimate is drawn too (a hollow "estimate" point)
        return {p.id for p in chart.plotted() if p.id != "estimate"}

    qtbot.waitUntil(lambda: variants_plotted() == {"base", pruned.id}, timeout=10000)
    assert set(chart.front_ids()) <= {"base", pruned.id} and chart.current == pruned.id
    assert panel.items[pruned.id].parent() is panel.items["base"]  # the tree: child under its parent
    assert not panel.items[pruned.id].text(3).startswith("≈")  # counted, not estimated

    # compare the two, layer by layer
    panel.items["base"].setSelected(True)  # ctrl+click: the current (pruned) row stays selected
    qtbot.mouseClick(panel.compare_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: getattr(window, "compare_dialog", None) is not None, timeout=60000)
    assert window.compare_dialog.layers.rowCount() > 5  # pruned convolutions changed
    window.compare_dialog.close()

    # the recipe of the pruned variant replays what the GUI did
    target = tmp_path / "pruned.yaml"
    window.ask_save_path = lambda *a: str(target)
    window.save_recipe(pruned.id)
    recipe = load_recipe(target)
    assert [s.method for s in recipe.steps] == ["prune.channels"] and recipe.steps[0].params["ratio"] == 0.3
    from workbench.core.methods import run_to_end
    from workbench.core.recipes import run_recipe

    replay = run_to_end(run_recipe(recipe, tmp_path, tmp_path / "replay")).variants  # what `workbench run` does
    assert [v.accuracy[-1].top1 for v in replay] == [window.project.variant(i).accuracy[-1].top1
                                                     for i in ("base", pruned.id)]  # the GUI's figures, exactly

    # undo takes the run back (chart and table follow); redo restores it
    with qtbot.waitSignal(window.view_ready, timeout=60000):  # the shown model goes back to the base
        window.undo_action.trigger()
    assert pruned.id not in panel.items and variants_plotted() == {"base"} and window.redo_action.isEnabled()
    assert window.current_variant == "base" and window.state.graph.params == window.project.variant("base").params.value
    window.redo_action.trigger()
    qtbot.waitUntil(lambda: pruned.id in panel.items, timeout=5000)

    # selecting a variant in the tree shows its model
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        panel.tree.clearSelection()
        panel.items[pruned.id].setSelected(True)
    assert window.current_variant == pruned.id
    assert window.state.graph.params == window.project.variant(pruned.id).params.value


def test_latency_on_this_machine_for_all_variants_and_the_int8_check(qtbot, window):
    _open_demo(qtbot, window)
    int8 = apply_from_panel(qtbot, window, "quantize.int8_static", {"calibration_samples": 64})
    panel = window.latency_panel
    panel.runs.setValue(30)
    before = {vid: len(v.latency) for vid, v in window.project.variants.items()}
    qtbot.mouseClick(panel.all_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.all_button.isEnabled(), timeout=120000)
    assert "Measured on local" in panel.result.text(), panel.result.text()
    for vid in ("base", int8.id):
        latency = window.project.variant(vid).latency
        assert len(latency) == before[vid] + 1 and latency[-1].runs == 30 and latency[-1].p50 > 0
    assert window.graph_view.metric_id == "latency"  # per-layer times painted on the shown variant
    assert "(measured)" in window.graph_view.legend.text()
    qtbot.mouseClick(panel.int8_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.int8_button.isEnabled(), timeout=60000)
    assert "estimated" in panel.result.text() and int8.name in panel.result.text()


def test_project_reopens_after_a_crash_with_everything_saved(qtbot, make_window, tmp_path):
    first = make_window()
    _open_demo(qtbot, first)
    pruned = apply_from_panel(qtbot, first, "prune.magnitude", {"sparsity": 0.3})
    folder = first.project.folder
    first.project.save()
    # simulate a crash mid-run: the project file says a variant was running; a temp file is left behind
    import json

    doc = json.loads((folder / "project.json").read_text())
    doc["variants"].append({**doc["variants"][-1], "id": "v9", "name": "killed", "status": "running",
                            "artifact": None, "deploy": None, "accuracy": [], "latency": []})
    (folder / "project.json").write_text(json.dumps(doc))
    (folder / ".project.json.abc.tmp").write_text("half")
    first.close()
    second = make_window()
    with qtbot.waitSignal(second.view_ready, timeout=60000):
        second.open_project(folder)
    project = second.project
    assert project.variant("v9").status == "interrupted" and project.variant(pruned.id).status == "done"
    assert project.variant(pruned.id).accuracy == pruned.accuracy  # nothing measured was lost
    assert not (folder / ".project.json.abc.tmp").exists()
    assert second.current_variant == pruned.id and "interrupted" in second.variants_panel.items["v9"].text(2)
    QApplication.processEvents()


def test_report_and_package_from_the_file_menu(qtbot, window, tmp_path):
    _open_demo(qtbot, window)
    html = window.export_report(tmp_path / "report.html")
    text = html.read_text()
    assert "base model" in text and "98.90" in text and "measured" in text
    window.export_package()
    dialog = window.export_dialog
    dialog.out_edit.setText(str(tmp_path / "pkg"))
    with qtbot.waitSignal(dialog.exported, timeout=120000):
        dialog.start()
    assert (tmp_path / "pkg" / "deploy.json").is_file() and (tmp_path / "pkg" / "infer.py").is_file()
    dialog.close()


def test_an_agent_killed_mid_measurement_is_reported_and_the_window_stays_usable(qtbot, window, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from agent_process import AgentProcess

    _open_demo(qtbot, window)
    agent = AgentProcess(tmp_path / "store")
    try:
        devices = window.latency_panel.devices
        devices.host.setText(agent.host)
        devices.port.setValue(agent.port)
        devices.token.setText(agent.token)
        device = devices.add_from_form()
        assert [d["name"] for d in window.project.devices] == [device.name]  # the project keeps its agents
        window.measure_on_device(device, 200000)  # long enough to be killed while it runs
        agent.wait_until_busy(timeout=60)
        agent.kill()
        qtbot.waitUntil(lambda: window.latency_panel.all_button.isEnabled(), timeout=60000)
        text = window.latency_panel.result.text()
        assert text.startswith("Failed:") and device.name in text and "unchanged" in text
        assert not [m for m in window.project.variant("base").latency if m.device == device.name]
        window.find_layer("conv")  # the window still answers
        assert window.table.selected_node() is not None
    finally:
        agent.kill()


def test_a_search_from_the_window_streams_its_variants_into_the_charts(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.search_panel
    panel.ratio_from.setValue(0.0)
    panel.ratio_to.setValue(0.0)
    for label, box in panel.bits.items():
        box.setChecked(label in {"fp32", "int8"})
    window.measure_variant("base")  # Start pressed while a measurement runs: the search waits for it
    with qtbot.waitSignal(panel.finished, timeout=180000):
        panel.start_button.click()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
        window.compress.select_method("prune.magnitude")
        window.apply_method("prune.magnitude", {}, {}, "")  # refused while the search changes the project
        assert "search is running" in window.last_error
        window.error_box.close()
    int8 = [v for v in window.project.variants.values() if v.step and v.step.method == "quantize.int8_static"]
    assert len(int8) == 1 and int8[0].id in window.variants_panel.items
    qtbot.waitUntil(lambda: int8[0].id in {p.id for p in window.charts.size_chart.plotted()}, timeout=5000)


def test_the_compress_estimate_is_a_hollow_point_that_moves_with_the_slider(qtbot, window):
    _open_demo(qtbot, window)
    chart = window.charts.size_chart
    panel = window.compress
    panel.select_method("prune.channels")
    panel.form.set_values({"ratio": 0.2})
    preview = chart.points["estimate"]
    assert not preview.measured and preview.parent == "base" and "estimated" in preview.detail
    assert preview.accuracy == pytest.approx(100 * window.project.variant("base").accuracy[-1].top1)
    small = preview.size_bytes
    panel.form.set_values({"ratio": 0.6})
    assert chart.points["estimate"].size_bytes < small  # more pruning, smaller projected file
    assert "estimate" in {p.id for p in chart.plotted()} and "estimate" not in chart.front_ids()
    panel.select_method("analysis.sensitivity")  # an analysis makes no variant: no point
    assert "estimate" not in chart.points


def test_measuring_checking_a_device_and_measuring_again_never_cancel_one_another(qtbot, window):
    _open_demo(qtbot, window)
    assert len(window.project.variant("base").accuracy) == 1
    window.measure_variant("base")
    window.measure_variant("base")  # asked while the first runs: it waits its turn
    window.check_int8(window.latency_panel.devices.devices()[0])  # this machine, on another slot
    # each measurement adds a latency (the accuracy on the same data is known: kept once)
    qtbot.waitUntil(lambda: len(window.project.variant("base").latency) == 3, timeout=120000)
    qtbot.waitUntil(lambda: not any(slot.busy() for slot in window.experiment_slots), timeout=60000)
    assert "no int8 variant yet" in window.latency_panel.result.text()  # the check finished too
    assert len(window.project.variant("base").accuracy) == 1


def test_a_model_without_data_gets_size_and_latency_and_its_pruning_works(qtbot, window, small_cnn):
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_path(str(small_cnn.onnx))
    assert window.project.dataset is None
    qtbot.waitUntil(lambda: window.project.variant("base").status == "done", timeout=60000)
    base = window.project.variant("base")
    assert base.size_bytes.value == small_cnn.onnx.stat().st_size and base.params.value == small_cnn.params
    assert base.latency and not base.accuracy  # what needs no data is measured at once
    assert "Accuracy needs a dataset" in window.charts.size_chart.note.text()
    qtbot.waitUntil(window.measure_task.idle, timeout=60000)
    pruned = apply_from_panel(qtbot, window, "prune.channels", {"ratio": 0.5})  # needs no data: it must not fail for want
    assert pruned.status == "done" and pruned.latency and not pruned.accuracy
    assert pruned.size_bytes.value < base.size_bytes.value and pruned.macs.value < base.macs.value
    assert recipe_from_lineage(window.project, pruned.id).dataset is None  # no data, and the recipe says so
    window.set_project_dataset(DatasetConfig(kind="demo"))  # 28x28 digits fit it: every variant gets its accuracy
    qtbot.waitUntil(lambda: all(v.accuracy for v in window.project.variants.values()), timeout=120000)
    qtbot.waitUntil(lambda: {"base", pruned.id} <= {p.id for p in window.charts.size_chart.plotted()}, timeout=10000)
    assert "Accuracy needs a dataset" not in window.charts.size_chart.note.text()
    qtbot.waitUntil(window.measure_task.idle, timeout=60000)
    assert all(len(v.latency) == 1 for v in window.project.variants.values())  # the data changes no latency
