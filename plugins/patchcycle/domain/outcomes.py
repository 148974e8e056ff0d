"""What a stage's results mean: each host's final state and whether the stage stayed within budget."""

from __future__ import annotations

from collections.abc import Mapping
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
FINAL_STATES = (PATCHED, FAILED, HELD, NON_COMPLIANT, EXCEPTED, NOT_RUN, OUT_OF_SCOPE)


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
