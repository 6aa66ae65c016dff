"""The HTML report in a real browser: headless Chromium loads it with no console errors and draws every part."""

from __future__ import annotations

import struct

import pytest

from chromium import render
from report_project import made_up_project
from workbench.core.report_html import write_report_html

# What the page looks like once Chromium laid it out: sizes of the charts, rows of the table, overflowing boxes.
PAGE_FACTS = """(() => {
  const svgs = [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect());
  return {
    title: document.title,
    svgs: svgs.map(r => [Math.round(r.width), Math.round(r.height)]),
    rows: document.querySelectorAll('table.variants tr[id^="row-"]').length,
    images_broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
    scroll_width: document.documentElement.scrollWidth,
  };
})()"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_console_check_catches_errors(chromium, tmp_path):
    """A page with a broken image, a console.error and an exception: all three are reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><p>x</p><img src="missing.png">'
                    '<script>console.error("boom"); undefined_function();</script>')
    errors = render(page, screenshot=False, executable=chromium).errors
    assert any("missing.png" in e for e in errors), errors
    assert any("boom" in e for e in errors), errors
    assert any("undefined_function" in e for e in errors), errors


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chromium")
    project = made_up_project(folder / "project")
    return write_report_html(project, folder / "report.html")


def test_report_renders_without_errors(chromium, report_file):
    result = render(report_file, width=1200, evaluate=PAGE_FACTS, executable=chromium)
    assert result.errors == []
    facts = result.evaluated
    assert facts["title"] == "report test — compression report"
    assert facts["rows"] == 5  # base, v1, v2, v3 and the planned v4 (the failed one is only named)
    assert facts["svgs"][:2] == [[490, 360], [490, 360]] and facts["svgs"][2][1] > 300
    assert facts["images_broken"] == 0
    assert facts["scroll_width"] <= 1200, "something is wider than the window"
    shot = report_file.with_name("report.png")
    shot.write_bytes(result.screenshot)
    assert png_size(result.screenshot) == (1200, result.height)
    assert result.height > 2000  # the whole page, not only the first screen
