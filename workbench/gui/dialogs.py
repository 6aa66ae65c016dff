"""Small dialogs: input shapes for models that do not fix them, and trust for files that run code."""

from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMessageBox, QVBoxLayout)

from workbench.core.errors import InputShapeError
from workbench.core.shapes import parse_input_shape


def _dims_text(shape) -> str:
    return "x".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in shape) or "?"


class InputShapeDialog(QDialog):
    """Asks one shape per input, pre-filled with the file's fixed dims and a guess for the dynamic ones."""

    def __init__(self, path: str, inputs: list, message: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Input shape")
        layout = QVBoxLayout(self)
        text = QLabel(f"<b>{path}</b><br>{message}<br>Enter the shape to analyse, e.g. 1x3x224x224.")
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        self.edits: list[tuple[str, QLineEdit]] = []
        for spec in inputs or []:
            edit = QLineEdit(self)
            edit.setText(_guess(spec.shape))
            form.addRow(f"{spec.name}  ({_dims_text(spec.shape)})", edit)
            self.edits.append((spec.name, edit))
        if not self.edits:
            edit = QLineEdit("1x3x224x224", self)
            form.addRow("input", edit)
            self.edits.append(("", edit))
        layout.addLayout(form)
        self.error = QLabel("", self)
        self.error.setStyleSheet("color: #e03131")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def shapes(self) -> list[str]:
        """``name:dims`` (or bare dims) strings, as ``--input-shape`` takes them."""
        return [f"{name}:{edit.text().strip()}" if name else edit.text().strip() for name, edit in self.edits]

    def _accept(self) -> None:
        try:
            for s in self.shapes():
                parse_input_shape(s)
        except InputShapeError as exc:
            self.error.setText(exc.problem)
            return
        self.accept()


def _guess(shape) -> str:
    fill = [1, 3, 224, 224]
    if not shape:
        return "1x3x224x224"
    return "x".join(str(d) if isinstance(d, int) and d > 0 else str(fill[i] if i < 4 else 1)
                    for i, d in enumerate(shape))


def confirm_trust(parent, path: str, problem: str) -> bool:
    box = QMessageBox(QMessageBox.Warning, "Load code from this file?",
                      f"<b>{path}</b><br>{problem[:1].upper() + problem[1:]}.<br><br>Only load files you trust: "
                      "the code can do anything your user account can.", QMessageBox.Cancel, parent)
    load = box.addButton("Load and run its code", QMessageBox.AcceptRole)
    box.setDefaultButton(QMessageBox.Cancel)
    box.exec()
    return box.clickedButton() is load
