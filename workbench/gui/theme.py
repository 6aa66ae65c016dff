"""Light and dark themes: follow the system unless the user picked one (View › Theme)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class GraphColors:
    """Colours the graph view paints with (the widgets use the palette)."""

    background: QColor
    node: QColor
    node_border: QColor
    scope: QColor
    scope_border: QColor
    text: QColor
    muted_text: QColor
    edge: QColor
    edge_highlight: QColor
    selection: QColor
    heat_low: QColor
    heat_high: QColor


LIGHT = GraphColors(QColor("#f7f8fa"), QColor("#ffffff"), QColor("#9aa4b2"), QColor("#eef2f7"), QColor("#5b6b82"),
                    QColor("#1d232c"), QColor("#5c6674"), QColor("#8d97a5"), QColor("#d9480f"),
                    QColor("#1c7ed6"), QColor("#fff3bf"), QColor("#e8590c"))
DARK = GraphColors(QColor("#1e2127"), QColor("#2b3038"), QColor("#5c6672"), QColor("#262d36"), QColor("#8fa3bf"),
                   QColor("#e6e9ee"), QColor("#a3acb9"), QColor("#6b7480"), QColor("#ff922b"),
                   QColor("#4dabf7"), QColor("#3b3420"), QColor("#ff8c42"))


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve(choice: str) -> str:
    """'system' → 'light' or 'dark' from the desktop's colour scheme."""
    if choice == "system":
        return "dark" if system_is_dark() else "light"
    return choice if choice in ("light", "dark") else "light"


def graph_colors(name: str) -> GraphColors:
    return DARK if name == "dark" else LIGHT


def apply(app: QApplication, choice: str) -> str:
    """Apply the theme to the whole application; returns the resolved name ('light' or 'dark')."""
    name = resolve(choice)
    app.setStyle("Fusion")
    app.setPalette(_palette(name))
    return name


_PALETTES = {
    "light": ({
        QPalette.Window: "#f3f4f6", QPalette.WindowText: "#1d232c", QPalette.Base: "#ffffff",
        QPalette.AlternateBase: "#f5f7fa", QPalette.Text: "#1d232c", QPalette.Button: "#eceef1",
        QPalette.ButtonText: "#1d232c", QPalette.Highlight: "#1c7ed6", QPalette.HighlightedText: "#ffffff",
        QPalette.ToolTipBase: "#ffffff", QPalette.ToolTipText: "#1d232c", QPalette.PlaceholderText: "#8a93a0",
        QPalette.Link: "#1864ab", QPalette.Mid: "#c5cad3", QPalette.Dark: "#9aa1ad",
    }, "#9aa1ad"),
    "dark": ({
        QPalette.Window: "#24282f", QPalette.WindowText: "#e6e9ee", QPalette.Base: "#1b1e23",
        QPalette.AlternateBase: "#23272e", QPalette.Text: "#e6e9ee", QPalette.Button: "#2d323a",
        QPalette.ButtonText: "#e6e9ee", QPalette.Highlight: "#339af0", QPalette.HighlightedText: "#0b0d10",
        QPalette.ToolTipBase: "#2d323a", QPalette.ToolTipText: "#e6e9ee", QPalette.PlaceholderText: "#7d8693",
        QPalette.Link: "#74c0fc", QPalette.Mid: "#3a404a", QPalette.Dark: "#15181c",
    }, "#6c7480"),
}


def _palette(name: str) -> QPalette:
    colors, disabled = _PALETTES[name]
    p = QPalette()
    for role, c in colors.items():
        p.setColor(role, QColor(c))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(disabled))
    return p
