"""The main window driven as a user would: open, drop, select, collapse, search, theme, settings, cancel, errors."""

from __future__ import annotations

import subprocess
import sys

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QPalette
from PySide6.QtWidgets import QApplication

from gui_helpers import open_and_wait


def test_open_through_the_api_fills_graph_table_and_status(qtbot, window, small_cnn):
    state = open_and_wait(qtbot, window, small_cnn.onnx)
    graph = state.graph
    assert len(window.graph_view.boxes) == len(state.view.items) > 0
    assert window.table.visible_rows() == len(graph.nodes)
    assert "counted from shapes" in window.totals_label.text()
    assert f"{len(graph.nodes):,} layers" in window.totals_label.text()
    # Layout sanity: no two boxes overlap.
    rects = [b.sceneBoundingRect().adjusted(3, 3, -3, -3) for b in window.graph_view.boxes.values()]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_open_by_dropping_a_file(qtbot, window, small_cnn):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(small_cnn.onnx))])
    event = QDropEvent(QPointF(200, 200), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.dropEvent(event)
    assert window.state.graph.source == str(small_cnn.onnx)
    assert str(small_cnn.onnx) in window.recent_files()


def test_selection_is_linked_between_table_graph_and_details(qtbot, window, small_cnn):
    state = open_and_wait(qtbot, window, small_cnn.onnx)
    conv = next(i for i, n in enumerate(state.graph.nodes) if n.op_type == "Conv")
    # table → graph and details
    model = window.table.model
    window.table.view.selectRow(window.table.proxy.mapFromSource(model.index(model.row_of(conv), 0)).row())
    assert window.graph_view.selected_key == state.view.key_of_node(conv)
    assert window.details.node_index == conv
    # graph → table: click the box of another layer
    other = next(i for i, n in enumerate(state.graph.nodes) if n.op_type == "Gemm")
    box = window.graph_view.boxes[state.view.key_of_node(other)]
    window.graph_view.centerOn(box)
    pos = window.graph_view.mapFromScene(box.scenePos())
    qtbot.mouseClick(window.graph_view.viewport(), Qt.LeftButton, pos=pos)
    assert window.table.selected_node() == other
    assert window.details.node_index == other


def test_largest_layer_is_one_header_click_away_and_filter_narrows_rows(qtbot, window, mobilenet):
    state = open_and_wait(qtbot, window, mobilenet.onnx)
    table = window.table
    header = table.view.horizontalHeader()
    x = header.sectionViewportPosition(5) + 5
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, 5))  # MACs column
    if header.sortIndicatorOrder() == Qt.AscendingOrder:
        qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, 5))
    largest = max(range(len(state.graph.nodes)), key=lambda i: state.graph.nodes[i].macs or 0)
    assert table.model.node_at(table.proxy.mapToSource(table.proxy.index(0, 0)).row()) == largest
    table.view.selectRow(0)
    assert window.graph_view.selected_key == state.view.key_of_node(largest)
    qtbot.keyClicks(table.filter, "conv")
    assert 0 < table.visible_rows() < len(state.graph.nodes)
    assert all("conv" in table.model.haystack[table.model.node_at(table.proxy.mapToSource(
        table.proxy.index(r, 0)).row())] for r in range(table.visible_rows()))


def test_weights_histogram_shows_the_layers_weights(qtbot, window, small_cnn):
    import numpy as np

    state = open_and_wait(qtbot, window, small_cnn.onnx)
    conv = next(i for i, n in enumerate(state.graph.nodes) if n.op_type == "Conv")
    window.select_node(conv)
    qtbot.waitUntil(lambda: bool(window.details.stats), timeout=30000)
    edges, counts = window.details.histogram_data()
    weight = state.graph.nodes[conv].weights[0]
    stat = next(s for s in window.details.stats if s.name == weight)
    assert counts.sum() == stat.count == int(np.prod(stat.shape))


def test_collapse_and_expand_scopes(qtbot, window, mobilenet):
    from workbench.core import metrics

    state = open_and_wait(qtbot, window, mobilenet.onnx)
    before = len(state.view.items)
    with qtbot.waitSignal(window.view_ready, timeout=30000):
        window.toggle_scope("features.2")
    assert "s:features.2" in window.graph_view.boxes
    assert len(window.state.view.items) < before
    # The collapsed box sums its layers.
    item = window.state.view.by_key["s:features.2"]
    total = sum(window.state.graph.nodes[i].macs or 0 for i in item.node_indices)
    assert window.graph_view.boxes[item.key].value_text == metrics.format_value(metrics.get("macs"), total)
    view = window.graph_view
    view.center_on_key("s:features.2")
    seen_at = view.mapFromScene(view.boxes["s:features.2"].scenePos())
    with qtbot.waitSignal(window.view_ready, timeout=30000):
        window.toggle_scope("features.2")
    assert len(window.state.view.items) == before
    assert "s:features.2" not in view.boxes
    # The user keeps their place: the scope's first layer appears where its box was.
    first = view.mapFromScene(window._scope_anchor_box("features.2").scenePos())
    assert abs(first.y() - seen_at.y()) <= 2
    assert abs(first.x() - seen_at.x()) <= 20  # the scroll range may stop it at the scene's edge


def test_large_graphs_open_collapsed_to_a_readable_level(qtbot, window):
    from workbench.core.synthetic import synthetic_graph

    graph = synthetic_graph(3000)
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.show_graph(graph)
    items = window.state.view.items
    assert len(items) <= 130 and any(it.kind == "scope" for it in items)
    assert sum(len(it.node_indices) for it in items) == 3000
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.expand_all()
    assert len(window.state.view.items) == 3000


