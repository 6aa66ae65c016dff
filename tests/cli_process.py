"""The command line as a user runs it: a child process, its exit status and what it printed."""

from __future__ import annotations

import subprocess
import sys

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(WORKBENCH + list(args), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Bad input: exit 2 and one line on stderr, no traceback, naming each of ``needles``."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
