"""Atomic writes: whole or nothing, and files readable like any other the user makes."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from workbench.core.fileio import NEW_FILE_MODE, leftover_temps, write_atomic


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_a_new_file_gets_the_usual_permissions_and_a_replaced_one_keeps_its_own(tmp_path):
    mask = os.umask(0o022)  # the process's own umask, as the module read it at import
    try:
        report = tmp_path / "report.html"
        write_atomic(report, "<html></html>")
        assert stat.S_IMODE(report.stat().st_mode) == NEW_FILE_MODE  # not the temp file's private 0o600
        assert NEW_FILE_MODE == 0o666 & ~mask  # what open() gives: 0o644 under the usual umask 022
        private = tmp_path / "project.json"
        private.write_text("{}")
        private.chmod(0o600)  # the user made it private: a save keeps it so
        write_atomic(private, '{"name": "p"}')
        assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_text() == '{"name": "p"}'
    finally:
        os.umask(mask)
    assert leftover_temps(tmp_path) == []
