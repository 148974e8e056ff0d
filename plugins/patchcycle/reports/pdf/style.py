"""Limits, page geometry, colours and paragraph styles of the cycle report, and the helpers that
read evidence values as text and numbers: the values the schemas leave untyped (see
:mod:`patchcycle.reports.evidence_document`), and those of a document that departs from its schema,
which the report still renders, are checked, never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch

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

HEADER_BACKGROUND = colors.HexColor("#263238")
GRID_COLOUR = colors.HexColor("#b0bec5")
ZEBRA_COLOUR = colors.HexColor("#f5f7f8")
BEFORE_COLOUR = colors.HexColor("#90a4ae")
AFTER_COLOUR = colors.HexColor("#1565c0")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
RED = "#c62828"
_WHITESPACE = re.compile(r"\s+")
MUTED = "#607d8b"


def as_text(value: Any, default: str = "") -> str:
    """Plain text for a cell: None -> default, control characters -> space."""
    if value is None:
        return default
    return _CONTROL_CHARS.sub(" ", str(value))


def as_markup(value: Any, default: str = "") -> str:
    """Escaped text safe to embed in Paragraph markup."""
    return escape(as_text(value, default))


def as_int(value: Any) -> int:
    """``value`` as an int (truncated); 0 when it is missing or unreadable."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def as_ratio(value: Any) -> float:
    """``value`` as a float; 0.0 when it is missing or unreadable."""
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def as_percent(value: Any) -> float:
    """A 0..1 ratio as a percentage clamped to 0..100 (the chart's fixed axis)."""
    return round(min(max(as_ratio(value), 0.0), 1.0) * 100, 1)


def as_optional_percent(value: Any) -> float | None:
    """Like :func:`as_percent`, but None (not 0) for a missing or unreadable ratio."""
    if value is None or isinstance(value, bool):
        return None
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        return None
    if ratio != ratio:  # NaN
        return None
    return round(min(max(ratio, 0.0), 1.0) * 100, 1)


def clip_plain(value: Any, limit: int = MAX_CELL_CHARS, default: str = "") -> str:
    """Cell text with whitespace collapsed, at most ``limit`` characters, saying what was cut."""
    text = _WHITESPACE.sub(" ", as_text(value, default))
    if len(text) > limit:
        text = f"{text[:limit].rstrip()}… (+{len(text) - limit:,} characters in evidence.json)"
    return text


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in ``value`` if it is a list (anything else in it is skipped), else []."""
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def as_strings(value: Any) -> list[str]:
    """The non-empty items of a list as text, else []."""
    if not isinstance(value, list | tuple):
        return []
    return [t for t in (as_text(item) for item in value) if t]


def framework_name(framework: Any) -> str:
    """The display name of a framework id (``soc2`` -> "SOC 2"); an unknown id as given, or "unknown"."""
    return FRAMEWORK_NAMES.get(as_text(framework), as_text(framework, "unknown") or "unknown")


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` (thousands separated) and the noun: ``singular`` for 1, else ``plural`` or ``singular``+s."""
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


class Styles:
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
