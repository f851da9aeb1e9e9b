"""Charts drawn on the server as SVG: stacked bars per day, one colour per series.

No JavaScript and no inline style (presentation attributes only, which the page's CSP
allows); the SVG scales with its container through its ``viewBox``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

__all__ = ["COLOURS", "stacked_bars"]

# Distinguishable on light and dark backgrounds; the last one is "other".
COLOURS = ("#2f6fde", "#e0762b", "#2a9d64", "#c23b6f", "#7b5cd6", "#b59a1a", "#8a8f98")
_W, _H = 720, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 8, 10, 28


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at least ``value``."""
    if value <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * step * (1 + 1e-9):
            return factor * step
    return 10 * step


def _label(value: float, unit: str) -> str:
    if unit == "$":
        if value == 0 or value >= 1000:
            return f"${value:,.0f}"
        return f"${value:,.2f}" if value >= 1 else f"${value:.3g}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def stacked_bars(
    days: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    unit: str = "",
    title: str = "",
) -> Markup:
    """An SVG of one bar per day, stacked by series (each series has one value per day)."""
    n = max(len(days), 1)
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = _nice_max(max(totals, default=0.0))
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / n
    bar = max(slot * 0.8, 1.0)
    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):  # grid lines and their values
        value = top * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#8a8f98" stroke-opacity="0.3"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{escape(_label(value, unit))}</text>'
        )
    names = list(series)
    for d, day in enumerate(days):
        x = _LEFT + d * slot + (slot - bar) / 2
        y = _TOP + plot_h
        for s, name in enumerate(names):
            value = series[name][d]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            colour = COLOURS[min(s, len(COLOURS) - 1)]
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(day)} {escape(name)}: '
                f"{escape(_label(value, unit))}</title></rect>"
            )
    every = max(1, n // 8)  # at most ~8 day labels
    for d, day in enumerate(days):
        if d % every == 0 or d == n - 1:
            x = _LEFT + d * slot + slot / 2
            out.append(
                f'<text x="{x:.1f}" y="{_H - 8}" text-anchor="middle" font-size="11" '
                f'fill="currentColor">{escape(day[5:])}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))
