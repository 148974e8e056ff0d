"""The drift report for people: the CSV summary in the evidence, and the SREs' daily mail. Pure.

The CSV shows declared against live (values as the engines give them: sensitive ones already hidden,
documents decoded), who changed it and when, the classification and both ways out. The mail never shows
a value, declared or live: it names the resource, the attribute, who and when, and points to the
evidence, so no policy, user data or setting travels by mail.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from patchcycle.domain.drift.launch import NOTICE, GroupFinding, LaunchFinding
from patchcycle.domain.drift.model import Drift, DriftReport, TrendPoint

CSV_COLUMNS = (
    "scope",
    "address",
    "type",
    "attribute",
    "classification",
    "what",
    "declared",
    "live",
    "sensitive",
    "changed_by",
    "principal_arn",
    "event_name",
    "changed_at",
    "ratify",
    "remediate",
)
MAX_CELL = 2000
"""Longest value written in a CSV cell (a whole policy or script stays readable in evidence.json)."""
MAX_MAILED = 50
"""Drifts listed in the mail at most; the evidence lists every one."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _option(drift: Drift, action: str) -> str:
    return next((o["how"] for o in drift.options() if o["action"] == action), "")


def _row(drift: Drift, scope: str) -> dict[str, str]:
    who = drift.changed_by
    return {
        "scope": scope,
        "address": drift.address,
        "type": drift.type,
        "attribute": drift.path or "(whole resource)",
        "classification": drift.classification,
        "what": drift.description,
        "declared": _cell(drift.declared),
        "live": _cell(drift.live),
        "sensitive": "yes" if drift.sensitive else "",
        "changed_by": (who.username or "") if who else "",
        "principal_arn": (who.principal_arn or who.session_issuer_arn or "") if who else "",
        "event_name": who.event_name if who else "",
        "changed_at": who.event_time.isoformat() if who else "",
        "ratify": _option(drift, "ratify"),
        "remediate": _option(drift, "remediate"),
    }


def drift_rows(report: DriftReport, scope_of: dict[str, str]) -> list[dict[str, str]]:
    """One row per difference (drift first, then cycle-owned), then each unchecked resource (with what
    Terraform showed for it, if anything, classified ``unchecked``); ``scope_of`` maps an address to its
    scope."""
    rows = [_row(d, d.scope or scope_of.get(d.address, "")) for d in (*report.drifts, *report.owned_by_cycle)]
    for unchecked in report.unchecked:
        scope = unchecked.scope or scope_of.get(unchecked.address, "")
        rows += [_row(d, scope) for d in unchecked.differences]
        if not unchecked.differences:
            rows.append(
                {
                    **dict.fromkeys(CSV_COLUMNS, ""),
                    "scope": scope,
                    "address": unchecked.address,
                    "type": unchecked.type,
                    "attribute": "(not compared)",
                    "classification": "unchecked",
                    "what": unchecked.reason,
                }
            )
    return rows


def summary_csv(rows: Sequence[dict[str, str]]) -> bytes:
    """The rows as CSV (UTF-8, a header line, ``\\r\\n`` line ends as the csv module writes them)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _who(drift: Drift) -> str:
    who = drift.changed_by
    if who is None:
        return "unknown (CloudTrail names no write on it in the last 90 days)"
    name = who.username or who.principal_arn or who.session_issuer_arn or "unknown principal"
    return f"{name} ({who.event_name}, {who.event_time:%Y-%m-%d %H:%M} UTC)"


def drift_email(
    *,
    tenant_name: str,
    report: DriftReport,
    findings: Sequence[LaunchFinding],
    trend: Iterable[TrendPoint],
    pack_url: str,
    manifest_sha256: str,
    groups: Sequence[GroupFinding] = (),
) -> tuple[str, str]:
    """Subject and HTML body of the SREs' daily drift mail: launch templates that would start unmanaged
    instances first, then every open drift (resource, attribute, who, when; never a value), what could
    not be checked, and the trend. The tenant's Auto Scaling groups that would start such instances (or
    whose launch source could not be checked) follow the launch templates."""
    day = report.day.isoformat()
    flags = []
    if findings:
        flags.append(f"{len(findings)} launch template version(s) without the SSM bootstrap")
    if groups:
        flags.append(f"{len(groups)} Auto Scaling group(s) without the SSM bootstrap or not checked")
    if not report.complete:
        flags.append("INCOMPLETE")
    subject = (
        f"[Patchcycle] {tenant_name}: drift report {day}: {report.open_drift} open drift(s) on "
        f"{len(report.drifted_objects)} resource(s)" + (f" ({'; '.join(flags)})" if flags else "")
    )
    esc = html.escape
    parts = [f"<p>The daily drift report of {esc(tenant_name)} for {esc(day)} ({esc(report.engine)}).</p>"]
    if findings:
        items = "".join(f"<li>{esc(f.sentence)}</li>" for f in findings)
        parts.append(
            f"<p><b>Launch templates that would start instances without the SSM bootstrap or "
            f"instance profile ({esc(NOTICE)}):</b></p><ul>{items}</ul>"
        )
    if groups:
        items = "".join(f"<li>{esc(g.sentence)}</li>" for g in groups)
        parts.append(
            f"<p><b>Auto Scaling groups that would start instances without the SSM bootstrap or instance "
            f"profile, or that could not be checked ({esc(NOTICE)}):</b></p><ul>{items}</ul>"
        )
    if report.drifts:
        rows = "".join(
            f"<li><b>{esc(d.address)}</b> in {esc(d.scope or '-')}, {esc(d.path or '(whole resource)')}: "
            f"{esc(d.description)}; "
            f"changed by {esc(_who(d))}</li>"
            for d in report.drifts[:MAX_MAILED]
        )
        more = len(report.drifts) - MAX_MAILED
        tail = f"<p>... and {more} more in the evidence.</p>" if more > 0 else ""
        parts.append(
            "<p>Open drift (ratify: write the live value into Terraform; remediate: terraform apply to "
            f"revert):</p><ul>{rows}</ul>{tail}"
        )
    else:
        parts.append("<p>No open drift on the resources that were checked.</p>")
    if report.errors:
        errors = "".join(f"<li>{esc(e.scope)}: {esc(e.message)}</li>" for e in report.errors)
        parts.append(f"<p><b>Not checked (the scope could not be read):</b></p><ul>{errors}</ul>")
    if report.unchecked:
        parts.append(
            f"<p>{len(report.unchecked)} managed resource(s) are of types the report cannot check "
            "(listed in the evidence, never counted as clean).</p>"
        )
    points = ", ".join(f"{p.day:%m-%d}: {p.open_drift}" for p in trend)
    parts.append(f"<p>Open drift over the last days: {esc(points)}.</p>")
    parts.append(
        f"<p>Evidence: <code>{esc(pack_url)}</code> (manifest SHA-256 <code>{esc(manifest_sha256)}</code>); "
        "declared and live values are there, not in this mail.</p>"
    )
    return subject, "".join(parts)
