"""The cross-tenant roll-up: one row per tenant from its latest evidence pack, and the totals; each row
also carries the tenant's Falcon sensor coverage and mode (:mod:`patchcycle.domain.sensor_coverage`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchcycle.domain.sensor_coverage import SENSOR_COLUMNS, empty_sensor_columns, sensor_totals

PORTFOLIO_COLUMNS = (
    "tenant",
    "display_name",
    "cycle_date",
    "outcome",
    "hosts",
    "in_scope",
    "patched",
    "failed",
    "held",
    "excepted",
    "not_assessed",
    "compliance_before",
    "compliance_after",
    "overdue_critical",
    "open_risk_items",
    "active_exceptions",
    "expired_exceptions",
    "saml_nearest_expiry",
    "saml_days_left",
    *SENSOR_COLUMNS,
)


def saml_columns(watch: Mapping[str, Any] | None) -> dict[str, Any]:
    """The tenant's nearest SAML certificate expiry from its latest SAML watch record: the date, and the
    days left when the watch read it (None before the first watch, or with no certificate)."""
    nearest = (watch or {}).get("nearest_expiry") or {}
    if not nearest:
        return {"saml_nearest_expiry": None, "saml_days_left": None}
    return {"saml_nearest_expiry": str(nearest["not_after"])[:10], "saml_days_left": nearest["days_left"]}


def tenant_row(
    tenant_id: str,
    display_name: str,
    evidence: Mapping[str, Any] | None,
    saml_watch: Mapping[str, Any] | None = None,
    sensor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A tenant's line in the portfolio; a tenant with no pack yet is listed, not skipped. ``sensor`` is its
    sensor columns (:func:`patchcycle.domain.sensor_coverage.sensor_columns`); None: not assessed."""
    sensor_part = dict(sensor) if sensor is not None else empty_sensor_columns()
    if evidence is None:
        return (
            {c: None for c in PORTFOLIO_COLUMNS}
            | {
                "tenant": tenant_id,
                "display_name": display_name,
                "outcome": "no evidence yet",
            }
            | saml_columns(saml_watch)
            | sensor_part
        )
    summary = evidence.get("summary", {})
    risk = (evidence.get("risk") or {}).get("summary", {})
    exceptions = evidence.get("exceptions") or {}
    extra = saml_columns(saml_watch) | sensor_part
    return {
        "tenant": tenant_id,
        "display_name": display_name,
        "cycle_date": evidence["cycle"]["cycle_date"],
        "outcome": evidence["cycle"]["outcome"],
        "hosts": summary.get("hosts_total"),
        "in_scope": summary.get("in_scope"),
        "patched": summary.get("patched"),
        "failed": summary.get("failed"),
        "held": summary.get("held"),
        "excepted": summary.get("excepted"),
        # Evidence 1.1; None for a pack written before the state existed (1.0 had no such host).
        "not_assessed": summary.get("not_assessed"),
        "compliance_before": summary.get("compliance_before"),
        "compliance_after": summary.get("compliance_after"),
        "overdue_critical": (risk.get("overdue_by_severity") or {}).get("Critical", 0),
        "open_risk_items": risk.get("open", 0),
        "active_exceptions": len(exceptions.get("active", [])),
        "expired_exceptions": len(exceptions.get("expired", [])),
    } | extra


def portfolio(rows: list[dict[str, Any]], generated_at: str) -> dict[str, Any]:
    """Totals across tenants; compliance is weighted by each tenant's in-scope hosts."""
    reported = [r for r in rows if r["cycle_date"] is not None]
    in_scope: int = sum(int(r["in_scope"] or 0) for r in reported)

    def weighted(key: str) -> float | None:
        if not in_scope:
            return None
        total = sum(float(r[key] or 0) * int(r["in_scope"] or 0) for r in reported)
        return round(total / in_scope, 4)

    totals = {
        "tenants": len(rows),
        "tenants_reported": len(reported),
        "tenants_failed": sum(1 for r in reported if r["outcome"] == "failed"),
        "hosts": sum(r["hosts"] or 0 for r in reported),
        "in_scope": in_scope,
        "held": sum(r["held"] or 0 for r in reported),
        "failed": sum(r["failed"] or 0 for r in reported),
        "not_assessed": sum(r["not_assessed"] or 0 for r in reported),
        "overdue_critical": sum(r["overdue_critical"] or 0 for r in reported),
        "active_exceptions": sum(r["active_exceptions"] or 0 for r in reported),
        "expired_exceptions": sum(r["expired_exceptions"] or 0 for r in reported),
        "compliance_before": weighted("compliance_before"),
        "compliance_after": weighted("compliance_after"),
        "saml_soonest_days_left": min(
            (r["saml_days_left"] for r in rows if r.get("saml_days_left") is not None), default=None
        ),
        **sensor_totals(rows),
    }
    return {"schema_version": "1.0", "generated_at": generated_at, "totals": totals, "tenants": rows}
