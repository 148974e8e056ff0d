"""What a stage's results mean: each host's final state and whether the stage stayed within budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import RateControl

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


def classify_patched_host(
    invocation_status: str | None,
    patch_state: Mapping[str, Any] | None,
    status_details: str | None = None,
) -> tuple[str, str | None]:
    """A targeted host's final state from its Run Command status and its patch state after the install.

    SSM reports both kinds of timeout as Status ``TimedOut``; StatusDetails says which one.
    """
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
    if not patch_state or patch_state.get("Operation") != "Install":
        return NON_COMPLIANT, "no patch state recorded after the install"
    if patch_state.get("FailedCount", 0):
        return FAILED, f"{patch_state['FailedCount']} patch(es) failed to install"
    if patch_state.get("MissingCount", 0):
        return NON_COMPLIANT, f"{patch_state['MissingCount']} approved patch(es) still missing"
    return PATCHED, None


@dataclass(frozen=True)
class StageVerdict:
    succeeded: bool
    targets: int
    errors: int
    allowed_errors: int
    reason: str | None


def stage_verdict(final_states: Mapping[str, str], rate_control: RateControl) -> StageVerdict:
    """A stage fails when more hosts failed than its MaxErrors allows (the same rule SSM applies)."""
    targets = len(final_states)
    errors = sum(1 for s in final_states.values() if s in (FAILED, NON_COMPLIANT))
    not_run = sum(1 for s in final_states.values() if s == NOT_RUN)
    allowed = rate_control.max_errors_for(targets)
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


def classify_arc_host(sent: Mapping[str, Any], still: list[str] | None) -> tuple[str, str | None]:
    """An Arc machine's final state from its installPatches operation and the assessment after it.

    ARM's long-running-operation protocol reports success by HTTP status only, so the result body's own
    status, failed count and reboot status decide.
    """
    if sent.get("not_sent"):
        return NOT_RUN, "not sent: the stage's error budget was exhausted first"
    if sent.get("nothing_to_install"):
        return _still_missing(still)
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


def classify_gcp_host(sent: Mapping[str, Any], still: list[str] | None) -> tuple[str, str | None]:
    """A GCE instance's final state from its patch job's instance details and the inventory after it."""
    state = sent.get("state")
    if sent.get("nothing_to_install"):
        return _still_missing(still)
    if not state:
        return NOT_RUN, "no patch job was sent for this instance"
    if state == "SUCCEEDED":
        return _still_missing(still)
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
