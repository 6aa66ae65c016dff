"""Static SVG charts for the report: accuracy against a cost with the Pareto front, and MACs per layer.

Plain SVG text with inline presentation attributes (no CSS classes, no scripts, no fonts to fetch) so the same
markup works inline in a browser and when rasterised by Qt's SVG renderer for the PDF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

from .pareto import pareto_front

INK, MUTED, GRID, ACCENT, FRONT, PAPER = "#1f2933", "#616e7c", "#e4e7eb", "#2563eb", "#e8590c", "#ffffff"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
HEAT = ("#fff3bf", "#ffd43b", "#fd7e14", "#e8590c", "#c92a2a")  # low → high share of the model's MACs


@dataclass(frozen=True)
class Point:
    """One variant on a chart: ``cost`` on x (bytes or ms), ``accuracy`` in percent."""

    key: str
    label: str
    parent: str | None
    cost: float
    accuracy: float
    measured: bool = True


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values from at most ``lo`` to at least ``hi`` (steps of 1, 2 or 5 × 10^k)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(first + step * len(ticks))
    return [round(t, 12) for t in ticks]


def _text(x: float, y: float, text: str, size: float = 11, fill: str = INK, anchor: str = "start",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" fill="{fill}" '
            f'text-anchor="{anchor}" font-weight="{weight}">{escape(text)}</text>')


def scatter_svg(points: Sequence[Point], x_title: str, fmt: Callable[[float], str], title: str,
                width: int = 560, height: int = 360) -> str:
    """Accuracy (y) against cost (x): lineage lines, the Pareto front (dashed) and labelled points.

    Points far below the best (more than 15 points) would squash the others into a line: they sit on the bottom
    edge as a downward triangle labelled with their real accuracy.
    """
    left, right, top, bottom = 56, 24, 34, 48
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{PAPER}"/>',
             _text(left, 18, title, 13, INK, weight="bold")]
    if not points:
        parts.append(_text(left + pw / 2, top + ph / 2, "no measured variants yet", 12, MUTED, "middle"))
        return "".join(parts) + "</svg>"
    best = max(p.accuracy for p in points)
    shown = [p.accuracy for p in points if p.accuracy >= best - 15]
    y_ticks = nice_ticks(max(0.0, min(shown) - 0.5), min(100.0, best + 0.5), 5)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    x_ticks = nice_ticks(0.0, max(p.cost for p in points) * 1.08, 5)
    x_hi = x_ticks[-1]

    def sx(v: float) -> float:
        return left + pw * v / x_hi

    def sy(v: float) -> float:
        return top + ph * (1 - (max(v, y_lo) - y_lo) / (y_hi - y_lo))

    for t in y_ticks:
        parts.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, sy(t) + 4, f"{t:g}", 10, MUTED, "end"))
    for t in x_ticks:
        parts.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" stroke="{GRID}"/>')
        parts.append(_text(sx(t), top + ph + 15, fmt(t), 10, MUTED, "middle"))
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="{MUTED}" '
                 'stroke-width="0.8"/>')
    parts.append(_text(left + pw / 2, height - 10, x_title, 11, MUTED, "middle"))
    parts.append(f'<text x="14" y="{top + ph / 2:.1f}" font-family="{FONT}" font-size="11" fill="{MUTED}" '
                 f'text-anchor="middle" transform="rotate(-90 14 {top + ph / 2:.1f})">top-1 accuracy (%)</text>')
    by_key = {p.key: p for p in points}
    for p in points:
        q = by_key.get(p.parent or "")
        if q is not None:
            parts.append(f'<line x1="{sx(q.cost):.1f}" y1="{sy(q.accuracy):.1f}" x2="{sx(p.cost):.1f}" '
                         f'y2="{sy(p.accuracy):.1f}" stroke="#9aa5b1" stroke-width="1"/>')
    front = [by_key[k] for k in pareto_front([(p.key, p.cost, p.accuracy) for p in points])]
    if len(front) > 1:
        path = " ".join(f"{sx(p.cost):.1f},{sy(p.accuracy):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{FRONT}" stroke-width="2" '
                     'stroke-dasharray="6 4"/>')
    on_front = {p.key for p in front}
    labels = []
    for p in points:
        x, y = sx(p.cost), sy(p.accuracy)
        if p.accuracy < y_lo:
            parts.append(f'<path d="M{x - 6:.1f},{y - 9:.1f} L{x + 6:.1f},{y - 9:.1f} L{x:.1f},{y:.1f} Z" '
                         f'fill="{ACCENT if p.measured else PAPER}" stroke="{ACCENT}" stroke-width="1.5"/>')
            labels.append([x, y - 4, f"{p.label} ({p.accuracy:.1f} %, off scale)"])
            continue
        if p.key in on_front:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="{FRONT}" stroke-width="1.5"/>')
        fill = ACCENT if p.measured else PAPER
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5" fill="{fill}" stroke="{ACCENT}" '
                     'stroke-width="1.5"/>')
        labels.append([x, y, p.label])
    parts += _place_labels(labels, [(sx(p.cost), sy(p.accuracy)) for p in points], (left, top, left + pw, top + ph))
    legend_x = left + pw - 250
    parts.append(f'<circle cx="{legend_x:.1f}" cy="14" r="4.5" fill="{ACCENT}"/>')
    parts.append(_text(legend_x + 8, 18, "measured", 10, MUTED))
    parts.append(f'<circle cx="{legend_x + 72:.1f}" cy="14" r="4.5" fill="{PAPER}" stroke="{ACCENT}" '
                 'stroke-width="1.5"/>')
    parts.append(_text(legend_x + 80, 18, "estimated", 10, MUTED))
    parts.append(f'<line x1="{legend_x + 148:.1f}" y1="14" x2="{legend_x + 172:.1f}" y2="14" stroke="{FRONT}" '
                 'stroke-width="2" stroke-dasharray="6 4"/>')
    parts.append(_text(legend_x + 177, 18, "Pareto front", 10, MUTED))
    return "".join(parts) + "</svg>"


def _place_labels(labels: list, dots: list[tuple[float, float]], box: tuple[float, float, float, float]) -> list[str]:
    """Put each label beside its point where it overlaps no other label or point: right, left, above, below."""
    placed: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1 of labels drawn
    out = []

    def free(rect):
        x0, y0, x1, y1 = rect
        if x0 < box[0] - 40 or x1 > box[2] + 20 or y0 < box[1] - 14 or y1 > box[3] + 30:
            return False
        if any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in placed):
            return False
        return not any(x0 - 4 < dx < x1 + 4 and y0 - 4 < dy < y1 + 4 for dx, dy in dots)

    for x, y, text in sorted(labels, key=lambda item: (item[1], item[0])):
        w = 6.0 * len(text)
        candidates = [("start", x + 12, y + 4), ("end", x - 12, y + 4), ("middle", x, y - 13), ("middle", x, y + 20),
                      ("start", x + 12, y - 10), ("end", x - 12, y - 10), ("start", x + 12, y + 18),
                      ("end", x - 12, y + 18)]

        def rect(c):
            anchor, tx, ty = c
            x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
            return (x0, ty - 10, x0 + w, ty + 3)

        choice = next((c for c in candidates if free(rect(c))), candidates[0])
        placed.append(rect(choice))
        out.append(_text(choice[1], choice[2], text, 10.5, INK, choice[0]))
    return out


def heat_color(share: float) -> str:
    """Colour for a layer holding ``share`` (0..1) of the largest layer's MACs."""
    index = min(len(HEAT) - 1, max(0, int(share * len(HEAT))))
    return HEAT[index]


