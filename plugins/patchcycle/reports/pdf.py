"""The patch cycle PDF report a tenant's compliance contact (and their auditor) reads.

Built with reportlab platypus and reportlab.graphics charts from the cycle's evidence document
(``schema_version`` "1.0" or "1.1"). Pure: no cloud or file I/O. Only hosts needing attention are laid out
(capped); the full per-host list is the CSV in the same evidence pack.

Sections, in order: title block, summary and charts, stages, control coverage, risk and SLA,
compliance trend, risk acceptances (exceptions), access review, hosts needing attention, approved
patch set. The sections from "control coverage" to "access review" read optional top-level keys
(``controls``/``controls_summary``/``retention``, ``risk``, ``trend``, ``exceptions``, ``access``);
when a key is absent or None (older documents) the section says it has no data. Long tables are capped
and the report says how many more rows are in ``evidence.json``.
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
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from patchcycle.reports.tables import (
    environment_rank,
    host_sort_key,
    installed_version_text,
    sorted_environments,
    summary_rows,
)

#: Final states listed in "Hosts needing attention", most urgent first.
ATTENTION_STATES: tuple[str, ...] = ("failed", "non_compliant", "not_assessed", "not_run", "held")
#: At most this many attention rows are laid out; the rest are counted and referred to the CSV.
MAX_ATTENTION_ROWS = 500
#: At most this many approved patches are listed per OS family ...
MAX_PATCHES_PER_FAMILY = 60
#: ... and at most this many in total.
MAX_PATCH_ROWS = 300
#: At most this many CVE ids are printed per patch.
MAX_CVES_PER_PATCH = 4
#: At most this many controls are laid out (catalogs hold a few dozen).
MAX_CONTROL_ROWS = 300
#: At most this many open risk rows are laid out; the rest are in evidence.json.
MAX_RISK_ROWS = 300
#: At most this many host rows per exception table (excepted, partial, lapsed).
MAX_EXCEPTION_HOST_ROWS = 300
#: At most this many acceptances per register table (active, expired, expiring soon).
MAX_ACCEPTANCE_ROWS = 300
#: At most this many access grants are laid out.
MAX_ACCESS_ROWS = 300
#: At most this many cycles are drawn in the compliance trend (the current cycle last).
MAX_TREND_POINTS = 12
#: Table cells of the audit sections are clipped to this many characters: a table row cannot split
#: across pages, so one huge cell (an acceptance scoped to thousands of hosts) must not outgrow one.
MAX_CELL_CHARS = 700

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
    # Teal: not a shade of any other state (it is neither a failure nor a known gap, nor grey "not run").
    ("not_assessed", colors.HexColor("#00838f")),
    ("not_run", colors.HexColor("#757575")),
    ("out_of_scope", colors.HexColor("#bdbdbd")),
)
#: The same colours as "#rrggbb", for state text in host tables (the chart's legend is the key).
STATE_HEX: dict[str, str] = {state: "#" + colour.hexval()[2:] for state, colour in STATE_COLOURS}
#: How an approved patch's release date is known (ApprovedPatch.released_basis), as printed.
RELEASED_BASIS_LABELS: dict[str, str] = {
    "vendor": "vendor release date",
    "first_seen": "first detected (no release date)",
    "baseline": "cutoff: the baseline approved it",
}
OUTCOME_COLOURS: dict[str, str] = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "partial": "#ef6c00",
    "planned": "#1565c0",
    "refused": "#4e342e",
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
    "sox": "SOX ITGC",
    "references": "References",
}
#: Control status -> colour (evidenced green, partial orange, missing red).
CONTROL_STATUS_COLOURS: dict[str, colors.Color] = {
    "evidenced": colors.HexColor("#2e7d32"),
    "partial": colors.HexColor("#ef6c00"),
    "missing": colors.HexColor("#c62828"),
}
#: Severities of the overdue chart, in order, with their colours.
RISK_SEVERITY_COLOURS: tuple[tuple[str, colors.Color], ...] = (
    ("Critical", colors.HexColor("#b71c1c")),
    ("High", colors.HexColor("#ef6c00")),
    ("Medium", colors.HexColor("#f9a825")),
    ("Low", colors.HexColor("#78909c")),
)
#: SLA statuses in the order they are reported, with their labels.
SLA_STATUS_LABELS: tuple[tuple[str, str], ...] = (
    ("overdue", "overdue"),
    ("due_soon", "due soon"),
    ("open", "open within SLA"),
    ("late", "resolved late"),
    ("met", "met"),
)
SLA_STATUS_COLOURS: dict[str, str] = {"overdue": "#c62828", "due_soon": "#ef6c00", "late": "#ef6c00"}
SEVERITY_ORDER: tuple[str, ...] = ("critical", "high", "important", "medium", "moderate", "low")

_HEADER_BG = colors.HexColor("#263238")
_GRID = colors.HexColor("#b0bec5")
_ZEBRA = colors.HexColor("#f5f7f8")
_BEFORE = colors.HexColor("#90a4ae")
_AFTER = colors.HexColor("#1565c0")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RED = "#c62828"
_WHITESPACE = re.compile(r"\s+")
_MUTED = "#607d8b"


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


def _optional_percent(value: Any) -> float | None:
    """Like :func:`_percent`, but None (not 0) for a missing or unreadable ratio."""
    if value is None or isinstance(value, bool):
        return None
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        return None
    if ratio != ratio:  # NaN
        return None
    return round(min(max(ratio, 0.0), 1.0) * 100, 1)


def _clip_plain(value: Any, limit: int = MAX_CELL_CHARS, default: str = "") -> str:
    """Cell text with whitespace collapsed, at most ``limit`` characters, saying what was cut."""
    text = _WHITESPACE.sub(" ", _text(value, default))
    if len(text) > limit:
        text = f"{text[:limit].rstrip()}… (+{len(text) - limit:,} characters in evidence.json)"
    return text


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in ``value`` if it is a list (anything else in it is skipped), else []."""
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _strings(value: Any) -> list[str]:
    """The non-empty items of a list as text, else []."""
    if not isinstance(value, list | tuple):
        return []
    return [t for t in (_text(item) for item in value) if t]


def _framework_name(framework: Any) -> str:
    return FRAMEWORK_NAMES.get(_text(framework), _text(framework, "unknown") or "unknown")


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


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


# -------------------------------------------------------------------------------------- table cells

#: A run of cell text: (text, font name, font size, colour as "#rrggbb").
Run = tuple[str, str, float, str]
_FONT = "Helvetica"
_BOLD = "Helvetica-Bold"
_BLACK = "#000000"
_colour_cache: dict[str, colors.Color] = {}


