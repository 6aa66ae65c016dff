"""Screenshots of an experiment on the demo, made the way a new user would click through it (run under Xvfb):

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/experiment_screenshots.py docs/screenshots

Five variants from the Compress panel — prune 50 %, fine-tune it, int8 of the base, int8 of the fine-tuned one,
a distilled small student — then the charts, the variants table, a comparison and the latency on this machine.
Prints how long each step took from the user's click to the measured variant on the chart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = [  # (parent, method, params, name)
    ("base", "prune.channels", {"ratio": 0.5}, "pruned 50 %"),
    (None, "finetune", {"epochs": 3, "learning_rate": 0.001}, "pruned + fine-tuned"),
    ("base", "quantize.int8_static", {"calibration_samples": 256}, "int8"),
    ("v2", "quantize.int8_static", {"calibration_samples": 256}, "pruned + fine-tuned + int8"),
    ("base", "distill.kd", {"student": "small_cnn", "epochs": 3, "learning_rate": 0.003}, "distilled small_cnn"),
]


def main(out_dir: str) -> int:
    import tempfile

    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from workbench.core.loader import close_shared_loader
    from workbench.gui.app import make_app
    from workbench.gui.main_window import MainWindow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = make_app()

    def wait(signal=None, ms=300000, until=None):
        loop = QEventLoop()
        if signal is not None:
            signal.connect(loop.quit)
        QTimer.singleShot(ms, loop.quit)
        timer = QTimer()
        if until is not None:
            timer.timeout.connect(lambda: until() and loop.quit())
            timer.start(50)
        loop.exec()
        timer.stop()

    session = Path(tempfile.mkdtemp(prefix="wb-shots-"))
    window = MainWindow(QSettings(str(session / "settings.ini"), QSettings.IniFormat))
    window._session_dir = session
    window.apply_theme("light", save=False)
    window.resize(1680, 1050)
    window.show()
    start = time.perf_counter()
    window.open_demo()
    wait(window.view_ready)
    wait(until=lambda: bool(window.project.variant("base").accuracy))
    print(f"demo open and base measured: {time.perf_counter() - start:.1f} s")
    window.docks["compress"].raise_()
    for parent, method, params, name in STEPS:
        if parent is not None and window.current_variant != parent:
            window.open_variant(parent)
            wait(window.view_ready)
        t = time.perf_counter()
        window.compress.select_method(method)
        window.compress.form.set_values(params)
        window.compress.apply_button.click()
        wait(window.view_ready)
        window.project.rename(window.current_variant, name)
        print(f"{name}: {time.perf_counter() - t:.1f} s from Apply to a measured variant")
    print(f"five variants: {time.perf_counter() - start:.1f} s in all")
    window.docks["variants"].raise_()
    wait(ms=500)
    window.grab().save(str(out / "experiments-size.png"))
    window.charts.tabs.setCurrentIndex(1)
    window.docks["devices"].raise_()
    window.latency_panel.runs.setValue(100)
    window.latency_panel.all_button.click()
    wait(until=lambda: window.latency_panel.all_button.isEnabled())
    wait(ms=500)
    window.grab().save(str(out / "experiments-latency.png"))
    window.charts.size_chart.export(out / "chart-accuracy-vs-size.png")
    window.apply_theme("dark", save=False)
    wait(ms=300)
    window.grab().save(str(out / "experiments-dark.png"))
    window.apply_theme("light", save=False)
    # the guided tour over the window: grab the whole screen so both show
    from workbench.gui.demo_tour import DemoTour

    window.move(0, 0)
    tour = DemoTour(window)
    tour.show()
    tour.show_step(3)
    tour.move(window.width() - tour.width() - 430, 120)
    wait(ms=600)
    app.primaryScreen().grabWindow(0).copy(0, 0, window.width(), window.height()).save(str(out / "tour.png"))
    tour.close()
    print(f"saved {out}/experiments-*.png")
    window.close()
    close_shared_loader()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
