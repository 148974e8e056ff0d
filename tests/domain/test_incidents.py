"""The PagerDuty incident of a failed stage: stable dedup keys, bounded one-line summaries, capped details.

Expected strings are written out by hand, not computed with the code under test.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from patchcycle.domain.incidents import (
    DETAIL_HOSTS_MAX,
    KEY_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    incident_details,
    incident_key,
    incident_summary,
)

DAY = dt.date(2026, 11, 22)


def test_key_names_tenant_cycle_and_stage():
    assert incident_key("cu_alpha", DAY, "prod") == "patchcycle/cu_alpha/2026-11-22/prod"
    assert incident_key("cu_alpha", DAY, "prod") == incident_key("cu_alpha", dt.date(2026, 11, 22), "prod")


def test_keys_differ_by_each_part():
    keys = {
        incident_key("cu_alpha", DAY, "prod"),
        incident_key("cu_beta", DAY, "prod"),
        incident_key("cu_alpha", dt.date(2026, 12, 20), "prod"),
        incident_key("cu_alpha", DAY, "staging"),
    }
    assert len(keys) == 4


def test_overlong_key_is_cut_to_the_limit_and_stays_stable_and_distinct():
    stage_a, stage_b = "s" * 300 + "a", "s" * 300 + "b"
    key_a = incident_key("cu_alpha", DAY, stage_a)
    assert len(key_a) == KEY_MAX_CHARS
    assert key_a.startswith("patchcycle/cu_alpha/2026-11-22/sss")
    assert key_a == incident_key("cu_alpha", DAY, stage_a)
    assert key_a != incident_key("cu_alpha", DAY, stage_b)


@pytest.mark.parametrize(
    ("tenant", "stage", "named"),
    [("", "prod", "tenant_id"), ("cu/alpha", "prod", "tenant_id"), ("cu_alpha", "pr od", "stage")],
)
def test_key_refuses_parts_that_would_make_it_ambiguous(tenant, stage, named):
    with pytest.raises(ValueError, match=named):
        incident_key(tenant, DAY, stage)


def test_key_refuses_a_datetime_for_the_cycle_date():
    with pytest.raises(TypeError, match="cycle_date"):
        incident_key("cu_alpha", dt.datetime(2026, 11, 22, 23, 0, tzinfo=dt.UTC), "prod")


def test_summary_names_count_and_first_hosts_sorted():
    summary = incident_summary(
        "Alpha Credit Union", DAY, "prod", "install failed", ["web-03", "web-01", "web-02", "web-01"]
    )
    assert summary == (
        "Patchcycle: Alpha Credit Union 2026-11-22 stage prod: 3 hosts failing (web-01, web-02, web-03): "
        "install failed"
    )


def test_summary_lists_five_hosts_then_the_rest_as_a_count():
    hosts = [f"db-{i:02d}" for i in range(12, 0, -1)]
    summary = incident_summary("Alpha", DAY, "staging", "health gate failed", hosts)
    assert summary == (
        "Patchcycle: Alpha 2026-11-22 stage staging: 12 hosts failing "
        "(db-01, db-02, db-03, db-04, db-05 and 7 more): health gate failed"
    )


def test_summary_singular_and_no_hosts():
    one = incident_summary("Alpha", DAY, "prod", "x", ["web-01"])
    assert "1 host failing (web-01)" in one
    none = incident_summary("Alpha", DAY, "prod", "change window closed before the stage started", [])
    assert none == "Patchcycle: Alpha 2026-11-22 stage prod: change window closed before the stage started"


def test_summary_is_one_line_and_cut_to_the_limit_keeping_the_count():
    reason = "line one\nline two\t" + "x" * 3000
    summary = incident_summary("Alpha", DAY, "prod", reason, [f"h{i}" for i in range(500)])
    assert len(summary) == SUMMARY_MAX_CHARS
    assert summary.endswith("…")
    assert "\n" not in summary and "\t" not in summary
    assert "500 hosts failing (h0, h1, h10, h100, h101 and 495 more): line one line two xxx" in summary


def test_summary_refuses_blank_reason():
    with pytest.raises(ValueError, match="reason"):
        incident_summary("Alpha", DAY, "prod", "  ", ["web-01"])


def test_details_cap_hosts_and_keep_the_count():
    hosts = [f"h-{i:04d}" for i in range(DETAIL_HOSTS_MAX + 50)]
    details = incident_details(
        tenant_id="cu_alpha",
        cycle_date=DAY,
        stage="prod",
        reason="install failed",
        failing_hosts=list(reversed(hosts)),
        dag_run_id="scheduled__2026-11-22T02:00:00+00:00",
        plan_hash="ab" * 32,
        runbook_url="https://runbooks.example/patchcycle",
    )
    assert details["failing_host_count"] == 150
    assert details["failing_hosts"] == hosts[:DETAIL_HOSTS_MAX]
    assert details["failing_hosts_truncated"] is True
    assert details["runbook_url"] == "https://runbooks.example/patchcycle"
    assert details["dag_run_id"] == "scheduled__2026-11-22T02:00:00+00:00"
    assert details["plan_hash"] == "ab" * 32
    assert details["incident_key"] == "patchcycle/cu_alpha/2026-11-22/prod"
    assert details["cycle_date"] == "2026-11-22"
    json.dumps(details)


def test_details_without_runbook_and_few_hosts():
    details = incident_details(
        tenant_id="cu_alpha",
        cycle_date=DAY,
        stage="nonprod",
        reason="r",
        failing_hosts=["b", "a"],
        dag_run_id="manual__1",
        plan_hash="p",
    )
    assert details["failing_hosts"] == ["a", "b"]
    assert details["failing_hosts_truncated"] is False
    assert details["runbook_url"] is None
