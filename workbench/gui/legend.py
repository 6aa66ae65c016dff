"""The heat-map legend drawn over the graph view's corner: metric, provenance, colour ramp and range."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from workbench.core.metrics import format_value


class Legend(QWidget):
    def __init__(self, view):
        super().__init__(view)
        self.view = view
        self.source = None
        self.scale = None
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.resize(250, 64)
        self.hide()

    def set_scale(self, source, scale) -> None:
        self.source, self.scale = source, scale
        self.setVisible(source is not None)
        self.place()
        self.update()

    def text(self) -> str:
        """What the legend says, for tests and accessibility."""
        if self.source is None or self.scale is None:
            return ""
        return (f"{self.source.label} ({self.source.provenance}), log scale: "
                f"{format_value(self.source, self.scale.lo)} – {format_value(self.source, self.scale.hi)}")

    def place(self) -> None:
        vp = self.view.viewport()
        self.move(vp.x() + 12, vp.y() + vp.height() - self.height() - 12)

    def paintEvent(self, event) -> None:
        if self.source is None or self.scale is None:
            return
        c = self.view.colors
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        bg = QColor(c.node)
        bg.setAlpha(235)
        p.setPen(QPen(c.node_border, 1))
        p.setBrush(bg)
        p.drawRoundedRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1), 6, 6)
        font = QFont()
        font.setPointSizeF(8.5)
        font.setBold(True)
        p.setFont(font)
        p.setPen(c.text)
        p.drawText(QRectF(10, 5, self.width() - 20, 16), Qt.AlignLeft | Qt.AlignVCenter,
                   f"{self.source.label} — {self.source.provenance}")
        ramp = QRectF(10, 25, self.width() - 20, 12)
        grad = QLinearGradient(ramp.topLeft(), ramp.topRight())
        grad.setColorAt(0, c.heat_low)
        grad.setColorAt(1, c.heat_high)
        p.setPen(QPen(c.node_border, 0.8))
        p.setBrush(grad)
        p.drawRect(ramp)
        font.setBold(False)
        font.setPointSizeF(8)
        p.setFont(font)
        p.setPen(c.muted_text)
        row = QRectF(10, 40, self.width() - 20, 16)
        p.drawText(row, Qt.AlignLeft | Qt.AlignVCenter, format_value(self.source, self.scale.lo))
        p.drawText(row, Qt.AlignHCenter | Qt.AlignVCenter, "log scale")
        p.drawText(row, Qt.AlignRight | Qt.AlignVCenter, format_value(self.source, self.scale.hi))
