"""PagerDutyEventsHook against fleetsim's Events API v2, configured only by an Airflow http connection.

What PagerDuty received is read back from fleetsim's control plane (``/fleetsim/pagerduty``). Each test
uses its own routing key, so the tests hold in any order.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest
from fleetsim_testkit import scenario_dict

from patchcycle.domain.incidents import incident_details, incident_key, incident_summary
from patchcycle.hooks.pagerduty import (
    MAX_ATTEMPTS,
    SUMMARY_MAX_CHARS,
    PagerDutyError,
    PagerDutyEventsHook,
    retry_after_seconds,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-pagerduty")]

CONN = "pagerduty_fleetsim"
RETRY_KEY = "RETRYKEYSECRET".ljust(32, "7")
SCENARIO = scenario_dict(
    tenants=[],
    catalog=[],
    pagerduty={"throttle_first": 1, "throttle_routing_keys": [RETRY_KEY], "retry_after_seconds": 1},
)
DAY = dt.date(2026, 11, 22)


def rkey(name: str) -> str:
    return name.upper().ljust(32, "0")[:32]


@pytest.fixture
def connect(fleet, monkeypatch):
    def _connect(key: str, **fields: object) -> PagerDutyEventsHook:
        conn = {
            "conn_type": "http",
            "host": fleet.url,
            "password": key,
            "extra": {"backoff_seconds": 0.05},
        } | fields
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
        return PagerDutyEventsHook(CONN)

    return _connect


def seen(fleet, key: str) -> dict[str, list[dict]]:
    snap = fleet.get("/fleetsim/pagerduty")
    return {name: [r for r in rows if r["routing_key"] == key] for name, rows in snap.items()}


def test_trigger_acknowledge_resolve_one_incident_per_stage(fleet, connect):
    key = rkey("lifecycle")
    hook = connect(key)
    dedup = incident_key("cu_alpha", DAY, "prod")
    hosts = ["web-02", "web-01"]
    details = incident_details(
        tenant_id="cu_alpha",
        cycle_date=DAY,
        stage="prod",
        reason="install failed",
        failing_hosts=hosts,
        dag_run_id="scheduled__2026-11-22T02:00:00+00:00",
        plan_hash="f" * 64,
        runbook_url="https://runbooks.example/patchcycle",
    )
    got = hook.trigger(
        dedup_key=dedup,
        summary=incident_summary("Alpha CU", DAY, "prod", "install failed", hosts),
        source="patchcycle/cu_alpha",
        severity="error",
        component="prod",
        group="cu_alpha",
        custom_details=details,
        links=[{"href": "https://runbooks.example/patchcycle", "text": "Runbook"}],
        timestamp=dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC),
    )
    assert got == dedup
    # A re-run of the failed stage triggers again: the same incident, one more event.
    assert (
        hook.trigger(dedup_key=dedup, summary="again", source="patchcycle/cu_alpha", severity="error")
        == dedup
    )
    [incident] = seen(fleet, key)["incidents"]
    assert incident["status"] == "triggered" and incident["trigger_count"] == 2
    assert incident["summary"] == (
        "Patchcycle: Alpha CU 2026-11-22 stage prod: 2 hosts failing (web-01, web-02): install failed"
    )
    assert (incident["severity"], incident["component"], incident["group"]) == ("error", "prod", "cu_alpha")
    assert incident["custom_details"] == details
    assert incident["links"] == [{"href": "https://runbooks.example/patchcycle", "text": "Runbook"}]
    assert incident["timestamp"] == "2026-11-22T03:00:00+00:00"

    assert hook.acknowledge(dedup) == dedup
    assert seen(fleet, key)["incidents"][0]["status"] == "acknowledged"
    assert hook.resolve(dedup) == dedup
    assert [i["status"] for i in seen(fleet, key)["incidents"]] == ["resolved"]
    assert [e["event_action"] for e in seen(fleet, key)["events"]] == [
        "trigger",
        "trigger",
        "acknowledge",
        "resolve",
    ]


def test_summary_is_cut_to_the_api_limit(fleet, connect):
    key = rkey("long")
    connect(key).trigger(dedup_key="long", summary="x" * 5000, source="patchcycle", severity="warning")
    [incident] = seen(fleet, key)["incidents"]
    assert len(incident["summary"]) == SUMMARY_MAX_CHARS and incident["summary"].endswith("…")


def test_retries_after_429_honouring_retry_after(fleet, connect, caplog):
    hook = connect(RETRY_KEY)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    assert hook.trigger(dedup_key="throttled", summary="s", source="patchcycle", severity="critical") == (
        "throttled"
    )
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0, f"retried after {elapsed:.2f}s; fleetsim asked for Retry-After: 1"
    got = seen(fleet, RETRY_KEY)
    assert [(r["status"], r["dedup_key"]) for r in got["rejected"]] == [(429, "throttled")]
    assert [i["event_count"] for i in got["incidents"]] == [1]
    assert "429" in caplog.text  # the retry is logged ...
    assert RETRY_KEY not in caplog.text  # ... without the routing key


def test_refused_event_names_status_and_errors_but_never_the_key(fleet, connect):
    key = "BADKEYSECRET" + "9" * 25  # 37 characters: PagerDuty refuses it
    hook = connect(key)
    before = fleet.calls().get("pagerduty.enqueue", 0)
    with pytest.raises(PagerDutyError) as caught:
        hook.trigger(dedup_key="k1", summary="s", source="patchcycle", severity="info")
    err = caught.value
    assert err.status == 400
    assert err.errors == ["Length of 'routing_key' is incorrect (should be 32 characters)"]
    assert "HTTP 400" in str(err) and "Length of 'routing_key' is incorrect" in str(err)
    assert "trigger of 'k1'" in str(err)
    assert key not in str(err) and key not in repr(err.errors)
    assert fleet.calls()["pagerduty.enqueue"] - before == 1  # a 400 is never retried


def test_unreachable_endpoint_gives_up_after_bounded_attempts(connect):
    key = rkey("unreachable")
    hook = connect(key, host="http://127.0.0.1:1", extra={"backoff_seconds": 0.01})
    with pytest.raises(PagerDutyError, match=f"gave up after {MAX_ATTEMPTS} attempts") as caught:
        hook.resolve("k2")
    assert caught.value.status is None
    assert "resolve of 'k2'" in str(caught.value) and "ConnectionError" in str(caught.value)
    assert key not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severity": "high"}, "severity must be one of critical, error, warning, info, got 'high'"),
        ({"dedup_key": "d" * 256}, "dedup_key is 256 characters"),
        ({"dedup_key": " "}, "dedup_key must be a non-blank string"),
        ({"summary": " "}, "summary must not be blank"),
        ({"timestamp": dt.datetime(2026, 11, 22, 3, 0)}, "timestamp must be timezone-aware"),
    ],
)
def test_bad_arguments_are_refused_before_sending(fleet, connect, kwargs, match):
    hook = connect(rkey("args"))
    before = fleet.calls().get("pagerduty.enqueue", 0)
    event = {"dedup_key": "k", "summary": "s", "source": "patchcycle", "severity": "error"} | kwargs
    with pytest.raises(ValueError, match=match):
        hook.trigger(**event)
    assert fleet.calls().get("pagerduty.enqueue", 0) == before


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"password": None}, "password \\(the Events API v2 integration key\\) is empty"),
        ({"host": None}, "host \\(the Events API base URL"),
        ({"extra": {"backoff_seconds": "soon"}}, "backoff_seconds must be a number"),
    ],
)
def test_connection_problems_name_the_connection(connect, fields, match):
    hook = connect(rkey("conn"), **fields)
    with pytest.raises(ValueError, match=match) as caught:
        hook.resolve("k")
    assert CONN in str(caught.value)


def test_retry_after_header_forms():
    now = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Sun, 22 Nov 2026 03:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Sun, 22 Nov 2026 02:00:00 GMT", now) == 0.0
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
