"""Start the desktop app; ``--screenshot`` opens a model, waits until the graph is drawn, saves a PNG and exits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ORG, APP = "ModelWorkbench", "Model Workbench"


def make_app():
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from workbench.core.demo import resources_dir

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName(APP)
    # Matches the .desktop entry's StartupWMClass/Icon, so the window is grouped under the launcher's icon.
    app.setDesktopFileName("model-workbench")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "model-workbench.png")))
    return app


def run(model: str | None = None, demo: bool = False, shapes: list[str] | None = None, trust: bool = False,
        arch: str | None = None, screenshot: str | None = None, theme: str | None = None,
        timeout_s: float = 300.0, project: str | None = None, tour: bool = False) -> int:
    """Open the main window (optionally on a model, or a project folder, with the demo tour) and run the event
    loop; returns the exit status."""
    app = make_app()
    from PySide6.QtCore import QSettings, QTimer

    from .main_window import MainWindow

    settings = QSettings()
    window = MainWindow(settings)
    if theme:
        window.apply_theme(theme, save=False)
    status = {"code": 0}
    if screenshot:
        window.resize(1600, 1000)
        target = Path(screenshot)

        def save():
            # Give the docks one more event-loop turn to settle, then grab the whole window.
            def grab():
                image = window.grab()
                target.parent.mkdir(parents=True, exist_ok=True)
                if not image.save(str(target)):
                    print(f"error: could not write {target}", file=sys.stderr)
                    status["code"] = 1
                else:
                    print(f"saved {target} ({image.width()}x{image.height()})")
                window.close()
            QTimer.singleShot(200, grab)

        def failed(message: str):
            print(f"error: {message}", file=sys.stderr)
            status["code"] = 2
            window.close()

        def timeout():
            print(f"error: the graph was not drawn within {timeout_s:.0f} s", file=sys.stderr)
            status["code"] = 1
            window.close()

        window.graph_view.painted.connect(save)
        window.load_failed.connect(failed)
        window.ask_trust = lambda path, problem: trust
        QTimer.singleShot(int(timeout_s * 1000), timeout)
    window.show()
    if project:
        window.open_project(project)
    if tour:
        from .demo_tour import DemoTour

        window.tour = DemoTour(window)
        window.tour.show()
    if demo:
        window.open_demo()
    elif model:
        window.open_path(model, shapes=shapes, trust=trust, arch=arch)
    elif screenshot:
        QTimer.singleShot(300, save)
    app.exec()
    from workbench.core.loader import close_shared_loader

    close_shared_loader()
    return status["code"]
