"""Live charts (pyqtgraph): accuracy against size or latency with the Pareto front, and training curves.

Only ever updated from the GUI thread: workers hand their results to slots that call :meth:`VariantChart.set_points`
or :meth:`TrainingCurves.add`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from workbench.core.pareto import pareto_front
from workbench.core.report import human_bytes


@dataclass
class ChartPoint:
    """One variant as the charts see it. ``accuracy`` in percent; a ``None`` coordinate leaves the point out."""

    id: str
    label: str
    parent: str | None = None
    accuracy: float | None = None
    size_bytes: float | None = None
    latency_ms: float | None = None
    measured: bool = True  # False when a coordinate is projected (estimated) rather than measured
    detail: str = ""


PREVIEW_ID = "estimate"  # the id of the Compress panel's estimate point (see MainWindow._preview_estimate)
FOCUS_POINTS = 15.0  # variants this many top-1 points below the best are drawn on the lower edge (see _focus)
AXES = {"size": ("Size on disk", "size_bytes", "bytes"), "latency": ("Latency p50", "latency_ms", "ms")}


def _x(point: ChartPoint, axis: str) -> float | None:
    return getattr(point, AXES[axis][1])


class _CostAxis(pg.AxisItem):
    """Bottom axis that writes sizes as kB/MB and undoes the log scale in its labels."""

    def __init__(self, chart: "VariantChart"):
        super().__init__("bottom")
        self.chart = chart

    def tickStrings(self, values, scale, spacing):
        if not self.chart.has_points:  # an empty chart shows no made-up scale
            return ["" for _ in values]
        logged = self.chart.log_x.isChecked()
        out = []
        for v in values:
            value = 10 ** v if logged else v
            if self.chart.axis == "size":
                out.append(human_bytes(int(round(value))) if value >= 0 else "")
            else:
                out.append(f"{value:.3g}")
        return out


class VariantChart(QWidget):
    """Accuracy (y) against size or latency (x): one point per variant, lineage lines, the Pareto front.

    Filled points are measured, hollow ones estimated. Hover shows the variant; a click emits ``selected(id)``.
    """

    selected = Signal(str)

    def __init__(self, axis: str = "size", parent=None):
        super().__init__(parent)
        self.hint = ""  # a sentence the window adds to the note (e.g. that accuracy needs a dataset)
        self.points: dict[str, ChartPoint] = {}
        self.current: str | None = None
        self.has_points = False
        self.axis_combo = QComboBox(self)
        for key, (label, _, _) in AXES.items():
            self.axis_combo.addItem(f"Accuracy vs {label.lower()}", key)
        self.axis_combo.setCurrentIndex(list(AXES).index(axis))
        self.axis_combo.currentIndexChanged.connect(self._redraw)
        self.log_x = QCheckBox("log x", self)
        self.log_x.toggled.connect(self._redraw)
        self.show_all = QCheckBox("all points", self)
        self.show_all.setToolTip("Show the whole accuracy range instead of focusing on the accurate variants")
        self.show_all.toggled.connect(self._redraw)
        self._floor: float | None = None
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Save the chart as PNG or SVG")
        self.export_button.clicked.connect(self._export_clicked)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.plot = pg.PlotWidget(self, axisItems={"bottom": _CostAxis(self)})
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("left", "top-1 accuracy (%)")
        for axis_name in ("bottom", "left"):
            self.plot.getAxis(axis_name).enableAutoSIPrefix(False)
        self.lineage = pg.PlotCurveItem(connect="pairs")
        self.front = pg.PlotCurveItem()
        self.measured = pg.ScatterPlotItem(size=11, hoverable=True, tip=self._tip)
        self.estimated = pg.ScatterPlotItem(size=11, hoverable=True, tip=self._tip)
        self.highlight = pg.ScatterPlotItem(size=19)
        for item in (self.lineage, self.front, self.highlight, self.measured, self.estimated):
            self.plot.addItem(item)
        self.measured.sigClicked.connect(self._clicked)
        self.plot.getViewBox().sigResized.connect(self._place_labels)
        self.plot.getViewBox().sigRangeChanged.connect(self._place_labels)
        self.estimated.sigClicked.connect(self._clicked)
        self.labels: list[pg.TextItem] = []
        top = QHBoxLayout()
        top.addWidget(self.axis_combo, 1)
        top.addWidget(self.log_x)
        top.addWidget(self.show_all)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self.set_theme_colors("#ffffff", "#1d232c", "#1c7ed6", "#e8590c")

    # ---- appearance --------------------------------------------------------------------------------------
    def set_theme_colors(self, background: str, foreground: str, accent: str, front: str) -> None:
        self.colors = {"bg": background, "fg": foreground, "accent": accent, "front": front}
        self.plot.setBackground(background)
        for axis_name in ("bottom", "left"):
            ax = self.plot.getAxis(axis_name)
            ax.setPen(foreground)
            ax.setTextPen(foreground)
        muted = QColor(foreground)
        muted.setAlpha(90)
        self.lineage.setPen(pg.mkPen(muted, width=1))
        self.front.setPen(pg.mkPen(front, width=2, style=Qt.DashLine))
        self.measured.setPen(pg.mkPen(background, width=1))
        self.measured.setBrush(pg.mkBrush(accent))
        self.estimated.setPen(pg.mkPen(accent, width=2))
        self.estimated.setBrush(pg.mkBrush(background))
        self.highlight.setPen(pg.mkPen(front, width=2.5))
        self.highlight.setBrush(pg.mkBrush(None))
        self._redraw()

    @property
    def axis(self) -> str:
        return self.axis_combo.currentData()

    def set_axis(self, axis: str) -> None:
        self.axis_combo.setCurrentIndex(list(AXES).index(axis))

    # ---- data --------------------------------------------------------------------------------------------
    def set_points(self, points: list[ChartPoint]) -> None:
        """Replace every point (cheap enough for thousands: one array upload per item)."""
        self.points = {p.id: p for p in points}
        self._redraw()

    def select(self, variant_id: str | None) -> None:
        self.current = variant_id
        self._draw_highlight()

    def plotted(self) -> list[ChartPoint]:
        """The points with both coordinates on the current axis."""
        return [p for p in self.points.values() if p.accuracy is not None and _x(p, self.axis) is not None]

    def front_ids(self, shown: list[ChartPoint] | None = None) -> list[str]:
        shown = self.plotted() if shown is None else shown
        return pareto_front([(p.id, _x(p, self.axis), p.accuracy) for p in shown if p.measured])

    def _coords(self, point: ChartPoint) -> tuple[float, float]:
        x = float(_x(point, self.axis))
        if self.log_x.isChecked():
            x = math.log10(max(x, 1e-9))
        y = float(point.accuracy)
        return x, y if self._floor is None else max(y, self._floor)

    def _off_scale(self, point: ChartPoint) -> bool:
        return self._floor is not None and point.accuracy < self._floor

    def _missing_note(self, shown) -> str:
        """Which points this axis cannot place: variants not yet measured on it, and the Compress panel's estimate
        (it projects size, never latency)."""
        ids = {p.id for p in shown}
        missing = [p for p in self.points.values() if p.id not in ids]
        preview = sum(p.id == PREVIEW_ID for p in missing)
        variants = len(missing) - preview
        parts = []
        if variants:
            parts.append(f"{variants} variant{'s' if variants != 1 else ''} not yet measured on this axis.")
        if preview:
            parts.append("The Compress panel's estimate is on the size chart only.")
        return "".join(" " + part for part in parts)

    def _focus(self, shown: list[ChartPoint]) -> float | None:
        """The lower edge of the accuracy axis when a collapsed variant (say 10 % before fine-tuning) would squash
        the useful ones into a line; None shows everything. Off-scale points sit on the edge as triangles."""
        if self.show_all.isChecked() or not shown:
            return None
        best = max(p.accuracy for p in shown)
        near = [p.accuracy for p in shown if p.accuracy >= best - FOCUS_POINTS]
        if len(near) < 2 or len(near) == len(shown):
            return None
        return min(near) - max(0.5, 0.1 * (best - min(near)))

    def _redraw(self, *_) -> None:
        label, _, unit = AXES[self.axis]
        logged = self.log_x.isChecked()
        self.plot.setLabel("bottom", f"{label.lower()}{' (log scale)' if logged else ''}"
                                     + ("" if self.axis == "size" else f" ({unit})"))
        shown = self.plotted()
        self.has_points = bool(shown)
        self._floor = self._focus(shown)
        coords = {p.id: self._coords(p) for p in shown}
        for group, item in ((True, self.measured), (False, self.estimated)):
            chosen = [p for p in shown if p.measured is group]
            xy = np.array([coords[p.id] for p in chosen], dtype=float).reshape(-1, 2)
            symbols = ["t" if self._off_scale(p) else "o" for p in chosen]
            item.setData(x=xy[:, 0], y=xy[:, 1], data=[p.id for p in chosen], symbol=symbols)
        pairs = [(coords[p.parent], coords[p.id]) for p in shown if p.parent in coords]
        seg = np.array([c for pair in pairs for c in pair], dtype=float).reshape(-1, 2)
        self.lineage.setData(seg[:, 0], seg[:, 1])
        corners = []  # a staircase: nothing is reachable above-left of it
        for i in self.front_ids(shown):
            x, y = coords[i]
            if corners:
                corners.append((x, corners[-1][1]))
            corners.append((x, y))
        front = np.array(corners, dtype=float).reshape(-1, 2)
        self.front.setData(front[:, 0], front[:, 1])
        for item in self.labels:
            self.plot.removeItem(item)
        self.labels = []
        if len(shown) <= 40:  # names beside the points while they stay readable
            for p in shown:
                label = p.label + (f" ({p.accuracy:.1f} %, off scale)" if self._off_scale(p) else "")
                text = pg.TextItem(label, color=self.colors["fg"], anchor=(0, 1))
                text.setPos(*self._coords(p))
                text.point_id = p.id
                self.plot.addItem(text)
                self.labels.append(text)
        measured = sum(p.measured for p in shown)
        off = sum(self._off_scale(p) for p in shown)
        self.note.setText(f"{len(shown)} variant{'' if len(shown) == 1 else 's'} plotted ({measured} measured ● , {len(shown) - measured} "
                          f"estimated ○); dashed: Pareto front of the measured ones."
                          + (f" {off} far less accurate shown on the lower edge (▼); tick 'all points' for the "
                             "full scale." if off else "")
                          + self._missing_note(shown) + (f" {self.hint}" if self.hint else ""))
        self._draw_highlight()
        if not shown:
            self.plot.setYRange(0, 100)
        elif self._floor is not None:
            best = max(p.accuracy for p in shown)
            self.plot.setYRange(self._floor, best + max(0.3, 0.05 * (best - self._floor)), padding=0.02)
        elif max(p.accuracy for p in shown) - min(p.accuracy for p in shown) < 1e-6:
            y = shown[0].accuracy  # one level (often one point): a readable band, not float noise on the ticks
            self.plot.setYRange(y - 1.0, y + 1.0, padding=0)
        else:
            self.plot.enableAutoRange(axis="y")
            self.plot.getViewBox().updateAutoRange()
        xs = [coords[p.id][0] for p in shown]
        if xs and max(xs) - min(xs) < 1e-9 * max(1.0, abs(xs[0])):  # one size or latency: centre it
            half = 0.1 if self.log_x.isChecked() else max(abs(xs[0]) * 0.2, 1e-9)
            self.plot.setXRange(xs[0] - half, xs[0] + half, padding=0)
        else:
            self.plot.enableAutoRange(axis="x")
            self.plot.getViewBox().updateAutoRange()
        self._place_labels()

    def _place_labels(self, *_) -> None:
        """Put each name where it overlaps no other name: right-above its point, else right-below, left-above,
        left-below (positions in screen pixels, so it holds at any zoom)."""
        vb = self.plot.getViewBox()
        metrics = QFontMetricsF(QFont())
        taken: list[QRectF] = []
        area = vb.sceneBoundingRect()
        for text in sorted(self.labels, key=lambda t: -t.pos().y()):
            anchor_at = vb.mapViewToScene(QPointF(text.pos().x(), text.pos().y()))
            w, h = metrics.horizontalAdvance(text.toPlainText()) + 6, metrics.height() + 2
            choice = (0, 1)
            for ax, ay in ((0, 1), (0, 0), (1, 1), (1, 0)):
                rect = QRectF(anchor_at.x() - ax * w, anchor_at.y() - ay * h, w, h)
                inside = rect.left() >= area.left() and rect.right() <= area.right()
                if inside and not any(rect.intersects(r) for r in taken):
                    choice = (ax, ay)
                    break
            text.setAnchor(choice)
            taken.append(QRectF(anchor_at.x() - choice[0] * w, anchor_at.y() - choice[1] * h, w, h))

    def _draw_highlight(self) -> None:
        p = self.points.get(self.current or "")
        if p is not None and p.accuracy is not None and _x(p, self.axis) is not None:
            x, y = self._coords(p)
            self.highlight.setData([x], [y])
        else:
            self.highlight.setData([], [])

    def _tip(self, x, y, data) -> str:
        p = self.points.get(data)
        if p is None:
            return ""
        size = human_bytes(p.size_bytes) if p.size_bytes is not None else "—"
        latency = f"{p.latency_ms:.3f} ms" if p.latency_ms is not None else "not measured"
        kind = "measured" if p.measured else "estimated"
        return (f"{p.label} ({kind})\naccuracy {p.accuracy:.2f} %\nsize {size}\nlatency p50 {latency}"
                + (f"\n{p.detail}" if p.detail else ""))

    def _clicked(self, item, spots, *_) -> None:
        if spots:
            variant_id = spots[0].data()
            self.select(variant_id)
            self.selected.emit(variant_id)

    # ---- export ------------------------------------------------------------------------------------------
    def export(self, path: Path) -> Path:
        """Write the chart as PNG or SVG (by the suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".png", ".svg"):
            raise ValueError(f"cannot export a chart as '{path.suffix}': use .png or .svg")
        size = self.plot.size()
        if suffix == ".png":
            scale = max(1.0, 1600 / max(1, size.width()))  # print-sharp whatever the window size
            image = QImage(int(size.width() * scale), int(size.height() * scale), QImage.Format_ARGB32)
            image.fill(QColor(self.colors["bg"]))
            painter = QPainter(image)
            painter.setRenderHint(QPainter.Antialiasing)
            painter.scale(scale, scale)
            self.plot.render(painter)
            painter.end()
            if not image.save(str(path)):
                raise OSError(f"could not write {path}")
        else:
            # Qt's SVG generator paints the widget as vectors (pyqtgraph's own SVG exporter fails on Qt 6.11 paths)
            from PySide6.QtSvg import QSvgGenerator

            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(size)
            generator.setViewBox(self.plot.rect())
            generator.setTitle("Model Workbench chart")
            painter = QPainter(generator)
            self.plot.render(painter)
            painter.end()
        return path

    def _export_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export chart", f"chart-{self.axis}.png",
                                              "PNG image (*.png);;SVG drawing (*.svg)")
        if name:
            self.export(Path(name))


