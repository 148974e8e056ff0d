"""The platform team's portfolio PDF."""

from __future__ import annotations

import io
import re

import pypdf

from devtools.evidence_documents import make_evidence
from patchcycle.domain.portfolio import portfolio, tenant_row
from patchcycle.reports.portfolio_pdf import render_portfolio_report


def test_the_portfolio_reports_not_assessed_hosts() -> None:
    rows = [
        tenant_row("cu_alpha", "Alpha", make_evidence(30, schema_version="1.1", not_assessed=3)),
        tenant_row("cu_beta", "Beta", make_evidence(30)),
    ]
    data = render_portfolio_report(portfolio(rows, "2026-11-23T00:00:00+00:00"))
    text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages))
    assert "3 not assessed" in text
    assert "Not assessed" in text
