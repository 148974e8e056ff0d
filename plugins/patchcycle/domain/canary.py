"""Which prod hosts go first (the canary) and which follow, decided before anything is patched.

The canary is the tenant's named hosts (those in the stage) plus enough others to reach its share,
rounded up; the others are taken from the least critical hosts first (then by name), so a bad patch
meets the cheapest hosts first. The canary never takes the whole stage when the stage has two hosts
or more, so there is always a rest to protect; a one-host stage is all canary. Canary hosts are judged
on their own: they are never counted in the main batch's error budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import Canary

CANARY = "canary"  # the batch of a stage patched first
MAIN = "main"  # the rest of a stage with a canary, patched after the canary passed

_CRITICALITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class CanarySplit:
    """A stage's hosts split into the canary (patched first) and the rest, and the reason for the split."""

    canary: tuple[str, ...]  # host ids, patched and verified first
    rest: tuple[str, ...]  # host ids, patched only if the canary stayed healthy
    reason: str


def split_canary(hosts: Sequence[Mapping[str, Any]], canary: Canary) -> CanarySplit:
    """Split a stage's hosts (inventory rows) into the canary and the rest."""
    if not hosts:
        return CanarySplit((), (), "no hosts in the stage")
    if not canary.share and not canary.hosts:
        return CanarySplit((), tuple(h["host_id"] for h in hosts), "no canary configured")
    named = {n.lower() for n in canary.hosts}
    chosen = [h for h in hosts if str(h.get("name") or "").lower() in named or h["host_id"] in canary.hosts]
    wanted = max(len(chosen), math.ceil(len(hosts) * canary.share))
    limit = len(hosts) - 1 if len(hosts) > 1 else 1
    wanted = min(max(wanted, 1), limit)
    others = sorted(
        (h for h in hosts if h not in chosen),
        key=lambda h: (
            _CRITICALITY_ORDER.get(str(h.get("criticality")), 1),
            str(h.get("name") or ""),
            h["host_id"],
        ),
    )
    picked = chosen[:limit] + others[: max(0, wanted - len(chosen))]
    ids = {h["host_id"] for h in picked}
    missing = sorted(named - {str(h.get("name") or "").lower() for h in hosts})
    reason = f"{len(picked)} of {len(hosts)} hosts first (share {canary.share:g}"
    reason += f", named {sorted(canary.hosts)}" if canary.hosts else ""
    reason += f"; named hosts not in this stage: {missing})" if missing else ")"
    return CanarySplit(
        tuple(h["host_id"] for h in hosts if h["host_id"] in ids),
        tuple(h["host_id"] for h in hosts if h["host_id"] not in ids),
        reason,
    )
