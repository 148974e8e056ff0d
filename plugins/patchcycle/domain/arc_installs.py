"""How a stage's Azure Arc machines are patched: what each ``installPatches`` asks for, and which
machines each round starts. Pure: the patch operator keeps the state record, calls the hook, and
defers; these functions decide.

``installPatches`` has no batch form and takes no idempotency key, so the rate control is applied
here, machine by machine: at most MaxConcurrency in flight, and no new machine started once the
failures exceed MaxErrors (the rule SSM applies to a Run Command's targets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import RateControl
from patchcycle.domain import rates
from patchcycle.domain.catalog_arc import arc_package_mask

ARC_MAX_DURATION = "PT2H"  # per machine; Update Manager stops an install that runs longer


def install_parameters(
    patches: Sequence[Mapping[str, Any]], windows: bool, reboot: str = "IfRequired"
) -> dict[str, Any]:
    """The installPatches body that installs exactly the plan's patches for one machine, and nothing
    else: Linux a versioned mask ``name_version`` per package, Windows the KB numbers; no
    ``classificationsToInclude``, whose updates Update Manager would install in addition to the named
    ones; reboot if an update requires it (a kernel only takes effect after one).

    Microsoft Learn, "How to programmatically manage updates for Azure Arc-enabled servers"
    (https://learn.microsoft.com/azure/update-manager/manage-arc-enabled-servers-programmatically),
    "Update deployment" > "Request body": kbNumbersToInclude / packageNameMasksToInclude are installed
    "over and above" the classifications' updates. The HybridCompute swagger 2024-07-10
    (definitions/LinuxParameters, WindowsParameters) requires none of their properties, so the
    classifications are left out. ``maxPatchPublishDate`` is not sent: it can only narrow the named KBs,
    and no document says how it combines with them. A package the plan froze without a version can only
    be named bare (the newest is installed); verify reads back what was installed either way.
    """
    body: dict[str, Any] = {"maximumDuration": ARC_MAX_DURATION, "rebootSetting": reboot}
    if windows:
        kbs = sorted({str(p["kb"]).upper().removeprefix("KB") for p in patches if p.get("kb")})
        body["windowsParameters"] = {"kbNumbersToInclude": kbs, "excludeKbsRequiringReboot": False}
    else:
        masks = sorted(
            {
                arc_package_mask(p["package"], p.get("version"), p.get("epoch"))
                for p in patches
                if p.get("package")
            }
        )
        body["linuxParameters"] = {"packageNameMasksToInclude": masks}
    return body


def planned_patches(
    plan: Mapping[str, Any], os_family: str, patch_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The plan's approved patches (their JSON) of one OS family that an install selection names."""
    wanted = set(patch_ids)
    return [p for p in plan.get("approved", {}).get(os_family, []) if p["id"] in wanted]


def result_failed(result: Mapping[str, Any] | None) -> bool:
    """Whether an installPatches result counts against the error budget: not ``Succeeded``, or
    succeeded with failed patches. No result (nothing to install, answer lost) is not a failure here;
    verify judges those hosts by their assessment."""
    if not result:
        return False
    return result.get("status") != "Succeeded" or bool(result.get("failedPatchCount"))


def answers_lost(operations: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any]) -> list[str]:
    """Machines an earlier attempt meant to start (intent recorded) without recording ARM's answer.

    installPatches takes no idempotency key and no API lists a machine's running installs, so these
    are not sent again (at most once): each is given no result, and verify judges it by its assessment.
    """
    return sorted(
        host_id
        for host_id, op in operations.items()
        if op.get("intent_at") and not op.get("location") and host_id not in results
    )


@dataclass(frozen=True)
class ArcRound:
    """One round's decision: the machines to start now (in order), whether the error budget stopped
    the stage, and the machines it leaves unsent."""

    start: list[str]
    stopped: bool
    errors: int
    allowed_errors: int
    not_sent: list[str]


def plan_round(
    machines: Sequence[str],
    operations: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any] | None],
    rate: RateControl,
) -> ArcRound:
    """Which of the stage's ``machines`` to start in this round.

    ``operations``: the machines started (or meant to be) so far; ``results``: the answers of those
    that finished. Slots are MaxConcurrency of the stage's machines, less those still in flight. When
    the failures exceed MaxErrors no machine is started and every machine not yet started is unsent.
    """
    allowed = rates.allowed_errors(rate, len(machines))
    errors = sum(1 for r in results.values() if result_failed(r))
    queued = [h for h in sorted(machines) if h not in operations]
    if errors > allowed:
        return ArcRound(start=[], stopped=True, errors=errors, allowed_errors=allowed, not_sent=queued)
    in_flight = sum(1 for h in operations if h not in results)
    free = max(0, rates.concurrency(rate, len(machines)) - in_flight)
    return ArcRound(start=queued[:free], stopped=False, errors=errors, allowed_errors=allowed, not_sent=[])


def wake_after(pending: int) -> int:
    """How many in-flight installs must finish before the next round: half of them (at least one),
    so free slots are refilled without a round per machine."""
    return max(1, pending // 2)
