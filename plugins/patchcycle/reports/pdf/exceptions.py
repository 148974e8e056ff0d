"""Risk acceptances: the exception register's entries that applied to this cycle, their hosts and
expiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import inch
from reportlab.platypus import (
    CondPageBreak,
    Paragraph,
    Spacer,
    TableStyle,
)

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.layout import (
    TableCommand,
    colour_of,
    heading,
    more_rows,
    no_section_data,
    status_style,
    styled_table,
    text_cell,
)
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    MAX_ACCEPTANCE_ROWS,
    MAX_EXCEPTION_HOST_ROWS,
    RED,
    Styles,
    as_int,
    as_markup,
    as_records,
    as_strings,
    as_text,
    counted,
)


def _acceptance_table(
    acceptances: list[Mapping[str, Any]], styles: Styles, *, expired: bool = False
) -> list[Any]:
    shown = acceptances[:MAX_ACCEPTANCE_ROWS]
    last = "Status" if expired else "Days left"
    rows: list[list[Any]] = [
        ["Id (ticket)", "Scope", "Rating", "Approver (role)", "Approved", "Expires", last]
    ]
    extra_style: list[TableCommand] = []
    for index, item in enumerate(shown, start=1):
        scope_detail = item.get("compensating_control")
        days_left = item.get("days_left")
        if expired:
            ago = -as_int(days_left)
            last_cell: Any = text_cell(
                "expired — no longer counts",
                f"{ago:,} days ago" if ago > 0 else None,
                bold=True,
                colour=RED,
            )
        else:
            last_cell = f"{as_int(days_left):,}" if days_left is not None else "-"
        rows.append(
            [
                text_cell(item.get("id"), item.get("ticket")),
                text_cell(
                    item.get("scope"),
                    f"Compensating control: {as_text(scope_detail)}" if scope_detail else None,
                ),
                as_text(item.get("risk_rating"), "-"),
                text_cell(item.get("approver"), item.get("approver_role")),
                as_text(item.get("approved_on"), "-"),
                as_text(item.get("expires_on"), "-"),
                last_cell,
            ]
        )
        if expired:
            extra_style += status_style(5, index, colour_of(RED))
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
    table = styled_table(rows, widths)
    if not expired:
        table.setStyle(TableStyle([("ALIGN", (6, 0), (6, -1), "RIGHT")]))
    if extra_style:
        table.setStyle(TableStyle(extra_style))
    return [table, *more_rows(len(acceptances) - len(shown), "acceptances", styles)]


def _host_rows_table(
    records: list[Mapping[str, Any]],
    header: list[str],
    cells: Any,
    widths: list[float],
    styles: Styles,
    what: str,
) -> list[Any]:
    shown = records[:MAX_EXCEPTION_HOST_ROWS]
    rows: list[list[Any]] = [header, *(cells(r) for r in shown)]
    widths = [*widths, CONTENT_WIDTH - sum(widths)]
    return [styled_table(rows, widths), *more_rows(len(records) - len(shown), what, styles)]


def exceptions_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Risk acceptances section: the register's counts, then the active acceptances, hosts excepted this
    cycle, expired acceptances and lapsed hosts, those expiring soon, unused, not yet valid, and partly
    covered hosts."""
    flow = heading("Risk acceptances (exceptions)", styles)
    report = evidence.get("exceptions")
    if report is None or not isinstance(report, Mapping):
        return [*flow, no_section_data("risk acceptance", "exceptions", styles)]
    active = as_records(report.get("active"))
    expired = as_records(report.get("expired"))
    not_yet = as_records(report.get("not_yet_valid"))
    applied = as_records(report.get("applied"))
    soon = as_records(report.get("expiring_soon"))
    unused = as_strings(report.get("unused"))
    partial = as_records(report.get("partial"))
    lapsed = as_records(report.get("lapsed"))
    flow.append(
        Paragraph(
            f"Register of tenant {as_markup(report.get('tenant_id'), 'n/a')} "
            f"as of {as_markup(report.get('as_of'), 'n/a')}: "
            f"{counted(len(active), 'active acceptance')}, {len(expired):,} expired, "
            f"{len(not_yet):,} not yet valid; {counted(len(applied), 'host')} excepted this cycle. "
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
                text_cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                as_text(r.get("exception_id"), "-"),
                as_text(r.get("expires_on"), "-"),
                text_cell(as_text(r.get("previous_state"), "-").replace("_", " "), r.get("previous_reason")),
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
                f'<font color="{RED}"><b>These acceptances have expired and no longer count</b></font>: '
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
                text_cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                text_cell(f"{as_text(r.get('exception_id'), '-')} (expired)", colour=RED),
            ],
            [3.6 * inch],
            styles,
            "hosts with a lapsed acceptance",
        )

    flow += sub(f"Expiring soon ({len(soon):,})")
    if soon:
        rows: list[list[Any]] = [["Id", "Expires", "Days left"]]
        rows += [
            [as_text(s.get("id"), "-"), as_text(s.get("expires_on"), "-"), f"{as_int(s.get('days_left')):,}"]
            for s in soon[:MAX_ACCEPTANCE_ROWS]
        ]
        table = styled_table(rows, [1.6 * inch, 1.0 * inch, 0.8 * inch], numeric_from=2)
        table.hAlign = "LEFT"
        flow += [table, *more_rows(len(soon) - MAX_ACCEPTANCE_ROWS, "acceptances", styles)]
    else:
        flow.append(Paragraph("None.", styles.note))

    flow += sub(f"Unused acceptances ({len(unused):,})")
    flow.append(
        Paragraph(
            "Active but excepted no host this cycle (candidates to revoke or correct): "
            + as_markup(", ".join(unused[:MAX_ACCEPTANCE_ROWS]) or "none")
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
        ids = ", ".join(as_text(a.get("id"), "?") for a in not_yet[:MAX_ACCEPTANCE_ROWS])
        flow.append(
            Paragraph(
                f"Not yet valid (approved, but not in force on this date): {as_markup(ids)}.", styles.body
            )
        )
    if partial:
        flow += sub(f"Partly covered hosts ({len(partial):,})")
        flow += _host_rows_table(
            partial,
            ["Host", "Exception", "Patches the acceptance does not cover"],
            lambda r: [
                text_cell(r.get("name") or r.get("host_id"), r.get("host_id") if r.get("name") else None),
                as_text(r.get("exception_id"), "-"),
                text_cell(", ".join(as_strings(r.get("uncovered_patches"))[:12]), small=True),
            ],
            [2.6 * inch, 1.1 * inch],
            styles,
            "partly covered hosts",
        )
    return flow
