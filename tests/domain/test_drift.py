"""The two drift engines behind one report, on fixtures written from Terraform's and CloudTrail's formats.

Each engine must find exactly the injected drifts and nothing else; fields the cycle owns are never drift;
a type no engine understands is unchecked, never clean; sensitive values never reach the report.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from patchcycle.domain.drift import (
    SENSITIVE,
    AttributeRule,
    DriftInputError,
    DriftReport,
    PlanExitStatus,
    PlanFailedError,
    ScopeError,
    ScopeResult,
    UnsupportedPlanFormatError,
    UnsupportedStateVersionError,
    attach_authors,
    build_report,
    compare,
    compare_state,
    drift_trend,
    open_drift_on,
    plan_exit_status,
    read_plan,
    read_state,
    rule_for,
    who_changed,
)
from patchcycle.domain.drift.values import format_path, normalize, parse_pattern, path_matches

FIXTURES = Path(__file__).parent / "fixtures" / "drift"
SCOPE = "aws:111111111111:us-east-1"
DAY = dt.date(2026, 12, 4)
RUN_AT = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
ORCHESTRATOR_ROLE = "arn:aws:iam::111111111111:role/patchcycle-orchestrator-cu_alpha"
AL2 = 'module.baselines.aws_ssm_patch_baseline.this["amazon_linux_2"]'

INJECTED_DRIFTS = {
    ("aws_iam_role_policy.orchestrator_ssm", "policy"),
    ("aws_launch_template.fleet", "latest_version"),
    ("aws_launch_template.fleet", "user_data"),
    ("aws_s3_bucket_object_lock_configuration.evidence", "rule[0].default_retention[0].days"),
    ("aws_s3_bucket_public_access_block.evidence", ""),
    (AL2, "approved_patches_compliance_level"),
}
OWNED_BY_CYCLE = {(AL2, "approval_rule[0].approve_after_days"), (AL2, "description")}
UNKNOWN_TYPES = {"aws_sns_topic.drift_alerts", "aws_ssm_parameter.falcon_cid"}
CHECKED = {
    "aws_iam_policy.evidence_writer",
    "aws_iam_role.orchestrator",
    "aws_iam_role_policy.orchestrator_ssm",
    "aws_launch_template.fleet",
    "aws_s3_bucket.evidence",
    "aws_s3_bucket_object_lock_configuration.evidence",
    "aws_s3_bucket_public_access_block.evidence",
    "aws_s3_bucket_server_side_encryption_configuration.evidence",
    "aws_s3_bucket_versioning.evidence",
    "aws_ssm_document.falcon_install",
    AL2,
    'module.baselines.aws_ssm_patch_baseline.this["windows_2019"]',
    'module.baselines.aws_ssm_patch_group.this["amazon_linux_2"]',
    'module.baselines.aws_ssm_patch_group.this["windows_2019"]',
}
AUTHORS = {
    ("aws_iam_role_policy.orchestrator_ssm", "policy"): ("alice", "PutRolePolicy"),
    ("aws_launch_template.fleet", "latest_version"): ("carol", "CreateLaunchTemplateVersion"),
    ("aws_launch_template.fleet", "user_data"): ("carol", "CreateLaunchTemplateVersion"),
    ("aws_s3_bucket_object_lock_configuration.evidence", "rule[0].default_retention[0].days"): (
        "dave",
        "PutObjectLockConfiguration",
    ),
    ("aws_s3_bucket_public_access_block.evidence", ""): ("dave", "DeleteBucketPublicAccessBlock"),
    (AL2, "approved_patches_compliance_level"): ("bob@alpha.example.com", "UpdatePatchBaseline"),
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def plan_result(name: str = "refresh_only_plan.json", exit_code: int | None = 2) -> ScopeResult:
    return read_plan(fixture(name), scope=SCOPE, exit_code=exit_code)


def state_result() -> ScopeResult:
    live = fixture("live_view.json")["objects"]
    return compare_state(read_state(fixture("state_v4.json")), live, scope=SCOPE)


ENGINES = {"plan_json": plan_result, "state_compare": state_result}


def report_of(result: ScopeResult, day: dt.date = DAY) -> DriftReport:
    events = fixture("cloudtrail_lookup_events.json")["Events"]
    attributed = attach_authors(result, events, exclude_principals=[ORCHESTRATOR_ROLE], not_after=RUN_AT)
    return build_report("cu_alpha", day, result.engine, [attributed])


def found(report: DriftReport) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    return {(d.address, d.path) for d in report.drifts}, {(d.address, d.path) for d in report.owned_by_cycle}


# -- each engine on the fixtures ------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_finds_exactly_the_injected_drifts(engine: str) -> None:
    report = report_of(ENGINES[engine]())
    drifts, owned = found(report)
    assert drifts == INJECTED_DRIFTS
    assert owned == OWNED_BY_CYCLE
    assert report.engine == engine and report.resources_checked == len(CHECKED)
    assert report.drifted_resources == tuple(sorted({a for a, _ in INJECTED_DRIFTS}))


def test_both_engines_show_the_same_declared_and_live_values() -> None:
    def values(result: ScopeResult) -> dict[tuple[str, str], tuple[Any, Any, str]]:
        return {(d.address, d.path): (d.declared, d.live, d.action) for d in result.differences}

    assert values(plan_result()) == values(state_result())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_resource_deleted_outside_terraform_is_drift_with_both_ways_out(engine: str) -> None:
    (gone,) = [d for d in ENGINES[engine]().differences if d.address.startswith("aws_s3_bucket_public")]
    assert (gone.action, gone.path, gone.live) == ("delete", "", None)
    assert gone.declared == {"bucket": "patchcycle-evidence-cu-alpha"}
    assert gone.description == "deleted outside Terraform"
    assert [o["label"] for o in gone.options()] == [
        "ratify: write it into Terraform",
        "remediate: revert to declared",
    ]
    assert "removed block" in gone.options()[0]["how"] and "recreate" in gone.options()[1]["how"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_launch_template_without_the_ssm_bootstrap_is_shown_decoded(engine: str) -> None:
    by_path = {d.path: d for d in ENGINES[engine]().differences if d.address == "aws_launch_template.fleet"}
    assert "systemctl is-active --quiet amazon-ssm-agent" in by_path["user_data"].declared
    assert "amazon-ssm-agent" not in by_path["user_data"].live
    assert (by_path["latest_version"].declared, by_path["latest_version"].live) == (3, 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_widened_inline_policy_is_shown_as_documents(engine: str) -> None:
    (policy,) = [d for d in ENGINES[engine]().differences if d.type == "aws_iam_role_policy"]
    assert policy.declared["Statement"][0]["Action"] == sorted(
        ["ssm:SendCommand", "ssm:ListCommandInvocations", "ssm:DescribeInstanceInformation"]
    )
    assert policy.live["Statement"][0]["Action"] == ["ssm:*"]


def test_a_clean_plan_reports_no_drift_but_still_lists_unknown_types() -> None:
    report = report_of(plan_result("clean_plan.json", exit_code=0))
    assert report.drifts == () and report.owned_by_cycle == ()
    assert report.resources_checked == len(CHECKED) and report.notes == ()
    assert {u.address for u in report.unchecked} == UNKNOWN_TYPES


# -- classification -------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_fields_the_cycle_owns_are_never_drift(engine: str) -> None:
    report = report_of(ENGINES[engine]())
    patterns = rule_for("aws_ssm_patch_baseline").cycle_owned  # type: ignore[union-attr]
    for drift in report.drifts:
        assert not any(path_matches(parse_pattern(drift.path), p) for p in patterns if drift.path)
    assert all(d.options() == [] and d.changed_by is None for d in report.owned_by_cycle)


def _baseline(**changes: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "id": "pb-1",
        "name": "b",
        "description": "approved on or before 2026-10-31",
        "approved_patches_compliance_level": "HIGH",
        "approval_rule": [
            {"approve_until_date": "2026-10-31", "approve_after_days": None, "compliance_level": "HIGH"},
            {"approve_until_date": "2026-10-31", "approve_after_days": None, "compliance_level": "HIGH"},
        ],
    }
    live = copy.deepcopy(attributes)
    for key, value in changes.items():
        live[key] = value
    return live


def _state_instance(attributes: dict[str, Any], resource_type: str = "aws_ssm_patch_baseline") -> Any:
    document = {
        "version": 4,
        "serial": 1,
        "lineage": "x",
        "resources": [
            {
                "mode": "managed",
                "type": resource_type,
                "name": "b",
                "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                "instances": [{"schema_version": 0, "attributes": attributes}],
            }
        ],
    }
    return read_state(document).instances[0]


def test_a_cycle_owned_change_in_any_approval_rule_is_owned_and_a_filter_change_is_drift() -> None:
    instance = _state_instance(_baseline())
    rules = copy.deepcopy(instance.attributes["approval_rule"])
    rules[1]["approve_until_date"] = "2026-11-30"
    rules[1]["approve_after_days"] = 7
    rules[0]["compliance_level"] = "LOW"
    drifts = compare(instance, _baseline(approval_rule=rules, description="approved on or before 2026-11-30"))
    assert {(d.path, d.classification) for d in drifts} == {
        ("approval_rule[1].approve_until_date", "owned_by_cycle"),
        ("approval_rule[1].approve_after_days", "owned_by_cycle"),
        ("description", "owned_by_cycle"),
        ("approval_rule[0].compliance_level", "drift"),
    }


def test_an_approval_rule_added_outside_terraform_is_drift_even_though_it_holds_owned_fields() -> None:
    instance = _state_instance(_baseline())
    rules = [*instance.attributes["approval_rule"], {"approve_until_date": "2027-01-01"}]
    (drift,) = compare(instance, _baseline(approval_rule=rules))
    assert (drift.path, drift.classification) == ("approval_rule", "drift")


# -- unchecked, never clean -----------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_types_are_listed_as_unchecked_not_checked(engine: str) -> None:
    result = ENGINES[engine]()
    assert {u.address for u in result.unchecked} == UNKNOWN_TYPES
    assert not UNKNOWN_TYPES & set(result.checked)
    assert all("not in the drift registry" in u.reason for u in result.unchecked)


def test_a_plan_shows_what_terraform_found_on_an_unknown_type_without_calling_it_drift() -> None:
    (parameter,) = [u for u in plan_result().unchecked if u.type == "aws_ssm_parameter"]
    assert {(d.path, d.declared, d.live) for d in parameter.differences} == {
        ("value", SENSITIVE, SENSITIVE),
        ("version", 1, 2),
    }
    assert {d.classification for d in parameter.differences} == {"unchecked"}
    assert all(d.options() == [] for d in parameter.differences)


def test_a_resource_without_a_live_view_is_unchecked_and_data_sources_are_not_resources() -> None:
    live = fixture("live_view.json")["objects"]
    del live["aws_ssm_document.falcon_install"]
    result = compare_state(read_state(fixture("state_v4.json")), live, scope=SCOPE)
    (missing,) = [u for u in result.unchecked if u.type == "aws_ssm_document"]
    assert missing.reason == "no live view was read for it"
    assert "aws_ssm_document.falcon_install" not in result.checked
    assert not [a for a in (*result.checked, *(u.address for u in result.unchecked)) if a.startswith("data.")]


def test_legacy_flatmap_and_deposed_objects_are_unchecked_and_tainted_ones_noted() -> None:
    state = fixture("state_v4.json")
    instances = {r["type"]: r["instances"] for r in state["resources"]}
    instances["aws_s3_bucket"][0] = {"schema_version": 0, "attributes_flat": {"bucket": "x"}}
    instances["aws_iam_role"][0]["status"] = "tainted"
    deposed = copy.deepcopy(instances["aws_iam_policy"][0]) | {"deposed": "00000001"}
    instances["aws_iam_policy"].append(deposed)
    result = compare_state(read_state(state), fixture("live_view.json")["objects"], scope=SCOPE)
    reasons = {u.address: u.reason for u in result.unchecked}
    assert "flatmap" in reasons["aws_s3_bucket.evidence"]
    assert "deposed object 00000001" in reasons["aws_iam_policy.evidence_writer"]
    assert "aws_iam_policy.evidence_writer" in result.checked  # its current object still is
    assert result.notes == (
        "aws_iam_role.orchestrator is tainted: Terraform will replace it at the next apply",
    )


def test_a_plan_entry_with_an_action_the_reader_does_not_know_leaves_the_resource_unchecked() -> None:
    plan = fixture("refresh_only_plan.json")
    plan["resource_drift"][0]["change"]["actions"] = ["forget"]
    result = read_plan(plan, scope=SCOPE)
    (entry,) = [u for u in result.unchecked if u.address == "aws_iam_role_policy.orchestrator_ssm"]
    assert "'forget'" in entry.reason
    assert "aws_iam_role_policy.orchestrator_ssm" not in result.checked


# -- sensitive values -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_sensitive_values_never_reach_the_report(engine: str) -> None:
    text = json.dumps(report_of(ENGINES[engine]()).to_dict())
    assert "FAKECID" not in text


def test_a_sensitive_attribute_of_a_known_type_is_masked_but_still_reported() -> None:
    plan = fixture("refresh_only_plan.json")
    (template,) = [e for e in plan["resource_drift"] if e["type"] == "aws_launch_template"]
    template["change"]["before_sensitive"]["user_data"] = True
    template["change"]["after_sensitive"]["user_data"] = True
    (user_data,) = [d for d in read_plan(plan, scope=SCOPE).differences if d.path == "user_data"]
    assert (user_data.declared, user_data.live, user_data.sensitive) == (SENSITIVE, SENSITIVE, True)
    assert user_data.classification == "drift"


def test_state_sensitive_paths_mask_a_difference_at_or_around_them() -> None:
    instance = _state_instance(_baseline())
    marked = type(instance)(
        **{**instance.__dict__, "sensitive_paths": (("approval_rule", 0, "compliance_level"),)}
    )
    rules = copy.deepcopy(instance.attributes["approval_rule"])
    rules[0]["compliance_level"] = "LOW"
    (inside,) = compare(marked, _baseline(approval_rule=rules))
    assert (inside.declared, inside.live) == (SENSITIVE, SENSITIVE)
    (around,) = compare(marked, _baseline(approval_rule=rules[:1]))  # the list itself changed length
    assert (around.path, around.declared) == ("approval_rule", SENSITIVE)
    unreadable = type(instance)(**{**instance.__dict__, "sensitive_paths": None})
    assert all(d.sensitive for d in compare(unreadable, _baseline(approved_patches_compliance_level="LOW")))


def test_state_sensitive_attributes_are_read_in_terraforms_path_step_format() -> None:
    state = fixture("state_v4.json")
    (parameter,) = [r for r in state["resources"] if r["type"] == "aws_ssm_parameter"]
    parameter["instances"][0]["sensitive_attributes"].append(
        [
            {"type": "get_attr", "value": "tags"},
            {"type": "index", "value": {"value": "owner", "type": "string"}},
        ]
    )
    (instance,) = [i for i in read_state(state).instances if i.type == "aws_ssm_parameter"]
    assert instance.sensitive_paths == (("value",), ("tags", "owner"))


# -- format versions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2.0", "0.2", 1, None])
def test_a_plan_of_an_unsupported_major_format_version_is_refused_by_name(version: Any) -> None:
    plan = fixture("clean_plan.json") | {"format_version": version}
    with pytest.raises(UnsupportedPlanFormatError, match=repr(version)) as refused:
        read_plan(plan, scope=SCOPE)
    assert refused.value.format_version == version and isinstance(refused.value, DriftInputError)


def test_a_later_minor_format_version_is_read() -> None:
    plan = fixture("clean_plan.json") | {"format_version": "1.9", "something_new": {"x": 1}}
    assert len(read_plan(plan, scope=SCOPE).checked) == len(CHECKED)


@pytest.mark.parametrize("version", [3, 5, "4", None])
def test_a_state_of_another_format_version_is_refused_by_name(version: Any) -> None:
    with pytest.raises(UnsupportedStateVersionError, match=f"version {version!r}") as refused:
        read_state(fixture("state_v4.json") | {"version": version})
    assert refused.value.version == version


def test_what_is_not_a_plan_or_a_state_is_refused() -> None:
    with pytest.raises(DriftInputError, match="JSON object"):
        read_plan([], scope=SCOPE)  # type: ignore[arg-type]
    with pytest.raises(DriftInputError, match="no resources list"):
        read_state({"version": 4})
    with pytest.raises(DriftInputError, match="serial 'x'"):
        read_state({"version": 4, "serial": "x", "resources": []})


# -- -detailed-exitcode ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, PlanExitStatus.NO_CHANGES),
        (1, PlanExitStatus.ERROR),
        (2, PlanExitStatus.CHANGES),
        (3, PlanExitStatus.ERROR),
    ],
)
def test_detailed_exit_codes(code: int, status: PlanExitStatus) -> None:
    assert plan_exit_status(code) is status


def test_a_failed_or_errored_plan_is_not_read() -> None:
    with pytest.raises(PlanFailedError, match="exited 1"):
        plan_result(exit_code=1)
    with pytest.raises(PlanFailedError, match="errored"):
        read_plan(fixture("clean_plan.json") | {"errored": True}, scope=SCOPE)


def test_an_exit_code_that_disagrees_with_the_plan_is_noted_and_the_plan_wins() -> None:
    result = plan_result(exit_code=0)
    assert {(d.address, d.path) for d in result.differences if d.classification == "drift"} == INJECTED_DRIFTS
    assert result.notes == (
        "exit code 0 says no changes but the plan shows differences: the plan's content was used",
    )
    assert "exit code 2 says changes" in plan_result("clean_plan.json", exit_code=2).notes[0]


# -- resource_changes (a normal plan) -------------------------------------------------------------------
def test_a_normal_plans_changes_read_the_configuration_as_declared_and_skip_what_drift_reported() -> None:
    plan = fixture("refresh_only_plan.json")
    drifted = next(
        e for e in plan["resource_drift"] if e["type"] == "aws_s3_bucket_object_lock_configuration"
    )
    change = copy.deepcopy(drifted)
    change["change"]["before"], change["change"]["after"] = (
        drifted["change"]["after"],
        drifted["change"]["before"],
    )
    gone = next(e for e in plan["resource_drift"] if e["type"] == "aws_s3_bucket_public_access_block")
    recreate = copy.deepcopy(gone)
    recreate["change"].update(actions=["create"], before=None, after=gone["change"]["before"])
    versioning = {
        "address": "aws_s3_bucket_versioning.evidence",
        "mode": "managed",
        "type": "aws_s3_bucket_versioning",
        "name": "evidence",
        "change": {
            "actions": ["update"],
            "before": {"bucket": "b", "versioning_configuration": [{"status": "Suspended"}], "id": "b"},
            "after": {"bucket": "b", "versioning_configuration": [{"status": "Enabled"}], "id": None},
            "after_unknown": {"id": True},
        },
    }
    plan["resource_changes"] = [change, recreate, versioning]
    result = read_plan(plan, scope=SCOPE)
    from_changes = [d for d in result.differences if d.source == "resource_changes"]
    assert [(d.address, d.path, d.declared, d.live) for d in from_changes] == [
        ("aws_s3_bucket_versioning.evidence", "versioning_configuration[0].status", "Enabled", "Suspended")
    ]
    assert from_changes[0].description == "live differs from the configuration (not applied yet)"
    assert result.notes[0].startswith("not a refresh-only plan")


# -- who changed it -------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_each_drift_names_who_made_it(engine: str) -> None:
    report = report_of(ENGINES[engine]())
    named = {
        (d.address, d.path): (d.changed_by.username, d.changed_by.event_name)
        for d in report.drifts
        if d.changed_by
    }
    assert named == AUTHORS


def test_the_author_is_the_latest_matching_write_and_carries_the_identity() -> None:
    report = report_of(plan_result())
    by_key = {(d.address, d.path): d.changed_by for d in report.drifts}
    bob = by_key[(AL2, "approved_patches_compliance_level")]
    assert bob is not None and bob.identity_type == "AssumedRole"
    assert bob.principal_arn.endswith("/bob@alpha.example.com")  # type: ignore[union-attr]
    assert bob.session_issuer_arn.endswith("AWSReservedSSO_Admin_0123456789abcdef")  # type: ignore[union-attr]
    alice = by_key[("aws_iam_role_policy.orchestrator_ssm", "policy")]
    # Later events on the same policy were a read and a call refused with AccessDenied; a later
    # PutRolePolicy on the role named another inline policy.
    assert alice is not None and alice.event_time == dt.datetime(2026, 12, 2, 3, 14, tzinfo=dt.UTC)
    assert alice.principal_arn == "arn:aws:iam::111111111111:user/alice"


def test_without_exclusions_the_cycles_own_write_and_later_changes_would_be_named() -> None:
    events = fixture("cloudtrail_lookup_events.json")["Events"]
    cycle = who_changed("aws_ssm_patch_baseline", {"id": "pb-0a1b2c3d4e5f60001"}, events)
    assert cycle is not None and cycle.username == "airflow-cu_alpha-2026-12"
    later = who_changed(
        "aws_s3_bucket_object_lock_configuration", {"bucket": "patchcycle-evidence-cu-alpha"}, events
    )
    assert later is not None and later.username == "mallory"


def test_without_request_parameters_the_events_resources_name_the_object() -> None:
    event = {
        "EventId": "e1",
        "EventName": "PutBucketVersioning",
        "EventTime": 1764892800.0,  # the API's epoch seconds
        "Username": "frank",
        "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "bkt"}],
    }
    author = who_changed("aws_s3_bucket_versioning", {"bucket": "bkt"}, [event])
    assert author is not None and (author.username, author.event_time.tzinfo) == ("frank", dt.UTC)
    assert who_changed("aws_s3_bucket_versioning", {"bucket": "other"}, [event]) is None
    assert who_changed("aws_sns_topic", {"id": "bkt"}, [event]) is None


# -- the report, its trend and the pre-flight -----------------------------------------------------------
def test_the_report_is_json_evidence_with_both_ways_out_for_each_drift() -> None:
    report = report_of(plan_result())
    evidence = json.loads(json.dumps(report.to_dict()))
    assert evidence["tenant"] == "cu_alpha" and evidence["date"] == "2026-12-04"
    assert evidence["engine"] == "plan_json" and evidence["complete"] is True
    assert evidence["open_drift"] == len(INJECTED_DRIFTS) and evidence["resources_checked"] == len(CHECKED)
    assert all({o["action"] for o in d["options"]} == {"ratify", "remediate"} for d in evidence["drifts"])
    assert evidence["drifts"][0]["changed_by"]["event_time"].startswith("2026-12-")
    assert evidence["sources"] == {
        SCOPE: {
            "format_version": "1.2",
            "terraform_version": "1.11.4",
            "timestamp": "2026-12-04T06:00:00Z",
            "exit_code": 2,
        }
    }
    state_evidence = report_of(state_result()).to_dict()
    assert state_evidence["sources"][SCOPE]["serial"] == 42
    (gone,) = [d for d in state_evidence["drifts"] if d["action"] == "delete"]
    assert gone["identity"] == {"bucket": "patchcycle-evidence-cu-alpha"}


def test_errors_are_kept_per_scope_and_make_the_report_incomplete() -> None:
    failed = ScopeError("aws:111111111111:eu-west-1", "AccessDenied reading the state object")
    report = build_report("cu_alpha", DAY, "plan_json", [plan_result()], errors=[failed])
    assert not report.complete and report.scopes == ("aws:111111111111:eu-west-1", SCOPE)
    assert report.to_dict()["errors"] == [failed.to_dict()]
    with pytest.raises(ValueError, match="state_compare"):
        build_report("cu_alpha", DAY, "plan_json", [state_result()])


def test_the_trend_gives_open_drift_per_day_with_a_report() -> None:
    drifted, clean = report_of(plan_result()), report_of(plan_result("clean_plan.json", exit_code=0))
    earlier = [
        report_of(plan_result("clean_plan.json", exit_code=0), dt.date(2026, 12, 1)),
        report_of(plan_result(), dt.date(2026, 12, 2)),
        build_report("cu_alpha", dt.date(2026, 12, 2), "plan_json", [], errors=[ScopeError(SCOPE, "x")]),
        report_of(plan_result(), dt.date(2026, 12, 9)),  # after today: not part of today's trend
    ]
    trend = drift_trend(earlier, drifted)
    assert [(p.day.day, p.open_drift, p.complete) for p in trend] == [
        (1, 0, True),
        (2, 0, False),
        (4, 6, True),
    ]
    assert trend[-1].drifted_resources == 5 and trend[-1].to_dict()["date"] == "2026-12-04"
    assert [p.open_drift for p in drift_trend([drifted], clean)] == [0]
    with pytest.raises(ValueError, match="cu_birch"):
        drift_trend([build_report("cu_birch", DAY, "plan_json", [])], drifted)


def test_the_preflight_reads_open_drift_on_what_the_cycle_depends_on() -> None:
    report = report_of(state_result())
    depends_on = ["aws_ssm_patch_baseline", "aws_ssm_patch_group", "aws_ssm_document.falcon_install"]
    found_open = open_drift_on(report, depends_on)
    assert [(d.address, d.path) for d in found_open.drifts] == [(AL2, "approved_patches_compliance_level")]
    assert found_open.unchecked == () and found_open.report_complete
    assert open_drift_on(report, ["module.baselines"]).drifts == found_open.drifts
    assert open_drift_on(report, ["module.baseline"]).drifts == ()
    with_parameter = open_drift_on(report, [*depends_on, "aws_ssm_parameter.falcon_cid"])
    assert [u.address for u in with_parameter.unchecked] == ["aws_ssm_parameter.falcon_cid"]
    assert with_parameter.to_dict()["report_date"] == "2026-12-04"


# -- semantic comparison --------------------------------------------------------------------------------
def test_policies_compare_by_meaning_not_by_text() -> None:
    declared = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],'
    )
    declared += '"Resource":"arn:aws:s3:::b/*"},{"Effect":"Deny","Action":"iam:*","Resource":"*",'
    declared += '"Condition":{"StringEquals":{"aws:PrincipalTag/team":"sre"}}}]}'
    live = """{
      "Statement": [
        {"Resource": "*", "Action": ["iam:*"], "Effect": "Deny",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["sre"]}}},
        {"Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::b/*"], "Effect": "Allow"}
      ],
      "Version": "2012-10-17"
    }"""
    assert normalize("iam_policy", declared) == normalize("iam_policy", live)
    widened = live.replace('"iam:*"', '"iam:PassRole"')
    assert normalize("iam_policy", declared) != normalize("iam_policy", widened)


def test_a_policy_rewritten_without_a_change_in_meaning_is_not_drift_in_either_engine() -> None:
    plan = fixture("refresh_only_plan.json")
    (entry,) = [e for e in plan["resource_drift"] if e["type"] == "aws_iam_role_policy"]
    entry["change"]["after"]["policy"] = json.dumps(
        {
            "Statement": {
                "Resource": ["*"],
                "Action": [
                    "ssm:DescribeInstanceInformation",
                    "ssm:ListCommandInvocations",
                    "ssm:SendCommand",
                ],
                "Effect": "Allow",
                "Sid": "PatchCommands",
            },
            "Version": "2012-10-17",
        },
        indent=4,
    )
    assert not [d for d in read_plan(plan, scope=SCOPE).differences if d.type == "aws_iam_role_policy"]
    instance = next(
        i for i in read_state(fixture("state_v4.json")).instances if i.type == "aws_iam_role_policy"
    )
    live = dict(instance.attributes or {}) | {"policy": entry["change"]["after"]["policy"]}
    assert compare(instance, live) == ()


def test_documents_sets_and_encoded_values_compare_by_content() -> None:
    assert normalize("document", "a: 1\nb: [x, y]\n") == normalize("document", '{"b": ["x", "y"], "a": 1}')
    assert normalize("set", ["b", "a"]) == normalize("set", ["a", "b"])
    assert normalize("base64", "aGk=") == "hi" and normalize("base64", "not base64!") == "not base64!"
    assert normalize("json", "not json") == "not json"


def test_compare_takes_the_attributes_it_is_told_to() -> None:
    instance = _state_instance(_baseline())
    live = _baseline(approved_patches_compliance_level="LOW", name="renamed")
    only_name = compare(instance, live, [AttributeRule("name")])
    assert [(d.path, d.declared, d.live) for d in only_name] == [("name", "b", "renamed")]
    with pytest.raises(ValueError, match="not in the drift registry"):
        compare(_state_instance({"id": "t"}, "aws_sns_topic"), {"id": "t"})


def test_paths_are_flattened_the_terraform_way() -> None:
    assert format_path(("approval_rule", 0, "approve_after_days")) == "approval_rule[0].approve_after_days"
    assert format_path(("tags_all", "patchcycle:tenant")) == 'tags_all["patchcycle:tenant"]'
    assert parse_pattern('tags_all["patchcycle:tenant"]') == ("tags_all", "patchcycle:tenant")
    assert path_matches(("approval_rule", 3, "approve_until_date"), "approval_rule[*].approve_until_date")
    assert not path_matches(
        ("approval_rule", "x", "approve_until_date"), "approval_rule[*].approve_until_date"
    )
    with pytest.raises(ValueError, match="path pattern"):
        parse_pattern("approval_rule[")
