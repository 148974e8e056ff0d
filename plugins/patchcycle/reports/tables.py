"""Tabular views of a cycle's evidence document: the per-host CSV and the summary rows.

Pure functions (no cloud I/O). The input is the evidence document (``schema_version`` "1.0" or
"1.1"), a plain JSON-compatible dict; see :mod:`patchcycle.reports.pdf` for the PDF built from the same data.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

#: Host-record keys, in the order they appear in the evidence document and in the CSV header.
HOST_COLUMNS: tuple[str, ...] = (
    "host_id",
    "name",
    "cloud",
    "account",
    "region",
    "environment",
    "os_family",
    "platform",
    "criticality",
    "agent_status",
    "kernel",
    "falcon_device_id",
    "falcon_sensor_version",
    "falcon_rfm",
    "final_state",
    "reason",
    "install_variant",
    "backup_kind",
    "backup_id",
    "command_id",
    "missing_before",
    "missing_after",
    "failed_after",
    "installed_after",
    "installed_versions",
    "patch_ids",
    "patched_at",
)

#: Promotion order of environments; anything else sorts after these, alphabetically.
ENVIRONMENT_ORDER: tuple[str, ...] = ("nonprod", "staging", "prod")


def environment_rank(environment: str | None) -> tuple[int, str]:
    """Sort key putting nonprod < staging < prod < any other environment (alphabetical)."""
    env = environment or ""
    try:
        return (ENVIRONMENT_ORDER.index(env), "")
    except ValueError:
        return (len(ENVIRONMENT_ORDER), env)


def sorted_environments(environments: Iterable[str]) -> list[str]:
    """Return the distinct environment names in promotion order."""
    return sorted(set(environments), key=environment_rank)


def host_sort_key(host: Mapping[str, Any]) -> tuple[tuple[int, str], str, str]:
    """Sort key of a host record: environment in promotion order, then name, then host_id."""
    return (
        environment_rank(host.get("environment")),
        str(host.get("name") or ""),
        str(host.get("host_id") or ""),
    )


def hosts_csv(hosts: Iterable[Mapping[str, Any]]) -> bytes:
    """Render host records as UTF-8 CSV (header of :data:`HOST_COLUMNS`, ``\\n`` line endings).

    Rows are sorted by (environment in promotion order, name, host_id). ``None`` and missing keys
    become empty cells; keys not in :data:`HOST_COLUMNS` are ignored. Values are written as-is
    (no spreadsheet-formula neutralising) so the CSV matches the evidence JSON exactly; the lists:
    ``installed_versions``, is written as :func:`installed_versions_text`; ``patch_ids`` as ids
    separated by spaces.
    Identical input gives identical bytes.
    """
    ordered = sorted(hosts, key=host_sort_key)
    # dtype=object keeps ints as ints (no 3 -> 3.0 when a column has a None) and
    # stops pandas from inferring types or parsing account ids as numbers.
    rows = [[_csv_value(col, host.get(col)) for col in HOST_COLUMNS] for host in ordered]
    frame = pd.DataFrame(rows, columns=list(HOST_COLUMNS), dtype=object)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", na_rep="")
    return buffer.getvalue().encode("utf-8")


def installed_version_text(entry: Mapping[str, Any]) -> str:
    """One planned update as read back: ``pkg planned -> installed`` (``KB123 ...`` on Windows), with
    how they compare when verify said so; ``not installed`` where the host does not have it."""
    what = entry.get("package") or (f"KB{entry['kb']}" if entry.get("kb") else "?")
    text = f"{what} {entry.get('planned') or '?'} -> {entry.get('installed') or 'not installed'}"
    return text + (f" ({entry['status']})" if entry.get("status") else "")


def installed_versions_text(entries: Iterable[Mapping[str, Any]] | None) -> str | None:
    """A host's planned-against-installed versions as one cell, entries joined by ``; ``.

    ``None`` (the install pinned the versions, or nothing was read back) stays None: an empty cell.
    """
    if entries is None:
        return None
    return "; ".join(installed_version_text(e) for e in entries)


def _csv_value(column: str, value: Any) -> Any:
    if column == "installed_versions":
        return installed_versions_text(value)
    if column == "patch_ids":
        return " ".join(value) if value else None
    return value


def format_percent(value: float | int | None) -> str:
    """Format a 0..1 ratio as a percentage with one decimal ("86.0%"); ``None`` -> "n/a"."""
    if value is None:
        return "n/a"
    return f"{float(value) * 100:.1f}%"


def _count(value: Any) -> str:
    if value is None:
        return "0"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


#: (label, summary key) for the count rows of the summary table, in display order.
SUMMARY_COUNT_ROWS: tuple[tuple[str, str], ...] = (
    ("Hosts total", "hosts_total"),
    ("In scope", "in_scope"),
    ("Patched", "patched"),
    ("Failed", "failed"),
    ("Held", "held"),
    ("Excepted", "excepted"),
    ("Non-compliant", "non_compliant"),
    ("Not assessed", "not_assessed"),
    ("Not run", "not_run"),
    ("Out of scope", "out_of_scope"),
)


def summary_rows(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the (label, value) pairs of the cycle summary table, as shown in the PDF."""
    summary = evidence.get("summary") or {}
    rows = [(label, _count(summary.get(key))) for label, key in SUMMARY_COUNT_ROWS]
    before = summary.get("compliance_before")
    after = summary.get("compliance_after")
    rows.append(("Compliance before -> after", f"{format_percent(before)} -> {format_percent(after)}"))
    return rows
