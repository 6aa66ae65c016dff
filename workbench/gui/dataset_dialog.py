"""Choose the project's dataset: the demo digits, an .npz file or an image folder with its preprocessing, previewed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout,
                               QWidget)

from workbench.core.datasets import DatasetConfig, PreprocessConfig, SplitConfig, kinds, preview
from workbench.core.errors import WorkbenchError

PREVIEW_COUNT = 8


def to_pixmap(image: np.ndarray, size: int = 72) -> QPixmap:
    """A uint8 H x W or H x W x 3 array as a pixmap scaled to ``size`` (nearest: pixels stay visible)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 2:
        qimage = QImage(image.data, w, h, w, QImage.Format_Grayscale8)
    else:
        qimage = QImage(image.data, w, h, 3 * w, QImage.Format_RGB888)
    return QPixmap.fromImage(qimage.copy()).scaled(size, size, Qt.KeepAspectRatio, Qt.FastTransformation)


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise WorkbenchError(f"'{text}' is not a list of numbers", "write e.g. 0.485, 0.456, 0.406") from None
    if not values:
        raise WorkbenchError("mean and std need at least one number", "write one value, or one per channel")
    return values


class DatasetDialog(QDialog):
    """``config`` holds the accepted DatasetConfig (None until accepted)."""

    def __init__(self, current: DatasetConfig | None, base_dir: Path | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Project dataset")
        self.base_dir = base_dir
        self.config: DatasetConfig | None = None
        current = current or DatasetConfig(kind="demo")
        self.kind = QComboBox(self)
        for kind, description in kinds().items():
            self.kind.addItem(f"{kind} — {description}", kind)
        self.kind.setCurrentIndex(max(0, self.kind.findData(current.kind)))
        self.path = QLineEdit(current.path or "", self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        pre = current.preprocess
        self.resize_box = QSpinBox(self)
        self.resize_box.setRange(0, 4096)
        self.resize_box.setSpecialValueText("keep")
        self.resize_box.setValue(pre.resize or 0)
        self.crop_box = QSpinBox(self)
        self.crop_box.setRange(0, 4096)
        self.crop_box.setSpecialValueText("none")
        self.crop_box.setValue(pre.crop or 0)
        self.color = QComboBox(self)
        self.color.addItems(["rgb", "grayscale"])
        self.color.setCurrentText(pre.color)
        self.scale = QDoubleSpinBox(self)
        self.scale.setDecimals(6)
        self.scale.setRange(1e-6, 1000)
        self.scale.setValue(pre.scale)
        self.mean = QLineEdit(", ".join(f"{v:g}" for v in pre.mean), self)
        self.std = QLineEdit(", ".join(f"{v:g}" for v in pre.std), self)
        self.val_fraction = QDoubleSpinBox(self)
        self.val_fraction.setRange(0.01, 0.99)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(current.splits.val_fraction)
        self.calibration = QSpinBox(self)
        self.calibration.setRange(1, 100000)
        self.calibration.setValue(current.splits.calibration)
        form = QFormLayout()
        form.addRow("Kind", self.kind)
        form.addRow("File or folder", path_row)
        self.image_rows = [("Resize shorter side", self.resize_box), ("Center crop", self.crop_box),
                           ("Colour", self.color), ("Scale pixels by", self.scale), ("Mean (per channel)", self.mean),
                           ("Std (per channel)", self.std)]
        for label, widget in self.image_rows:
            form.addRow(label, widget)
        form.addRow("Validation share", self.val_fraction)
        form.addRow("Calibration samples", self.calibration)
        self.preview_button = QPushButton("Preview", self)
        self.preview_button.clicked.connect(self.show_preview)
        self.preview_grid = QGridLayout()
        preview_box = QWidget(self)
        preview_box.setLayout(self.preview_grid)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_button)
        layout.addWidget(preview_box)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self._kind_changed()

    def _kind_changed(self, *_) -> None:
        kind = self.kind.currentData()
        self.path.setEnabled(kind != "demo")
        for _, widget in self.image_rows:
            widget.setEnabled(kind == "image_folder")

    def _browse(self) -> None:
        if self.kind.currentData() == "image_folder":
            chosen = QFileDialog.getExistingDirectory(self, "Image folder (one sub-folder per class)")
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Arrays", "", "NumPy arrays (*.npz)")
        if chosen:
            self.path.setText(chosen)

    def build(self) -> DatasetConfig:
        """The config the fields describe; raises WorkbenchError naming a wrong field."""
        kind = self.kind.currentData()
        if kind == "demo":
            return DatasetConfig(kind="demo", splits=SplitConfig(val_fraction=self.val_fraction.value(),
                                                                 calibration=self.calibration.value()))
        if not self.path.text().strip():
            raise WorkbenchError(f"a {kind} dataset needs a file or folder", "choose one with Browse…")
        try:
            pre = PreprocessConfig(resize=self.resize_box.value() or None, crop=self.crop_box.value() or None,
                                   color=self.color.currentText(), scale=self.scale.value(),
                                   mean=_floats(self.mean.text()), std=_floats(self.std.text()))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise WorkbenchError(f"preprocessing: {str(exc).splitlines()[0]}", "correct the field") from None
        return DatasetConfig(kind=kind, path=self.path.text().strip(), preprocess=pre,
                             splits=SplitConfig(val_fraction=self.val_fraction.value(),
                                                calibration=self.calibration.value()))

    def show_preview(self) -> bool:
        """Show a few samples as the model will see them (after preprocessing); False with a message on error."""
        while self.preview_grid.count():
            item = self.preview_grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        try:
            images = preview(self.build(), PREVIEW_COUNT, self.base_dir)
        except WorkbenchError as exc:
            self.message.setText(f"<span style='color:#c92a2a'>{exc.one_line()}</span>")
            return False
        for i, image in enumerate(images):
            label = QLabel(self)
            label.setPixmap(to_pixmap(image))
            label.setToolTip(f"{image.shape[1]}×{image.shape[0]}")
            self.preview_grid.addWidget(label, i // 4, i % 4)
        shape = images[0].shape if images else ()
        self.message.setText(f"{len(images)} samples after preprocessing ({shape[1]}×{shape[0]}"
                             f"{'' if len(shape) == 2 else ' RGB'}), stretched to full contrast for display."
                             if images else "No samples found.")
        return bool(images)

    def accept(self) -> None:
        try:
            self.config = self.build()
        except WorkbenchError as exc:
            self.message.setText(f"<span style='color:#c92a2a'>{exc.one_line()}</span>")
            return
        super().accept()
