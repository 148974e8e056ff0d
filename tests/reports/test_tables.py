"""The per-host CSV and the summary rows."""

from __future__ import annotations

import csv
import io

import pandas as pd

from devtools.evidence_documents import (
    DRIFT_HOST_NAME,
    DRIFT_PACKAGE,
    NOT_ASSESSED_HOST_NAME,
    NOT_ASSESSED_REASON,
    make_evidence,
)
from patchcycle.reports.tables import (
    HOST_COLUMNS,
    environment_rank,
    format_percent,
    hosts_csv,
    installed_versions_text,
    summary_rows,
)


def _host(name: str, env: str, host_id: str, **extra: object) -> dict:
    host: dict = dict.fromkeys(HOST_COLUMNS)
    host.update(name=name, environment=env, host_id=host_id, final_state="patched", missing_before=2)
    host.update(extra)
    return host


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def test_host_columns_follow_the_evidence_order() -> None:
    evidence = make_evidence(3, schema_version="1.3")
    assert HOST_COLUMNS == tuple(evidence["hosts"][0])
    assert len(set(HOST_COLUMNS)) == len(HOST_COLUMNS) == 27
    # Older host records have every column but those later versions added (their cells are left empty).
    assert HOST_COLUMNS[:-2] == tuple(make_evidence(3, schema_version="1.1")["hosts"][0])
    assert HOST_COLUMNS[:-3] == tuple(make_evidence(3)["hosts"][0])


def test_the_patch_ids_sent_and_the_install_time_are_columns() -> None:
    sent = _host(
        "web-1", "prod", "i-1", patch_ids=["KB5041578", "KB5041580"], patched_at="2026-11-22T03:04:00Z"
    )
    held = _host("web-2", "prod", "i-2", final_state="held")
    header, first, second = _rows(hosts_csv([sent, held]))
    row = dict(zip(header, first, strict=True))
    assert (row["patch_ids"], row["patched_at"]) == ("KB5041578 KB5041580", "2026-11-22T03:04:00Z")
    row = dict(zip(header, second, strict=True))
    assert (row["patch_ids"], row["patched_at"]) == ("", "")


def test_header_and_row_count() -> None:
    hosts = make_evidence(40)["hosts"]
    data = hosts_csv(hosts)
    rows = _rows(data)
    assert rows[0] == list(HOST_COLUMNS)
    assert len(rows) == 41
    assert data.endswith(b"\n") and b"\r" not in data


def test_empty_host_list_gives_header_only() -> None:
    assert hosts_csv([]) == (",".join(HOST_COLUMNS) + "\n").encode()


def test_rows_sorted_by_environment_then_name_then_id() -> None:
    hosts = [
        _host("b", "prod", "i-2"),
        _host("a", "dr", "i-9"),
        _host("z", "nonprod", "i-1"),
        _host("a", "prod", "i-3"),
        _host("a", "prod", "i-1"),
        _host("m", "staging", "i-5"),
        _host("a", "lab", "i-8"),
    ]
    rows = _rows(hosts_csv(hosts))[1:]
    name, env, host_id = HOST_COLUMNS.index("name"), HOST_COLUMNS.index("environment"), 0
    assert [(r[env], r[name], r[host_id]) for r in rows] == [
        ("nonprod", "z", "i-1"),
        ("staging", "m", "i-5"),
        ("prod", "a", "i-1"),
        ("prod", "a", "i-3"),
        ("prod", "b", "i-2"),
        ("dr", "a", "i-9"),
        ("lab", "a", "i-8"),
    ]


def test_environment_rank() -> None:
    envs = ["prod", "zeta", "nonprod", "alpha", "staging"]
    assert sorted(envs, key=environment_rank) == ["nonprod", "staging", "prod", "alpha", "zeta"]


def test_none_becomes_empty_cell_and_ints_stay_ints() -> None:
    host = _host("web-01", "prod", "i-1", reason=None, backup_id=None, missing_after=None, installed_after=12)
    data = hosts_csv([host]).decode()
    row = _rows(data.encode())[1]
    record = dict(zip(HOST_COLUMNS, row, strict=True))
    assert record["reason"] == "" and record["backup_id"] == "" and record["missing_after"] == ""
    assert record["missing_before"] == "2" and record["installed_after"] == "12"
    assert "2.0" not in data and "nan" not in data.lower() and "None" not in data


def test_missing_keys_are_empty_and_unknown_keys_ignored() -> None:
    rows = _rows(hosts_csv([{"host_id": "i-1", "name": "x", "environment": "prod", "extra": "ignored"}]))
    assert rows[0] == list(HOST_COLUMNS)
    assert rows[1][:2] == ["i-1", "x"] and rows[1][2:5] == ["", "", ""]
    assert "ignored" not in rows[1]


