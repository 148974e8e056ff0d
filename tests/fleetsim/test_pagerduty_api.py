"""fleetsim's PagerDuty Events API v2 over HTTP: validation as the real API answers it, de-duplication into
incidents, change events, throttling, and the control plane's view of it all.

Each test uses its own routing key, so the tests hold in any order.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from fleetsim_testkit import scenario_dict

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-pagerduty")]

THROTTLED_KEY = "THROTTLED".ljust(32, "0")
SCENARIO = scenario_dict(
    tenants=[],
    catalog=[],
    pagerduty={"throttle_first": 2, "throttle_routing_keys": [THROTTLED_KEY], "retry_after_seconds": 3},
)
INVALID = {"status": "invalid event", "message": "Event object is invalid"}


def rkey(name: str) -> str:
    """A 32-character routing key of this test's own."""
    return name.upper().ljust(32, "0")[:32]


def post(fleet, body: Any, path: str = "/v2/enqueue") -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        fleet.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=10
    )


def trigger(key: str, dedup_key: str | None = None, **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "Stage prod failed", "source": "patchcycle", "severity": "error", **payload},
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def follow_up(key: str, action: str, dedup_key: str) -> dict[str, Any]:
    return {"routing_key": key, "event_action": action, "dedup_key": dedup_key}


def seen(fleet, key: str) -> dict[str, list[dict[str, Any]]]:
    """The control plane's incidents, events and refusals for one routing key."""
    snap = fleet.get("/fleetsim/pagerduty")
    return {name: [r for r in rows if r["routing_key"] == key] for name, rows in snap.items()}


def test_trigger_is_accepted_and_opens_an_incident(fleet):
    key = rkey("accept")
    r = post(
        fleet,
        trigger(
            key,
            "patchcycle/cu_alpha/2026-11-22/prod",
            component="patch-install",
            group="cu_alpha",
            custom_details={"failing_host_count": 2},
            timestamp="2026-11-22T03:00:00.000+0000",
        )
        | {"links": [{"href": "https://runbooks.example/p", "text": "Runbook"}]},
    )
    assert r.status_code == 202
    assert r.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "patchcycle/cu_alpha/2026-11-22/prod",
    }
    [incident] = seen(fleet, key)["incidents"]
    assert incident["status"] == "triggered"
    assert incident["dedup_key"] == "patchcycle/cu_alpha/2026-11-22/prod"
    assert (incident["summary"], incident["source"], incident["severity"]) == (
        "Stage prod failed",
        "patchcycle",
        "error",
    )
    assert incident["component"] == "patch-install" and incident["group"] == "cu_alpha"
    assert incident["custom_details"] == {"failing_host_count": 2}
    assert incident["links"] == [{"href": "https://runbooks.example/p", "text": "Runbook"}]
    assert incident["event_count"] == 1 and incident["trigger_count"] == 1
    [event] = seen(fleet, key)["events"]
    assert event["event_action"] == "trigger" and event["outcome"] == "opened"
    assert event["payload"]["summary"] == "Stage prod failed"
    assert event["incident_number"] == incident["number"]


def test_trigger_without_dedup_key_gets_a_generated_one(fleet):
    key = rkey("generated")
    first = post(fleet, trigger(key)).json()["dedup_key"]
    second = post(fleet, trigger(key)).json()["dedup_key"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second
    assert sorted(i["dedup_key"] for i in seen(fleet, key)["incidents"]) == sorted([first, second])


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {**trigger("x"), "routing_key": "too-short"},
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        ({k: v for k, v in trigger(rkey("v1")).items() if k != "routing_key"}, "'routing_key' is missing"),
        ({**trigger(rkey("v2")), "event_action": None}, "'event_action' is missing or blank"),
        ({**trigger(rkey("v3")), "event_action": "escalate"}, "'event_action' 'escalate' is invalid"),
        (trigger(rkey("v4"), summary=""), "'payload.summary' is missing or blank"),
        (trigger(rkey("v5"), summary="s" * 1025), "Length of 'payload.summary' is incorrect"),
        (trigger(rkey("v6"), source=" "), "'payload.source' is missing or blank"),
        (trigger(rkey("v7"), severity="high"), "'payload.severity' 'high' is invalid"),
        (trigger(rkey("v8"), timestamp="yesterday"), "'payload.timestamp' is not an ISO 8601"),
        ({k: v for k, v in trigger(rkey("v9")).items() if k != "payload"}, "'payload' is missing"),
        (trigger(rkey("v10"), "d" * 256), "Length of 'dedup_key' is incorrect"),
        ({"routing_key": rkey("v11"), "event_action": "acknowledge"}, "'dedup_key' is missing or blank"),
        ({"routing_key": rkey("v12"), "event_action": "resolve", "dedup_key": ""}, "'dedup_key' is missing"),
        (trigger(rkey("v13")) | {"links": [{"text": "no href"}]}, "'links[0].href' is missing or blank"),
        ("{not json", "Event object is not valid JSON"),
        ("[]", "Event object must be a JSON object"),
    ],
)
def test_invalid_events_are_refused_naming_the_field(fleet, event, error):
    r = post(fleet, event)
    assert r.status_code == 400, r.text
    body = r.json()
    assert {k: body[k] for k in ("status", "message")} == INVALID
    assert any(error in e for e in body["errors"]), body["errors"]
    if isinstance(event, dict) and isinstance(event.get("routing_key"), str):
        got = seen(fleet, event["routing_key"])
        assert got["incidents"] == [] and got["events"] == []
        assert got["rejected"][-1]["status"] == 400 and got["rejected"][-1]["errors"] == body["errors"]


