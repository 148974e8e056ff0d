"""The health gate's verdict: blocking problems, the error-rate limit and its edges, missing data."""

from __future__ import annotations

import math

import pytest

from patchcycle.domain.health import HealthVerdict, blocking_problems, describe_problem, health_verdict


def problem(display_id: str = "P-2401", severity: str = "ERROR", status: str = "OPEN", **kw) -> dict:
    return {
        "problemId": f"-1_{display_id}V2",
        "displayId": display_id,
        "title": kw.pop("title", "Failure rate increase on alpha-prod"),
        "severityLevel": severity,
        "status": status,
        "affectedEntities": kw.pop(
            "affected",
            [
                {"entityId": {"id": "HOST-AAAA", "type": "HOST"}, "name": "web-01"},
                {"entityId": {"id": "SERVICE-BBBB", "type": "SERVICE"}, "name": "alpha-prod"},
            ],
        ),
        **kw,
    }


def test_healthy_without_problems_and_a_steady_rate():
    assert health_verdict([], 0.5, 0.5, 0.1) == HealthVerdict(healthy=True, reasons=[])


@pytest.mark.parametrize("severity", ["ERROR", "AVAILABILITY", "error"])
def test_an_open_error_or_availability_problem_blocks_and_is_named(severity):
    verdict = health_verdict([problem("P-77", severity)], 0.5, 0.5, 0.1)
    assert not verdict.healthy
    (reason,) = verdict.reasons
    assert "P-77" in reason and "Failure rate increase on alpha-prod" in reason
    assert "HOST-AAAA" in reason and "SERVICE-BBBB" in reason


@pytest.mark.parametrize(
    "severity", ["PERFORMANCE", "RESOURCE_CONTENTION", "CUSTOM_ALERT", "MONITORING_UNAVAILABLE"]
)
def test_other_severities_do_not_block(severity):
    assert health_verdict([problem(severity=severity)], 0.5, 0.5, 0.1) == HealthVerdict(True, [])


def test_a_closed_problem_does_not_block():
    assert health_verdict([problem(status="CLOSED")], 0.5, 0.5, 0.1).healthy


def test_every_blocking_problem_is_a_reason():
    problems = [problem("P-1"), problem("P-2", "PERFORMANCE"), problem("P-3", "AVAILABILITY")]
    verdict = health_verdict(problems, 0.5, 0.5, 0.1)
    assert not verdict.healthy
    assert [r.split()[2] for r in verdict.reasons] == ["P-1", "P-3"]
    assert [p["displayId"] for p in blocking_problems(problems)] == ["P-1", "P-3"]


def test_a_problem_without_ids_is_still_described():
    assert describe_problem({"severityLevel": "ERROR"}) == "<no id> (ERROR): <no title>"


@pytest.mark.parametrize(
    ("baseline", "current", "tolerance", "healthy"),
    [
        pytest.param(0.5, 0.55, 0.1, True, id="exactly-at-the-limit"),
        pytest.param(
            0.7, 0.91, 0.3, True, id="exactly-at-the-limit-despite-float-rounding"
        ),  # 0.7*1.3 < 0.91
        pytest.param(0.5, 0.5501, 0.1, False, id="just-above-the-limit"),
        pytest.param(0.5, 0.3, 0.1, True, id="rate-fell"),
        pytest.param(2.0, 3.0, 0.5, True, id="wide-tolerance"),
        pytest.param(2.0, 3.01, 0.5, False, id="above-wide-tolerance"),
        pytest.param(0.5, 0.5, 0.0, True, id="zero-tolerance-unchanged"),
        pytest.param(0.5, 0.50001, 0.0, False, id="zero-tolerance-any-rise"),
        pytest.param(0.0, 0.0, 0.1, True, id="zero-baseline-still-zero"),
        pytest.param(0.0, 0.01, 0.1, False, id="zero-baseline-any-error"),
    ],
)
def test_error_rate_limit(baseline, current, tolerance, healthy):
    verdict = health_verdict([], baseline, current, tolerance)
    assert verdict.healthy is healthy
    if healthy:
        assert verdict.reasons == []
    else:
        (reason,) = verdict.reasons
        assert f"{current:g}%" in reason and f"{baseline * (1 + tolerance):g}%" in reason


def test_a_rise_from_zero_says_so():
    (reason,) = health_verdict([], 0.0, 1.5, 0.1).reasons
    assert "from zero" in reason and "1.5%" in reason


def test_a_rise_names_the_relative_increase():
    (reason,) = health_verdict([], 1.0, 1.5, 0.1).reasons
    assert "+50.0%" in reason and "10% tolerance" in reason


@pytest.mark.parametrize(
    ("baseline", "current", "missing"),
    [(None, 0.5, "baseline"), (0.5, None, "current"), (None, None, "baseline and current")],
)
def test_missing_data_is_a_reason_but_healthy_by_default(baseline, current, missing):
    verdict = health_verdict([], baseline, current, 0.1)
    assert verdict.healthy
    (reason,) = verdict.reasons
    assert f"no error-rate data for the {missing} rate" in reason


def test_missing_data_is_unhealthy_when_the_tenant_requires_data():
    verdict = health_verdict([], 0.5, None, 0.1, require_data=True)
    assert not verdict.healthy
    assert "requires data" in verdict.reasons[0]


def test_require_data_does_not_matter_when_data_is_there():
    assert health_verdict([], 0.5, 0.5, 0.1, require_data=True) == HealthVerdict(True, [])


def test_problems_and_rate_are_both_reported():
    verdict = health_verdict([problem("P-9")], 0.5, 5.0, 0.1)
    assert not verdict.healthy
    assert len(verdict.reasons) == 2
    assert "P-9" in verdict.reasons[0] and "5%" in verdict.reasons[1]


@pytest.mark.parametrize(
    ("baseline", "current", "tolerance", "named"),
    [
        (-0.1, 0.5, 0.1, "baseline_rate -0.1"),
        (0.5, math.nan, 0.1, "current_rate nan"),
        (0.5, math.inf, 0.1, "current_rate inf"),
        (0.5, 0.5, -0.1, "tolerance -0.1"),
        (0.5, 0.5, math.nan, "tolerance nan"),
    ],
)
def test_impossible_inputs_are_refused_by_name(baseline, current, tolerance, named):
    with pytest.raises(ValueError, match=named):
        health_verdict([], baseline, current, tolerance)
