"""Details of the selected layer or scope: attributes, shapes, figures, and weight statistics with a histogram."""

from __future__ import annotations

import logging

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QLabel, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from workbench.core.graph import LayerGraph
from workbench.core.report import human, human_bytes, shape_text

from .workers import TaskSlot

log = logging.getLogger("workbench.gui")


class DetailsPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.graph: LayerGraph | None = None
        self.store = None
        self.node_index: int | None = None
        self.stats = []
        self.tasks = TaskSlot(self)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.setColumnWidth(0, 150)
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        self.weight_choice = QComboBox(self)
        self.weight_choice.currentIndexChanged.connect(self._show_weight)
        self.weight_info = QLabel(self)
        self.weight_info.setWordWrap(True)
        self.weight_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.plot = pg.PlotWidget(self)
        self.plot.setMinimumHeight(140)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "weight value")
        self.plot.setLabel("left", "count")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # "×0.001" multipliers confuse weight values
        self.curve = self.plot.plot([0, 1], [0], stepMode="center", fillLevel=0)
        weights = QWidget(self)
        wl = QVBoxLayout(weights)
        wl.setContentsMargins(0, 0, 0, 0)
        wl.addWidget(self.weight_choice)
        wl.addWidget(self.weight_info)
        wl.addWidget(self.plot, 1)
        self.weights_box = weights
        split = QSplitter(Qt.Vertical, self)
        split.addWidget(self.tree)
        split.addWidget(weights)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)
        self.set_theme_colors("#ffffff", "#1d232c", "#1c7ed6")
        self.show_nothing()

    def set_theme_colors(self, background: str, foreground: str, accent: str) -> None:
        self.plot.setBackground(background)
        for axis in ("bottom", "left"):
            ax = self.plot.getAxis(axis)
            ax.setPen(foreground)
            ax.setTextPen(foreground)
        color = pg.mkColor(accent)
        fill = pg.mkColor(accent)
        fill.setAlpha(110)
        self.curve.setPen(pg.mkPen(color, width=1.2))
        self.curve.setBrush(fill)

    def set_graph(self, graph: LayerGraph | None) -> None:
        self.tasks.shutdown(0)
        self.graph = graph
        self.store = None
        self.show_nothing()

    def show_nothing(self) -> None:
        self.tree.clear()
        self.node_index = None
        hint = QTreeWidgetItem(self.tree, ["Select a layer or a scope in the graph or the table."])
        hint.setFirstColumnSpanned(True)
        hint.setDisabled(True)
        self.weights_box.setVisible(False)

    # ---- scope ---------------------------------------------------------------------------------------------
    def show_scope(self, path: str) -> None:
        if self.graph is None:
            return
        scope = next((s for s in self.graph.scope_tree.walk() if s.path == path), None)
        if scope is None:
            return
        self.node_index = None
        self.tree.clear()
        rows = [("Scope", path), ("Layers", f"{scope.node_count:,}"), ("Parameters", f"{scope.params:,}"),
                ("MACs (counted)", f"{scope.macs:,}  ({human(scope.macs)})"),
                ("FLOPs (2 × MACs)", f"{2 * scope.macs:,}"), ("Weights", human_bytes(scope.weight_bytes)),
                ("Activations", human_bytes(scope.activation_bytes))]
        if scope.uncounted:
            rows.append(("Not counted", f"{scope.uncounted} layer(s) without a MAC rule"))
        for k, v in rows:
            QTreeWidgetItem(self.tree, [k, v])
        self.weights_box.setVisible(False)

    # ---- layer ---------------------------------------------------------------------------------------------
    def show_node(self, index: int) -> None:
        if self.graph is None:
            return
        n = self.graph.nodes[index]
        self.node_index = index
        self.tree.clear()
        macs = "not counted — " + n.mac_rule if n.macs is None else f"{n.macs:,}  ({human(n.macs)})"
        rows = [("Name", n.name), ("Op type", n.op_type),
                ("Scope", f"{n.scope or '(root)'}" + ("  (derived from names)" if n.scope_source == "derived"
                                                        else "")),
                ("Parameters", f"{n.params:,}"), ("MACs (counted)", macs),
                ("MAC rule", n.mac_rule), ("FLOPs (2 × MACs)", "–" if n.flops is None else f"{n.flops:,}"),
                ("Weights", human_bytes(n.weight_bytes)), ("Activations", human_bytes(n.activation_bytes))]
        for k, v in rows:
            QTreeWidgetItem(self.tree, [k, v])
        shapes = QTreeWidgetItem(self.tree, ["Shapes", ""])
        for i, s in enumerate(n.input_shapes):
            QTreeWidgetItem(shapes, [f"input {i}", shape_text(s)])
        for i, s in enumerate(n.output_shapes):
            QTreeWidgetItem(shapes, [f"output {i}", shape_text(s)])
        shapes.setExpanded(True)
        if n.attributes:
            attrs = QTreeWidgetItem(self.tree, ["Attributes", ""])
            for k, v in n.attributes.items():
                QTreeWidgetItem(attrs, [k, str(v)])
            attrs.setExpanded(True)
        if n.weights:
            w = QTreeWidgetItem(self.tree, ["Weight tensors", ", ".join(n.weights)])
            w.setToolTip(1, "\n".join(n.weights))
            self._load_weights(index)
        else:
            self.weights_box.setVisible(False)

    def _load_weights(self, index: int) -> None:
        from workbench.core.weights import WeightStore

        if self.store is None:
            self.store = WeightStore(self.graph)
        store = self.store
        self.weights_box.setVisible(True)
        self.weight_choice.clear()
        self.weight_info.setText("Reading weights…")
        self.curve.setData([0, 1], [0])

        def work(token):
            from workbench.core.progress import Progress

            yield Progress(None, "Reading weights")
            return index, store.stats(self.graph.nodes[index])

        task = self.tasks.start("weights", work)
        task.finished.connect(self._weights_ready)
        task.failed.connect(self._weights_failed)

    def _weights_ready(self, result) -> None:
        index, stats = result
        if index != self.node_index:
            return
        self.stats = stats
        self.weight_choice.blockSignals(True)
        self.weight_choice.clear()
        for s in stats:
            self.weight_choice.addItem(f"{s.name}  {shape_text(s.shape)}")
        self.weight_choice.blockSignals(False)
        if stats:
            self._show_weight(0)
        else:
            self.weight_info.setText("The weight values of this layer are not available in the file.")

    def _weights_failed(self, exc: Exception) -> None:
        self.weight_info.setText(f"Could not read weights: {exc}")
        log.warning("could not read weights: %s", exc)

    def _show_weight(self, i: int) -> None:
        if not 0 <= i < len(self.stats):
            return
        s = self.stats[i]
        self.weight_info.setText(
            f"{s.count:,} values ({s.dtype}) · mean {s.mean:.4g} · std {s.std:.4g} · min {s.min:.4g} · "
            f"max {s.max:.4g} · |mean| {s.abs_mean:.4g} · zeros {100 * s.zeros_fraction:.1f} %")
        self.curve.setData(s.hist_edges, s.hist_counts)
        self.plot.enableAutoRange()

    def histogram_data(self):
        """The plotted histogram (edges, counts), for tests."""
        return self.curve.getData()
