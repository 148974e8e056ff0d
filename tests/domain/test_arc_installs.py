"""Azure Arc installs: what each installPatches asks for, and which machines each round starts under
the rate control (at most MaxConcurrency in flight, none started once failures exceed MaxErrors)."""

from __future__ import annotations

from patchcycle.config.models import RateControl
from patchcycle.domain import arc_installs

MACHINES = [f"m{i}" for i in range(1, 7)]
RATE = RateControl(max_concurrency="2", max_errors="1")


def test_the_first_round_fills_the_slots_in_name_order():
    decision = arc_installs.plan_round(list(reversed(MACHINES)), {}, {}, RATE)
    assert decision.start == ["m1", "m2"]
    assert (decision.stopped, decision.errors, decision.allowed_errors, decision.not_sent) == (
        False,
        0,
        1,
        [],
    )


def test_a_round_refills_only_the_slots_freed_by_finished_installs():
    operations = {"m1": {"location": "op1"}, "m2": {"location": "op2"}}
    assert arc_installs.plan_round(MACHINES, operations, {}, RATE).start == []
    finished = {"m1": {"status": "Succeeded", "failedPatchCount": 0}}
    assert arc_installs.plan_round(MACHINES, operations, finished, RATE).start == ["m3"]


def test_failures_over_max_errors_stop_the_stage_and_name_every_machine_not_sent():
    operations = {m: {"location": m} for m in MACHINES[:3]}
    results = {
        "m1": {"status": "Failed"},
        "m2": {"status": "Succeeded", "failedPatchCount": 1},
        "m3": {"status": "Succeeded", "failedPatchCount": 0},
    }
    decision = arc_installs.plan_round(MACHINES, operations, results, RATE)
    assert decision.stopped and decision.start == []
    assert decision.not_sent == ["m4", "m5", "m6"]
    assert (decision.errors, decision.allowed_errors) == (2, 1)


def test_failures_within_max_errors_go_on():
    operations = {"m1": {"location": "m1"}}
    decision = arc_installs.plan_round(MACHINES, operations, {"m1": {"status": "Failed"}}, RATE)
    assert not decision.stopped and decision.start == ["m2", "m3"]


def test_percentages_are_of_the_stage_machines():
    rate = RateControl(max_concurrency="50%", max_errors="0")
    decision = arc_installs.plan_round(MACHINES, {}, {}, rate)
    assert decision.start == ["m1", "m2", "m3"]
    assert arc_installs.plan_round(MACHINES, {"m1": {}}, {"m1": {"status": "Failed"}}, rate).stopped


def test_no_result_is_not_a_failure():
    assert not arc_installs.result_failed(None)
    assert not arc_installs.result_failed({})
    assert arc_installs.result_failed({"status": "CompletedWithWarnings"})
    assert arc_installs.result_failed({"status": "Succeeded", "failedPatchCount": 2})
    assert not arc_installs.result_failed({"status": "Succeeded", "failedPatchCount": 0})


def test_an_intent_without_an_answer_is_lost_once_and_only_then():
    operations = {
        "m1": {"intent_at": "t", "location": "op1"},  # answered
        "m2": {"intent_at": "t"},  # the earlier attempt stopped before the answer
        "m3": {"intent_at": "t"},  # lost before, already given no result
        "m4": {"nothing_to_install": True},
    }
    assert arc_installs.answers_lost(operations, {"m3": None, "m4": None}) == ["m2"]


def test_the_next_round_waits_for_half_of_those_in_flight():
    assert [arc_installs.wake_after(n) for n in (0, 1, 2, 5, 10)] == [1, 1, 1, 2, 5]


PLAN = {
    "approved": {
        "rhel_9": [
            {
                "id": "openssl-1:3.0.7-27.el9.x86_64",
                "package": "openssl",
                "version": "3.0.7-27.el9",
                "epoch": "1",
            },
            {"id": "curl-7.76.1-29.el9.x86_64", "package": "curl", "version": "7.76.1-29.el9"},
            {"id": "bash-5.1.8-9.el9.x86_64", "package": "bash", "version": "5.1.8-9.el9"},
        ],
        "windows_2022": [{"id": "KB5046615", "kb": "KB5046615"}, {"id": "KB5044281", "kb": "5044281"}],
    }
}


def test_linux_installs_name_exactly_the_selected_packages_with_versions_and_no_classification():
    patches = arc_installs.planned_patches(
        PLAN, "rhel_9", ["openssl-1:3.0.7-27.el9.x86_64", "curl-7.76.1-29.el9.x86_64"]
    )
    body = arc_installs.install_parameters(patches, windows=False)
    assert body["maximumDuration"] == "PT2H" and body["rebootSetting"] == "IfRequired"
    assert body["linuxParameters"]["packageNameMasksToInclude"] == [
        "curl_7.76.1-29.el9",
        "openssl_1:3.0.7-27.el9",
    ]
    assert "classificationsToInclude" not in body["linuxParameters"]
    assert "windowsParameters" not in body


def test_windows_installs_name_kb_numbers_without_their_prefix():
    patches = arc_installs.planned_patches(PLAN, "windows_2022", ["KB5046615", "KB5044281"])
    body = arc_installs.install_parameters(patches, windows=True)
    assert body["windowsParameters"] == {
        "kbNumbersToInclude": ["5044281", "5046615"],
        "excludeKbsRequiringReboot": False,
    }
    assert "classificationsToInclude" not in body["windowsParameters"]


def test_planned_patches_of_a_family_the_plan_does_not_have_are_none():
    assert arc_installs.planned_patches(PLAN, "ubuntu_22_04", ["x"]) == []
