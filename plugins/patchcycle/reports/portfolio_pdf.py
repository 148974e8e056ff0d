"""The platform team's cross-tenant report: one table, the totals, and where each tenant stands."""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import landscape, letter
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_portfolio_report(view: dict[str, Any]) -> bytes:
    """A landscape PDF of the portfolio view (deterministic: reportlab's invariant mode)."""
    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(letter), invariant=1, title="Patchcycle portfolio")
    t = view["totals"]
    story: list[Flowable] = [
        Paragraph("Patchcycle portfolio: all tenants", styles["Title"]),
        Paragraph(escape(f"Generated {view['generated_at']}"), styles["Normal"]),
        Spacer(1, 8),
        Paragraph(
            escape(
                f"{t['tenants_reported']} of {t['tenants']} tenants reported; {t['tenants_failed']} failed. "
                f"{t['in_scope']} hosts in scope; compliance {_pct(t['compliance_before'])} -> "
                f"{_pct(t['compliance_after'])}; {t['held']} held, {t['failed']} failed, "
                f"{t.get('not_assessed') or 0} not assessed; "
                f"{t['overdue_critical']} overdue critical patch items; {t['active_exceptions']} active and "
                f"{t['expired_exceptions']} expired exceptions."
                + (
                    f" Soonest SAML certificate expiry: {t['saml_soonest_days_left']} days."
                    if t.get("saml_soonest_days_left") is not None
                    else ""
                )
            ),
            styles["Normal"],
        ),
        Spacer(1, 10),
    ]
    header: list[str | Paragraph] = [
        "Tenant",
        "Cycle",
        "Outcome",
        "Hosts",
        "Patched",
        "Failed",
        "Held",
        "Excepted",
        "Not assessed",
        "Compliance",
        "Overdue crit.",
        "Open risk",
        "Exceptions (exp.)",
    ]
    rows = [header]
    for r in view["tenants"]:
        rows.append(
            [
                Paragraph(
                    escape(f"{r['display_name']} ({r['tenant']})")
                    + (
                        "<br/>" + escape(f"SAML: {r['saml_nearest_expiry']} ({r['saml_days_left']} d)")
                        if r.get("saml_nearest_expiry")
                        else ""
                    ),
                    styles["Normal"],
                ),
                r["cycle_date"] or "-",
                (r["outcome"] or "-").upper(),
                *(
                    str(r[k]) if r[k] is not None else "-"
                    for k in ("hosts", "patched", "failed", "held", "excepted", "not_assessed")
                ),
                f"{_pct(r['compliance_before'])} -> {_pct(r['compliance_after'])}",
                str(r["overdue_critical"] if r["overdue_critical"] is not None else "-"),
                str(r["open_risk_items"] if r["open_risk_items"] is not None else "-"),
                f"{r['active_exceptions'] or 0} ({r['expired_exceptions'] or 0})",
            ]
        )
    table = Table(rows, repeatRows=1, colWidths=[120, 60, 65, 40, 45, 40, 35, 50, 55, 95, 55, 50, 70])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#263238")),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    story.append(table)
    story.extend(_sensor_section(view, styles))
    doc.build(story)
    return buffer.getvalue()


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def _sensor_section(view: dict[str, Any], styles: Any) -> list[Flowable]:
    """The Falcon sensor table: each tenant's coverage, what is wrong with the rest, its mode per environment,
    and where the figures come from; then why anything is unknown."""
    t = view["totals"]
    small = styles["Normal"].clone("sensor", fontSize=8, leading=10)
    summary = (
        f"{t['sensor_healthy']} of {t['sensor_hosts']} hosts have a healthy sensor "
        f"({_pct(t['sensor_coverage'])}) across {t['sensor_tenants']} tenants; "
        f"{_count(t['sensor_missing'])} without a sensor, {_count(t['sensor_rfm'])} in reduced-functionality "
        f"mode, {_count(t['sensor_below_policy'])} below the version policy, "
        f"{_count(t['sensor_failed_validation'])} failing validation."
        if t.get("sensor_tenants")
        else "No tenant's sensor coverage is known yet."
    )
    story: list[Flowable] = [
        Spacer(1, 14),
        Paragraph("Falcon sensor coverage and mode", styles["Heading2"]),
        Paragraph(escape(summary), styles["Normal"]),
        Spacer(1, 6),
    ]
    rows: list[list[str | Paragraph]] = [
        [
            "Tenant",
            "Source (as of)",
            "Healthy",
            "Per cloud",
            "No sensor",
            "RFM",
            "Below policy",
            "Failed valid.",
            "Mode per environment",
            "Roll-out pack",
        ]
    ]
    notes: list[Flowable] = []
    for r in view["tenants"]:
        source = f"{r['sensor_source']} ({r['sensor_as_of']})" if r.get("sensor_source") else "-"
        healthy = (
            f"{r['sensor_healthy']}/{r['sensor_hosts']} ({_pct(r['sensor_coverage'])})"
            if r.get("sensor_hosts") is not None
            else "-"
        )
        mode = r.get("falcon_mode")
        mode_text = ("<br/>".join(escape(part) for part in mode.split("; ")) if mode else "unknown") + (
            escape(f" (phase {r['falcon_phase']})") if r.get("falcon_phase") and not mode else ""
        )
        rollout = (
            f"{r['rollout_day']} {r.get('rollout_outcome') or ''}".strip() if r.get("rollout_day") else "none"
        )
        rows.append(
            [
                Paragraph(escape(str(r["tenant"])), small),
                Paragraph(escape(source), small),
                healthy,
                Paragraph(escape((r.get("sensor_coverage_by_cloud") or "-").replace("; ", ", ")), small),
                *(
                    _count(r.get(k))
                    for k in (
                        "sensor_missing",
                        "sensor_rfm",
                        "sensor_below_policy",
                        "sensor_failed_validation",
                    )
                ),
                Paragraph(mode_text, small),
                Paragraph(escape(rollout), small),
            ]
        )
        if r.get("sensor_note"):
            notes.append(Paragraph(escape(f"{r['tenant']}: {r['sensor_note']}."), small))
    table = Table(rows, repeatRows=1, colWidths=[85, 95, 75, 90, 40, 30, 45, 45, 125, 70])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#263238")),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    story.append(table)
    if notes:
        story += [Spacer(1, 6), *notes]
    return story
