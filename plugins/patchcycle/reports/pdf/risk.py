"""Risk and SLA (ranked open items, overdue by severity) and the compliance trend across cycles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import inch
from reportlab.platypus import (
    Paragraph,
    Spacer,
    TableStyle,
)

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.charts import overdue_chart, trend_chart, trend_points
from patchcycle.reports.pdf.layout import (
    BLACK,
    FONT_BOLD,
    Run,
    TableCommand,
    TextCell,
    colour_of,
    heading,
    more_rows,
    no_section_data,
    status_style,
    styled_table,
    text_cell,
    text_run,
)
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    MAX_RISK_ROWS,
    RED,
    SLA_STATUS_COLOURS,
    SLA_STATUS_LABELS,
    Styles,
    as_int,
    as_mapping,
    as_markup,
    as_optional_percent,
    as_ratio,
    as_records,
    as_strings,
    as_text,
    counted,
)


def risk_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Risk and SLA section: open patches by SLA status and priority, the threat feeds, the overdue chart, and
    the open patches most urgent first (up to :data:`MAX_RISK_ROWS`)."""
    flow = heading("Risk and SLA", styles, keep=3.8 * inch)
    risk = evidence.get("risk")
    if risk is None or not isinstance(risk, Mapping):
        return [*flow, no_section_data("risk and SLA", "risk", styles)]
    summary = as_mapping(risk.get("summary"))
    rows = as_records(risk.get("open"))
    total_open = as_int(summary.get("open")) if summary.get("open") is not None else len(rows)
    flow.append(
        Paragraph(
            f"As of {as_markup(risk.get('as_of'), 'n/a')}: "
            f"<b>{counted(total_open, 'open patch', 'open patches')}</b> "
            "(one per host and approved patch not yet installed), each ranked and on its SLA clock.",
            styles.body,
        )
    )
    by_status = as_mapping(summary.get("by_status"))
    known = [k for k, _ in SLA_STATUS_LABELS]
    parts = []
    for key, label in [*SLA_STATUS_LABELS, *((str(k), str(k)) for k in by_status if str(k) not in known)]:
        count = as_int(by_status.get(key))
        text = f"{count:,} {escape(label.replace('_', ' '))}"
        colour = SLA_STATUS_COLOURS.get(key)
        parts.append(f'<font color="{colour}"><b>{text}</b></font>' if colour and count else text)
    flow.append(Paragraph(f"<b>SLA status</b> (all host-patch pairs): {', '.join(parts)}.", styles.body))
    by_priority = as_mapping(summary.get("open_by_priority"))
    priorities = ", ".join(
        f"{as_markup(k)}: {as_int(v):,}" for k, v in sorted(by_priority.items(), key=lambda kv: str(kv[0]))
    )
    flow.append(Paragraph(f"<b>Open by priority:</b> {priorities or 'none'}.", styles.body))
    feeds = as_mapping(risk.get("feeds"))
    flow.append(
        Paragraph(
            f"<b>Threat feeds:</b> CISA KEV catalog {as_markup(feeds.get('kev_catalog_version'), 'n/a')}; "
            f"EPSS model {as_markup(feeds.get('epss_model_version'), 'n/a')}, "
            f"scores of {as_markup(feeds.get('epss_score_date'), 'n/a')}; "
            f"source: {as_markup(feeds.get('source'), 'n/a')}.",
            styles.body,
        )
    )
    for warning in as_strings(feeds.get("warnings")):
        flow.append(
            Paragraph(f'<font color="#c62828"><b>Stale feed:</b></font> {as_markup(warning)}', styles.body)
        )
    flow += zero_day_paragraphs(as_mapping(as_mapping(risk).get("zero_day")), styles)
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
            f'<font color="{RED}"><b>[KEV]</b></font> = a CVE of the patch is in the CISA Known Exploited '
            "Vulnerabilities catalog; EPSS = highest EPSS percentile of its CVEs; Due (rule) = the earliest "
            "deadline and the rule that set it).",
            styles.note,
        )
    )
    table_rows: list[list[Any]] = [
        ["Host", "Patch", "Severity", "Pri.", "Score", "EPSS", "Due (rule)", "Status", "Why"]
    ]
    extra_style: list[TableCommand] = []
    for index, row in enumerate(shown, start=1):
        patch: list[Run] = [text_run(row.get("patch_id"), default="?")]
        if row.get("kev"):
            patch.append((" [KEV]", FONT_BOLD, 7.5, RED))
        status = as_text(row.get("status"), "unknown")
        days = as_int(row.get("days_overdue"))
        colour = SLA_STATUS_COLOURS.get(status)
        status_lines = [[text_run(status.replace("_", " "), bold=bool(colour), colour=colour or BLACK)]]
        if status == "overdue" and days:
            status_lines.append([text_run(f"{days:,} d", bold=True, colour=colour or BLACK)])
        percentile = row.get("epss_percentile")
        table_rows.append(
            [
                text_cell(row.get("name") or row.get("host_id"), row.get("environment")),
                TextCell([patch]),
                as_text(row.get("severity"), "-"),
                as_text(row.get("priority"), "-"),
                f"{as_ratio(row.get('score')):.1f}" if row.get("score") is not None else "-",
                f"{as_ratio(percentile):.2f}" if percentile is not None else "-",
                text_cell(row.get("due"), row.get("due_source")),
                TextCell(status_lines),
                text_cell("; ".join(as_strings(row.get("reasons"))), small=True),
            ]
        )
        if as_text(row.get("priority")) == "P1":
            extra_style += status_style(3, index, colour_of(RED))
    widths = [w * inch for w in (1.55, 1.3, 0.5, 0.3, 0.4, 0.38, 0.9, 0.55)]
    widths.append(CONTENT_WIDTH - sum(widths))
    table = styled_table(table_rows, widths)
    table.setStyle(TableStyle([("ALIGN", (4, 0), (5, -1), "RIGHT"), *extra_style]))
    flow.append(table)
    flow += more_rows(len(rows) - len(shown), "open patches", styles)
    if risk.get("open_truncated") or total_open > len(rows):
        flow.append(
            Paragraph(
                f"evidence.json itself lists {len(rows):,} of the {total_open:,} open patches "
                "row by row; the counts above include all of them.",
                styles.note,
            )
        )
    return flow


