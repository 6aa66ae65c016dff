"""The report as a PDF, written by Qt (QTextDocument + QPdfWriter) from the same HTML as the HTML report.

Qt's rich-text engine knows a subset of HTML/CSS and no inline SVG, so the charts are rasterised with QtSvg at
twice their size and placed as image resources, and a print style sheet that the engine understands replaces the
screen one. Works with the offscreen platform (no window, no display).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from PySide6.QtCore import QByteArray, QMarginsF, QSize, QSizeF, QUrl
from PySide6.QtGui import QColor, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QTextDocument
from PySide6.QtSvg import QSvgRenderer

from workbench.core.errors import WorkbenchError
from workbench.core.project import Project
from workbench.core.report_html import build_report

DPI = 96  # one CSS pixel is one device pixel: 14 px text prints at 10.5 pt
PAGE_WIDTH_PX = 700  # the text width of an A4 page with 15 mm margins at 96 dpi, rounded down
PRINT_CSS = """
body{color:#1f2933;font-family:"DejaVu Sans";font-size:13px}
h1{font-size:22px;font-weight:700;margin-bottom:2px}
h2{font-size:16px;font-weight:700;margin-top:22px;margin-bottom:6px;color:#1f2933}
h3{font-size:13px;font-weight:700;margin-top:10px;margin-bottom:2px}
p.sub,.muted,.small,.prov,.label{color:#616e7c}
table{border-collapse:collapse;font-size:11px}
th{text-align:left;font-weight:700;color:#52606d;background-color:#f1f3f5;padding:4px;border-bottom:1px solid #cbd2d9}
td{padding:4px;border-bottom:1px solid #e4e7eb}
th.num{text-align:right}
td.num{text-align:right;white-space:nowrap}
h2.newpage{page-break-before:always}
td.good{color:#2b8a3e} td.bad{color:#c92a2a}
.prov{font-size:9px}
.est{color:#e8590c;font-style:italic}
.step{font-family:"DejaVu Sans Mono";font-size:9px;color:#616e7c}
td.card{background-color:#f8fafc;border:1px solid #d9e2ec;padding:8px}
.label{font-size:9px}
.big{font-size:15px;font-weight:700}
.small{font-size:10px}
pre{font-family:"DejaVu Sans Mono";font-size:10px;background-color:#f7f8fa}
code{font-family:"DejaVu Sans Mono";font-size:10px}
footer{color:#7b8794;font-size:10px}
"""
_DATA_URI = re.compile(r'src="data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)"')


def svg_image(svg: str, scale: float = 2.0) -> QImage:
    """Rasterise SVG markup on white at ``scale`` × its own size."""
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    if not renderer.isValid():
        raise WorkbenchError("a report chart is not valid SVG", "report this as a bug")
    size = renderer.defaultSize()
    image = QImage(QSize(round(size.width() * scale), round(size.height() * scale)), QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setRenderHint(QPainter.TextAntialiasing)
    renderer.render(painter)
    painter.end()
    return image


def report_document(project: Project, **options) -> QTextDocument:
    """The report laid out by Qt's text engine, charts as images (``options`` go to ``build_report``)."""
    images: dict[str, QImage] = {}

    def picture(svg: str, alt: str, width: int) -> str:
        name = f"report-image-{len(images) + 1}.png"
        images[name] = svg_image(svg)
        shown = min(width, PAGE_WIDTH_PX)
        return f'<p><img src="{name}" width="{shown}" alt="{alt}"></p>'

    html = build_report(project, picture=picture, **options)

    def data_uri(match: re.Match) -> str:  # the engine does not read data: URIs; hand it the image instead
        name = f"report-image-{len(images) + 1}.{match.group(1)}"
        image = QImage()
        image.loadFromData(base64.b64decode(match.group(2)))
        images[name] = image
        return f'src="{name}" width="{min(image.width(), PAGE_WIDTH_PX)}"'

    html = _DATA_URI.sub(data_uri, html)
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    html = html.replace("<table ", '<table width="100%" cellspacing="0" ')
    doc = QTextDocument()
    doc.setDefaultStyleSheet(PRINT_CSS)
    for name, image in images.items():
        doc.addResource(QTextDocument.ImageResource, QUrl(name), image)
    doc.setHtml(html)
    return doc


def write_report_pdf(project: Project, path: Path, **options) -> Path:
    """Write the report as an A4 PDF to ``path`` (through a temporary file, then renamed)."""
    from .app import make_app

    make_app()  # fonts and the PDF engine need a QGuiApplication; the offscreen platform is enough
    path = Path(path)
    doc = report_document(project, **options)
    part = path.with_name(f".{path.name}.part")
    writer = QPdfWriter(str(part))
    writer.setResolution(DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait, QMarginsF(15, 15, 15, 15),
                                     QPageLayout.Millimeter))
    writer.setTitle(doc.metaInformation(QTextDocument.DocumentTitle) or project.name)
    writer.setCreator("Model Workbench")
    # Paginate here, to the page's printable area: the layout is then the one ``render_pages`` shows, and Qt does
    # not add its own 2 cm margins on top of the page layout's.
    doc.setPageSize(QSizeF(writer.width(), writer.height()))
    try:
        doc.print_(writer)
        del writer  # finishes the file
        if not part.is_file() or part.stat().st_size == 0:
            raise WorkbenchError("Qt wrote no PDF", "check that the folder is writable", path)
        part.replace(path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise WorkbenchError(f"cannot write the PDF ({exc.strerror or exc})", "choose a folder you can write to",
                             path) from None
    return path
