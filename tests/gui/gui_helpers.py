"""Helpers for GUI tests."""


def open_and_wait(qtbot, window, path, timeout=60000, **kw):
    with qtbot.waitSignal(window.view_ready, timeout=timeout):
        window.open_path(str(path), **kw)
    return window.state


def apply_from_panel(qtbot, window, method_id, values, timeout=180000):
    """Pick a method in the Compress panel, set its values, click Apply and wait for the result to be shown;
    returns the variant then current."""
    from PySide6.QtCore import Qt

    panel = window.compress
    panel.select_method(method_id)
    panel.form.set_values(values)
    with qtbot.waitSignal(window.view_ready, timeout=timeout):
        qtbot.mouseClick(panel.apply_button, Qt.LeftButton)
    return window.project.variant(window.current_variant)
