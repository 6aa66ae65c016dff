"""Helpers for GUI tests."""


def open_and_wait(qtbot, window, path, timeout=60000, **kw):
    with qtbot.waitSignal(window.view_ready, timeout=timeout):
        window.open_path(str(path), **kw)
    return window.state
