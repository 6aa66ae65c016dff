"""End-to-end fixtures: a headless Chromium, installed by the set-up when the machine lacks it."""

from __future__ import annotations

import pytest

from chromium import ChromiumMissing, ensure_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable; installs Debian's package when missing and fails (never skips) when it cannot."""
    try:
        return ensure_chromium()
    except ChromiumMissing as exc:
        pytest.fail(f"headless Chromium is needed to check the HTML report: {exc}")
