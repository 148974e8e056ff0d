"""The cycle report's entry point: the evidence document in, the PDF out, section by section in the
order the reader meets them (:func:`_cycle_report` is the report's table of contents)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import partial
from typing import Any

from reportlab.lib.units import inch
from reportlab.platypus import (
    SimpleDocTemplate,
    Spacer,
)

from patchcycle.reports.evidence_document import CycleEvidence, evidence_schema_error, read_evidence
from patchcycle.reports.pdf.access import access_section
from patchcycle.reports.pdf.charts import compliance_chart, host_states_chart
from patchcycle.reports.pdf.controls import controls_section
from patchcycle.reports.pdf.exceptions import exceptions_section
from patchcycle.reports.pdf.hosts import attention_section, host_appendix
from patchcycle.reports.pdf.layout import FooterCanvas
from patchcycle.reports.pdf.overview import stage_section, summary_section, title_block
from patchcycle.reports.pdf.patches import patch_section
from patchcycle.reports.pdf.risk import risk_section, trend_section
from patchcycle.reports.pdf.sensors import sensor_upgrades_section
from patchcycle.reports.pdf.style import MARGIN, PAGE_SIZE, Styles, as_text


def render_cycle_report(evidence: Mapping[str, Any], *, generated_at: str | None = None) -> bytes:
    """Render the cycle's evidence document as the PDF report; return the PDF bytes.

    ``generated_at`` is printed as the report's generation time; it defaults to the cycle's
    ``finished_at`` (then ``started_at``) so that identical input gives identical bytes
    (the PDF is built in reportlab's invariant mode).

    The document is read with :func:`~patchcycle.reports.evidence_document.read_evidence`. One that
    departs from the schema of its ``schema_version`` is logged and still rendered, its odd values as
    "n/a" or 0 (an old pack must still render); one that lacks what the report cannot do without (a
    cycle, a tenant, the hosts) raises the
    :class:`~patchcycle.reports.evidence_document.EvidenceSchemaError` naming where.
    """
    document = read_evidence(evidence, strict=False)
    try:
        return _cycle_report(document, generated_at)
    except (KeyError, TypeError, AttributeError) as error:
        problem = evidence_schema_error(evidence)
        if problem is None:
            raise
        raise problem from error


def _cycle_report(evidence: CycleEvidence, generated_at: str | None) -> bytes:
    tenant, cycle = evidence["tenant"], evidence["cycle"]
    cycle_date = cycle["cycle_date"]
    if generated_at is None:
        generated_at = cycle.get("finished_at") or cycle.get("started_at") or "n/a"
    styles = Styles()

    flow: list[Any] = []
    flow += title_block(evidence, styles, generated_at)
    flow += summary_section(evidence, styles)
    flow += [Spacer(1, 8), compliance_chart(evidence), Spacer(1, 8), host_states_chart(evidence)]
    flow += stage_section(evidence, styles)
    flow += controls_section(evidence, styles)
    flow += risk_section(evidence, styles)
    flow += trend_section(evidence, styles)
    flow += exceptions_section(evidence, styles)
    flow += access_section(evidence, styles)
    flow += attention_section(evidence, styles)
    flow += sensor_upgrades_section(evidence, styles)
    flow += patch_section(evidence, styles)
    flow += host_appendix(evidence, styles)

    footer = f"{tenant['id']}  |  cycle {cycle_date}  |  plan {cycle['plan_hash'][:12]}"
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=PAGE_SIZE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=0.8 * inch,
        title=f"Patch cycle report - {as_text(tenant['display_name'])} - {cycle_date}",
        author=as_text(cycle["generated_by"]),
        subject=f"Patch cycle {cycle_date} for tenant {tenant['id']}",
        creator="patchcycle",
        invariant=1,
    )
    doc.build(flow, canvasmaker=partial(FooterCanvas, footer_text=footer))
    return buffer.getvalue()