def test_every_problem_is_listed(fleet):
    r = post(fleet, {"routing_key": "short", "event_action": "trigger", "payload": {"severity": "bad"}})
    errors = r.json()["errors"]
    assert r.status_code == 400
    assert len(errors) == 4, errors
    for field in ("'routing_key'", "'payload.summary'", "'payload.source'", "'payload.severity'"):
        assert any(field in e for e in errors), (field, errors)


def test_dedup_lifecycle_one_incident_until_resolved_then_a_new_one(fleet):
    key, dedup = rkey("lifecycle"), "patchcycle/cu_alpha/2026-11-22/staging"
    assert post(fleet, trigger(key, dedup, summary="first")).status_code == 202
    assert post(fleet, trigger(key, dedup, summary="second")).status_code == 202
    [incident] = seen(fleet, key)["incidents"]
    assert (incident["status"], incident["event_count"], incident["trigger_count"]) == ("triggered", 2, 2)
    assert incident["summary"] == "first"  # the alert keeps what its first trigger said
    assert [e["outcome"] for e in seen(fleet, key)["events"]] == ["opened", "added"]

    assert post(fleet, follow_up(key, "acknowledge", dedup)).json()["dedup_key"] == dedup
    assert post(fleet, trigger(key, dedup, summary="third")).status_code == 202
    [incident] = seen(fleet, key)["incidents"]
    assert incident["status"] == "acknowledged" and incident["acknowledged_at"]
    assert (incident["event_count"], incident["trigger_count"]) == (4, 3)

    assert post(fleet, follow_up(key, "resolve", dedup)).status_code == 202
    [incident] = seen(fleet, key)["incidents"]
    assert incident["status"] == "resolved" and incident["resolved_at"]

    assert post(fleet, follow_up(key, "resolve", dedup)).status_code == 202  # nothing open: dropped
    assert post(fleet, trigger(key, dedup, summary="again")).status_code == 202
    old, new = seen(fleet, key)["incidents"]
    assert old["status"] == "resolved" and old["event_count"] == 5
    assert new["status"] == "triggered" and new["dedup_key"] == dedup and new["summary"] == "again"
    assert new["number"] > old["number"]
    events = seen(fleet, key)["events"]
    assert [e["outcome"] for e in events] == [
        "opened",
        "added",
        "acknowledged",
        "added",
        "resolved",
        "dropped",
        "opened",
    ]
    assert [e["incident_number"] for e in events] == [old["number"]] * 5 + [None, new["number"]]


def test_same_dedup_key_on_two_routing_keys_is_two_incidents(fleet):
    a, b = rkey("service_a"), rkey("service_b")
    post(fleet, trigger(a, "shared"))
    post(fleet, trigger(b, "shared"))
    post(fleet, follow_up(b, "resolve", "shared"))
    assert [i["status"] for i in seen(fleet, a)["incidents"]] == ["triggered"]
    assert [i["status"] for i in seen(fleet, b)["incidents"]] == ["resolved"]


def test_acknowledge_or_resolve_without_an_incident_is_accepted_and_dropped(fleet):
    key = rkey("dropped")
    for action in ("acknowledge", "resolve"):
        r = post(fleet, follow_up(key, action, "never-triggered"))
        assert r.status_code == 202 and r.json()["dedup_key"] == "never-triggered"
    got = seen(fleet, key)
    assert got["incidents"] == []
    assert [e["outcome"] for e in got["events"]] == ["dropped", "dropped"]


def test_change_events_are_recorded_apart_from_incidents(fleet):
    key = rkey("change")
    before = fleet.calls()
    event = {
        "routing_key": key,
        "payload": {
            "summary": "Patched 40 hosts in prod",
            "source": "patchcycle",
            "custom_details": {"n": 40},
        },
        "links": [{"href": "https://airflow.example/run", "text": "Run"}],
    }
    r = post(fleet, event, "/v2/change/enqueue")
    assert r.status_code == 202 and r.json() == {"status": "success", "message": "Change event processed"}
    bad = post(fleet, {"routing_key": key, "payload": {}}, "/v2/change/enqueue")
    assert bad.status_code == 400 and "'payload.summary' is missing or blank" in bad.json()["errors"]
    got = seen(fleet, key)
    assert got["incidents"] == [] and got["events"] == []
    [change] = got["change_events"]
    assert change["payload"]["summary"] == "Patched 40 hosts in prod" and change["links"][0]["text"] == "Run"
    after = fleet.calls()
    assert after.get("pagerduty.change", 0) - before.get("pagerduty.change", 0) == 2
    assert after.get("pagerduty.enqueue", 0) == before.get("pagerduty.enqueue", 0)


def test_throttled_key_gets_429_for_its_first_events_then_202(fleet):
    before = fleet.calls().get("pagerduty.enqueue", 0)
    answers = [post(fleet, trigger(THROTTLED_KEY, "throttled")) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 202]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["status"] == "throttle event"
    got = seen(fleet, THROTTLED_KEY)
    assert [r["status"] for r in got["rejected"]] == [429, 429]
    [incident] = got["incidents"]
    assert incident["event_count"] == 1  # throttled events never reached the incident
    assert fleet.calls()["pagerduty.enqueue"] - before == 3


def test_invalid_event_on_a_throttled_key_is_refused_with_400_not_429(fleet):
    r = post(fleet, {"routing_key": THROTTLED_KEY, "event_action": "resolve"})
    assert r.status_code == 400


def test_enqueue_counts_every_request_and_refuses_get(fleet):
    before = fleet.calls().get("pagerduty.enqueue", 0)
    assert requests.get(fleet.url + "/v2/enqueue", timeout=10).status_code == 405
    post(fleet, "{")
    assert fleet.calls()["pagerduty.enqueue"] - before == 2
