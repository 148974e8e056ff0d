"""The portfolio shows each tenant's nearest SAML certificate expiry, from its latest SAML watch."""

from __future__ import annotations

import io

from pypdf import PdfReader

from devtools.evidence_documents import make_evidence
from patchcycle.domain.portfolio import PORTFOLIO_COLUMNS, portfolio, tenant_row
from patchcycle.reports.portfolio_pdf import render_portfolio_report

WATCH = {
    "observed_at": "2026-12-01T06:30:05+00:00",
    "nearest_expiry": {
        "sha256": "ab" * 32,
        "subject": "CN=alpha",
        "not_after": "2026-12-21T06:30:00+00:00",
        "days_left": 20,
    },
}


def test_each_tenant_shows_its_nearest_expiry_and_the_portfolio_the_soonest():
    rows = [
        tenant_row("cu_alpha", "Alpha", make_evidence(30), WATCH),
        tenant_row(
            "cu_beta",
            "Beta",
            None,
            {"nearest_expiry": {"not_after": "2027-05-01T00:00:00+00:00", "days_left": 148}},
        ),
        tenant_row("cu_gamma", "Gamma", make_evidence(30)),  # never watched yet
    ]
    assert all(tuple(r) == PORTFOLIO_COLUMNS for r in rows)
    assert [(r["saml_nearest_expiry"], r["saml_days_left"]) for r in rows] == [
        ("2026-12-21", 20),
        ("2027-05-01", 148),
        (None, None),
    ]
    view = portfolio(rows, "2026-12-01T07:00:00+00:00")
    assert view["totals"]["saml_soonest_days_left"] == 20
    pages = PdfReader(io.BytesIO(render_portfolio_report(view))).pages
    text = " ".join(" ".join(page.extract_text() for page in pages).split())  # the cell wraps
    assert "SAML: 2026-12-21 (20 d)" in text and "Soonest SAML certificate expiry: 20 days" in text
