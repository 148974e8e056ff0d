"""The report's opening: the title block, the summary table, and the stages with their gates."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.units import inch
from reportlab.platypus import (
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.layout import styled_table
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    FRAMEWORK_NAMES,
    GRID_COLOUR,
    OUTCOME_COLOURS,
    STAGE_STATUS_COLOURS,
    ZEBRA_COLOUR,
    Styles,
    as_int,
    as_markup,
    as_text,
    counted,
)
from patchcycle.reports.tables import (
    summary_rows,
)


def title_block(evidence: CycleEvidence, styles: Styles, generated_at: str) -> list[Any]:
    """The title block: tenant, outcome (and DRY RUN), why a run was refused or stopped early, and a table of
    the cycle's facts (dates, run, overrides, plan hash, frameworks, generation)."""
    tenant, cycle = evidence["tenant"], evidence["cycle"]
    outcome = cycle["outcome"]
    colour = OUTCOME_COLOURS[outcome]
    frameworks = ", ".join(FRAMEWORK_NAMES[f] for f in tenant["frameworks"]) or "none"
    dry_run = cycle["dry_run"]

    flow: list[Any] = [
        Paragraph("Patch cycle report", styles.title),
        Paragraph(
            f"<b>{as_markup(tenant['display_name'])}</b> ({as_markup(tenant['id'])})",
            styles.body,
        ),
        Paragraph(
            f'Outcome: <font color="{colour}"><b>{as_markup(outcome.upper())}</b></font>'
            + (' <font color="#1565c0"><b>DRY RUN</b></font>' if dry_run else ""),
            styles.outcome,
        ),
        Spacer(1, 4),
    ]
    refused = cycle.get("refused_reasons", [])  # 1.2
    if refused:
        flow.append(
            Paragraph(
                "<b>The run was refused before it read or changed any host.</b> Why:",
                styles.body,
            )
        )
        flow += [Paragraph(f"&bull; {as_markup(reason)}", styles.body) for reason in refused]
        flow.append(Spacer(1, 4))
    halted = cycle.get("halted_reason")  # 1.2
    if halted:
        flow.append(Paragraph(f"<b>The run stopped early:</b> {as_markup(halted)}.", styles.body))
        flow.append(Spacer(1, 4))
    soak_hours = cycle.get("soak_hours_override")
    meta = [
        ("Cycle date", cycle["cycle_date"]),
        ("Run id", cycle["run_id"]),
        ("Triggered by", cycle.get("triggered_by") or f"Airflow ({as_text(cycle.get('run_type'), 'run')})"),
        ("Started", cycle.get("started_at")),
        ("Finished", cycle.get("finished_at")),
        ("Dry run", "yes" if dry_run else "no"),
        (
            "Emergency change",
            f"prod patched outside its change window: {cycle['window_override_reason']}"
            if cycle.get("window_override_reason")
            else "no (prod waits for its change window)",
        ),
        (
            "Soak override",
            f"{soak_hours} h: {as_text(cycle.get('soak_override_reason'), 'no reason recorded')}"
            if soak_hours is not None
            else "no (each stage's configured soak)",
        ),
        ("Plan hash (sha256)", cycle["plan_hash"]),
        ("Frameworks", frameworks),
        (
            "Generated",
            f"{as_text(generated_at, 'n/a')} by {as_text(cycle['generated_by'])}",
        ),
    ]
    rows = [
        [Paragraph(f"<b>{escape(label)}</b>", styles.cell), Paragraph(as_markup(value, "n/a"), styles.cell)]
        for label, value in meta
    ]
    table = Table(rows, colWidths=[1.4 * inch, CONTENT_WIDTH - 1.4 * inch])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, GRID_COLOUR),
                ("BACKGROUND", (0, 0), (0, -1), ZEBRA_COLOUR),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    flow.append(table)
    return flow


def summary_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Summary section: the summary table, a note on not-assessed hosts when there are any, and the number of
    audit events."""
    rows: list[list[Any]] = [["Measure", "Value"]]
    rows += [[label, value] for label, value in summary_rows(dict(evidence))]
    table = styled_table(rows, [2.4 * inch, 1.6 * inch], numeric_from=1)
    table.hAlign = "LEFT"
    events = len(evidence["events"])
    flow: list[Any] = [Paragraph("Summary", styles.h2), table, Spacer(1, 4)]
    not_assessed = evidence["summary"].get("not_assessed", 0)  # 1.1
    if not_assessed:
        flow.append(
            Paragraph(
                f"<b>Not assessed: {counted(not_assessed, 'host')}</b>. The cloud's own assessment of what "
                "such a host is missing could not be read, so nothing shows it compliant: it counts as not "
                "compliant, before and after. Each host's reason is under Hosts needing attention.",
                styles.body,
            )
        )
    flow.append(
        Paragraph(f"{events:,} audit events are recorded in the evidence JSON of this pack.", styles.note)
    )
    return flow


def stage_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Stages section: one row per stage with its status (coloured), host counts, backups and reason."""
    stages = evidence["stages"]
    flow: list[Any] = [Paragraph("Stages", styles.h2)]
    if not stages:
        return [*flow, Paragraph("No stages were recorded for this cycle.", styles.body)]
    rows: list[list[Any]] = [
        ["Environment", "Status", "Targeted", "Succeeded", "Failed", "Not assessed", "Backups", "Reason"]
    ]
    status_styles = []
    for index, stage in enumerate(stages, start=1):
        status = stage["status"]
        rows.append(
            [
                stage["environment"],
                status,
                # The schema requires the counts and the reason but does not type them.
                f"{as_int(stage['hosts_targeted']):,}",
                f"{as_int(stage['hosts_succeeded']):,}",
                f"{as_int(stage['hosts_failed']):,}",
                f"{stage.get('hosts_not_assessed', 0):,}",  # 1.1
                f"{as_int(stage['backups']):,}",
                Paragraph(as_markup(stage["reason"]), styles.cell),
            ]
        )
        if status in STAGE_STATUS_COLOURS:
            status_styles.append(("TEXTCOLOR", (1, index), (1, index), STAGE_STATUS_COLOURS[status]))
    widths = [0.9 * inch, 0.75 * inch, 0.65 * inch, 0.7 * inch, 0.55 * inch, 0.8 * inch, 0.6 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    table = styled_table(rows, widths)
    table.setStyle(TableStyle([("ALIGN", (2, 0), (6, -1), "RIGHT"), *status_styles]))
    return [*flow, table]
