"""Progress and cancellation for long work: core generators yield Progress and check a CancelToken."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """How far a task is (0..1, or None when unknown) and what it is doing, in words for the user."""

    fraction: float | None
    message: str
    # Training methods attach measured points for live curves: {"epoch": 1.5, "train loss": 0.31, ...}.
    metrics: dict[str, float] | None = None


class Cancelled(Exception):
    """Raised inside a task when its CancelToken was set; callers treat it as a normal stop, not an error."""


class CancelToken:
    """Set from any thread; checked by the task between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def scaled(gen, lo: float, hi: float, prefix: str = ""):
    """Re-yield a sub-task's progress mapped into ``lo..hi`` of this one (messages prefixed, metrics kept);
    returns the sub-task's result."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        fraction = None if p.fraction is None else lo + (hi - lo) * p.fraction
        yield Progress(fraction, prefix + p.message, p.metrics)