class TrainingCurves(QWidget):
    """Loss and validation accuracy against epoch, fed live from a training method's progress metrics."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel(self)
        self.loss_plot = pg.PlotWidget(self)
        self.acc_plot = pg.PlotWidget(self)
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        for plot, label in ((self.loss_plot, "loss"), (self.acc_plot, "val accuracy (%)")):
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", label)
            plot.addLegend(offset=(-10, 10))
        row = QHBoxLayout()
        row.addWidget(self.loss_plot)
        row.addWidget(self.acc_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        self.colors = {"train loss": "#1c7ed6", "val loss": "#e8590c", "val accuracy": "#2f9e44"}
        self.set_theme_colors("#ffffff", "#1d232c")
        self.start("No training yet")

    def set_theme_colors(self, background: str, foreground: str) -> None:
        for plot in (self.loss_plot, self.acc_plot):
            plot.setBackground(background)
            for axis_name in ("bottom", "left"):
                ax = plot.getAxis(axis_name)
                ax.setPen(foreground)
                ax.setTextPen(foreground)

    def start(self, title: str) -> None:
        """Clear the curves for a new run."""
        self.title.setText(title)
        for plot in (self.loss_plot, self.acc_plot):
            plot.clear()
            legend = plot.getPlotItem().legend
            if legend is not None:
                legend.clear()
        self.series = {}
        self.curves = {}

    def add(self, metrics: dict[str, float]) -> None:
        """Append one progress point: ``epoch`` plus any of train loss / val loss / val accuracy."""
        epoch = metrics.get("epoch")
        if epoch is None:
            return
        for name, value in metrics.items():
            if name == "epoch" or value is None or not math.isfinite(value):
                continue
            xs, ys = self.series.setdefault(name, ([], []))
            xs.append(float(epoch))
            ys.append(100.0 * value if "accuracy" in name else float(value))
            curve = self.curves.get(name)
            if curve is None:
                plot = self.acc_plot if "accuracy" in name else self.loss_plot
                color = self.colors.get(name, "#868e96")
                curve = plot.plot([], [], name=name, pen=pg.mkPen(color, width=2),
                                  symbol="o" if name.startswith("val") else None, symbolSize=6,
                                  symbolBrush=color)
                self.curves[name] = curve
            curve.setData(xs, ys)
