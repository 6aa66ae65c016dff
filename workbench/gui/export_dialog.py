"""The export dialog: choose a folder or .zip and options, run the export on a worker, show its validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QVBoxLayout)

from workbench.core.errors import WorkbenchError
from workbench.core.export import ExportRequest, ExportResult, export_package
from workbench.core.export_card import describe_check
from workbench.core.progress import Progress

from .workers import TaskSlot


def validation_text(deploy: dict) -> str:
    """The checks a written package passed, one line each, with tolerances and measured differences."""
    validation = deploy["validation"]
    lines = [f"ONNX checker (full check) passed: {', '.join(validation['onnx_checker']['passed'])}"]
    lines += [describe_check(c) for c in validation["checks"]]
    for m in deploy["metrics"]:
        if m.get("unit") == "fraction":
            lines.append(f"{m.get('model') or 'package'}: {m['name']} {100 * m['value']:.2f} % ({m['provenance']})")
    return "\n".join(lines)


class ExportDialog(QDialog):
    """Exports ``base`` (an ExportRequest whose ``out`` and options the dialog sets). Emits ``exported`` with the
    ExportResult once the package is in place; Cancel stops the export and leaves nothing behind."""

    exported = Signal(object)

    def __init__(self, base: ExportRequest, parent=None):
        super().__init__(parent)
        self.base = base
        self.result: ExportResult | None = None
        self.tasks = TaskSlot(self)
        self.setWindowTitle(f"Export deployment package: {base.info.name}")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{base.info.name}</b> from {Path(base.source.path).name} "
                                f"({base.source.format})", self))

        row = QHBoxLayout()
        self.out_edit = QLineEdit(str(base.out) if base.out else "", self)
        self.out_edit.setPlaceholderText("package folder, or a file ending in .zip")
        folder, zip_button = QPushButton("Folder…", self), QPushButton("Zip file…", self)
        folder.clicked.connect(self._choose_folder)
        zip_button.clicked.connect(self._choose_zip)
        row.addWidget(QLabel("Output", self))
        row.addWidget(self.out_edit, 1)
        row.addWidget(folder)
        row.addWidget(zip_button)
        layout.addLayout(row)

        can_int8 = base.int8 is not None or base.data is not None
        where = "the given int8 model" if base.int8 is not None else (
            f"static, calibrated on {base.data.name}" if base.data is not None else "needs calibration data")
        self.int8_box = QCheckBox(f"Include an int8 model ({where})", self)
        self.int8_box.setEnabled(can_int8)
        self.int8_box.setChecked(can_int8 and (base.make_int8 or base.int8 is not None))
        self.latency_box = QCheckBox(f"Measure latency here ({base.latency_runs} runs per model, 1 thread)", self)
        self.latency_box.setChecked(base.measure_latency)
        self.force_box = QCheckBox("Replace an existing package", self)
        self.force_box.setChecked(base.force)
        for box in (self.int8_box, self.latency_box, self.force_box):
            layout.addWidget(box)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.details = QLabel("", self)
        self.details.setWordWrap(True)
        for widget in (self.progress, self.status, self.details):
            layout.addWidget(widget)

        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.close_button = QPushButton("Close", self)
        self.cancel_button.setEnabled(False)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        buttons.addStretch(1)
        for button in (self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.export_button.setDefault(True)

    # ---- choosing -------------------------------------------------------------------------------------------
    def _choose_folder(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Package folder (created)", self.out_edit.text())
        if path:
            self.out_edit.setText(path)

    def _choose_zip(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Package zip file", self.out_edit.text(), "Zip files (*.zip)")
        if path:
            self.out_edit.setText(path if path.lower().endswith(".zip") else path + ".zip")

    def request(self) -> ExportRequest:
        """The base request with this dialog's output and options."""
        int8 = self.int8_box.isChecked()
        return dataclasses.replace(
            self.base, out=Path(self.out_edit.text().strip()), int8=self.base.int8 if int8 else None,
            make_int8=int8 and self.base.int8 is None, measure_latency=self.latency_box.isChecked(),
            force=self.force_box.isChecked())

    # ---- running --------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.out_edit.text().strip():
            self.status.setText("Choose where to write the package.")
            return
        request = self.request()
        self.result = None
        self.details.setText("")
        self.progress.setValue(0)
        self._set_running(True)
        task = self.tasks.start("export", lambda token: export_package(request, token))
        task.progressed.connect(self._on_progress)
        task.finished.connect(self._on_finished)
        task.failed.connect(self._on_failed)

    def cancel(self) -> None:
        if self.tasks.current is not None and self.tasks.current.running:
            self.tasks.current.cancel()
            self._set_running(False)
            self.status.setText("Cancelled: nothing was written.")

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for box in (self.int8_box, self.latency_box, self.force_box):
            box.setEnabled(not running and (box is not self.int8_box or self.base.int8 is not None
                                            or self.base.data is not None))
        self.out_edit.setEnabled(not running)

    def _on_progress(self, progress: Progress) -> None:
        if progress.fraction is not None:
            self.progress.setValue(int(1000 * progress.fraction))
        self.status.setText(progress.message)

    def _on_finished(self, result: ExportResult) -> None:
        self._set_running(False)
        self.result = result
        self.progress.setValue(1000)
        self.status.setText(f"Wrote {result.out} — validated before writing:")
        self.details.setText(validation_text(result.deploy))
        self.exported.emit(result)

    def _on_failed(self, exc: Exception) -> None:
        self._set_running(False)
        self.progress.setValue(0)
        text = exc.one_line() if isinstance(exc, WorkbenchError) else f"unexpected {type(exc).__name__}: {exc}"
        self.status.setText(f"Export failed, nothing was written: {text}")

    def done(self, code: int) -> None:  # closing cancels and waits, so no thread outlives the dialog
        self.cancel()
        self.tasks.shutdown()
        super().done(code)
