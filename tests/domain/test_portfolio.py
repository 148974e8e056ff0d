"""The cross-tenant roll-up: each tenant's counts from its latest pack, and the totals."""

from __future__ import annotations

from devtools.evidence_documents import make_evidence
from patchcycle.domain.portfolio import PORTFOLIO_COLUMNS, portfolio, tenant_row


def test_not_assessed_hosts_are_a_column_and_a_total() -> None:
    v11 = make_evidence(30, schema_version="1.1", not_assessed=2)
    v10 = make_evidence(30)
    rows = [
        tenant_row("cu_alpha", "Alpha", v11),
        tenant_row("cu_beta", "Beta", v10),
        tenant_row("cu_gamma", "Gamma", None),
    ]
    assert all(tuple(r) == PORTFOLIO_COLUMNS for r in rows)
    assert rows[0]["not_assessed"] == 2
    assert rows[1]["not_assessed"] is None  # a 1.0 pack predates the state
    assert rows[2]["not_assessed"] is None and rows[2]["outcome"] == "no evidence yet"
    assert portfolio(rows, "2026-11-23T00:00:00+00:00")["totals"]["not_assessed"] == 2