def zero_day_paragraphs(zero_day: Mapping[str, Any], styles: Styles) -> list[Any]:
    """A zero-day cycle's lines: its CVEs, trigger, justification and emergency policy with the approver;
    the fixes it planned; per CVE with no fix yet, the exposed hosts and the compensating controls the
    exception register names for each (or that none is on record). Nothing for any other cycle."""
    if not zero_day:
        return []
    policy = as_mapping(zero_day.get("policy"))
    flow = [
        Paragraph(
            f"<b>Zero-day cycle</b> for {as_markup(', '.join(as_strings(zero_day.get('cve_ids'))), 'n/a')} "
            f"({as_markup(zero_day.get('trigger'), 'n/a').replace('_', ' ')}): "
            f"{as_markup(zero_day.get('justification'), 'no justification recorded')}. "
            f"Emergency policy: soak {as_markup(policy.get('emergency_soak_hours'), 'n/a')} h, change window "
            f"{as_markup(policy.get('emergency_change_window'), 'n/a').replace('_', ' ')}, approved by "
            f"{as_markup(policy.get('approver'), 'n/a')} ({as_markup(policy.get('approver_role'), 'n/a')}) "
            f"on {as_markup(policy.get('approved_on'), 'n/a')}. Fixes planned: "
            f"{as_markup(', '.join(as_strings(zero_day.get('fixes'))), 'none')}.",
            styles.body,
        )
    ]
    for item in as_records(zero_day.get("without_fix")):
        hosts = as_records(item.get("exposed_hosts"))
        lines = []
        for host in hosts:
            controls = as_records(host.get("compensating_controls"))
            said = "; ".join(
                f"{as_markup(c.get('id'))}: {as_markup(c.get('compensating_control'))} "
                f"(approved by {as_markup(c.get('approver'))}, until {as_markup(c.get('expires_on'))})"
                for c in controls
            )
            lines.append(
                f"{as_markup(host.get('name') or host.get('host_id'))}: "
                + (said or f'<font color="{RED}"><b>no compensating control on record</b></font>')
            )
        exposed = "<br/>".join(lines) if lines else "exposed hosts unknown (no cloud reports it)"
        flow.append(
            Paragraph(
                f'<font color="{RED}"><b>No fix yet for {as_markup(item.get("cve"))}</b></font> '
                f"({len(hosts):,} exposed host(s)):<br/>{exposed}",
                styles.body,
            )
        )
    return flow


def trend_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Compliance trend section: the chart once two cycles have a compliance figure, and compliance before and
    after per cycle as a table."""
    flow = heading("Compliance trend", styles, keep=3.8 * inch)
    if evidence.get("trend") is None:
        return [*flow, no_section_data("compliance trend", "trend", styles)]
    points = trend_points(evidence)
    if not points:
        return [*flow, Paragraph("No cycles are recorded in the compliance trend.", styles.body)]
    usable = sum(as_optional_percent(p.get("compliance_after")) is not None for p in points)
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
        number = as_optional_percent(value)
        return "n/a" if number is None else f"{number:.1f}%"

    rows: list[list[Any]] = [["Cycle", "Outcome", "Compliance before", "Compliance after"]]
    for index, point in enumerate(points, start=1):
        cycle = as_text(point.get("cycle_date"), "?") + (" (this cycle)" if index == len(points) else "")
        rows.append(
            [
                cycle,
                as_text(point.get("outcome"), "-"),
                pct(point.get("compliance_before")),
                pct(point.get("compliance_after")),
            ]
        )
    table = styled_table(rows, [1.6 * inch, 1.0 * inch, 1.2 * inch, 1.2 * inch], numeric_from=2)
    table.hAlign = "LEFT"
    flow.append(table)
    return flow
