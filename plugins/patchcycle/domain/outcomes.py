"""What a stage's results mean: each host's final state and whether the stage stayed within budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import RateControl
from patchcycle.domain import rates

# Final states a host can end a cycle in (the evidence vocabulary).
PATCHED = "patched"
FAILED = "failed"
HELD = "held"
NON_COMPLIANT = "non_compliant"
EXCEPTED = "excepted"
NOT_RUN = "not_run"
OUT_OF_SCOPE = "out_of_scope"
# Nothing installed or judged: the host's cloud could not tell what it is missing (its assessment could
# not be read), so it is neither compliant nor known to be non-compliant. Evidence schema 1.1.
NOT_ASSESSED = "not_assessed"
FINAL_STATES = (PATCHED, FAILED, HELD, NON_COMPLIANT, EXCEPTED, NOT_RUN, OUT_OF_SCOPE, NOT_ASSESSED)


def classify_patched_host(  # noqa: C901 - the decision table of SSM's documented invocation statuses and patch-state counts, kept in one place so a reader sees every verdict
    invocation_status: str | None,
    patch_state: Mapping[str, Any] | None,
    status_details: str | None = None,
    *,
    planned: Mapping[str, str] | None = None,
    tenant_baseline_id: str | None = None,
    unreadable: str | None = None,
    nothing_to_install: bool = False,
    installed_after: str | dt.datetime | None = None,
) -> tuple[str, str | None]:
    """An SSM host's final state from its Run Command status, the plan's items as SSM reports them on
    the host after the install (``planned``: plan patch id -> state, see
    :func:`patchcycle.domain.catalog.planned_item_states`), and its patch state (supporting data).

    Verify judges the plan, never a count that measures something else: SSM's patch-state counts are
    measured against the baseline the instance used (InstancePatchState.BaselineId), so they speak for
    a host only when that is the tenant's own baseline. A host with nothing planned (or nothing planned
    that applies to it) is patched only when that assessment says nothing approved is missing or
    failed. A host whose state cannot be read is ``not_assessed`` with the reason.
    SSM reports both kinds of timeout as Status ``TimedOut``; StatusDetails says which one.
    ``installed_after`` is when the install command was sent (SSM's RequestedDateTime): a patch state
    from a later Scan is as current as the install's own.
    """
    if not nothing_to_install:
        if invocation_status is None:
            return NOT_RUN, "no command invocation recorded"
        if invocation_status == "Cancelled":
            return NOT_RUN, "not sent: the stage's error budget was exhausted first"
        if invocation_status == "TimedOut" and status_details == "Delivery Timed Out":
            return FAILED, "the agent did not receive the command (delivery timed out)"
        if invocation_status == "TimedOut":
            return FAILED, "patch install timed out"
        if invocation_status == "Failed":
            failed = (patch_state or {}).get("FailedCount", 0)
            return FAILED, "patch install failed" + (f" ({failed} patch(es) failed)" if failed else "")
        if invocation_status != "Success":
            return NOT_RUN, f"command still {invocation_status}"
    if unreadable:
        return NOT_ASSESSED, f"patch state could not be read: {unreadable}"
    if not patch_state:
        return NOT_ASSESSED, "no patch state recorded after the install"
    if not nothing_to_install and patch_state.get("Operation") != "Install":
        # The patch state is the last operation's (InstancePatchState.Operation: "Scan" or "Install").
        # A Scan that ended after the install was sent (a retry's plan, AWS's own scheduled Scan) holds
        # the current states just as well; one from before it says nothing about the install.
        last = patch_state.get("Operation")
        ended = _moment(patch_state.get("OperationEndTime"))
        sent = _moment(installed_after)
        if ended is None or sent is None or ended < sent:
            return NOT_ASSESSED, f"the last patch operation SSM recorded is {last}, from before the install"
    states = dict(planned or {})
    applicable = {pid: s for pid, s in states.items() if s != "NotReported"}
    if applicable:
        for state, final, what in (
            ("Failed", FAILED, "failed to install"),
            ("Missing", NON_COMPLIANT, "still missing"),
            ("InstalledPendingReboot", NON_COMPLIANT, "installed but pending a reboot"),
            ("OtherVersion", NON_COMPLIANT, "reported at another version than the plan's"),
        ):
            ids = sorted(pid for pid, s in applicable.items() if s == state)
            if ids:
                shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
                return final, f"{len(ids)} planned patch(es) {what}: {shown}"
        return PATCHED, None
    # Nothing planned applies: the cloud's own assessment, against the tenant's baseline, decides.
    if tenant_baseline_id is None:
        return NOT_ASSESSED, "nothing planned, and no tenant baseline to judge the host's patch state by"
    if patch_state.get("BaselineId") != tenant_baseline_id:
        return NOT_ASSESSED, (
            f"nothing planned, and the patch state was measured against baseline "
            f"{patch_state.get('BaselineId') or 'unknown'}, not the tenant's {tenant_baseline_id}"
        )
    if patch_state.get("FailedCount", 0):
        return FAILED, f"{patch_state['FailedCount']} approved patch(es) failed to install"
    if patch_state.get("MissingCount", 0):
        return NON_COMPLIANT, (
            f"{patch_state['MissingCount']} patch(es) the tenant's baseline approves are missing, "
            "none of them planned"
        )
    return PATCHED, None


def _moment(value: str | dt.datetime | None) -> dt.datetime | None:
    """An aware datetime from a boto3 datetime or ISO 8601 text (``2026-12-03 22:18:49+00:00``)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class StageVerdict:
    """A stage's result: hosts targeted, errors counted against MaxErrors, how many it allows, and why the
    stage failed (None when it succeeded)."""

    succeeded: bool
    targets: int
    errors: int
    allowed_errors: int
    reason: str | None


def stage_verdict(final_states: Mapping[str, str], rate_control: RateControl) -> StageVerdict:
    """A stage fails when more hosts failed than its MaxErrors allows (the same rule SSM applies)."""
    targets = len(final_states)
    # A host whose state after the install could not be read counts against the budget too: nothing
    # shows the install left it healthy, so it is not evidence that the stage may go on.
    errors = sum(1 for s in final_states.values() if s in (FAILED, NON_COMPLIANT, NOT_ASSESSED))
    not_run = sum(1 for s in final_states.values() if s == NOT_RUN)
    allowed = rates.allowed_errors(rate_control, targets)
    if errors > allowed:
        return StageVerdict(
            False, targets, errors, allowed, f"{errors} of {targets} hosts failed; max errors {allowed}"
        )
    if not_run:
        return StageVerdict(False, targets, errors, allowed, f"{not_run} of {targets} hosts were not patched")
    return StageVerdict(True, targets, errors, allowed, None)


def planned_still_missing(missing_ids: list[str] | None, planned: Sequence[str]) -> list[str] | None:
    """The planned patches the cloud still reports missing after an install (None: it reported nothing)."""
    if missing_ids is None:
        return None
    wanted = set(planned)
    return sorted(p for p in missing_ids if p in wanted)


def _still_missing(still: list[str] | None) -> tuple[str, str | None]:
    if still is None:
        return NON_COMPLIANT, "no patch assessment after the install"
    if still:
        shown = ", ".join(still[:5]) + (" ..." if len(still) > 5 else "")
        return NON_COMPLIANT, f"{len(still)} planned patch(es) still missing: {shown}"
    return PATCHED, None


def classify_arc_host(  # noqa: C901 - the decision table of an Arc installPatches answer (status, per-patch states, what is still missing), one verdict per row
    sent: Mapping[str, Any],
    still: list[str] | None,
    *,
    approvable_missing: list[str] | None = None,
    outside_plan: Sequence[str] = (),
) -> tuple[str, str | None]:
    """An Arc machine's final state from its installPatches operation and the assessment after it.

    ARM's long-running-operation protocol reports success by HTTP status only, so the result body's own
    status, failed count and reboot status decide. ``still``: the planned updates the assessment still
    lists (None: no assessment could be read, so the machine is not assessed). A machine with nothing
    planned is compliant only when its assessment lists no update the baseline may approve
    (``approvable_missing``). ``outside_plan``: updates the install reports installed that the plan does
    not hold (Update Manager's installation record), which make the machine non-compliant with the plan.
    """
    if sent.get("not_sent"):
        return NOT_RUN, "not sent: the stage's error budget was exhausted first"
    if sent.get("nothing_to_install"):
        if still is None:
            return NOT_ASSESSED, "nothing planned, and no patch assessment of the machine could be read"
        if approvable_missing:
            shown = ", ".join(approvable_missing[:5]) + (" ..." if len(approvable_missing) > 5 else "")
            return NON_COMPLIANT, (
                f"nothing planned, but the assessment lists {len(approvable_missing)} update(s) the "
                f"baseline may approve: {shown}"
            )
        return PATCHED, None
    if sent.get("answer_lost"):
        # Sent at most once: an attempt stopped between asking and recording the answer, and the
        # request was not repeated. Whatever happened, the machine's assessment shows the outcome.
        if still is None:
            return NOT_ASSESSED, "the install's answer was lost and no assessment could be read"
        if still:
            return NON_COMPLIANT, (
                f"the install's answer was lost (not sent again); "
                f"{len(still)} planned update(s) still missing"
            )
        return PATCHED, None
    if not sent.get("operation"):
        return NOT_RUN, "no install was started"
    result = sent.get("result")
    if not result:
        return FAILED, "installPatches did not finish before the wait ended"
    if result.get("status") == "Failed":
        detail = (result.get("errorDetails") or {}).get("message") or "no error details"
        return FAILED, f"installPatches failed: {detail}"
    if result.get("failedPatchCount"):
        return FAILED, f"{result['failedPatchCount']} patch(es) failed to install"
    if result.get("maintenanceWindowExceeded"):
        return NON_COMPLIANT, "the install ran out of its maximum duration"
    if result.get("rebootStatus") in ("Required", "Failed"):
        return NON_COMPLIANT, f"reboot {result['rebootStatus'].lower()} after the install"
    if outside_plan:
        shown = ", ".join(list(outside_plan)[:5]) + (" ..." if len(outside_plan) > 5 else "")
        return NON_COMPLIANT, f"installed {len(outside_plan)} update(s) outside the plan: {shown}"
    if still is None:
        return NOT_ASSESSED, "no patch assessment of the machine could be read after the install"
    return _still_missing(still)


def classify_rds_instance(
    sent: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[str, str | None]:
    """An RDS DB instance's final state from what was applied to it and how RDS reports it afterwards
    (``status``: DBInstanceStatus; ``pending``: the OS update still pending, if any)."""
    if not sent:
        return NOT_RUN, "no OS update was applied"
    if sent.get("nothing_to_install"):
        return PATCHED, None
    if sent.get("not_frozen") is not None:
        return NON_COMPLIANT, (
            f"RDS offers the OS update {sent['not_frozen']!r}, which the plan did not freeze; not applied"
        )
    if sent.get("error"):
        return FAILED, f"RDS refused the OS update: {sent['error']}"
    if not after:
        return FAILED, "no status from RDS after the OS update"
    status = after.get("status")
    if status != "available":
        return FAILED, f"DB instance {status} after the OS update (not available)"
    if after.get("pending") and str(after["pending"]).strip() == str(sent.get("description", "")).strip():
        return FAILED, "the OS update is still pending after it was applied (RDS did not apply it)"
    return PATCHED, None


GCP_NOT_STARTED = frozenset({"PENDING", "INACTIVE", "NOTIFIED", "ACKED", "NOT_STARTED"})


def classify_gcp_host(
    sent: Mapping[str, Any],
    still: list[str] | None,
    versions: Sequence[Mapping[str, Any]] = (),
) -> tuple[str, str | None]:
    """A GCE instance's final state from its patch job's instance details and the inventory after it.

    ``still``: the planned patches the instance's OS Config inventory shows still missing after the
    job, None when no inventory could be read (then the instance is :data:`NOT_ASSESSED`, never
    patched: nothing tells what it has). ``versions``: planned vs installed per planned package
    (``patchcycle.domain.inventory.gcp_installed_versions``).

    OS Config cannot pin a version: ``exclusivePackages`` take package names, and the package manager
    installs the newest version it has (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig,
    AptSettings and YumSettings). When the installed version is NEWER than the plan froze, the host is
    ``patched`` with the deviation named in its reason: a later build of the same package carries the
    earlier build's fixes (distribution updates are cumulative), no retry can install the frozen build
    through this API, and ``non_compliant`` would claim the fix is missing when it is not. The deviation
    is not hidden: the host record lists planned vs installed per package, and the reason says the
    installed build was never approved by the plan. An OLDER version is the plan still missing.
    """
    state = sent.get("state")
    if sent.get("nothing_to_install"):
        return _gcp_after(still, versions)
    if not state:
        return NOT_RUN, "no patch job was sent for this instance"
    if state == "SUCCEEDED":
        return _gcp_after(still, versions)
    if state == "SUCCEEDED_REBOOT_REQUIRED":
        return NON_COMPLIANT, "patched, but a reboot is still required"
    if state == "FAILED":
        return FAILED, f"patch job failed on the instance: {sent.get('failure_reason') or 'no reason given'}"
    if state == "TIMED_OUT":
        return FAILED, "patch job timed out on the instance"
    if state == "NO_AGENT_DETECTED":
        return FAILED, "no OS Config agent answered the patch job"
    if state in GCP_NOT_STARTED:
        why = sent.get("job_error") or f"job ended {sent.get('job_state')}"
        return NOT_RUN, f"not patched: the patch job stopped before this instance ({why})"
    return NOT_RUN, f"instance still {state} when the patch job ended ({sent.get('job_state')})"


def _gcp_after(still: list[str] | None, versions: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    if still is None:
        return NOT_ASSESSED, "no OS Config inventory of the instance could be read after the patch job"
    final, reason = _still_missing(still)
    if final != PATCHED:
        return final, reason
    newer = [v for v in versions if v.get("status") == "newer"]
    if newer:
        shown = "; ".join(f"{v['package']} {v['installed']} (planned {v['planned']})" for v in newer[:5])
        more = " ..." if len(newer) > 5 else ""
        return PATCHED, (
            f"installed newer than planned: {shown}{more}; OS Config patch jobs name packages without "
            "versions, so the newest build was installed, not the frozen one"
        )
    return PATCHED, None


def reboot_verdict(
    *,
    back: bool,
    agent: str | None,
    kernel: str | None,
    expected_kernel: str | None,
    rfm: bool | None,
    timeout_minutes: float,
) -> str | None:
    """Why a host the install reached is not healthy after its reboot; None when it is.

    Not back within the timeout (its agent still away), back on another kernel than the plan's, or
    with its Falcon sensor in reduced-functionality mode. A kernel no source reports is not judged.
    """
    if not back:
        away = agent or "not seen"
        return f"did not come back from its reboot within {timeout_minutes:g} minutes (agent {away})"
    if kernel and expected_kernel and kernel != expected_kernel:
        return f"running kernel {kernel} after the reboot, expected {expected_kernel}"
    if rfm:
        return "Falcon sensor in reduced-functionality mode after the reboot"
    return None


def rejected_stage(environment: str, approval: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The record of a stage its approver rejected before it started (``reason``: the approver's)."""
    return {
        "environment": environment,
        "status": "rejected",
        "reason": f"not approved: {reason}",
        "hosts": {},
        "approval": dict(approval),
    }


def stage_with_gates(
    stage: Mapping[str, Any],
    *,
    windows: list[Mapping[str, Any]],
    approval: Mapping[str, Any] | None,
    health: Mapping[str, Any] | None,
    canary_only: bool = False,
) -> dict[str, Any]:
    """A stage's verified record with its gates folded in: the change-window decisions, the approval,
    and the health gate. A stage whose health gate failed is a failed stage (its hosts were patched, but
    the next stage must not follow); ``canary_only`` when the record is the canary's (the rest of the
    stage not started), so the reason names the canary's gate."""
    out = dict(stage)
    if windows:
        out["windows"] = [dict(w) for w in windows]
    if approval is not None:
        out["approval"] = dict(approval)
    if health is None:
        return out
    out["health"] = dict(health)
    if not health["healthy"] and out["status"] == "succeeded":
        what = "canary health gate" if canary_only else "health gate"
        out.update(status="failed", reason=f"{what}: " + "; ".join(health["reasons"]))
    return out
