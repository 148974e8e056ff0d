"""The patch cycle PDF report a tenant's compliance contact (and their auditor) reads.

Built with reportlab platypus and reportlab.graphics charts from the cycle's evidence document
(``schema_version`` "1.0"). Pure: no cloud or file I/O. Only hosts needing attention are laid out
(capped); the full per-host list is the CSV in the same evidence pack.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from patchcycle.reports.tables import environment_rank, sorted_environments, summary_rows

#: Final states listed in "Hosts needing attention", most urgent first.
ATTENTION_STATES: tuple[str, ...] = ("failed", "non_compliant", "not_run", "held")
#: At most this many attention rows are laid out; the rest are counted and referred to the CSV.
MAX_ATTENTION_ROWS = 500
#: At most this many approved patches are listed per OS family ...
MAX_PATCHES_PER_FAMILY = 60
#: ... and at most this many in total.
MAX_PATCH_ROWS = 300
#: At most this many CVE ids are printed per patch.
MAX_CVES_PER_PATCH = 4

PAGE_SIZE = letter
MARGIN = 0.6 * inch
CONTENT_WIDTH = PAGE_SIZE[0] - 2 * MARGIN

#: Host final states in the order they are stacked in the by-cloud chart, with their colours.
STATE_COLOURS: tuple[tuple[str, colors.Color], ...] = (
    ("patched", colors.HexColor("#2e7d32")),
    ("excepted", colors.HexColor("#6a1b9a")),
    ("held", colors.HexColor("#f9a825")),
    ("non_compliant", colors.HexColor("#ef6c00")),
    ("failed", colors.HexColor("#c62828")),
    ("not_run", colors.HexColor("#757575")),
    ("out_of_scope", colors.HexColor("#bdbdbd")),
)
OUTCOME_COLOURS: dict[str, str] = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "partial": "#ef6c00",
    "planned": "#1565c0",
}
STAGE_STATUS_COLOURS: dict[str, colors.Color] = {
    "succeeded": colors.HexColor("#2e7d32"),
    "failed": colors.HexColor("#c62828"),
    "skipped": colors.HexColor("#757575"),
    "not_run": colors.HexColor("#757575"),
}
FRAMEWORK_NAMES: dict[str, str] = {
    "soc2": "SOC 2",
    "pci_dss": "PCI DSS",
    "ffiec": "FFIEC",
    "glba": "GLBA",
    "iso27001": "ISO/IEC 27001",
    "nist_800_53": "NIST SP 800-53",
    "dora": "DORA",
    "hipaa": "HIPAA",
}
SEVERITY_ORDER: tuple[str, ...] = ("critical", "high", "important", "medium", "moderate", "low")

_HEADER_BG = colors.HexColor("#263238")
_GRID = colors.HexColor("#b0bec5")
_ZEBRA = colors.HexColor("#f5f7f8")
_BEFORE = colors.HexColor("#90a4ae")
_AFTER = colors.HexColor("#1565c0")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# --------------------------------------------------------------------------------------------- text


def _text(value: Any, default: str = "") -> str:
    """Plain text for a cell: None -> default, control characters -> space."""
    if value is None:
        return default
    return _CONTROL_CHARS.sub(" ", str(value))


def _markup(value: Any, default: str = "") -> str:
    """Escaped text safe to embed in Paragraph markup."""
    return escape(_text(value, default))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _ratio(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _percent(value: Any) -> float:
    """A 0..1 ratio as a percentage clamped to 0..100 (the chart's fixed axis)."""
    return round(min(max(_ratio(value), 0.0), 1.0) * 100, 1)


class _Styles:
    """Paragraph styles used by the report."""

    def __init__(self) -> None:
        base = getSampleStyleSheet()
        self.title = ParagraphStyle(
            "PcTitle", parent=base["Title"], alignment=TA_LEFT, fontSize=20, leading=24
        )
        self.h2 = ParagraphStyle("PcH2", parent=base["Heading2"], fontSize=13, leading=16, spaceBefore=10)
        self.body = ParagraphStyle("PcBody", parent=base["BodyText"], fontSize=9, leading=11.5)
        self.note = ParagraphStyle(
            "PcNote", parent=self.body, fontSize=8, textColor=colors.HexColor("#455a64")
        )
        self.cell = ParagraphStyle("PcCell", parent=self.body, fontSize=7.5, leading=9, splitLongWords=1)
        self.small_cell = ParagraphStyle("PcSmallCell", parent=self.cell, fontSize=6.5, leading=7.8)
        self.outcome = ParagraphStyle("PcOutcome", parent=self.body, fontSize=16, leading=20, spaceBefore=4)


# ------------------------------------------------------------------------------------------- footer


class _FooterCanvas(Canvas):
    """Canvas that defers pages so every footer can say "page N of M"."""

    def __init__(self, *args: Any, footer_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer_text = footer_text
        self._deferred_pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab API
        self._deferred_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._deferred_pages)
        for number, state in enumerate(self._deferred_pages, start=1):
            self.__dict__.update(state)
            self._draw_footer(number, total)
            super().showPage()
        super().save()

    def _draw_footer(self, number: int, total: int) -> None:
        width = self._pagesize[0]
        y = 0.35 * inch
        self.saveState()
        self.setStrokeColor(_GRID)
        self.setLineWidth(0.5)
        self.line(MARGIN, y + 10, width - MARGIN, y + 10)
        self.setFont("Helvetica", 7.5)
        self.setFillColor(colors.HexColor("#455a64"))
        self.drawString(MARGIN, y, self._footer_text)
        self.drawRightString(width - MARGIN, y, f"page {number} of {total}")
        self.restoreState()


# ------------------------------------------------------------------------------------------- charts


def _no_data(width: float, height: float, title: str) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    drawing.add(Rect(0, 0, width, height - 20, strokeColor=_GRID, fillColor=None, strokeWidth=0.5))
    drawing.add(
        String(width / 2, (height - 20) / 2, "No data", fontName="Helvetica", fontSize=9, textAnchor="middle")
    )
    return drawing


def _legend(x: float, y: float, pairs: Iterable[tuple[colors.Color, str]]) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.alignment = "right"
    legend.fontName = "Helvetica"
    legend.fontSize = 7
    legend.boxAnchor = "nw"
    legend.columnMaximum = 8
    legend.dx = legend.dy = 6
    legend.deltay = 9
    legend.colorNamePairs = list(pairs)
    return legend


def compliance_chart(
    evidence: Mapping[str, Any], width: float = CONTENT_WIDTH, height: float = 170
) -> Drawing:
    """Grouped bars: compliance before/after (percent) for each environment."""
    title = "Compliance before and after, by environment"
    by_env: Mapping[str, Any] = (evidence.get("summary") or {}).get("by_environment") or {}
    environments = sorted_environments(by_env)
    if not environments:
        return _no_data(width, height, title)
    before = [_percent((by_env[e] or {}).get("compliance_before")) for e in environments]
    after = [_percent((by_env[e] or {}).get("compliance_after")) for e in environments]

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y = 32, 22
    chart.width, chart.height = width - 130, height - 50
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
    chart.bars[0].fillColor = _BEFORE
    chart.bars[1].fillColor = _AFTER
    chart.bars.strokeColor = None
    chart.groupSpacing = 10
    chart.barSpacing = 2
    chart.barLabelFormat = "%.0f%%"
    chart.barLabels.fontName = "Helvetica"
    chart.barLabels.fontSize = 6.5
    chart.barLabels.nudge = 6
    drawing.add(chart)
    drawing.add(_legend(width - 90, height - 30, [(_BEFORE, "Before"), (_AFTER, "After")]))
    return drawing


def _states_by_cloud(evidence: Mapping[str, Any]) -> dict[str, Counter[str]]:
    hosts = evidence.get("hosts") or []
    counts: dict[str, Counter[str]] = {}
    if hosts:
        for host in hosts:
            cloud = _text(host.get("cloud"), "unknown") or "unknown"
            counts.setdefault(cloud, Counter())[_text(host.get("final_state"), "unknown")] += 1
        return counts
    # No host records: fall back to the per-cloud summary (fewer states, same meaning).
    by_cloud: Mapping[str, Any] = (evidence.get("summary") or {}).get("by_cloud") or {}
    for cloud, row in by_cloud.items():
        row = row or {}
        counts[str(cloud)] = Counter({s: _int(row.get(s)) for s in ("patched", "failed", "held", "not_run")})
    return counts


def host_states_chart(
    evidence: Mapping[str, Any], width: float = CONTENT_WIDTH, height: float = 190
) -> Drawing:
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
    chart.width, chart.height = width - 150, height - 50
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


# ------------------------------------------------------------------------------------------- tables


def _table(rows: list[list[Any]], widths: list[float], *, numeric_from: int | None = None) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("BACKGROUND", (0, 0), (-1, 0), _HEADER_BG),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, _ZEBRA]),
        ("GRID", (0, 0), (-1, -1), 0.25, _GRID),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if numeric_from is not None:
        style.append(("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"))
    table.setStyle(TableStyle(style))
    return table


