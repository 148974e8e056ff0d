"""Hosts: those needing attention, those installed at another version than planned, and the
appendix listing every host.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from reportlab.lib.units import inch
from reportlab.platypus import (
    CondPageBreak,
    PageBreak,
    Paragraph,
    Spacer,
)

from patchcycle.reports.evidence_document import CycleEvidence, HostRecord, InstalledVersion
from patchcycle.reports.pdf.layout import more_rows, styled_table, text_cell
from patchcycle.reports.pdf.style import (
    ATTENTION_STATES,
    CONTENT_WIDTH,
    MAX_ATTENTION_ROWS,
    STATE_HEX,
    Styles,
    as_text,
    clip_plain,
    counted,
)
from patchcycle.reports.tables import (
    host_sort_key,
    installed_version_text,
)


def attention_hosts(hosts: Iterable[HostRecord]) -> list[HostRecord]:
    """Hosts whose final state needs attention, most urgent state first, then env order and name."""
    rank = {state: i for i, state in enumerate(ATTENTION_STATES)}
    selected = [h for h in hosts if h["final_state"] in rank]
    selected.sort(key=lambda h: (rank[h["final_state"]], *host_sort_key(h)))
    return selected


def attention_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Hosts needing attention section (up to :data:`MAX_ATTENTION_ROWS` rows, the rest referred to the CSV),
    then the installed versions that differ from the plan."""
    selected = attention_hosts(evidence["hosts"])
    flow: list[Any] = [
        CondPageBreak(1.5 * inch),
        Paragraph(f"Hosts needing attention ({len(selected):,})", styles.h2),
    ]
    if not selected:
        return [
            *flow,
            Paragraph("No host is failed, held, non-compliant, not assessed or not run.", styles.body),
        ]
    by_state: Counter[str] = Counter(h["final_state"] for h in selected)
    breakdown = ", ".join(f"{by_state[s]:,} {s.replace('_', ' ')}" for s in ATTENTION_STATES if by_state[s])
    flow.append(
        Paragraph(
            f"Final state failed, held, non-compliant, not assessed or not run: {breakdown}.", styles.note
        )
    )
    flow.append(Spacer(1, 4))

    shown = selected[:MAX_ATTENTION_ROWS]
    rows: list[list[Any]] = [["Name", "Host id", "Env", "Cloud", "State", "Reason"]]
    for host in shown:
        rows.append(
            [
                text_cell(host["name"], default=""),
                text_cell(host["host_id"], default="", small=True),
                as_text(host["environment"]),
                host["cloud"],
                text_cell(
                    host["final_state"].replace("_", " "), bold=True, colour=STATE_HEX[host["final_state"]]
                ),
                text_cell(host["reason"], default=""),
            ]
        )
    widths = [1.4 * inch, 2.2 * inch, 0.55 * inch, 0.45 * inch, 0.7 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    flow.append(styled_table(rows, widths))
    remaining = len(selected) - len(shown)
    if remaining > 0:
        flow.append(Spacer(1, 4))
        flow.append(
            Paragraph(
                f"<b>{remaining:,} more hosts needing attention are not shown here</b>; "
                f"they are listed in the per-host CSV of this evidence pack.",
                styles.body,
            )
        )
    return flow + _version_drift_section(evidence, styles)


APPENDIX_ROWS_PER_TABLE = 200
"""The host appendix is built as tables of this many rows (one long table would be laid out at once)."""


def host_appendix(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Every host of the cycle, one line each, in promotion order then name: the report's counts can be
    checked against this list, and each host's full record is in the JSON and the CSV."""
    hosts = sorted(evidence["hosts"], key=host_sort_key)
    flow: list[Any] = [
        PageBreak(),
        Paragraph(f"Appendix: every host ({len(hosts):,})", styles.h2),
        Paragraph(
            "Each host of the cycle with its final state and missing updates before and after; the "
            "reasons of the hosts needing attention are above, and every field is in the CSV and JSON.",
            styles.note,
        ),
        Spacer(1, 4),
    ]
    if not hosts:
        return [*flow, Paragraph("The cycle had no host.", styles.body)]
    header = ["Name", "Env", "Cloud", "OS family", "State", "Missing", "Backup"]
    widths = [1.9 * inch, 0.6 * inch, 0.5 * inch, 1.1 * inch, 0.9 * inch, 0.7 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    for start in range(0, len(hosts), APPENDIX_ROWS_PER_TABLE):
        rows: list[list[Any]] = [header]
        for host in hosts[start : start + APPENDIX_ROWS_PER_TABLE]:
            # The schema requires these but types only the cloud and the final state.
            before, after = host["missing_before"], host["missing_after"]
            rows.append(
                [
                    clip_plain(host["name"] or host["host_id"], 40),
                    as_text(host["environment"], "-"),
                    host["cloud"],
                    as_text(host["os_family"], "-"),
                    host["final_state"].replace("_", " "),
                    f"{as_text(before, '-')} -> {as_text(after, '-')}",
                    clip_plain(host["backup_id"], 30, "-"),
                ]
            )
        flow.append(styled_table(rows, widths))
    return flow


def version_drift_hosts(hosts: Iterable[HostRecord]) -> list[tuple[HostRecord, list[InstalledVersion]]]:
    """Hosts whose cloud could not pin versions and that run another version than the plan froze, with
    the differing packages (schema 1.1 ``installed_versions``); in environment order, then name."""
    drifted = []
    for host in hosts:
        entries = [e for e in host.get("installed_versions") or [] if e["installed"] != e["planned"]]
        if entries:
            drifted.append((host, entries))
    drifted.sort(key=lambda pair: host_sort_key(pair[0]))
    return drifted


def _version_drift_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    hosts = evidence["hosts"]
    read_back = sum(1 for h in hosts if h.get("installed_versions") is not None)
    if not read_back:
        return []
    drifted = version_drift_hosts(hosts)
    flow: list[Any] = [
        CondPageBreak(1.2 * inch),
        Spacer(1, 6),
        Paragraph(f"<b>Installed versions that differ from the plan ({len(drifted):,})</b>", styles.body),
        Paragraph(
            f"On {counted(read_back, 'host')} the cloud's install API names packages without versions, so "
            "verify read back the version each host runs. Listed: packages not at the plan's version.",
            styles.note,
        ),
    ]
    if not drifted:
        return [*flow, Paragraph("Every package read back is at the plan's version.", styles.note)]
    shown = drifted[:MAX_ATTENTION_ROWS]
    rows: list[list[Any]] = [["Name", "Env", "State", "Planned -> installed"]]
    for host, entries in shown:
        text = "; ".join(installed_version_text(e) for e in entries)
        state = host["final_state"]
        rows.append(
            [
                text_cell(host["name"] or host["host_id"], host["host_id"] if host["name"] else None),
                as_text(host["environment"]),
                text_cell(state.replace("_", " "), colour=STATE_HEX[state]),
                text_cell(text, small=True),
            ]
        )
    widths = [2.0 * inch, 0.55 * inch, 0.8 * inch]
    widths.append(CONTENT_WIDTH - sum(widths))
    return [*flow, styled_table(rows, widths), *more_rows(len(drifted) - len(shown), "hosts", styles)]
