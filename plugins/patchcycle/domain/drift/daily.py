"""The daily drift run's policy: where each scope's state and plan are, which engine reads them, whose
changes are not drift authors, what CloudTrail is asked, and which day a run reports. Pure.

Decisions (docs/design/iac-drift.md, "The daily drift report"):

- One state per tenant AWS account and region (``patchcycle.domain.terraform_vars``), in the platform's
  state bucket at ``tenants/<tenant>/<account>/<region>/terraform.tfstate`` (the roots' backend key).
- Engine 1 reads a refresh-only plan the tenant's own pipeline wrote (``terraform show -json`` of
  ``terraform plan -refresh-only -out=...``) at ``plans/<tenant>/<account>/<region>/<YYYY-MM-DD>.json`` in
  the same bucket. ``auto`` (the default) uses the plans when every scope has one for the day, else
  engine 2 for every scope: one report has one engine, and a partial set of plans is more likely a
  pipeline that failed part-way than a choice. ``plan`` requires them (a scope without one fails);
  ``state`` never reads them.
- Not drift authors: the orchestrator's execution role in the account (its monthly
  ``UpdatePatchBaseline`` writes fields the cycle owns and would hide the person who changed a filter),
  Terraform's own principal (every ``data.aws_caller_identity`` in the state or plan: who last applied),
  and principals the deployment names (``[patchcycle] drift_excluded_principals``).
- CloudTrail is asked by ``ResourceName`` for each identifying value of each drifted resource; a drift
  still without an author is asked for by the type's write events (``EventName``), since some services
  leave an event's ``Resources`` empty (an SSM ``UpdatePatchBaseline``, for one). Each resource is
  looked up in the CloudTrail of the account it lives in: the evidence bucket's settings in the
  platform's (:func:`trail_of`). At most :data:`MAX_LOOKUPS` lookups per scope (each is at least one
  call at CloudTrail's two a second).
- A run reports the day it is for: the ``as_of`` param, else the run's logical date, else the day it
  runs. A state can only be compared with what is live now, so a state-engine run for an earlier day
  (a backfill) is marked late with the day it read; a plan-engine run reads that day's plans.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from patchcycle.domain.drift.model import Drift, Engine, ScopeResult
from patchcycle.domain.drift.registry import rule_for
from patchcycle.domain.drift.state import TerraformState
from patchcycle.domain.terraform_vars import EXECUTION_ROLE

EngineChoice = Literal["auto", "state", "plan"]
ENGINE_CHOICES: tuple[EngineChoice, ...] = ("auto", "state", "plan")

STATE_BUCKET = "patchcycle-terraform-state"
"""The platform's Terraform state bucket (the tenant roots' ``backend "s3"`` bucket)."""
CYCLE_DEPENDENCIES = ("aws_ssm_patch_baseline", "aws_ssm_patch_group", "aws_ssm_document")
"""What the monthly cycle relies on that Terraform declares: the baselines, their patch groups and the
Falcon install document (the only SSM document the modules declare)."""
CLOUDTRAIL_LOOKBACK = dt.timedelta(days=90)
"""How far back CloudTrail is asked: its event history keeps 90 days (LookupEvents)."""
TREND_DAYS = 30
"""The trend of open drift covers the reports of this many days, today's included."""
MAX_LOOKUPS = 40
"""LookupEvents lookups per scope at most (about 20 s at CloudTrail's two requests a second)."""

