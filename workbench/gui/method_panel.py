"""The Compress panel: pick a method, set its parameters (generated form), see the estimate, apply on a worker."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from workbench.core import methods as registry
from workbench.core.errors import WorkbenchError
from workbench.core.report import human, human_bytes

from .params_form import ParamsForm

log = logging.getLogger("workbench.gui")


class MethodPanel(QWidget):
    """Signals ``apply_requested(method_id, values, overrides, data_spec)`` and ``cancel_requested()``."""

    apply_requested = Signal(str, dict, dict, str)
    cancel_requested = Signal()
    estimated = Signal(object, object)  # (method, Estimate) as the values change; (None, None) when there is none

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph = None
        self.form: ParamsForm | None = None
        self.overrides: dict[str, dict] = {}
        self.method_combo = QComboBox(self)
        for method in sorted(registry.methods().values(), key=lambda m: (m.kind, m.id)):
            self.method_combo.addItem(f"{method.label}  ({method.id})", method.id)
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setMinimumWidth(120)
        self.method_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.method_combo.setMinimumContentsLength(16)
        self.form_box = QVBoxLayout()
        self.estimate_label = QLabel(self)
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(Qt.RichText)
        self.data_combo = QComboBox(self)
        self.data_combo.addItem("The project's dataset", "")
        self.data_combo.addItem("Demo digits (bundled)", "demo")
        self.data_combo.addItem("Choose .npz…", "choose")
        self.data_combo.setToolTip("Data for calibration, fine-tuning and measuring; choosing other data here "
                                   "sets the project's dataset (File › Project dataset… for image folders)")
        self.data_combo.activated.connect(self._data_chosen)
        self.data_combo.currentIndexChanged.connect(self._update_data_note)
        self.project_dataset: str | None = None  # what the project's dataset is, in words (None: it has none)
        self.data_note = QLabel(self)
        self.data_note.setWordWrap(True)
        self.data_note.hide()
        self.override_table = QTableWidget(0, 3, self)
        self.override_table.setHorizontalHeaderLabels(["Layer", "Parameter", "Value"])
        self.override_table.horizontalHeader().setStretchLastSection(True)
        self.override_table.verticalHeader().setVisible(False)
        self.override_table.setMaximumHeight(110)
        self.remove_override = QPushButton("Remove override", self)
        self.remove_override.clicked.connect(self._remove_selected_override)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setDefault(True)
        self.apply_button.clicked.connect(self._apply)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.suggestion_button = QPushButton("Use the mixed-precision suggestion in quantize.bits", self)
        self.suggestion_button.hide()
        self.suggestion_button.clicked.connect(self._use_suggestion)
        self.suggestion: dict = {}
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(QLabel("<b>Method</b>", self))
        layout.addWidget(self.method_combo)
        layout.addWidget(self.description)
        layout.addLayout(self.form_box)
        data_row = QHBoxLayout()
        data_row.addWidget(QLabel("Data", self))
        data_row.addWidget(self.data_combo, 1)
        layout.addLayout(data_row)
        layout.addWidget(self.data_note)
        layout.addWidget(QLabel("Per-layer overrides (right-click a layer in the graph)", self))
        layout.addWidget(self.override_table)
        layout.addWidget(self.remove_override)
        layout.addWidget(self.estimate_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.suggestion_button)
        layout.addStretch(1)
        failed = registry.failed()
        if failed:
            self.status.setText("Plugins that failed to load: " + "; ".join(f"{r.name} ({r.error})" for r in failed))
        self.set_running(False)
        self._method_changed()

    # ---- state -------------------------------------------------------------------------------------------
    @property
    def method(self):
        mid = self.method_combo.currentData()
        return registry.methods().get(mid) if mid else None

    def select_method(self, method_id: str) -> None:
        i = self.method_combo.findData(method_id)
        if i >= 0:
            self.method_combo.setCurrentIndex(i)

    def set_graph(self, graph) -> None:
        self.graph = graph
        self.overrides.clear()
        self._refresh_overrides()
        self.update_estimate()

    def set_running(self, running: bool) -> None:
        self.apply_button.setEnabled(not running and self.method is not None)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)

    def show_progress(self, p) -> None:
        if p.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(100 * p.fraction))
        self.progress.setFormat(p.message[:80])

    def data_spec(self) -> str:
        return self.data_combo.currentData() or ""

    def set_project_dataset(self, description: str | None) -> None:
        """Name the project's dataset in the Data choice (None: the project has none yet)."""
        self.project_dataset = description
        self.data_combo.setItemText(0, f"The project's dataset ({description or 'none yet'})")
        self._update_data_note()

    def _update_data_note(self, *_args) -> None:
        method = self.method
        missing = (method is not None and method.needs_data and not self.data_spec()
                   and self.project_dataset is None)
        self.data_note.setText("<span style='color:#e8590c'>This method needs data and the project has none: pick "
                               "the demo digits or an .npz here, or an image folder in File › Project dataset…"
                               "</span>" if missing else "")
        self.data_note.setVisible(missing)

    # ---- form --------------------------------------------------------------------------------------------
    def _method_changed(self, *_):
        if self.form is not None:
            self.form.hide()  # never a stray top-level window while it waits for deletion
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        method = self.method
        if method is None:
            self.description.setText("No compression methods are installed.")
            return
        self.description.setText(method.description or "")
        self.form = ParamsForm(method.Params, self)
        self.form.changed.connect(self.update_estimate)
        self.form_box.addWidget(self.form)
        self.overrides = {k: {f: v for f, v in d.items() if f in method.Params.per_layer_fields()}
                          for k, d in self.overrides.items()}
        self.overrides = {k: d for k, d in self.overrides.items() if d}
        self._refresh_overrides()
        self.set_running(False)
        self.update_estimate()
        self._update_data_note()

    def params(self):
        return self.method.parse_params(self.form.values())

    def update_estimate(self) -> None:
        method = self.method
        if method is None or self.form is None:
            return
        if self.graph is None:
            self.estimate_label.setText("<i>Open a model to see the estimate.</i>")
            self.estimated.emit(None, None)
            return
        try:
            est = method.estimate(self.graph, self.params())
        except WorkbenchError as exc:
            self.estimate_label.setText(f"<span style='color:#e03131'>{exc.one_line()}</span>")
            self.estimated.emit(None, None)
            return
        except Exception as exc:  # noqa: BLE001 - a plugin's estimate must not break the panel
            self.estimate_label.setText(f"<span style='color:#e03131'>Estimate failed: {exc}</span>")
            self.estimated.emit(None, None)
            return
        g = self.graph
        notes = "".join(f"<br>· {n}" for n in est.notes)
        self.estimate_label.setText(
            f"<b>Estimated</b> (not measured): params {human(g.params)} → {human(est.params)}, "
            f"MACs {human(g.macs)} → {human(est.macs)}, size {human_bytes(est.size_bytes)}{notes}")
        self.last_estimate = est
        self.estimated.emit(method, est)

    # ---- overrides ----------------------------------------------------------------------------------------
    def per_layer_fields(self) -> list[str]:
        return self.method.Params.per_layer_fields() if self.method else []

    def set_override(self, layer: str, field: str, value) -> None:
        self.overrides.setdefault(layer, {})[field] = value
        self._refresh_overrides()

    def _refresh_overrides(self) -> None:
        rows = [(layer, f, v) for layer, d in sorted(self.overrides.items()) for f, v in d.items()]
        self.override_table.setRowCount(len(rows))
        for r, (layer, f, v) in enumerate(rows):
            for c, text in enumerate((layer, f, str(v))):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.override_table.setItem(r, c, item)
        self.remove_override.setEnabled(bool(rows))

    def _remove_selected_override(self) -> None:
        row = self.override_table.currentRow()
        if row < 0:
            return
        layer = self.override_table.item(row, 0).text()
        field = self.override_table.item(row, 1).text()
        self.overrides.get(layer, {}).pop(field, None)
        if not self.overrides.get(layer):
            self.overrides.pop(layer, None)
        self._refresh_overrides()

    def offer_suggestion(self, suggestion: dict) -> None:
        """Show the one-click button that loads a sensitivity run's per-layer bit widths as overrides."""
        self.suggestion = suggestion
        self.suggestion_button.setVisible(bool(suggestion))

    def _use_suggestion(self) -> None:
        self.select_method("quantize.bits")
        for layer, values in self.suggestion.items():
            for field, value in values.items():
                self.set_override(layer, field, value)
        self.suggestion_button.hide()
        self.status.setText(f"{len(self.suggestion)} per-layer bit widths from the sensitivity run; press Apply.")

    # ---- actions ------------------------------------------------------------------------------------------
    def _data_chosen(self, index: int) -> None:
        if self.data_combo.itemData(index) != "choose":
            return
        path, _ = QFileDialog.getOpenFileName(self, "Data for calibration / training", "", "Arrays (*.npz)")
        if path:
            self.data_combo.insertItem(1, path, path)
            self.data_combo.setCurrentIndex(1)
        else:
            self.data_combo.setCurrentIndex(0)

    def _apply(self) -> None:
        try:
            params = self.params()
        except WorkbenchError as exc:
            self.status.setText(exc.one_line())
            return
        self.apply_requested.emit(self.method.id, params.model_dump(), dict(self.overrides), self.data_spec())
