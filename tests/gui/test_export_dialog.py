"""The export dialog runs the export on a worker, shows its validation, reports failures and cancels cleanly."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from workbench.core.export import ExportRequest, demo_info
from workbench.gui.export_dialog import ExportDialog


@pytest.fixture
def dialog(qtbot, demo_setup, tmp_path):
    _, artifact, data = demo_setup
    base = ExportRequest(source=artifact, out=tmp_path / "pkg", info=demo_info(), data=data, latency_runs=20)
    dlg = ExportDialog(base)
    qtbot.addWidget(dlg)
    dlg.show()
    yield dlg
    dlg.close()
    assert not dlg.tasks.busy(), "the export thread outlived the dialog"


def test_export_writes_the_package_and_shows_the_validation(qtbot, dialog, tmp_path):
    assert dialog.int8_box.isEnabled() and dialog.out_edit.text() == str(tmp_path / "pkg")
    dialog.int8_box.setChecked(True)
    dialog.latency_box.setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=120000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)
    result = blocker.args[0]
    assert result.out == tmp_path / "pkg" and (tmp_path / "pkg" / "model.int8.onnx").is_file()
    assert (tmp_path / "pkg" / "latency.json").is_file()
    text = dialog.details.text()
    assert "ONNX checker (full check) passed: model.onnx, model.int8.onnx" in text
    assert "max abs diff" in text and "top-1 agreement" in text and "measured" in text
    assert dialog.status.text().startswith("Wrote") and dialog.export_button.isEnabled()
    assert dialog.progress.value() == 1000


def test_a_failed_export_says_why_and_writes_nothing(qtbot, dialog, tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mine.txt").write_text("keep")
    dialog.int8_box.setChecked(False)
    task_failed = []
    dialog.start()
    dialog.tasks.current.failed.connect(task_failed.append)
    qtbot.waitUntil(lambda: bool(task_failed), timeout=60000)
    assert "already exists" in dialog.status.text() and "nothing was written" in dialog.status.text()
    assert [p.name for p in (tmp_path / "pkg").iterdir()] == ["mine.txt"]
    dialog.force_box.setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=120000):
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)
    assert not (tmp_path / "pkg" / "mine.txt").exists() and (tmp_path / "pkg" / "deploy.json").is_file()


def test_cancel_stops_the_export_and_leaves_nothing(qtbot, dialog, tmp_path):
    dialog.int8_box.setChecked(True)
    qtbot.mouseClick(dialog.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "calibrating" in dialog.status.text(), timeout=60000)  # cancel in the middle
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert dialog.status.text().startswith("Cancelled") and dialog.export_button.isEnabled()
    assert dialog.tasks.shutdown(60000)
    assert list(tmp_path.iterdir()) == []