def _title_block(evidence: Mapping[str, Any], styles: _Styles, generated_at: str) -> list[Any]:
    tenant = evidence.get("tenant") or {}
    cycle = evidence.get("cycle") or {}
    plan = evidence.get("plan") or {}
    outcome = _text(cycle.get("outcome"), "unknown").lower()
    colour = OUTCOME_COLOURS.get(outcome, "#000000")
    frameworks = ", ".join(FRAMEWORK_NAMES.get(f, str(f)) for f in tenant.get("frameworks") or []) or "none"
    plan_hash = cycle.get("plan_hash") or plan.get("hash")
    dry_run = bool(cycle.get("dry_run"))

    flow: list[Any] = [
        Paragraph("Patch cycle report", styles.title),
        Paragraph(
            f"<b>{_markup(tenant.get('display_name'), 'Unknown tenant')}</b> ({_markup(tenant.get('id'))})",
            styles.body,
        ),
        Paragraph(
            f'Outcome: <font color="{colour}"><b>{_markup(outcome.upper())}</b></font>'
            + (' <font color="#1565c0"><b>DRY RUN</b></font>' if dry_run else ""),
            styles.outcome,
        ),
        Spacer(1, 4),
    ]
    meta = [
        ("Cycle date", cycle.get("cycle_date") or plan.get("cycle_date")),
        ("Run id", cycle.get("run_id")),
        ("Started", cycle.get("started_at")),
        ("Finished", cycle.get("finished_at")),
        ("Dry run", "yes" if dry_run else "no"),
        ("Plan hash (sha256)", plan_hash),
        ("Frameworks", frameworks),
        ("Generated", f"{_text(generated_at, 'n/a')} by {_text(cycle.get('generated_by'), 'patchcycle')}"),
    ]
    rows = [
        [Paragraph(f"<b>{escape(label)}</b>", styles.cell), Paragraph(_markup(value, "n/a"), styles.cell)]
        for label, value in meta
    ]
    table = Table(rows, colWidths=[1.4 * inch, CONTENT_WIDTH - 1.4 * inch])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, _GRID),
                ("BACKGROUND", (0, 0), (0, -1), _ZEBRA),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    flow.append(table)
    return flow


