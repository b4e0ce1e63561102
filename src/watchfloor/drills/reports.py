"""The drills compliance chart: per region, how many (facility, required kind) pairs are overdue,
never held, due soon and compliant, as stacked horizontal bars (ReportLab graphics rendered to
inline SVG, as rollout's burn-down is)."""

from __future__ import annotations

from collections.abc import Sequence

from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from watchfloor.drills.service import STATUS_LABELS, STATUS_ORDER

COLOURS = {
    "overdue": colors.HexColor("#c0392b"),
    "never": colors.HexColor("#7b1f3a"),
    "due_soon": colors.HexColor("#e0a100"),
    "compliant": colors.HexColor("#2e8b57"),
}


def compliance_drawing(
    regions: Sequence[tuple[str, str, dict[str, int]]], width: float = 640
) -> Drawing:
    """One bar per region (top: the first), stacked by status, most urgent first."""
    rows = list(regions)[:30]
    bar_h = 26
    height = max(120, 70 + bar_h * len(rows))
    d = Drawing(width, height)
    if not rows:
        d.add(String(10, height / 2, "No facility in scope has a required drill.", fontSize=12))
        return d
    chart = HorizontalBarChart()
    chart.x, chart.y = 150, 30
    chart.width, chart.height = width - 180, height - 70
    rows_bottom_up = list(reversed(rows))
    chart.data = [[r[2][s] for r in rows_bottom_up] for s in STATUS_ORDER]
    chart.categoryAxis.categoryNames = [f"{name}"[:24] for _c, name, _v in rows_bottom_up]
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontSize = 10
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 9
    chart.barWidth = bar_h * 0.7
    for i, s in enumerate(STATUS_ORDER):
        chart.bars[i].fillColor = COLOURS[s]
        chart.bars[i].strokeColor = None
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 150, height - 10
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 10
    legend.deltax = 110
    legend.colorNamePairs = [(COLOURS[s], STATUS_LABELS[s]) for s in STATUS_ORDER]
    d.add(legend)
    return d


def compliance_svg(regions: Sequence[tuple[str, str, dict[str, int]]]) -> str:
    svg = renderSVG.drawToString(compliance_drawing(regions))
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg
