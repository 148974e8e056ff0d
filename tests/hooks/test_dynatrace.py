"""DynatraceHook against fleetsim's Dynatrace API v2: plain requests, configured only by a connection.

Checks what the hook returns (open problems over every page, the average error rate), that it follows
``nextPageKey`` alone, that 429s are retried honouring ``Retry-After`` (a throttled token), and that every
failure names the URL, the status and the API's message but never the token.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time

import pytest
from fleetsim_testkit import Fleet, group, patch, scenario_dict

from patchcycle.domain.health import health_verdict
from patchcycle.hooks import dynatrace as dynatrace_module
from patchcycle.hooks.dynatrace import DynatraceError, DynatraceHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-dynatrace")]

CONN = "dynatrace_test"
TOKEN = "dt0c01.HOOKS.SECRETPART"
THROTTLED = "dt0c01.THROTTLED.SECRETPART"
RATE = "builtin:service.errors.total.rate:avg"
PROD_HOSTS = 'type("HOST"),tag("tenant:h_dt"),tag("environment:prod")'
PROD_SERVICE = 'type("SERVICE"),tag("tenant:h_dt"),tag("environment:prod")'

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "h_dt",
            "aws": {
                "account_id": "666666666666",
                "region": "eu-central-1",
                "groups": [
                    group("web", 2, environment="prod"),
                    group("old", 5, environment="legacy"),
                    group("qa", 1, environment="qa"),
                ],
            },
            "faults": {
                "open_problem": ["old-01", "old-02", "old-03", "old-04", "old-05"],
                "health_problem_after_patch": ["web-01"],
                "error_rate_after_patch": {"web-01": 3.0},
            },
        }
    ],
    catalog=[patch("ALAS2-H", "amazon_linux_2")],
    dynatrace={
        "token": TOKEN,
        "baseline_error_rate": 0.5,
        "error_rate_by_environment": {"qa": 1.5},
        "throttle": {"requests": 1, "every": 3, "retry_after_seconds": 1, "token": THROTTLED},
    },
)


@pytest.fixture
def connect(fleet: Fleet, monkeypatch: pytest.MonkeyPatch):
    def _connect(**fields: object) -> DynatraceHook:
        conn = {"conn_type": "http", "host": fleet.url, "password": TOKEN} | fields
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
        return DynatraceHook(CONN)

    return _connect


def patched(fleet: Fleet, name: str, at: dt.datetime) -> None:
    """What an SSM install leaves behind: its effect on the host and its ground-truth action."""
    state = fleet.server.state
    with state.lock:
        host = next(h for h in state.hosts.values() if h.tenant == "h_dt" and h.name == name)
        effect = state.install(host, set(host.missing), fails=False, reboot=False)
        host.actions.append({"at": at.isoformat(), "action": "ssm.install", "result": "Success", **effect})


def calls(fleet: Fleet, name: str) -> int:
    return fleet.calls().get(name, 0)


def test_open_problems_over_every_page_with_the_page_key_alone(fleet, connect, monkeypatch):
    hook = connect()
    selector = 'type("HOST"),tag("environment:legacy")'
    before = calls(fleet, "dynatrace.problems")
    everything = hook.open_problems(selector)
    assert calls(fleet, "dynatrace.problems") == before + 1  # 5 problems fit one page of 500
    assert sorted(p["affectedEntities"][0]["name"] for p in everything) == [f"old-0{i}" for i in range(1, 6)]
    assert all(p["status"] == "OPEN" and p["severityLevel"] == "AVAILABILITY" for p in everything)
    json.dumps(everything)  # plain JSON, storable by the caller

    monkeypatch.setattr(dynatrace_module, "PROBLEMS_PAGE_SIZE", 2)
    before = calls(fleet, "dynatrace.problems")
    paged = hook.open_problems(selector)
    # Three pages; fleetsim answers 400 if a page request carries anything besides nextPageKey.
    assert calls(fleet, "dynatrace.problems") == before + 3
    assert [p["problemId"] for p in paged] == [p["problemId"] for p in everything]


def test_the_page_size_maximum_is_enforced_and_named(fleet, connect, monkeypatch):
    monkeypatch.setattr(dynatrace_module, "PROBLEMS_PAGE_SIZE", 501)
    with pytest.raises(DynatraceError) as exc:
        connect().open_problems(PROD_HOSTS)
    assert exc.value.status == 400
    assert (
        "HTTP 400" in str(exc.value)
        and "pageSize" in str(exc.value)
        and "between 1 and 500" in str(exc.value)
    )


def test_since_reaches_back_or_misses_older_problems(fleet, connect):
    hook = connect()
    selector = 'type("HOST"),tag("host:old-01")'
    # The pre-existing problem opened 30 minutes before fleetsim started.
    assert hook.open_problems(selector, since="now-10m") == []
    assert len(hook.open_problems(selector, since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))) == 1


def test_a_patched_host_turns_the_gate_red(fleet, connect):
    hook = connect()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    install = start + dt.timedelta(minutes=10)
    baseline = hook.metric_average(RATE, PROD_SERVICE, start, install)
    assert baseline == pytest.approx(0.5)
    assert hook.open_problems(PROD_HOSTS) == []
    assert health_verdict(hook.open_problems(PROD_HOSTS), baseline, baseline, 0.1).healthy

    patched(fleet, "web-01", install)
    (problem,) = hook.open_problems(PROD_HOSTS)
    assert problem["severityLevel"] == "ERROR" and problem["title"] == "Failure rate increase on h_dt-prod"
    assert hook.open_problems(PROD_SERVICE) == [problem]
    current = hook.metric_average(RATE, PROD_SERVICE, install, "now")
    assert current == pytest.approx(3.5)
    # A window straddling the install averages over time: 10 min at 0.5, 10 min at 3.5.
    straddle = hook.metric_average(RATE, PROD_SERVICE, start, install + dt.timedelta(minutes=10))
    assert straddle == pytest.approx(2.0)
    verdict = health_verdict([problem], baseline, current, 0.1)
    assert not verdict.healthy
    assert problem["displayId"] in verdict.reasons[0] and "3.5%" in verdict.reasons[1]


def test_metric_average_across_series_and_without_data(fleet, connect):
    hook = connect()
    # legacy (0.5) and qa (1.5): two unpatched services, one value each.
    selector = 'type("SERVICE"),tag("tenant:h_dt"),entityName.contains("a")'  # h_dt-legacy, h_dt-qa
    assert hook.metric_average(RATE, selector, "now-1h", "now") == pytest.approx(1.0)
    series = hook.metric_series(RATE, selector, "now-30m", "now", resolution="5m")
    assert len(series) == 2 and all(len(s["values"]) in (6, 7) for s in series)
    assert hook.metric_average(RATE, 'type("SERVICE"),tag("tenant:nobody")', "now-1h", "now") is None
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert hook.metric_average(RATE, selector, future, future + dt.timedelta(hours=1)) is None


def test_bad_arguments_are_refused_before_any_call(fleet, connect):
    hook = connect()
    with pytest.raises(ValueError, match="no time zone"):
        hook.metric_average(RATE, PROD_SERVICE, dt.datetime(2026, 1, 1), "now")
    with pytest.raises(ValueError, match="entity_selector is empty"):
        hook.open_problems("  ")
    with pytest.raises(ValueError, match="at most 2000"):
        hook.open_problems('type("HOST"),tag("' + "x" * 2000 + '")')


def test_api_errors_name_url_status_and_message(fleet, connect):
    hook = connect()
    with pytest.raises(DynatraceError) as exc:
        hook.open_problems('tag("tenant:h_dt")')
    message = str(exc.value)
    assert exc.value.status == 400 and f"{fleet.url}/api/v2/problems" in message
    assert "Constraints violated." in message and "entitySelector" in message
    with pytest.raises(DynatraceError) as exc:
        hook.metric_average("builtin:host.nothing", PROD_SERVICE, "now-1h", "now")
    assert exc.value.status == 404 and "builtin:host.nothing" in str(exc.value)


def test_a_wrong_token_is_named_but_not_shown(fleet, connect):
    hook = connect(password="dt0c01.WRONG.VERYSECRET")
    with pytest.raises(DynatraceError) as exc:
        hook.open_problems(PROD_HOSTS)
    assert exc.value.status == 401 and "Token Authentication failed" in str(exc.value)
    assert "VERYSECRET" not in str(exc.value)


def test_a_managed_environment_url_keeps_its_path(fleet, connect):
    hook = connect(host=f"{fleet.url}/e/env-1234/")
    assert hook.base_url == f"{fleet.url}/e/env-1234"
    assert len(hook.open_problems('type("HOST"),tag("host:old-02")', since="now-2h")) == 1


def test_a_host_without_scheme_takes_schema_and_port(fleet, connect):
    port = int(fleet.url.rsplit(":", 1)[1])
    hook = connect(host="127.0.0.1", schema="http", port=port, password=f"Api-Token {TOKEN}")
    assert hook.base_url == fleet.url
    assert hook.metric_average(RATE, 'type("SERVICE"),tag("environment:qa")', "now-1h", "now") == 1.5


def test_throttling_is_retried_honouring_retry_after(fleet, connect):
    hook = connect(password=THROTTLED, extra={"backoff_factor": 0})
    before = calls(fleet, "dynatrace.throttled")
    started = time.monotonic()
    for _ in range(3):  # with every third request refused, at least one of these is throttled
        assert len(hook.open_problems('type("HOST"),tag("host:old-03")')) == 1
    throttled = calls(fleet, "dynatrace.throttled") - before
    assert throttled >= 1
    # No back-off was configured: only the 1 s Retry-After explains the wait.
    assert time.monotonic() - started >= 0.9 * throttled


def test_exhausted_retries_raise_naming_the_429(fleet, connect):
    hook = connect(password=THROTTLED, extra={"max_retries": 0})
    with pytest.raises(DynatraceError) as exc:
        for _ in range(4):  # one of any three requests is refused
            hook.metric_average(RATE, PROD_SERVICE, "now-1h", "now")
    assert exc.value.status == 429 and "Too Many Requests" in str(exc.value)
    assert "/api/v2/metrics/query" in str(exc.value) and THROTTLED not in str(exc.value)


def test_an_unreachable_environment_is_named(connect):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = connect(host=f"http://127.0.0.1:{port}", extra={"max_retries": 1, "backoff_factor": 0})
    with pytest.raises(DynatraceError) as exc:
        hook.open_problems(PROD_HOSTS)
    assert f"http://127.0.0.1:{port}/api/v2/problems" in str(exc.value) and exc.value.status is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"host": ""}, "has no host"),
        ({"host": "ftp://dt.example"}, "not an http(s) environment URL"),
        ({"password": ""}, "no API token"),
        ({"conn_type": "aws"}, "conn_type 'aws'"),
        ({"extra": {"timeout": "soon"}}, "extra timeout 'soon' is not a number"),
        ({"extra": {"max_retries": -1}}, "extra max_retries -1 must be at least 0"),
        ({"extra": {"verify": 3}}, "extra verify 3"),
    ],
)
def test_connection_mistakes_are_named(connect, fields, says):
    with pytest.raises(ValueError, match="connection 'dynatrace_test'") as exc:
        connect(**fields).settings  # noqa: B018 - the property reads and checks the connection
    assert says in str(exc.value)
