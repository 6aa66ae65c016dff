"""The report's picture of the layer graph: the app's own drawing, in columns, embedded in HTML and PDF."""

from __future__ import annotations

import base64
import re

from PySide6.QtGui import QImage

from workbench.core.demo import demo_request
from workbench.core.readers import open_model
from workbench.gui.report_graph import graph_picture


def test_the_demo_graph_is_drawn_in_columns_that_fit_a_page(qtbot):
    png = graph_picture(open_model(demo_request()), max_width=1000)
    image = QImage()
    assert image.loadFromData(png, "PNG")
    assert image.width() <= 1000 and image.width() > image.height()  # a tall chain laid out side by side
    # the heat colours of the boxes are there (not an empty background)
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20


def test_an_html_report_embeds_the_graph_picture(qtbot, tmp_path):
    from workbench.core.datasets import DatasetConfig
    from workbench.core.modelspec import ModelSpec
    from workbench.core.project import Project
    from workbench.gui.report_actions import save_report

    project = Project.create(tmp_path / "p")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    html = save_report(project, tmp_path / "report.html").read_text()
    found = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="Layer graph of the base model', html)
    assert found and QImage.fromData(base64.b64decode(found.group(1))).width() > 100
