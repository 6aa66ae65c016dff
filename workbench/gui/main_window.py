"""The main window: layer graph in the centre; layer table, details, overview and log in docks."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QApplication, QComboBox, QCompleter, QDockWidget, QFileDialog, QLabel, QLineEdit,
                               QMainWindow, QMessageBox, QProgressBar, QPushButton, QScrollArea, QToolBar)

from workbench import __version__
from workbench.core import metrics
from workbench.core.errors import InputShapeError, TrustRequired, WorkbenchError
from workbench.core.loader import shared_loader
from workbench.core.loading import ViewState, load_steps, show, view_steps
from workbench.core.progress import Progress
from workbench.core.readers import split_factory
from workbench.core.readers.base import OpenRequest
from workbench.core.report import human, human_bytes
from workbench.core.shapes import ShapeRequest
from workbench.core.viewgraph import all_scopes, default_expansion, toggle

from . import theme
from .details_panel import DetailsPanel
from .dialogs import InputShapeDialog, confirm_trust
from .graph_view import GraphView
from .layer_table import LayerTable
from .log_panel import LogPanel
from .minimap import Minimap
from .workers import TaskSlot

log = logging.getLogger("workbench.gui")
MAX_RECENT = 10
LATENCY_BUDGET_S = 5.0  # the latency taken with every measurement: fewer runs for a slow model (shown with p50)
LAYOUT_VERSION = 2  # bump when docks are added or removed: Qt would put new docks anywhere in an old layout
MODEL_FILTER = "Models (*.onnx *.pt *.pth *.pt2 *.bin *.ckpt *.py);;All files (*)"


class MainWindow(QMainWindow):
    """Signals: ``model_loaded(graph)``, ``view_ready()`` after every (re)draw, ``load_failed(message)``."""

    model_loaded = Signal(object)
    view_ready = Signal()
    load_failed = Signal(str)

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings or QSettings()
        self.state: ViewState | None = None
        self.request: OpenRequest | None = None
        self.loader = TaskSlot(self)
        self.relayout = TaskSlot(self)
        self.last_error = ""
        self.setWindowTitle("Model Workbench")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.setDockNestingEnabled(True)

        self.graph_view = GraphView(self)
        self.setCentralWidget(self.graph_view)
        self.table = LayerTable(self)
        self.details = DetailsPanel(self)
        self.log_panel = LogPanel(self)
        self.minimap = Minimap(self.graph_view, self)
        self.docks = {}
        self._dock("layers", "Layers", self.table, Qt.BottomDockWidgetArea)
        from .experiments import ExperimentCharts

        self.charts = ExperimentCharts(self)
        self._dock("charts", "Charts", self.charts, Qt.BottomDockWidgetArea)
        # split before anything is tabbed with the layers: Qt adds a split-off dock as a tab once they are tabbed
        self.splitDockWidget(self.docks["layers"], self.docks["charts"], Qt.Horizontal)
        self._dock("log", "Log", self.log_panel, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["layers"], self.docks["log"])
        self.docks["layers"].raise_()
        self._dock("overview", "Overview", self.minimap, Qt.RightDockWidgetArea)
        self._dock("details", "Details", self.details, Qt.RightDockWidgetArea)
        self.splitDockWidget(self.docks["overview"], self.docks["details"], Qt.Vertical)
        from .method_panel import MethodPanel

        self.compress = MethodPanel(self)
        self._dock("compress", "Compress", self._scrolled(self.compress), Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["details"], self.docks["compress"])
        self.docks["details"].raise_()
        from .charts import TrainingCurves
        from .sensitivity_table import SensitivityTable

        self.training = TrainingCurves(self)
        self._dock("training", "Training", self.training, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["log"], self.docks["training"])
        self.sensitivity = SensitivityTable(self)
        self.sensitivity.layer_selected.connect(self.find_layer)
        self._dock("sensitivity", "Sensitivity", self.sensitivity, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["training"], self.docks["sensitivity"])
        from .experiments import ProjectSignals, VariantsPanel

        self.variants_panel = VariantsPanel(self)
        self._dock("variants", "Variants", self.variants_panel, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["layers"], self.docks["variants"])
        from .latency_panel import LatencyPanel

        self.latency_panel = LatencyPanel(self)
        self._dock("devices", "Devices", self._scrolled(self.latency_panel), Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["compress"], self.docks["devices"])
        from .search_panel import SearchPanel

        self.search_panel = SearchPanel(self)
        self._dock("search", "Search", self._scrolled(self.search_panel), Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["devices"], self.docks["search"])
        self.docks["details"].raise_()
        self.search_panel.busy_elsewhere = self._step_running
        self.search_panel.failed.connect(lambda message: log.error("Search: %s", message))
        self.search_panel.finished.connect(lambda result: log.info("Search finished: %s", result.best.label
                                                                   if getattr(result, "best", None) else "no winner"))
        self.latency_panel.measure_current.connect(self.measure_on_device)
        self.latency_panel.measure_all.connect(self.measure_all_on_device)
        self.latency_panel.int8_check.connect(self.check_int8)
        self.latency_panel.devices.devices_changed.connect(self._sync_devices)
        self.docks["layers"].raise_()
        self.project = None
        self.current_variant: str | None = None
        self.project_signals = ProjectSignals(self)
        self.project_signals.changed.connect(self._project_changed)
        # one slot per kind of background work, so one never cancels another: measuring a variant (after opening
        # or applying), latency and int8 checks on a device, and counting two variants to compare them
        self.measure_task = TaskSlot(self)
        self._measure_queue: list = []  # (project, variant id, with latency) asked for while another ran
        self.device_task = TaskSlot(self)
        self.compare_task = TaskSlot(self)
        self.variants_panel.variant_selected.connect(self.open_variant)
        self.charts.selected.connect(self.open_variant)
        self.variants_panel.measure_requested.connect(self.measure_variant)
        self.variants_panel.compare_requested.connect(self.compare_variants)
        self.variants_panel.remove_requested.connect(self.remove_variant)
        self.variants_panel.rename_requested.connect(lambda vid, name: self._project_call(
            lambda: self.project.rename(vid, name)))
        self.variants_panel.recipe_requested.connect(self.save_recipe)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(3000)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.compress.apply_requested.connect(self.apply_method)
        self.compress.estimated.connect(self._preview_estimate)
        self.compress.cancel_requested.connect(self.cancel_method)
        self.methods_task = TaskSlot(self)
        self.artifact = None
        self._session_dir = None
        self._default_layout_pending = True  # proportions for the window's real size, on first show

        self._build_status_bar()
        self._build_actions()
        self._build_toolbar()

        self.graph_view.item_selected.connect(self._graph_selected)
        self.graph_view.toggle_requested.connect(self.toggle_scope)
        self.graph_view.override_requested.connect(self.override_layer)
        self.graph_view.override_fields = lambda: self.compress.per_layer_fields()
        self.table.override_requested.connect(self.override_layer)
        self.table.override_fields = lambda: self.compress.per_layer_fields()
        self.table.node_selected.connect(self.select_node)

        self.theme_choice = str(self.settings.value("theme", "system"))
        self.apply_theme(self.theme_choice, save=False)
        QApplication.styleHints().colorSchemeChanged.connect(self._system_scheme_changed)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        layout = self.settings.value("window/state")
        if layout is not None and self.restoreState(layout, LAYOUT_VERSION):  # one saved with other docks: ignored
            self._default_layout_pending = False
        metric = str(self.settings.value("heat_metric", "macs"))
        self.set_metric(metric if metric in {s.id for s in metrics.sources()} else "macs")
        self._refresh_recent()
        shared_loader()  # start the reader process now: it imports torch while the user picks a file
        log.info("Model Workbench %s ready", __version__)

    # ---- construction -------------------------------------------------------------------------------------
    def _dock(self, name: str, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _scrolled(self, widget) -> QScrollArea:
        """A side panel in a scroll area: a long form scrolls instead of forcing a tall window, and fits the dock's
        width (text wraps)."""
        scroll = QScrollArea(self)
        scroll.setWidget(widget)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        return scroll

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.totals_label = QLabel("Open a model: File › Open, drop a file here, or File › Open demo", self)
        bar.addWidget(self.totals_label, 1)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_loading)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _action(self, text: str, slot, shortcut=None, menu=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self.open_action = self._action("&Open…", self.choose_file, QKeySequence.Open, file_menu)
        self._action("Open &demo model", self.open_demo, None, file_menu)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        self._action("Open &project…", self.choose_project, QKeySequence("Ctrl+Shift+O"), file_menu,
                     "Open a project folder (project.json and artifacts/)")
        self._action("&Save project as…", self.save_project_as, QKeySequence("Ctrl+Shift+S"), file_menu,
                     "Copy this project (it is saved automatically) to a folder you choose")
        self._action("Project &dataset…", self.choose_dataset, None, file_menu,
                     "The data variants are measured, calibrated and fine-tuned on")
        self._action("Save &recipe of the current variant…", lambda: self.save_recipe(self.current_variant),
                     None, file_menu)
        self._action("&Export deployment package…", self.export_package, None, file_menu,
                     "ONNX fp32 (and int8) with deploy.json, a model card, infer.py and the evidence")
        self._action("Export &report…", self.export_report, None, file_menu,
                     "One self-contained HTML (or PDF) report of the project's variants, charts and recipes")
        file_menu.addSeparator()
        self._action("&Quit", self.close, QKeySequence.Quit, file_menu)

        edit = mb.addMenu("&Edit")
        self.undo_action = self._action("&Undo", lambda: self._project_call(self.project.undo),
                                        QKeySequence.Undo, edit)
        self.redo_action = self._action("&Redo", lambda: self._project_call(self.project.redo),
                                        QKeySequence("Ctrl+Shift+Z"), edit)
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)

        view = mb.addMenu("&View")
        self.find_action = self._action("&Find layer…", self.focus_find, QKeySequence.Find, view)
        self.fit_action = self._action("&Fit to window", self.graph_view.fit, QKeySequence("F"), view)
        self._action("Show &whole graph", self.graph_view.fit_all, QKeySequence("Shift+F"), view)
        self._action("Zoom &in", lambda: self.graph_view.zoom(1.25), QKeySequence.ZoomIn, view)
        self._action("Zoom &out", lambda: self.graph_view.zoom(0.8), QKeySequence.ZoomOut, view)
        view.addSeparator()
        self._action("&Expand all scopes", self.expand_all, QKeySequence("Ctrl+E"), view)
        self._action("&Collapse to overview", self.collapse_overview, QKeySequence("Ctrl+Shift+E"), view)
        view.addSeparator()
        color_menu = self.color_menu = view.addMenu("&Colour layers by")
        self.metric_group = QActionGroup(self)
        self.metric_actions = {}
        for source in metrics.sources():
            a = self._action(f"{source.label} ({source.provenance})", None, None, color_menu)
            a.setCheckable(True)
            a.triggered.connect(lambda checked=False, sid=source.id: self.set_metric(sid))
            self.metric_group.addAction(a)
            self.metric_actions[source.id] = a
        theme_menu = view.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions = {}
        for choice in theme.THEMES:
            a = self._action(choice.capitalize() if choice != "system" else "Follow system", None, None, theme_menu)
            a.setCheckable(True)
            a.triggered.connect(lambda checked=False, c=choice: self.apply_theme(c))
            self.theme_group.addAction(a)
            self.theme_actions[choice] = a
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

        help_menu = mb.addMenu("&Help")
        self._action("&About Model Workbench", self.about, None, help_menu)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setObjectName("toolbar_main")
        bar.setMovable(False)
        self.addToolBar(bar)
        bar.addAction(self.open_action)
        bar.addAction(self.fit_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Colour by ", self))
        self.metric_combo = QComboBox(self)
        for source in metrics.sources():
            self.metric_combo.addItem(f"{source.label} ({source.provenance})", source.id)
        self.metric_combo.currentIndexChanged.connect(
            lambda i: self.set_metric(self.metric_combo.itemData(i)))
        bar.addWidget(self.metric_combo)
        bar.addSeparator()
        self.find_edit = QLineEdit(self)
        self.find_edit.setPlaceholderText("Find layer (Ctrl+F)")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.setMaximumWidth(320)
        self.find_edit.returnPressed.connect(lambda: self.find_layer(self.find_edit.text()))
        bar.addWidget(self.find_edit)

    # ---- opening ------------------------------------------------------------------------------------------
    def choose_file(self) -> None:
        start = str(self.settings.value("last_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, MODEL_FILTER)
        if path:
            self.settings.setValue("last_dir", str(Path(path).parent))
            self.open_path(path)

    def open_demo(self) -> None:
        from workbench.core.demo import demo_request

        self.open_request(demo_request())

    def open_path(self, path: str, shapes: list[str] | None = None, trust: bool = False,
                  arch: str | None = None) -> None:
        file, factory = split_factory(str(path))
        try:
            request = OpenRequest(path=file, shapes=ShapeRequest.parse(shapes), trust_code=trust,
                                  architecture=arch, factory=factory)
        except WorkbenchError as exc:
            self.show_error(exc.one_line())
            return
        self.open_request(request)

    def open_request(self, request: OpenRequest) -> None:
        """Open a model on a worker thread; progress and Cancel in the status bar."""
        self.request = request
        log.info("Opening %s", request.path)
        task = self._start_loading(request.path.name,
                                   lambda token: load_steps(request, token, loader=shared_loader()))
        task.finished.connect(lambda state, r=request: self._loaded(r, state))
        task.failed.connect(lambda exc, r=request: self._load_failed(r, exc))

    def show_graph(self, graph) -> None:
        """Show a LayerGraph that is already in memory (built by code rather than read from a file)."""
        task = self._start_loading(graph.source, lambda token: view_steps(graph, token))
        task.finished.connect(lambda state: self._loaded(None, state))
        task.failed.connect(lambda exc: self.show_error(f"{graph.source}: {exc}"))

    def _start_loading(self, name: str, factory):
        factory = _without_gc_pauses(factory)
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"Opening {name}…")
        self.progress.show()
        self.cancel_button.show()
        task = self.loader.start("open", factory)
        task.progressed.connect(self._on_progress)
        task.cancelled.connect(self._load_cancelled)
        return task

    def cancel_loading(self) -> None:
        if self.loader.current is not None:
            self.loader.current.cancel()

    def _on_progress(self, p: Progress) -> None:
        if p.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(100 * p.fraction))
        self.progress.setFormat(p.message)

    def _end_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def _load_cancelled(self) -> None:
        self._end_progress()
        log.info("Opening cancelled")
        self.statusBar().showMessage("Opening cancelled", 4000)

    def _loaded(self, request: OpenRequest | None, state: ViewState, variant=None) -> None:
        self._end_progress()
        self.request = request
        if request is not None and variant is None:
            self._remember(request)
        self.table.set_graph(state.graph)
        self.details.set_graph(state.graph)
        if variant is not None:  # a variant of the open project: its artifact knows its extra files
            self.artifact = variant[1]
            self.current_variant = variant[0]
            self.variants_panel.select(variant[0])
            self.charts.select(variant[0])
        elif request is not None:
            from workbench.core.artifact import ModelArtifact

            self.artifact = ModelArtifact.from_graph(state.graph)
            self._new_project(request, state.graph)
        self.compress.set_graph(state.graph)  # after the current variant is known: its estimate goes on the charts
        self.graph_view.selected_key = None
        self._show_state(state, keep_view=False)
        g = state.graph
        uncounted = sum(g.uncounted_ops.values())
        self.totals_label.setText(
            f"<b>{Path(g.source).name}</b> · {g.format} · {len(g.nodes):,} layers · {human(g.params)} params · "
            f"{human(g.macs)} MACs · {human(g.flops)} FLOPs · {human_bytes(g.weight_bytes)} weights"
            f" — counted from shapes, not measured" + (f" · {uncounted} layer(s) not counted" if uncounted else ""))
        self._update_title()
        self.find_edit.setCompleter(QCompleter([n.name for n in g.nodes], self))
        self.find_edit.completer().setCaseSensitivity(Qt.CaseInsensitive)
        self.find_edit.completer().setFilterMode(Qt.MatchContains)
        log.info("Opened %s: %d layers, %s params, %s MACs (counted)", g.source, len(g.nodes), human(g.params),
                 human(g.macs))
        self.model_loaded.emit(g)

    def _load_failed(self, request: OpenRequest, exc: Exception) -> None:
        self._end_progress()
        if isinstance(exc, TrustRequired) and not request.trust_code:
            if self.ask_trust(str(request.path), exc.problem):
                request.trust_code = True
                self.open_request(request)
            else:
                log.info("Not loading %s: not trusted", request.path)
            return
        if isinstance(exc, InputShapeError) and exc.inputs and not request.shapes:
            shapes = self.ask_shapes(str(request.path), exc.inputs, exc.problem)
            if shapes:
                request.shapes = ShapeRequest.parse(shapes)
                self.open_request(request)
            return
        message = exc.one_line() if isinstance(exc, WorkbenchError) else \
            f"{request.path}: unexpected {type(exc).__name__}: {exc}"
        if not isinstance(exc, WorkbenchError):
            log.exception("Unexpected failure while opening", exc_info=exc)
        self.show_error(message, "Could not open the model")
        self.load_failed.emit(message)

    # Overridable for tests (and for headless use), so no modal dialog blocks.
    def ask_trust(self, path: str, problem: str) -> bool:
        return confirm_trust(self, path, problem)

    def ask_shapes(self, path: str, inputs, problem: str) -> list[str] | None:
        dialog = InputShapeDialog(path, inputs, problem, self)
        return dialog.shapes() if dialog.exec() else None

    def show_error(self, message: str, title: str = "Model Workbench") -> None:
        self.last_error = message
        log.error(message)
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()  # window-modal, returns at once: the app keeps running
        self.error_box = box

    # ---- showing ------------------------------------------------------------------------------------------
    def _show_state(self, state: ViewState, keep_view: bool) -> None:
        self.state = state
        self.graph_view.set_state(state, keep_view=keep_view)
        self.minimap.refit()
        self.view_ready.emit()

    def set_expanded(self, expanded: set[str], then_select: int | None = None, anchor: str | None = None) -> None:
        """Re-lay out with another set of open scopes, off the GUI thread; old positions seed the new order.

        ``anchor`` (a scope path) stays where it was on screen, so the user keeps their place.
        """
        if self.state is None:
            return
        graph, previous = self.state.graph, self.state.layout
        screen = None
        if anchor is not None:
            box = self._scope_anchor_box(anchor)
            if box is not None:
                screen = self.graph_view.mapFromScene(box.scenePos())
        task = self.relayout.start("layout", lambda token: _relayout(graph, expanded, previous))
        task.finished.connect(lambda state: self._relaid(state, then_select, anchor, screen))
        task.failed.connect(lambda exc: self.show_error(f"Layout failed: {exc}"))

    def _scope_anchor_box(self, scope: str):
        """The box that stands for ``scope`` now: the collapsed box, or the first visible layer inside it."""
        view = self.graph_view
        if f"s:{scope}" in view.boxes:
            return view.boxes[f"s:{scope}"]
        for item in self.state.view.items:
            path = item.scope if item.kind == "scope" else self.state.graph.nodes[item.node_index].scope
            if path == scope or (path or "").startswith(scope + "."):
                return view.boxes.get(item.key)
        return None

    def _relaid(self, state: ViewState, then_select: int | None, anchor: str | None = None, screen=None) -> None:
        self._show_state(state, keep_view=True)
        if anchor is not None and screen is not None:
            box = self._scope_anchor_box(anchor)
            if box is not None:  # scroll so the toggled scope is where the user last saw it
                view = self.graph_view
                delta = view.mapFromScene(box.scenePos()) - screen
                view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + delta.x())
                view.verticalScrollBar().setValue(view.verticalScrollBar().value() + delta.y())
        if then_select is not None:
            self.select_node(then_select)

    def toggle_scope(self, scope: str) -> None:
        if self.state is not None:
            log.info("%s %s", "Collapsing" if scope in self.state.view.expanded else "Expanding", scope)
            self.set_expanded(toggle(self.state.view.expanded, scope), anchor=scope)

    def expand_all(self) -> None:
        if self.state is not None:
            self.set_expanded(all_scopes(self.state.graph))

    def collapse_overview(self) -> None:
        if self.state is not None:
            self.set_expanded(default_expansion(self.state.graph, budget=40))

    # ---- compression ------------------------------------------------------------------------------------------
    def session_dir(self):
        """Where applied results are written (kept after exit; projects arrive with experiments)."""
        from pathlib import Path as _Path

        from PySide6.QtCore import QStandardPaths

        if self._session_dir is None:
            import time

            base = _Path(QStandardPaths.writableLocation(QStandardPaths.CacheLocation) or ".")
            self._session_dir = base / "sessions" / time.strftime("%Y%m%d-%H%M%S")
        return self._session_dir

    def apply_method(self, method_id: str, values: dict, overrides: dict, data_spec: str) -> None:
        """Run a method on the current variant off the GUI thread; the result becomes a new, measured variant.

        Analyses (kind ``analysis``) make no variant: their result is shown on the graph and in their own dock.
        """
        if self.artifact is None or self.state is None:
            self.show_error("Open a model first.")
            return
        from workbench.core.methods import get

        try:
            method = get(method_id)
        except WorkbenchError as exc:
            self.show_error(exc.one_line())
            return
        if self.search_panel.running():
            self.show_error("A search is running on this project: stop it (Search dock) before applying a step.")
            return
        if method.kind == "analysis" or self.project is None or self.current_variant is None:
            self._run_analysis(method_id, values, overrides, data_spec)
            return
        from workbench.core.datasets import DatasetConfig
        from workbench.core.runner import local_latency, run_step, variant_artifact
        from workbench.core.variants import Step

        project, parent, graph = self.project, self.current_variant, self.state.graph
        if data_spec and data_spec not in ("", "choose"):
            try:
                config = DatasetConfig.parse(data_spec)
            except WorkbenchError as exc:
                self.show_error(exc.one_line())
                return
            if project.dataset != config:
                project.set_dataset(config)
        step = Step(method_id, dict(values), {k: dict(v) for k, v in overrides.items()})
        from .experiments import step_label

        name = step_label(step)[:60]  # the user renames it in the Variants table

        def task(token):
            variant = yield from run_step(project, parent, step,
                                          measure_latency=local_latency(runs=50, budget_s=LATENCY_BUDGET_S),
                                          name=name, token=token)
            artifact = variant_artifact(project, variant)
            new_graph = yield from shared_loader().open(artifact.request(), token)
            yield Progress(1.0, "Laying out the result…")
            return variant.id, artifact, graph, show(new_graph, default_expansion(new_graph))

        log.info("Applying %s %s to %s", method_id, values, parent)
        self._start_method(method_id, task)

    def _run_analysis(self, method_id: str, values: dict, overrides: dict, data_spec: str) -> None:
        artifact, graph = self.artifact, self.state.graph
        project_data = self.project.dataset if self.project is not None else None
        folder = self.project.folder if self.project is not None else None
        step = len(list(self.session_dir().glob("*"))) if self.session_dir().exists() else 0
        work_dir = self.session_dir() / f"{step + 1:03d}-{method_id}"

        def task(token):
            from workbench.core.data import check_fits, load_data
            from workbench.core.methods import RunContext, get

            method = get(method_id)
            params = method.parse_params(values)
            method.check_accepts(artifact)
            data = None
            if data_spec:
                yield Progress(None, "Loading data…")
                data = load_data(data_spec)
                check_fits(data, artifact.input_shapes[0], data_spec)
            elif project_data is not None:
                from workbench.core.datasets import iter_load

                data = yield from iter_load(project_data, folder, token)
                check_fits(data, artifact.input_shapes[0], project_data.kind)
            elif method.needs_data:
                raise WorkbenchError(f"{method.label} needs data", "choose the demo digits or an .npz file")
            ctx = RunContext(work_dir=work_dir, token=token, data=data, overrides=overrides,
                             log=lambda m: log.info("%s: %s", method_id, m))
            result = yield from method.run(artifact, params, ctx)
            new_graph = yield from shared_loader().open(result.request(), token)
            yield Progress(1.0, "Laying out the result…")
            return None, result, graph, show(new_graph, default_expansion(new_graph))

        log.info("Running %s %s", method_id, values)
        self._start_method(method_id, task)

    def _start_method(self, method_id: str, task) -> None:
        self.compress.set_running(True)
        self.compress.status.setText("")
        t = self.methods_task.start("method", task)
        t.progressed.connect(self.compress.show_progress)
        t.progressed.connect(self._training_point)
        self.training.start(f"{method_id} on {self.artifact.path.name} — measured while it trains")
        t.finished.connect(self._method_done)
        t.failed.connect(self._method_failed)
        t.cancelled.connect(self._method_cancelled)

    # ---- devices, latency and export -----------------------------------------------------------------------
    def _sync_devices(self, devices) -> None:
        """The project keeps its agents (this machine is always there)."""
        if self.project is None:
            return
        wanted = {d.name: {**d.to_dict(), "name": d.name} for d in devices if d.kind != "local"}
        have = {d["name"] for d in self.project.devices}
        for name in have - set(wanted):
            self._project_call(lambda n=name: self.project.remove_device(n))
        for name in set(wanted) - have:
            self._project_call(lambda n=name: self.project.add_device(wanted[n]))

    def measure_on_device(self, device, runs: int, variant_ids: list[str] | None = None) -> None:
        """Latency of the current variant (or every done one, interleaved) on ``device``, recorded as measured."""
        if self.project is None:
            self.show_error("Open a model first.")
            return
        from workbench.core.runner import variant_artifact
        from workbench.core.variants import LatencyMetric
        from workbench.devices.base import BenchConfig
        from workbench.devices.compare import measure_interleaved

        project = self.project
        ids = variant_ids or [self.current_variant or "base"]
        ids = [i for i in ids if i == "base" or project.variant(i).status == "done"]
        shown = self.state.graph if self.state is not None else None
        current = self.current_variant

        def task(token):
            models = {}
            for vid in ids:
                yield Progress(None, f"Preparing {project.variant(vid).name}…")
                variant = project.variant(vid)
                if not variant.deploy:  # the base model before its first measurement: export it once
                    from workbench.core.runner import measure

                    measured = yield from measure(project, variant, token=token)
                    variant = project.merge_measurement(variant, measured, f"Export {variant.name}")
                models[vid] = variant_artifact(project, variant, deploy=True).path
            rounds = 3 if len(models) > 1 else 1
            reports = yield from measure_interleaved(device, models, BenchConfig(runs=runs, threads=1), rounds, token)
            for vid, r in reports.items():
                project.record_latency(vid, LatencyMetric(device.name, r.p50_ms, r.p90_ms, r.p99_ms, r.runs,
                                                          r.threads, r.device_info.get("cpu_model", "")))
            return reports

        def done(reports) -> None:
            self.latency_panel.set_busy(False)
            lines = [f"{project.variant(vid).name}: p50 {r.p50_ms:.3f} ms (p90 {r.p90_ms:.3f}, p99 {r.p99_ms:.3f}; "
                     f"{r.runs} runs, {r.threads} thread)" for vid, r in reports.items()]
            self.latency_panel.result.setText(f"Measured on {device.name}:\n" + "\n".join(lines))
            report = reports.get(current)
            if report is not None and shown is not None and report.ops:
                from workbench.core.op_latency import map_ops, register_latency_metric

                times = map_ops(shown, report.ops, device.name, report.profile_runs)
                register_latency_metric(shown, times)
                self._refresh_metric_choices()
                self.set_metric("latency")
                log.info("Per-layer latency on %s: %.0f %% of the profiled time matched to layers", device.name,
                         100 * times.matched_share)

        self.latency_panel.set_busy(True)
        self.latency_panel.result.setText(f"Measuring on {device.name}…")
        t = self.device_task.start("latency", task)
        t.progressed.connect(lambda p: self.latency_panel.result.setText(p.message))
        t.finished.connect(done)
        t.failed.connect(lambda exc: (self.latency_panel.set_busy(False), self.latency_panel.result.setText(
            "Failed: " + (exc.one_line() if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}")
            + " The GUI and the project are unchanged.")))
        t.cancelled.connect(lambda: self.latency_panel.set_busy(False))

    def measure_all_on_device(self, device, runs: int) -> None:
        if self.project is None:
            return
        ids = [v.id for v in self.project.variants.values() if v.id == "base" or v.status == "done"]
        self.measure_on_device(device, runs, ids)

    def check_int8(self, device) -> None:
        """Will int8 be faster on ``device``? From its ISA flags and, when the project has an int8 variant, that
        variant's integer-kernel coverage (an estimate, labelled so)."""
        project = self.project
        int8 = [v for v in project.variants.values() if v.status == "done" and v.step is not None
                and v.step.method == "quantize.int8_static"] if project else []

        def task(token):
            from workbench.devices.int8_verdict import int8_verdict

            yield Progress(None, f"Asking {device.name} what it can do…")
            info = device.describe()
            coverage = None
            if int8:
                import tempfile

                from workbench.core.runner import variant_artifact
                from workbench.methods.quantize_int8 import integer_coverage

                path = variant_artifact(project, int8[-1], deploy=True).path
                with tempfile.TemporaryDirectory() as tmp:
                    coverage = integer_coverage(path, Path(tmp))
            return int8_verdict(info, coverage)

        def done(verdict) -> None:
            self.latency_panel.set_busy(False)
            basis = f"with the coverage of {int8[-1].name}" if int8 else "(no int8 variant yet: from the CPU only)"
            self.latency_panel.result.setText(f"{device.name}: {verdict.summary} {basis}.\n• "
                                              + "\n• ".join(verdict.reasons))

        self.latency_panel.set_busy(True)
        t = self.device_task.start("int8 check", task)
        t.finished.connect(done)
        t.failed.connect(lambda exc: (self.latency_panel.set_busy(False), self.latency_panel.result.setText(
            "Failed: " + (exc.one_line() if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"))))

    def export_report(self, path=None):
        """File › Export report (HTML or PDF by the file name); saves the project first so the report is current."""
        from .report_actions import export_report

        if self.project is not None:
            self.autosave()
        written = export_report(self.project, path, self)
        if written is not None:
            self.statusBar().showMessage(f"Report written: {written}", 8000)
        return written

    def export_package(self) -> None:
        """File › Export deployment package: the current variant, with its figures and recipe."""
        if self.project is None or self.current_variant is None:
            self.show_error("Open a model first.")
            return
        from workbench.core.project_export import export_request_for_variant

        from .export_dialog import ExportDialog

        try:
            request = export_request_for_variant(self.project, self.current_variant,
                                                 Path.home() / f"{self.project.name}-package",
                                                 log=lambda m: log.info("export: %s", m))
        except WorkbenchError as exc:
            self.show_error(exc.one_line())
            return
        self.export_dialog = ExportDialog(request, self)
        self.export_dialog.exported.connect(lambda r: log.info("Exported %s", r.out))
        self.export_dialog.show()

    # ---- projects and variants ----------------------------------------------------------------------------
    def _new_project(self, request: OpenRequest, graph) -> None:
        """Every opened model starts a project (autosaved in the session folder until saved elsewhere)."""
        from workbench.core.datasets import DatasetConfig
        from workbench.core.demo import demo_request
        from workbench.core.modelspec import ModelSpec
        from workbench.core.project import ROOT_ID, Project

        if self.project is not None:
            self.project.remove_listener(self._project_listener)
            self.project.autosave()
        folder = self.session_dir() / f"project-{len(list(self.session_dir().glob('project-*'))) + 1}"
        try:
            project = Project.create(folder, Path(graph.source).stem)
            if Path(request.path) == Path(demo_request().path):
                project.set_base_model(ModelSpec.demo())
                project.set_dataset(DatasetConfig(kind="demo"))
            else:
                shape = list(graph.inputs[0].shape) if len(graph.inputs) == 1 else None
                project.set_base_model(ModelSpec(path=str(Path(request.path).resolve()), input_shape=shape,
                                                 architecture=request.architecture, trust_code=request.trust_code))
        except (WorkbenchError, OSError) as exc:
            log.error("No project for this model: %s", exc)
            self.project = None
            return
        self._set_project(project, ROOT_ID)
        self.measure_variant(ROOT_ID)  # size and latency at once; accuracy too when the project has a dataset

    def _set_project(self, project, current: str | None) -> None:
        if self.search_panel.running():
            self.search_panel.shutdown()
        self.project = project
        self.current_variant = current
        self.search_panel.set_project(project, "base")
        self.latency_panel.devices.load(project.devices)
        project.add_listener(self._project_listener)
        self._refresh_experiments()
        self._update_title()
        log.info("Project %s in %s", project.name, project.folder)

    def _preview_estimate(self, method, estimate) -> None:
        """Show the Compress panel's estimate on the charts as a hollow point from the current variant."""
        from .charts import PREVIEW_ID, ChartPoint
        from .experiments import latest_accuracy

        variant = self.project.variants.get(self.current_variant) if self.project and self.current_variant else None
        acc = latest_accuracy(variant) if variant is not None else None
        if method is None or estimate is None or variant is None or acc is None or method.kind == "analysis":
            self.charts.set_preview(None)
            return
        self.charts.set_preview(ChartPoint(
            PREVIEW_ID, f"estimate: {method.id}", variant.id, 100 * acc.top1, estimate.size_bytes, None, False,
            f"estimated by {method.id} before running: params {human(estimate.params)}, MACs "
            f"{human(estimate.macs)}\naccuracy: {variant.name}'s, until the result is measured"))

    def _project_listener(self, change) -> None:  # any thread: hand over to the GUI thread
        self.project_signals.changed.emit(change)

    def _project_changed(self, change) -> None:
        if self.project is None:
            return
        if change.kind in ("undo", "redo"):
            self.statusBar().showMessage(f"{change.kind.capitalize()}: {change.label}", 4000)
        gone = self.current_variant is not None and self.current_variant not in self.project.variants
        if gone:  # undone or removed: show the base model instead
            self.current_variant = None
        self._refresh_experiments()
        if gone and "base" in self.project.variants:
            self.open_variant("base")

    def _refresh_experiments(self) -> None:
        project = self.project
        variants = list(project.variants.values()) if project else []
        self.variants_panel.set_variants(variants, self.current_variant)
        self.charts.set_variants(variants, self.current_variant)
        self.charts.set_hint("Accuracy needs a dataset: File › Project dataset…" if project is not None
                             and project.dataset is None else "")
        self.compress.set_project_dataset(project.dataset.describe() if project and project.dataset else None)
        self.compress.update_estimate()  # the preview point follows the current variant's measured accuracy
        self.undo_action.setEnabled(bool(project and project.can_undo))
        self.redo_action.setEnabled(bool(project and project.can_redo))
        self.undo_action.setText(f"&Undo {project.undo_label}" if project and project.can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {project.redo_label}" if project and project.can_redo else "&Redo")
        self._update_title()

    def _update_title(self) -> None:
        parts = []
        if self.project is not None and self.current_variant in self.project.variants:
            parts.append(self.project.variants[self.current_variant].name)
        if self.state is not None:
            parts.append(Path(self.state.graph.source).name)
        if self.project is not None:
            parts.append(f"project {self.project.name}")
        self.setWindowTitle(" — ".join(parts + ["Model Workbench"]))

    def _project_call(self, fn) -> None:
        """Run a project change from a menu or panel; a refusal is shown, never raised into Qt."""
        if self.project is None:
            return
        try:
            fn()
        except WorkbenchError as exc:
            self.show_error(exc.one_line())

    def autosave(self) -> None:
        if self.project is None:
            return
        try:
            self.project.autosave()
        except OSError as exc:  # a full disk: say so once per failure, keep the window and the data in memory
            self.statusBar().showMessage(f"Could not save the project: {exc}. Free some space; it will retry.", 8000)

    def open_variant(self, variant_id: str) -> None:
        """Show a variant's model in the graph (the one compression steps now apply to)."""
        if self.project is None or variant_id not in self.project.variants:
            return
        if variant_id == self.current_variant and self.state is not None:
            self.charts.select(variant_id)
            self.variants_panel.select(variant_id)
            return
        from workbench.core.runner import variant_artifact

        variant = self.project.variant(variant_id)
        if variant.status != "done" and variant_id != "base":
            self.statusBar().showMessage(f"{variant.name} is {variant.status}"
                                         + (f": {variant.error}" if variant.error else ""), 6000)
            return
        try:
            artifact = variant_artifact(self.project, variant)
        except WorkbenchError as exc:
            self.show_error(exc.one_line())
            return
        request = artifact.request()
        task = self._start_loading(variant.name, lambda token: load_steps(request, token, loader=shared_loader()))
        task.finished.connect(lambda state, r=request, v=(variant_id, artifact): self._loaded(r, state, v))
        task.failed.connect(lambda exc, r=request: self._load_failed(r, exc))

    _TASK_WORDS = {"method": "the running step", "latency": "the latency measurement", "int8 check": "the int8 check",
                   "measure": "the measurement"}

    @property
    def experiment_slots(self) -> tuple:
        return self.measure_task, self.device_task, self.compare_task

    def _step_running(self) -> str:
        """What else is changing the project now, in words ("" when nothing is)."""
        for slot in (self.methods_task, self.measure_task, self.device_task):
            if slot.busy():
                name = slot.current.name if slot.current is not None else ""
                return self._TASK_WORDS.get(name, "the running step")
        return ""

    def measure_variant(self, variant_id: str, latency: bool = True) -> None:
        """Measure accuracy (validation split) and, unless ``latency`` is False, latency (this machine, 1 thread)
        of a variant on a worker."""
        if self.project is None:
            return
        from workbench.core.runner import evaluate_variant, local_latency

        project = self.project
        current = self.measure_task.current
        if current is not None and current.running:  # one at a time, none cancelled: the next waits its turn
            if (project, variant_id, latency) not in self._measure_queue:
                self._measure_queue.append((project, variant_id, latency))
            self.statusBar().showMessage(f"{project.variant(variant_id).name} is measured after the running "
                                         "measurement", 4000)
            return

        def task(token):
            timing = local_latency(runs=50, budget_s=LATENCY_BUDGET_S) if latency else None
            variant = yield from evaluate_variant(project, variant_id, measure_latency=timing, token=token)
            return variant

        t = self.measure_task.start("measure", task)
        t.progressed.connect(lambda p: self.statusBar().showMessage(f"Measuring: {p.message}", 3000))
        t.finished.connect(lambda v: log.info("Measured %s: %s", v.name, self._describe(v)))
        t.failed.connect(lambda exc: self.show_error(exc.one_line() if isinstance(exc, WorkbenchError)
                                                     else f"Measuring failed: {type(exc).__name__}: {exc}"))
        for signal in (t.finished, t.failed, t.cancelled):
            signal.connect(self._measure_next)

    def _measure_next(self, *_args) -> None:
        while self._measure_queue:
            project, variant_id, latency = self._measure_queue.pop(0)
            if project is self.project and variant_id in project.variants:
                self.measure_variant(variant_id, latency)
                return

    @staticmethod
    def _describe(v) -> str:
        acc = f"top-1 {100 * v.accuracy[-1].top1:.2f} % on {v.accuracy[-1].samples} samples" if v.accuracy else \
            "no accuracy"
        lat = f", p50 {v.latency[-1].p50:.3f} ms ({v.latency[-1].runs} runs)" if v.latency else ""
        return acc + lat + " (measured)"

    def remove_variant(self, variant_id: str) -> None:
        self._project_call(lambda: self.project.remove_variant(variant_id))

    def compare_variants(self, a: str, b: str) -> None:
        """Count both variants' layers on a worker, then show the per-layer differences."""
        if self.project is None:
            return
        from workbench.core.runner import variant_artifact
        from workbench.core.variants import compare_layers

        project = self.project
        va, vb = project.variant(a), project.variant(b)

        def task(token):
            yield Progress(None, f"Counting {va.name}…")
            ga = yield from shared_loader().open(variant_artifact(project, va).request(), token)
            yield Progress(None, f"Counting {vb.name}…")
            gb = yield from shared_loader().open(variant_artifact(project, vb).request(), token)
            return ga, gb, compare_layers(ga, gb)

        t = self.compare_task.start("compare", task)
        t.finished.connect(lambda r: self.show_comparison(va, vb, *r))
        t.failed.connect(lambda exc: self.show_error(exc.one_line() if isinstance(exc, WorkbenchError)
                                                     else f"Compare failed: {type(exc).__name__}: {exc}"))

    def show_comparison(self, va, vb, ga, gb, comparison) -> None:
        from .experiments import CompareDialog

        self.compare_dialog = CompareDialog(va, vb, comparison, ga, gb, self)
        self.compare_dialog.show()

    def save_recipe(self, variant_id: str | None) -> None:
        if self.project is None or not variant_id:
            self.show_error("Open a model and pick a variant first.")
            return
        path = self.ask_save_path("Save recipe", f"{self.project.variant(variant_id).name}.yaml",
                                  "Recipes (*.yaml *.yml)")
        if not path:
            return
        from workbench.core.recipes import recipe_from_lineage, save_recipe

        try:
            save_recipe(recipe_from_lineage(self.project, variant_id), Path(path))
        except (WorkbenchError, OSError) as exc:
            self.show_error(exc.one_line() if isinstance(exc, WorkbenchError) else f"Could not save: {exc}")
            return
        self.statusBar().showMessage(f"Recipe saved: {path} (replay with `workbench run {Path(path).name}`)", 8000)

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder",
                                                  str(self.settings.value("last_dir", str(Path.home()))))
        if folder:
            self.open_project(folder)

    def open_project(self, folder) -> None:
        """Open a project folder: repair what a crash left, show its variants, and open its latest result."""
        from workbench.core.project import ROOT_ID, Project

        try:
            project = Project.open(Path(folder))
        except WorkbenchError as exc:
            self.show_error(exc.one_line())
            return
        report = project.recovery
        if not report.clean:
            log.warning("Recovered %s: removed %d unfinished writes; %d variants were interrupted (%s); %d files no "
                        "variant uses", folder, len(report.removed_temps), len(report.interrupted),
                        ", ".join(report.interrupted) or "none", len(report.orphans))
        if self.project is not None:
            self.project.remove_listener(self._project_listener)
            self.project.autosave()
        done = [v.id for v in project.variants.values() if v.status == "done"]
        self._set_project(project, None)
        self.open_variant(done[-1] if done else ROOT_ID)

    def save_project_as(self) -> None:
        if self.project is None:
            self.show_error("Open a model first: its project is then saved automatically.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Copy the project into a new folder (it must not exist yet "
                                                  "or be empty)", str(Path.home()))
        if folder:
            self.copy_project_to(Path(folder))

    def copy_project_to(self, folder: Path) -> None:
        import shutil

        if folder.exists() and any(folder.iterdir()):
            folder = folder / self.project.name
        try:
            self.project.save()
            shutil.copytree(self.project.folder, folder)
        except (OSError, shutil.Error) as exc:
            self.show_error(f"Could not copy the project to {folder}: {exc}")
            return
        current = self.current_variant
        self.open_project(folder)
        if current:
            self.open_variant(current)

    def choose_dataset(self) -> None:
        if self.project is None:
            self.show_error("Open a model first.")
            return
        from .dataset_dialog import DatasetDialog

        dialog = DatasetDialog(self.project.dataset, self.project.folder, self)
        if dialog.exec() and dialog.config is not None:
            self.set_project_dataset(dialog.config)

    def set_project_dataset(self, config) -> None:
        """Use ``config`` for the project; every finished variant then gets its accuracy on it, one at a time
        (latency only where none was measured yet: the data does not change it)."""
        from workbench.core.project import ROOT_ID

        self._project_call(lambda: self.project.set_dataset(config))
        if self.project.dataset is not None:
            for variant in list(self.project.variants.values()):
                if variant.id == ROOT_ID or variant.status == "done":
                    self.measure_variant(variant.id, latency=not variant.latency)

    def ask_save_path(self, title: str, name: str, filters: str) -> str | None:
        """A file name to save to (overridable in tests)."""
        path, _ = QFileDialog.getSaveFileName(self, title, str(Path(str(self.settings.value("last_dir", "."))) / name),
                                              filters)
        return path or None

    def _training_point(self, p: Progress) -> None:
        if p.metrics:
            if not self.training.series:  # the first point of a run brings the curves forward
                self.docks["training"].show()
                self.docks["training"].raise_()
            self.training.add(p.metrics)

    def _method_done(self, result) -> None:
        variant_id, artifact, before, state = result
        self.compress.set_running(False)
        self.artifact = artifact
        if variant_id is not None:
            self.current_variant = variant_id
            self._refresh_experiments()
        after = state.graph
        self.table.set_graph(after)
        self.details.set_graph(after)
        self.compress.set_graph(after)
        self.graph_view.selected_key = None
        self._show_state(state, keep_view=False)
        variant = self.project.variant(variant_id) if variant_id and self.project else None
        name = variant.name if variant else artifact.meta.get("method", "result")
        text = (f"{name}: params {human(before.params)} → {human(after.params)}, MACs {human(before.macs)} → "
                f"{human(after.macs)} (counted), file {human_bytes(artifact.size_bytes)}"
                + (f"; {self._describe(variant)}" if variant else f" at {artifact.path}"))
        self.compress.status.setText(text)
        if "sensitivity" in artifact.meta:
            self._show_sensitivity(artifact.meta)
        self._update_title()
        self.totals_label.setText(f"<b>{name}</b> · {after.format} · {len(after.nodes):,} layers · "
                                  f"{human(after.params)} params · {human(after.macs)} MACs — counted from shapes")
        log.info("Applied: %s", text)

    def _show_sensitivity(self, meta: dict) -> None:
        """Paint the measured per-layer accuracy drop on the graph and offer the mixed-precision suggestion."""
        from workbench.methods.sensitivity import register_metric

        register_metric({row["layer"]: row["drop_points"] for row in meta["sensitivity"]})
        self._refresh_metric_choices()
        self.set_metric("sensitivity")
        worst = ", ".join(f"{r['layer']} ({r['drop_points']:.2f})" for r in meta["sensitivity"][:3])
        self.compress.status.setText(f"Measured on {meta.get('samples')} samples: base accuracy "
                                     f"{100 * meta['base_accuracy']:.2f} %; most sensitive: {worst} (points lost).")
        self.compress.offer_suggestion(meta.get("suggestion") or {})
        self.sensitivity.set_result(meta)
        self.docks["sensitivity"].show()
        self.docks["sensitivity"].raise_()

    def _refresh_metric_choices(self) -> None:
        """Add metric sources registered since start (measured ones arrive with runs) to the menus."""
        for source in metrics.sources():
            if self.metric_combo.findData(source.id) < 0:
                self.metric_combo.addItem(f"{source.label} ({source.provenance})", source.id)
            if source.id not in self.metric_actions:
                a = QAction(f"{source.label} ({source.provenance})", self)
                a.setCheckable(True)
                a.triggered.connect(lambda checked=False, sid=source.id: self.set_metric(sid))
                self.metric_group.addAction(a)
                self.metric_actions[source.id] = a
                self.color_menu.addAction(a)

    def _method_failed(self, exc: Exception) -> None:
        self.compress.set_running(False)
        message = exc.one_line() if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, WorkbenchError):
            log.exception("method failed", exc_info=exc)
        self.compress.status.setText(f"Failed: {message} The model is unchanged.")
        log.error("Method failed: %s", message)

    def _method_cancelled(self) -> None:
        self.compress.set_running(False)
        self.compress.status.setText("Cancelled. The model is unchanged.")
        log.info("Method cancelled")

    def cancel_method(self) -> None:
        if self.methods_task.current is not None:
            self.methods_task.current.cancel()

    def ask_override_value(self, layer: str, field: str, current):
        """Ask for a per-layer value (overridable in tests); None when cancelled."""
        from PySide6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(self, "Per-layer override", f"{field} for {layer}:", text=str(current))
        return text if ok else None

    def override_layer(self, layer: str, field: str) -> None:
        method = self.compress.method
        if method is None:
            return
        current = self.compress.form.values().get(field)
        value = self.ask_override_value(layer, field, current)
        if value is None:
            return
        try:
            checked = method.parse_params({**self.compress.form.values(), field: value})
        except WorkbenchError as exc:
            self.compress.status.setText(exc.one_line())
            return
        self.compress.set_override(layer, field, getattr(checked, field))
        self.docks["compress"].raise_()

    def set_metric(self, metric_id: str) -> None:
        self.graph_view.apply_metric(metric_id)
        self.settings.setValue("heat_metric", metric_id)
        if metric_id in self.metric_actions:
            self.metric_actions[metric_id].setChecked(True)
        i = self.metric_combo.findData(metric_id)
        if i >= 0 and i != self.metric_combo.currentIndex():
            self.metric_combo.setCurrentIndex(i)

    # ---- selection ----------------------------------------------------------------------------------------
    def _graph_selected(self, key: str) -> None:
        item = self.state.view.by_key.get(key) if self.state else None
        if item is None:
            return
        if item.kind == "node":
            self.table.select_node(item.node_index)
            self.details.show_node(item.node_index)
        else:
            self.details.show_scope(item.scope)

    def select_node(self, index: int) -> None:
        """Select a layer everywhere; opens its scope first when it is collapsed."""
        if self.state is None:
            return
        key = self.state.view.key_of_node(index)
        if not key.startswith("n:"):
            self.set_expanded(self.state.view.expanded_to_show(index), then_select=index)
            return
        self.graph_view.select_key(key, center=False, emit=False)
        self.graph_view.center_on_key(key)
        self.table.select_node(index)
        self.details.show_node(index)

    def focus_find(self) -> None:
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def find_layer(self, text: str) -> int | None:
        """Select and centre the first layer whose name matches ``text`` (exact, then contained)."""
        if self.state is None or not text.strip():
            return None
        text = text.strip().lower()
        nodes = self.state.graph.nodes
        index = next((i for i, n in enumerate(nodes) if n.name.lower() == text), None)
        if index is None:
            index = next((i for i, n in enumerate(nodes) if text in n.name.lower()), None)
        if index is None:
            self.statusBar().showMessage(f"No layer matches '{text}'", 4000)
            return None
        self.select_node(index)
        return index

    # ---- theme, settings, files ---------------------------------------------------------------------------
    def apply_theme(self, choice: str, save: bool = True) -> None:
        self.theme_choice = choice if choice in theme.THEMES else "system"
        name = theme.apply(QApplication.instance(), self.theme_choice)
        self.resolved_theme = name
        colors = theme.graph_colors(name)
        self.graph_view.set_colors(colors)
        self.details.set_theme_colors(colors.node.name(), colors.text.name(), colors.selection.name())
        self.training.set_theme_colors(colors.node.name(), colors.text.name())
        self.charts.set_theme_colors(colors.node.name(), colors.text.name(), colors.selection.name(),
                                     colors.heat_high.name())
        self.minimap.setBackgroundBrush(colors.background)
        if self.theme_choice in self.theme_actions:
            self.theme_actions[self.theme_choice].setChecked(True)
        if save:
            self.settings.setValue("theme", self.theme_choice)

    def _system_scheme_changed(self, *_):
        if self.theme_choice == "system":
            self.apply_theme("system", save=False)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, request: OpenRequest) -> None:
        from workbench.core.demo import demo_model_path

        if request.path == demo_model_path():
            return
        path = str(request.path)
        recent = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        if not files:
            empty = self.recent_menu.addAction("(none yet)")
            empty.setEnabled(False)

    def about(self) -> None:
        QMessageBox.about(self, "About Model Workbench",
                          f"<b>Model Workbench {__version__}</b><br>Inspect, compress and measure neural networks."
                          "<br>Figures marked <i>counted</i> come from the model's shapes; <i>measured</i> ones from "
                          "runs on a device.")

    # ---- drag and drop, closing ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._default_layout_pending:
            self._default_layout_pending = False
            self._default_layout()

    def _default_layout(self) -> None:
        """Dock sizes for a first start: the charts and variants get two fifths of the height, so a chart is
        readable in a demo; the side panels a quarter of the width."""
        width, height = self.width(), self.height()
        side = max(380, width // 4)
        self.resizeDocks([self.docks["details"]], [side], Qt.Horizontal)
        self.resizeDocks([self.docks["overview"], self.docks["details"]], [170, max(400, height - 170)], Qt.Vertical)
        self.resizeDocks([self.docks["layers"]], [max(260, (2 * height) // 5)], Qt.Vertical)
        rest = max(800, width - side)
        self.resizeDocks([self.docks["layers"], self.docks["charts"]], [rest // 2, rest - rest // 2], Qt.Horizontal)

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel every task and wait for worker threads (a step in progress finishes in the background)."""
        self._measure_queue.clear()
        for slot in (self.loader, self.relayout, self.details.tasks, self.methods_task, *self.experiment_slots):
            slot.shutdown()
        self.latency_panel.shutdown()
        self.search_panel.shutdown()
        self.autosave_timer.stop()
        self.autosave()
        self.log_panel.detach()


def _relayout(graph, expanded, previous):
    yield Progress(None, "Laying out…")
    return show(graph, expanded, previous)


def _without_gc_pauses(factory):
    """Run a loading task with automatic garbage collection paused, then freeze what it built.

    A full collection over the tens of thousands of objects a large graph allocates holds the interpreter lock for
    ~90 ms, from whichever thread triggers it: the window froze while a 20 k-layer graph loaded. The graph lives as
    long as it is shown, so freezing it also keeps later collections from rescanning it.
    """
    import gc

    def task(token):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return (yield from factory(token))
        finally:
            gc.freeze()
            if enabled:
                gc.enable()

    return task
