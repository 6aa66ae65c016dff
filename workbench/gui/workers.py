"""Run core generators on a worker thread; report progress, results and errors on the GUI thread.

A core task is a generator that yields :class:`~workbench.core.progress.Progress` and returns its result. Cancel sets
the task's token: the task stops at its next check, and the GUI stops listening at once, so the window never waits
on a step that cannot be interrupted. Closing the window cancels and waits for running tasks.
"""

from __future__ import annotations

import logging
from typing import Callable, Generator

from PySide6.QtCore import QObject, QThread, Signal

from workbench.core.progress import CancelToken, Cancelled, Progress

log = logging.getLogger(__name__)

TaskFactory = Callable[[CancelToken], Generator[Progress, None, object]]


class _Thread(QThread):
    progressed = Signal(object)
    returned = Signal(object)
    errored = Signal(object)

    def __init__(self, factory: TaskFactory, token: CancelToken):
        super().__init__()
        self.factory = factory
        self.token = token

    def run(self) -> None:  # worker thread: never touch widgets here
        try:
            gen = self.factory(self.token)
            while True:
                try:
                    progress = next(gen)
                except StopIteration as stop:
                    if not self.token.cancelled:
                        self.returned.emit(stop.value)
                    return
                if self.token.cancelled:
                    gen.close()
                    return
                self.progressed.emit(progress)
        except Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - delivered to the GUI thread as a message, never lost
            if not self.token.cancelled:
                self.errored.emit(exc)


class Task(QObject):
    """One running task. Signals arrive on the GUI thread: ``progressed(Progress)``, ``finished(result)``,
    ``failed(exception)``, ``cancelled()``; exactly one of the last three is emitted."""

    progressed = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()

    def __init__(self, name: str, factory: TaskFactory, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self._done = False
        self._thread = _Thread(factory, self.token)
        self._thread.progressed.connect(self._on_progress)
        self._thread.returned.connect(self._on_returned)
        self._thread.errored.connect(self._on_error)

    def start(self) -> "Task":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return not self._done

    def cancel(self) -> None:
        if self._done:
            return
        self.token.cancel()
        self._done = True
        self.cancelled.emit()

    def wait(self, ms: int = 30000) -> bool:
        return self._thread.wait(ms)

    def thread_running(self) -> bool:
        return self._thread.isRunning()

    def _on_progress(self, progress: Progress) -> None:
        if not self._done:
            self.progressed.emit(progress)

    def _on_returned(self, value: object) -> None:
        if not self._done:
            self._done = True
            self.finished.emit(value)

    def _on_error(self, exc: Exception) -> None:
        if not self._done:
            self._done = True
            self.failed.emit(exc)


class TaskSlot(QObject):
    """At most one task per panel: starting a new one cancels the old. Keeps finished threads until they end."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.current: Task | None = None
        self._all: list[Task] = []

    def start(self, name: str, factory: TaskFactory) -> Task:
        if self.current is not None and self.current.running:
            self.current.cancel()
        task = Task(name, factory, self)
        self._all = [t for t in self._all if t.thread_running()] + [task]
        self.current = task
        return task.start()

    def shutdown(self, ms: int = 30000) -> bool:
        """Cancel everything and wait for the threads to end (window closing)."""
        ok = True
        for task in self._all:
            task.cancel()
        for task in self._all:
            ok = task.wait(ms) and ok
        return ok

    def busy(self) -> bool:
        return any(t.thread_running() for t in self._all)

    def idle(self) -> bool:
        """No thread runs and the last task's outcome has been delivered (``busy`` ends when the thread does,
        which can be just before its finished/failed signal reaches the GUI thread)."""
        return not self.busy() and (self.current is None or not self.current.running)
