"""The layer graph as a picture for reports: the graph view drawn offscreen, coloured by a heat-map metric."""

from __future__ import annotations

import math

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from .theme import LIGHT

ASPECT = 1.6  # width / height the columns aim for


def graph_picture(graph, budget: int = 24, metric: str = "macs", max_width: int = 900) -> bytes:
    """PNG bytes of ``graph`` laid out as the app shows it (scopes collapsed to about ``budget`` boxes), each box
    coloured by ``metric``, in columns; at most ``max_width`` pixels wide."""
    from workbench.core.loading import show
    from workbench.core.viewgraph import default_expansion

    from .app import make_app
    from .graph_view import GraphView

    make_app()  # widgets need a QApplication (the CLI's reports run without a window, offscreen)
    view = GraphView()
    view.set_colors(LIGHT)
    view.resize(1000, 800)
    view.set_state(show(graph, default_expansion(graph, budget=budget)))
    view.apply_metric(metric)
    scene = view.scene()
    rect = scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)
    # A layered graph is tall and narrow: cut it into columns side by side (read top to bottom, left to right) so
    # the picture fits a page at the size the app draws it.
    columns = max(1, min(6, round(math.sqrt(ASPECT * rect.height() / max(1.0, rect.width())))))
    cuts = [rect.top()] + [_free_y(view, rect.top() + c * rect.height() / columns) for c in range(1, columns)] \
        + [rect.bottom()]
    slices = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    slice_h = max(b - a for a, b in slices)
    gap = 30.0
    width = len(slices) * rect.width() + (len(slices) - 1) * gap
    scale = min(1.0, max_width / width)
    image = QImage(max(1, int(width * scale)), max(1, int(slice_h * scale)), QImage.Format_ARGB32)
    image.fill(QColor(LIGHT.background))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setRenderHint(QPainter.TextAntialiasing)
    for c, (top, bottom) in enumerate(slices):
        source = QRectF(rect.left(), top, rect.width(), bottom - top)
        target = QRectF(c * (rect.width() + gap) * scale, 0, rect.width() * scale, (bottom - top) * scale)
        scene.render(painter, target, source)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    view.deleteLater()
    return bytes(data)


def _free_y(view, y: float) -> float:
    """The height nearest ``y`` that cuts through no box (columns never split a layer in two)."""
    spans = sorted((b.sceneBoundingRect().top(), b.sceneBoundingRect().bottom()) for b in view.boxes.values())
    inside = [(top, bottom) for top, bottom in spans if top - 4 <= y <= bottom + 4]
    if not inside:
        return y
    top, bottom = min(t for t, _ in inside), max(b for _, b in inside)
    return top - 8 if y - top < bottom - y else bottom + 8
