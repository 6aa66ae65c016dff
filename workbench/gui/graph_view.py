"""The layer graph: boxes for layers and collapsed scopes, coloured by a metric, with zoom, pan and navigation."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (QBrush, QColor, QFont, QFontMetricsF, QKeyEvent, QMouseEvent, QPainter, QPainterPath,
                           QPen, QWheelEvent)
from PySide6.QtWidgets import (QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsView, QMenu,
                               QStyleOptionGraphicsItem, QWidget)

from workbench.core import metrics
from workbench.core.loading import ViewState

from .theme import LIGHT, GraphColors

_TEXT_LOD = 0.45  # below this zoom, boxes are drawn without text (unreadable anyway, and much faster)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    t = min(1.0, max(0.0, t))
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t)


class HeatScale:
    """Maps metric values to colours on a log scale (layer costs span orders of magnitude)."""

    def __init__(self, values: list[float | None], colors: GraphColors):
        positive = [v for v in values if v is not None and v > 0]
        self.colors = colors
        self.lo = min(positive) if positive else 0.0
        self.hi = max(positive) if positive else 0.0

    def fraction(self, value: float | None) -> float | None:
        if value is None:
            return None
        if value <= 0 or self.hi <= 0:
            return 0.0
        if self.hi == self.lo:
            return 1.0
        return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))

    def color(self, value: float | None) -> QColor | None:
        f = self.fraction(value)
        if f is None:
            return None
        return _mix(self.colors.heat_low, self.colors.heat_high, f)


class BoxItem(QGraphicsItem):
    """One visible box. Painted by hand: cheaper than composite items when there are thousands."""

    def __init__(self, view: "GraphView", key: str, kind: str, lines: tuple[str, str, str], w: float, h: float):
        super().__init__()
        self.view, self.key, self.kind, self.lines = view, key, kind, lines
        self.rect = QRectF(-w / 2, -h / 2, w, h)
        self.fill: QColor | None = None
        self.value_text = ""
        self.selected = False
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.PointingHandCursor)

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-3, -3, 3, 3)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        c = self.view.colors
        scope = self.kind == "scope"
        base = c.scope if scope else c.node
        fill = self.fill if self.fill is not None else base
        border = c.selection if self.selected else (c.scope_border if scope else c.node_border)
        painter.setPen(QPen(border, 2.6 if self.selected else (1.6 if scope else 1.0)))
        painter.setBrush(QBrush(fill))
        painter.drawRoundedRect(self.rect, 7, 7)
        if scope:  # a second outline marks a box that opens
            painter.setPen(QPen(border, 0.8))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(self.rect.adjusted(3, 3, -3, -3), 5, 5)
        if option.levelOfDetailFromTransform(painter.worldTransform()) < _TEXT_LOD:
            return
        self.view.paint_text(painter, self)


class GraphView(QGraphicsView):
    """Shows a ViewState. Signals: ``item_selected(key)``, ``toggle_requested(scope)``, ``painted()``."""

    item_selected = Signal(str)
    toggle_requested = Signal(str)
    override_requested = Signal(str, str)  # layer (scope or name), parameter
    painted = Signal()
    override_fields = staticmethod(lambda: [])  # set by the window: the current method's per-layer fields

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.BoundingRectViewportUpdate)
        self.setFocusPolicy(Qt.StrongFocus)
        self.colors = LIGHT
        self.state: ViewState | None = None
        self.boxes: dict[str, BoxItem] = {}
        self.metric_id = "macs"
        self.scale_info: HeatScale | None = None
        self.selected_key: str | None = None
        self._edges_item: QGraphicsPathItem | None = None
        self._highlight_item: QGraphicsPathItem | None = None
        self._paint_pending = False
        self.title_font = QFont()
        self.title_font.setBold(True)
        self.title_font.setPointSizeF(9.5)
        self.body_font = QFont()
        self.body_font.setPointSizeF(8.0)
        self._fm_title = QFontMetricsF(self.title_font)
        self._fm_body = QFontMetricsF(self.body_font)
        from .legend import Legend

        self.legend = Legend(self)

    # ---- content -----------------------------------------------------------------------------------------------
    def set_state(self, state: ViewState, keep_view: bool = False) -> None:
        """Draw ``state``; ``keep_view`` keeps the zoom (after expand/collapse) instead of fitting."""
        old_center = self.mapToScene(self.viewport().rect().center()) if keep_view else None
        scene = self.scene()
        scene.clear()
        self.boxes.clear()
        self._edges_item = self._highlight_item = None
        self.state = state
        lay = state.layout
        for item in state.view.items:
            w, h = (176.0, 54.0) if item.kind == "node" else (200.0, 62.0)
            box = BoxItem(self, item.key, item.kind, (item.title, item.subtitle, item.detail), w, h)
            cx, cy = lay.centers[item.key]
            box.setPos(cx, cy)
            box.setToolTip(self._tooltip(item))
            scene.addItem(box)
            self.boxes[item.key] = box
        self._edges_item = _EdgeItem(self.colors.edge, 1.2, -1)
        self._edges_item.set_routes(lay.edges)
        scene.addItem(self._edges_item)
        self._highlight_item = _EdgeItem(self.colors.edge_highlight, 2.2, -0.5)
        scene.addItem(self._highlight_item)
        margin = 60
        scene.setSceneRect(QRectF(-margin, -margin, lay.width + 2 * margin, lay.height + 2 * margin))
        self.apply_metric(self.metric_id)
        if self.selected_key and self.selected_key in self.boxes:
            self.select_key(self.selected_key, center=False, emit=False)
        else:
            self.selected_key = None
        if keep_view and old_center is not None:
            self.centerOn(old_center)
        else:
            self.fit()
        self._paint_pending = True
        self.viewport().update()

    def clear(self) -> None:
        self.scene().clear()
        self.boxes.clear()
        self.state = None
        self._edges_item = self._highlight_item = None
        self.legend.set_scale(None, None)

    def set_colors(self, colors: GraphColors) -> None:
        self.colors = colors
        self.setBackgroundBrush(QBrush(colors.background))
        if self._edges_item is not None:
            self._edges_item.set_color(colors.edge, 1.2)
            self._highlight_item.set_color(colors.edge_highlight, 2.2)
        self.apply_metric(self.metric_id)
        self.legend.update()
        self.viewport().update()

    def apply_metric(self, metric_id: str) -> None:
        """Colour boxes by a registered metric source (scopes show the sum over their layers)."""
        self.metric_id = metric_id
        if self.state is None:
            self.legend.set_scale(None, None)
            return
        source = metrics.get(metric_id)
        graph = self.state.graph
        values: dict[str, float | None] = {}
        for item in self.state.view.items:
            vals = [source.value(graph, graph.nodes[i]) for i in item.node_indices]
            known = [v for v in vals if v is not None]
            values[item.key] = sum(known) if known else None
        self.scale_info = HeatScale(list(values.values()), self.colors)
        for key, box in self.boxes.items():
            box.fill = self.scale_info.color(values[key])
            box.value_text = metrics.format_value(source, values[key])
            box.update()
        self.legend.set_scale(source, self.scale_info)

    # ---- painting --------------------------------------------------------------------------------------------
    def _text_colors(self, box: BoxItem) -> tuple[QColor, QColor]:
        """Main and secondary text colours with enough contrast on the box's fill."""
        fill = box.fill if box.fill is not None else (self.colors.scope if box.kind == "scope" else self.colors.node)
        luminance = 0.2126 * fill.redF() + 0.7152 * fill.greenF() + 0.0722 * fill.blueF()
        main = QColor("#14181d") if luminance > 0.45 else QColor("#f4f6f8")
        muted = QColor(main)
        muted.setAlphaF(0.72)
        return main, muted

    def paint_text(self, painter: QPainter, box: BoxItem) -> None:
        text_color, muted_color = self._text_colors(box)
        r = box.rect.adjusted(9, 5, -9, -5)
        title, subtitle, detail = box.lines
        painter.setFont(self.title_font)
        painter.setPen(text_color)
        line_h = self._fm_title.height()
        head = r.adjusted(0, 0, 0, -(r.height() - line_h))
        value_w = self._fm_body.horizontalAdvance(box.value_text) + 6 if box.value_text else 0
        painter.drawText(head.adjusted(0, 0, -value_w, 0), Qt.AlignLeft | Qt.AlignVCenter,
                         self._fm_title.elidedText(title, Qt.ElideMiddle, head.width() - value_w))
        painter.setFont(self.body_font)
        if box.value_text:
            painter.setPen(muted_color)
            painter.drawText(head, Qt.AlignRight | Qt.AlignVCenter, box.value_text)
        body_h = self._fm_body.height()
        y = head.bottom() + 1
        for text in (subtitle, detail):
            if not text:
                continue
            painter.setPen(muted_color if text is detail else text_color)
            line = QRectF(r.left(), y, r.width(), body_h)
            painter.drawText(line, Qt.AlignLeft | Qt.AlignVCenter,
                             self._fm_body.elidedText(text, Qt.ElideLeft if text is subtitle else Qt.ElideRight,
                                                      r.width()))
            y += body_h

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        if self._paint_pending and self.state is not None:
            self._paint_pending = False
            self.painted.emit()

    def _tooltip(self, item) -> str:
        graph = self.state.graph
        if item.kind == "scope":
            return f"<b>{item.scope}</b><br>{item.subtitle}<br>{item.detail}<br><i>Double-click to expand</i>"
        n = graph.nodes[item.node_index]
        macs = "not counted" if n.macs is None else f"{n.macs:,}"
        return (f"<b>{n.name}</b><br>{n.op_type} · scope {n.scope or '(root)'}<br>params {n.params:,}<br>"
                f"MACs {macs} (counted)<br>output {item.detail}")

    # ---- selection and navigation ----------------------------------------------------------------------------
    def select_key(self, key: str | None, center: bool = True, emit: bool = True) -> None:
        if self.selected_key in self.boxes:
            self.boxes[self.selected_key].selected = False
            self.boxes[self.selected_key].update()
        self.selected_key = key
        touching = []
        if key in self.boxes:
            box = self.boxes[key]
            box.selected = True
            box.update()
            touching = [r for r in self.state.layout.edges if r.src == key or r.dst == key]
            if center:
                self.ensureVisible(box, 80, 80)
        if self._highlight_item is not None:
            self._highlight_item.set_routes(touching)
        if emit and key is not None:
            self.item_selected.emit(key)

    def center_on_key(self, key: str) -> None:
        if key in self.boxes:
            self.centerOn(self.boxes[key])

    def fit(self) -> None:
        if self.state is None:
            return
        rect = self.scene().sceneRect()
        view = self.viewport().rect()
        if rect.isEmpty() or view.isEmpty():
            return
        # Show everything when it stays readable; otherwise keep text readable and start at the inputs.
        whole = min(view.width() / rect.width(), view.height() / rect.height())
        scale = min(whole, 1.1) if whole >= 0.75 else max(0.75, min(1.0, view.width() / rect.width()))
        self.resetTransform()
        self.scale(scale, scale)
        if rect.height() * scale > view.height():
            first = self.boxes[self.state.view.items[0].key] if self.state.view.items else None
            x = first.x() if first is not None else rect.center().x()
            self.centerOn(x, rect.top() + view.height() / (2 * scale))
        else:
            self.centerOn(rect.center())

    def fit_all(self) -> None:
        if self.state is not None:
            self.fitInView(self.scene().sceneRect(), Qt.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        current = self.transform().m11()
        factor = max(0.02 / current, min(4.0 / current, factor))
        self.scale(factor, factor)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.ShiftModifier:
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y()
        if delta:
            self.zoom(1.0015 ** delta)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        box = self._box_at(event.position().toPoint())
        if box is not None and event.button() == Qt.LeftButton:
            self.select_key(box.key, center=False)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        box = self._box_at(event.position().toPoint())
        if box is not None and box.kind == "scope":
            self.toggle_requested.emit(self.state.view.by_key[box.key].scope)
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:
        box = self._box_at(event.pos())
        if box is None or self.state is None:
            return
        from workbench.core.viewgraph import collapsible_ancestor

        item = self.state.view.by_key[box.key]
        menu = QMenu(self)
        if item.kind == "scope":
            menu.addAction(f"Expand {item.scope}", lambda: self.toggle_requested.emit(item.scope))
            target = item.scope
        else:
            parent = collapsible_ancestor(self.state.graph, item.node_index, self.state.view.expanded)
            if parent:
                menu.addAction(f"Collapse {parent}", lambda: self.toggle_requested.emit(parent))
            node = self.state.graph.nodes[item.node_index]
            target = node.scope or node.name
        for field in self.override_fields():
            menu.addAction(f"Override {field} for {target}…",
                           lambda f=field, t=target: self.override_requested.emit(t, f))
        if not menu.isEmpty():
            menu.exec(event.globalPos())

    def _box_at(self, pos) -> BoxItem | None:
        for it in self.items(pos):
            if isinstance(it, BoxItem):
                return it
        return None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if self.state is None:
            super().keyPressEvent(event)
            return
        if key in (Qt.Key_Up, Qt.Key_Down, Qt.Key_Left, Qt.Key_Right) and not event.modifiers():
            self._navigate(key)
            return
        if key in (Qt.Key_Return, Qt.Key_Enter) and self.selected_key:
            item = self.state.view.by_key.get(self.selected_key)
            if item is not None and item.kind == "scope":
                self.toggle_requested.emit(item.scope)
            return
        if key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom(1.25)
            return
        if key == Qt.Key_Minus:
            self.zoom(0.8)
            return
        super().keyPressEvent(event)

    def _navigate(self, key: int) -> None:
        """Arrows: up/down follow edges to a producer/consumer; left/right move within the row."""
        lay = self.state.layout
        current = self.selected_key or self.state.view.items[0].key
        if self.selected_key is None:
            self.select_key(current)
            return
        if key in (Qt.Key_Up, Qt.Key_Down):
            ends = [r.src for r in lay.edges if r.dst == current] if key == Qt.Key_Up else \
                [r.dst for r in lay.edges if r.src == current]
            cx = lay.centers[current][0]
            if ends:
                self.select_key(min(ends, key=lambda k: abs(lay.centers[k][0] - cx)))
            return
        layer = lay.layer_of[current]
        row = sorted((k for k, l in lay.layer_of.items() if l == layer and k in self.boxes),
                     key=lambda k: lay.centers[k][0])
        i = row.index(current) + (1 if key == Qt.Key_Right else -1)
        if 0 <= i < len(row):
            self.select_key(row[i])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.legend.place()


def _route_paths(routes) -> tuple[QPainterPath, QPainterPath]:
    """Smooth vertical curves through each route's points (stroked), and arrowheads at the targets (filled)."""
    lines, heads = QPainterPath(), QPainterPath()
    for route in routes:
        points = route.points
        if len(points) < 2:
            continue
        x0, y0 = points[0]
        lines.moveTo(x0, y0)
        for x1, y1 in points[1:]:
            dy = (y1 - y0) / 2
            lines.cubicTo(QPointF(x0, y0 + dy), QPointF(x1, y1 - dy), QPointF(x1, y1))
            x0, y0 = x1, y1
        heads.moveTo(x0, y0)
        heads.lineTo(x0 - 4, y0 - 8)
        heads.lineTo(x0 + 4, y0 - 8)
        heads.closeSubpath()
    return lines, heads


class _EdgeItem(QGraphicsPathItem):
    """All edges in one item: stroked curves plus filled arrowheads (thousands of items would be slow)."""

    def __init__(self, color: QColor, width: float, z: float):
        super().__init__()
        self.heads = QPainterPath()
        self.setZValue(z)
        self.set_color(color, width)

    def set_routes(self, routes) -> None:
        lines, self.heads = _route_paths(routes)
        self.setPath(lines)

    def set_color(self, color: QColor, width: float) -> None:
        self.color = color
        self.setPen(QPen(color, width))
        self.setBrush(Qt.NoBrush)
        self.update()

    def boundingRect(self) -> QRectF:
        return super().boundingRect().united(self.heads.boundingRect())

    def paint(self, painter: QPainter, option, widget=None) -> None:
        super().paint(painter, option, widget)
        painter.fillPath(self.heads, self.color)
