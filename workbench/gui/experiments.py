"""Experiments in the window: the variants tree/table, the live charts and the layer comparison of two variants.

The project (``workbench.core.project``) is changed by core code, partly on worker threads (a running step records
its variant as it goes). Its listener only emits a Qt signal; every widget update happens on the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTabWidget, QTableWidget, QTableWidgetItem, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from workbench.core.report import human, human_bytes
from workbench.core.variants import MEASURED, Variant

from .charts import ChartPoint, VariantChart

COLUMNS = ["Variant", "Step", "Status", "Params", "MACs", "Size", "Top-1 (%)", "Latency p50 (ms)"]


class ProjectSignals(QObject):
    """Carries project changes from any thread to the GUI thread."""

    changed = Signal(object)


def _defaults(method_id: str) -> dict:
    from workbench.core import methods

    try:
        return methods.get(method_id).parse_params({}).model_dump()
    except Exception:  # noqa: BLE001 - an uninstalled plugin: show every parameter
        return {}


def step_label(step) -> str:
    """A step with the parameters that differ from the method's defaults: ``prune.channels (ratio=0.5)``."""
    defaults = _defaults(step.method)
    params = ", ".join(f"{k}={val}" for k, val in step.params.items() if defaults.get(k, object()) != val)
    overrides = f" +{len(step.overrides)} per-layer" if step.overrides else ""
    return f"{step.method}" + (f" ({params})" if params else "") + overrides


def step_text(v: Variant) -> str:
    """The variant's step, short (the full parameter set is in the tooltip)."""
    return "—" if v.step is None else step_label(v.step)


def _figure(fig, fmt) -> tuple[str, str]:
    if fig is None:
        return "—", "not known yet"
    if fig.provenance == MEASURED:
        return fmt(fig.value), "counted from the file (size: bytes on disk)"
    return "≈ " + fmt(fig.value), "estimated by the method before running"


def latest_accuracy(v: Variant):
    return v.accuracy[-1] if v.accuracy else None


def latency_on(v: Variant, device: str = "local"):
    return v.latency_by_device().get(device)


def chart_points(variants: list[Variant], device: str = "local") -> list[ChartPoint]:
    """One point per variant. A planned variant is drawn hollow at its estimated size with its parent's measured
    accuracy until it is measured itself (the tip says so)."""
    by_id = {v.id: v for v in variants}
    points = []
    for v in variants:
        acc = latest_accuracy(v)
        lat = latency_on(v, device)
        size = v.size_bytes.value if v.size_bytes else None
        measured = acc is not None and v.size_bytes is not None and v.size_bytes.provenance == MEASURED
        detail = step_text(v)
        accuracy = 100 * acc.top1 if acc else None
        if acc is None and v.status in ("planned", "running") and v.parent in by_id:
            parent_acc = latest_accuracy(by_id[v.parent])
            if parent_acc is not None:
                accuracy = 100 * parent_acc.top1
                detail += "\naccuracy: the parent's, until this variant is measured"
        if acc is not None:
            detail += f"\nmeasured on {acc.samples} samples of {acc.dataset} ({acc.runtime})"
        if lat is not None:
            detail += f"\nlatency measured on {lat.device_name or lat.device}: {lat.runs} runs, {lat.threads} thread(s)"
        points.append(ChartPoint(v.id, v.name, v.parent, accuracy, size, lat.p50 if lat else None, measured, detail))
    return points


