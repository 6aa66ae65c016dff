"""The Search panel on the demo: rows stream in, the winner is named, Stop ends the search cleanly."""

from __future__ import annotations

import pytest

from workbench.core.datasets import DatasetConfig
from workbench.core.modelspec import ModelSpec
from workbench.core.project import Project
from workbench.gui.search_panel import SearchPanel


@pytest.fixture
def panel(qtbot, tmp_path):
    project = Project.create(tmp_path / "p")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    widget = SearchPanel()
    qtbot.addWidget(widget)
    widget.set_project(project)
    widget.show()
    yield widget
    assert widget.shutdown(60000)
    assert not widget.slot.busy()


def choose(panel, ratios: tuple[float, float], bits: set[str]) -> None:
    panel.ratio_from.setValue(ratios[0])
    panel.ratio_to.setValue(ratios[1])
    for label, box in panel.bits.items():
        box.setChecked(label in bits)


def test_rows_stream_in_and_the_winner_is_named(qtbot, panel):
    choose(panel, (0.0, 0.0), {"fp32", "int8"})
    assert panel.summary.text() == "2 candidates"
    changed = []
    panel.results_changed.connect(lambda: changed.append(panel.table.rowCount()))
    with qtbot.waitSignal(panel.finished, timeout=180000) as finished:
        panel.start_button.click()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    result = finished.args[0]
    assert panel.table.rowCount() == 2 and changed and changed[0] >= 1  # refreshed as the int8 variant arrived
    int8 = next(c for c in result.candidates if c.values["bits"] == "int8")
    row = next(r for r in range(2) if panel.table.item(r, 0).text() == int8.label)
    assert panel.table.item(row, 7).text() == int8.variant_id
    assert panel.project.variant(int8.variant_id).step.method == "quantize.int8_static"
    assert panel.table.item(row, 5).text() == ("yes" if int8.feasible else "no")
    if result.best is not None:
        assert f"Winner: {result.best.label}" in panel.winner.text()
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()


def test_stop_ends_the_search_and_leaves_no_running_variant(qtbot, panel):
    choose(panel, (0.1, 0.1), {"fp32"})
    panel.name.setText("stopped")
    panel.start_button.click()
    # the parent is measured first; then the pruning candidate goes to a worker process
    qtbot.waitUntil(lambda: panel.progress.format().startswith("grid:"), timeout=60000)
    with qtbot.waitSignal(panel.stopped, timeout=120000):
        panel.stop_button.click()
        assert not panel.start_button.isEnabled()  # until the workers have wound down
    assert all(v.status == "done" for v in panel.project.variants.values())
    assert [v.id for v in panel.project.variants.values()] == ["base"]  # the pruning run was discarded
    assert panel.start_button.isEnabled() and "Start resumes" in panel.status.text()


def test_start_while_another_step_runs_waits_for_it_and_stop_cancels_the_wait(qtbot, panel):
    choose(panel, (0.0, 0.0), {"fp32"})
    other = ["the measurement"]
    panel.busy_elsewhere = lambda: other[0]
    panel.start_button.click()
    assert "waiting for the measurement" in panel.status.text() and panel.running()
    assert not panel.slot.busy() and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    panel.stop_button.click()  # Stop cancels the wait: nothing ran, Start is offered again
    assert not panel.running() and panel.start_button.isEnabled() and panel.status.text() == "not started"
    qtbot.wait(400)
    assert not panel.slot.busy()
    panel.start_button.click()
    assert panel.running() and not panel.slot.busy()
    with qtbot.waitSignal(panel.finished, timeout=180000):
        other[0] = ""  # the other step ends: the search starts by itself
    assert panel.table.rowCount() == 1