def _colour(hex_colour: str) -> colors.Color:
    colour = _colour_cache.get(hex_colour)
    if colour is None:
        colour = _colour_cache[hex_colour] = colors.HexColor(hex_colour)
    return colour


_char_widths: dict[tuple[str, float], dict[str, float]] = {}


def _measure(text: str, font: str, size: float) -> float:
    """Width of ``text`` in points, from per-character widths cached per font and size."""
    table = _char_widths.setdefault((font, size), {})
    total = 0.0
    for char in text:
        width = table.get(char)
        if width is None:
            width = table[char] = stringWidth(char, font, size)
        total += width
    return total


def _wrap_text(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy line breaking at spaces; words longer than ``width`` are split between characters.

    Linear in the length of ``text`` (reportlab's own long-word splitting re-measures every prefix).
    """
    space = _measure(" ", font, size)
    lines: list[str] = []
    current, current_width = "", 0.0
    for word in text.split(" "):
        word_width = _measure(word, font, size)
        if current and current_width + space + word_width <= width:
            current, current_width = f"{current} {word}", current_width + space + word_width
            continue
        if current:
            lines.append(current)
        if word_width <= width:
            current, current_width = word, word_width
            continue
        piece, piece_width = "", 0.0
        for char in word:
            char_width = _measure(char, font, size)
            if piece and piece_width + char_width > width:
                lines.append(piece)
                piece, piece_width = "", 0.0
            piece, piece_width = piece + char, piece_width + char_width
        current, current_width = piece, piece_width
    if current:
        lines.append(current)
    return lines


class _TextCell(Flowable):
    """Table-cell text laid out and drawn directly, without Paragraph markup parsing.

    Laying out Paragraphs (pure-Python line breaking, and reportlab's long-word splitting that
    re-measures every prefix) is what makes long tables slow, and reportlab lays out each cell two or
    three times. A cell is a few lines of runs (text, font, size, colour). A line too wide for the
    column is broken between runs, then at spaces, then between characters, with cached character
    widths; the layout is kept per width. Run text is clipped to :data:`MAX_CELL_CHARS` characters,
    so no cell outgrows a page.
    """

    def __init__(self, lines: list[list[Run]]) -> None:
        super().__init__()
        cleaned = [
            [(_clip_plain(text), font, size, colour) for text, font, size, colour in line] for line in lines
        ]
        self._lines = [kept for kept in ([run for run in line if run[0]] for line in cleaned) if kept]
        self._layout_for: float | None = None
        self._laid: list[list[Run]] = []

    @staticmethod
    def _leading(line: list[Run]) -> float:
        return max(size for _, _, size, _ in line) * 1.2

    def _layout(self, width: float) -> list[list[Run]]:
        laid: list[list[Run]] = []
        for line in self._lines:
            current: list[Run] = []
            used = 0.0
            for text, font, size, colour in line:
                run_width = _measure(text, font, size)
                if current and used + run_width <= width:
                    current.append((text, font, size, colour))
                    used += run_width
                    continue
                if current:
                    laid.append(current)
                    text = text.lstrip()
                    run_width = _measure(text, font, size)
                if run_width <= width:
                    current, used = [(text, font, size, colour)], run_width
                    continue
                pieces = _wrap_text(text, font, size, width) or [""]
                laid += [[(piece, font, size, colour)] for piece in pieces[:-1]]
                current, used = [(pieces[-1], font, size, colour)], _measure(pieces[-1], font, size)
            if current:
                laid.append(current)
        return laid

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        if self._layout_for != availWidth:
            self._laid = self._layout(availWidth)
            self._layout_for = availWidth
        self.width = availWidth
        self.height = sum(self._leading(line) for line in self._laid)
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Any]:  # noqa: N803
        return []

    def draw(self) -> None:
        text_object = self.canv.beginText()
        style: tuple[str, float] | None = None
        fill: str | None = None
        top = self.height
        for line in self._laid:
            text_object.setTextOrigin(0, top - max(s for _, _, s, _ in line))
            for text, font, size, colour in line:
                if style != (font, size):
                    text_object.setFont(font, size)
                    style = (font, size)
                if fill != colour:
                    text_object.setFillColor(_colour(colour))
                    fill = colour
                text_object.textOut(text)
            top -= self._leading(line)
        self.canv.drawText(text_object)


def _run(
    value: Any, *, default: str = "", size: float = 7.5, bold: bool = False, colour: str = _BLACK
) -> Run:
    return (_text(value, default).strip(), _BOLD if bold else _FONT, size, colour)


def _cell(
    main: Any,
    detail: Any = None,
    *,
    default: str = "-",
    bold: bool = False,
    colour: str = _BLACK,
    small: bool = False,
) -> _TextCell:
    """A table cell: ``main`` and, when given, ``detail`` in small grey type under it."""
    text = _text(main, default) or default
    lines = [[_run(text, size=6.5 if small else 7.5, bold=bold, colour=colour)]]
    if detail:
        lines.append([_run(detail, size=6, colour=_MUTED)])
    return _TextCell(lines)


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
        counts[str(cloud)] = Counter(
            {
                s: _int(row.get(s))
                for s in ("patched", "failed", "held", "non_compliant", "not_assessed", "not_run")
            }
        )
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


def overdue_chart(risk: Mapping[str, Any], width: float = CONTENT_WIDTH, height: float = 160) -> Drawing:
    """Bars: open patch-host pairs past their SLA due date, by severity (Critical..Low, then others)."""
    title = "Overdue open patches, by severity"
    by_severity = _mapping(_mapping(risk.get("summary")).get("overdue_by_severity"))
    if not by_severity:
        return _no_data(width, height, title)
    palette = dict(RISK_SEVERITY_COLOURS)
    severities = [s for s, _ in RISK_SEVERITY_COLOURS]
    severities += sorted(str(s) for s in by_severity if str(s) not in palette)
    values = [_int(by_severity.get(s)) for s in severities]
    peak = max(values, default=0)

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y = 40, 22
    chart.width, chart.height = width - 60, height - 50
    chart.data = [values]
    chart.categoryAxis.categoryNames = [_text(s) for s in severities]
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


def trend_points(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The last :data:`MAX_TREND_POINTS` cycles of ``trend`` (oldest first, the current cycle last)."""
    return _records(evidence.get("trend"))[-MAX_TREND_POINTS:]


def trend_chart(
    points: list[Mapping[str, Any]], width: float = CONTENT_WIDTH, height: float = 180
) -> Drawing:
    """Lines: fleet compliance before and after (percent) over the trend cycles, oldest first."""
    title = "Compliance over the last cycles"
    after = [_optional_percent(p.get("compliance_after")) for p in points]
    if sum(v is not None for v in after) < 2:
        return _no_data(width, height, title)
    before = [_optional_percent(p.get("compliance_before")) for p in points]

    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=9))
    chart = HorizontalLineChart()
    chart.x, chart.y = 32, 34
    chart.width, chart.height = width - 130, height - 62
    chart.data = [before, after]
    chart.joinedLines = 1
    chart.categoryAxis.categoryNames = [_text(p.get("cycle_date"), "?") for p in points]
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
    for index, colour in enumerate((_BEFORE, _AFTER)):
        chart.lines[index].strokeColor = colour
        chart.lines[index].strokeWidth = 1.5
        chart.lines[index].symbol = makeMarker("FilledCircle", size=3.5, fillColor=colour, strokeColor=colour)
    drawing.add(chart)
    drawing.add(_legend(width - 90, height - 30, [(_BEFORE, "Before"), (_AFTER, "After")]))
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
    refused = [str(r) for r in cycle.get("refused_reasons") or []]
    if refused:
        flow.append(
            Paragraph(
                "<b>The run was refused before it read or changed any host.</b> Why:",
                styles.body,
            )
        )
        flow += [Paragraph(f"&bull; {_markup(reason)}", styles.body) for reason in refused]
        flow.append(Spacer(1, 4))
    if cycle.get("halted_reason"):
        flow.append(
            Paragraph(f"<b>The run stopped early:</b> {_markup(cycle['halted_reason'])}.", styles.body)
        )
        flow.append(Spacer(1, 4))
    soak_hours = cycle.get("soak_hours_override")
    meta = [
        ("Cycle date", cycle.get("cycle_date") or plan.get("cycle_date")),
        ("Run id", cycle.get("run_id")),
        ("Triggered by", cycle.get("triggered_by") or f"Airflow ({_text(cycle.get('run_type'), 'run')})"),
        ("Started", cycle.get("started_at")),
        ("Finished", cycle.get("finished_at")),
        ("Dry run", "yes" if dry_run else "no"),
        (
            "Emergency change",
            f"prod patched outside its change window: {cycle['window_override_reason']}"
            if cycle.get("window_override_reason")
            else "no (prod waits for its change window)",
        ),
        (
            "Soak override",
            f"{soak_hours} h: {_text(cycle.get('soak_override_reason'), 'no reason recorded')}"
            if soak_hours is not None
            else "no (each stage's configured soak)",
        ),
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
    flow: list[Any] = [Paragraph("Summary", styles.h2), table, Spacer(1, 4)]
    not_assessed = _int((evidence.get("summary") or {}).get("not_assessed"))
    if not_assessed:
        flow.append(
            Paragraph(
                f"<b>Not assessed: {_plural(not_assessed, 'host')}</b>. The cloud's own assessment of what "
                "such a host is missing could not be read, so nothing shows it compliant: it counts as not "
                "compliant, before and after. Each host's reason is under Hosts needing attention.",
                styles.body,
            )
        )
    flow.append(
        Paragraph(f"{events:,} audit events are recorded in the evidence JSON of this pack.", styles.note)
    )
    return flow


def _stage_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    stages = evidence.get("stages") or []
    flow: list[Any] = [Paragraph("Stages", styles.h2)]
    if not stages:
        return [*flow, Paragraph("No stages were recorded for this cycle.", styles.body)]
    rows: list[list[Any]] = [
        ["Environment", "Status", "Targeted", "Succeeded", "Failed", "Not assessed", "Backups", "Reason"]
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
                f"{_int(stage.get('hosts_not_assessed')):,}",
                f"{_int(stage.get('backups')):,}",
                Paragraph(_markup(stage.get("reason")), styles.cell),
            ]
        )
        if status in STAGE_STATUS_COLOURS:
            status_styles.append(("TEXTCOLOR", (1, index), (1, index), STAGE_STATUS_COLOURS[status]))
    widths = [0.9 * inch, 0.75 * inch, 0.65 * inch, 0.7 * inch, 0.55 * inch, 0.8 * inch, 0.6 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    table = _table(rows, widths)
    table.setStyle(TableStyle([("ALIGN", (2, 0), (6, -1), "RIGHT"), *status_styles]))
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
        return [
            *flow,
            Paragraph("No host is failed, held, non-compliant, not assessed or not run.", styles.body),
        ]
    by_state = Counter(h["final_state"] for h in selected)
    breakdown = ", ".join(f"{by_state[s]:,} {s.replace('_', ' ')}" for s in ATTENTION_STATES if by_state[s])
    flow.append(
        Paragraph(
            f"Final state failed, held, non-compliant, not assessed or not run: {breakdown}.", styles.note
        )
    )
    flow.append(Spacer(1, 4))

    shown = selected[:MAX_ATTENTION_ROWS]
    rows: list[list[Any]] = [["Name", "Host id", "Env", "Cloud", "State", "Reason"]]
    for host in shown:
        rows.append(
            [
                _cell(host.get("name"), default=""),
                _cell(host.get("host_id"), default="", small=True),
                _text(host.get("environment")),
                _text(host.get("cloud")),
                _cell(
                    _text(host.get("final_state")).replace("_", " "),
                    bold=True,
                    colour=STATE_HEX.get(_text(host.get("final_state")), _BLACK),
                ),
                _cell(host.get("reason"), default=""),
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
    return flow + _version_drift_section(evidence, styles)


APPENDIX_ROWS_PER_TABLE = 200
"""The host appendix is built as tables of this many rows (one long table would be laid out at once)."""


def _host_appendix(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    """Every host of the cycle, one line each, in promotion order then name: the report's counts can be
    checked against this list, and each host's full record is in the JSON and the CSV."""
    hosts = sorted(_records(evidence.get("hosts")), key=host_sort_key)
    flow: list[Any] = [
        PageBreak(),
        Paragraph(f"Appendix: every host ({len(hosts):,})", styles.h2),
        Paragraph(
            "Each host of the cycle with its final state and missing updates before and after; the "
            "reasons of the hosts needing attention are above, and every field is in the CSV and JSON.",
            styles.note,
        ),
        Spacer(1, 4),
    ]
    if not hosts:
        return [*flow, Paragraph("The cycle had no host.", styles.body)]
    header = ["Name", "Env", "Cloud", "OS family", "State", "Missing", "Backup"]
    widths = [1.9 * inch, 0.6 * inch, 0.5 * inch, 1.1 * inch, 0.9 * inch, 0.7 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    for start in range(0, len(hosts), APPENDIX_ROWS_PER_TABLE):
        rows: list[list[Any]] = [header]
        for host in hosts[start : start + APPENDIX_ROWS_PER_TABLE]:
            before, after = host.get("missing_before"), host.get("missing_after")
            rows.append(
                [
                    _clip_plain(host.get("name") or host.get("host_id"), 40),
                    _text(host.get("environment"), "-"),
                    _text(host.get("cloud"), "-"),
                    _text(host.get("os_family"), "-"),
                    _text(host.get("final_state"), "-").replace("_", " "),
                    f"{_text(before, '-')} -> {_text(after, '-')}",
                    _clip_plain(host.get("backup_id"), 30, "-"),
                ]
            )
        flow.append(_table(rows, widths))
    return flow


def version_drift_hosts(hosts: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[Mapping]]]:
    """Hosts whose cloud could not pin versions and that run another version than the plan froze, with
    the differing packages; in environment order, then name."""
    drifted = []
    for host in hosts:
        entries = [
            e for e in _records(host.get("installed_versions")) if e.get("installed") != e.get("planned")
        ]
        if entries:
            drifted.append((host, entries))
    drifted.sort(
        key=lambda pair: (
            environment_rank(pair[0].get("environment")),
            str(pair[0].get("name") or ""),
            str(pair[0].get("host_id") or ""),
        )
    )
    return drifted


def _version_drift_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    hosts = _records(evidence.get("hosts"))
    read_back = sum(1 for h in hosts if isinstance(h.get("installed_versions"), list))
    if not read_back:
        return []
    drifted = version_drift_hosts(hosts)
    flow: list[Any] = [
        CondPageBreak(1.2 * inch),
        Spacer(1, 6),
        Paragraph(f"<b>Installed versions that differ from the plan ({len(drifted):,})</b>", styles.body),
        Paragraph(
            f"On {_plural(read_back, 'host')} the cloud's install API names packages without versions, so "
            "verify read back the version each host runs. Listed: packages not at the plan's version.",
            styles.note,
        ),
    ]
    if not drifted:
        return [*flow, Paragraph("Every package read back is at the plan's version.", styles.note)]
    shown = drifted[:MAX_ATTENTION_ROWS]
    rows: list[list[Any]] = [["Name", "Env", "State", "Planned -> installed"]]
    for host, entries in shown:
        text = "; ".join(installed_version_text(e) for e in entries)
        state = _text(host.get("final_state"))
        rows.append(
            [
                _cell(
                    host.get("name") or host.get("host_id"), host.get("host_id") if host.get("name") else None
                ),
                _text(host.get("environment")),
                _cell(state.replace("_", " "), colour=STATE_HEX.get(state, _BLACK)),
                _cell(text, small=True),
            ]
        )
    widths = [2.0 * inch, 0.55 * inch, 0.8 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    return [*flow, _table(rows, widths), *_more_rows(len(drifted) - len(shown), "hosts", styles)]


def _severity_rank(severity: Any) -> int:
    try:
        return SEVERITY_ORDER.index(str(severity or "").lower())
    except ValueError:
        return len(SEVERITY_ORDER)


def _family_decisions(plan: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The plan's baseline decision per OS family (``plan.baselines``; absent in older documents)."""
    return {_text(d.get("os_family")): d for d in _records(plan.get("baselines")) if d.get("os_family")}


def _catalog_lines(decision: Mapping[str, Any] | None, styles: _Styles) -> list[Any]:
    """Where the family's catalog came from, and what the plan could not judge (schema 1.1)."""
    if decision is None or "sources" not in decision:
        return []  # a plan frozen before the plan recorded its sources
    sources = _strings(decision.get("sources"))
    text = (
        f"Catalog sources: {_markup(', '.join(sources))}."
        if sources
        else "Catalog sources: <b>none</b>. No source lists this family's updates; nothing was approved."
    )
    lines: list[Any] = [Paragraph(text, styles.note)]
    lines += [
        Paragraph(f'<font color="{_RED}">Not judged:</font> {_markup(_clip_plain(note))}', styles.note)
        for note in _strings(decision.get("notes"))
    ]
    return lines


def _package_version(patch: Mapping[str, Any]) -> tuple[str, str | None]:
    """(package or KB, the exact version frozen as [epoch:]version[.arch]) of an approved patch."""
    kb = _text(patch.get("kb"))
    main = _text(patch.get("package")) or (f"KB{kb}" if kb else "-")
    version = _text(patch.get("version"))
    if not version:
        return main, None
    epoch, arch = _text(patch.get("epoch")), _text(patch.get("arch"))
    return main, (f"{epoch}:" if epoch else "") + version + (f" ({arch})" if arch else "")


def _released_cell(patch: Mapping[str, Any]) -> _TextCell:
    basis = _text(patch.get("released_basis"))
    return _cell(patch.get("released"), RELEASED_BASIS_LABELS.get(basis, basis) or None)


def _patch_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    plan = evidence.get("plan") or {}
    approved: Mapping[str, Any] = plan.get("approved") or {}
    decisions = _family_decisions(plan)
    flow: list[Any] = [CondPageBreak(1.5 * inch), Paragraph("Approved patch set", styles.h2)]
    families = sorted(set(approved) | set(decisions))
    total = sum(len(approved.get(f) or []) for f in families)
    if not total and not any(_catalog_lines(d, styles) for d in decisions.values()):
        flow.append(Paragraph("The plan approved no patches for this cycle.", styles.body))
        return flow + _rds_updates(evidence, styles)
    flow.append(
        Paragraph(
            f"{total:,} patches approved across {len(families)} OS families, most severe first "
            f"(up to {MAX_PATCHES_PER_FAMILY} per family here; the full set is in the evidence JSON). "
            "Each is frozen at the version shown; under Released, how its release date is known.",
            styles.note,
        )
    )
    budget = MAX_PATCH_ROWS
    for family in families:
        patches = sorted(
            approved.get(family) or [],
            key=lambda p: (_severity_rank(p.get("severity")), str(p.get("id") or "")),
        )
        header = Paragraph(f"<b>{_markup(family)}</b> ({len(patches):,})", styles.body)
        catalog = _catalog_lines(decisions.get(family), styles)
        if not patches:
            flow += [Spacer(1, 4), header, *catalog, Paragraph("No patches approved.", styles.note)]
            continue
        shown = patches[: max(0, min(MAX_PATCHES_PER_FAMILY, budget))]
        budget -= len(shown)
        flow += [CondPageBreak(1.2 * inch), Spacer(1, 6), header, *catalog]
        if shown:
            rows: list[list[Any]] = [["Patch id", "Severity", "Package (version)", "CVEs", "Released"]]
            for patch in shown:
                cves = [str(c) for c in patch.get("cves") or []]
                text = ", ".join(cves[:MAX_CVES_PER_PATCH])
                if len(cves) > MAX_CVES_PER_PATCH:
                    text += f" (+{len(cves) - MAX_CVES_PER_PATCH} more)"
                rows.append(
                    [
                        _cell(patch.get("id"), default=""),
                        _text(patch.get("severity"), "-"),
                        _cell(*_package_version(patch)),
                        _cell(text),
                        _released_cell(patch),
                    ]
                )
            widths = [1.6 * inch, 0.75 * inch, 1.75 * inch, 0.0, 1.15 * inch]
            widths[3] = CONTENT_WIDTH - sum(widths)
            flow.append(_table(rows, widths))
        if len(shown) < len(patches):
            flow.append(Paragraph(f"{len(patches) - len(shown):,} more not shown.", styles.note))
    return flow + _rds_updates(evidence, styles)


def _rds_updates(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    """The RDS OS updates the plan froze (AWS gives them no version or release date: their descriptions)."""
    from patchcycle.domain.plan import rds_update_id

    updates = [str(u) for u in (evidence.get("plan") or {}).get("rds_os_updates") or []]
    if not updates:
        return []
    rows: list[list[Any]] = [["Update id", "RDS OS update (as RDS offered it when the plan was frozen)"]]
    rows += [[_cell(rds_update_id(u)), _cell(u)] for u in updates]
    header = Paragraph(f"<b>rds</b> ({len(updates):,} OS update(s))", styles.body)
    return [
        CondPageBreak(1.2 * inch),
        Spacer(1, 6),
        header,
        _table(rows, [1.8 * inch, CONTENT_WIDTH - 1.8 * inch]),
    ]


# ---------------------------------------------------------------------------------- audit sections


def _heading(title: str, styles: _Styles, keep: float = 1.6 * inch) -> list[Any]:
    """A section title, on a new page unless ``keep`` points are left on this one."""
    return [CondPageBreak(keep), Paragraph(escape(title), styles.h2)]


def _no_section_data(what: str, key: str, styles: _Styles) -> Paragraph:
    return Paragraph(
        f"No {escape(what)} data is recorded in this evidence document (no <i>{escape(key)}</i> section; "
        "documents written before this section was added do not have one).",
        styles.body,
    )


def _more_rows(remaining: int, what: str, styles: _Styles) -> list[Any]:
    if remaining <= 0:
        return []
    return [
        Spacer(1, 3),
        Paragraph(
            f"<b>{remaining:,} more {escape(what)} are not shown here</b>; "
            "they are listed in evidence.json of this evidence pack.",
            styles.body,
        ),
    ]


def _status_style(column: int, row: int, colour: colors.Color) -> list[tuple[Any, ...]]:
    return [
        ("TEXTCOLOR", (column, row), (column, row), colour),
        ("FONT", (column, row), (column, row), "Helvetica-Bold", 7.5),
    ]


def _controls_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    flow = _heading("Control coverage", styles)
    raw = evidence.get("controls")
    retention = evidence.get("retention")
    if raw is None and evidence.get("controls_summary") is None:
        flow.append(_no_section_data("control coverage", "controls", styles))
    else:
        flow += _controls_body(evidence, styles)
    flow.append(Spacer(1, 4))
    flow.append(_retention_line(retention, styles))
    return flow


def _retention_line(retention: Any, styles: _Styles) -> Paragraph:
    retention = _mapping(retention)
    days = _int(retention.get("days"))
    if not retention or days <= 0:
        return Paragraph(
            "No evidence retention data is recorded in this evidence document (no <i>retention</i> section).",
            styles.body,
        )
    mode = _text(retention.get("mode"), "unknown").strip() or "unknown"
    years = f" (about {days / 365:.1f} years)" if days >= 365 else ""
    locked = "locked in compliance mode" if mode.upper() == "COMPLIANCE" else f"locked in {mode} mode"
    return Paragraph(
        f"<b>Retention:</b> Evidence is {escape(locked)} for {days:,} days{years}: "
        "no one, including the operator's administrators, can delete or overwrite it before then.",
        styles.body,
    )


def _controls_body(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:  # noqa: C901 - the controls section's table; splits with reports/pdf.py (issue 13)
    controls = _records(evidence.get("controls"))
    given = _mapping(evidence.get("controls_summary"))
    order: list[str] = []
    for framework in [_text(c.get("framework")) for c in controls] + [_text(f) for f in given]:
        if framework not in order:
            order.append(framework)
    if "references" in order:  # references last: mapped, but not a framework the tenant picked
        order.remove("references")
        order.append("references")
    flow: list[Any] = []
    if not order:
        return [Paragraph("The evidence document maps no controls for this cycle.", styles.body)]

    for framework in order:
        counts = _mapping(given.get(framework))
        if not counts:
            statuses = Counter(
                _text(c.get("status")) for c in controls if _text(c.get("framework")) == framework
            )
            counts = {**statuses, "total": sum(statuses.values())}
        evidenced, partial, missing = (_int(counts.get(k)) for k in ("evidenced", "partial", "missing"))
        total = _int(counts.get("total")) or evidenced + partial + missing
        colour = "#2e7d32" if total and evidenced == total else (_RED if missing else "#ef6c00")
        if not total:
            colour = "#455a64"
        extra = "".join(f", {n:,} {label}" for n, label in ((partial, "partial"), (missing, "missing")) if n)
        label = "References (not a framework the tenant selected)" if framework == "references" else None
        name = label or _framework_name(framework)
        flow.append(
            Paragraph(
                f'<b>{escape(name)}:</b> <font color="{colour}"><b>{evidenced:,} of {total:,} evidenced'
                f"</b>{escape(extra)}</font>",
                styles.body,
            )
        )
    if not controls:
        return [*flow, Paragraph("No per-control results are recorded.", styles.note)]

    framework_rows = [c for c in controls if _text(c.get("framework")) != "references"]
    reference_rows = [c for c in controls if _text(c.get("framework")) == "references"]
    budget = MAX_CONTROL_ROWS
    for rows_in, with_framework, caption in (
        (framework_rows, True, None),
        (reference_rows, False, "References (NIST SP 800-40r4, CIS v8 and similar), for comparison"),
    ):
        if not rows_in:
            continue
        shown = rows_in[: max(0, budget)]
        budget -= len(shown)
        flow.append(Spacer(1, 6))
        if caption:
            flow.append(Paragraph(f"<b>{escape(caption)}</b>", styles.body))
        if shown:
            flow.append(_controls_table(shown, styles, with_framework=with_framework))
        flow += _more_rows(len(rows_in) - len(shown), "controls", styles)
    flow.append(
        Paragraph(
            "Evidenced: every required evidence item is present; partial: some are; missing: none are. "
            "The count after an event type is how many such events this cycle recorded.",
            styles.note,
        )
    )
    return flow


def _controls_table(controls: list[Mapping[str, Any]], styles: _Styles, *, with_framework: bool) -> Table:
    header = ["Control", "Title (source)", "Status", "Evidenced by", "Missing"]
    if with_framework:
        header.insert(0, "Framework")
    rows: list[list[Any]] = [header]
    extra_style: list[tuple[Any, ...]] = []
    status_column = 3 if with_framework else 2
    for index, control in enumerate(controls, start=1):
        status = _text(control.get("status"), "unknown")
        evidenced = [
            f"{_text(e.get('event'))} ({_int(e.get('count')):,})" for e in _records(control.get("evidenced"))
        ]
        missing = _strings(control.get("missing"))
        row: list[Any] = [
            _cell(control.get("control_id"), default="?", bold=True),
            _cell(control.get("title"), " ".join(_strings(control.get("references")))),
            status,
            _cell("; ".join(evidenced), small=True),
            _cell("; ".join(missing), small=True, colour=_RED),
        ]
        if with_framework:
            row.insert(0, _framework_name(control.get("framework")))
        rows.append(row)
        if status in CONTROL_STATUS_COLOURS:
            extra_style += _status_style(status_column, index, CONTROL_STATUS_COLOURS[status])
    widths = [0.95 * inch, 2.0 * inch, 0.7 * inch, 1.6 * inch]
    if with_framework:
        widths.insert(0, 0.7 * inch)
    else:
        widths[0] += 0.7 * inch
    widths.append(CONTENT_WIDTH - sum(widths))
    table = _table(rows, widths)
    if extra_style:
        table.setStyle(TableStyle(extra_style))
    return table


def _risk_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    flow = _heading("Risk and SLA", styles, keep=3.8 * inch)
    risk = evidence.get("risk")
    if risk is None or not isinstance(risk, Mapping):
        return [*flow, _no_section_data("risk and SLA", "risk", styles)]
    summary = _mapping(risk.get("summary"))
    rows = _records(risk.get("open"))
    total_open = _int(summary.get("open")) if summary.get("open") is not None else len(rows)
    flow.append(
        Paragraph(
            f"As of {_markup(risk.get('as_of'), 'n/a')}: "
            f"<b>{_plural(total_open, 'open patch', 'open patches')}</b> "
            "(one per host and approved patch not yet installed), each ranked and on its SLA clock.",
            styles.body,
        )
    )
    by_status = _mapping(summary.get("by_status"))
    known = [k for k, _ in SLA_STATUS_LABELS]
    parts = []
    for key, label in [*SLA_STATUS_LABELS, *((str(k), str(k)) for k in by_status if str(k) not in known)]:
        count = _int(by_status.get(key))
        text = f"{count:,} {escape(label.replace('_', ' '))}"
        colour = SLA_STATUS_COLOURS.get(key)
        parts.append(f'<font color="{colour}"><b>{text}</b></font>' if colour and count else text)
    flow.append(Paragraph(f"<b>SLA status</b> (all host-patch pairs): {', '.join(parts)}.", styles.body))
    by_priority = _mapping(summary.get("open_by_priority"))
    priorities = ", ".join(
        f"{_markup(k)}: {_int(v):,}" for k, v in sorted(by_priority.items(), key=lambda kv: str(kv[0]))
    )
    flow.append(Paragraph(f"<b>Open by priority:</b> {priorities or 'none'}.", styles.body))
    feeds = _mapping(risk.get("feeds"))
    flow.append(
        Paragraph(
            f"<b>Threat feeds:</b> CISA KEV catalog {_markup(feeds.get('kev_catalog_version'), 'n/a')}; "
            f"EPSS model {_markup(feeds.get('epss_model_version'), 'n/a')}, "
            f"scores of {_markup(feeds.get('epss_score_date'), 'n/a')}; "
            f"source: {_markup(feeds.get('source'), 'n/a')}.",
            styles.body,
        )
    )
    for warning in _strings(feeds.get("warnings")):
        flow.append(
            Paragraph(f'<font color="#c62828"><b>Stale feed:</b></font> {_markup(warning)}', styles.body)
        )
    flow += [Spacer(1, 6), overdue_chart(risk), Spacer(1, 6)]

    if not rows:
        message = (
            "No approved patch is open on an in-scope host."
            if not total_open
            else "The evidence document lists none of the open patches row by row."
        )
        return [*flow, Paragraph(message, styles.body)]
    shown = rows[:MAX_RISK_ROWS]
    flow.append(
        Paragraph(
            f"Open patches, most urgent first ({len(shown):,} of {len(rows):,} listed in evidence.json; "
            f'<font color="{_RED}"><b>[KEV]</b></font> = a CVE of the patch is in the CISA Known Exploited '
            "Vulnerabilities catalog; EPSS = highest EPSS percentile of its CVEs; Due (rule) = the earliest "
            "deadline and the rule that set it).",
            styles.note,
        )
    )
    table_rows: list[list[Any]] = [
        ["Host", "Patch", "Severity", "Pri.", "Score", "EPSS", "Due (rule)", "Status", "Why"]
    ]
    extra_style: list[tuple[Any, ...]] = []
    for index, row in enumerate(shown, start=1):
        patch: list[Run] = [_run(row.get("patch_id"), default="?")]
        if row.get("kev"):
            patch.append((" [KEV]", _BOLD, 7.5, _RED))
        status = _text(row.get("status"), "unknown")
        days = _int(row.get("days_overdue"))
        colour = SLA_STATUS_COLOURS.get(status)
        status_lines = [[_run(status.replace("_", " "), bold=bool(colour), colour=colour or _BLACK)]]
        if status == "overdue" and days:
            status_lines.append([_run(f"{days:,} d", bold=True, colour=colour or _BLACK)])
        percentile = row.get("epss_percentile")
        table_rows.append(
            [
                _cell(row.get("name") or row.get("host_id"), row.get("environment")),
                _TextCell([patch]),
                _text(row.get("severity"), "-"),
                _text(row.get("priority"), "-"),
                f"{_ratio(row.get('score')):.1f}" if row.get("score") is not None else "-",
                f"{_ratio(percentile):.2f}" if percentile is not None else "-",
                _cell(row.get("due"), row.get("due_source")),
                _TextCell(status_lines),
                _cell("; ".join(_strings(row.get("reasons"))), small=True),
            ]
        )
        if _text(row.get("priority")) == "P1":
            extra_style += _status_style(3, index, _colour(_RED))
    widths = [w * inch for w in (1.55, 1.3, 0.5, 0.3, 0.4, 0.38, 0.9, 0.55)]
    widths.append(CONTENT_WIDTH - sum(widths))
    table = _table(table_rows, widths)
    table.setStyle(TableStyle([("ALIGN", (4, 0), (5, -1), "RIGHT"), *extra_style]))
    flow.append(table)
    flow += _more_rows(len(rows) - len(shown), "open patches", styles)
    if risk.get("open_truncated") or total_open > len(rows):
        flow.append(
            Paragraph(
                f"evidence.json itself lists {len(rows):,} of the {total_open:,} open patches "
                "row by row; the counts above include all of them.",
                styles.note,
            )
        )
    return flow


def _trend_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    flow = _heading("Compliance trend", styles, keep=3.8 * inch)
    if evidence.get("trend") is None:
        return [*flow, _no_section_data("compliance trend", "trend", styles)]
    points = trend_points(evidence)
    if not points:
        return [*flow, Paragraph("No cycles are recorded in the compliance trend.", styles.body)]
    usable = sum(_optional_percent(p.get("compliance_after")) is not None for p in points)
    if usable < 2:
        flow.append(
            Paragraph(
                "Fewer than two cycles with a compliance figure are on record, so there is no trend to draw "
                "yet; it appears once a second cycle has completed.",
                styles.body,
            )
        )
    else:
        flow.append(
            Paragraph(
                f"Share of in-scope hosts missing no approved patch, before and after each of the last "
                f"{len(points)} cycles (this cycle last).",
                styles.note,
            )
        )
        flow += [Spacer(1, 4), trend_chart(points), Spacer(1, 4)]

    def pct(value: Any) -> str:
        number = _optional_percent(value)
        return "n/a" if number is None else f"{number:.1f}%"

    rows: list[list[Any]] = [["Cycle", "Outcome", "Compliance before", "Compliance after"]]
    for index, point in enumerate(points, start=1):
        cycle = _text(point.get("cycle_date"), "?") + (" (this cycle)" if index == len(points) else "")
        rows.append(
            [
                cycle,
                _text(point.get("outcome"), "-"),
                pct(point.get("compliance_before")),
                pct(point.get("compliance_after")),
            ]
        )
    table = _table(rows, [1.6 * inch, 1.0 * inch, 1.2 * inch, 1.2 * inch], numeric_from=2)
    table.hAlign = "LEFT"
    flow.append(table)
    return flow


def _acceptance_table(
    acceptances: list[Mapping[str, Any]], styles: _Styles, *, expired: bool = False
) -> list[Any]:
    shown = acceptances[:MAX_ACCEPTANCE_ROWS]
    last = "Status" if expired else "Days left"
    rows: list[list[Any]] = [
        ["Id (ticket)", "Scope", "Rating", "Approver (role)", "Approved", "Expires", last]
    ]
    extra_style: list[tuple[Any, ...]] = []
    for index, item in enumerate(shown, start=1):
        scope_detail = item.get("compensating_control")
        days_left = item.get("days_left")
        if expired:
            ago = -_int(days_left)
            last_cell: Any = _cell(
                "expired — no longer counts",
                f"{ago:,} days ago" if ago > 0 else None,
                bold=True,
                colour=_RED,
            )
        else:
            last_cell = f"{_int(days_left):,}" if days_left is not None else "-"
        rows.append(
            [
                _cell(item.get("id"), item.get("ticket")),
                _cell(
                    item.get("scope"),
                    f"Compensating control: {_text(scope_detail)}" if scope_detail else None,
                ),
                _text(item.get("risk_rating"), "-"),
                _cell(item.get("approver"), item.get("approver_role")),
                _text(item.get("approved_on"), "-"),
                _text(item.get("expires_on"), "-"),
                last_cell,
            ]
        )
        if expired:
            extra_style += _status_style(5, index, _colour(_RED))
    widths = [
        1.05 * inch,
        0.0,
        0.55 * inch,
        1.4 * inch,
        0.72 * inch,
        0.72 * inch,
        (1.1 if expired else 0.5) * inch,
    ]
    widths[1] = CONTENT_WIDTH - sum(widths)
    table = _table(rows, widths)
    if not expired:
        table.setStyle(TableStyle([("ALIGN", (6, 0), (6, -1), "RIGHT")]))
    if extra_style:
        table.setStyle(TableStyle(extra_style))
    return [table, *_more_rows(len(acceptances) - len(shown), "acceptances", styles)]


def _host_rows_table(
    records: list[Mapping[str, Any]],
    header: list[str],
    cells: Any,
    widths: list[float],
    styles: _Styles,
    what: str,
) -> list[Any]:
    shown = records[:MAX_EXCEPTION_HOST_ROWS]
    rows: list[list[Any]] = [header, *(cells(r) for r in shown)]
    widths = [*widths, CONTENT_WIDTH - sum(widths)]
    return [_table(rows, widths), *_more_rows(len(records) - len(shown), what, styles)]


def _exceptions_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    flow = _heading("Risk acceptances (exceptions)", styles)
    report = evidence.get("exceptions")
    if report is None or not isinstance(report, Mapping):
        return [*flow, _no_section_data("risk acceptance", "exceptions", styles)]
    active = _records(report.get("active"))
    expired = _records(report.get("expired"))
    not_yet = _records(report.get("not_yet_valid"))
    applied = _records(report.get("applied"))
    soon = _records(report.get("expiring_soon"))
    unused = _strings(report.get("unused"))
    partial = _records(report.get("partial"))
    lapsed = _records(report.get("lapsed"))
    flow.append(
        Paragraph(
            f"Register of tenant {_markup(report.get('tenant_id'), 'n/a')} "
            f"as of {_markup(report.get('as_of'), 'n/a')}: "
            f"{_plural(len(active), 'active acceptance')}, {len(expired):,} expired, "
            f"{len(not_yet):,} not yet valid; {_plural(len(applied), 'host')} excepted this cycle. "
            "Only active acceptances except a host; an excepted host is reported as such "
            "instead of non-compliant.",
            styles.body,
        )
    )

    def sub(title: str) -> list[Any]:
        return [CondPageBreak(1.0 * inch), Spacer(1, 6), Paragraph(f"<b>{escape(title)}</b>", styles.body)]

    flow += sub(f"Active acceptances ({len(active):,})")
    flow += _acceptance_table(active, styles) if active else [Paragraph("None.", styles.note)]

    flow += sub(f"Hosts excepted this cycle ({len(applied):,})")
    if applied:
        flow += _host_rows_table(
            applied,
            ["Host", "Exception", "Expires", "Previous state"],
            lambda r: [
                _cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                _text(r.get("exception_id"), "-"),
                _text(r.get("expires_on"), "-"),
                _cell(_text(r.get("previous_state"), "-").replace("_", " "), r.get("previous_reason")),
            ],
            [2.6 * inch, 1.1 * inch, 0.8 * inch],
            styles,
            "excepted hosts",
        )
    else:
        flow.append(Paragraph("No host was excepted this cycle.", styles.note))

    flow += sub(f"Expired acceptances ({len(expired):,})")
    if expired:
        flow.append(
            Paragraph(
                f'<font color="{_RED}"><b>These acceptances have expired and no longer count</b></font>: '
                "renew them through review or remove them from the register.",
                styles.body,
            )
        )
        flow += _acceptance_table(expired, styles, expired=True)
    else:
        flow.append(Paragraph("None.", styles.note))
    if lapsed:
        flow += sub(f"Hosts whose acceptance lapsed ({len(lapsed):,})")
        flow += _host_rows_table(
            lapsed,
            ["Host", "Expired exception"],
            lambda r: [
                _cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                _cell(f"{_text(r.get('exception_id'), '-')} (expired)", colour=_RED),
            ],
            [3.6 * inch],
            styles,
            "hosts with a lapsed acceptance",
        )

    flow += sub(f"Expiring soon ({len(soon):,})")
    if soon:
        rows: list[list[Any]] = [["Id", "Expires", "Days left"]]
        rows += [
            [_text(s.get("id"), "-"), _text(s.get("expires_on"), "-"), f"{_int(s.get('days_left')):,}"]
            for s in soon[:MAX_ACCEPTANCE_ROWS]
        ]
        table = _table(rows, [1.6 * inch, 1.0 * inch, 0.8 * inch], numeric_from=2)
        table.hAlign = "LEFT"
        flow += [table, *_more_rows(len(soon) - MAX_ACCEPTANCE_ROWS, "acceptances", styles)]
    else:
        flow.append(Paragraph("None.", styles.note))

    flow += sub(f"Unused acceptances ({len(unused):,})")
    flow.append(
        Paragraph(
            "Active but excepted no host this cycle (candidates to revoke or correct): "
            + _markup(", ".join(unused[:MAX_ACCEPTANCE_ROWS]) or "none")
            + (
                f" and {len(unused) - MAX_ACCEPTANCE_ROWS:,} more"
                if len(unused) > MAX_ACCEPTANCE_ROWS
                else ""
            )
            + ".",
            styles.body,
        )
    )
    if not_yet:
        ids = ", ".join(_text(a.get("id"), "?") for a in not_yet[:MAX_ACCEPTANCE_ROWS])
        flow.append(
            Paragraph(
                f"Not yet valid (approved, but not in force on this date): {_markup(ids)}.", styles.body
            )
        )
    if partial:
        flow += sub(f"Partly covered hosts ({len(partial):,})")
        flow += _host_rows_table(
            partial,
            ["Host", "Exception", "Patches the acceptance does not cover"],
            lambda r: [
                _cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                _text(r.get("exception_id"), "-"),
                _cell(", ".join(_strings(r.get("uncovered_patches"))[:12]), small=True),
            ],
            [2.6 * inch, 1.1 * inch],
            styles,
            "partly covered hosts",
        )
    return flow


def _access_section(evidence: Mapping[str, Any], styles: _Styles) -> list[Any]:
    flow = _heading("Access review (SOC 2 CC6.1)", styles)
    access = evidence.get("access")
    if access is None or not isinstance(access, Mapping):
        return [*flow, _no_section_data("access review", "access", styles)]
    grants = _records(access.get("grants"))
    permission_sets = _strings(access.get("permission_sets"))
    principals = access.get("principals")
    people = _int(principals) if principals is not None else len({_text(g.get("user_name")) for g in grants})
    flow.append(
        Paragraph(
            f"Reviewed at {_markup(access.get('reviewed_at'), 'n/a')}: {_plural(people, 'person', 'people')} "
            f"could run this cycle's automation through {_plural(len(grants), 'grant')} of "
            f"{_plural(len(permission_sets), 'permission set')}"
            + (f" ({_markup(', '.join(permission_sets))})" if permission_sets else "")
            + ".",
            styles.body,
        )
    )
    if not grants:
        return [*flow, Paragraph("No access grants are recorded.", styles.note)]
    shown = grants[:MAX_ACCESS_ROWS]
    rows: list[list[Any]] = [["Account", "Permission set (session)", "Person", "Via", "Policies"]]
    for grant in shown:
        details = [_text(grant.get("user_name")), _text(grant.get("email"))]
        detail = " · ".join(d for d in details if d)
        rows.append(
            [
                _cell(grant.get("account")),
                _cell(grant.get("permission_set"), grant.get("session_duration")),
                _cell(grant.get("display_name") or grant.get("user_name"), detail),
                _cell(grant.get("via")),
                _cell(", ".join(_strings(grant.get("managed_policies"))), small=True),
            ]
        )
    widths = [1.0 * inch, 1.45 * inch, 1.9 * inch, 1.25 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    return [
        *flow,
        Spacer(1, 4),
        _table(rows, widths),
        *_more_rows(len(grants) - len(shown), "grants", styles),
    ]


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
    flow += _controls_section(evidence, styles)
    flow += _risk_section(evidence, styles)
    flow += _trend_section(evidence, styles)
    flow += _exceptions_section(evidence, styles)
    flow += _access_section(evidence, styles)
    flow += _attention_section(evidence, styles)
    flow += _patch_section(evidence, styles)
    flow += _host_appendix(evidence, styles)

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
