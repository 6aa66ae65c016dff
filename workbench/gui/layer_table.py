"""Every layer in a sortable, filterable table; selection is linked with the graph and the details panel."""

from __future__ import annotations

from PySide6.QtCore import (QAbstractTableModel, QItemSelectionModel, QModelIndex, QRegularExpression,
                            QSortFilterProxyModel, Qt, Signal)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QTableView, QVBoxLayout, QWidget

from workbench.core.graph import LayerGraph
from workbench.core.report import shape_text

COLUMNS = ("Name", "Op", "Scope", "Output shape", "Params", "MACs", "% MACs")
SORT_ROLE = Qt.UserRole + 1


class LayerModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph: LayerGraph | None = None
        self.total = 1

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.beginResetModel()
        self.graph = graph
        self.total = (graph.macs or 1) if graph else 1
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.graph is None else len(self.graph.nodes)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole and section >= 4:
            return "Counted from shapes (static analysis), not measured"
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or self.graph is None:
            return None
        n = self.graph.nodes[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            if col == 0:
                return n.name
            if col == 1:
                return n.op_type
            if col == 2:
                return n.scope
            if col == 3:
                return ", ".join(shape_text(s) for s in n.output_shapes)
            if col == 4:
                return f"{n.params:,}"
            if col == 5:
                return "not counted" if n.macs is None else f"{n.macs:,}"
            if col == 6:
                return "" if n.macs is None else f"{100 * n.macs / self.total:.2f}"
        if role == SORT_ROLE:
            if col == 4:
                return n.params
            if col in (5, 6):
                return -1 if n.macs is None else n.macs
            if col == 0:
                return index.row()  # graph order
            return self.data(index, Qt.DisplayRole)
        if role == Qt.TextAlignmentRole and col >= 4:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ToolTipRole and col == 5 and n.macs is None:
            return n.mac_rule
        return None


class LayerTable(QWidget):
    """Signals ``node_selected(index)`` when the user picks a row."""

    node_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = LayerModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter layers by name, op or scope…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        for col, width in enumerate((300, 130, 200, 120, 100, 130, 70)):
            self.view.setColumnWidth(col, width)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.view.selectionModel().currentRowChanged.connect(self._row_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.view)
        self._quiet = False

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.model.set_graph(graph)

    def _filter(self, text: str) -> None:
        self.proxy.setFilterRegularExpression(
            QRegularExpression(QRegularExpression.escape(text), QRegularExpression.CaseInsensitiveOption))

    def _row_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if self._quiet or not current.isValid():
            return
        self.node_selected.emit(self.proxy.mapToSource(current).row())

    def select_node(self, index: int) -> None:
        """Select a layer's row without emitting ``node_selected`` (the change came from elsewhere)."""
        src = self.model.index(index, 0)
        row = self.proxy.mapFromSource(src)
        if not row.isValid():  # filtered out: clear the filter so the selection is visible
            self.filter.clear()
            row = self.proxy.mapFromSource(src)
        self._quiet = True
        try:
            self.view.selectionModel().setCurrentIndex(
                row, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
            self.view.scrollTo(row)
        finally:
            self._quiet = False

    def selected_node(self) -> int | None:
        current = self.view.selectionModel().currentIndex()
        return self.proxy.mapToSource(current).row() if current.isValid() else None

    def visible_rows(self) -> int:
        return self.proxy.rowCount()
