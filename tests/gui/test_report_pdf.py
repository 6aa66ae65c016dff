"""The PDF report (Qt's PDF writer, offscreen): a valid PDF whose pages carry the report's text and charts."""

from __future__ import annotations

import re

import pytest

from pdf_text import compact, page_numbers, page_text, read_pdf
from report_project import made_up_project
from workbench.core.errors import WorkbenchError


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return made_up_project(tmp_path_factory.mktemp("pdf") / "project")


def test_pdf_has_pages_text_and_images(project, tmp_path):
    from workbench.gui.report_actions import save_report

    path = save_report(project, tmp_path / "report.pdf")
    data = path.read_bytes()
    pdf = read_pdf(data)
    pages = page_numbers(pdf)
    assert 3 <= len(pages) <= 10
    texts = [compact(page_text(pdf, p)) for p in pages]
    everything = "".join(texts)
    assert texts[0].startswith(compact("report test — compression report"))
    for needle in ("pruned + fine-tuned", "int8 <static>", "98.30 %", "0.062 ms", "Against the base model",
                   "How each figure was measured", "method: prune.channels", "Environment", "onnxruntime"):
        assert compact(needle) in everything, needle
    assert everything.count("measured") >= 28  # 4 measured rows × 7 figures, each labelled
    assert compact("≈ 107 k") in everything and "estimated" in everything
    images = [n for n, body in pdf.objects.items() if re.search(rb"/Subtype\s*/Image", pdf.dict_of(n))]
    assert len(images) == 4  # the two charts, the MACs per layer (rasterised) and the picture of the graph
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]  # no temporary file left


def test_svg_image_renders_the_chart():
    from workbench.core.report_svg import Point, scatter_svg
    from workbench.gui.app import make_app
    from workbench.gui.report_pdf import svg_image

    make_app()
    svg = scatter_svg([Point("a", "a", None, 1.0, 90.0), Point("b", "b", "a", 2.0, 95.0)], "x", str, "t")
    image = svg_image(svg, scale=1.0)
    assert (image.width(), image.height()) == (560, 360)
    blue = sum(1 for x in range(0, 560, 2) for y in range(0, 360, 2)
               if image.pixelColor(x, y).blue() > 200 and image.pixelColor(x, y).red() < 80)
    assert blue > 20, "the blue points were not drawn"
    with pytest.raises(WorkbenchError, match="not valid SVG"):
        svg_image("<svg")


def test_wrong_suffix_and_missing_folder(project, tmp_path):
    from workbench.gui.report_actions import save_report

    with pytest.raises(WorkbenchError, match="html or .pdf"):
        save_report(project, tmp_path / "report.txt")
    with pytest.raises(WorkbenchError, match="does not exist"):
        save_report(project, tmp_path / "nowhere" / "report.pdf")


def test_export_report_action_writes_the_file(project, tmp_path, qtbot):
    from workbench.gui.report_actions import export_report

    assert export_report(project, tmp_path / "r.html") == tmp_path / "r.html"
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
