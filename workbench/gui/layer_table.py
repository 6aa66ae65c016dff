"""Every layer in a sortable, filterable table; selection is linked with the graph and the details panel."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QTableView, QVBoxLayout, QWidget

from workbench.core.graph import LayerGraph
from workbench.core.report import shape_text

COLUMNS = ("Name", "Op", "Scope", "Output shape", "Params", "MACs", "% MACs")


class LayerModel(QAbstractTableModel):
    """Rows are layers in ``order`` (a permutation of node indices): sorting reorders that list in Python once,
    instead of letting a proxy compare rows through hundreds of thousands of ``data()`` calls."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph: LayerGraph | None = None
        self.total = 1
        self.order: list[int] = []
        self.position: list[int] = []
        self._haystack: list[str] | None = None
        self.sort_column, self.sort_order = 0, Qt.AscendingOrder

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.beginResetModel()
        self.graph = graph
        self.total = (graph.macs or 1) if graph else 1
        self._haystack = None
        self.order = self._sorted(self.sort_column, self.sort_order)
        self.position = _inverse(self.order)
        self.endResetModel()

    @property
    def haystack(self) -> list[str]:
        """Lower-case name, op and scope of every layer, built when the user first filters."""
        if self._haystack is None:
            nodes = self.graph.nodes if self.graph else []
            self._haystack = [f"{n.name}\n{n.op_type}\n{n.scope}".lower() for n in nodes]
        return self._haystack

    def node_at(self, row: int) -> int:
        return self.order[row]

    def row_of(self, node_index: int) -> int:
        return self.position[node_index]

    def _key(self, column: int):
        nodes = self.graph.nodes
        if column == 0:
            return lambda i: i  # graph order
        if column == 1:
            return lambda i: nodes[i].op_type.lower()
        if column == 2:
            return lambda i: nodes[i].scope.lower()
        if column == 3:
            return lambda i: [d for s in nodes[i].output_shapes if s for d in s]
        if column == 4:
            return lambda i: nodes[i].params
        return lambda i: -1 if nodes[i].macs is None else nodes[i].macs

    def _sorted(self, column: int, order) -> list[int]:
        if self.graph is None:
            return []
        if column == 0 and order == Qt.AscendingOrder:
            return list(range(len(self.graph.nodes)))  # graph order: nothing to sort
        return sorted(range(len(self.graph.nodes)), key=self._key(column),
                      reverse=order == Qt.DescendingOrder)

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        self.sort_column, self.sort_order = column, order
        if self.graph is None:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_nodes = [self.order[i.row()] for i in old]
        self.order = self._sorted(column, order)
        self.position = _inverse(self.order)
        self.changePersistentIndexList(old, [self.index(self.position[n], i.column()) for n, i in
                                             zip(old_nodes, old)])
        self.layoutChanged.emit()

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
        n = self.graph.nodes[self.order[index.row()]]
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
        if role == Qt.TextAlignmentRole and col >= 4:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ToolTipRole and col == 5 and n.macs is None:
            return n.mac_rule
        return None


def _inverse(order: list[int]) -> list[int]:
    position = [0] * len(order)
    for row, node in enumerate(order):
        position[node] = row
    return position


class LayerFilter(QSortFilterProxyModel):
    """Filters on name, op and scope (precomputed text); sorting is the source model's."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.needle = ""
        self.setDynamicSortFilter(False)

    def set_needle(self, text: str) -> None:
        self.beginFilterChange()
        self.needle = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:
        if not self.needle:
            return True
        model = self.sourceModel()
        return self.needle in model.haystack[model.order[row]]

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)


class LayerTable(QWidget):
    """Signals ``node_selected(index)`` when the user picks a row."""

    node_selected = Signal(int)
    override_requested = Signal(str, str)  # layer (scope or name), parameter
    override_fields = staticmethod(lambda: [])  # set by the window: the current method's per-layer fields

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = LayerModel(self)
        self.proxy = LayerFilter(self)
        self.proxy.setSourceModel(self.model)
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
        for col, width in enumerate((300, 90, 170, 110, 80, 100, 62)):
            self.view.setColumnWidth(col, width)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.view.setWordWrap(False)  # one line per row, so the elision below applies
        self.view.setTextElideMode(Qt.ElideMiddle)  # "/features/…/Conv" keeps the op at the end of a long ONNX name
        self.view.selectionModel().currentRowChanged.connect(self._row_changed)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.view)
        self._quiet = False

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.model.set_graph(graph)

    def override_actions(self, row: int) -> list[tuple[str, str, str]]:
        """(menu text, layer, field) for the per-layer parameters of the current method, for a table row."""
        node = self.model.graph.nodes[self.model.node_at(row)]
        layer = node.scope or node.name
        return [(f"Override {f} for {layer}…", layer, f) for f in self.override_fields()]

    def _context_menu(self, pos) -> None:
        from PySide6.QtWidgets import QMenu

        index = self.view.indexAt(pos)
        if not index.isValid() or self.model.graph is None:
            return
        actions = self.override_actions(self.proxy.mapToSource(index).row())
        if not actions:
            return
        menu = QMenu(self)
        for text, layer, field in actions:
            menu.addAction(text, lambda l=layer, f=field: self.override_requested.emit(l, f))
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def _filter(self, text: str) -> None:
        self.proxy.set_needle(text)

    def _row_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if self._quiet or not current.isValid():
            return
        self.node_selected.emit(self.model.node_at(self.proxy.mapToSource(current).row()))

    def select_node(self, index: int) -> None:
        """Select a layer's row without emitting ``node_selected`` (the change came from elsewhere)."""
        src = self.model.index(self.model.row_of(index), 0)
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
        return self.model.node_at(self.proxy.mapToSource(current).row()) if current.isValid() else None

    def visible_rows(self) -> int:
        return self.proxy.rowCount()
