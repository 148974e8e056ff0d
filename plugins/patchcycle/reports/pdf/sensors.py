"""The kernel-held hand-off (the seed paper's 6.2: pin the kernel, upgrade the sensor): the Falcon sensor
upgrades this cycle handed to the tenant's roll-out, and whether those the previous cycle handed off are
resolved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportlab.lib.units import inch
from reportlab.platypus import Paragraph, Spacer

from patchcycle.reports.evidence_document import CycleEvidence
from patchcycle.reports.pdf.layout import heading, more_rows, styled_table, text_cell
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    MAX_ATTENTION_ROWS,
    Styles,
    as_markup,
    as_records,
    as_text,
    counted,
)


def sensor_upgrades_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Nothing when the cycle neither held a kernel for its sensor nor follows up an earlier hand-off;
    otherwise a table of the upgrades handed off and one of the earlier ones followed up."""
    section = evidence.get("sensor_upgrades")
    if not isinstance(section, Mapping):
        return []
    handed = as_records(section.get("handed_off"))
    followed = as_records(section.get("followed_up"))
    if not handed and not followed:
        return []
    flow = heading("Falcon sensor upgrades for held kernels", styles)
    rollout = as_text(section.get("rollout_dag_id"))
    taker = (
        f"the tenant's roll-out ({as_markup(rollout)})"
        if rollout
        else "no roll-out: the tenant declares no falcon.rollout, so they are upgraded by hand"
    )
    flow.append(
        Paragraph(
            f"{counted(len(handed), 'host')} kept its kernel because its sensor does not support the "
            f"planned one; each sensor upgrade is handed to {taker}, due before the next cycle.",
            styles.body,
        )
    )
    if handed:
        rows: list[list[Any]] = [["Host", "Sensor", "Planned kernel", "Upgrade to", "Due before"]]
        for item in handed[:MAX_ATTENTION_ROWS]:
            rows.append(
                [
                    text_cell(item.get("name"), item.get("host_id")),
                    text_cell(item.get("sensor_version")),
                    text_cell(item.get("kernel")),
                    text_cell(item.get("upgrade_to") or "none yet", item.get("reason"), small=True),
                    text_cell(item.get("due_before")),
                ]
            )
        flow += [
            Spacer(1, 4),
            styled_table(rows, _widths()),
            *more_rows(len(handed) - MAX_ATTENTION_ROWS, "hosts", styles),
        ]
    if followed:
        resolved = sum(1 for item in followed if item.get("status") == "resolved")
        flow.append(
            Paragraph(
                f"The previous cycle ({as_markup(section.get('previous_cycle_date'), 'n/a')}) handed off "
                f"{counted(len(followed), 'upgrade')}: {resolved} resolved, {len(followed) - resolved} open.",
                styles.body,
            )
        )
        rows = [["Host", "Sensor now", "Kernel", "Status", "Why"]]
        for item in followed[:MAX_ATTENTION_ROWS]:
            rows.append(
                [
                    text_cell(item.get("name"), item.get("host_id")),
                    text_cell(item.get("sensor_version")),
                    text_cell(item.get("kernel")),
                    text_cell(item.get("status")),
                    text_cell(item.get("reason"), small=True),
                ]
            )
        flow += [
            Spacer(1, 4),
            styled_table(rows, _widths()),
            *more_rows(len(followed) - MAX_ATTENTION_ROWS, "hosts", styles),
        ]
    return flow


def _widths() -> list[float]:
    widths = [1.5 * inch, 0.9 * inch, 1.6 * inch, 1.2 * inch]
    return [*widths, CONTENT_WIDTH - sum(widths)]
