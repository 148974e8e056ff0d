"""The report's charts (reportlab.graphics): compliance before and after, host states by cloud, overdue
risk items by severity, and the compliance trend across cycles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.graphics.widgets.markers import Marker
from reportlab.lib import colors

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.style import (
    AFTER_COLOUR,
    BEFORE_COLOUR,
    CONTENT_WIDTH,
    GRID_COLOUR,
    MAX_TREND_POINTS,
    RISK_SEVERITY_COLOURS,
    STATE_COLOURS,
    as_int,
    as_mapping,
    as_optional_percent,
    as_percent,
    as_records,
    as_text,
)
from patchcycle.reports.tables import (
    sorted_environments,
)

# A chart's and a legend's x, y, width and height are any number of points in reportlab; types-reportlab
# declares them int (from their defaults), so a float one is assigned with `type: ignore[assignment]`.


def _no_data(width: float, height: float, title: str) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    # The frame's style set after construction: types-reportlab types Rect's keyword arguments wrongly.
    frame = Rect(0, 0, width, height - 20)
    frame.strokeColor, frame.fillColor, frame.strokeWidth = GRID_COLOUR, None, 0.5
    drawing.add(frame)
    drawing.add(
        String(width / 2, (height - 20) / 2, "No data", fontName="Helvetica", fontSize=9, textAnchor="middle")
    )
    return drawing


def _legend(x: float, y: float, pairs: Iterable[tuple[colors.Color, str]]) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y  # type: ignore[assignment]  # see the note above
    legend.alignment = "right"
    legend.fontName = "Helvetica"
    legend.fontSize = 7
    legend.boxAnchor = "nw"
    legend.columnMaximum = 8
    legend.dx = legend.dy = 6
    legend.deltay = 9
    legend.colorNamePairs = list(pairs)
    return legend


def compliance_chart(evidence: CycleEvidence, width: float = CONTENT_WIDTH, height: float = 170) -> Drawing:
    """Grouped bars: compliance before/after (percent) for each environment."""
    title = "Compliance before and after, by environment"
    # Rollups are typed from schema 1.1; a 1.0 document's are read with checks.
    by_env = as_mapping(evidence["summary"]["by_environment"])
    environments = sorted_environments(by_env)
    if not environments:
        return _no_data(width, height, title)
    before = [as_percent(as_mapping(by_env[e]).get("compliance_before")) for e in environments]
    after = [as_percent(as_mapping(by_env[e]).get("compliance_after")) for e in environments]

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y = 32, 22
    chart.width, chart.height = width - 130, height - 50  # type: ignore[assignment]  # see the note above
    chart.data = [before, after]
    chart.categoryAxis.categoryNames = environments
    chart.categoryAxis.labels.fontName = "Helvetica"
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = 100
    chart.valueAxis.valueStep = 20
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = BEFORE_COLOUR
    chart.bars[1].fillColor = AFTER_COLOUR
    chart.bars.strokeColor = None
    chart.groupSpacing = 10
    chart.barSpacing = 2
    chart.barLabelFormat = "%.0f%%"
    chart.barLabels.fontName = "Helvetica"
    chart.barLabels.fontSize = 6.5
    chart.barLabels.nudge = 6
    drawing.add(chart)
    drawing.add(_legend(width - 90, height - 30, [(BEFORE_COLOUR, "Before"), (AFTER_COLOUR, "After")]))
    return drawing


def _states_by_cloud(evidence: CycleEvidence) -> dict[str, Counter[str]]:
    hosts = evidence["hosts"]
    counts: dict[str, Counter[str]] = {}
    if hosts:
        for host in hosts:
            counts.setdefault(host["cloud"], Counter())[host["final_state"]] += 1
        return counts
    # No host records: fall back to the per-cloud summary (fewer states, same meaning).
    for cloud, row in as_mapping(evidence["summary"]["by_cloud"]).items():
        row = as_mapping(row)
        counts[str(cloud)] = Counter(
            {
                s: as_int(row.get(s))
                for s in ("patched", "failed", "held", "non_compliant", "not_assessed", "not_run")
            }
        )
    return counts


def host_states_chart(evidence: CycleEvidence, width: float = CONTENT_WIDTH, height: float = 190) -> Drawing:
    """Stacked bars: number of hosts in each final state, for each cloud."""
    title = "Host final states, by cloud"
    counts = _states_by_cloud(evidence)
    clouds = sorted(counts)
    if not clouds:
        return _no_data(width, height, title)
    known = [state for state, _ in STATE_COLOURS]
    extra = sorted({s for c in counts.values() for s in c} - set(known))
    states = known + extra
    palette = dict(STATE_COLOURS)

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y = 40, 22
    chart.width, chart.height = width - 150, height - 50  # type: ignore[assignment]  # see the note above
    chart.data = [[counts[c][state] for c in clouds] for state in states]
    chart.categoryAxis.categoryNames = clouds
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontName = "Helvetica"
    chart.categoryAxis.labels.fontSize = 8
    peak = max((sum(counts[c].values()) for c in clouds), default=0)
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(peak, 1)
    if peak < 5:
        chart.valueAxis.valueStep = 1
    chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.labels.fontSize = 7
    chart.bars.strokeColor = None
    for index, state in enumerate(states):
        chart.bars[index].fillColor = palette.get(state, colors.HexColor("#000000"))
    drawing.add(chart)
    drawing.add(
        _legend(
            width - 100,
            height - 30,
            [(palette.get(s, colors.HexColor("#000000")), s.replace("_", " ")) for s in states],
        )
    )
    return drawing


def overdue_chart(risk: Mapping[str, Any], width: float = CONTENT_WIDTH, height: float = 160) -> Drawing:
    """Bars: open patch-host pairs past their SLA due date, by severity (Critical..Low, then others)."""
    title = "Overdue open patches, by severity"
    by_severity = as_mapping(as_mapping(risk.get("summary")).get("overdue_by_severity"))
    if not by_severity:
        return _no_data(width, height, title)
    palette = dict(RISK_SEVERITY_COLOURS)
    severities = [s for s, _ in RISK_SEVERITY_COLOURS]
    severities += sorted(str(s) for s in by_severity if str(s) not in palette)
    values = [as_int(by_severity.get(s)) for s in severities]
    peak = max(values, default=0)

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y = 40, 22
    chart.width, chart.height = width - 60, height - 50  # type: ignore[assignment]  # see the note above
    chart.data = [values]
    chart.categoryAxis.categoryNames = [as_text(s) for s in severities]
    chart.categoryAxis.labels.fontName = "Helvetica"
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    if peak < 5:
        chart.valueAxis.valueMax = peak + 1
        chart.valueAxis.valueStep = 1
    else:
        chart.valueAxis.valueMax = peak + max(1, peak // 8)  # head room for the bar labels
    chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.labels.fontSize = 7
    chart.bars.strokeColor = None
    for index, severity in enumerate(severities):
        chart.bars[(0, index)].fillColor = palette.get(severity, colors.HexColor("#455a64"))
    chart.barLabelFormat = "%d"
    chart.barLabels.fontName = "Helvetica"
    chart.barLabels.fontSize = 7
    chart.barLabels.nudge = 6
    chart.groupSpacing = 18
    drawing.add(chart)
    if not peak:
        drawing.add(
            String(
                chart.x + chart.width / 2,
                chart.y + chart.height / 2,
                "No open patch is overdue",
                fontName="Helvetica",
                fontSize=9,
                textAnchor="middle",
            )
        )
    return drawing


def trend_points(evidence: CycleEvidence) -> list[Mapping[str, Any]]:
    """The last :data:`MAX_TREND_POINTS` cycles of ``trend`` (oldest first, the current cycle last); the
    schema types no value of a trend point, so each is read with checks."""
    return as_records(evidence.get("trend"))[-MAX_TREND_POINTS:]


def trend_chart(
    points: list[Mapping[str, Any]], width: float = CONTENT_WIDTH, height: float = 180
) -> Drawing:
    """Lines: fleet compliance before and after (percent) over the trend cycles, oldest first."""
    title = "Compliance over the last cycles"
    after = [as_optional_percent(p.get("compliance_after")) for p in points]
    if sum(v is not None for v in after) < 2:
        return _no_data(width, height, title)
    before = [as_optional_percent(p.get("compliance_before")) for p in points]

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = HorizontalLineChart()
    chart.x, chart.y = 32, 34
    chart.width, chart.height = width - 130, height - 62  # type: ignore[assignment]  # see the note above
    chart.data = [before, after]
    chart.joinedLines = 1
    chart.categoryAxis.categoryNames = [as_text(p.get("cycle_date"), "?") for p in points]
    chart.categoryAxis.labels.fontName = "Helvetica"
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.labels.angle = 30
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = 100
    chart.valueAxis.valueStep = 20
    chart.valueAxis.labelTextFormat = "%d%%"
    chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.labels.fontSize = 7
    for index, colour in enumerate((BEFORE_COLOUR, AFTER_COLOUR)):
        chart.lines[index].strokeColor = colour
        chart.lines[index].strokeWidth = 1.5
        # What makeMarker("FilledCircle", ...) builds (it is untyped in types-reportlab).
        chart.lines[index].symbol = Marker(
            kind="FilledCircle", size=3.5, fillColor=colour, strokeColor=colour
        )
    drawing.add(chart)
    drawing.add(_legend(width - 90, height - 30, [(BEFORE_COLOUR, "Before"), (AFTER_COLOUR, "After")]))
    return drawing