_ASSUMED_ROLE = re.compile(r"^arn:(?P<p>[^:]+):sts::(?P<acct>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


def state_key(tenant_id: str, account_id: str, region: str) -> str:
    """The state object of one scope in the state bucket (the roots' backend key)."""
    return f"tenants/{tenant_id}/{account_id}/{region}/terraform.tfstate"


def plan_key(tenant_id: str, account_id: str, region: str, day: dt.date) -> str:
    """Where the tenant's pipeline leaves the day's refresh-only plan JSON of one scope."""
    return f"plans/{tenant_id}/{account_id}/{region}/{day.isoformat()}.json"


def scope_label(account_id: str, region: str) -> str:
    """``aws:<account>:<region>``, as the inventory names an AWS scope."""
    return f"aws:{account_id}:{region}"


def partition(region: str) -> str:
    """The AWS partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def orchestrator_role_arn(account_id: str, region: str) -> str:
    """The execution role the tenant's connection assumes in the account (``EXECUTION_ROLE``)."""
    return f"arn:{partition(region)}:iam::{account_id}:role/{EXECUTION_ROLE}"


def role_arn(principal_arn: str) -> str:
    """The IAM role behind an assumed-role session ARN (what CloudTrail names as the session's issuer);
    any other ARN as it is."""
    match = _ASSUMED_ROLE.match(principal_arn)
    if match is None:
        return principal_arn
    return f"arn:{match['p']}:iam::{match['acct']}:role/{match['role']}"


def caller_arns_in_state(state: TerraformState) -> list[str]:
    """The ``arn`` of every ``data.aws_caller_identity`` in the state: who ran the last apply."""
    return sorted(
        {
            str(i.attributes["arn"])
            for i in state.instances
            if i.mode == "data"
            and i.type == "aws_caller_identity"
            and i.attributes
            and i.attributes.get("arn")
        }
    )


def caller_arns_in_plan(plan: Mapping[str, Any]) -> list[str]:
    """The ``arn`` of every ``data.aws_caller_identity`` in a plan's ``prior_state``."""
    found: set[str] = set()
    modules = [((plan.get("prior_state") or {}).get("values") or {}).get("root_module") or {}]
    while modules:
        module = modules.pop()
        modules.extend(module.get("child_modules") or ())
        for resource in module.get("resources") or ():
            if resource.get("mode") == "data" and resource.get("type") == "aws_caller_identity":
                arn = (resource.get("values") or {}).get("arn")
                if arn:
                    found.add(str(arn))
    return sorted(found)


def excluded_principals(
    account_id: str, region: str, terraform_callers: Iterable[str], configured: Iterable[str] = ()
) -> tuple[str, ...]:
    """Whose writes are never a drift's author in this scope: the orchestrator's execution role,
    Terraform's principals (the session ARN and its role) and the deployment's own list."""
    names = {orchestrator_role_arn(account_id, region), *configured}
    for arn in terraform_callers:
        names |= {arn, role_arn(arn)}
    return tuple(sorted(n for n in names if n))


GLOBAL_TRAIL = "global"
"""The trail of a global service's events: IAM's are recorded in one region of the partition."""
GLOBAL_EVENTS_REGION = {"aws": "us-east-1", "aws-us-gov": "us-gov-west-1", "aws-cn": "cn-north-1"}
"""Where CloudTrail records IAM's events, whatever region the call named (CloudTrail User Guide,
"CloudTrail concepts", Global service events: since November 22, 2021 "events created by [...] AWS
Identity and Access Management, and AWS STS are recorded in the Region in which they were created, the US
East (N. Virginia) Region, us-east-1"; GovCloud's and China's partitions each have their one region)."""


def trail_of(drift: Drift, aliases: Mapping[str, str]) -> str:
    """Whose CloudTrail records the writes on a drift's resource: IAM's global trail (:data:`GLOBAL_TRAIL`),
    else the provider configuration it is managed through (``""``, the scope's account and region;
    ``evidence``, the platform's account, where the evidence bucket lives). A state says (``aliases``:
    address -> alias); a plan does not, so there the S3 bucket types, which only the evidence bucket's
    module declares, are taken as the evidence bucket's."""
    if drift.type.startswith("aws_iam_"):
        return GLOBAL_TRAIL
    if drift.address in aliases:
        return aliases[drift.address]
    return "evidence" if drift.type.startswith("aws_s3_bucket") else ""


def lookup_names(result: ScopeResult, aliases: Mapping[str, str]) -> dict[str, list[str]]:
    """The values CloudTrail is asked about by ``ResourceName``, by trail: every identifying attribute of
    every drift (cycle-owned differences need no author)."""
    names: dict[str, set[str]] = {}
    for d in result.differences:
        if d.classification == "drift":
            names.setdefault(trail_of(d, aliases), set()).update(d.identity.values())
    return {trail: sorted(values) for trail, values in sorted(names.items())}


def unattributed_event_names(result: ScopeResult, aliases: Mapping[str, str]) -> dict[str, list[str]]:
    """The write events of the types whose drifts have no author yet (the ``EventName`` fallback), by
    trail."""
    names: dict[str, set[str]] = {}
    for d in result.differences:
        if d.classification == "drift" and d.changed_by is None and (rule := rule_for(d.type)) is not None:
            names.setdefault(trail_of(d, aliases), set()).update(rule.write_events)
    return {trail: sorted(values) for trail, values in sorted(names.items())}


def choose_engine(requested: EngineChoice, plans_found: Mapping[str, bool]) -> Engine:
    """The run's engine: ``plan_json`` when asked for, or when ``auto`` and every scope has its plan."""
    if requested == "plan":
        return "plan_json"
    if requested == "auto" and plans_found and all(plans_found.values()):
        return "plan_json"
    return "state_compare"


def report_day(requested: str | None, logical_date: dt.datetime | None, run_after: dt.datetime) -> dt.date:
    """The day a run reports: ``requested`` (YYYY-MM-DD), else the logical date's, else ``run_after``'s."""
    if requested:
        return dt.date.fromisoformat(requested)
    return (logical_date or run_after).astimezone(dt.UTC).date()


def late_note(day: dt.date, read_at: dt.datetime, engine: Engine) -> str | None:
    """The note a state-engine report for an earlier day carries: it shows what was live when read."""
    read_day = read_at.astimezone(dt.UTC).date()
    if engine == "state_compare" and read_day > day:
        return (
            f"report for {day.isoformat()} read on {read_day.isoformat()}: a state can only be compared "
            "with what is live when it is read, so this is the live state of that later day"
        )
    return None


def provider_alias(provider: str) -> str:
    """The provider configuration's alias in a state's ``provider`` address
    (``provider["registry.terraform.io/hashicorp/aws"].evidence`` -> ``evidence``; none -> ``""``)."""
    tail = provider.rsplit("]", 1)[-1]
    return tail.lstrip(".")