def test_special_characters_are_quoted_and_utf8() -> None:
    host = _host('db, "primary"', "prod", "i-1", reason="line one\nline two", platform="Ubuntu – 22.04 ✓")
    data = hosts_csv([host])
    record = dict(zip(HOST_COLUMNS, _rows(data)[1], strict=True))
    assert record["name"] == 'db, "primary"'
    assert record["reason"] == "line one\nline two"
    assert record["platform"] == "Ubuntu – 22.04 ✓"


def test_deterministic_and_input_order_independent() -> None:
    hosts = make_evidence(60)["hosts"]
    assert hosts_csv(hosts) == hosts_csv(list(reversed(hosts)))
    assert hosts_csv(hosts) == hosts_csv(hosts)


def test_round_trips_through_pandas() -> None:
    hosts = make_evidence(60)["hosts"]
    frame = pd.read_csv(io.BytesIO(hosts_csv(hosts)), dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(HOST_COLUMNS)
    assert len(frame) == len(hosts)
    by_id = {h["host_id"]: h for h in hosts}
    for record in frame.to_dict("records"):
        original = by_id[record["host_id"]]
        for column in HOST_COLUMNS:
            expected = original.get(column)
            assert record[column] == ("" if expected is None else str(expected)), column
    numeric = pd.read_csv(io.BytesIO(hosts_csv(hosts)))
    assert numeric["missing_before"].sum() == sum(h["missing_before"] for h in hosts)


def test_summary_rows() -> None:
    evidence = make_evidence(40)
    rows = summary_rows(evidence)
    labels = [label for label, _ in rows]
    assert labels == [
        "Hosts total",
        "In scope",
        "Patched",
        "Failed",
        "Held",
        "Excepted",
        "Non-compliant",
        "Not assessed",
        "Not run",
        "Out of scope",
        "Compliance before -> after",
    ]
    values = dict(rows)
    assert values["Hosts total"] == "40"
    summary = evidence["summary"]
    assert values["Compliance before -> after"] == (
        f"{summary['compliance_before'] * 100:.1f}% -> {summary['compliance_after'] * 100:.1f}%"
    )
    assert all(isinstance(value, str) for _, value in rows)


def test_summary_rows_formatting_edge_cases() -> None:
    evidence = make_evidence(0)
    evidence["summary"].update(hosts_total=12345, compliance_before=None, compliance_after=1)
    values = dict(summary_rows(evidence))
    assert values["Hosts total"] == "12,345"
    assert values["Compliance before -> after"] == "n/a -> 100.0%"
    assert format_percent(0.8567) == "85.7%"


def test_a_not_assessed_host_is_a_csv_row_with_its_state_and_reason() -> None:
    hosts = make_evidence(20, schema_version="1.1")["hosts"]
    rows = [dict(zip(HOST_COLUMNS, row, strict=True)) for row in _rows(hosts_csv(hosts))[1:]]
    unassessed = [r for r in rows if r["final_state"] == "not_assessed"]
    assert [(r["name"], r["reason"]) for r in unassessed] == [(NOT_ASSESSED_HOST_NAME, NOT_ASSESSED_REASON)]
    assert unassessed[0]["missing_after"] == ""  # nothing read, nothing claimed


def test_installed_versions_are_one_readable_cell() -> None:
    hosts = make_evidence(20, schema_version="1.1")["hosts"]
    rows = {r[1]: dict(zip(HOST_COLUMNS, r, strict=True)) for r in _rows(hosts_csv(hosts))[1:]}
    package, planned, installed = DRIFT_PACKAGE
    assert rows[DRIFT_HOST_NAME]["installed_versions"] == (
        f"{package} {planned} -> {installed}; libssl3 {planned} -> {planned}"
    )
    assert rows[NOT_ASSESSED_HOST_NAME]["installed_versions"] == ""
    assert installed_versions_text(None) is None
    assert installed_versions_text([]) == ""
    assert (
        installed_versions_text(
            [{"kb": "5041578", "planned": "5041578", "installed": None, "status": "absent"}]
        )
        == "KB5041578 5041578 -> not installed (absent)"
    )


def test_summary_rows_count_not_assessed_hosts() -> None:
    evidence = make_evidence(40, schema_version="1.1", not_assessed=3)
    values = dict(summary_rows(evidence))
    assert values["Not assessed"] == "3" == str(evidence["summary"]["not_assessed"])
    assert values["Non-compliant"] == str(evidence["summary"]["non_compliant"])
    assert dict(summary_rows(make_evidence(10)))["Not assessed"] == "0"  # a 1.0 pack had no such host
