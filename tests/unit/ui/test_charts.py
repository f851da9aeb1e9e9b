"""Server-side SVG charts (relay.ui.charts)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from relay.ui.charts import _nice_max, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_bars_stack_per_day_and_scale_to_a_round_top() -> None:
    svg = stacked_bars(
        ["2026-12-01", "2026-12-02"], {"a": [1.0, 3.0], "b": [2.0, 0.0]}, unit="$", title="t"
    )
    root = ET.fromstring(str(svg))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 3  # a zero value draws nothing
    heights = sorted(float(b.get("height", 0)) for b in bars)
    # Top of the scale is 5 (3 rounded up): day 1 is 1 + 2 = 3, day 2 is 3.
    plot = 240 - 10 - 28
    assert heights == [plot / 5, plot * 2 / 5, plot * 3 / 5] or abs(heights[0] - plot / 5) < 0.2
    titles = [b.findtext(f"{SVG}title") for b in bars]
    assert "2026-12-02 a: $3.00" in titles


def test_labels_are_escaped() -> None:
    svg = str(stacked_bars(["2026-12-01"], {"<script>": [1.0]}, title="<b>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)  # well-formed


def test_empty_chart_is_well_formed() -> None:
    ET.fromstring(str(stacked_bars([], {})))
    ET.fromstring(str(stacked_bars(["2026-12-01"], {"a": [0.0]})))


def test_nice_max() -> None:
    assert [_nice_max(v) for v in (0, 0.003, 0.7, 1, 3, 12, 480, 1000, 1001)] == [
        1.0, 0.005, 1.0, 1.0, 5.0, 20.0, 500.0, 1000.0, 2000.0,
    ]  # fmt: skip
