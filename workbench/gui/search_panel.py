"""The Search panel: pruning ratio x bit width over a project's variant, the smallest one within X points.

The search itself (``workbench.core.search``) runs on a worker thread and starts its own worker processes; each
finished candidate arrives here as a SearchProgress on the GUI thread and fills a row. ``results_changed`` tells the
main window that the project gained variants (to refresh its charts); the project's listeners hear of every change
as well. Stop cancels: running candidates are stopped and discarded; Start with the same name resumes.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from workbench.core.errors import WorkbenchError
from workbench.core.project import ROOT_ID, Project
from workbench.core.report import human, human_bytes
from workbench.core.search import OBJECTIVES, CandidateResult, SearchConfig, SearchProgress, SearchResult, search
from workbench.core.search_space import BIT_OPTIONS, DEFAULT_BITS, pruning_x_bits

from .workers import TaskSlot

COLUMNS = ["Candidate", "Size", "MACs", "Top-1 (%)", "Drop (pt)", "Feasible", "Pareto", "Variant"]
HEADER_TIPS = {1: "measured: bytes of the deployed ONNX file", 2: "counted from the model file",
               3: "measured on the project's validation data (ONNX Runtime)",
               4: "top-1 points below the parent (measured)", 6: "not beaten on both cost and accuracy by another"}
STRATEGIES = [("Grid (every combination)", "grid", "tpe"), ("Optuna TPE", "optuna", "tpe"),
              ("Optuna NSGA-II", "optuna", "nsga2")]
BIT_TIPS = {"fp32": "no quantization", "fp16": "half precision (real ONNX fp16)",
            "int8": "static int8, calibrated (real integer kernels)",
            "int4-linear": "4-bit weights of linear layers (real MatMulNBits); convolutions stay float",
            "w8-simulated": "8-bit weights by fake quantization: accuracy only, the deployed file stays float",
            "w4-simulated": "4-bit weights by fake quantization: accuracy only, the deployed file stays float"}


class SearchPanel(QWidget):
    """Signals: ``results_changed()`` when the project gained variants, ``finished(SearchResult)``,
    ``failed(str)`` with the error line, ``stopped()`` once a stopped search has ended."""

    results_changed = Signal()
    finished = Signal(object)
    failed = Signal(str)
    stopped = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.busy_elsewhere = lambda: ""  # the window names the other task changing the project ("" when none)
        self.project: Project | None = None
        self.parent_id = ROOT_ID
        self.slot = TaskSlot(self)
        self._variant_count = 0
        self._rows: dict[str, int] = {}
        self._minimise = "size"

        self.strategy = QComboBox(self)
        for label, strategy, sampler in STRATEGIES:
            self.strategy.addItem(label, (strategy, sampler))
        self.strategy.currentIndexChanged.connect(self._update_controls)
        self.ratio_from, self.ratio_to, self.ratio_step = (self._spin(v, 0.0, 0.95, 0.05) for v in (0.0, 0.5, 0.1))
        self.ratio_step.setMinimum(0.01)
        self.bits = {}
        bits_box = QGridLayout()
        for i, label in enumerate(BIT_OPTIONS):
            box = QCheckBox(label, self)
            box.setChecked(label in DEFAULT_BITS)
            box.setToolTip(BIT_TIPS.get(label, ""))
            box.toggled.connect(self._update_controls)
            self.bits[label] = box
            bits_box.addWidget(box, i // 3, i % 3)
        self.minimise = QComboBox(self)
        for key, text in OBJECTIVES.items():
            self.minimise.addItem(f"{key}: {text}", key)
        self.max_drop = self._spin(1.0, 0.0, 100.0, 0.1)
        self.max_drop.setSuffix(" points of top-1")
        self.trials = QSpinBox(self)
        self.trials.setRange(1, 10000)
        self.trials.setValue(20)
        self.workers = QSpinBox(self)
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setToolTip("Worker processes evaluating candidates at once (latency figures are steadier "
                                "with one)")
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("automatic (the same name resumes a stopped search)")
        for spin in (self.ratio_from, self.ratio_to, self.ratio_step):
            spin.valueChanged.connect(self._update_controls)

        form = QFormLayout()
        form.addRow("Strategy", self.strategy)
        ratios = QHBoxLayout()
        for text, spin in (("from", self.ratio_from), ("to", self.ratio_to), ("step", self.ratio_step)):
            ratios.addWidget(QLabel(text, self))
            ratios.addWidget(spin)
        form.addRow("Pruning ratio", ratios)
        form.addRow("Bit widths", bits_box)
        form.addRow("Minimise", self.minimise)
        form.addRow("Max drop", self.max_drop)
        form.addRow("Trials", self.trials)
        form.addRow("Workers", self.workers)
        form.addRow("Name", self.name)

        self.summary = QLabel(self)
        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, tip in HEADER_TIPS.items():
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSortingEnabled(False)  # rows are updated in place by candidate key
        self.winner = QLabel(self)
        self.winner.setWordWrap(True)
        self.winner.setTextFormat(Qt.RichText)

        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.winner)
        self._idle = QTimer(self)  # a stopped search still winds its workers down: Start waits for that
        self._idle.setInterval(100)
        self._idle.timeout.connect(self._check_idle)
        self._waiting = QTimer(self)  # Start pressed while another step runs: the search starts when it ends
        self._waiting.setInterval(200)
        self._waiting.timeout.connect(self._start_when_free)
        self._set_running(False)

    def _spin(self, value: float, lo: float, hi: float, step: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(lo, hi)
        spin.setSingleStep(step)
        spin.setDecimals(2)
        spin.setValue(value)
        return spin

    # ---- settings ------------------------------------------------------------------------------------------------
    def set_project(self, project: Project | None, parent_id: str = ROOT_ID) -> None:
        """The project to search and the variant candidates start from (default: the base model)."""
        self.project, self.parent_id = project, parent_id
        self._update_controls()

    def config(self) -> SearchConfig:
        """The search the controls describe (raises WorkbenchError for a setting that cannot work)."""
        bits = [label for label, box in self.bits.items() if box.isChecked()]
        lo, hi = self.ratio_from.value(), self.ratio_to.value()
        if lo > hi:
            raise WorkbenchError("the pruning ratio starts above where it ends", "swap from and to")
        space = pruning_x_bits(bits=bits, low=lo, high=hi, step=self.ratio_step.value())
        strategy, sampler = self.strategy.currentData()
        name = self.name.text().strip() or f"{space.name}-{strategy}" + ("" if self.parent_id == ROOT_ID else
                                                                           f"-{self.parent_id}")
        try:
            return SearchConfig(name=name, space=space, parent=self.parent_id, strategy=strategy, sampler=sampler,
                                trials=self.trials.value(), minimise=self.minimise.currentData(),
                                max_drop=self.max_drop.value(), workers=self.workers.value())
        except ValueError as exc:  # pydantic: only the name can be wrong here
            raise WorkbenchError(f"the search name '{name}' cannot name a file",
                                 "use letters, digits, '-', '_' and '.'") from exc

    def _update_controls(self, *_args) -> None:
        optuna = self.strategy.currentData()[0] == "optuna"
        self.trials.setEnabled(optuna)
        try:
            size = self.config().space.size() if any(b.isChecked() for b in self.bits.values()) else 0
        except WorkbenchError:
            size = 0
        self.summary.setText(f"{size} candidates" + (f", {self.trials.value()} trials drawn" if optuna else ""))
        self._set_running(self.slot.busy())

    def running(self) -> bool:
        """A search runs, or waits for another step to end before it starts."""
        return self.slot.busy() or self._waiting.isActive()

    def _set_running(self, running: bool) -> None:
        running = running or self._waiting.isActive()
        ready = self.project is not None and any(b.isChecked() for b in self.bits.values())
        self.start_button.setEnabled(ready and not running)
        self.stop_button.setEnabled(running)
        self.progress.setVisible(running)

    # ---- running -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.project is None or self.running():
            return
        try:
            self.config()
        except WorkbenchError as exc:
            self._fail(exc.one_line())
            return
        other = self.busy_elsewhere()
        if other:  # e.g. the base model is still being measured after opening it: queue, do not refuse
            self.status.setText(f"waiting for {other} to finish; the search starts then (Stop cancels)")
            self._waiting.start()
            self._set_running(True)
            return
        self._start_now()

    def _start_when_free(self) -> None:
        if self.project is None:
            self._waiting.stop()
            self._set_running(False)
        elif not self.busy_elsewhere():
            self._waiting.stop()
            self._start_now()

    def _start_now(self) -> None:
        try:
            config = self.config()
        except WorkbenchError as exc:
            self._fail(exc.one_line())
            return
        project = self.project
        self._minimise = config.minimise
        self._variant_count = len(project.variants)
        self._rows.clear()
        self.table.setRowCount(0)
        self.winner.clear()
        self.status.setText(f"searching ({config.name})…")
        self.progress.setRange(0, 0)
        task = self.slot.start("search", lambda token: search(project, config, token))
        task.progressed.connect(self._on_progress)
        task.finished.connect(self._on_finished)
        task.failed.connect(lambda exc: self._fail(exc.one_line() if isinstance(exc, WorkbenchError)
                                                   else f"unexpected {type(exc).__name__}: {exc}"))
        self._set_running(True)

    def stop(self) -> None:
        if self._waiting.isActive():
            self._waiting.stop()
            self._set_running(self.slot.busy())
            self.status.setText("not started")
            return
        task = self.slot.current
        if task is not None and task.running:
            task.cancel()
            self.status.setText("stopping: running candidates are stopped and discarded; Start resumes the search")
            self.stop_button.setEnabled(False)
            self._idle.start()

    def shutdown(self, ms: int = 30000) -> bool:
        """Cancel and wait for the search thread (window closing)."""
        self._idle.stop()
        self._waiting.stop()
        return self.slot.shutdown(ms)

    def _check_idle(self) -> None:
        if not self.slot.busy():
            self._idle.stop()
            self._set_running(False)
            self.status.setText("stopped; Start resumes the search where it stopped")
            self.stopped.emit()

    def _on_progress(self, p: SearchProgress) -> None:
        if p.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(100 * p.fraction))
        self.progress.setFormat(p.message[:90])
        if isinstance(p, SearchProgress) and p.candidate is not None:
            self._upsert(p.candidate)
            self._emit_if_new_variants()

    def _on_finished(self, result: SearchResult) -> None:
        self._set_running(False)
        for c in result.candidates:
            self._upsert(c)
        self._emit_if_new_variants()
        c = result.config
        if result.best is None:
            self.winner.setText(f"<b>No candidate within {c.max_drop:g} points</b> of the parent's top-1.")
        else:
            b = result.best
            self.winner.setText(f"<b>Winner: {b.label}</b> → variant {b.variant_id}: {self._cost(b)}, top-1 "
                                f"{100 * b.top1:.2f} % ({b.drop:+.2f} points; measured).")
        self.status.setText(f"done: {len(result.candidates)} candidates, {result.steps_run} step(s) run, the rest "
                            "reused from the project")
        self.finished.emit(result)

    def _fail(self, message: str) -> None:
        self._set_running(self.slot.busy())
        self.status.setText(f"<span style='color:#c62828'>{message}</span>")
        self.failed.emit(message)

    def _emit_if_new_variants(self) -> None:
        count = len(self.project.variants) if self.project is not None else 0
        if count != self._variant_count:
            self._variant_count = count
            self.results_changed.emit()

    # ---- table ---------------------------------------------------------------------------------------------------
    def _cost(self, c: CandidateResult) -> str:
        value = c.cost(self._minimise)
        if value is None:
            return "–"
        return {"size": lambda v: human_bytes(int(v)), "latency": lambda v: f"{v:.3f} ms p50"}.get(
            self._minimise, human)(value)

    def _upsert(self, c: CandidateResult) -> None:
        row = self._rows.get(c.key)
        if row is None:
            row = self._rows[c.key] = self.table.rowCount()
            self.table.insertRow(row)
        if c.status != "done":
            cells = [c.label, "failed", "", "", "", "", "", c.error]
        else:
            cells = [c.label, human_bytes(c.size_bytes) if c.size_bytes else "–", human(c.macs),
                     f"{100 * c.top1:.2f}" if c.top1 is not None else "–",
                     f"{c.drop:+.2f}" if c.drop is not None else "–", "yes" if c.feasible else "no",
                     "●" if c.pareto else "", c.variant_id or ""]
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if col == 0:
                item.setToolTip(" → ".join(s["method"] for s in c.steps) or "the parent itself")
            if c.status == "done" and not c.feasible:
                item.setForeground(QColor("#9e9e9e"))
            self.table.setItem(row, col, item)
