"""The devices panel: where latency can be measured — this machine, always, plus device agents the user adds.

"Test" asks a device to describe itself (CPU model, ISA flags, cores, onnxruntime, providers) on a worker thread, so
an unreachable agent never freezes the window. The list is saved through each device's ``to_dict`` (tokens
included: the project keeps its devices).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from workbench.core.progress import Progress
from workbench.devices import Device, device_from_dict
from workbench.devices.agent import AgentDevice
from workbench.devices.int8_verdict import isa_level
from workbench.devices.local import LocalDevice

from .workers import TaskSlot


def describe_text(info: dict[str, Any]) -> str:
    """A device description in a few lines for people."""
    flags = ", ".join(info.get("isa_flags") or []) or "none reported"
    level, reasons, _ = isa_level(info)
    return (f"{info.get('name', '?')} ({info.get('host', '')})\n"
            f"CPU: {info.get('cpu_model', '?')}, {info.get('arch', '?')}, {info.get('cores', '?')} cores\n"
            f"ISA: {flags}\n"
            f"onnxruntime {info.get('onnxruntime', '?')}: {', '.join(info.get('providers') or [])}\n"
            f"int8 on this CPU (estimated): {level} — {reasons[0] if reasons else ''}")


class DevicesPanel(QWidget):
    """List of devices. Signals: ``devices_changed(list[Device])`` after add/remove/load, ``tested(Device, dict)``
    with the description a test fetched, ``test_failed(Device, Exception)``."""

    devices_changed = Signal(list)
    tested = Signal(object, dict)
    test_failed = Signal(object, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._devices: list[Device] = [LocalDevice()]
        self.tasks = TaskSlot(self)
        self.list = QListWidget()
        self.list.setMaximumHeight(7 * self.list.fontMetrics().height())  # a handful of devices, not half the dock
        self.details = QLabel("Select a device and press Test to see what it is.")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.host = QLineEdit()
        self.host.setPlaceholderText("192.168.1.20")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(8765)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setPlaceholderText("the token the agent was started with")
        self.add_button = QPushButton("Add agent")
        self.test_button = QPushButton("Test")
        self.remove_button = QPushButton("Remove")

        form = QFormLayout()
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Token", self.token)
        buttons = QHBoxLayout()
        for button in (self.test_button, self.remove_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        layout.addWidget(self.details)
        layout.addLayout(form)
        layout.addWidget(self.add_button)

        self.add_button.clicked.connect(self.add_from_form)
        self.test_button.clicked.connect(self.test_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.currentRowChanged.connect(self._update_buttons)
        self._refresh()
        self.list.setCurrentRow(0)

    # ---- the list ------------------------------------------------------------------------------------------------
    def devices(self) -> list[Device]:
        return list(self._devices)

    def to_list(self) -> list[dict[str, Any]]:
        """The devices as plain dicts for the project file."""
        return [d.to_dict() for d in self._devices]

    def load(self, data: list[dict[str, Any]]) -> None:
        """Replace the list with saved devices; this machine is always first."""
        devices = [device_from_dict(d) for d in data]
        local = [d for d in devices if isinstance(d, LocalDevice)][:1] or [LocalDevice()]
        self._devices = local + [d for d in devices if not isinstance(d, LocalDevice)]
        self._refresh()
        self.devices_changed.emit(self.devices())

    def add_from_form(self) -> AgentDevice | None:
        host, token = self.host.text().strip(), self.token.text().strip()
        if not host or not token:
            self.details.setText("An agent needs a host and the token it was started with.")
            return None
        device = AgentDevice(host, self.port.value(), token)
        if any(isinstance(d, AgentDevice) and d.address == device.address for d in self._devices):
            self.details.setText(f"{device.address} is already in the list.")
            return None
        self._devices.append(device)
        self._refresh()
        self.list.setCurrentRow(len(self._devices) - 1)
        self.token.clear()
        self.devices_changed.emit(self.devices())
        return device

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if row <= 0 or row >= len(self._devices):  # row 0 is this machine: always available
            return
        del self._devices[row]
        self._refresh()
        self.list.setCurrentRow(min(row, len(self._devices) - 1))
        self.devices_changed.emit(self.devices())

    # ---- testing -------------------------------------------------------------------------------------------------
    def test_selected(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self._devices):
            return
        device = self._devices[row]
        self.details.setText(f"Contacting {device.name}…")
        self.test_button.setEnabled(False)

        def describe(token):
            yield Progress(None, f"contacting {device.name}")
            if isinstance(device, AgentDevice):
                device.capabilities(refresh=True)
            return device.describe()

        task = self.tasks.start(f"test {device.name}", describe)
        task.finished.connect(lambda info, d=device: self._on_tested(d, info))
        task.failed.connect(lambda exc, d=device: self._on_failed(d, exc))
        task.cancelled.connect(lambda: self.test_button.setEnabled(True))

    def _on_tested(self, device: Device, info: dict) -> None:
        self.test_button.setEnabled(True)
        if device in self._devices and self._devices.index(device) == self.list.currentRow():
            self.details.setText(describe_text(info))
        self._refresh()
        self.tested.emit(device, info)

    def _on_failed(self, device: Device, exc: Exception) -> None:
        self.test_button.setEnabled(True)
        text = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        self.details.setText(f"Test failed: {text}")
        self.test_failed.emit(device, exc)

    def shutdown(self) -> bool:
        """Cancel a running test and wait for its thread (the window is closing)."""
        return self.tasks.shutdown()

    # ---- display -------------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        row = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        for device in self._devices:
            cached = getattr(device, "_capabilities", None)
            suffix = f" — {cached.get('cpu_model', '')}" if cached else ""
            self.list.addItem(device.name + suffix)
        self.list.blockSignals(False)
        if 0 <= row < len(self._devices):
            self.list.setCurrentRow(row)
        self._update_buttons()

    def _update_buttons(self, *_args) -> None:
        self.remove_button.setEnabled(self.list.currentRow() > 0)
