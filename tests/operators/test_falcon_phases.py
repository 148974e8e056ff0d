"""The pure parts of the roll-out's phase tasks: where the tenant is from its earlier phase changes, the
Alerts API filters, the exclusion proposals' round trip through the evidence, the phase's policy settings
and precedence, the approval's request and answer, and the ``phases`` section of ``rollout.json``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from patchcycle.domain.falcon_rollout import Approval, propose_exclusions
from patchcycle.operators.falcon_phases import (
    ALERT_DEVICES_PER_QUERY,
    alerts_filters,
    approval_body,
    approval_from_answer,
    page_marker,
    phase_policy_name,
    phase_state,
    phases_section,
    platform_settings,
    precedence_with_first,
    proposal_from_dict,
    reentry_request,
    run_moment,
)

UTC = dt.UTC
SSM_SCRIPT = (
    "/bin/sh /var/lib/amazon/ssm/i-0abc123def4567890/document/orchestration/"
    "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10/awsrunShellScript/0.awsrunShellScript/_script.sh"
)


def change(phase: str, entered_at: str) -> dict[str, Any]:
    return {"phase": phase, "entered_at": entered_at, "approval": {"by": "jlee"}}


def test_the_tenant_is_in_the_phase_entered_last_by_its_moment() -> None:
    changes = [change("prod", "2026-12-20T06:00:00+00:00"), change("nonprod", "2026-12-01T06:00:00+00:00")]
    state = phase_state(changes, dt.datetime(2026, 12, 21, tzinfo=UTC))
    assert (state.phase, state.entered_at) == ("prod", dt.datetime(2026, 12, 20, 6, tzinfo=UTC))
    assert state.approvals == ()  # each run asks its own approval


def test_a_backfilled_day_sees_the_phase_the_tenant_was_in_then() -> None:
    changes = [change("nonprod", "2026-12-01T06:00:00+00:00"), change("prod", "2026-12-20T06:00:00+00:00")]
    assert phase_state(changes, dt.datetime(2026, 12, 10, tzinfo=UTC)).phase == "nonprod"
    assert phase_state(changes, dt.datetime(2026, 11, 30, tzinfo=UTC)).phase is None


def test_a_reentry_starts_the_phase_again_from_its_own_entry() -> None:
    reentered = {**change("nonprod", "2026-12-09T15:00:00+00:00"), "reentered": True}
    changes = [change("nonprod", "2026-12-01T06:00:00+00:00"), reentered]
    state = phase_state(changes, dt.datetime(2026, 12, 10, tzinfo=UTC))
    assert (state.phase, state.entered_at, state.reentered) == (
        "nonprod",
        dt.datetime(2026, 12, 9, 15, tzinfo=UTC),
        True,
    )
    before = phase_state(changes, dt.datetime(2026, 12, 9, 14, tzinfo=UTC))
    assert (before.entered_at, before.reentered) == (dt.datetime(2026, 12, 1, 6, tzinfo=UTC), False)


PHASE_NAMES = ["nonprod", "prod"]


def test_the_trigger_form_asks_to_enter_a_phase_again_with_a_reason() -> None:
    asked = reentry_request(
        {"reenter_phase": "nonprod", "reason": " tuned the SSM exclusion "}, PHASE_NAMES, "jlee"
    )
    assert asked is not None and asked.to_dict() == {
        "phase": "nonprod",
        "reason": "tuned the SSM exclusion",
        "by": "jlee",
    }
    assert reentry_request({}, PHASE_NAMES, None) is None
    assert reentry_request({"reenter_phase": None, "reason": None}, PHASE_NAMES, None) is None


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (
            {"reenter_phase": "canary", "reason": "x"},
            "param reenter_phase='canary' names no prevention phase of the tenant (declared: nonprod, prod)",
        ),
        ({"reenter_phase": "prod", "reason": "  "}, "param reason is required with reenter_phase='prod'"),
        ({"reenter_phase": "prod"}, "param reason is required with reenter_phase='prod'"),
    ],
)
def test_a_reentry_the_form_cannot_ask_for_is_an_error_naming_the_param(params, says) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        reentry_request(params, PHASE_NAMES, "jlee")


def test_the_runs_moment_is_its_logical_date_else_when_it_was_due() -> None:
    due = dt.datetime(2026, 12, 2, 6, tzinfo=UTC)
    logical = dt.datetime(2026, 12, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert run_moment(logical, due) == dt.datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert run_moment(None, due) == due


def test_alert_filters_name_the_phases_devices_in_batches_from_the_phase_entry() -> None:
    devices = [f"aid-{n:03d}" for n in range(ALERT_DEVICES_PER_QUERY + 1)]
    since = dt.datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    first, second = alerts_filters(devices, since)
    assert first.startswith("product:'epp'+device.device_id:['aid-000','aid-001',")
    assert first.endswith("+created_timestamp:>='2026-12-01T06:30:00Z'")
    assert second == "product:'epp'+device.device_id:['aid-100']+created_timestamp:>='2026-12-01T06:30:00Z'"
    assert alerts_filters([], since) == []


def test_a_proposal_survives_the_evidence_round_trip() -> None:
    alerts = [
        {
            "device": {"device_id": "aid-1", "hostname": "web-1"},
            "filename": "sh",
            "filepath": "/bin/sh",
            "cmdline": SSM_SCRIPT,
            "created_timestamp": "2026-12-02T10:00:00Z",
            "tactic": "Execution",
            "pattern_id": 10197,
            "display_name": "SuspiciousShellExecution",
        }
    ]
    (proposal,) = propose_exclusions(alerts, {"aid-1"}, ["g1", "g2"]).proposals
    again = proposal_from_dict(proposal.to_dict())
    assert again == proposal
    approval = Approval(proposal.key, "jlee", dt.datetime(2026, 12, 3, tzinfo=UTC))
    assert again.request_body(approval)["groups"] == ["g1", "g2"]


DEFAULT_LINUX = {
    "id": "d-linux",
    "name": "platform_default",
    "prevention_settings": [
        {"name": "Cloud Machine Learning", "settings": [{"id": "CloudAntiMalware", "type": "mlslider"}]},
        {"name": "Execution Blocking", "settings": [{"id": "ScriptBasedExecutionMonitoring"}]},
    ],
}
DECLARED = [
    {
        "id": "CloudAntiMalware",
        "type": "mlslider",
        "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"},
    },
    {"id": "AdditionalUserModeData", "type": "toggle", "value": {"enabled": True}},
]


def test_a_platform_gets_the_declared_settings_it_knows_and_the_others_are_named() -> None:
    kept, skipped = platform_settings(DECLARED, [DEFAULT_LINUX])
    assert kept == [{"id": "CloudAntiMalware", "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"}}]
    assert skipped == ["AdditionalUserModeData"]
    # Nothing to read the platform's settings from: all are sent (Falcon refuses one it does not know).
    kept, skipped = platform_settings(DECLARED, [])
    assert [s["id"] for s in kept] == ["CloudAntiMalware", "AdditionalUserModeData"] and skipped == []


def test_the_phases_policy_is_moved_first_among_the_platforms_policies() -> None:
    listed = [{"id": "a", "name": "tenant-prod"}, {"id": "b", "name": "x"}, DEFAULT_LINUX, {"id": "ours"}]
    assert precedence_with_first(listed, "ours") == ["ours", "a", "b"]
    assert precedence_with_first([{"id": "ours"}, {"id": "a"}, DEFAULT_LINUX], "ours") is None
    assert phase_policy_name("cu_alpha", "nonprod", "Linux") == "patchcycle-cu_alpha-nonprod-linux"


def test_only_an_approved_answer_with_who_and_when_promotes() -> None:
    answer = {"phase": "prod", "decision": "approved", "by": "jlee", "at": "2026-12-03T09:00:00+00:00"}
    assert approval_from_answer(answer) == Approval("prod", "jlee", dt.datetime(2026, 12, 3, 9, tzinfo=UTC))
    assert approval_from_answer({**answer, "decision": "rejected"}) is None
    assert approval_from_answer({**answer, "decision": "no answer", "by": None}) is None
    assert approval_from_answer({**answer, "by": None}) is None


DECIDED = {
    "state": {"phase": "nonprod", "entered_at": "2026-12-01T06:00:00+00:00"},
    "decision": {
        "action": "promote",
        "phase": "nonprod",
        "next_phase": "prod",
        "reason": "phase 'nonprod' was monitored until 2026-12-15 with 2 detections (threshold 5)",
        "incident_key": None,
    },
    "exclusions_mode": "apply_approved",
    "detections": {
        "count": 2,
        "threshold": 5,
        "since": "2026-12-01T06:00:00+00:00",
        "until": "2026-12-15T06:00:00+00:00",
        "groups": ["g-nonprod"],
        "devices": 6,
    },
    "processes": [{"process": "/bin/sh", "count": 2, "hosts": ["web-1", "web-2"]}],
    "proposals": [{"key": "exclusion-abc", "kind": "ioa", "process": "/bin/sh", "count": 2}],
}


def test_the_approval_request_lists_the_phase_the_figures_the_processes_and_the_proposals() -> None:
    body = approval_body("Alpha Credit Union", DECIDED)
    assert "promote Falcon prevention phase `prod` (from `nonprod`)" in body
    assert "2 detections on 6 devices of g-nonprod from 2026-12-01T06:00:00+00:00" in body
    assert "- 2 x /bin/sh on web-1, web-2" in body
    assert "Approving creates these exclusions:\n- `exclusion-abc` ioa /bin/sh (2 detections)" in body
    proposed_only = approval_body("Alpha", {**DECIDED, "exclusions_mode": "propose"})
    assert "Proposed (not created: mode propose)" in proposed_only


REENTER = {
    **DECIDED,
    "decision": {
        "action": "reenter",
        "phase": "nonprod",
        "next_phase": "nonprod",
        "reason": "9 detections on phase 'nonprod''s hosts exceed its threshold of 5; entering phase "
        "'nonprod' again (its detections counted anew from then) needs approval",
        "incident_key": "patchcycle/cu_alpha/2026-12-01/falcon-prevention-nonprod",
    },
    "reentry": {"phase": "nonprod", "reason": "the SSM agent's script is excluded", "by": "jlee"},
}


def test_the_reentry_request_lists_who_asked_why_the_figures_and_the_proposals() -> None:
    body = approval_body("Alpha Credit Union", REENTER)
    assert body.startswith("**Alpha Credit Union**: enter Falcon prevention phase `nonprod` again;")
    assert "Asked by jlee: the SSM agent's script is excluded\nWhy: 9 detections" in body
    assert "2 detections on 6 devices of g-nonprod from 2026-12-01T06:00:00+00:00" in body
    assert "- 2 x /bin/sh on web-1, web-2" in body
    assert "Approving creates these exclusions:\n- `exclusion-abc` ioa /bin/sh (2 detections)" in body


def test_a_refused_reentry_is_a_problem_of_the_evidence() -> None:
    refused = {
        **DECIDED,
        "decision": {
            "action": "refused",
            "phase": "nonprod",
            "next_phase": "prod",
            "reason": "phase 'nonprod' is not entered again: it is not held (2 detections since "
            "2026-12-01T06:00:00+00:00, threshold 5)",
        },
        "reentry": {"phase": "nonprod", "reason": "tuned", "by": "jlee"},
    }
    section = phases_section({"phases": refused, "approval": None, "change": None})
    assert section["problems"] == [
        "the request to enter a prevention phase again was refused: phase 'nonprod' is not entered again: "
        "it is not held (2 detections since 2026-12-01T06:00:00+00:00, threshold 5)"
    ]
    assert section["reentry"]["by"] == "jlee" and section["changes"] == []
    assert phases_section({"phases": REENTER, "approval": None, "change": None})["problems"] == []


def test_the_evidence_section_shows_the_change_and_its_approver() -> None:
    approval = {"phase": "prod", "decision": "approved", "by": "jlee", "at": "2026-12-15T07:00:00+00:00"}
    created = [{"key": "exclusion-abc", "id": "e1", "approved_by": "jlee"}]
    moved = {"phase": "prod", "previous_phase": "nonprod", "approval": approval, "exclusions": created}
    section = phases_section({"phases": DECIDED, "approval": approval, "change": moved})
    assert (section["phase_before"], section["phase"]) == ("nonprod", "prod")
    assert section["changes"] == [moved] and section["exclusions_created"] == created
    assert section["detections"]["count"] == 2 and section["problems"] == []
    stayed = phases_section({"phases": DECIDED, "approval": None, "change": None})
    assert (stayed["phase"], stayed["changes"], stayed["exclusions_created"]) == ("nonprod", [], [])


def test_a_run_without_a_decision_is_a_problem_of_the_evidence() -> None:
    assert phases_section({"phases": None, "approval": None, "change": None}) == {
        "problems": ["the phase_decide task recorded no decision (see its log)"]
    }


@pytest.mark.parametrize(
    "key",
    ["patchcycle/cu_alpha/2026-12-01/falcon-prevention-nonprod", "patchcycle/cu_alpha/2026-12-01/x#ab12"],
)
def test_each_incident_has_its_own_page_marker(key: str) -> None:
    marker = page_marker(key)
    assert marker.startswith("falcon-rollout/phase-pages/") and marker.endswith(".json")
    assert "/" not in marker.removeprefix("falcon-rollout/phase-pages/")
    assert page_marker(key) != page_marker(key + "x")