def _summary_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    rows: list[list[Any]] = [["Measure", "Value"]]
    rows += [[label, value] for label, value in summary_rows(dict(evidence))]
    table = _table(rows, [2.4 * inch, 1.6 * inch], numeric_from=1)
    table.hAlign = "LEFT"
    events = len(evidence.get("events") or [])
    return [
        Paragraph("Summary", styles.h2),
        table,
        Spacer(1, 4),
        Paragraph(
            f"{events:,} audit events are recorded in the evidence JSON of this pack.",
            styles.note,
        ),
    ]


def _stage_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    stages = evidence.get("stages") or []
    flow: list[Any] = [Paragraph("Stages", styles.h2)]
    if not stages:
        return [*flow, Paragraph("No stages were recorded for this cycle.", styles.body)]
    rows: list[list[Any]] = [
        ["Environment", "Status", "Targeted", "Succeeded", "Failed", "Backups", "Reason"]
    ]
    status_styles = []
    for index, stage in enumerate(stages, start=1):
        status = _text(stage.get("status"), "unknown")
        rows.append(
            [
                _text(stage.get("environment")),
                status,
                f"{_int(stage.get('hosts_targeted')):,}",
                f"{_int(stage.get('hosts_succeeded')):,}",
                f"{_int(stage.get('hosts_failed')):,}",
                f"{_int(stage.get('backups')):,}",
                Paragraph(_markup(stage.get("reason")), styles.cell),
            ]
        )
        if status in STAGE_STATUS_COLOURS:
            status_styles.append(("TEXTCOLOR", (1, index), (1, index), STAGE_STATUS_COLOURS[status]))
    widths = [0.9 * inch, 0.75 * inch, 0.65 * inch, 0.7 * inch, 0.55 * inch, 0.6 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    table = _table(rows, widths)
    table.setStyle(TableStyle([("ALIGN", (2, 0), (5, -1), "RIGHT"), *status_styles]))
    return [*flow, table]


def attention_hosts(hosts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Hosts whose final state needs attention, most urgent state first, then env order and name."""
    rank = {state: i for i, state in enumerate(ATTENTION_STATES)}
    selected = [h for h in hosts if h.get("final_state") in rank]
    selected.sort(
        key=lambda h: (
            rank[h["final_state"]],
            environment_rank(h.get("environment")),
            str(h.get("name") or ""),
            str(h.get("host_id") or ""),
        )
    )
    return selected


def _attention_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    selected = attention_hosts(evidence.get("hosts") or [])
    flow: list[Any] = [
        CondPageBreak(1.5 * inch),
        Paragraph(f"Hosts needing attention ({len(selected):,})", styles.h2),
    ]
    if not selected:
        return [*flow, Paragraph("No host is failed, held, non-compliant or not run.", styles.body)]
    by_state = Counter(h["final_state"] for h in selected)
    breakdown = ", ".join(f"{by_state[s]:,} {s.replace('_', ' ')}" for s in ATTENTION_STATES if by_state[s])
    flow.append(Paragraph(f"Final state failed, held, non-compliant or not run: {breakdown}.", styles.note))
    flow.append(Spacer(1, 4))

    shown = selected[:MAX_ATTENTION_ROWS]
    cell = styles.cell
    rows: list[list[Any]] = [["Name", "Host id", "Env", "Cloud", "State", "Reason"]]
    for host in shown:
        rows.append(
            [
                Paragraph(_markup(host.get("name")), cell),
                Paragraph(_markup(host.get("host_id")), styles.small_cell),
                _text(host.get("environment")),
                _text(host.get("cloud")),
                _text(host.get("final_state")).replace("_", " "),
                Paragraph(_markup(host.get("reason")), cell),
            ]
        )
    widths = [1.4 * inch, 2.2 * inch, 0.55 * inch, 0.45 * inch, 0.7 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    flow.append(_table(rows, widths))
    remaining = len(selected) - len(shown)
    if remaining > 0:
        flow.append(Spacer(1, 4))
        flow.append(
            Paragraph(
                f"<b>{remaining:,} more hosts needing attention are not shown here</b>; "
                f"they are listed in the per-host CSV of this evidence pack.",
                styles.body,
            )
        )
    return flow


def _severity_rank(severity: Any) -> int:
    try:
        return SEVERITY_ORDER.index(str(severity or "").lower())
    except ValueError:
        return len(SEVERITY_ORDER)


def _patch_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    approved: Mapping[str, Any] = (evidence.get("plan") or {}).get("approved") or {}
    flow: list[Any] = [CondPageBreak(1.5 * inch), Paragraph("Approved patch set", styles.h2)]
    families = sorted(approved)
    total = sum(len(approved[f] or []) for f in families)
    if not total:
        return [*flow, Paragraph("The plan approved no patches for this cycle.", styles.body)]
    flow.append(
        Paragraph(
            f"{total:,} patches approved across {len(families)} OS families, most severe first "
            f"(up to {MAX_PATCHES_PER_FAMILY} per family here; the full set is in the evidence JSON).",
            styles.note,
        )
    )
    budget = MAX_PATCH_ROWS
    for family in families:
        patches = sorted(
            approved[family] or [],
            key=lambda p: (_severity_rank(p.get("severity")), str(p.get("id") or "")),
        )
        header = Paragraph(f"<b>{_markup(family)}</b> ({len(patches):,})", styles.body)
        if not patches:
            flow += [Spacer(1, 4), header, Paragraph("No patches approved.", styles.note)]
            continue
        shown = patches[: max(0, min(MAX_PATCHES_PER_FAMILY, budget))]
        budget -= len(shown)
        flow += [CondPageBreak(1.2 * inch), Spacer(1, 6), header]
        if shown:
            rows: list[list[Any]] = [["Patch id", "Severity", "CVEs", "Released"]]
            for patch in shown:
                cves = [str(c) for c in patch.get("cves") or []]
                text = ", ".join(cves[:MAX_CVES_PER_PATCH])
                if len(cves) > MAX_CVES_PER_PATCH:
                    text += f" (+{len(cves) - MAX_CVES_PER_PATCH} more)"
                rows.append(
                    [
                        Paragraph(_markup(patch.get("id")), styles.cell),
                        _text(patch.get("severity"), "-"),
                        Paragraph(_markup(text or "-"), styles.cell),
                        _text(patch.get("released"), "-"),
                    ]
                )
            widths = [1.8 * inch, 0.9 * inch, 0.0, 0.9 * inch]
            widths[2] = CONTENT_WIDTH - sum(widths)
            flow.append(_table(rows, widths))
        if len(shown) < len(patches):
            flow.append(Paragraph(f"{len(patches) - len(shown):,} more not shown.", styles.note))
    return flow


# ------------------------------------------------------------------------------------------- report


def render_cycle_report(evidence: dict, *, generated_at: str | None = None) -> bytes:
    """Render the cycle's evidence document as the PDF report; return the PDF bytes.

    ``generated_at`` is printed as the report's generation time; it defaults to the cycle's
    ``finished_at`` (then ``started_at``) so that identical input gives identical bytes
    (the PDF is built in reportlab's invariant mode).
    """
    tenant = evidence.get("tenant") or {}
    cycle = evidence.get("cycle") or {}
    plan = evidence.get("plan") or {}
    cycle_date = _text(cycle.get("cycle_date") or plan.get("cycle_date"), "n/a")
    plan_hash = _text(cycle.get("plan_hash") or plan.get("hash"), "n/a")
    if generated_at is None:
        generated_at = cycle.get("finished_at") or cycle.get("started_at") or "n/a"
    styles = _Styles()

    flow: list[Any] = []
    flow += _title_block(evidence, styles, generated_at)
    flow += _summary_section(evidence, styles)
    flow += [Spacer(1, 8), compliance_chart(evidence), Spacer(1, 8), host_states_chart(evidence)]
    flow += _stage_section(evidence, styles)
    flow += _attention_section(evidence, styles)
    flow += _patch_section(evidence, styles)

    footer = f"{_text(tenant.get('id'))}  |  cycle {cycle_date}  |  plan {plan_hash[:12]}"
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=PAGE_SIZE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=0.8 * inch,
        title=f"Patch cycle report - {_text(tenant.get('display_name'))} - {cycle_date}",
        author=_text(cycle.get("generated_by"), "patchcycle"),
        subject=f"Patch cycle {cycle_date} for tenant {_text(tenant.get('id'))}",
        creator="patchcycle",
        invariant=1,
    )
    doc.build(flow, canvasmaker=partial(_FooterCanvas, footer_text=footer))
    return buffer.getvalue()
