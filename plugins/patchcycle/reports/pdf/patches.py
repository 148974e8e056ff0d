"""The approved patch set: each OS family's catalog source and patches, and the RDS OS updates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reportlab.lib.units import inch
from reportlab.platypus import (
    CondPageBreak,
    Paragraph,
    Spacer,
)

from patchcycle.reports.evidence_document import BaselineDecision, CycleEvidence, Plan
from patchcycle.reports.pdf.layout import TextCell, styled_table, text_cell
from patchcycle.reports.pdf.style import (
    CONTENT_WIDTH,
    MAX_CVES_PER_PATCH,
    MAX_PATCH_ROWS,
    MAX_PATCHES_PER_FAMILY,
    RED,
    RELEASED_BASIS_LABELS,
    SEVERITY_ORDER,
    Styles,
    as_markup,
    as_text,
    clip_plain,
)


def _severity_rank(severity: Any) -> int:
    try:
        return SEVERITY_ORDER.index(str(severity or "").lower())
    except ValueError:
        return len(SEVERITY_ORDER)


def _family_decisions(plan: Plan) -> dict[str, BaselineDecision]:
    """The plan's baseline decision per OS family (``plan.baselines``, schema 1.1)."""
    return {d["os_family"]: d for d in plan.get("baselines", [])}


def _catalog_lines(decision: BaselineDecision | None, styles: Styles) -> list[Any]:
    """Where the family's catalog came from, and what the plan could not judge (schema 1.1)."""
    if decision is None or "sources" not in decision:
        return []  # a plan frozen before the plan recorded its sources
    sources = decision["sources"]
    text = (
        f"Catalog sources: {as_markup(', '.join(sources))}."
        if sources
        else "Catalog sources: <b>none</b>. No source lists this family's updates; nothing was approved."
    )
    lines: list[Any] = [Paragraph(text, styles.note)]
    lines += [
        Paragraph(f'<font color="{RED}">Not judged:</font> {as_markup(clip_plain(note))}', styles.note)
        for note in decision.get("notes", [])
    ]
    return lines


def _package_version(patch: Mapping[str, Any]) -> tuple[str, str | None]:
    """(package or KB, the exact version frozen as [epoch:]version[.arch]) of an approved patch.

    Approved patches are read with checks: evidence-1.0 does not type them, and no version types the
    severity and CVEs.
    """
    kb = as_text(patch.get("kb"))
    main = as_text(patch.get("package")) or (f"KB{kb}" if kb else "-")
    version = as_text(patch.get("version"))
    if not version:
        return main, None
    epoch, arch = as_text(patch.get("epoch")), as_text(patch.get("arch"))
    return main, (f"{epoch}:" if epoch else "") + version + (f" ({arch})" if arch else "")


def _released_cell(patch: Mapping[str, Any]) -> TextCell:
    basis = as_text(patch.get("released_basis"))
    return text_cell(patch.get("released"), RELEASED_BASIS_LABELS.get(basis, basis) or None)


def patch_section(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """Approved patch set section: per OS family its catalog sources and patches, most severe first (capped
    per family and in total), then the RDS OS updates."""
    plan = evidence["plan"]
    approved: Mapping[str, list[Any]] = plan.get("approved", {})
    decisions = _family_decisions(plan)
    flow: list[Any] = [CondPageBreak(1.5 * inch), Paragraph("Approved patch set", styles.h2)]
    families = sorted(set(approved) | set(decisions))
    total = sum(len(approved.get(f, [])) for f in families)
    if not total and not any(_catalog_lines(d, styles) for d in decisions.values()):
        flow.append(Paragraph("The plan approved no patches for this cycle.", styles.body))
        return flow + _rds_updates(evidence, styles)
    flow.append(
        Paragraph(
            f"{total:,} patches approved across {len(families)} OS families, most severe first "
            f"(up to {MAX_PATCHES_PER_FAMILY} per family here; the full set is in the evidence JSON). "
            "Each is frozen at the version shown; under Released, how its release date is known.",
            styles.note,
        )
    )
    budget = MAX_PATCH_ROWS
    for family in families:
        patches = sorted(
            approved.get(family, []),
            key=lambda p: (_severity_rank(p.get("severity")), str(p.get("id") or "")),
        )
        header = Paragraph(f"<b>{as_markup(family)}</b> ({len(patches):,})", styles.body)
        catalog = _catalog_lines(decisions.get(family), styles)
        if not patches:
            flow += [Spacer(1, 4), header, *catalog, Paragraph("No patches approved.", styles.note)]
            continue
        shown = patches[: max(0, min(MAX_PATCHES_PER_FAMILY, budget))]
        budget -= len(shown)
        flow += [CondPageBreak(1.2 * inch), Spacer(1, 6), header, *catalog]
        if shown:
            rows: list[list[Any]] = [["Patch id", "Severity", "Package (version)", "CVEs", "Released"]]
            for patch in shown:
                cves = [str(c) for c in patch.get("cves") or []]
                text = ", ".join(cves[:MAX_CVES_PER_PATCH])
                if len(cves) > MAX_CVES_PER_PATCH:
                    text += f" (+{len(cves) - MAX_CVES_PER_PATCH} more)"
                rows.append(
                    [
                        text_cell(patch.get("id"), default=""),
                        as_text(patch.get("severity"), "-"),
                        text_cell(*_package_version(patch)),
                        text_cell(text),
                        _released_cell(patch),
                    ]
                )
            widths = [1.6 * inch, 0.75 * inch, 1.75 * inch, 0.0, 1.15 * inch]
            widths[3] = CONTENT_WIDTH - sum(widths)
            flow.append(styled_table(rows, widths))
        if len(shown) < len(patches):
            flow.append(Paragraph(f"{len(patches) - len(shown):,} more not shown.", styles.note))
    return flow + _rds_updates(evidence, styles)


def _rds_updates(evidence: CycleEvidence, styles: Styles) -> list[Any]:
    """The RDS OS updates the plan froze (AWS gives them no version or release date: their descriptions)."""
    from patchcycle.domain.plan import rds_update_id

    updates = evidence["plan"].get("rds_os_updates", [])
    if not updates:
        return []
    rows: list[list[Any]] = [["Update id", "RDS OS update (as RDS offered it when the plan was frozen)"]]
    rows += [[text_cell(rds_update_id(u)), text_cell(u)] for u in updates]
    header = Paragraph(f"<b>rds</b> ({len(updates):,} OS update(s))", styles.body)
    return [
        CondPageBreak(1.2 * inch),
        Spacer(1, 6),
        header,
        styled_table(rows, [1.8 * inch, CONTENT_WIDTH - 1.8 * inch]),
    ]
