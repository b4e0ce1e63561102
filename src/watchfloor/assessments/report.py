"""The facility assessment report (PDF, ReportLab), the findings chart (the same drawing renders
to PDF and to inline SVG for the console) and the findings CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from reportlab.graphics import renderSVG
from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from watchfloor.assessments import fsl
from watchfloor.assessments.models import AREA_LABELS, SEVERITY_RANK, Finding

if TYPE_CHECKING:
    from watchfloor.assessments.schemas import AssessmentDetail
    from watchfloor.sites.models import Facility

#: short area names for the chart's axis
CHART_LABELS = {
    "perimeter": "Perimeter",
    "access_control": "Access control",
    "screening": "Screening",
    "surveillance": "Surveillance, sensors",
    "alarms": "Alarms, panic buttons",
    "lockdown": "Lockdown",
    "emergency_plans": "Emergency plans",
    "training": "Training",
    "interagency": "Interagency comms",
    "support": "Post-incident support",
}
SEVERITIES = sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__)  # critical first
SEVERITY_COLOURS = {
    "critical": colors.HexColor("#8b0000"),
    "high": colors.HexColor("#d9480f"),
    "medium": colors.HexColor("#e8a317"),
    "low": colors.HexColor("#4a7ab5"),
}


def severity_matrix(
    findings: Iterable[Any], *, only_open: bool = True
) -> dict[str, dict[str, int]]:
    """{area: {severity: n}} over every area of the checklist (zeros included)."""
    out = {area: dict.fromkeys(SEVERITIES, 0) for area in AREA_LABELS}
    for f in findings:
        if only_open and f.status != "open":
            continue
        out.setdefault(f.area, dict.fromkeys(SEVERITIES, 0))[f.severity] += 1
    return out


def findings_chart(findings: Iterable[Any], width: float = 460, height: float = 300) -> Drawing:
    """Open findings by area, stacked by severity (a horizontal bar chart with a legend)."""
    matrix = severity_matrix(findings)
    areas = list(matrix)
    drawing = Drawing(width, height)
    chart = HorizontalBarChart()
    chart.x, chart.y = 135, 40
    chart.width, chart.height = width - 155, height - 70
    chart.data = [[matrix[a][sev] for a in areas] for sev in SEVERITIES]
    chart.categoryAxis.categoryNames = [CHART_LABELS.get(a, a)[:24] for a in areas]
    chart.categoryAxis.reverseDirection = True
    chart.categoryAxis.labels.fontSize = 10
    chart.categoryAxis.style = "stacked"
    chart.valueAxis.valueMin = 0
    top = max([sum(v.values()) for v in matrix.values()] + [1])
    chart.valueAxis.valueMax = top
    chart.valueAxis.valueStep = max(1, (top + 4) // 5)
    chart.valueAxis.labels.fontSize = 10
    chart.barWidth = 8
    for i, sev in enumerate(SEVERITIES):
        chart.bars[i].fillColor = SEVERITY_COLOURS[sev]
        chart.bars[i].strokeColor = None
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 135, 18
    legend.dx = legend.dy = 8
    legend.fontSize = 10
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.deltax = 70
    legend.colorNamePairs = [(SEVERITY_COLOURS[s], s) for s in SEVERITIES]
    drawing.add(legend)
    drawing.add(String(10, height - 14, "Open findings by area and severity", fontSize=12))
    return drawing


_STYLE = re.compile(r'style="([^"]*)"')


def _presentation(match: re.Match[str]) -> str:
    """`style="fill: red; stroke: none"` → `fill="red" stroke="none"`: the console's
    Content-Security-Policy forbids inline styles, not SVG presentation attributes."""
    attrs = []
    for decl in match.group(1).split(";"):
        name, _, value = decl.partition(":")
        name, value = name.strip(), value.strip()
        if not name or not value or '"' in value:
            continue
        if name == "font-family":
            value = f"{value}, Arial, 'Liberation Sans', sans-serif"
        attrs.append(f'{name}="{escape(value)}"')
    return " ".join(attrs)


def findings_chart_svg(findings: Iterable[Any]) -> str:
    """The chart as an <svg> element (no XML prolog, no inline styles) for the console."""
    svg = renderSVG.drawToString(findings_chart(findings))
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    return _STYLE.sub(_presentation, svg)


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


CSV_COLUMNS = [
    "id",
    "facility",
    "assessment_id",
    "area",
    "severity",
    "status",
    "overdue",
    "owner",
    "due_on",
    "description",
    "closing_note",
    "created_at",
    "closed_at",
    "evidence_files",
]


def findings_csv(rows: Sequence[Finding], codes: dict[int, str], now: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    today = now.date()
    for f in rows:
        overdue = f.status == "open" and f.due_on is not None and f.due_on < today
        writer.writerow(
            [
                _cell(v)
                for v in (
                    f.id,
                    codes.get(f.facility_id, ""),
                    f.assessment_id,
                    f.area,
                    f.severity,
                    f.status,
                    "yes" if overdue else "no",
                    f.owner,
                    f.due_on.isoformat() if f.due_on else "",
                    f.description,
                    f.closing_note,
                    f.created_at.isoformat(),
                    f.closed_at.isoformat() if f.closed_at else "",
                    len(f.attachments),
                )
            ]
        )
    return out.getvalue()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def assessment_pdf(
    detail: AssessmentDetail, facility: Facility, standard: fsl.Standard, now: datetime
) -> bytes:
    """The facility assessment report as PDF bytes."""

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    body, h1, h2 = styles["BodyText"], styles["Title"], styles["Heading2"]
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecf2")),
            ("FONTSIZE", (0, 0), (-1, -1), 9),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )

    def p(text: str) -> Paragraph:
        return Paragraph(escape(text), body)

    story: list[Any] = [
        Paragraph(escape(f"Facility security assessment: {facility.name}"), h1),
        Table(
            [
                ["Facility", f"{facility.name} ({facility.code})"],
                [
                    "Assessment",
                    f"#{detail.id} - {detail.kind.replace('_', '-')}"
                    + (f" - directive {detail.directive_ref}" if detail.directive_ref else ""),
                ],
                ["Status", detail.status.replace("_", " ")],
                ["Scheduled", _when(detail.scheduled_for)],
                ["Completed", _when(detail.completed_at)],
                ["Assessor", detail.assessor or "-"],
                ["Report generated", _when(now)],
            ],
            colWidths=[40 * mm, 130 * mm],
            style=TableStyle(
                [("FONTSIZE", (0, 0), (-1, -1), 9), ("TEXTCOLOR", (0, 0), (0, -1), colors.grey)]
            ),
        ),
        Spacer(1, 6 * mm),
        Paragraph("Facility security level", h2),
    ]
    fsl_out = detail.fsl
    if fsl_out is None:
        story.append(p("The FSL has not been scored yet: some factor scores are missing."))
    else:
        rows: list[list[Any]] = [["Factor", "Input", "Score"]]
        inputs = {"population": detail.population, "floor_area_sqft": detail.floor_area_sqft}
        units = {"population": "people", "floor_area_sqft": "sq ft"}
        for factor in standard.factors:
            value = fsl_out.scores.get(factor.key)
            source = factor.derived_from
            given = (
                f"{inputs[source]:,} {units[source]}"
                if source and inputs.get(source) is not None
                else factor.scores.get(value or 0, "")
            )
            rows.append([factor.label, p(str(given)), str(value if value is not None else "-")])
        rows.append(["Total", "", str(fsl_out.total)])
        rows.append(["Level from the total", "", f"FSL {fsl_out.computed_level}"])
        if fsl_out.agency_set:
            rows.append(["Set by the agency", "", f"FSL {fsl_out.level}"])
        elif fsl_out.adjustment:
            rows.append(["Intangible adjustment", "", f"{fsl_out.adjustment:+d}"])
        rows.append(["Facility security level", "", f"FSL {fsl_out.level}"])
        table = Table(rows, colWidths=[60 * mm, 90 * mm, 20 * mm])
        table.setStyle(grid)
        table.setStyle(TableStyle([("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold")]))
        story.append(table)
        if detail.justification:
            story.append(Spacer(1, 3 * mm))
            story.append(p(f"Justification: {detail.justification}"))
        story.append(Spacer(1, 2 * mm))
        story.append(Paragraph(escape(f"Standard: {fsl_out.standard}"), styles["Italic"]))

    findings = detail.findings
    open_n = sum(1 for f in findings if f.status == "open")
    closed_n = len(findings) - open_n
    overdue_n = sum(1 for f in findings if f.overdue)
    story += [
        Spacer(1, 6 * mm),
        Paragraph("Findings", h2),
        p(f"Open findings: {open_n}   Closed findings: {closed_n}   Overdue: {overdue_n}"),
    ]
    matrix = severity_matrix(findings)
    sev_rows: list[list[Any]] = [["Area", *[s.capitalize() for s in SEVERITIES], "Open"]]
    for area, counts in matrix.items():
        total = sum(counts.values())
        if total:
            sev_rows.append(
                [AREA_LABELS.get(area, area), *[str(counts[s]) for s in SEVERITIES], str(total)]
            )
    if len(sev_rows) > 1:
        t = Table(sev_rows, colWidths=[62 * mm, 20 * mm, 20 * mm, 20 * mm, 20 * mm, 20 * mm])
        t.setStyle(grid)
        story.append(t)
        story.append(Spacer(1, 4 * mm))
        story.append(KeepTogether([findings_chart(findings)]))
    if findings:
        story.append(Spacer(1, 4 * mm))
        rows = [["#", "Area", "Severity", "Status", "Owner", "Due", "Description"]]
        ordered = sorted(findings, key=lambda f: (SEVERITY_RANK.get(f.severity, 9), f.area, f.id))
        for f in ordered:
            status = f.status + (" (overdue)" if f.overdue else "")
            rows.append(
                [
                    str(f.id),
                    p(AREA_LABELS.get(f.area, f.area)),
                    f.severity,
                    p(status),
                    p(f.owner or "-"),
                    f.due_on.isoformat() if f.due_on else "-",
                    p(f.description + (f"\nClosed: {f.closing_note}" if f.closing_note else "")),
                ]
            )
        t = Table(
            rows,
            colWidths=[9 * mm, 36 * mm, 17 * mm, 20 * mm, 22 * mm, 20 * mm, 50 * mm],
            repeatRows=1,
        )
        t.setStyle(grid)
        story.append(t)
    else:
        story.append(p("No findings were recorded."))

    answered = [q for sec in detail.checklist for q in sec["questions"] if q["answer"]]
    story += [
        Spacer(1, 6 * mm),
        Paragraph("Checklist", h2),
        p(
            f"{len(answered)} of {sum(len(a['questions']) for a in detail.checklist)} "
            "questions answered."
        ),
    ]
    rows = [["Area", "Question", "Answer", "Note"]]
    for section in detail.checklist:
        for q in section["questions"]:
            rows.append([p(section["label"]), p(q["text"]), q["answer"] or "-", p(q["note"] or "")])
    t = Table(rows, colWidths=[32 * mm, 85 * mm, 16 * mm, 42 * mm], repeatRows=1)
    t.setStyle(grid)
    story.append(t)

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        title=f"Assessment {detail.id} - {facility.code}",
        author="Watchfloor",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    )
    doc.build(story)
    return buf.getvalue()
