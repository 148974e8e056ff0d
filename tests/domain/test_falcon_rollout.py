"""The Falcon roll-out as pure policy: who needs an install, upgrade or repair; validation after install;
the Detection-to-Prevention phases; detections and the exclusions they justify; the kernel-held hand-off.

Expected strings and versions are written out by hand, not computed with the code under test.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest

from patchcycle.config.falcon_rollout import PreventionPhase, SensorVersionPolicy
from patchcycle.domain.falcon_rollout import (
    NO_RECORD,
    Approval,
    ExclusionProposal,
    PhaseState,
    classify_hosts,
    command_line_pattern,
    count_detections,
    decide_phase,
    exclusion_problem,
    exclusions_to_apply,
    follow_up_upgrades,
    kernel_held_upgrades,
    listed_versions,
    matched_devices,
    next_cycle_start,
    open_upgrades,
    planned_kernels,
    propose_exclusions,
    rollout_run_before,
    summarise_detections,
    validate_install,
    version_floor,
)
from patchcycle.domain.sensor import attach_falcon

UTC = dt.UTC
EC2 = {"service_provider": "AWS_EC2_V2", "service_provider_account_id": "111111111111"}
LINUX = ["7.12.16500", "7.13.16606", "7.14.16703", "7.15.16807"]
WINDOWS = ["7.14.18408", "7.15.18514"]
BUILDS = [
    *(
        {"build": f"{v.split('.')[-1]}|tagged", "platform": "linux", "sensor_version": v, "stage": "prod"}
        for v in LINUX
    ),
    *(
        {"build": f"{v.split('.')[-1]}|tagged", "platform": "windows", "sensor_version": v, "stage": "prod"}
        for v in WINDOWS
    ),
]
N_1 = SensorVersionPolicy(max_versions_behind=1)
RUNNING = "5.15.0-100-generic"
PLANNED = "5.15.0-126-generic"
SUPPORT = {
    RUNNING: {
        "release": RUNNING,
        "base_package_supported_sensor_versions": ["7.13.16606", "7.14.16703", "7.15.16807"],
    },
    PLANNED: {
        "release": PLANNED,
        "base_package_supported_sensor_versions": ["7.13.16606"],
        "ztl_supported_sensor_versions": ["7.15.16807"],
    },
}


def host(host_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "host_id": host_id,
        "name": kw.pop("name", f"web-{host_id}"),
        "cloud": "aws",
        "account": "111111111111",
        "environment": "nonprod",
        "os_family": "ubuntu_22_04",
        "kernel": RUNNING,
        "agent_kind": "ssm",
        **kw,
    }


def device(host_id: str, version: str = "7.14.16703.0", **kw: Any) -> dict[str, Any]:
    return {
        "device_id": f"aid-{host_id}",
        "hostname": f"web-{host_id}",
        "instance_id": host_id,
        "agent_version": version,
        "platform_name": "Linux",
        "reduced_functionality_mode": kw.pop("rfm", "no"),
        "last_seen": "2026-11-20T10:00:00Z",
        **EC2,
        **kw,
    }


def classify(hosts, devices, policy=N_1, planned=None, support=None, builds=BUILDS):
    needs = classify_hosts(hosts, devices, builds, policy, planned, SUPPORT if support is None else support)
    return {need.host_id: need for need in needs}


# --- versions ----------------------------------------------------------------------------------------


def test_listed_versions_are_the_platforms_distinct_builds_oldest_first():
    builds = [
        *BUILDS,
        {"platform": "linux", "sensor_version": "7.9.16000"},
        {"platform": "Linux", "sensor_version": "7.15.16807"},
    ]
    assert listed_versions(builds, "linux") == ["7.9.16000", *LINUX]
    assert listed_versions(BUILDS, "windows") == WINDOWS


@pytest.mark.parametrize(
    ("policy", "floor", "why"),
    [
        (SensorVersionPolicy(max_versions_behind=0), "7.15.16807", "N-0 of the linux sensor-update builds"),
        (SensorVersionPolicy(max_versions_behind=1), "7.14.16703", "N-1 of the linux sensor-update builds"),
        (SensorVersionPolicy(max_versions_behind=9), "7.12.16500", "N-9 of the linux sensor-update builds"),
        # The stricter rule wins, whichever it is.
        (
            SensorVersionPolicy(max_versions_behind=3, minimum_version="7.13.16606"),
            "7.13.16606",
            "minimum_version",
        ),
        (SensorVersionPolicy(max_versions_behind=0, minimum_version="7.13.16606"), "7.15.16807", "N-0"),
        (
            SensorVersionPolicy(max_versions_behind=None, minimum_version="7.10.1.0"),
            "7.10.1",
            "minimum_version",
        ),
    ],
)
def test_the_version_floor_is_the_stricter_rule(policy, floor, why):
    found = version_floor(policy, LINUX, "linux")
    assert found.version == floor
    assert why in found.reason


def test_without_builds_n_x_cannot_be_applied():
    assert version_floor(N_1, [], "linux").version is None
    assert (
        version_floor(SensorVersionPolicy(minimum_version="7.14.16703"), [], "linux").version == "7.14.16703"
    )


# --- who needs what ------------------------------------------------------------------------------------


def test_a_host_without_a_device_record_needs_an_install_of_the_newest_build():
    need = classify([host("i-1")], [])["i-1"]
    assert (need.action, need.target_version, need.platform) == ("install", "7.15.16807", "linux")
    assert need.reason == "no Falcon device record matched by cloud identity; install 7.15.16807"


def test_a_record_of_another_hosts_identity_is_not_this_hosts_sensor():
    other = device("i-9", hostname="web-i-1")
    need = classify([host("i-1")], [other])["i-1"]
    assert need.action == "install"
    assert "cloud identity is another host's; not matched on hostname alone" in need.reason


def test_an_install_brings_a_sensor_that_runs_the_planned_kernel():
    only_older = {PLANNED: {"base_package_supported_sensor_versions": ["7.14.16703"]}}
    need = classify([host("i-1")], [], planned={"i-1": PLANNED}, support=only_older)["i-1"]
    assert need.target_version == "7.14.16703"


def test_a_sensor_older_than_the_policy_is_upgraded():
    need = classify([host("i-1")], [device("i-1", "7.13.16606.0")])["i-1"]
    assert (need.action, need.target_version, need.device_id) == ("upgrade", "7.15.16807", "aid-i-1")
    assert (
        need.reason == "sensor 7.13.16606.0 is older than 7.14.16703 (N-1 of the linux sensor-update builds)"
    )


def test_a_sensor_at_the_floor_is_ok():
    need = classify([host("i-1")], [device("i-1", "7.14.16703.0")])["i-1"]
    assert (need.action, need.target_version) == ("ok", None)
    assert (
        need.reason
        == "sensor 7.14.16703.0 meets the policy (at least 7.14.16703, N-1 of the linux sensor-update builds)"
    )


def test_a_minimum_version_stricter_than_n_x_upgrades():
    policy = SensorVersionPolicy(max_versions_behind=3, minimum_version="7.14.16703")
    need = classify([host("i-1")], [device("i-1", "7.13.16606.0")], policy=policy)["i-1"]
    assert need.action == "upgrade" and "older than 7.14.16703 (the tenant's minimum_version)" in need.reason


def test_a_windows_host_is_judged_by_the_windows_builds():
    need = classify([host("i-1", os_family="windows_2019")], [device("i-1", "7.14.18408.0")])["i-1"]
    assert (need.action, need.platform) == ("ok", "windows")
    old = classify([host("i-1", os_family="windows_2019")], [device("i-1", "7.13.18000.0")])["i-1"]
    assert (old.action, old.target_version) == ("upgrade", "7.15.18514")


def test_a_sensor_that_does_not_run_the_planned_kernel_is_upgraded_to_one_that_does():
    # The kernel-held case: 7.14 meets the policy but not the kernel the next cycle installs.
    need = classify([host("i-1")], [device("i-1", "7.14.16703.0")], planned={"i-1": PLANNED})["i-1"]
    assert (need.action, need.target_version) == ("upgrade", "7.15.16807")
    assert need.reason == (
        "sensor 7.14.16703.0 does not support the planned kernel 5.15.0-126-generic "
        "(the cycle holds that kernel)"
    )


def test_a_planned_kernel_the_sensor_runs_or_the_host_already_runs_changes_nothing():
    assert (
        classify([host("i-1")], [device("i-1", "7.15.16807.0")], planned={"i-1": PLANNED})["i-1"].action
        == "ok"
    )
    assert (
        classify([host("i-1")], [device("i-1", "7.14.16703.0")], planned={"i-1": RUNNING})["i-1"].action
        == "ok"
    )


def test_a_planned_kernel_falcon_does_not_know_is_noted_not_upgraded():
    need = classify([host("i-1")], [device("i-1")], planned={"i-1": "6.8.0-1-generic"})["i-1"]
    assert need.action == "ok"
    assert "planned kernel 6.8.0-1-generic is unknown to Falcon's support table" in need.reason


def test_a_planned_kernel_no_acceptable_build_runs_is_noted_not_upgraded():
    older_only = {PLANNED: {"base_package_supported_sensor_versions": ["7.12.16500"]}}
    need = classify([host("i-1")], [device("i-1")], planned={"i-1": PLANNED}, support=older_only)["i-1"]
    assert need.action == "ok"
    assert "no listed sensor meeting the policy supports planned kernel 5.15.0-126-generic" in need.reason


def test_a_sensor_in_rfm_on_a_kernel_it_does_not_run_is_upgraded():
    running_needs_715 = {RUNNING: {"base_package_supported_sensor_versions": ["7.15.16807"]}}
    need = classify([host("i-1")], [device("i-1", rfm="yes")], support=running_needs_715)["i-1"]
    assert (need.action, need.remedy, need.target_version) == ("rfm", "upgrade", "7.15.16807")
    assert need.reason == (
        "sensor 7.14.16703.0 is in reduced-functionality mode: it does not support the running kernel "
        "5.15.0-100-generic; upgrade to 7.15.16807"
    )


def test_a_sensor_in_rfm_that_runs_its_kernel_is_reinstalled():
    need = classify([host("i-1")], [device("i-1", rfm="yes")])["i-1"]
    assert (need.action, need.remedy, need.target_version) == ("rfm", "reinstall", "7.14.16703")
    assert "reinstall it" in need.reason


def test_a_sensor_in_rfm_and_too_old_is_upgraded():
    need = classify([host("i-1")], [device("i-1", "7.13.16606.0", rfm="yes")])["i-1"]
    assert (need.action, need.remedy, need.target_version) == ("rfm", "upgrade", "7.15.16807")


def test_a_sensor_in_rfm_is_never_downgraded():
    older_only = {RUNNING: {"base_package_supported_sensor_versions": ["7.13.16606"]}}
    policy = SensorVersionPolicy(max_versions_behind=3)
    need = classify([host("i-1")], [device("i-1", rfm="yes")], policy=policy, support=older_only)["i-1"]
    assert (need.action, need.remedy, need.target_version) == ("rfm", "reinstall", None)


def test_a_record_without_a_sensor_version_is_upgraded():
    need = classify([host("i-1")], [device("i-1", "")])["i-1"]
    assert (need.action, need.reason, need.target_version) == (
        "upgrade",
        "the device record reports no sensor version",
        "7.15.16807",
    )


def test_a_sensor_in_rfm_that_no_build_fixes_is_reinstalled_and_its_kernel_held():
    nobody = {RUNNING: {"base_package_supported_sensor_versions": ["7.16.17000"]}}
    need = classify([host("i-1")], [device("i-1", rfm="yes")], support=nobody)["i-1"]
    assert (need.action, need.remedy, need.target_version) == ("rfm", "reinstall", None)
    assert "no listed sensor meeting the policy does; reinstall, and hold the kernel" in need.reason


def test_what_takes_no_sensor_is_skipped_with_its_reason():
    rds = host("db-1", agent_kind="rds", os_family="rds")
    odd = host("i-2", os_family="", platform="FreeBSD 14")
    needs = classify([rds, odd], [])
    assert needs["db-1"].action == "skip" and "RDS DB instance" in needs["db-1"].reason
    assert (
        needs["i-2"].action == "skip"
        and "platform 'FreeBSD 14' is neither Linux nor Windows" in needs["i-2"].reason
    )


def test_a_host_of_no_known_family_takes_its_platform_from_its_device_record():
    need = classify([host("i-1", os_family="")], [device("i-1", "7.14.18408.0", platform_name="Windows")])[
        "i-1"
    ]
    assert (need.action, need.platform) == ("ok", "windows")


def test_without_builds_only_the_minimum_applies_and_the_reason_says_so():
    need = classify([host("i-1")], [device("i-1", "7.1.1.0")], builds=[])["i-1"]
    assert need.action == "ok"
    assert "no linux sensor-update builds listed, so N-x cannot be applied" in need.reason


def test_every_host_is_classified_in_inventory_order():
    hosts = [host("i-1"), host("i-2"), host("db-1", agent_kind="rds")]
    needs = classify_hosts(hosts, [device("i-2")], BUILDS, N_1)
    assert [(n.host_id, n.action) for n in needs] == [("i-1", "install"), ("i-2", "ok"), ("db-1", "skip")]
    assert needs[1].to_dict()["device_id"] == "aid-i-2"


# --- validation after install --------------------------------------------------------------------------

POLICIES = {
    "prevention": {"policy_type": "prevention", "policy_id": "prev-np", "applied": True},
    "sensor_update": {"policy_type": "sensor-update", "policy_id": "su-np", "applied": True},
}


def validated(record: dict[str, Any] | None, row: dict[str, Any] | None = None, expected: str = "7.15.16807"):
    return validate_install(
        row or host("i-1"),
        record,
        expected_version=expected,
        host_group_id="grp-np",
        prevention_policy_id="prev-np",
        sensor_update_policy_id="su-np",
    )


def healthy(**kw: Any) -> dict[str, Any]:
    return device(
        "i-1", kw.pop("version", "7.15.16807.0"), **{"groups": ["grp-np"], "device_policies": POLICIES, **kw}
    )


def test_a_healthy_install_passes():
    result = validated(healthy())
    assert (result.passed, result.reasons, result.device_id, result.sensor_version) == (
        True,
        (),
        "aid-i-1",
        "7.15.16807.0",
    )
    # The sensor-update policy may already have moved the sensor on.
    assert validated(healthy(version="7.16.17000.0")).passed


def test_no_record_in_the_tenants_cid_fails_and_says_another_cid_looks_the_same():
    result = validated(None)
    assert not result.passed
    assert result.reasons == (
        "no device record in the tenant's CID (not registered yet, or registered under another CID)",
    )
    assert NO_RECORD == result.reasons[0]


def test_a_record_of_another_hosts_identity_is_named_too():
    row = attach_falcon([host("i-1")], [device("i-9", hostname="web-i-1")])[0]
    result = validated(None, row)
    assert len(result.reasons) == 2 and "cloud identity is another host's" in result.reasons[1]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (healthy(version="7.14.16703.0"), "sensor 7.14.16703.0, expected 7.15.16807 or newer"),
        (healthy(agent_version=""), "the device record reports no sensor version"),
        (healthy(rfm="yes"), "sensor 7.15.16807.0 is in reduced-functionality mode"),
        (healthy(groups=["grp-prod"]), "not in host group grp-np (its groups: grp-prod)"),
        (healthy(groups=[]), "not in host group grp-np (its groups: none)"),
        (
            healthy(device_policies={**POLICIES, "prevention": {**POLICIES["prevention"], "applied": False}}),
            "prevention policy prev-np is assigned but not applied "
            "(device_policies.prevention.applied false)",
        ),
        (
            healthy(
                device_policies={
                    **POLICIES,
                    "prevention": {**POLICIES["prevention"], "policy_id": "prev-prod"},
                }
            ),
            "prevention policy prev-prod is assigned, expected prev-np",
        ),
        (
            healthy(
                device_policies={**POLICIES, "sensor_update": {**POLICIES["sensor_update"], "applied": False}}
            ),
            "sensor_update policy su-np is assigned but not applied "
            "(device_policies.sensor_update.applied false)",
        ),
        (
            healthy(device_policies={"prevention": POLICIES["prevention"]}),
            "no sensor_update policy on the device record (expected su-np)",
        ),
    ],
)
def test_each_failed_check_is_a_reason(record, reason):
    result = validated(record)
    assert not result.passed
    assert result.reasons == (reason,)


def test_every_reason_is_given_at_once():
    result = validated(healthy(version="7.13.16606.0", rfm="yes", groups=[], device_policies={}))
    assert len(result.reasons) == 5
    assert result.to_dict()["reasons"] == list(result.reasons)


def test_hosts_are_validated_against_the_record_matched_by_cloud_identity():
    pairs = matched_devices([host("i-1"), host("i-2")], [device("i-2"), device("i-9", hostname="web-i-1")])
    assert [(row["host_id"], record and record["device_id"]) for row, record in pairs] == [
        ("i-1", None),
        ("i-2", "aid-i-2"),
    ]


# --- phases ----------------------------------------------------------------------------------------------

SLIDER = {
    "id": "CloudAntiMalware",
    "type": "mlslider",
    "value": {"detection": "MODERATE", "prevention": "MODERATE"},
}
PHASES = [
    PreventionPhase(
        name="non-prod", environments=["nonprod", "staging"], settings=[SLIDER], detection_threshold=2
    ),
    PreventionPhase(name="prod", environments=["prod"], settings=[SLIDER]),
]
ENTERED = dt.datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def in_phase(name: str = "non-prod", *approvals: Approval) -> PhaseState:
    return PhaseState(phase=name, entered_at=ENTERED, approvals=approvals)


def test_no_phases_is_done():
    assert decide_phase("cu_test", [], PhaseState(), 0, ENTERED).action == "done"


def test_the_first_phase_needs_an_approval():
    found = decide_phase("cu_test", PHASES, PhaseState(), 0, ENTERED)
    assert (found.action, found.phase, found.next_phase, found.approval) == (
        "promote",
        None,
        "non-prod",
        None,
    )
    assert found.reason.endswith("promoting to 'non-prod' needs approval")
    yes = Approval("non-prod", "J. Alvarez", ENTERED)
    assert decide_phase("cu_test", PHASES, PhaseState(approvals=(yes,)), 0, ENTERED).approval == yes


def test_a_phase_is_monitored_for_its_period():
    found = decide_phase("cu_test", PHASES, in_phase(), 1, ENTERED + dt.timedelta(days=10))
    assert (found.action, found.next_phase, found.days_left) == ("stay", "prod", 4.0)
    assert found.monitoring_ends == dt.datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


def test_detections_above_the_threshold_block_the_next_phase_at_once_and_page_once():
    during = decide_phase("cu_test", PHASES, in_phase(), 3, ENTERED + dt.timedelta(days=1))
    after = decide_phase("cu_test", PHASES, in_phase(), 40, ENTERED + dt.timedelta(days=30))
    assert (during.action, during.next_phase) == ("blocked", "prod")
    assert during.reason == (
        "3 detections on phase 'non-prod''s hosts since 2026-11-01T09:00:00+00:00 exceed its threshold of 2; "
        "phase 'prod' is not promoted"
    )
    # One incident for the phase's entry, however many runs see it blocked.
    assert (
        during.incident_key
        == after.incident_key
        == "patchcycle/cu_test/2026-11-01/falcon-prevention-non-prod"
    )
    again = replace(in_phase(), entered_at=ENTERED + dt.timedelta(days=20))
    assert decide_phase("cu_test", PHASES, again, 3, ENTERED + dt.timedelta(days=21)).incident_key.endswith(
        "2026-11-21/falcon-prevention-non-prod"
    )


def test_detections_at_the_threshold_do_not_block():
    assert decide_phase("cu_test", PHASES, in_phase(), 2, ENTERED + dt.timedelta(days=15)).action == "promote"


def test_after_monitoring_the_next_phase_is_promoted_behind_an_approval():
    now = ENTERED + dt.timedelta(days=14)
    asked = decide_phase("cu_test", PHASES, in_phase(), 0, now)
    assert (asked.action, asked.phase, asked.next_phase, asked.approval) == (
        "promote",
        "non-prod",
        "prod",
        None,
    )
    yes = Approval("prod", "J. Alvarez", ENTERED + dt.timedelta(days=13))
    approved = decide_phase("cu_test", PHASES, in_phase("non-prod", yes), 0, now)
    assert approved.approval == yes
    assert approved.reason.endswith("promotion to 'prod' approved by J. Alvarez at 2026-11-14T09:00:00+00:00")


def test_an_approval_given_before_the_phase_was_entered_does_not_count():
    stale = Approval("prod", "J. Alvarez", ENTERED - dt.timedelta(days=1))
    found = decide_phase("cu_test", PHASES, in_phase("non-prod", stale), 0, ENTERED + dt.timedelta(days=14))
    assert (found.action, found.approval) == ("promote", None)


def test_only_an_approval_of_the_next_phase_counts():
    current = Approval("non-prod", "J. Alvarez", ENTERED + dt.timedelta(days=2))
    found = decide_phase("cu_test", PHASES, in_phase("non-prod", current), 0, ENTERED + dt.timedelta(days=14))
    assert (found.action, found.approval) == ("promote", None)


def test_the_latest_answer_counts_and_a_rejection_keeps_the_tenant_where_it_is():
    yes = Approval("prod", "J. Alvarez", ENTERED + dt.timedelta(days=2))
    no = Approval("prod", "K. Osei", ENTERED + dt.timedelta(days=3), "rejected")
    now = ENTERED + dt.timedelta(days=14)
    found = decide_phase("cu_test", PHASES, in_phase("non-prod", yes, no), 0, now)
    assert found.action == "stay"
    assert found.reason.endswith("promotion to 'prod' was rejected by K. Osei at 2026-11-04T09:00:00+00:00")
    later = Approval("prod", "J. Alvarez", ENTERED + dt.timedelta(days=4))
    assert decide_phase("cu_test", PHASES, in_phase("non-prod", yes, no, later), 0, now).approval == later


def test_the_last_phase_monitored_without_detections_is_done():
    found = decide_phase("cu_test", PHASES, in_phase("prod"), 0, ENTERED + dt.timedelta(days=14))
    assert (found.action, found.phase, found.next_phase) == ("done", "prod", None)
    blocked = decide_phase("cu_test", PHASES, in_phase("prod"), 1, ENTERED + dt.timedelta(days=14))
    assert blocked.action == "blocked" and blocked.reason.endswith("the last phase is not done")


@pytest.mark.parametrize(
    ("state", "detections", "now", "says"),
    [
        (in_phase("canary"), 0, ENTERED, "names phase 'canary', which the tenant file no longer declares"),
        (PhaseState(phase="prod"), 0, ENTERED, "names phase 'prod' but not when it was entered"),
        (in_phase(), -1, ENTERED, "detections must be zero or more, got -1"),
        (in_phase(), 0, ENTERED.replace(tzinfo=None), "now must be timezone-aware"),
    ],
)
def test_a_state_that_cannot_be_decided_is_an_error(state, detections, now, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        decide_phase("cu_test", PHASES, state, detections, now)


def test_a_decision_is_json_ready():
    yes = Approval("prod", "J. Alvarez", ENTERED + dt.timedelta(days=2))
    found = decide_phase(
        "cu_test", PHASES, in_phase("non-prod", yes), 0, ENTERED + dt.timedelta(days=14)
    ).to_dict()
    assert found["approval"] == {
        "subject": "prod",
        "by": "J. Alvarez",
        "at": "2026-11-03T09:00:00+00:00",
        "decision": "approved",
    }


def test_a_held_phase_is_entered_again_behind_an_approval():
    found = decide_phase("cu_test", PHASES, in_phase(), 3, ENTERED + dt.timedelta(days=2), reenter="non-prod")
    assert (found.action, found.phase, found.next_phase, found.approval) == (
        "reenter",
        "non-prod",
        "non-prod",
        None,
    )
    assert found.reason == (
        "3 detections on phase 'non-prod''s hosts since 2026-11-01T09:00:00+00:00 exceed its threshold of 2; "
        "phase 'prod' is not promoted; entering phase 'non-prod' again (its detections counted anew from "
        "then) needs approval"
    )
    # The hold's incident, not a new one: re-entering pages nobody.
    assert found.incident_key == "patchcycle/cu_test/2026-11-01/falcon-prevention-non-prod"
    assert found.to_dict()["action"] == "reenter"
    # The last phase held can be entered again too.
    last = decide_phase(
        "cu_test", PHASES, in_phase("prod"), 1, ENTERED + dt.timedelta(days=2), reenter="prod"
    )
    assert (last.action, last.phase, last.next_phase) == ("reenter", "prod", "prod")


@pytest.mark.parametrize(
    ("state", "detections", "reason"),
    [
        (in_phase("prod"), 5, "phase 'non-prod' is not entered again: the tenant is in phase 'prod'"),
        (
            PhaseState(),
            5,
            "phase 'non-prod' is not entered again: the tenant is in Detection everywhere "
            "(no phase entered yet)",
        ),
        (
            in_phase(),
            2,
            "phase 'non-prod' is not entered again: it is not held (2 detections since "
            "2026-11-01T09:00:00+00:00, threshold 2)",
        ),
    ],
)
def test_entering_a_phase_again_is_refused_unless_it_is_the_current_one_and_held(state, detections, reason):
    found = decide_phase("cu_test", PHASES, state, detections, ENTERED + dt.timedelta(days=20), "non-prod")
    assert (found.action, found.reason, found.approval, found.incident_key) == ("refused", reason, None, None)


def test_entering_a_phase_the_tenant_does_not_declare_is_an_error():
    with pytest.raises(ValueError, match=re.escape("declares no such phase (phases: non-prod, prod)")):
        decide_phase("cu_test", PHASES, in_phase(), 5, ENTERED, reenter="canary")


def test_a_reentered_phase_held_again_is_a_new_incident_even_the_same_day():
    first = decide_phase("cu_test", PHASES, in_phase(), 3, ENTERED + dt.timedelta(hours=2))
    again = PhaseState(
        phase="non-prod", entered_at=ENTERED + dt.timedelta(hours=5, seconds=7), reentered=True
    )
    held = decide_phase("cu_test", PHASES, again, 3, ENTERED + dt.timedelta(hours=8))
    assert held.action == "blocked"
    assert first.incident_key == "patchcycle/cu_test/2026-11-01/falcon-prevention-non-prod"
    assert held.incident_key == "patchcycle/cu_test/2026-11-01/falcon-prevention-non-prod-reentered-140007"
    # The re-entry's count and monitoring start from its own entry.
    quiet = decide_phase("cu_test", PHASES, again, 0, ENTERED + dt.timedelta(hours=8))
    assert (quiet.action, quiet.monitoring_ends) == ("stay", dt.datetime(2026, 11, 15, 14, 0, 7, tzinfo=UTC))


# --- detections and exclusions -------------------------------------------------------------------------

SSM_SCRIPT = (
    "/bin/sh /var/lib/amazon/ssm/i-0abc123def4567890/document/orchestration/"
    "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10/awsrunShellScript/0.awsrunShellScript/_script.sh"
)


def alert(device_id: str, when: str, **kw: Any) -> dict[str, Any]:
    return {
        "composite_id": f"{device_id}:{when}",
        "device": {"device_id": device_id, "hostname": device_id.replace("aid-", "web-")},
        "filename": kw.pop("filename", "sh"),
        "filepath": kw.pop("filepath", "/bin/sh"),
        "cmdline": kw.pop("cmdline", SSM_SCRIPT),
        "parent_details": {"filename": "ssm-document-worker", "filepath": "/usr/bin/ssm-document-worker"},
        "created_timestamp": when,
        "severity": kw.pop("severity", 50),
        "tactic": kw.pop("tactic", "Execution"),
        "technique": kw.pop("technique", "Command and Scripting Interpreter"),
        "pattern_id": kw.pop("pattern_id", 10197),
        "display_name": kw.pop("display_name", "SuspiciousShellExecution"),
        **kw,
    }


ML_WORKER = {
    "filename": "ssm-agent-worker.exe",
    "filepath": "\\Device\\HarddiskVolume3\\Program Files\\Amazon\\SSM\\ssm-agent-worker.exe",
    "cmdline": '"C:\\Program Files\\Amazon\\SSM\\ssm-agent-worker.exe"',
    "tactic": "Machine Learning",
    "technique": "Sensor-based ML",
    "pattern_id": None,
}
ALERTS = [
    alert("aid-1", "2026-11-03T10:00:00Z"),
    alert(
        "aid-2",
        "2026-11-02T10:00:00.5Z",
        cmdline=SSM_SCRIPT.replace("0abc123def4567890", "0fff999aaa1112223"),
    ),
    alert("aid-1", "2026-11-05T10:00:00Z", severity=70),
    alert("aid-2", "2026-11-04T10:00:00Z", **ML_WORKER),
    alert("aid-9", "2026-11-04T11:00:00Z", filepath="/opt/other/agent", filename="agent"),  # not the phase's
]
PHASE_DEVICES = {"aid-1", "aid-2"}


def test_detections_are_counted_on_the_phases_devices_in_the_window():
    since = dt.datetime(2026, 11, 2, 10, 0, 0, 500000, tzinfo=UTC)
    assert count_detections(ALERTS, PHASE_DEVICES, since, dt.datetime(2026, 11, 5, 10, tzinfo=UTC)) == 3
    assert count_detections(ALERTS, PHASE_DEVICES, since, dt.datetime(2026, 12, 1, tzinfo=UTC)) == 4
    assert count_detections(ALERTS, {"aid-9"}, since, dt.datetime(2026, 12, 1, tzinfo=UTC)) == 1


def test_detections_are_summarised_per_process_most_frequent_first():
    shell, worker = summarise_detections(ALERTS, PHASE_DEVICES)
    assert (shell.process, shell.count, shell.hosts, shell.max_severity) == (
        "/bin/sh",
        3,
        ("web-1", "web-2"),
        70,
    )
    assert (shell.first_seen, shell.last_seen) == ("2026-11-02T10:00:00.5Z", "2026-11-05T10:00:00Z")
    assert shell.parents == ("/usr/bin/ssm-document-worker",)
    assert len(shell.command_lines) == 2 and shell.tactics == ("Execution",)
    assert (worker.filename, worker.count) == ("ssm-agent-worker.exe", 1)
    assert {s.process for s in summarise_detections(ALERTS)} == {
        "/bin/sh",
        worker.process,
        "/opt/other/agent",
    }
    assert shell.to_dict()["hosts"] == ["web-1", "web-2"]


def test_windows_paths_are_one_process_whatever_their_case():
    upper = {**ML_WORKER, "filepath": ML_WORKER["filepath"].upper()}
    alerts = [
        alert("aid-1", "2026-11-03T10:00:00Z", **ML_WORKER),
        alert("aid-1", "2026-11-04T10:00:00Z", **upper),
    ]
    (summary,) = summarise_detections(alerts)
    assert summary.count == 2


def test_command_lines_keep_their_shape_and_free_their_run_ids():
    pattern = command_line_pattern(SSM_SCRIPT)
    assert pattern == (
        r"/bin/sh\ /var/lib/amazon/ssm/i\-[0-9A-Fa-f]+/document/orchestration/[0-9A-Fa-f-]{36}/"
        r"awsrunShellScript/0\.awsrunShellScript/_script\.sh"
    )
    assert re.fullmatch(pattern, SSM_SCRIPT.replace("0abc123def4567890", "0123456789abcdef0"))
    assert not re.fullmatch(pattern, "/bin/sh /tmp/evil.sh")
    assert command_line_pattern("job --run 12345678") == r"job\ \-\-run\ \d+"


def test_the_ssm_agents_own_scripts_give_one_narrow_ioa_exclusion_with_its_evidence():
    found = propose_exclusions(ALERTS, PHASE_DEVICES, ["grp-np", "grp-prod"])
    ioa = next(p for p in found.proposals if p.kind == "ioa")
    assert (ioa.pattern_id, ioa.pattern_name, ioa.process) == ("10197", "SuspiciousShellExecution", "/bin/sh")
    assert ioa.ifn_regex == r"/bin/sh"
    assert ioa.cl_regex == command_line_pattern(SSM_SCRIPT)  # both instances' runs share one shape
    assert (ioa.count, ioa.hosts, ioa.groups) == (3, ("web-1", "web-2"), ("grp-np", "grp-prod"))
    assert (ioa.first_seen, ioa.last_seen) == ("2026-11-02T10:00:00.5Z", "2026-11-05T10:00:00Z")
    assert (
        ioa.key.startswith("exclusion-")
        and ioa.key == propose_exclusions(ALERTS, PHASE_DEVICES, ["grp-np", "grp-prod"]).proposals[0].key
    )
    assert "/opt/other/agent" not in {p.process for p in found.proposals}


def test_a_machine_learning_detection_gives_an_ml_exclusion_of_the_one_file():
    ml = next(p for p in propose_exclusions(ALERTS, PHASE_DEVICES, ["grp-np"]).proposals if p.kind == "ml")
    assert ml.value == "\\Program Files\\Amazon\\SSM\\ssm-agent-worker.exe"
    assert (ml.count, ml.hosts) == (1, ("web-2",))


def test_a_windows_image_regex_does_not_depend_on_the_volume():
    alerts = [
        alert("aid-1", "2026-11-03T10:00:00Z", **{**ML_WORKER, "tactic": "Persistence", "pattern_id": 5})
    ]
    ioa = propose_exclusions(alerts, PHASE_DEVICES, ["grp-np"]).proposals[0]
    assert ioa.ifn_regex == r".*\\Program\ Files\\Amazon\\SSM\\ssm\-agent\-worker\.exe"
    assert re.fullmatch(
        ioa.ifn_regex, "\\Device\\HarddiskVolume7\\Program Files\\Amazon\\SSM\\ssm-agent-worker.exe", re.I
    )


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"tactic": "Malware", "technique": "Known Malware"},
            "/bin/sh: known malware (Known Malware) is never excluded",
        ),
        ({"filepath": None}, "sh: no image path in the alert; no exclusion proposed"),
        (
            {"pattern_id": None},
            "/bin/sh: a behavioural detection without a pattern_id; no IOA exclusion proposed",
        ),
        ({"cmdline": None}, "/bin/sh: no command line in the alerts; no IOA exclusion proposed"),
        (
            {"tactic": "Machine Learning", "filepath": "/usr/bin/python3"},
            "/usr/bin/python3: python3 is an interpreter or shell; "
            "excluding it would exclude everything it runs",
        ),
    ],
)
def test_what_is_not_proposed_says_why(changes, says):
    found = propose_exclusions([alert("aid-1", "2026-11-03T10:00:00Z", **changes)], PHASE_DEVICES, ["grp-np"])
    assert found.proposals == ()
    assert found.not_proposed == (says,)


def test_too_many_command_line_shapes_are_left_to_a_person():
    alerts = [
        alert("aid-1", "2026-11-03T10:00:00Z", cmdline=f"/bin/sh /opt/job-{name}.sh")
        for name in "abcdefghijk"
    ]
    found = propose_exclusions(alerts, PHASE_DEVICES, ["grp-np"])
    assert found.proposals == ()
    assert "11 different command lines for pattern 10197; too varied" in found.not_proposed[0]


def test_proposals_are_scoped_to_host_groups():
    with pytest.raises(
        ValueError, match="groups: an exclusion is scoped to the phase's host groups; none given"
    ):
        propose_exclusions(ALERTS, PHASE_DEVICES, [])


def proposal(**kw: Any) -> ExclusionProposal:
    base: dict[str, Any] = {
        "key": "exclusion-test",
        "kind": "ioa",
        "process": "/usr/bin/amazon-ssm-agent",
        "groups": ("grp-np",),
        "count": 3,
        "hosts": ("web-1",),
        "first_seen": "2026-11-02T10:00:00Z",
        "last_seen": "2026-11-05T10:00:00Z",
        "command_lines": ("/usr/bin/amazon-ssm-agent",),
        "pattern_id": "10197",
        "pattern_name": "SuspiciousShellExecution",
        "ifn_regex": r"/usr/bin/amazon\-ssm\-agent",
        "cl_regex": r"/usr/bin/amazon\-ssm\-agent",
    }
    return ExclusionProposal(**{**base, **kw})


ML = {
    "kind": "ml",
    "pattern_id": None,
    "ifn_regex": None,
    "cl_regex": None,
    "value": "/usr/bin/amazon-ssm-agent",
}


def test_a_narrow_exclusion_has_no_problem():
    assert exclusion_problem(proposal()) is None
    assert exclusion_problem(proposal(**ML)) is None


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({**ML, "value": "/usr/*"}, "ML exclusion value '/usr/*' is a pattern or empty, not one file"),
        ({**ML, "value": "C:\\Windows\\*"}, "ML exclusion value 'C:\\\\Windows\\\\*' is a pattern or empty"),
        ({**ML, "value": "/usr/bin/"}, "ML exclusion value '/usr/bin/' is a directory"),
        ({**ML, "value": "/usr"}, "ML exclusion value '/usr' is a top-level path"),
        ({**ML, "value": ""}, "is a pattern or empty"),
        ({**ML, "value": "/bin/bash"}, "bash is an interpreter or shell"),
        (
            {**ML, "value": "\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"},
            "powershell.exe is an interpreter",
        ),
        (
            {"ifn_regex": r"/usr/bin/.*"},
            "ifn_regex '/usr/bin/.*' matches other files beside /usr/bin/amazon-ssm-agent",
        ),
        ({"ifn_regex": r".*"}, "matches other files beside"),
        ({"ifn_regex": ""}, "matches other files beside"),
        ({"ifn_regex": r"/opt/app"}, "does not match the process seen (/usr/bin/amazon-ssm-agent)"),
        ({"cl_regex": r".*"}, "cl_regex '.*' matches any command line"),
        ({"cl_regex": None}, "cl_regex None matches any command line"),
        ({"cl_regex": "("}, "an exclusion regex does not compile"),
        ({"pattern_id": None}, "an IOA exclusion without a pattern_id would exclude every pattern"),
        ({"groups": ("all",)}, "applies to all host groups"),
        ({"groups": ()}, "applies to no host group"),
    ],
)
def test_a_blanket_exclusion_is_refused(changes, says):
    problem = exclusion_problem(proposal(**changes))
    assert problem is not None and says in problem, problem


APPROVED = Approval("exclusion-test", "J. Alvarez", dt.datetime(2026, 11, 15, 9, tzinfo=UTC))


def test_exclusions_are_only_proposed_unless_the_phase_applies_approved_ones():
    assert exclusions_to_apply([proposal()], [APPROVED], "propose") == []
    assert exclusions_to_apply([proposal()], [], "apply_approved") == []
    assert exclusions_to_apply([proposal()], [APPROVED], "apply_approved") == [(proposal(), APPROVED)]


def test_an_exclusion_whose_latest_answer_is_a_rejection_is_not_applied():
    no = replace(APPROVED, by="K. Osei", at=APPROVED.at + dt.timedelta(hours=1), decision="rejected")
    assert exclusions_to_apply([proposal()], [APPROVED, no], "apply_approved") == []
    other = replace(APPROVED, subject="exclusion-other")
    assert exclusions_to_apply([proposal()], [other], "apply_approved") == []


def test_a_blanket_exclusion_is_never_applied_even_when_approved():
    with pytest.raises(ValueError, match="exclusion exclusion-test for /usr/bin/amazon-ssm-agent is blanket"):
        exclusions_to_apply([proposal(cl_regex=".*")], [APPROVED], "apply_approved")


def test_the_create_request_names_the_evidence_and_the_approver():
    ioa = proposal().request_body(APPROVED)
    assert {k: ioa[k] for k in ("pattern_id", "ifn_regex", "cl_regex", "groups")} == {
        "pattern_id": "10197",
        "ifn_regex": r"/usr/bin/amazon\-ssm\-agent",
        "cl_regex": r"/usr/bin/amazon\-ssm\-agent",
        "groups": ["grp-np"],
    }
    assert ioa["comment"] == (
        "patchcycle exclusion-test: 3 detections on 1 hosts, 2026-11-02T10:00:00Z to 2026-11-05T10:00:00Z; "
        "approved by J. Alvarez at 2026-11-15T09:00:00+00:00"
    )
    ml = proposal(**ML).request_body(APPROVED)
    assert (ml["value"], ml["excluded_from"], ml["groups"]) == (
        "/usr/bin/amazon-ssm-agent",
        ["blocking"],
        ["grp-np"],
    )
    assert "approved by J. Alvarez" in ml["comment"]


# --- the kernel-held hand-off ----------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=UTC)


def cycle_rows(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """Inventory rows with the Falcon columns, one per (host id, sensor version)."""
    return attach_falcon(
        [host(host_id) for host_id, _ in pairs], [device(host_id, v) for host_id, v in pairs]
    )


def test_a_kernel_held_host_gets_the_oldest_sensor_that_runs_the_kernel_and_meets_the_policy():
    rows = cycle_rows(("i-1", "7.12.16500.0"), ("i-2", "7.14.16703.0"))
    decisions = [
        {
            "host_id": "i-1",
            "verdict": "held",
            "reason": "...; host held (tenant policy hold_host)",
            "variant": "full",
        },
        {"host_id": "i-2", "verdict": "eligible", "reason": "...", "variant": "no_kernel"},
    ]
    upgrades = kernel_held_upgrades(
        decisions, rows, {"i-1": PLANNED, "i-2": PLANNED}, SUPPORT, BUILDS, N_1, NOW
    )
    # 7.13 runs the kernel but is below N-1 (7.14); 7.15 is the oldest that runs it and meets the policy.
    assert [(u.host_id, u.sensor_version, u.kernel, u.upgrade_to) for u in upgrades] == [
        ("i-1", "7.12.16500.0", PLANNED, "7.15.16807"),
        ("i-2", "7.14.16703.0", PLANNED, "7.15.16807"),
    ]
    assert (
        upgrades[1].reason == "sensor 7.14.16703.0 does not support kernel 5.15.0-126-generic; "
        "7.15.16807 is the oldest that does"
    )
    # Before the next cycle: the fourth Sunday of December, 02:00 UTC.
    assert upgrades[0].due_before == dt.datetime(2026, 12, 27, 2, tzinfo=UTC)
    assert upgrades[0].to_dict()["due_before"] == "2026-12-27T02:00:00+00:00"


def test_the_oldest_fitting_version_is_chosen_not_the_newest():
    wide = {PLANNED: {"base_package_supported_sensor_versions": ["7.14.16703", "7.15.16807"]}}
    rows = cycle_rows(("i-1", "7.13.16606.0"))
    decisions = [{"host_id": "i-1", "verdict": "eligible", "variant": "no_kernel"}]
    policy = SensorVersionPolicy(max_versions_behind=3)
    (upgrade,) = kernel_held_upgrades(decisions, rows, {"i-1": PLANNED}, wide, BUILDS, policy, NOW)
    assert upgrade.upgrade_to == "7.14.16703"


def test_a_kernel_held_host_is_never_downgraded():
    # 7.13 runs the kernel and meets N-3, but the host already has 7.14: the upgrade is to 7.15.
    rows = cycle_rows(("i-1", "7.14.16703.0"))
    decisions = [{"host_id": "i-1", "verdict": "eligible", "variant": "no_kernel"}]
    policy = SensorVersionPolicy(max_versions_behind=3)
    (upgrade,) = kernel_held_upgrades(decisions, rows, {"i-1": PLANNED}, SUPPORT, BUILDS, policy, NOW)
    assert upgrade.upgrade_to == "7.15.16807"


def test_hosts_held_for_other_reasons_or_patched_in_full_are_not_handed_off():
    rows = cycle_rows(("i-1", "7.15.16807.0"), ("i-2", "7.14.16703.0"), ("i-3", "7.14.16703.0"))
    decisions = [
        {"host_id": "i-1", "verdict": "held", "reason": "ssm agent ConnectionLost", "variant": "full"},
        {"host_id": "i-2", "verdict": "eligible", "reason": None, "variant": "full"},
        {"host_id": "i-3", "verdict": "held", "reason": "ssm agent ConnectionLost", "variant": "full"},
    ]
    planned = {"i-1": PLANNED, "i-2": PLANNED}  # i-3's family takes no kernel this cycle
    assert kernel_held_upgrades(decisions, rows, planned, SUPPORT, BUILDS, N_1, NOW) == []


@pytest.mark.parametrize(
    ("support", "says"),
    [
        ({}, "kernel 5.15.0-126-generic is unknown to Falcon's support table; no sensor can be chosen yet"),
        (
            {PLANNED: {"base_package_supported_sensor_versions": ["7.13.16606", "7.16.17000"]}},
            "no listed sensor newer than 7.12.16500.0 that meets the policy "
            "supports kernel 5.15.0-126-generic",
        ),
    ],
)
def test_a_kernel_no_sensor_can_be_chosen_for_is_handed_off_with_its_reason(support, says):
    rows = cycle_rows(("i-1", "7.12.16500.0"))
    decisions = [{"host_id": "i-1", "verdict": "held", "variant": "full"}]
    (upgrade,) = kernel_held_upgrades(decisions, rows, {"i-1": PLANNED}, support, BUILDS, N_1, NOW)
    assert (upgrade.upgrade_to, upgrade.reason) == (None, says)


def test_planned_kernels_come_from_the_plan_for_linux_hosts():
    plan = {
        "approved": {
            "ubuntu_22_04": [
                {"id": "linux-image-a", "released": "2026-10-01", "kernel_release": "5.15.0-120-generic"},
                {"id": "linux-image-b", "released": "2026-11-01", "kernel_release": PLANNED},
                {"id": "openssl", "released": "2026-11-02"},
            ],
            "windows_2019": [{"id": "KB1", "released": "2026-11-01"}],
        }
    }
    hosts = [host("i-1"), host("i-2", os_family="windows_2019"), host("i-3", os_family="rhel_8")]
    assert planned_kernels(plan, hosts) == {"i-1": PLANNED}


def test_the_next_cycle_and_a_rollout_run_before_it():
    assert next_cycle_start(dt.datetime(2026, 11, 22, 2, tzinfo=UTC)) == dt.datetime(
        2026, 12, 27, 2, tzinfo=UTC
    )
    assert next_cycle_start(dt.datetime(2026, 11, 1, tzinfo=UTC)) == dt.datetime(2026, 11, 22, 2, tzinfo=UTC)
    deadline = dt.datetime(2026, 12, 27, 2, tzinfo=UTC)
    assert rollout_run_before("0 6 * * MON", NOW, deadline) == dt.datetime(2026, 11, 30, 6, tzinfo=UTC)
    assert rollout_run_before("0 6 1 1 *", NOW, deadline) is None
    assert rollout_run_before(None, NOW, deadline) is None


# --- the policies a host group gets, and validating every host --------------------------------------


def _policy(pid: str, *, groups: tuple[str, ...] = (), enabled: bool = True, name: str | None = None):
    return {"id": pid, "name": name or pid, "enabled": enabled, "groups": [{"id": g} for g in groups]}


def test_the_expected_policy_is_the_first_enabled_one_holding_the_group_else_the_default() -> None:
    from patchcycle.domain.falcon_rollout import expected_policy

    default = _policy("p-default", name="platform_default")
    ordered = [
        _policy("p-off", groups=("g1",), enabled=False),
        _policy("p-first", groups=("g1", "g2")),
        _policy("p-second", groups=("g1",)),
        default,
    ]
    assert expected_policy(ordered, "g1") == "p-first"  # precedence order, disabled skipped
    assert expected_policy(ordered, "g3") == "p-default"
    assert expected_policy([_policy("p-off", groups=("g1",), enabled=False)], "g1") is None


def test_every_host_is_validated_against_its_environments_expectation() -> None:
    from patchcycle.domain.falcon_rollout import Expectation, validate_hosts

    host = {"host_id": "i-1", "name": "web-1", "cloud": "aws", "account": "111", "environment": "prod"}
    device = {
        "device_id": "d1",
        "hostname": "web-1",
        "instance_id": "i-1",
        "service_provider": "AWS_EC2_V2",
        "service_provider_account_id": "111",
        "agent_version": "7.14.16703.0",
        "reduced_functionality_mode": "no",
        "groups": ["g-prod"],
        "device_policies": {
            "prevention": {"policy_id": "p1", "applied": True},
            "sensor_update": {"policy_id": "s1", "applied": True},
        },
    }
    ok = {("prod", "linux"): Expectation("g-prod", "p1", "s1")}
    linux = {**host, "platform": "linux"}
    (passed,) = validate_hosts([linux], [device], ok, {"i-1": "7.14.16703"})
    assert passed.passed and passed.device_id == "d1"
    (missing,) = validate_hosts([linux], [device], {}, {"i-1": "7.14.16703"})
    assert not missing.passed and missing.reasons == ("nothing expected for ('prod', 'linux')",)
    broken = {("prod", "linux"): Expectation(None, None, None, "host group 'x' does not exist")}
    (refused,) = validate_hosts([linux], [device], broken, {"i-1": "7.14.16703"})
    assert refused.reasons == ("host group 'x' does not exist",)
    (newer,) = validate_hosts([linux], [device], ok, {"i-1": "7.15.17000"})
    assert not newer.passed and "expected 7.15.17000 or newer" in newer.reasons[0]


# --- the hand-off followed up by the next cycle ----------------------------------------------------------

HANDED = {
    "host_id": "i-1",
    "name": "web-01",
    "sensor_version": "7.10.16303",
    "kernel": "5.15.0-119-generic",
    "upgrade_to": "7.14.16703",
    "reason": "sensor 7.10.16303 does not support kernel 5.15.0-119-generic",
    "due_before": "2026-12-27T02:00:00+00:00",
}


def cycle_host(**fields: Any) -> dict[str, Any]:
    return {
        "host_id": "i-1",
        "falcon_sensor_version": "7.14.16703",
        "final_state": "patched",
        "install_variant": None,
    } | fields


@pytest.mark.parametrize(
    ("host", "status", "why"),
    [
        (
            cycle_host(),
            "resolved",
            "sensor upgraded to 7.14.16703; this cycle patched the host with its kernel",
        ),
        (cycle_host(falcon_sensor_version="7.10.16303"), "open", "still 7.10.16303, older than 7.14.16703"),
        (cycle_host(install_variant="no_kernel"), "open", "left it patched without its kernel"),
        (cycle_host(final_state="failed"), "open", "this cycle left it failed"),
        (cycle_host(falcon_sensor_version=None), "open", "found no Falcon sensor version"),
        (cycle_host(host_id="i-2"), "open", "not in this cycle's inventory"),
    ],
)
def test_a_handed_off_upgrade_is_resolved_only_when_the_sensor_moved_and_the_kernel_was_installed(
    host: dict[str, Any], status: str, why: str
) -> None:
    (follow_up,) = follow_up_upgrades([HANDED], [host])
    assert follow_up.status == status and why in follow_up.reason
    assert follow_up.kernel == "5.15.0-119-generic" and follow_up.upgrade_to == "7.14.16703"


def test_open_upgrades_are_the_handed_off_hosts_still_due_with_their_kernel() -> None:
    late = HANDED | {"host_id": "i-2", "due_before": "2026-11-22T02:00:00+00:00"}
    assert open_upgrades([HANDED, late], dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == {
        "i-1": "5.15.0-119-generic"
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        open_upgrades([HANDED], dt.datetime(2026, 12, 1))


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/kdevtmpfsi",
        "/var/tmp/.x/miner",
        "/dev/shm/payload",
        "\\Device\\HarddiskVolume3\\Windows\\Temp\\drop.exe",
        "\\Device\\HarddiskVolume3\\Users\\bob\\AppData\\Local\\Temp\\setup.exe",
        "\\Device\\HarddiskVolume3\\Users\\Public\\run.exe",
    ],
)
def test_nothing_that_runs_from_a_directory_anyone_can_write_to_is_proposed_for_exclusion(path: str) -> None:
    seen = [alert("aid-1", "2026-11-03T10:00:00Z", filepath=path, filename=path.rsplit("/", 1)[-1])]
    seen.append(alert("aid-1", "2026-11-03T11:00:00Z", filepath=path, tactic="Machine Learning"))
    found = propose_exclusions(seen, PHASE_DEVICES, ["grp-np"])
    assert found.proposals == ()
    assert any("a directory any user or process can write to" in why for why in found.not_proposed), (
        found.not_proposed
    )
