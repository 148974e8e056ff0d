"""Control coverage: each framework's controls with their status and the evidence behind them,
and the evidence retention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import inch
from reportlab.platypus import (
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.layout import (
    TableCommand,
    heading,
    more_rows,
    no_section_data,
    status_style,
    styled_table,
    text_cell,
)
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    CONTROL_STATUS_COLOURS,
    MAX_CONTROL_ROWS,
    RED,
    Styles,
    as_int,
    as_mapping,
    as_records,
    as_strings,
    as_text,
    framework_name,
)


def controls_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Control coverage section: each framework's "N of M evidenced" line, the per-control tables, then the
    evidence retention."""
    flow = heading("Control coverage", styles)
    raw = evidence.get("controls")
    retention = evidence.get("retention")
    if raw is None and evidence.get("controls_summary") is None:
        flow.append(no_section_data("control coverage", "controls", styles))
    else:
        flow += _controls_body(evidence, styles)
    flow.append(Spacer(1, 4))
    flow.append(_retention_line(retention, styles))
    return flow


def _retention_line(retention: Any, styles: Styles) -> Paragraph:
    retention = as_mapping(retention)
    days = as_int(retention.get("days"))
    if not retention or days <= 0:
        return Paragraph(
            "No evidence retention data is recorded in this evidence document (no <i>retention</i> section).",
            styles.body,
        )
    mode = as_text(retention.get("mode"), "unknown").strip() or "unknown"
    years = f" (about {days / 365:.1f} years)" if days >= 365 else ""
    locked = "locked in compliance mode" if mode.upper() == "COMPLIANCE" else f"locked in {mode} mode"
    return Paragraph(
        f"<b>Retention:</b> Evidence is {escape(locked)} for {days:,} days{years}: "
        "no one, including the operator's administrators, can delete or overwrite it before then.",
        styles.body,
    )


def _framework_order(controls: list[Mapping[str, Any]], given: Mapping[str, Any]) -> list[str]:
    """The frameworks in the order the evidence names them; references last (mapped, but not a
    framework the tenant picked)."""
    order: list[str] = []
    for framework in [as_text(c.get("framework")) for c in controls] + [as_text(f) for f in given]:
        if framework not in order:
            order.append(framework)
    if "references" in order:
        order.remove("references")
        order.append("references")
    return order


def _framework_line(
    framework: str, controls: list[Mapping[str, Any]], given: Mapping[str, Any], styles: Styles
) -> Paragraph:
    """ "<framework>: N of M evidenced, P partial, Q missing", from the summary the evidence gives or
    counted from its per-control rows."""
    counts = as_mapping(given.get(framework))
    if not counts:
        statuses = Counter(
            as_text(c.get("status")) for c in controls if as_text(c.get("framework")) == framework
        )
        counts = {**statuses, "total": sum(statuses.values())}
    evidenced, partial, missing = (as_int(counts.get(k)) for k in ("evidenced", "partial", "missing"))
    total = as_int(counts.get("total")) or evidenced + partial + missing
    colour = "#2e7d32" if total and evidenced == total else (RED if missing else "#ef6c00")
    if not total:
        colour = "#455a64"
    extra = "".join(f", {n:,} {label}" for n, label in ((partial, "partial"), (missing, "missing")) if n)
    label = "References (not a framework the tenant selected)" if framework == "references" else None
    name = label or framework_name(framework)
    return Paragraph(
        f'<b>{escape(name)}:</b> <font color="{colour}"><b>{evidenced:,} of {total:,} evidenced'
        f"</b>{escape(extra)}</font>",
        styles.body,
    )


def _control_tables(controls: list[Mapping[str, Any]], styles: Styles) -> list[Any]:
    """The per-control rows: the tenant's frameworks, then the references, within one row budget."""
    flow: list[Any] = []
    framework_rows = [c for c in controls if as_text(c.get("framework")) != "references"]
    reference_rows = [c for c in controls if as_text(c.get("framework")) == "references"]
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
        flow += more_rows(len(rows_in) - len(shown), "controls", styles)
    return flow


def _controls_body(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    controls = as_records(evidence.get("controls"))
    given = as_mapping(evidence.get("controls_summary"))
    order = _framework_order(controls, given)
    if not order:
        return [Paragraph("The evidence document maps no controls for this cycle.", styles.body)]
    flow: list[Any] = [_framework_line(framework, controls, given, styles) for framework in order]
    if not controls:
        return [*flow, Paragraph("No per-control results are recorded.", styles.note)]
    flow += _control_tables(controls, styles)
    flow.append(
        Paragraph(
            "Evidenced: every required evidence item is present; partial: some are; missing: none are. "
            "The count after an event type is how many such events this cycle recorded.",
            styles.note,
        )
    )
    return flow


def _controls_table(controls: list[Mapping[str, Any]], styles: Styles, *, with_framework: bool) -> Table:
    header = ["Control", "Title (source)", "Status", "Evidenced by", "Missing"]
    if with_framework:
        header.insert(0, "Framework")
    rows: list[list[Any]] = [header]
    extra_style: list[TableCommand] = []
    status_column = 3 if with_framework else 2
    for index, control in enumerate(controls, start=1):
        status = as_text(control.get("status"), "unknown")
        evidenced = [
            f"{as_text(e.get('event'))} ({as_int(e.get('count')):,})"
            for e in as_records(control.get("evidenced"))
        ]
        missing = as_strings(control.get("missing"))
        row: list[Any] = [
            text_cell(control.get("control_id"), default="?", bold=True),
            text_cell(control.get("title"), " ".join(as_strings(control.get("references")))),
            status,
            text_cell("; ".join(evidenced), small=True),
            text_cell("; ".join(missing), small=True, colour=RED),
        ]
        if with_framework:
            row.insert(0, framework_name(control.get("framework")))
        rows.append(row)
        if status in CONTROL_STATUS_COLOURS:
            extra_style += status_style(status_column, index, CONTROL_STATUS_COLOURS[status])
    widths = [0.95 * inch, 2.0 * inch, 0.7 * inch, 1.6 * inch]
    if with_framework:
        widths.insert(0, 0.7 * inch)
    else:
        widths[0] += 0.7 * inch
    widths.append(CONTENT_WIDTH - sum(widths))
    table = styled_table(rows, widths)
    if extra_style:
        table.setStyle(TableStyle(extra_style))
    return table
