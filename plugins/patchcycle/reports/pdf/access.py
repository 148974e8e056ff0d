"""The access review (SOC 2 CC6.1): who may approve, run and read a tenant's cycles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportlab.lib.units import inch
from reportlab.platypus import (
    Paragraph,
    Spacer,
)

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.layout import heading, more_rows, no_section_data, styled_table, text_cell
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    MAX_ACCESS_ROWS,
    Styles,
    as_int,
    as_markup,
    as_records,
    as_strings,
    as_text,
    counted,
)


def access_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Access review section: how many people could run this cycle's automation through how many grants
    and permission sets, then one row per grant (up to :data:`MAX_ACCESS_ROWS`)."""
    flow = heading("Access review (SOC 2 CC6.1)", styles)
    access = evidence.get("access")
    if access is None or not isinstance(access, Mapping):
        return [*flow, no_section_data("access review", "access", styles)]
    grants = as_records(access.get("grants"))
    permission_sets = as_strings(access.get("permission_sets"))
    principals = access.get("principals")
    people = (
        as_int(principals) if principals is not None else len({as_text(g.get("user_name")) for g in grants})
    )
    flow.append(
        Paragraph(
            f"Reviewed at {as_markup(access.get('reviewed_at'), 'n/a')}: "
            f"{counted(people, 'person', 'people')} "
            f"could run this cycle's automation through {counted(len(grants), 'grant')} of "
            f"{counted(len(permission_sets), 'permission set')}"
            + (f" ({as_markup(', '.join(permission_sets))})" if permission_sets else "")
            + ".",
            styles.body,
        )
    )
    if not grants:
        return [*flow, Paragraph("No access grants are recorded.", styles.note)]
    shown = grants[:MAX_ACCESS_ROWS]
    rows: list[list[Any]] = [["Account", "Permission set (session)", "Person", "Via", "Policies"]]
    for grant in shown:
        details = [as_text(grant.get("user_name")), as_text(grant.get("email"))]
        detail = " · ".join(d for d in details if d)
        rows.append(
            [
                text_cell(grant.get("account")),
                text_cell(grant.get("permission_set"), grant.get("session_duration")),
                text_cell(grant.get("display_name") or grant.get("user_name"), detail),
                text_cell(grant.get("via")),
                text_cell(", ".join(as_strings(grant.get("managed_policies"))), small=True),
            ]
        )
    widths = [1.0 * inch, 1.45 * inch, 1.9 * inch, 1.25 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    return [
        *flow,
        Spacer(1, 4),
        styled_table(rows, widths),
        *more_rows(len(grants) - len(shown), "grants", styles),
    ]
