"""The variant chart and the training curves: what is plotted, the Pareto front, selection and export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from PySide6.QtGui import QImage

from workbench.gui.charts import ChartPoint, TrainingCurves, VariantChart


def _points():
    return [
        ChartPoint("v0", "base", None, 98.9, 430_000, 0.42),
        ChartPoint("v1", "prune 50 %", "v0", 97.5, 130_000, 0.20),
        ChartPoint("v2", "prune + int8", "v1", 97.4, 60_000, None),
        ChartPoint("v3", "planned int8", "v0", 98.8, 120_000, None, measured=False),
        ChartPoint("v4", "bad", "v0", 90.0, 300_000, 0.5),
        ChartPoint("v5", "not evaluated", "v0", None, 100_000, None),
    ]


@pytest.fixture
def chart(qtbot):
    c = VariantChart()
    qtbot.addWidget(c)
    c.resize(640, 420)
    c.show()
    c.set_points(_points())
    return c


def test_points_front_and_lineage_follow_the_axis(chart):
    assert len(chart.measured.data) == 4 and len(chart.estimated.data) == 1  # v5 has no accuracy
    assert chart.front_ids() == ["v2", "v1", "v0"]  # v4 is dominated; the estimated v3 never joins the front
    xs, ys = chart.front.getData()  # a staircase through the front points
    assert list(xs) == [60_000, 130_000, 130_000, 430_000, 430_000]
    assert list(ys) == [97.4, 97.4, 97.5, 97.5, 98.9]
    assert chart.plot.getAxis("bottom").tickStrings([125_000], 1, 1) == ["122 KiB"]
    assert len(chart.lineage.getData()[0]) == 2 * 4  # v1, v2, v3, v4 drawn from their parents
    assert "estimated" in chart.note.text() and "1 variant not yet measured" in chart.note.text()

    chart.set_axis("latency")
    assert sorted(chart.measured.data["data"]) == ["v0", "v1", "v4"]
    assert chart.front_ids() == ["v1", "v0"]
    assert chart.plot.getAxis("bottom").labelText.startswith("latency p50")
    chart.log_x.setChecked(True)
    xs, _ = chart.front.getData()
    assert xs[0] == pytest.approx(-0.69897, abs=1e-4)  # log10(0.2)
    assert chart.plot.getAxis("bottom").tickStrings([-0.69897], 1, 1) == ["0.2"]


def test_hover_tip_and_click_select(chart, qtbot):
    tip = chart._tip(0, 0, "v3")
    assert "planned int8 (estimated)" in tip and "98.80 %" in tip and "not measured" in tip
    spot = [s for s in chart.measured.points() if s.data() == "v1"][0]
    with qtbot.waitSignal(chart.selected) as signal:
        chart._clicked(chart.measured, [spot])
    assert signal.args == ["v1"]
    assert list(chart.highlight.data["x"]) == [130_000]
    chart.select(None)
    assert len(chart.highlight.data) == 0


def test_export_png_and_svg(chart, tmp_path):
    png = chart.export(tmp_path / "chart.png")
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 800
    svg = chart.export(tmp_path / "chart.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 20
    with pytest.raises(ValueError, match="png or .svg"):
        chart.export(tmp_path / "chart.jpg")


def test_thousand_points_plot(chart):
    many = [ChartPoint(f"v{i}", f"v{i}", "v0" if i else None, 90 + (i % 97) / 10, 1000 + 37 * i, None)
            for i in range(1000)]
    chart.set_points(many)
    assert len(chart.measured.data) == 1000 and not chart.labels  # no name labels when crowded
    assert len(chart.front_ids()) >= 1


def test_training_curves_take_live_points(qtbot):
    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.start("finetune")
    for i in range(1, 5):
        curves.add({"epoch": i / 2, "train loss": 1.0 / i})
    curves.add({"epoch": 2.0, "val accuracy": 0.975, "val loss": 0.08})
    curves.add({"message only": 1.0})  # no epoch: ignored
    assert curves.series["train loss"][0] == [0.5, 1.0, 1.5, 2.0]
    assert curves.series["val accuracy"][1] == [97.5]
    assert set(curves.curves) == {"train loss", "val accuracy", "val loss"}
    curves.start("distill")
    assert curves.series == {} and curves.title.text() == "distill"


def test_a_collapsed_variant_does_not_squash_the_others(chart):
    chart.set_points(_points() + [ChartPoint("v6", "pruned, not tuned", "v0", 10.0, 140_000, 0.1)])
    low, high = chart.plot.getViewBox().viewRange()[1]
    assert 85 < low < 90 and high > 98.9  # the axis covers the useful variants, not 10..99
    spot = next(s for s in chart.measured.points() if s.data() == "v6")
    assert spot.symbol() == "t" and spot.pos().y() == pytest.approx(chart._floor)
    assert any("10.0 %, off scale" in t.toPlainText() for t in chart.labels)
    assert "lower edge" in chart.note.text()
    assert chart.front_ids() == ["v2", "v1", "v0"]  # the front is computed on the true values
    chart.show_all.setChecked(True)
    low, _ = chart.plot.getViewBox().viewRange()[1]
    spot = next(s for s in chart.measured.points() if s.data() == "v6")
    assert low < 11 and spot.pos().y() == 10.0 and spot.symbol() == "o"


def test_names_of_nearby_points_do_not_overlap(chart, qtbot):
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QFont, QFontMetricsF

    close = [ChartPoint("a", "pruned + fine-tuned", None, 98.0, 140_000, None),
             ChartPoint("b", "pruned + fine-tuned + int8", "a", 98.02, 141_000, None),
             ChartPoint("c", "base model", None, 98.9, 430_000, None)]
    chart.set_points(close)
    qtbot.wait(50)
    vb = chart.plot.getViewBox()
    metrics = QFontMetricsF(QFont())
    rects = []
    for text in chart.labels:
        at = vb.mapViewToScene(QPointF(text.pos().x(), text.pos().y()))
        w, h = metrics.horizontalAdvance(text.toPlainText()) + 6, metrics.height() + 2
        rects.append(QRectF(at.x() - text.anchor[0] * w, at.y() - text.anchor[1] * h, w, h))
    assert len(rects) == 3
    assert not any(rects[i].intersects(rects[j]) for i in range(3) for j in range(i + 1, 3))
    assert {tuple(t.anchor) for t in chart.labels} != {(0.0, 1.0)}  # one of the close pair moved


def test_the_note_names_what_the_axis_cannot_place(chart):
    from workbench.gui.charts import PREVIEW_ID

    chart.set_points(_points() + [ChartPoint(PREVIEW_ID, "estimate: prune.channels", "v0", 98.9, 200_000, None,
                                             False, "estimated")])
    assert "Compress panel" not in chart.note.text()  # the estimate has a size: it is on this chart
    chart.set_axis("latency")
    note = chart.note.text()
    assert "3 variants not yet measured on this axis" in note  # v2, v3 and v5 (no accuracy: on no chart)
    assert "The Compress panel's estimate is on the size chart only." in note


def test_a_single_point_gets_readable_ranges(chart):
    chart.set_points([ChartPoint("base", "base model", None, 12.2, 829_000, 0.03)])
    vb = chart.plot.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    assert y0 <= 11.3 and y1 >= 13.1  # a band of two points, not 1e-14 of float noise
    assert x0 < 829_000 * 0.9 and x1 > 829_000 * 1.1
    axis = chart.plot.getAxis("left")
    labels = [text for spacing, values in axis.tickValues(y0, y1, 300)
              for text in axis.tickStrings(values, 1, spacing)]
    assert labels and all(len(text) <= 5 for text in labels), labels  # "12.5", not "12.20000000000003"
    chart.set_points(_points())  # several points: automatic ranges again
    (x0, x1), _ = vb.viewRange()
    assert x0 < 60_000 and x1 > 430_000
