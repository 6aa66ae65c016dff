"""GUI figures for `make bench`: time from file chosen to graph drawn, and the longest GUI-thread stall.

Each case runs in a fresh process (offscreen), as a user's first open would: the window is up, the clock starts
when the file is handed to the window and stops when the graph view has painted the model. A 5 ms heartbeat timer
on the GUI thread records the longest gap between its ticks while loading: the longest the window was frozen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()


def _child(mode: str, kind: str, arg: str, shapes: list[str]) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QSettings, QTimer

    from workbench.gui.app import make_app
    from workbench.gui.main_window import MainWindow

    app = make_app()
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "wb-bench-settings.ini"), QSettings.IniFormat)
    window = MainWindow(settings)
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    graph = None
    if kind == "synthetic":
        from workbench.core.synthetic import synthetic_graph

        graph = synthetic_graph(int(arg))
    if mode == "warm":  # the user picks a file after the app has started its reader process
        from workbench.core.loader import shared_loader

        shared_loader().wait_ready()
        app.processEvents()
    clock = QElapsedTimer()
    beat = {"last": 0, "max": 0}
    heartbeat = QTimer()
    heartbeat.setInterval(5)

    def tick():
        now = clock.elapsed()
        beat["max"] = max(beat["max"], now - beat["last"])
        beat["last"] = now

    heartbeat.timeout.connect(tick)
    result = {}

    def painted():
        result["drawn_s"] = clock.elapsed() / 1000
        result["stall_ms"] = beat["max"]
        result["boxes"] = len(window.graph_view.boxes)
        result["layers"] = len(window.state.graph.nodes)
        heartbeat.stop()
        QTimer.singleShot(0, window.close)

    window.graph_view.painted.connect(painted)
    window.load_failed.connect(lambda m: (result.update(error=m), window.close()))
    clock.start()
    heartbeat.start()
    if graph is not None:
        window.show_graph(graph)
    elif kind == "demo":
        window.open_demo()
    else:
        window.open_path(arg, shapes=shapes or None)
    app.exec()
    from workbench.core.loader import close_shared_loader

    close_shared_loader()
    print(json.dumps(result))


def measure(mode: str, kind: str, arg: str, shapes: list[str] | None = None) -> dict:
    out = subprocess.run([sys.executable, str(HERE), "--child", mode, kind, arg, *(shapes or [])],
                         capture_output=True,
                         text=True, timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def main(files: dict[str, Path]) -> None:
    print("\n== GUI: file chosen -> graph drawn (fresh process, offscreen; targets: <= 1 s up to 5 k layers, "
          "<= 3 s at 20 k; no GUI stall over 100 ms)")
    print(f"{'model':<26} {'layers':>7} {'boxes':>6} {'warm: drawn s':>14} {'stall ms':>9} "
          f"{'cold: drawn s':>14} {'stall ms':>9}")
    cases = [("demo", "demo", "-", [])]
    for label, path in files.items():
        shapes = ["1x3x224x224"] if path.suffix == ".pt" else []
        cases.append((label, "file", str(path), shapes))
    for n in (1000, 5000, 20000):
        cases.append((f"synthetic {n // 1000} k", "synthetic", str(n), []))
    for label, kind, arg, shapes in cases:
        warm, cold = measure("warm", kind, arg, shapes), measure("cold", kind, arg, shapes)
        bad = next((r for r in (warm, cold) if "error" in r), None)
        if bad:
            print(f"{label:<26} error: {bad['error']}")
            continue
        print(f"{label:<26} {warm['layers']:>7,} {warm['boxes']:>6,} {warm['drawn_s']:>14.2f} "
              f"{warm['stall_ms']:>9.0f} {cold['drawn_s']:>14.2f} {cold['stall_ms']:>9.0f}")
    print("boxes = what is drawn at first (large graphs open with scopes collapsed). warm = the file is chosen once "
          "the reader process has started (it imports torch at launch); cold = chosen the instant the window shows.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        main({})
