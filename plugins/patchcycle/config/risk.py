"""A tenant's risk policy: which patches skip the approve-after-days wait (CISA KEV, an EPSS threshold),
and how an out-of-band zero-day cycle runs (its emergency soak and change-window policy, and who approved
them).

Off by default: a tenant without a ``risk`` section plans exactly as its baselines say and has no zero-day
cycle.
"""

from datetime import date
from typing import Literal

from pydantic import ConfigDict, Field

from patchcycle.config.vocabulary import ConfigModel, NonEmptyStr, Share

EmergencyWindow = Literal["patch_outside_window", "wait_for_window"]


class ZeroDayPolicy(ConfigModel):
    """How the tenant's zero-day cycle (``zero_day__<tenant>``) runs: the same stages, backups, canary
    and health gates as the monthly cycle, with an emergency soak and change-window policy that a named
    person approved (both are recorded in the cycle's evidence with the approver)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emergency_soak_hours: float = Field(ge=0, le=168)
    """Replaces every environment's soak in a zero-day cycle (0: none)."""
    emergency_change_window: EmergencyWindow
    """``patch_outside_window``: environments with a change window are patched at once, as an emergency
    change; ``wait_for_window``: they wait for their window as in the monthly cycle."""
    approver: NonEmptyStr
    """Who approved this emergency policy (recorded in every zero-day pack)."""
    approver_role: NonEmptyStr
    approved_on: date
    automatic: bool = True
    """Start a zero-day cycle when the daily feed refresh sees a new KEV entry affecting the tenant's hosts
    (an asset event); off: only by hand from the trigger form."""
    starts_first: Literal["zero_day", "monthly"] = "zero_day"
    """Which cycle starts first when a zero-day run and a monthly run are both waiting to start. A cycle
    that has started is never interrupted: the other always waits until it ends (see
    ``patchcycle.domain.cycle_gate``). The default lets the emergency go first."""


class RiskPolicy(ConfigModel):
    """What threat intelligence changes about the tenant's plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast_track_kev: bool = False
    """Approve, without the approve-after-days wait, a patch the baseline would otherwise approve when one of
    its CVEs is on CISA's KEV list as of the cycle date (dateAdded on or before it)."""
    fast_track_epss_at_least: Share | None = None
    """Likewise when one of its CVEs has an EPSS probability at or above this (0..1); off when absent."""
    zero_day: ZeroDayPolicy | None = None
    """The tenant's zero-day cycle; without it the tenant has none."""

    @property
    def fast_track(self) -> bool:
        """Whether the regular plan fast-tracks anything."""
        return self.fast_track_kev or self.fast_track_epss_at_least is not None
