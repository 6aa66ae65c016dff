"""Render the app icon's SVG to PNG with Qt (no other tool needed); run after editing the SVG.

    python packaging/render_icon.py     # writes workbench/resources/icons/model-workbench.png (256 px)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "workbench" / "resources" / "icons"
SIZE = 256


def render(svg: Path, png: Path, size: int = SIZE) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - painting needs an app
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"error: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    tmp = png.with_suffix(".tmp.png")
    if not image.save(str(tmp)):
        raise SystemExit(f"error: could not write {tmp}")
    os.replace(tmp, png)
    print(f"wrote {png} ({size}x{size})")


if __name__ == "__main__":
    render(ICONS / "model-workbench.svg", ICONS / "model-workbench.png")
