"""The daily drift run's pure parts: the live AWS answers in the state's shape, launch template versions
without the SSM bootstrap, the run's policy (keys, engine, day, whose writes are not drift, which trail),
a stored report read back, the CSV and the SREs' mail, and the drift controls."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from patchcycle.domain.controls import load_control_catalogs, map_controls
from patchcycle.domain.drift import (
    ScopeError,
    attach_authors,
    build_report,
    compare_state,
    daily,
    live,
    read_plan,
    read_state,
)
from patchcycle.domain.drift.launch import (
    GroupFinding,
    LaunchVersion,
    group_findings,
    group_launch,
    launch_configuration_data,
    launch_findings,
    plan_launch_templates,
    tenants_group,
)
from patchcycle.domain.drift.model import Drift
from patchcycle.domain.drift.stored import report_from_dict
from patchcycle.domain.drift.summary import drift_email, drift_rows, summary_csv

FIXTURES = Path(__file__).parent / "fixtures" / "drift"
SCOPE = "aws:111111111111:us-east-1"
DAY = dt.date(2026, 12, 4)
RUN_AT = dt.datetime(2026, 12, 4, 6, tzinfo=dt.UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def report() -> Any:
    result = compare_state(
        read_state(fixture("state_v4.json")), fixture("live_view.json")["objects"], scope=SCOPE
    )
    events = fixture("cloudtrail_lookup_events.json")["Events"]
    excluded = ["arn:aws:iam::111111111111:role/patchcycle-orchestrator-cu_alpha"]
    attributed = attach_authors(result, events, exclude_principals=excluded, not_after=RUN_AT)
    return build_report(
        "cu_alpha", DAY, "state_compare", [attributed], [ScopeError("aws:2:us-west-2", "denied")]
    )


# -- live answers in the state's shape ----------------------------------------------------------------------
def test_iam_documents_read_as_objects_or_url_encoded_text_compare_equal() -> None:
    decoded = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"  # noqa: E501
    assert json.loads(live.policy_text(decoded)) == json.loads(live.policy_text(encoded)) == decoded


def test_a_baseline_reads_as_the_providers_blocks() -> None:
    baseline = fixture("api_responses.json")["ssm"]["baselines"]["pb-0a1b2c3d4e5f60002"]
    shaped = live.ssm_patch_baseline(baseline, [{"Key": "k", "Value": "v"}])
    (rule,) = shaped["approval_rule"]
    assert rule["approve_until_date"] == "" and rule["approve_after_days"] == 7
    assert rule["patch_filter"][0] == {
        "key": "CLASSIFICATION",
        "values": ["SecurityUpdates", "CriticalUpdates"],
    }
    assert shaped["global_filter"] == [] and shaped["source"] == [] and shaped["tags_all"] == {"k": "v"}


def test_a_rule_the_cycle_rewrote_without_a_compliance_level_reads_as_unspecified() -> None:
    """The cycle's UpdatePatchBaseline sends rules without ComplianceLevel: the live view must read that
    as the UNSPECIFIED the state declares, or every baseline a cycle touched would show drift."""
    rewritten = {"ApprovalRules": {"PatchRules": [{"ApproveUntilDate": "2026-11-08"}]}}
    shaped = live.ssm_patch_baseline(rewritten, [])
    assert shaped["approval_rule"][0]["compliance_level"] == "UNSPECIFIED"
    assert shaped["approved_patches_compliance_level"] == "UNSPECIFIED"


def test_s3_settings_that_are_not_there_read_as_gone() -> None:
    assert live.s3_bucket_versioning("b", {}) is None  # versioning never enabled
    assert live.s3_object_lock_configuration("b", None) is None
    assert live.s3_public_access_block("b", None) is None
    assert live.s3_encryption("b", None) is None
    assert live.s3_bucket("b", [], None)["object_lock_enabled"] is False


def test_a_patch_group_registered_with_several_other_baselines_reads_as_gone() -> None:
    mappings = [
        {"PatchGroup": "g", "BaselineIdentity": {"BaselineId": "pb-1"}},
        {"PatchGroup": "g", "BaselineIdentity": {"BaselineId": "pb-2"}},
    ]
    assert live.ssm_patch_group("g", "pb-9", mappings) is None
    assert live.ssm_patch_group("g", "pb-2", mappings) == {"baseline_id": "pb-2", "patch_group": "g"}
    assert live.ssm_patch_group("g", "pb-9", mappings[:1]) == {"baseline_id": "pb-1", "patch_group": "g"}


# -- launch templates -------------------------------------------------------------------------------------
def _data(user_data: str, profile: str | None = "patchcycle-ssm-instance-cu_alpha") -> dict[str, Any]:
    return {
        "user_data": base64.b64encode(user_data.encode()).decode(),
        "iam_instance_profile": [{"arn": "", "name": profile}] if profile else [],
    }


def test_each_version_that_would_start_an_unmanaged_instance_is_one_finding() -> None:
    declared = _data("systemctl enable --now amazon-ssm-agent")
    good, bare = _data("systemctl enable --now amazon-ssm-agent"), _data("yum install -y nginx", None)
    assert launch_findings(SCOPE, "lt", "fleet", declared, [LaunchVersion("latest", 3, good)]) == []
    (both,) = launch_findings(
        SCOPE, "lt", "fleet", declared, [LaunchVersion("latest", 4, bare), LaunchVersion("default", 4, bare)]
    )
    assert both.versions == ("latest (4)", "default (4)") and len(both.problems) == 2
    assert "reported before the next cycle" in both.sentence
    other = _data("amazon-ssm-agent", "someone-elses-profile")
    (finding,) = launch_findings(SCOPE, "lt", "fleet", declared, [LaunchVersion("latest", 5, other)])
    assert "someone-elses-profile is not the declared patchcycle-ssm-instance-cu_alpha" in finding.problems[0]


def test_an_auto_scaling_groups_launch_source_is_its_template_its_mixed_policys_or_its_configuration() -> (
    None
):
    pinned = group_launch(
        {
            "AutoScalingGroupName": "web",
            "LaunchTemplate": {"LaunchTemplateId": "lt-1", "LaunchTemplateName": "fleet", "Version": "2"},
            "Tags": [{"Key": "patchcycle:tenant", "Value": "cu_alpha"}],
        }
    )
    assert (pinned.template_id, pinned.version, pinned.launch_configuration) == ("lt-1", "2", None)
    mixed = group_launch(
        {
            "AutoScalingGroupName": "batch",
            "MixedInstancesPolicy": {
                "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": "fleet"}}
            },
        }
    )
    assert (mixed.template_name, mixed.version) == ("fleet", "$Default")  # the API's default
    legacy = group_launch({"AutoScalingGroupName": "old", "LaunchConfigurationName": "lc-1"})
    assert legacy.launch_configuration == "lc-1" and legacy.source == "launch configuration lc-1"
    # The tenant's: a template its state manages (by id or name), or its tag; nothing else.
    assert tenants_group(pinned, "cu_alpha", set()) and tenants_group(mixed, "cu_beta", {"fleet"})
    assert not tenants_group(legacy, "cu_alpha", {"lt-1", "fleet"})
    assert not tenants_group(pinned, "cu_beta", {"lt-9"})


def test_a_group_is_judged_on_the_version_it_launches_and_an_unread_source_is_never_clean() -> None:
    declared = _data("systemctl enable --now amazon-ssm-agent")
    launch = group_launch(
        {"AutoScalingGroupName": "web", "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "2"}}
    )
    # Version 2 lacks the bootstrap, whatever the template's latest and default are.
    (old,) = group_findings(SCOPE, launch, "fleet v2", declared, LaunchVersion("2", 2, _data("yum -y nginx")))
    assert old.checked and old.group == "web" and "SSM agent" in old.problems[0]
    assert "reported before the next cycle" in old.sentence
    assert group_findings(SCOPE, launch, "fleet v2", declared, LaunchVersion("2", 2, declared)) == []
    (unread,) = group_findings(
        SCOPE, launch, "fleet v2", declared, None, "not checked: version 2 was not found"
    )
    assert not unread.checked and "not counted as clean" in unread.sentence
    assert GroupFinding.from_dict(unread.to_dict()) == unread
    # A launch configuration: UserData base64 and IamInstanceProfile (a name or an ARN).
    configuration = {"UserData": _data("yum -y nginx")["user_data"], "IamInstanceProfile": ""}
    data = launch_configuration_data(configuration)
    legacy = group_launch({"AutoScalingGroupName": "old", "LaunchConfigurationName": "lc-1"})
    (bare,) = group_findings(SCOPE, legacy, legacy.source, None, LaunchVersion("lc", None, data))
    assert len(bare.problems) == 2
    good = launch_configuration_data(
        {
            "UserData": _data("snap start amazon-ssm-agent")["user_data"],
            "IamInstanceProfile": "arn:aws:iam::1:instance-profile/ssm",
        }
    )
    assert group_findings(SCOPE, legacy, legacy.source, None, LaunchVersion("lc", None, good)) == []


def test_a_plan_gives_each_launch_templates_refreshed_latest_version_and_its_declared_one() -> None:
    ((address, name, declared, latest),) = plan_launch_templates(fixture("refresh_only_plan.json"))
    assert address == "aws_launch_template.fleet" and name == "patchcycle-fleet-cu_alpha"
    assert latest.number == 4 and declared["latest_version"] == 3
    (finding,) = launch_findings(SCOPE, address, name, declared, [latest])
    assert finding.problems == ("its user data neither installs nor starts the SSM agent (amazon-ssm-agent)",)


# -- the run's policy ------------------------------------------------------------------------------------
def test_keys_scopes_and_partitions() -> None:
    assert daily.state_key("cu_alpha", "111111111111", "us-east-1") == (
        "tenants/cu_alpha/111111111111/us-east-1/terraform.tfstate"
    )
    assert daily.plan_key("cu_alpha", "1", "r", DAY) == "plans/cu_alpha/1/r/2026-12-04.json"
    assert (
        daily.orchestrator_role_arn("2", "us-gov-west-1") == "arn:aws-us-gov:iam::2:role/PatchcycleExecution"
    )
    assert daily.provider_alias('provider["registry.terraform.io/hashicorp/aws"].evidence') == "evidence"
    assert daily.provider_alias('provider["registry.terraform.io/hashicorp/aws"]') == ""


def test_terraform_and_the_orchestrator_are_excluded_as_role_and_session() -> None:
    callers = daily.caller_arns_in_state(read_state(fixture("state_v4.json")))
    assert callers == ["arn:aws:sts::111111111111:assumed-role/patchcycle-terraform/terraform"]
    excluded = daily.excluded_principals("111111111111", "us-east-1", callers, ["arn:aws:iam::1:user/bot"])
    assert set(excluded) == {
        callers[0],
        "arn:aws:iam::111111111111:role/patchcycle-terraform",
        "arn:aws:iam::111111111111:role/PatchcycleExecution",
        "arn:aws:iam::1:user/bot",
    }
    identity = {"mode": "data", "type": "aws_caller_identity", "values": {"arn": "arn:x"}}
    plan = {"prior_state": {"values": {"root_module": {"child_modules": [{"resources": [identity]}]}}}}
    assert daily.caller_arns_in_plan(plan) == ["arn:x"]


@pytest.mark.parametrize(
    ("requested", "found", "engine"),
    [
        ("auto", {"a": True, "b": True}, "plan_json"),
        ("auto", {"a": True, "b": False}, "state_compare"),
        ("auto", {}, "state_compare"),
        ("plan", {"a": False}, "plan_json"),
        ("state", {"a": True}, "state_compare"),
    ],
)
def test_the_engine_is_the_plans_only_when_every_scope_has_one(requested, found, engine) -> None:
    assert daily.choose_engine(requested, found) == engine


def test_the_day_reported_and_a_late_state_read() -> None:
    due = dt.datetime(2026, 12, 4, 5, tzinfo=dt.UTC)
    assert daily.report_day("2026-11-20", due, due) == dt.date(2026, 11, 20)
    assert daily.report_day(None, dt.datetime(2026, 12, 3, 5, tzinfo=dt.UTC), due) == dt.date(2026, 12, 3)
    assert daily.report_day(None, None, due) == DAY
    assert daily.late_note(DAY, RUN_AT, "state_compare") is None
    assert "read on 2026-12-04" in (daily.late_note(dt.date(2026, 12, 1), RUN_AT, "state_compare") or "")
    assert daily.late_note(dt.date(2026, 12, 1), RUN_AT, "plan_json") is None  # that day's plans


def _drift(address: str, rtype: str) -> Drift:
    return Drift(address, rtype, "p", "update", 1, 2, "drift", "state", identity={"name": address})


def test_each_drift_is_looked_up_in_the_trail_that_records_its_writes() -> None:
    aliases = {"aws_s3_bucket_versioning.evidence": "evidence"}
    assert daily.trail_of(_drift("aws_iam_role.x", "aws_iam_role"), aliases) == daily.GLOBAL_TRAIL
    assert (
        daily.trail_of(_drift("aws_s3_bucket_versioning.evidence", "aws_s3_bucket_versioning"), aliases)
        == "evidence"
    )
    assert daily.trail_of(_drift("aws_s3_bucket.b", "aws_s3_bucket"), {}) == "evidence"  # a plan's
    assert daily.trail_of(_drift("aws_launch_template.t", "aws_launch_template"), {}) == ""
    assert daily.GLOBAL_EVENTS_REGION[daily.partition("eu-west-1")] == "us-east-1"


# -- the stored report, the CSV and the mail ---------------------------------------------------------------
def test_a_report_read_back_from_its_evidence_is_the_same_report() -> None:
    original = report()
    again = report_from_dict(json.loads(json.dumps(original.to_dict(), default=str)))
    assert again == original
    assert again.drifted_objects == tuple((SCOPE, a) for a in original.drifted_resources)


def test_the_csv_shows_declared_against_live_who_and_both_ways_out_and_every_unchecked_resource() -> None:
    rows = list(csv.DictReader(io.StringIO(summary_csv(drift_rows(report(), {})).decode())))
    policy = next(r for r in rows if r["address"] == "aws_iam_role_policy.orchestrator_ssm")
    assert "ssm:*" in policy["live"] and "ssm:SendCommand" in policy["declared"]
    assert (policy["scope"], policy["changed_by"], policy["event_name"]) == (SCOPE, "alice", "PutRolePolicy")
    assert policy["ratify"] and policy["remediate"]
    unchecked = [r for r in rows if r["classification"] == "unchecked"]
    assert {r["address"] for r in unchecked} == {"aws_sns_topic.drift_alerts", "aws_ssm_parameter.falcon_cid"}


def test_the_mail_names_every_drift_and_who_but_no_value() -> None:
    found = report()
    subject, body = drift_email(
        tenant_name="Alpha", report=found, findings=[], trend=[], pack_url="s3://b/k", manifest_sha256="ab"
    )
    assert subject.endswith("(INCOMPLETE)") and "6 open drift(s) on 5 resource(s)" in subject
    assert "alice" in body and "aws:2:us-west-2: denied" in body
    for d in found.drifts:
        for value in (d.declared, d.live):
            if isinstance(value, str) and len(value) > 3:
                assert value not in body, value
    for value in ("ssm:*", "nginx", "2555"):
        assert value not in body


# -- the drift controls --------------------------------------------------------------------------------------
def test_the_drift_controls_are_judged_on_a_drift_runs_events_and_the_cycles_are_unchanged() -> None:
    catalogs = load_control_catalogs()
    events = [{"action": "drift.checked"}, {"action": "drift.reported"}]
    drift = map_controls(
        events, ["soc2", "sox", "pci_dss", "hipaa"], catalogs, retention_days=2555, evidence="drift"
    )
    assert {(r.framework, r.control_id) for r in drift} == {
        ("soc2", "CC8.1"),
        ("soc2", "CC7.1"),
        ("sox", "ITGC-CM-06"),
        ("pci_dss", "6.5.1"),
        ("hipaa", "164.308(a)(1)(ii)(D)"),
        ("references", "CIS-v8-4.1"),
        ("references", "NIST-SP-800-53r5-CM-3"),
    }
    assert all(r.status == "evidenced" for r in drift)
    cycle = map_controls(events, ["soc2"], catalogs, retention_days=365)
    assert ("soc2", "CC8.1") in {(r.framework, r.control_id) for r in cycle}
    assert all(r.status == "missing" for r in cycle if r.control_id == "CC8.1")  # not a cycle's evidence
    for catalog in catalogs.values():
        for control in catalog.drift_controls:
            assert {req.event for req in control.evidenced_by} <= {"drift.checked", "drift.reported"}


def test_a_refresh_only_plans_report_round_trips_too() -> None:
    result = read_plan(fixture("refresh_only_plan.json"), scope=SCOPE)
    plan_report = build_report("cu_alpha", DAY, "plan_json", [result])
    assert report_from_dict(plan_report.to_dict()) == plan_report
