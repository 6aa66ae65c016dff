"""The guided tour of ``workbench demo``: a small non-modal window that walks through graph → prune → quantize →
chart → export, raising the panel each step talks about. The user does every step; the tour only points.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout


@dataclass(frozen=True)
class TourStep:
    title: str
    text: str
    dock: str | None = None  # the main window's dock to raise


STEPS = (
    TourStep("1 · The graph", "The middle shows the demo digits model (about 107 k parameters, 5.6 M MACs). Layers "
             "are coloured by their share of the MACs: the red ones cost most. Click a layer for its figures; "
             "the Layers table below lists them all.", "layers"),
    TourStep("2 · Prune", "In Compress, pick “Channel pruning”, set ratio 0.5 and press Apply. The new variant "
             "appears in Variants, measured: about a third of the size, but accuracy drops until it is "
             "fine-tuned — select it and apply “Fine-tune” (a few epochs).", "compress"),
    TourStep("3 · Quantize", "Select the base model in Variants, pick “Int8 quantization (static, calibrated)” in "
             "Compress and Apply. It is calibrated on the demo digits; the variant's latency is measured with ONNX "
             "Runtime here.", "variants"),
    TourStep("4 · Compare on the chart", "Charts plots accuracy against size or latency. Filled points are "
             "measured, hollow ones estimated; the dashed line is the Pareto front — the variants worth keeping.",
             "charts"),
    TourStep("5 · Export", "Pick the variant you like: save its recipe (File › Save recipe) to replay it with "
             "`workbench run`, export a deployment package, and write the report of the whole project "
             "(File › Export report, or `workbench report PROJECT --out report.html`).", "variants"),
)


class DemoTour(QDialog):
    """Back / Next through :data:`STEPS`; each step raises its dock in ``window`` (a MainWindow or None)."""

    def __init__(self, window=None):
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Demo tour")
        self.setModal(False)
        self.setWindowFlag(Qt.WindowStaysOnTopHint, True)
        self.index = 0
        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setMinimumWidth(380)
        self.back = QPushButton("Back", self)
        self.next = QPushButton("Next", self)
        close = QPushButton("Close tour", self)
        self.back.clicked.connect(lambda: self.show_step(self.index - 1))
        self.next.clicked.connect(self._next)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(close)
        buttons.addStretch(1)
        buttons.addWidget(self.back)
        buttons.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)
        self.show_step(0)

    def _next(self) -> None:
        if self.index == len(STEPS) - 1:
            self.close()
        else:
            self.show_step(self.index + 1)

    def show_step(self, index: int) -> None:
        self.index = max(0, min(len(STEPS) - 1, index))
        step = STEPS[self.index]
        self.title.setText(step.title)
        self.text.setText(step.text)
        self.back.setEnabled(self.index > 0)
        self.next.setText("Finish" if self.index == len(STEPS) - 1 else "Next")
        docks = getattr(self.window_, "docks", {})
        if step.dock in docks:
            docks[step.dock].show()
            docks[step.dock].raise_()
