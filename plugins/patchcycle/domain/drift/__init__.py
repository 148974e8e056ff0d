"""Infrastructure drift: what Terraform declares against what is live, for the daily drift report.

Two engines behind one report (docs/design/iac-drift.md):

1. :mod:`.plan_json` reads a refresh-only plan in Terraform's JSON output format, where Terraform and
   its providers run (production).
2. :mod:`.state` reads the state file (format version 4) and compares each managed resource of a
   supported type with a live view the hooks read, without any provider.

Each difference is classified (:mod:`.registry`): owned by the cycle (an SSM baseline's approval dates
and description), or drift to ratify or remediate; a resource no engine understands is unchecked, never
clean. :mod:`.cloudtrail` names who made a drift. :mod:`.model` holds the report, its trend and what the
cycle's pre-flight reads. Pure: the DAG reads plans, states, live objects and events, and passes them in.
"""

from __future__ import annotations

from patchcycle.domain.drift.cloudtrail import attach_authors, who_changed
from patchcycle.domain.drift.model import (
    ChangeAuthor,
    Drift,
    DriftInputError,
    DriftReport,
    OpenDrift,
    PlanFailedError,
    ScopeError,
    ScopeResult,
    TrendPoint,
    UncheckedResource,
    UnsupportedPlanFormatError,
    UnsupportedStateVersionError,
    build_report,
    drift_trend,
    open_drift_on,
)
from patchcycle.domain.drift.plan_json import PlanExitStatus, plan_exit_status, read_plan
from patchcycle.domain.drift.registry import REGISTRY, AttributeRule, TypeRule, rule_for
from patchcycle.domain.drift.state import StateInstance, TerraformState, compare, compare_state, read_state
from patchcycle.domain.drift.values import SENSITIVE

__all__ = [
    "REGISTRY",
    "SENSITIVE",
    "AttributeRule",
    "ChangeAuthor",
    "Drift",
    "DriftInputError",
    "DriftReport",
    "OpenDrift",
    "PlanExitStatus",
    "PlanFailedError",
    "ScopeError",
    "ScopeResult",
    "StateInstance",
    "TerraformState",
    "TrendPoint",
    "TypeRule",
    "UncheckedResource",
    "UnsupportedPlanFormatError",
    "UnsupportedStateVersionError",
    "attach_authors",
    "build_report",
    "compare",
    "compare_state",
    "drift_trend",
    "open_drift_on",
    "plan_exit_status",
    "read_plan",
    "read_state",
    "rule_for",
    "who_changed",
]
