"""The Devices dock: the device list (this machine and agents) and the latency actions for variants."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QPlainTextEdit, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from .devices_panel import DevicesPanel


class ResultText(QPlainTextEdit):
    """The latest result, read-only and selectable; a long one (every variant of a project) scrolls instead of
    being clipped, as a word-wrapped label in a scrolled dock was."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrameShape(QFrame.NoFrame)
        self.viewport().setAutoFillBackground(False)
        self.setMinimumHeight(8 * self.fontMetrics().height())

    def setText(self, text: str) -> None:  # noqa: N802 - the QLabel name, which callers and tests use
        self.setPlainText(text)

    def text(self) -> str:
        return self.toPlainText()


class LatencyPanel(QWidget):
    """Signals carry the chosen device and run count: ``measure_current``, ``measure_all`` (interleaved rounds),
    ``int8_check`` (will int8 be faster on this device?)."""

    measure_current = Signal(object, int)
    measure_all = Signal(object, int)
    int8_check = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.devices = DevicesPanel(self)
        self.device_combo = QComboBox(self)
        self.runs = QSpinBox(self)
        self.runs.setRange(10, 100000)
        self.runs.setValue(200)
        self.runs.setSuffix(" runs")
        self.current_button = QPushButton("Measure current", self)
        self.current_button.setToolTip("Time the variant shown in the graph on the chosen device")
        self.all_button = QPushButton("Measure all variants", self)
        self.all_button.setToolTip("Every done variant in turn, interleaved in 3 rounds, so load from other work "
                                   "hits all alike")
        self.int8_button = QPushButton("Will int8 be faster here?", self)
        self.result = ResultText(self)
        self.result.setText("Latency is measured with ONNX Runtime, batch 1, one thread (steadier A/B comparisons "
                            "on small machines); p50 is the headline, with p90/p99 and the run count.")
        box = QGroupBox("Latency", self)
        form = QFormLayout(box)
        form.addRow("Device", self.device_combo)
        form.addRow("Timed runs", self.runs)
        row = QHBoxLayout()
        row.addWidget(self.current_button)
        row.addWidget(self.all_button)
        form.addRow(row)
        form.addRow(self.int8_button)
        form.addRow(self.result)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(box)  # what is used most comes first; the device list below is set up once
        devices_box = QGroupBox("Devices", self)
        QVBoxLayout(devices_box).addWidget(self.devices)
        layout.addWidget(devices_box)
        layout.addStretch(1)
        self.devices.devices_changed.connect(self._devices_changed)
        self.current_button.clicked.connect(lambda: self._emit(self.measure_current))
        self.all_button.clicked.connect(lambda: self._emit(self.measure_all))
        self.int8_button.clicked.connect(lambda: self.device() and self.int8_check.emit(self.device()))
        self._devices_changed(self.devices.devices())

    def device(self):
        index = self.device_combo.currentIndex()
        devices = self.devices.devices()
        return devices[index] if 0 <= index < len(devices) else None

    def _devices_changed(self, devices) -> None:
        current = self.device_combo.currentText()
        self.device_combo.clear()
        for d in devices:
            self.device_combo.addItem(d.name)
        index = self.device_combo.findText(current)
        self.device_combo.setCurrentIndex(max(0, index))

    def _emit(self, signal) -> None:
        device = self.device()
        if device is not None:
            signal.emit(device, self.runs.value())

    def set_busy(self, busy: bool) -> None:
        for b in (self.current_button, self.all_button, self.int8_button):
            b.setEnabled(not busy)

    def shutdown(self) -> None:
        self.devices.shutdown()
