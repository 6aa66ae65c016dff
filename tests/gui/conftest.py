"""GUI fixtures: a main window with throw-away settings, checked for leaked windows and threads afterwards."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


@pytest.fixture
def settings_path(tmp_path):
    return tmp_path / "settings.ini"


@pytest.fixture
def make_window(qtbot, settings_path):
    from workbench.gui.app import make_app
    from workbench.gui.main_window import MainWindow

    make_app()
    made = []

    def factory():
        window = MainWindow(QSettings(str(settings_path), QSettings.IniFormat))
        window._session_dir = settings_path.parent / f"session-{len(made)}"  # projects go to the test's tmp dir
        window.ask_trust = lambda path, problem: False
        window.ask_shapes = lambda path, inputs, problem: None
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield factory
    for window in made:
        window.close()
    for window in made:
        slots = (window.loader, window.relayout, window.details.tasks, window.methods_task, *window.experiment_slots)
        assert not any(slot.busy() for slot in slots), "a worker thread is still running after close"
    QApplication.processEvents()
    leftover = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not leftover, f"windows left open: {[type(w).__name__ for w in leftover]}"


@pytest.fixture
def window(make_window):
    return make_window()
