"""The HTML report: every variant with its figures and their provenance, self-contained, well-formed, with charts."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from report_project import made_up_project
from workbench.core.errors import WorkbenchError
from workbench.core.project import Project
from workbench.core.report_html import build_report, environment, recommended, write_report_html, _rows
from workbench.core.report_svg import Point, nice_ticks, scatter_svg

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SVG_LEAVES = {"rect", "line", "circle", "path", "polyline"}  # written self-closed inside inline SVG


class Structure(HTMLParser):
    """Checks nesting (every element closed in order) and collects tags, attributes, text and inline styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        self._in_style = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return made_up_project(tmp_path_factory.mktemp("report") / "project")


@pytest.fixture(scope="module")
def html(project) -> str:
    return build_report(project, run_log={"seconds": {"base": 3.5, "v1": 6.0, "total": 9.5}})


@pytest.fixture(scope="module")
def parsed(html) -> Structure:
    s = Structure()
    s.feed(html)
    s.close()
    return s


def _row(html: str, variant_id: str) -> str:
    match = re.search(rf'<tr id="row-{variant_id}">(.*?)</tr>', html, re.S)
    assert match, f"no table row for {variant_id}"
    return match.group(1)


def test_well_formed(parsed, html):
    assert html.startswith("<!DOCTYPE html>")
    assert parsed.errors == []
    assert parsed.stack == [], f"unclosed: {parsed.stack}"
    tags = [t for t, _ in parsed.tags]
    assert tags.count("html") == tags.count("head") == tags.count("body") == tags.count("title") == 1
    assert ("meta", {"charset": "utf-8"}) in parsed.tags


def test_self_contained(parsed, html):
    """No scripts, no stylesheets or images fetched from anywhere: only data: URIs and in-page anchors."""
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "xlink:href", "srcset", "poster", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:60]}> loads a resource"
    assert "url(" not in "".join(parsed.styles) and "@import" not in "".join(parsed.styles)
    assert not re.search(r"style=\"[^\"]*url\(", html)


def test_every_reported_variant_has_its_row_and_figures(project, html):
    base = _row(html, "base")
    assert "107 k" in base and "5.63 M" in base and "426 KiB" in base
    assert "98.90 %" in base and "100.00 %" in base and "0.101 ms" in base and "0.111 ms" in base
    tuned = _row(html, "v2")
    assert "pruned + fine-tuned" in tuned and "finetune (epochs=5)" in tuned and "pruned 50 %" in tuned
    assert "98.30 %" in tuned and "0.062 ms" in tuned
    assert "int8 &lt;static&gt;" in _row(html, "v3"), "names are escaped"
    assert "10.00 %" in _row(html, "v1")
    assert 'id="row-v5"' not in html and "broken run (failed: out of patience)" in html


def test_provenance_of_every_figure(html):
    """A measured row says measured under each figure; a planned one says estimated with ≈ and no accuracy."""
    for vid in ("base", "v1", "v2", "v3"):
        row = _row(html, vid)
        assert row.count('class="prov">measured') == 7, vid  # params, MACs, size, top-1, top-5, p50, p90
        assert "estimated" not in row
    planned = _row(html, "v4")
    assert planned.count('class="prov est">estimated') == 3
    assert "≈ 107 k" in planned and "≈ 293 KiB" in planned
    assert planned.count("not measured") == 4
    # what is shared by all rows is said once, in the header
    assert "1,000 samples" in html and "local, 200 runs, 1 thread" in html


def test_comparison_and_recommendation(project, html):
    table = re.search(r'<table class="compare".*?</table>', html, re.S).group(0)
    assert "+0.10 points" in table and "-0.60 points" in table and "-88.90 points" in table
    assert "1.63× faster" in table  # 0.101 / 0.062
    rows = _rows(project, None)
    base = next(r for r in rows if r.id == "base")
    assert recommended(rows, base).id == "v2"  # smallest within one point: v2 (142,293 B) beats v3 (148,661 B)
    assert recommended(rows, base, max_drop=0.0).id == "v3"
    assert "Recommended" in html and "3.1× smaller" in html


