"""The log panel: what the app did and what went wrong, in words (records from any thread)."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QPlainTextEdit


class _Bridge(QObject):
    record = Signal(str)


class _Handler(logging.Handler):
    def __init__(self, bridge: _Bridge):
        super().__init__(logging.INFO)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            self.bridge.record.emit(f"{stamp}  {record.levelname.lower():<7} {record.getMessage()}")
        except RuntimeError:  # the panel is gone (window closed while a worker still logs)
            pass


class LogPanel(QPlainTextEdit):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        font = QFont("monospace")
        font.setStyleHint(QFont.Monospace)
        font.setPointSizeF(9)
        self.setFont(font)
        self._bridge = _Bridge()
        self._bridge.record.connect(self.appendPlainText)  # queued onto the GUI thread
        self.handler = _Handler(self._bridge)
        logging.getLogger("workbench").addHandler(self.handler)
        logging.getLogger("workbench").setLevel(logging.INFO)

    def detach(self) -> None:
        logging.getLogger("workbench").removeHandler(self.handler)