class _Item(QTreeWidgetItem):
    """Sorts numeric columns by value."""

    def __lt__(self, other):
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        a, b = self.data(column, Qt.UserRole), other.data(column, Qt.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return self.text(column) < other.text(column)


class VariantsPanel(QWidget):
    """The experiment tree as a table: one row per variant under its parent, figures marked measured/estimated."""

    variant_selected = Signal(str)
    compare_requested = Signal(str, str)
    measure_requested = Signal(str)
    remove_requested = Signal(str)
    recipe_requested = Signal(str)
    rename_requested = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.items: dict[str, _Item] = {}
        self._quiet = False
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(1, QHeaderView.Stretch)
        self.tree.header().setStretchLastSection(False)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemChanged.connect(self._item_changed)
        self.measure_button = QPushButton("Measure", self)
        self.measure_button.setToolTip("Measure accuracy (validation split) and latency (this machine) again")
        self.compare_button = QPushButton("Compare two", self)
        self.compare_button.setToolTip("Select two variants (Ctrl+click) to compare them layer by layer")
        self.recipe_button = QPushButton("Save recipe…", self)
        self.recipe_button.setToolTip("Save the steps from the base model to this variant as a YAML recipe")
        self.remove_button = QPushButton("Remove", self)
        self.measure_button.clicked.connect(lambda: self._emit_one(self.measure_requested))
        self.recipe_button.clicked.connect(lambda: self._emit_one(self.recipe_requested))
        self.remove_button.clicked.connect(lambda: self._emit_one(self.remove_requested))
        self.compare_button.clicked.connect(self._compare)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.measure_button, self.compare_button, self.recipe_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        self._update_buttons()

    def set_variants(self, variants: list[Variant], current: str | None) -> None:
        """Rebuild the rows (cheap: a project holds tens to hundreds of variants)."""
        self._quiet = True
        try:
            self.tree.clear()
            self.items = {}
            pending = list(variants)
            while pending:  # parents first, whatever the order of the records
                progressed = False
                for v in list(pending):
                    if v.parent is None or v.parent in self.items or v.parent not in {p.id for p in variants}:
                        item = _Item(self.items[v.parent] if v.parent in self.items else self.tree)
                        self._fill(item, v)
                        self.items[v.id] = item
                        pending.remove(v)
                        progressed = True
                if not progressed:
                    break
            self.tree.expandAll()
            for c in range(len(COLUMNS)):
                if c != 1:
                    self.tree.resizeColumnToContents(c)
            if current in self.items:
                self.items[current].setSelected(True)
                self.tree.setCurrentItem(self.items[current])
        finally:
            self._quiet = False
        done = sum(v.status == "done" for v in variants)
        running = [v.name for v in variants if v.status == "running"]
        self.summary.setText(f"{len(variants)} variant{'' if len(variants) == 1 else 's'}, {done} measured" +
                             (f"; running: {', '.join(running)}" if running else "") +
                             ". ≈ marks an estimate; other figures are measured or counted from the file.")
        self._update_buttons()

    def _fill(self, item: _Item, v: Variant) -> None:
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        item.setData(0, Qt.UserRole + 1, v.id)
        item.setText(0, v.name)
        item.setToolTip(0, f"{v.id}: {v.name}")
        item.setText(1, step_text(v))
        if v.step is not None:
            item.setToolTip(1, f"{v.step.method}: " + ", ".join(f"{k}={val}" for k, val in v.step.params.items())
                            + (f"; per layer: {v.step.overrides}" if v.step.overrides else ""))
        item.setText(2, v.status)
        if v.error:
            item.setToolTip(2, v.error)
            item.setForeground(2, QColor("#c92a2a"))
        for col, fig, fmt in ((3, v.params, human), (4, v.macs, human), (5, v.size_bytes, human_bytes)):
            text, tip = _figure(fig, fmt)
            item.setText(col, text)
            item.setToolTip(col, tip)
            item.setData(col, Qt.UserRole, fig.value if fig else -1)
            item.setTextAlignment(col, Qt.AlignRight | Qt.AlignVCenter)
        acc = latest_accuracy(v)
        item.setText(6, f"{100 * acc.top1:.2f}" if acc else "—")
        item.setData(6, Qt.UserRole, acc.top1 if acc else -1.0)
        if acc:
            item.setToolTip(6, f"measured: top-1 {100 * acc.top1:.2f} %, top-5 {100 * acc.top5:.2f} %, loss "
                               f"{acc.loss:.4f} on {acc.samples} samples of {acc.dataset} ({acc.runtime})")
        lat = v.latency[-1] if v.latency else None
        item.setText(7, f"{lat.p50:.3f}" if lat else "—")
        item.setData(7, Qt.UserRole, lat.p50 if lat else -1.0)
        if lat:
            item.setToolTip(7, "measured: " + "; ".join(
                f"{m.device_name or m.device}: p50 {m.p50:.3f} ms, p90 {m.p90:.3f}, p99 {m.p99:.3f} "
                f"({m.runs} runs, {m.threads} thread(s))" for m in v.latency))
        for col in (6, 7):
            item.setTextAlignment(col, Qt.AlignRight | Qt.AlignVCenter)

    def selected_ids(self) -> list[str]:
        return [i.data(0, Qt.UserRole + 1) for i in self.tree.selectedItems()]

    def select(self, variant_id: str) -> None:
        item = self.items.get(variant_id)
        if item is None:
            return
        self._quiet = True
        try:
            self.tree.clearSelection()
            item.setSelected(True)
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)
        finally:
            self._quiet = False
        self._update_buttons()

    def _selection_changed(self) -> None:
        self._update_buttons()
        ids = self.selected_ids()
        if not self._quiet and len(ids) == 1:
            self.variant_selected.emit(ids[0])

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._quiet or column != 0:
            return
        variant_id = item.data(0, Qt.UserRole + 1)
        name = item.text(0).strip()
        if name:
            self.rename_requested.emit(variant_id, name)

    def _update_buttons(self) -> None:
        n = len(self.selected_ids())
        for b in (self.measure_button, self.recipe_button, self.remove_button):
            b.setEnabled(n == 1)
        self.compare_button.setEnabled(n == 2)

    def _emit_one(self, signal) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            signal.emit(ids[0])

    def _compare(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 2:
            self.compare_requested.emit(ids[0], ids[1])


class ExperimentCharts(QWidget):
    """Accuracy vs size and accuracy vs latency side by side in tabs; a click selects the variant."""

    selected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.preview: ChartPoint | None = None
        self._points: list[ChartPoint] = []
        self._current: str | None = None
        self.tabs = QTabWidget(self)
        self.size_chart = VariantChart("size", self)
        self.latency_chart = VariantChart("latency", self)
        for chart, title in ((self.size_chart, "Accuracy vs size"), (self.latency_chart, "Accuracy vs latency")):
            chart.axis_combo.hide()  # each tab has its axis
            chart.selected.connect(self.selected)
            self.tabs.addTab(chart, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def charts(self) -> tuple[VariantChart, VariantChart]:
        return self.size_chart, self.latency_chart

    def set_variants(self, variants: list[Variant], current: str | None) -> None:
        self._points = chart_points(variants)
        self._current = current
        self._draw()

    def set_hint(self, text: str) -> None:
        """A sentence under both charts (e.g. what to do when nothing can be plotted yet)."""
        if all(chart.hint == text for chart in self.charts()):
            return
        for chart in self.charts():
            chart.hint = text
        self._draw()

    def set_preview(self, point: ChartPoint | None) -> None:
        """A hollow point where the Compress panel's estimate would put the next variant (None removes it)."""
        self.preview = point
        self._draw()

    def _draw(self) -> None:
        points = self._points + ([self.preview] if self.preview is not None else [])
        for chart in self.charts():
            chart.set_points(points)
            chart.select(self._current)

    def select(self, variant_id: str | None) -> None:
        for chart in self.charts():
            chart.select(variant_id)

    def set_theme_colors(self, background: str, foreground: str, accent: str, front: str) -> None:
        for chart in self.charts():
            chart.set_theme_colors(background, foreground, accent, front)


class CompareDialog(QDialog):
    """Two variants side by side: totals and the layers whose params or MACs changed, removed or added."""

    def __init__(self, a: Variant, b: Variant, comparison, graph_a, graph_b, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare {a.name} and {b.name}")
        self.resize(900, 600)
        totals = QTableWidget(4, 3, self)
        totals.setHorizontalHeaderLabels([a.name, b.name, "change"])
        totals.setVerticalHeaderLabels(["Params (counted)", "MACs (counted)", "Top-1 (%) measured",
                                        "Latency p50 (ms) measured"])
        acc_a, acc_b = latest_accuracy(a), latest_accuracy(b)
        lat_a, lat_b = (a.latency[-1] if a.latency else None), (b.latency[-1] if b.latency else None)
        rows = [(graph_a.params, graph_b.params, human), (graph_a.macs, graph_b.macs, human),
                (100 * acc_a.top1 if acc_a else None, 100 * acc_b.top1 if acc_b else None, lambda x: f"{x:.2f}"),
                (lat_a.p50 if lat_a else None, lat_b.p50 if lat_b else None, lambda x: f"{x:.3f}")]
        for r, (x, y, fmt) in enumerate(rows):
            totals.setItem(r, 0, QTableWidgetItem(fmt(x) if x is not None else "—"))
            totals.setItem(r, 1, QTableWidgetItem(fmt(y) if y is not None else "—"))
            if x is not None and y is not None:
                change = f"{(y - x) / x * 100:+.1f} %" if r < 2 and x else f"{y - x:+.3f}"
                totals.setItem(r, 2, QTableWidgetItem(change))
        totals.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        totals.setMaximumHeight(150)
        changed = comparison.changed
        self.layers = QTableWidget(len(changed), 7, self)
        self.layers.setHorizontalHeaderLabels(["Layer", "Op", f"Params {a.name}", f"Params {b.name}", "Δ params",
                                               f"MACs {a.name}", f"MACs {b.name}"])
        for r, row in enumerate(changed):
            values = [row.name, row.op_type, human(row.params_a), human(row.params_b), f"{row.params_delta:+,}",
                      human(row.macs_a), human(row.macs_b)]
            for c, text in enumerate(values):
                self.layers.setItem(r, c, QTableWidgetItem(text))
        self.layers.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.layers.verticalHeader().setVisible(False)
        self.layers.setEditTriggers(QTableWidget.NoEditTriggers)
        note = QLabel(f"{len(changed)} layers changed, {len(comparison.removed)} only in {a.name}, "
                      f"{len(comparison.added)} only in {b.name}. Layers are matched by name; params and MACs are "
                      "counted from the files." +
                      (f"\nOnly in {a.name}: {', '.join(comparison.removed[:12])}"
                       f"{' …' if len(comparison.removed) > 12 else ''}" if comparison.removed else "") +
                      (f"\nOnly in {b.name}: {', '.join(comparison.added[:12])}"
                       f"{' …' if len(comparison.added) > 12 else ''}" if comparison.added else ""), self)
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(totals)
        layout.addWidget(note)
        layout.addWidget(self.layers, 1)
        layout.addWidget(buttons)