def test_charts_are_inline_svg_with_the_pareto_front(html):
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 3  # accuracy vs size, accuracy vs latency, MACs per layer
    size_chart, latency_chart, layers = svgs
    for chart in (size_chart, latency_chart):
        assert "Pareto front" in chart and "<polyline" in chart
        assert chart.count('r="5.5"') == 3  # base, v2, v3 drawn as dots
        assert "pruned 50 % (10.0 %, off scale)" in chart  # v1 sits on the bottom edge, labelled
    assert "features.2.conv.0.0/Conv" in layers and "803 k (14.3 %)" in layers


def test_sections(html):
    for heading in ("Variants", "Against the base model", "Accuracy against cost", "How each figure was measured",
                    "Recipes", "Environment", "How long the demo took"):
        assert f">{heading}</h2>" in html
    assert "method: prune.channels" in html and "method: finetune" in html and "method: quantize.int8_static" in html
    assert "1,000 validation samples" in html and "200 timed runs, 1 intra-op thread" in html
    assert "QuantizeLinear" in html  # the note on int8 MACs, since a quantized variant is shown
    env = environment()
    assert env["torch"] in html and env["onnxruntime"] in html and env["Python"] in html
    assert "9.5 s" in html


def test_graph_picture_is_embedded_as_data_uri(project):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    html = build_report(project, graph_png=png)
    assert 'src="data:image/png;base64,iVBORw0KGgo' in html


def test_written_atomically_and_errors(project, tmp_path):
    path = write_report_html(project, tmp_path / "out" / "report.html")
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    empty = Project.create(tmp_path / "empty")
    with pytest.raises(WorkbenchError, match="no variants"):
        build_report(empty)


def test_nice_ticks_cover_the_range():
    assert nice_ticks(0, 471) == [0, 100, 200, 300, 400, 500]
    ticks = nice_ticks(94.5, 99.5)
    assert ticks[0] <= 94.5 and ticks[-1] >= 99.5 and len(ticks) <= 7
    assert nice_ticks(0, 0.111)[-1] >= 0.111


def test_scatter_without_points_says_so():
    assert "no measured variants yet" in scatter_svg([], "x", str, "t")
    svg = scatter_svg([Point("a", "only", None, 1.0, 90.0)], "x", str, "t")
    assert svg.count('r="5.5"') == 1 and "<polyline" not in svg  # one point: no front line


def test_a_project_without_data_still_compares_size_and_speed(tmp_path):
    from report_project import _lat
    from workbench.core.modelspec import ModelSpec
    from workbench.core.project import ROOT_ID
    from workbench.core.variants import Figure, Step, Variant

    project = Project.create(tmp_path / "p", name="no data")
    project.set_base_model(ModelSpec.demo())
    base = project.variant(ROOT_ID)
    project.update_variant(base.with_changes(status="done", deploy="base.onnx", params=Figure(106954),
                                             macs=Figure(5633608), size_bytes=Figure(436429),
                                             latency=_lat(0.100)), "measure base")
    project.add_variant(Variant("v1", ROOT_ID, "pruned", Step("prune.channels", {"ratio": 0.5}), "done",
                                artifact="v1.onnx", deploy="v1.onnx", params=Figure(32330), macs=Figure(1827576),
                                size_bytes=Figure(109107), latency=_lat(0.050)))
    from html import unescape

    text = unescape(" ".join(re.sub(r"<[^>]+>", " ", build_report(project)).split()))
    assert "Base model no accuracy" in text and "2 measured 2 in the project's tree · 0 with accuracy" in text
    assert "pruned – no accuracy 0.25× of base 0.32× of base 2.00× faster" in text
    assert "not measured yet" not in text
