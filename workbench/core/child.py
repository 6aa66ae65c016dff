"""Command lines for the app's helper child processes, from source or from the frozen desktop bundle.

The app starts two kinds of child: the model reader (``workbench.core.loader``) and the agent's measuring mode
(``workbench/agent/server.py --job`` / ``--describe``). From source each is ``sys.executable`` running Python code.
In the PyInstaller bundle ``sys.executable`` is the app itself and there is no interpreter to hand a script to, so
the bundle's executable takes a hidden first argument, ``--frozen-child NAME``, and runs that child instead
(dispatched by :mod:`workbench.frozen`).
"""

from __future__ import annotations

import sys
from pathlib import Path

FROZEN_CHILD_FLAG = "--frozen-child"

# How each child starts from source: arguments after sys.executable (the agent is a file so it can be copied alone).
_FROM_SOURCE: dict[str, list[str]] = {
    "loader": ["-m", "workbench.core.loader"],
    "agent": [str(Path(__file__).resolve().parents[1] / "agent" / "server.py")],
}


def is_frozen() -> bool:
    """True inside the PyInstaller bundle (PyInstaller's bootloader sets ``sys.frozen``)."""
    return bool(getattr(sys, "frozen", False))


def child_command(name: str, *args: str) -> list[str]:
    """The argv that starts child ``name`` ('loader' or 'agent') with ``args``."""
    if name not in _FROM_SOURCE:
        raise ValueError(f"unknown child process '{name}'")
    if is_frozen():
        return [sys.executable, FROZEN_CHILD_FLAG, name, *args]
    return [sys.executable, *_FROM_SOURCE[name], *args]
