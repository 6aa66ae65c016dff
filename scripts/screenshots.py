"""Make the screenshots in docs/ by driving the app as a user would (run under Xvfb or offscreen).

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/screenshots.py docs/screenshots

Each scene opens a model, sorts the layer table by MACs (largest first), selects the largest layer — what a user
does to find it — waits for the details panel's weight histogram, and saves the whole window.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))


def reference_files() -> dict[str, Path]:
    from run_all import _files

    warnings.filterwarnings("ignore")
    return {**{f"resnet50_{k}": v for k, v in _files("resnet50").items()},
            **{f"vit_b_16_{k}": v for k, v in _files("vit_b_16").items()}}


def main(out_dir: str) -> int:
    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer

    from workbench.core.loader import close_shared_loader
    from workbench.gui.app import make_app
    from workbench.gui.main_window import MainWindow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = reference_files()
    app = make_app()  # noqa: F841 - the application must stay referenced while windows exist

    def wait(signal=None, ms=120000, until=None):
        loop = QEventLoop()
        if signal is not None:
            signal.connect(loop.quit)
        QTimer.singleShot(ms, loop.quit)
        if until is not None:
            timer = QTimer()
            timer.timeout.connect(lambda: until() and loop.quit())
            timer.start(50)
        loop.exec()

    def scene(name, open_fn, theme="light", collapse=False, select_largest=True, select_scope=None,
              expanded=None):
        window = MainWindow(QSettings(str(out / ".settings.ini"), QSettings.IniFormat))
        window.apply_theme(theme, save=False)
        window.resize(1600, 1000)
        window.show()
        open_fn(window)
        wait(window.view_ready)
        if collapse:
            window.collapse_overview()
            wait(window.view_ready)
        if expanded is not None:
            window.set_expanded(expanded)
            wait(window.view_ready)
        if select_largest:
            window.table.view.sortByColumn(5, Qt.DescendingOrder)
            window.table.view.selectRow(0)
            wait(until=lambda: window.details.weight_info.text() and "Reading" not in
                 window.details.weight_info.text(), ms=30000)
        if select_scope:
            window.graph_view.select_key(f"s:{select_scope}")
            window.graph_view.center_on_key(f"s:{select_scope}")
        wait(ms=400)
        path = out / f"{name}.png"
        window.grab().save(str(path))
        print(f"saved {path}")
        window.close()

    scene("demo-light", lambda w: w.open_demo())
    scene("demo-dark", lambda w: w.open_demo(), theme="dark")
    scene("resnet50-onnx", lambda w: w.open_path(str(files["resnet50_onnx"])))
    scene("vit-b16-torchscript-dark", lambda w: w.open_path(str(files["vit_b_16_torchscript"]),
                                                            shapes=["1x3x224x224"]), theme="dark")
    scene("vit-b16-torchscript-blocks", lambda w: w.open_path(str(files["vit_b_16_torchscript"]),
                                                              shapes=["1x3x224x224"]),
          expanded={"", "encoder", "encoder.layers"}, select_largest=False, select_scope="encoder.layers.5")
    def compress(window):
        window.open_demo()
        wait(window.view_ready)
        window.docks["compress"].raise_()
        window.compress.select_method("prune.channels")
        window.compress.form.set_values({"ratio": 0.5})
        window.compress.set_override("features.1", "ratio", 0.2)
        window.compress.apply_button.click()
        wait(window.view_ready)

    scene("compress-prune-demo", compress, select_largest=False)
    close_shared_loader()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
