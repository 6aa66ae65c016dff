"""The measured per-layer sensitivity as a sortable table; a row click selects the layer in the graph."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget


class _Number(QTableWidgetItem):
    """Sorts by value, shows formatted text."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other):
        return self.value < getattr(other, "value", 0.0)


class SensitivityTable(QWidget):
    """Rows of ``analysis.sensitivity`` results: layer, accuracy with the layer perturbed, points lost, suggestion."""

    layer_selected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary = QLabel("Run “Layer sensitivity” from the Compress panel to measure each layer's accuracy "
                              "cost.", self)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["Layer", "Accuracy (%)", "Points lost", "Suggested weight bits"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def set_result(self, meta: dict) -> None:
        """Show the ``meta`` of a sensitivity result (rows, base accuracy, samples, probe, suggestion)."""
        rows = meta.get("sensitivity", [])
        suggestion = meta.get("suggestion") or {}
        params = meta.get("params", {})
        probe = (f"{params.get('bits')}-bit weights" if params.get("probe", "quantize") == "quantize"
                 else f"{100 * float(params.get('ratio', 0)):.0f} % of channels zeroed")
        self.summary.setText(f"Measured: each layer alone with {probe}, on {meta.get('samples')} samples of "
                             f"{meta.get('data', 'the data')}; base accuracy {100 * meta.get('base_accuracy', 0):.2f} "
                             "%. Most sensitive first.")
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = QTableWidgetItem(row["layer"])
            name.setData(Qt.UserRole, row["layer"])
            self.table.setItem(r, 0, name)
            self.table.setItem(r, 1, _Number(row["accuracy"], f"{100 * row['accuracy']:.2f}"))
            self.table.setItem(r, 2, _Number(row["drop_points"], f"{row['drop_points']:+.2f}"))
            bits = suggestion.get(row["layer"], {}).get("weight_bits")
            self.table.setItem(r, 3, _Number(bits or 0, str(bits) if bits else "—"))
        self.table.setSortingEnabled(True)
        self.table.sortItems(2, Qt.DescendingOrder)

    def _selected(self) -> None:
        items = self.table.selectedItems()
        if items:
            self.layer_selected.emit(self.table.item(items[0].row(), 0).data(Qt.UserRole))
