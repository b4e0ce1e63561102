"""The console's chart of compliance by course: one stacked horizontal bar per course (overdue,
never done, due soon, current), drawn with ReportLab graphics and served as SVG — the same
approach as the rollout burn-down."""

from __future__ import annotations

from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from watchfloor.training.service import STATUS_LABELS, STATUS_ORDER

COLOURS = {
    "overdue": colors.HexColor("#c0392b"),
    "never": colors.HexColor("#7b1e3a"),
    "due_soon": colors.HexColor("#e69b00"),
    "current": colors.HexColor("#2e8b57"),
}


def by_course_drawing(
    by_course: list[tuple[str, str, dict[str, int]]], width: float = 640
) -> Drawing:
    """Required trainings per course by status (number of people)."""
    rows = list(reversed(by_course))  # the chart draws bottom-up: keep the catalogue order
    height = max(120, 40 + 28 * len(rows) + 40)
    d = Drawing(width, height)
    if not rows or not any(c["total"] for _code, _name, c in rows):
        d.add(String(10, height / 2, "No staff are under a training requirement yet.", fontSize=12))
        return d
    chart = HorizontalBarChart()
    chart.x, chart.y = 170, 40
    chart.width, chart.height = width - 190, height - 80
    chart.data = [[c[s.value] for _code, _name, c in rows] for s in STATUS_ORDER]
    chart.categoryAxis.categoryNames = [name[:28] for _code, name, _c in rows]
    chart.categoryAxis.labels.fontSize = 10
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.categoryAxis.style = "stacked"
    top = max(c["total"] for _code, _name, c in rows)
    step = max(1, -(-top // 6))  # whole people on the axis
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = step * -(-top // step)
    chart.valueAxis.valueStep = step
    chart.valueAxis.labels.fontSize = 9
    chart.barSpacing = 2
    for i, s in enumerate(STATUS_ORDER):
        chart.bars[i].fillColor = COLOURS[s.value]
        chart.bars[i].strokeColor = None
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 170, height - 10
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 10
    legend.deltax = 110
    legend.colorNamePairs = [(COLOURS[s.value], STATUS_LABELS[s]) for s in STATUS_ORDER]
    d.add(legend)
    d.add(String(chart.x, 8, "people", fontSize=9))
    return d


def by_course_svg(by_course: list[tuple[str, str, dict[str, int]]]) -> str:
    svg = renderSVG.drawToString(by_course_drawing(by_course))
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg
