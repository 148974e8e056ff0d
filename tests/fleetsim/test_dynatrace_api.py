"""fleetsim's Dynatrace Environment API v2 over plain HTTP (``requests``), as the health gate reads it.

Covers the Api-Token check, the HOST/SERVICE entities and their tags, problem and entity selectors (and
the 400s for bad ones), the documented timeframe rule, paging with the nextPageKey-only rule, problems
that open once a host is patched (through SSM for real, and through other clouds' ground-truth actions),
and the service error-rate metric rising from each patched host's install on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import requests
from fleetsim_testkit import Fleet, group, patch, scenario_dict, wait_command

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-dynatrace")]

TOKEN = "dt0c01.TESTS.SECRET"
ACCOUNT = "555555555555"
RATE = "builtin:service.errors.total.rate"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "dt_alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("web", 3, environment="prod"),
                    group("db", 2, environment="staging"),
                    group("api", 4, environment="qa"),
                    group("old", 5, environment="legacy"),
                    group("pay", 1, environment="payments"),
                ],
            },
            "faults": {
                "open_problem": ["db-01", "old-01", "old-02", "old-03", "old-04", "old-05"],
                "health_problem_after_patch": ["web-01", "pay-01"],
                "error_rate_after_patch": {"api-01": 2.0, "api-02": 1.0, "api-03": 5.0},
            },
        },
        {
            "id": "dt_beta",
            "gcp": {
                "project_id": "proj-dt",
                "groups": [group("gce", 2, "ubuntu_22_04", environment="prod", zone="europe-west1-b")],
            },
            "faults": {"open_problem": ["gce-01"]},
        },
    ],
    catalog=[patch("ALAS2-DT", "amazon_linux_2"), patch("USN-DT", "ubuntu_22_04")],
    dynatrace={"token": TOKEN, "baseline_error_rate": 0.5, "error_rate_by_environment": {"qa": 1.0}},
)


def get(fleet: Fleet, path: str, token: str | None = TOKEN, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Api-Token {token}"} if token else {}
    return requests.get(f"{fleet.url}{path}", params=params, headers=headers, timeout=10)


def problems(fleet: Fleet, **params: Any) -> dict[str, Any]:
    response = get(fleet, "/api/v2/problems", **params)
    assert response.status_code == 200, response.text
    return response.json()


def all_problems(fleet: Fleet, **params: Any) -> list[dict[str, Any]]:
    body = problems(fleet, pageSize=500, **params)
    assert "nextPageKey" not in body
    return body["problems"]


def metric(fleet: Fleet, **params: Any) -> dict[str, Any]:
    response = get(fleet, "/api/v2/metrics/query", **params)
    assert response.status_code == 200, response.text
    return response.json()


def violations(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["message"] == "Constraints violated."
    return error["constraintViolations"]


def host(fleet: Fleet, tenant: str, name: str):
    state = fleet.server.state
    return next(h for h in state.hosts.values() if h.tenant == tenant and h.name == name)


def fake_install(fleet: Fleet, name: str, at: dt.datetime, action: str, result: str) -> None:
    """What a cloud's install leaves behind: the effect on the host and its ground-truth action."""
    state = fleet.server.state
    with state.lock:
        target = host(fleet, "dt_alpha", name)
        effect = state.install(target, set(target.missing), fails=result == "Failed", reboot=False)
        target.actions.append({"at": at.isoformat(), "action": action, "result": result, **effect})


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- authentication ------------------------------------------------------------------------------------
def test_requests_without_the_api_token_are_refused(fleet):
    before = fleet.calls().get("dynatrace.unauthenticated", 0)
    missing = get(fleet, "/api/v2/problems", token=None)
    assert missing.status_code == 401
    assert missing.json() == {"error": {"code": 401, "message": "Missing authorization parameter."}}
    wrong = get(fleet, "/api/v2/metrics/query", token="dt0c01.WRONG", metricSelector=RATE)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 401
    bearer = requests.get(
        f"{fleet.url}/api/v2/problems", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert bearer.status_code == 401
    assert fleet.calls()["dynatrace.unauthenticated"] == before + 3


def test_calls_are_counted_by_operation(fleet):
    before = fleet.calls()
    problems(fleet)
    metric(fleet, metricSelector=RATE)
    assert get(fleet, "/api/v2/entities").status_code == 404
    after = fleet.calls()
    for name in ("dynatrace.problems", "dynatrace.metrics.query", "dynatrace.notFound"):
        assert after[name] == before.get(name, 0) + 1, name


def test_a_managed_environment_path_is_served_too(fleet):
    body = get(fleet, "/e/abc12345/api/v2/problems", entitySelector='type("HOST"),tag("host:db-01")').json()
    assert [p["affectedEntities"][0]["name"] for p in body["problems"]] == ["db-01"]


# -- entities and pre-existing problems ---------------------------------------------------------------
def test_a_pre_existing_problem_and_its_host_entity(fleet):
    (p,) = all_problems(fleet, entitySelector='type("HOST"),tag("host:db-01")')
    assert p["status"] == "OPEN" and p["endTime"] == -1
    assert (p["severityLevel"], p["impactLevel"]) == ("AVAILABILITY", "INFRASTRUCTURE")
    assert p["title"] == "Host or monitoring unavailable"
    assert re.fullmatch(r"-\d+_\d+V2", p["problemId"]) and re.fullmatch(r"P-\d+", p["displayId"])
    (affected,) = p["affectedEntities"]
    assert affected["name"] == "db-01" and affected["entityId"]["type"] == "HOST"
    assert re.fullmatch(r"HOST-[0-9A-F]{16}", affected["entityId"]["id"])
    assert p["rootCauseEntity"] == affected and p["impactedEntities"] == [affected]
    tags = {t["stringRepresentation"] for t in p["entityTags"]}
    assert tags == {"tenant:dt_alpha", "environment:staging", "cloud:aws", "host:db-01"}
    assert all(t["context"] == "CONTEXTLESS" for t in p["entityTags"])
    assert p["managementZones"] == [] and "evidenceDetails" not in p
    # Opened 30 minutes (the default age) before fleetsim started.
    assert 29 * 60_000 < time.time() * 1000 - p["startTime"] < 60 * 60_000
    # The same entity by id; other cloud's host carries its cloud tag.
    (again,) = all_problems(fleet, entitySelector=f'entityId("{affected["entityId"]["id"]}")')
    assert again["problemId"] == p["problemId"]
    (gce,) = all_problems(fleet, entitySelector="type(HOST),tag(cloud:gcp)")
    assert gce["affectedEntities"][0]["name"] == "gce-01"


def test_a_problem_is_listed_only_when_it_started_or_ended_in_the_timeframe(fleet):
    selector = 'type("HOST"),tag("host:db-01")'
    assert all_problems(fleet, entitySelector=selector, **{"from": "now-10m"}) == []
    assert len(all_problems(fleet, entitySelector=selector, **{"from": "now-2h"})) == 1
    assert len(all_problems(fleet, entitySelector=selector)) == 1  # default: now-2h
    started = all_problems(fleet, entitySelector=selector)[0]["startTime"]
    iso = dt.datetime.fromtimestamp(started / 1000 - 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(all_problems(fleet, entitySelector=selector, **{"from": iso})) == 1
    assert all_problems(fleet, entitySelector=selector, **{"from": "now-3h", "to": str(started - 1)}) == []


@pytest.mark.parametrize(
    ("problem_selector", "entity_selector", "hosts"),
    [
        pytest.param('status("open")', 'type("HOST"),tag("tenant:dt_alpha"),tag("environment:staging")',
                     ["db-01"], id="status-open"),
        pytest.param('status("OPEN"),severityLevel("ERROR","AVAILABILITY")',
                     'type("HOST"),tag("environment:staging")', ["db-01"], id="severity-or"),
        pytest.param('status("closed")', 'type("HOST"),tag("environment:staging")', [], id="status-closed"),
        pytest.param('severityLevel("ERROR")', 'type("HOST"),tag("environment:staging")', [],
                     id="severity-excludes"),
        pytest.param('impactLevel("INFRASTRUCTURE")', 'type("HOST"),tag("tenant:dt_beta")', ["gce-01"],
                     id="impact-level"),
        pytest.param("", 'type("HOST"),tag("tenant:dt_alpha","environment:staging")', ["db-01"],
                     id="tags-in-one-criterion-are-anded"),
        pytest.param("", 'type("HOST"),tag("tenant:dt_beta"),tag("environment:staging")', [],
                     id="tag-criteria-are-anded"),
        pytest.param("", 'type("HOST"),tag("[CONTEXTLESS]host:gce-01")', ["gce-01"], id="tag-context"),
        pytest.param("", 'type("HOST"),tag("host")', None, id="tag-key-only"),
        pytest.param("", 'type("SERVICE"),tag("environment:staging")', [], id="host-problem-not-on-service"),
        pytest.param("", 'type("PROCESS_GROUP")', [], id="type-without-entities"),
        pytest.param("", 'type("HOST"),entityName.equals("DB-01")', ["db-01"], id="entity-name-equals"),
        pytest.param("", 'type("HOST"),entityName.startsWith("old-0"),tag("host:old-03")', ["old-03"],
                     id="entity-name-starts-with"),
    ],
)  # fmt: skip
def test_selectors(fleet, problem_selector, entity_selector, hosts):
    params = {"entitySelector": entity_selector}
    if problem_selector:
        params["problemSelector"] = problem_selector
    found = sorted(p["affectedEntities"][0]["name"] for p in all_problems(fleet, **params))
    if hosts is None:  # every host with an open problem (and any patched since)
        assert {"db-01", "gce-01", "old-01", "old-05"} <= set(found)
    else:
        assert found == hosts


@pytest.mark.parametrize(
    ("params", "path", "says"),
    [
        pytest.param({"problemSelector": 'status("open"'}, "problemSelector", "unterminated", id="unclosed"),
        pytest.param({"problemSelector": 'colour("red")'}, "problemSelector", "'colour'", id="unknown-key"),
        pytest.param({"problemSelector": 'severityLevel("FATAL")'}, "problemSelector", "FATAL",
                     id="unknown-severity"),
        pytest.param({"entitySelector": 'tag("tenant:dt_alpha")'}, "entitySelector", "type(...) or entityId",
                     id="no-type"),
        pytest.param({"entitySelector": 'type("HOST"),type("SERVICE")'}, "entitySelector", "only one type",
                     id="two-types"),
        pytest.param({"entitySelector": 'type("MAINFRAME")'}, "entitySelector", "MAINFRAME",
                     id="unknown-type"),
        pytest.param({"entitySelector": 'type("HOST"),toRelationships.runsOn(type(SERVICE))'},
                     "entitySelector", "quotation marks", id="nested-unsupported"),
        pytest.param({"entitySelector": 'type("HOST"),tag("' + "x" * 2000 + '")'}, "entitySelector",
                     "2000", id="too-long"),
        pytest.param({"from": "yesterday"}, "from", "yesterday", id="bad-from"),
        pytest.param({"from": "now", "to": "now-1h"}, "from", "must be before", id="from-after-to"),
        pytest.param({"pageSize": "0"}, "pageSize", "between 1 and 500", id="page-size-zero"),
        pytest.param({"pageSize": "501"}, "pageSize", "between 1 and 500", id="page-size-too-big"),
        pytest.param({"fields": "evidenceDetails,gossip"}, "fields", "gossip", id="unknown-field"),
    ],
)  # fmt: skip
def test_bad_parameters_are_400_constraint_violations(fleet, params, path, says):
    (v,) = violations(get(fleet, "/api/v2/problems", **params))
    assert v["path"] == path and v["parameterLocation"] == "QUERY"
    assert says in v["message"]


# -- paging --------------------------------------------------------------------------------------------
def test_paging_follows_next_page_keys_alone(fleet):
    selector = 'type("HOST"),tag("environment:legacy")'
    first = problems(fleet, entitySelector=selector, pageSize=2)
    assert (first["totalCount"], first["pageSize"], len(first["problems"])) == (5, 2, 2)
    seen = [p["displayId"] for p in first["problems"]]
    key = first["nextPageKey"]
    pages = 1
    while key:
        page = problems(fleet, nextPageKey=key, fields="evidenceDetails")
        assert page["totalCount"] == 5 and all("evidenceDetails" in p for p in page["problems"])
        seen += [p["displayId"] for p in page["problems"]]
        key = page.get("nextPageKey")
        pages += 1
    assert pages == 3
    everything = [p["displayId"] for p in all_problems(fleet, entitySelector=selector)]
    assert seen == everything and len(set(seen)) == 5
    starts = [p["startTime"] for p in all_problems(fleet, entitySelector="type(HOST)")]
    assert starts == sorted(starts, reverse=True)  # newest first


def test_a_next_page_key_with_other_parameters_is_refused(fleet):
    selector = 'type("HOST"),tag("environment:legacy")'
    key = problems(fleet, entitySelector=selector, pageSize=2)["nextPageKey"]
    refused = violations(get(fleet, "/api/v2/problems", nextPageKey=key, entitySelector=selector, pageSize=2))
    assert sorted(v["path"] for v in refused) == ["entitySelector", "pageSize"]
    assert all("nextPageKey" in v["message"] for v in refused)
    (bogus,) = violations(get(fleet, "/api/v2/problems", nextPageKey="not-a-key"))
    assert bogus["path"] == "nextPageKey"


# -- problems after a patch ------------------------------------------------------------------------------
def test_a_problem_opens_when_the_host_is_patched_through_ssm(fleet):
    service = 'type("SERVICE"),tag("tenant:dt_alpha"),tag("environment:prod")'
    open_errors = {"problemSelector": 'status("open"),severityLevel("ERROR")', "entitySelector": service}
    assert all_problems(fleet, **open_errors) == []
    ssm = fleet.client("ssm", ACCOUNT)
    command_id = ssm.send_command(
        DocumentName="AWS-RunPatchBaseline",
        InstanceIds=fleet.ids("dt_alpha", "web-01", "web-02"),
        Parameters={"Operation": ["Install"]},
    )["Command"]["CommandId"]
    wait_command(ssm, command_id)
    truth = fleet.truth("dt_alpha")
    (install,) = [a for a in truth["web-01"]["actions"] if a["action"] == "ssm.install"]
    assert install["result"] == "Success"

    (p,) = all_problems(fleet, **open_errors)
    assert (p["severityLevel"], p["impactLevel"], p["status"]) == ("ERROR", "SERVICES", "OPEN")
    assert p["title"] == "Failure rate increase on dt_alpha-prod"
    assert p["startTime"] == ms(dt.datetime.fromisoformat(install["at"]))
    affected = {(e["entityId"]["type"], e["name"]) for e in p["affectedEntities"]}
    assert affected == {("HOST", "web-01"), ("SERVICE", "dt_alpha-prod")}
    assert [e["name"] for e in p["impactedEntities"]] == ["dt_alpha-prod"]
    assert p["rootCauseEntity"]["name"] == "web-01"
    tags = {t["stringRepresentation"] for t in p["entityTags"]}
    assert {"tenant:dt_alpha", "environment:prod", "host:web-01", "cloud:aws"} <= tags
    # The same problem through the host; web-02 was patched too but has no fault.
    (by_host,) = all_problems(fleet, entitySelector='type("HOST"),tag("host:web-01")')
    assert by_host["problemId"] == p["problemId"]
    assert all_problems(fleet, entitySelector='type("HOST"),tag("host:web-02")') == []


def test_only_a_successful_install_opens_the_problem(fleet):
    selector = 'type("HOST"),tag("host:pay-01")'
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    fake_install(fleet, "pay-01", past, "azure.installPatches", "Failed")
    fake_install(fleet, "pay-01", past + dt.timedelta(seconds=30), "gcp.patchJob", "COMPLETED_WITH_ERRORS")
    assert all_problems(fleet, entitySelector=selector) == []
    later = past + dt.timedelta(minutes=1)
    fake_install(fleet, "pay-01", later, "gcp.patchJob", "SUCCEEDED_REBOOT_REQUIRED")
    (p,) = all_problems(fleet, entitySelector=selector)
    assert p["startTime"] == ms(later)


# -- the error-rate metric -------------------------------------------------------------------------------
QA_SERVICE = 'type("SERVICE"),tag("tenant:dt_alpha"),tag("environment:qa")'


def test_the_error_rate_rises_from_each_patched_hosts_install_on(fleet):
    now = dt.datetime.now(dt.UTC)
    first, second = now - dt.timedelta(minutes=40), now - dt.timedelta(minutes=20)
    fake_install(fleet, "api-01", first, "ssm.install", "Success")  # +2.0
    fake_install(fleet, "api-02", second, "azure.installPatches", "Succeeded")  # +1.0
    fake_install(fleet, "api-03", second, "ssm.install", "Failed")  # +5.0, but the install failed

    def average(start: dt.datetime, end: dt.datetime, selector: str = RATE + ":avg") -> float:
        body = metric(
            fleet,
            metricSelector=selector,
            entitySelector=QA_SERVICE,
            **{"from": str(ms(start)), "to": str(ms(end))},
            resolution="Inf",
        )
        assert body["resolution"] == "Inf" and body["nextPageKey"] is None
        (result,) = body["result"]
        (series,) = result["data"]
        assert series["timestamps"] == [ms(end)]
        return series["values"][0]

    minute = dt.timedelta(minutes=1)
    assert average(first - 10 * minute, first) == pytest.approx(1.0)  # the qa baseline override
    assert average(first, second) == pytest.approx(3.0)
    assert average(second, now - minute) == pytest.approx(4.0)
    assert average(first - 10 * minute, first + 10 * minute) == pytest.approx(2.0)  # time-weighted
    assert average(first - 10 * minute, first + 10 * minute, RATE + ":fold(avg)") == pytest.approx(2.0)

    body = metric(
        fleet,
        metricSelector=RATE,
        entitySelector=QA_SERVICE,
        **{"from": str(ms(first - 10 * minute)), "to": "now"},
        resolution="5m",
    )
    (series,) = body["result"][0]["data"]
    assert body["resolution"] == "5m" and re.fullmatch(r"SERVICE-[0-9A-F]{16}", series["dimensions"][0])
    assert series["dimensionMap"] == {"dt.entity.service": series["dimensions"][0]}
    slots = list(zip(series["timestamps"], series["values"], strict=True))
    assert all(b - a == 300_000 for a, b in zip(series["timestamps"], series["timestamps"][1:], strict=False))
    for end, value in slots:
        if end <= ms(first):
            assert value == pytest.approx(1.0)
        elif ms(first) <= end - 300_000 and end <= ms(second):
            assert value == pytest.approx(3.0)
        elif ms(second) <= end - 300_000 and end <= ms(now):
            assert value == pytest.approx(4.0)
    assert {round(v, 6) for _, v in slots if v is not None} >= {1.0, 3.0, 4.0}


def test_unpatched_services_stay_at_their_baseline(fleet):
    body = metric(fleet, metricSelector=RATE + ":avg", resolution="Inf")  # every service
    services = {s["dimensions"][0]: s["values"][0] for s in body["result"][0]["data"]}
    assert len(services) == 6  # dt_alpha: prod, staging, qa, legacy, payments; dt_beta: prod
    staging = metric(
        fleet,
        metricSelector=RATE,
        entitySelector='type("SERVICE"),tag("tenant:dt_alpha"),tag("environment:staging")',
        resolution="Inf",
    )["result"][0]["data"]
    assert [s["values"] for s in staging] == [[pytest.approx(0.5)]]


def test_the_default_resolution_gives_at_most_120_points_and_future_slots_are_null(fleet):
    body = metric(fleet, metricSelector=RATE, entitySelector='type("SERVICE"),tag("environment:staging")')
    assert body["resolution"] == "1m"
    (series,) = body["result"][0]["data"]
    assert 120 <= len(series["values"]) <= 121
    ahead = metric(
        fleet,
        metricSelector=RATE,
        entitySelector='type("SERVICE"),tag("environment:staging")',
        resolution="5m",
        **{"from": "now-30m", "to": str(ms(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)))},
    )
    values = ahead["result"][0]["data"][0]["values"]
    assert values[0] == pytest.approx(0.5) and values[-5:] == [None] * 5


def test_metric_errors(fleet):
    unknown = get(fleet, "/api/v2/metrics/query", metricSelector="builtin:host.cpu.nope:avg")
    assert unknown.status_code == 404 and "builtin:host.cpu.nope" in unknown.json()["error"]["message"]
    (v,) = violations(get(fleet, "/api/v2/metrics/query", metricSelector=RATE, entitySelector='type("HOST")'))
    assert v["path"] == "entitySelector" and "dt.entity.service" in v["message"]
    (v,) = violations(get(fleet, "/api/v2/metrics/query", metricSelector=RATE + ":percentile(99)"))
    assert v["path"] == "metricSelector" and "percentile" in v["message"]
    (v,) = violations(
        get(fleet, "/api/v2/metrics/query", metricSelector=RATE, resolution="1m", **{"from": "now-30d"})
    )
    assert v["path"] == "resolution" and "10080" in v["message"]
    (v,) = violations(get(fleet, "/api/v2/metrics/query", metricSelector=RATE, resolution="5s"))
    assert v["path"] == "resolution"
    (v,) = violations(get(fleet, "/api/v2/metrics/query"))
    assert v["path"] == "metricSelector"
