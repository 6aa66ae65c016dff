"""Saving the project report from the app (File › Export report) and from the command line.

``save_report`` picks the format from the file name: ``.html`` (core, no Qt) or ``.pdf`` (Qt's PDF writer).
``export_report`` is the menu action: asks for a path when none is given, saves, and reports the outcome in a
message box instead of raising.
"""

from __future__ import annotations

from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.project import Project

FORMATS = (".html", ".pdf")


def save_report(project: Project, path: Path, **options) -> Path:
    """Write the report of ``project`` to ``path`` (.html or .pdf); ``options`` go to ``build_report``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise WorkbenchError(f"a report is .html or .pdf, not '{path.suffix or path.name}'",
                             "name the output report.html or report.pdf", path)
    if not path.parent.is_dir():
        raise WorkbenchError("the report's folder does not exist", "create it first, or choose another", path.parent)
    if "graph_png" not in options and project.base_model is not None:
        from workbench.core.modelspec import open_spec

        from .report_graph import graph_picture

        options.setdefault("base_graph", open_spec(project.base_model, project.folder)[0])  # opened once for both
        options["graph_png"] = graph_picture(options["base_graph"])
    if suffix == ".html":
        from workbench.core.report_html import write_report_html

        return write_report_html(project, path, **options)
    from .report_pdf import write_report_pdf

    return write_report_pdf(project, path, **options)


def export_report(project: Project | None, path: Path | str | None = None, parent=None) -> Path | None:
    """File › Export report: save (asking for a file when ``path`` is None); returns the path, None if not saved."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    if project is None:
        QMessageBox.information(parent, "Export report", "Open a model first: the report describes its project.")
        return None
    if path is None:
        chosen, kind = QFileDialog.getSaveFileName(parent, "Export report", str(project.folder / "report.html"),
                                                   "HTML report (*.html);;PDF report (*.pdf)")
        if not chosen:
            return None
        path = Path(chosen)
        if path.suffix.lower() not in FORMATS:  # typed without an extension: the chosen filter says which
            path = path.with_name(path.name + (".pdf" if "pdf" in kind.lower() else ".html"))
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    QApplication.setOverrideCursor(Qt.WaitCursor)  # a few seconds: the base model's graph is read again
    try:
        project.autosave()
        return save_report(project, Path(path))
    except WorkbenchError as exc:
        QMessageBox.warning(parent, "Export report", exc.one_line())
        return None
    finally:
        QApplication.restoreOverrideCursor()
