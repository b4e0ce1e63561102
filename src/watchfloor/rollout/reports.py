"""Rollout reports: the burn-down chart and the preparedness chart (ReportLab graphics: inline SVG
for the console, the same drawings in the PDF), the organisation's rollout-status PDF (with the
preparedness scorecard's roll-up), and CSV exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from watchfloor.rollout.deadlines import STATUS_LABELS, STATUS_ORDER
from watchfloor.rollout.scorecard import (
    COMPONENT_LABELS,
    COMPONENTS,
    GAP,
    IN_PLACE,
    NOT_TRACKED,
    UNDER_REVIEW,
    Rollup,
)
from watchfloor.rollout.scorecard import (
    STATUS_LABELS as SC_LABELS,
)
from watchfloor.rollout.service import Board

IDEAL_COLOUR = colors.HexColor("#8a94a6")
ACTUAL_COLOUR = colors.HexColor("#c0392b")


def burndown_drawing(board: Board, width: float = 640, height: float = 240) -> Drawing:
    """Open tasks per day (actual, red) against the ideal line (grey: tasks not yet due)."""
    d = Drawing(width, height)
    points = board.burndown
    if not points:
        d.add(String(10, height / 2, "No tasks with a due date yet.", fontSize=12))
        return d
    plot = LinePlot()
    plot.x, plot.y = 50, 40
    plot.width, plot.height = width - 70, height - 70
    ideal = [(i, p[1]) for i, p in enumerate(points)]
    actual = [(i, p[2]) for i, p in enumerate(points) if p[2] is not None]
    plot.data = [ideal, actual] if actual else [ideal]
    plot.lines[0].strokeColor = IDEAL_COLOUR
    plot.lines[0].strokeWidth = 1.5
    plot.lines[0].strokeDashArray = [4, 3]
    if actual:
        plot.lines[1].strokeColor = ACTUAL_COLOUR
        plot.lines[1].strokeWidth = 2.5
    top = max(max(p[1] for p in points), max((p[2] or 0) for p in points), 1)
    plot.yValueAxis.valueMin = 0
    plot.yValueAxis.valueMax = top
    plot.xValueAxis.valueMin = 0
    plot.xValueAxis.valueMax = max(len(points) - 1, 1)
    step = max(1, len(points) // 6)
    plot.xValueAxis.valueSteps = list(range(0, len(points), step))
    plot.xValueAxis.labelTextFormat = lambda i: (
        points[int(i)][0].strftime("%d %b") if 0 <= int(i) < len(points) else ""
    )
    plot.xValueAxis.labels.fontSize = 8
    plot.yValueAxis.labels.fontSize = 8
    d.add(plot)
    legend = Legend()
    legend.x, legend.y = 60, height - 12
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 9
    legend.colorNamePairs = [(IDEAL_COLOUR, "ideal (not yet due)"), (ACTUAL_COLOUR, "open tasks")]
    legend.deltax = 160
    d.add(legend)
    d.add(String(4, height - 30, "open", fontSize=8))
    return d


def burndown_svg(board: Board) -> str:
    """The burn-down as an <svg> element (no XML prolog) to put inline in a page."""
    svg = renderSVG.drawToString(burndown_drawing(board))
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


#: the scorecard's statuses, worst first, and their colours (the console's palette)
SC_ORDER = (GAP, UNDER_REVIEW, IN_PLACE, NOT_TRACKED)
SC_COLOURS = {
    GAP: colors.HexColor("#c0392b"),
    UNDER_REVIEW: colors.HexColor("#d68910"),
    IN_PLACE: colors.HexColor("#1e8449"),
    NOT_TRACKED: colors.HexColor("#c8ccd4"),
}


def scorecard_drawing(rollup: Rollup, width: float = 640, height: float | None = None) -> Drawing:
    """Facilities per status for each component of the organisation's roll-up, one stacked bar a
    component (gap red, under review amber, in place green, not tracked grey), largest gap on
    top."""
    org = rollup.organisation
    comps = sorted(COMPONENTS, key=lambda c: (-org[c][GAP], -org[c][UNDER_REVIEW], c))
    bar = 16
    height = height or 60 + bar * 1.5 * len(comps)
    d = Drawing(width, height)
    total = max((sum(org[c].values()) for c in comps), default=0)
    if not total:
        d.add(String(10, height / 2, "No facilities in scope.", fontSize=12))
        return d
    chart = HorizontalBarChart()
    chart.x, chart.y = 200, 30
    chart.width, chart.height = width - 220, height - 60
    # the chart draws its first category at the bottom: reverse so the worst is on top
    ordered = list(reversed(comps))
    chart.data = [[org[c][s] for c in ordered] for s in SC_ORDER]
    chart.categoryAxis.categoryNames = [COMPONENT_LABELS.get(c, c)[:36] for c in ordered]
    chart.categoryAxis.labels.fontSize = 8
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.categoryAxis.style = "stacked"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = total
    chart.valueAxis.labels.fontSize = 8
    chart.barWidth = bar
    for i, status in enumerate(SC_ORDER):
        chart.bars[i].fillColor = SC_COLOURS[status]
        chart.bars[i].strokeColor = None
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 200, height - 8
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 9
    legend.deltax = 110
    legend.colorNamePairs = [(SC_COLOURS[s], SC_LABELS[s]) for s in SC_ORDER]
    d.add(legend)
    d.add(String(200, 8, "facilities", fontSize=8))
    return d


def scorecard_svg(rollup: Rollup) -> str:
    """The preparedness chart as an <svg> element to put inline in a page."""
    svg = renderSVG.drawToString(scorecard_drawing(rollup))
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def _scorecard_table(rollup: Rollup) -> Table:
    org = rollup.organisation
    data = [["Component", *[SC_LABELS[s] for s in SC_ORDER]]] + [
        [COMPONENT_LABELS.get(c, c)[:48], *[str(org[c][s]) for s in SC_ORDER]] for c in COMPONENTS
    ]
    table = Table(data, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f7")]),
            ]
        )
    )
    return table


def _counts_table(title: str, rows: Iterable[tuple[str, str, dict[str, int]]]) -> Table:
    head = [title, *[STATUS_LABELS[s] for s in STATUS_ORDER], "Total"]
    data = [head] + [
        [f"{code} {name}"[:48], *[str(c[s]) for s in STATUS_ORDER], str(c["total"])]
        for code, name, c in rows
    ]
    table = Table(data, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f7")]),
            ]
        )
    )
    return table


def rollout_pdf(
    board: Board,
    *,
    organisation: str,
    title: str,
    generated_by: str,
    scorecard: Rollup | None = None,
) -> bytes:
    """The organisation's rollout status: totals, the burn-down, by region, by measure, the
    facilities with the most late tasks, and (given the roll-up) the preparedness scorecard:
    facilities per status for every component, drills and training included."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, title=title, author="Watchfloor"
    )
    styles = getSampleStyleSheet()
    t = board.totals
    story = [
        Paragraph(f"Rollout status — {organisation}", styles["Title"]),
        Paragraph(title, styles["Heading2"]),
        Paragraph(
            f"As of {board.as_of:%Y-%m-%d %H:%M} UTC · generated by {generated_by}",
            styles["Normal"],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            " · ".join(f"{STATUS_LABELS[s]}: {t[s]}" for s in STATUS_ORDER)
            + f" · Total: {t['total']}",
            styles["Heading3"],
        ),
        Spacer(1, 2 * mm),
        burndown_drawing(board, width=520, height=200),
        Spacer(1, 4 * mm),
        Paragraph("By region", styles["Heading3"]),
        _counts_table("Region", board.by_region),
        Spacer(1, 4 * mm),
        Paragraph("By measure", styles["Heading3"]),
        _counts_table("Measure", board.by_measure),
        Spacer(1, 4 * mm),
        Paragraph(
            f"Facilities, most late first ({len(board.by_facility)} of {board.facility_rows})",
            styles["Heading3"],
        ),
        _counts_table("Facility", board.by_facility),
    ]
    if scorecard is not None:
        story += [
            Spacer(1, 6 * mm),
            Paragraph("Preparedness scorecard", styles["Heading2"]),
            Paragraph(
                "Facilities per status for each component (assessment areas, rollout, device "
                "health, drills, training), as of "
                f"{scorecard.as_of:%Y-%m-%d %H:%M} UTC.",
                styles["Normal"],
            ),
            Spacer(1, 2 * mm),
            scorecard_drawing(scorecard, width=520),
            Spacer(1, 2 * mm),
            _scorecard_table(scorecard),
        ]
    doc.build(story)
    return buf.getvalue()


def csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return out.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # a spreadsheet would run a cell that starts like a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
