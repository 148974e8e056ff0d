"""Each targeted host's final state, and whether a stage stayed within its error budget."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.config.models import RateControl
from patchcycle.domain import outcomes as o
from patchcycle.domain.outcomes import StageVerdict, classify_patched_host, stage_verdict

INSTALLED = {"Operation": "Install", "MissingCount": 0, "FailedCount": 0, "InstalledCount": 412}
SCANNED = {"Operation": "Scan", "MissingCount": 0, "FailedCount": 0, "InstalledCount": 412}


def test_final_state_vocabulary():
    assert o.FINAL_STATES == (
        "patched",
        "failed",
        "held",
        "non_compliant",
        "excepted",
        "not_run",
        "out_of_scope",
        "not_assessed",
    )


@pytest.mark.parametrize(
    ("status", "state", "expected_state", "expected_reason"),
    [
        # No invocation at all.
        pytest.param(None, None, o.NOT_RUN, "no command invocation recorded", id="none-none"),
        pytest.param(None, INSTALLED, o.NOT_RUN, "no command invocation recorded", id="none-installed"),
        # Never sent: SSM stopped the command when the error budget ran out.
        pytest.param(
            "Cancelled",
            None,
            o.NOT_RUN,
            "not sent: the stage's error budget was exhausted first",
            id="cancelled",
        ),
        pytest.param(
            "Cancelled",
            INSTALLED,
            o.NOT_RUN,
            "not sent: the stage's error budget was exhausted first",
            id="cancelled-installed",
        ),
        # The agent never got it.
        pytest.param(
            ("TimedOut", "Delivery Timed Out"),
            None,
            o.FAILED,
            "the agent did not receive the command (delivery timed out)",
            id="delivery-timed-out",
        ),
        # The install ran and failed or timed out.
        pytest.param("Failed", None, o.FAILED, "patch install failed", id="failed-no-state"),
        pytest.param(
            "Failed",
            {**INSTALLED, "FailedCount": 0},
            o.FAILED,
            "patch install failed",
            id="failed-zero-failed-count",
        ),
        pytest.param(
            "Failed",
            {**INSTALLED, "FailedCount": 3},
            o.FAILED,
            "patch install failed (3 patch(es) failed)",
            id="failed-with-count",
        ),
        pytest.param("TimedOut", None, o.FAILED, "patch install timed out", id="timed-out-no-state"),
        pytest.param(
            ("TimedOut", "Execution Timed Out"),
            {"FailedCount": 2},
            o.FAILED,
            "patch install timed out",
            id="execution-timed-out-with-count",
        ),
        # Still going when the stage was verified.
        pytest.param("InProgress", INSTALLED, o.NOT_RUN, "command still InProgress", id="in-progress"),
        pytest.param("Pending", None, o.NOT_RUN, "command still Pending", id="pending"),
        pytest.param("Delayed", None, o.NOT_RUN, "command still Delayed", id="delayed"),
        pytest.param("Cancelling", None, o.NOT_RUN, "command still Cancelling", id="cancelling"),
    ],
)
def test_classify_patched_host(status, state, expected_state, expected_reason):
    # A (Status, StatusDetails) pair where the details matter, as SSM reports timeouts.
    status, details = status if isinstance(status, tuple) else (status, None)
    result = classify_patched_host(status, state, details)
    assert result == (expected_state, expected_reason)
    assert result[0] in o.FINAL_STATES


# --- after a successful install: the plan's items decide; counts only where nothing planned applies ------
# DescribeInstancePatches states per "Understanding patch compliance state values"
# (https://docs.aws.amazon.com/systems-manager/latest/userguide/about-patch-compliance-states.html);
# patch-state counts are measured against InstancePatchState.BaselineId, so they speak for the host only
# when that is the tenant's own baseline.
OURS = "pb-0tenant"
AFTER = {**INSTALLED, "BaselineId": OURS}


@pytest.mark.parametrize(
    ("state", "planned", "kwargs", "expected"),
    [
        pytest.param(AFTER, {"a": "Installed", "b": "Installed"}, {}, (o.PATCHED, None), id="all-installed"),
        pytest.param(
            {**AFTER, "MissingCount": 7, "BaselineId": "pb-default"},
            {"a": "Installed"},
            {},
            (o.PATCHED, None),
            id="planned-installed-counts-of-another-baseline-do-not-decide",
        ),
        pytest.param(
            AFTER,
            {"a": "Installed", "b": "Missing"},
            {},
            (o.NON_COMPLIANT, "1 planned patch(es) still missing: b"),
            id="planned-missing",
        ),
        pytest.param(
            AFTER,
            {"a": "Failed", "b": "Missing"},
            {},
            (o.FAILED, "1 planned patch(es) failed to install: a"),
            id="failed-beats-missing",
        ),
        pytest.param(
            AFTER,
            {"a": "InstalledPendingReboot"},
            {},
            (o.NON_COMPLIANT, "1 planned patch(es) installed but pending a reboot: a"),
            id="pending-reboot",
        ),
        pytest.param(
            AFTER,
            {"a": "OtherVersion"},
            {},
            (o.NON_COMPLIANT, "1 planned patch(es) reported at another version than the plan's: a"),
            id="other-version",
        ),
        # Nothing planned applies to the host: SSM's own assessment against the tenant's baseline decides.
        pytest.param(
            AFTER, {"a": "NotReported"}, {"tenant_baseline_id": OURS}, (o.PATCHED, None), id="none-apply"
        ),
        pytest.param(AFTER, {}, {"tenant_baseline_id": OURS}, (o.PATCHED, None), id="nothing-planned-clean"),
        pytest.param(
            {**AFTER, "MissingCount": 2},
            {},
            {"tenant_baseline_id": OURS},
            (o.NON_COMPLIANT, "2 patch(es) the tenant's baseline approves are missing, none of them planned"),
            id="nothing-planned-missing",
        ),
        pytest.param(
            {**AFTER, "FailedCount": 1},
            {},
            {"tenant_baseline_id": OURS},
            (o.FAILED, "1 approved patch(es) failed to install"),
            id="nothing-planned-failed",
        ),
        pytest.param(
            {**AFTER, "BaselineId": "pb-default"},
            {},
            {"tenant_baseline_id": OURS},
            (
                o.NOT_ASSESSED,
                "nothing planned, and the patch state was measured against baseline pb-default, "
                "not the tenant's pb-0tenant",
            ),
            id="nothing-planned-default-baseline",
        ),
        pytest.param(
            AFTER,
            {},
            {},
            (o.NOT_ASSESSED, "nothing planned, and no tenant baseline to judge the host's patch state by"),
            id="nothing-planned-no-baseline",
        ),
        pytest.param(
            None, {}, {}, (o.NOT_ASSESSED, "no patch state recorded after the install"), id="no-state"
        ),
        pytest.param(
            SCANNED,
            {"a": "Installed"},
            {},
            (o.NOT_ASSESSED, "the last patch operation SSM recorded is Scan, from before the install"),
            id="last-op-scan-unknown-time",
        ),
        pytest.param(
            {**SCANNED, "OperationEndTime": "2026-11-22T03:00:00+00:00"},
            {"a": "Installed"},
            {"installed_after": "2026-11-22T03:05:00+00:00"},
            (o.NOT_ASSESSED, "the last patch operation SSM recorded is Scan, from before the install"),
            id="last-op-scan-before-install",
        ),
        pytest.param(
            {**SCANNED, "OperationEndTime": dt.datetime(2026, 11, 22, 3, 20, tzinfo=dt.UTC)},
            {"a": "Installed"},
            {"installed_after": "2026-11-22T03:05:00+00:00"},
            (o.PATCHED, None),
            id="a-scan-after-the-install-is-current",
        ),
        pytest.param(
            {**SCANNED, "OperationEndTime": "2026-11-22 03:20:00+00:00"},
            {"a": "Missing"},
            {"installed_after": "2026-11-22T03:05:00+00:00"},
            (o.NON_COMPLIANT, "1 planned patch(es) still missing: a"),
            id="a-later-scan-still-judges-the-plan",
        ),
        pytest.param(
            AFTER,
            {"a": "Installed"},
            {"unreadable": "DescribeInstancePatches: throttled"},
            (o.NOT_ASSESSED, "patch state could not be read: DescribeInstancePatches: throttled"),
            id="unreadable",
        ),
    ],
)
def test_classify_patched_host_after_success(state, planned, kwargs, expected):
    assert classify_patched_host("Success", state, planned=planned, **kwargs) == expected


def test_a_host_sent_nothing_is_judged_by_its_assessment_not_its_invocation():
    scanned = {**SCANNED, "BaselineId": OURS}
    assert classify_patched_host(None, scanned, nothing_to_install=True, tenant_baseline_id=OURS) == (
        o.PATCHED,
        None,
    )
    missing = {**scanned, "MissingCount": 1}
    assert classify_patched_host(None, missing, nothing_to_install=True, tenant_baseline_id=OURS)[0] == (
        o.NON_COMPLIANT
    )


def _states(**counts: int) -> dict[str, str]:
    states: dict[str, str] = {}
    for state, count in counts.items():
        states.update({f"i-{state}-{n:03d}": state for n in range(count)})
    return states


@pytest.mark.parametrize(
    ("max_errors", "states", "succeeded", "allowed", "reason"),
    [
        # Percentages round down.
        pytest.param("25%", _states(patched=3, failed=1), True, 1, None, id="25pct-of-4-one-failure"),
        pytest.param(
            "25%",
            _states(patched=2, failed=2),
            False,
            1,
            "2 of 4 hosts failed; max errors 1",
            id="25pct-of-4-two-failures",
        ),
        pytest.param("10%", _states(patched=18, failed=1), True, 1, None, id="10pct-of-19"),
        pytest.param(
            "10%",
            _states(patched=17, failed=1, non_compliant=1),
            False,
            1,
            "2 of 19 hosts failed; max errors 1",
            id="10pct-of-19-non-compliant-counts",
        ),
        pytest.param(
            "10%",
            _states(patched=8, failed=1),
            False,
            0,
            "1 of 9 hosts failed; max errors 0",
            id="10pct-of-9-rounds-to-zero",
        ),
        pytest.param("100%", _states(failed=3), True, 3, None, id="100pct"),
        # Absolute counts are taken as written.
        pytest.param("1", _states(patched=99, non_compliant=1), True, 1, None, id="absolute-1-at-limit"),
        pytest.param(
            "1",
            _states(patched=98, failed=2),
            False,
            1,
            "2 of 100 hosts failed; max errors 1",
            id="absolute-1-above",
        ),
        pytest.param(
            "0", _states(patched=4, failed=1), False, 0, "1 of 5 hosts failed; max errors 0", id="absolute-0"
        ),
        pytest.param("0", _states(patched=5), True, 0, None, id="absolute-0-clean"),
        # Hosts that were never patched fail the stage even inside the error budget.
        pytest.param(
            "25%",
            _states(patched=4, not_run=1),
            False,
            1,
            "1 of 5 hosts were not patched",
            id="not-run-fails-stage",
        ),
        pytest.param("100%", _states(not_run=2), False, 2, "2 of 2 hosts were not patched", id="all-not-run"),
        pytest.param(
            "25%",
            _states(patched=1, failed=2, not_run=1),
            False,
            1,
            "2 of 4 hosts failed; max errors 1",
            id="errors-reported-before-not-run",
        ),
        # A host nobody could assess after its install is an error: nothing shows it is healthy.
        pytest.param(
            "0",
            {"h1": o.PATCHED, "h2": o.NOT_ASSESSED},
            False,
            0,
            "1 of 2 hosts failed; max errors 0",
            id="not-assessed-is-an-error",
        ),
        # States that are neither errors nor not-run count as targets only.
        pytest.param("0", _states(patched=1, excepted=1), True, 0, None, id="excepted-is-not-an-error"),
        # No targets: nothing failed.
        pytest.param("25%", {}, True, 0, None, id="zero-targets-percent"),
        pytest.param("3", {}, True, 3, None, id="zero-targets-absolute"),
    ],
)
def test_stage_verdict(max_errors, states, succeeded, allowed, reason):
    verdict = stage_verdict(states, RateControl(max_concurrency="10%", max_errors=max_errors))
    errors = sum(1 for s in states.values() if s in (o.FAILED, o.NON_COMPLIANT, o.NOT_ASSESSED))
    assert verdict == StageVerdict(succeeded, len(states), errors, allowed, reason)


def test_stage_verdict_uses_the_tenants_rate_control(alpha):
    # cu_alpha: nonprod tolerates 25%, prod 5%; the same results pass one stage and fail the other.
    states = _states(patched=9, failed=1)
    assert stage_verdict(states, alpha.environment("nonprod").rate_control).succeeded is True
    prod = stage_verdict(states, alpha.environment("prod").rate_control)
    assert (prod.succeeded, prod.allowed_errors, prod.reason) == (
        False,
        0,
        "1 of 10 hosts failed; max errors 0",
    )


# --- Azure Arc and GCP results on the same final states -------------------------------------------

from patchcycle.domain.outcomes import (  # noqa: E402
    classify_arc_host,
    classify_gcp_host,
    planned_still_missing,
)

OK_RESULT = {
    "status": "Succeeded",
    "failedPatchCount": 0,
    "installedPatchCount": 3,
    "rebootStatus": "Completed",
}


@pytest.mark.parametrize(
    ("sent", "still", "expected"),
    [
        ({"operation": "op", "result": OK_RESULT}, [], ("patched", None)),
        ({"not_sent": True}, None, ("not_run", "not sent: the stage's error budget was exhausted first")),
        (
            {"operation": "op", "result": None},
            None,
            ("failed", "installPatches did not finish before the wait ended"),
        ),
        (
            {
                "operation": "op",
                "result": {"status": "Failed", "errorDetails": {"message": "machine disconnected"}},
            },
            None,
            ("failed", "installPatches failed: machine disconnected"),
        ),
        # HTTP 200 on the LRO is not success: the body's counts decide.
        (
            {"operation": "op", "result": {**OK_RESULT, "failedPatchCount": 2}},
            [],
            ("failed", "2 patch(es) failed to install"),
        ),
        (
            {"operation": "op", "result": {**OK_RESULT, "rebootStatus": "Required"}},
            [],
            ("non_compliant", "reboot required after the install"),
        ),
        (
            {"operation": "op", "result": OK_RESULT},
            ["USN-1"],
            ("non_compliant", "1 planned patch(es) still missing: USN-1"),
        ),
        (
            {"operation": "op", "result": OK_RESULT},
            None,
            ("not_assessed", "no patch assessment of the machine could be read after the install"),
        ),
        (
            {"nothing_to_install": True},
            None,
            ("not_assessed", "nothing planned, and no patch assessment of the machine could be read"),
        ),
        ({"nothing_to_install": True}, [], ("patched", None)),
    ],
)
def test_classify_arc_host(sent, still, expected):
    assert classify_arc_host(sent, still) == expected


def test_an_arc_machine_with_nothing_planned_is_compliant_only_when_nothing_approvable_is_missing():
    final, reason = classify_arc_host({"nothing_to_install": True}, [], approvable_missing=["openssl 3.0.7"])
    assert final == "non_compliant" and "1 update(s) the baseline may approve: openssl 3.0.7" in reason


def test_an_arc_install_outside_the_plan_is_not_compliant():
    final, reason = classify_arc_host(
        {"operation": "op", "result": OK_RESULT}, [], outside_plan=["curl 7.76.1-29.el9_4"]
    )
    assert final == "non_compliant"
    assert reason == "installed 1 update(s) outside the plan: curl 7.76.1-29.el9_4"


@pytest.mark.parametrize(
    ("sent", "still", "expected"),
    [
        ({"state": "SUCCEEDED"}, [], ("patched", None)),
        (
            {"state": "SUCCEEDED_REBOOT_REQUIRED"},
            [],
            ("non_compliant", "patched, but a reboot is still required"),
        ),
        (
            {"state": "FAILED", "failure_reason": "apt-get exited 100"},
            None,
            ("failed", "patch job failed on the instance: apt-get exited 100"),
        ),
        ({"state": "NO_AGENT_DETECTED"}, None, ("failed", "no OS Config agent answered the patch job")),
        (
            {
                "state": "PENDING",
                "job_state": "COMPLETED_WITH_ERRORS",
                "job_error": "disruption budget exceeded in us-central1-a",
            },
            None,
            (
                "not_run",
                "not patched: the patch job stopped before this instance "
                "(disruption budget exceeded in us-central1-a)",
            ),
        ),
        ({}, None, ("not_run", "no patch job was sent for this instance")),
    ],
)
def test_classify_gcp_host(sent, still, expected):
    assert classify_gcp_host(sent, still) == expected


def test_planned_still_missing_ignores_patches_outside_the_plan():
    assert planned_still_missing(["A", "Z"], ["A", "B"]) == ["A"]
    assert planned_still_missing(None, ["A"]) is None


def test_a_host_back_on_the_planned_kernel_with_a_healthy_sensor_passes_its_reboot() -> None:
    assert (
        o.reboot_verdict(
            back=True,
            agent="Online",
            kernel="5.10.230",
            expected_kernel="5.10.230",
            rfm=False,
            timeout_minutes=30,
        )
        is None
    )


def test_a_host_not_back_within_the_timeout_is_failed_with_its_agent_state() -> None:
    reason = o.reboot_verdict(
        back=False,
        agent="ConnectionLost",
        kernel=None,
        expected_kernel="5.10.230",
        rfm=None,
        timeout_minutes=0.5,
    )
    assert reason == "did not come back from its reboot within 0.5 minutes (agent ConnectionLost)"
    assert "agent not seen" in o.reboot_verdict(
        back=False, agent=None, kernel=None, expected_kernel=None, rfm=None, timeout_minutes=30
    )


def test_a_host_back_on_another_kernel_or_with_a_blind_sensor_is_failed() -> None:
    assert (
        o.reboot_verdict(
            back=True,
            agent="Connected",
            kernel="5.10.220",
            expected_kernel="5.10.230",
            rfm=False,
            timeout_minutes=30,
        )
        == "running kernel 5.10.220 after the reboot, expected 5.10.230"
    )
    assert (
        o.reboot_verdict(
            back=True,
            agent="ACTIVE",
            kernel="5.10.230",
            expected_kernel="5.10.230",
            rfm=True,
            timeout_minutes=30,
        )
        == "Falcon sensor in reduced-functionality mode after the reboot"
    )


def test_a_kernel_no_source_reports_is_not_judged() -> None:
    assert (
        o.reboot_verdict(
            back=True, agent="Online", kernel=None, expected_kernel="5.10.230", rfm=None, timeout_minutes=30
        )
        is None
    )


def test_an_arc_install_whose_answer_was_lost_is_judged_by_the_assessment():
    lost = {"answer_lost": True, "operation": None, "result": None}
    assert classify_arc_host(lost, []) == (o.PATCHED, None)
    final, reason = classify_arc_host(lost, ["RHSA-1"])
    assert final == o.NON_COMPLIANT and "not sent again" in reason
    final, reason = classify_arc_host(lost, None)
    assert final == o.NOT_ASSESSED and "answer was lost" in reason


def test_a_failed_health_gate_fails_a_stage_whose_hosts_all_patched() -> None:
    from patchcycle.domain.outcomes import stage_with_gates

    stage = {"environment": "staging", "status": "succeeded", "reason": None, "hosts": {"i-1": {}}}
    unhealthy = {"healthy": False, "reasons": ["error rate 12% above 10%", "2 problems open"]}
    folded = stage_with_gates(stage, windows=[], approval=None, health=unhealthy)
    assert (folded["status"], folded["reason"]) == (
        "failed",
        "health gate: error rate 12% above 10%; 2 problems open",
    )
    assert folded["health"] == unhealthy and stage["status"] == "succeeded"  # the record is not changed
    canary = stage_with_gates(stage, windows=[], approval=None, health=unhealthy, canary_only=True)
    assert canary["reason"].startswith("canary health gate: ")


def test_the_gates_are_carried_and_a_healthy_or_already_failed_stage_keeps_its_verdict() -> None:
    from patchcycle.domain.outcomes import stage_with_gates

    window = {"decision": "open", "batch": "stage"}
    approval = {"decision": "approved", "by": "alice"}
    stage = {"environment": "prod", "status": "succeeded", "reason": None, "hosts": {}}
    folded = stage_with_gates(
        stage, windows=[window], approval=approval, health={"healthy": True, "reasons": []}
    )
    assert (folded["status"], folded["windows"], folded["approval"]) == ("succeeded", [window], approval)
    failed = {**stage, "status": "failed", "reason": "3 of 10 hosts failed"}
    kept = stage_with_gates(failed, windows=[], approval=None, health={"healthy": False, "reasons": ["x"]})
    assert (kept["status"], kept["reason"]) == ("failed", "3 of 10 hosts failed")
    bare = stage_with_gates(stage, windows=[], approval=None, health=None)
    assert "windows" not in bare and "approval" not in bare and "health" not in bare


def test_a_rejected_stage_says_the_approvers_reason() -> None:
    from patchcycle.domain.outcomes import rejected_stage

    approval = {"decision": "rejected", "by": "bob"}
    assert rejected_stage("prod", approval, "freeze week") == {
        "environment": "prod",
        "status": "rejected",
        "reason": "not approved: freeze week",
        "hosts": {},
        "approval": approval,
    }