@dataclass(frozen=True)
class LayerBar:
    name: str
    op_type: str
    macs: int


def layer_bars_svg(bars: Sequence[LayerBar], total_macs: int, title: str, note: str = "",
                   width: int = 760, fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> str:
    """Horizontal bars of MACs per layer in graph order, coloured like the graph view's heat map."""
    row, top, name_w = 15, 34, 250
    height = top + row * len(bars) + (30 if note else 12)
    peak = max((b.macs for b in bars), default=1) or 1
    bar_w = width - name_w - 130
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{PAPER}"/>',
             _text(0, 18, title, 13, INK, weight="bold")]
    for i, b in enumerate(bars):
        y = top + i * row
        label = b.name if len(b.name) <= 40 else "…" + b.name[-39:]
        parts.append(_text(name_w - 8, y + 11, label, 10, INK, "end"))
        w = max(1.0, bar_w * b.macs / peak)
        parts.append(f'<rect x="{name_w}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" '
                     f'fill="{heat_color(b.macs / peak)}" stroke="#d9480f" stroke-width="0.4"/>')
        share = 100 * b.macs / total_macs if total_macs else 0.0
        parts.append(_text(name_w + w + 6, y + 11, f"{fmt(b.macs)} ({share:.1f} %)", 10, MUTED))
    if note:
        parts.append(_text(0, height - 10, note, 10, MUTED))
    return "".join(parts) + "</svg>"
