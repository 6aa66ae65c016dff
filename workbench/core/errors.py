"""Errors a user can act on.

Every failure the core reports to a person is a :class:`WorkbenchError`: one line that names the file, the problem
and what to do. The CLI prints that line (no traceback unless ``--debug``); the GUI shows it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """A problem with the user's input, phrased for the user.

    ``problem`` says what is wrong, ``hint`` what to do about it, ``path`` which file it concerns.
    """

    def __init__(self, problem: str, hint: str = "", path: str | Path | None = None):
        self.problem = problem
        self.hint = hint
        self.path = str(path) if path is not None else None
        super().__init__(self.one_line())

    def __reduce__(self):
        # Errors cross process boundaries (the loader process): keep every field, not just the message.
        return (_rebuild, (type(self), self.problem, self.hint, self.path, dict(self.__dict__)))

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}:")
        parts.append(self.problem.rstrip("."))
        line = " ".join(parts) + "."
        if self.hint:
            hint = self.hint.rstrip(".")
            line += " " + hint[:1].upper() + hint[1:] + "."
        return line


def first_problem(exc, fallback: str) -> tuple[str, str]:
    """(where, what) of a pydantic ValidationError's first error: the dotted field path (``fallback`` when it names
    no field) and the message, for a WorkbenchError that names the setting."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first.get("loc", ())) or fallback, first.get("msg", "invalid value")


class UnsupportedFormat(WorkbenchError):
    """No reader recognises the file."""


class CorruptModel(WorkbenchError):
    """The file claims a known format but cannot be parsed."""


class TrustRequired(WorkbenchError):
    """Loading the file would run code from it, and the user has not said they trust it."""


class InputShapeError(WorkbenchError):
    """Input shapes are missing, malformed or do not fit the model.

    ``inputs`` lists the model's declared inputs (TensorSpec) when known, so a GUI can ask for the shapes.
    """

    def __init__(self, problem: str, hint: str = "", path=None, inputs: list | None = None):
        super().__init__(problem, hint, path)
        self.inputs = inputs or []


def _rebuild(cls, problem, hint, path, state):
    err = cls.__new__(cls)
    WorkbenchError.__init__(err, problem, hint, path)
    err.__dict__.update(state)
    return err
