"""Undo/redo: every project change is a command with a ``do`` and an ``undo`` (deltas, not snapshots, so a change
made meanwhile by a running experiment is never rolled back by undoing something else)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Command:
    label: str
    do: Callable[[], None]
    undo: Callable[[], None]


class CommandStack:
    def __init__(self) -> None:
        self._done: list[Command] = []
        self._undone: list[Command] = []

    def push(self, command: Command) -> None:
        """Run ``command`` and record it; a new command clears what could be redone."""
        command.do()
        self._done.append(command)
        self._undone.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_label(self) -> str:
        return self._done[-1].label if self._done else ""

    @property
    def redo_label(self) -> str:
        return self._undone[-1].label if self._undone else ""

    def undo(self) -> Command | None:
        if not self._done:
            return None
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        return command

    def redo(self) -> Command | None:
        if not self._undone:
            return None
        command = self._undone.pop()
        command.do()
        self._done.append(command)
        return command

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