def test_search_expands_and_centres_the_layer(qtbot, window, mobilenet):
    open_and_wait(qtbot, window, mobilenet.onnx)
    with qtbot.waitSignal(window.view_ready, timeout=30000):
        window.collapse_overview()
    state = window.state
    hidden = next(i for i, key in enumerate(state.view.owner) if key.startswith("s:"))
    name = state.graph.nodes[hidden].name
    with qtbot.waitSignal(window.view_ready, timeout=30000):
        window.find_edit.setText(name)
        qtbot.keyClick(window.find_edit, Qt.Key_Return)
    qtbot.waitUntil(lambda: window.table.selected_node() == hidden, timeout=10000)
    key = window.state.view.key_of_node(hidden)
    assert key == f"n:{hidden}" and window.graph_view.selected_key == key
    view = window.graph_view
    shown = view.mapFromScene(view.boxes[key].sceneBoundingRect()).boundingRect()
    assert view.viewport().rect().contains(shown)
    assert window.find_layer("no-such-layer-anywhere") is None


def test_keyboard_navigation_follows_edges(qtbot, window, small_cnn):
    state = open_and_wait(qtbot, window, small_cnn.onnx)
    first = state.view.items[0].key
    window.graph_view.select_key(first)
    window.graph_view.setFocus()
    qtbot.keyClick(window.graph_view, Qt.Key_Down)
    successors = {r.dst for r in state.layout.edges if r.src == first}
    assert window.graph_view.selected_key in successors
    qtbot.keyClick(window.graph_view, Qt.Key_Up)
    assert window.graph_view.selected_key == first


def test_theme_switch_changes_palette_and_graph(qtbot, window, small_cnn, settings_path):
    open_and_wait(qtbot, window, small_cnn.onnx)
    window.apply_theme("dark")
    assert QApplication.palette().color(QPalette.Window).lightness() < 80
    assert window.graph_view.colors.background.lightness() < 80
    window.apply_theme("light")
    assert QApplication.palette().color(QPalette.Window).lightness() > 200
    assert window.settings.value("theme") == "light"


def test_settings_round_trip(qtbot, make_window, small_cnn):
    first = make_window()
    open_and_wait(qtbot, first, small_cnn.onnx)
    first.apply_theme("dark")
    first.set_metric("params")
    first.resize(700, 520)
    first.close()
    second = make_window()
    assert second.theme_choice == "dark"
    assert second.graph_view.metric_id == "params"
    assert second.recent_files()[0] == str(small_cnn.onnx)
    assert [a.text() for a in second.recent_menu.actions()][0] == str(small_cnn.onnx)
    assert abs(second.width() - 700) < 30 and abs(second.height() - 520) < 30


def test_heat_metric_colours_and_legend(qtbot, window, small_cnn):
    open_and_wait(qtbot, window, small_cnn.onnx)
    window.set_metric("macs")
    macs_fill = {k: b.fill.name() for k, b in window.graph_view.boxes.items() if b.fill is not None}
    assert "MACs (counted)" in window.graph_view.legend.text()
    window.set_metric("params")
    params_fill = {k: b.fill.name() for k, b in window.graph_view.boxes.items() if b.fill is not None}
    assert "Parameters (counted)" in window.graph_view.legend.text()
    assert macs_fill != params_fill


def test_cancel_while_loading_keeps_the_app_usable(qtbot, window, mobilenet):
    window.open_path(str(mobilenet.torchscript), shapes=["1x3x224x224"])
    task = window.loader.current
    with qtbot.waitSignal(task.cancelled, timeout=1000):
        qtbot.mouseClick(window.cancel_button, Qt.LeftButton)
    assert not window.progress.isVisible()
    with qtbot.assertNotEmitted(window.view_ready, wait=1500):
        pass
    assert window.state is None
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_demo()


def test_corrupt_file_shows_an_error_and_the_app_stays_usable(qtbot, window, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with qtbot.waitSignal(window.load_failed, timeout=30000) as blocker:
        window.open_path(str(bad))
    assert "broken.onnx" in blocker.args[0] and "not a readable ONNX file" in blocker.args[0]
    assert window.error_box.isVisible() and "broken.onnx" in window.error_box.text()
    window.error_box.close()
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_demo()


def test_code_running_files_ask_before_loading(qtbot, window, small_cnn, tmp_path):
    import torch

    pickled = tmp_path / "full.pt"
    torch.save(small_cnn.module, pickled)
    asked = []
    window.ask_trust = lambda path, problem: asked.append(problem) or False
    window.open_path(str(pickled), shapes=["1x1x28x28"])
    qtbot.waitUntil(lambda: bool(asked), timeout=30000)
    assert window.state is None and "runs code" in asked[0]
    window.ask_trust = lambda path, problem: True
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_path(str(pickled), shapes=["1x1x28x28"])
    assert window.state.graph.params == small_cnn.params


def test_missing_input_shape_asks_for_it(qtbot, window, small_cnn):
    window.ask_shapes = lambda path, inputs, problem: ["1x1x28x28"]
    with qtbot.waitSignal(window.view_ready, timeout=60000):
        window.open_path(str(small_cnn.torchscript))
    assert window.state.graph.inputs[0].shape == [1, 1, 28, 28]


def test_screenshot_command_writes_a_full_window_png(tmp_path):
    from PySide6.QtGui import QImage

    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "gui", "--demo", "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 800


def test_single_key_shortcuts_do_not_swallow_typing(qtbot, window, small_cnn):
    open_and_wait(qtbot, window, small_cnn.onnx)
    qtbot.keyClicks(window.table.filter, "fc")
    assert window.table.filter.text() == "fc"
    window.find_edit.setFocus()
    qtbot.keyClicks(window.find_edit, "conf")
    assert window.find_edit.text() == "conf"

