"""OS Config (VM Manager) v1 over REST: inventories, vulnerability reports and patch jobs of GCE instances,
and OS policy assignments with their rollouts and reports (:mod:`.os_policies`).

What ``google-cloud-os-config`` sends with ``transport="rest"`` (query ``$alt=json;enum-encoding=int``,
enums as integers in bodies and queries) is parsed with the library's own message types, so integers
and enum names are both accepted and an unknown field is a 400 naming it, as Google answers. Every
answer goes through the same types, so enums come back as names and int64 counters as JSON strings.

Instances: project = ``host.account``, zone = ``host.region``, id = ``host.host_id``, name =
``host.name``. An instance whose agent is ``NO_AGENT_DETECTED`` has no inventory and no vulnerability
report (it is absent from the lists): that is how VM Manager shows a missing agent.

Patch jobs are laid out when they are executed (deterministically, from ``state.timings``) and revealed
lazily: STARTED -> INSTANCE_LOOKUP -> PATCHING -> SUCCEEDED | COMPLETED_WITH_ERRORS | TIMED_OUT |
CANCELED; each instance PENDING -> NOTIFIED -> STARTED -> DOWNLOADING_PATCHES -> APPLYING_PATCHES ->
[REBOOTING] -> SUCCEEDED | SUCCEEDED_REBOOT_REQUIRED | FAILED (or NO_AGENT_DETECTED / TIMED_OUT). An
instance's effect is applied once, through ``state.install``, the first time anyone reads after it ended
(any OS Config read, or the ground truth), and recorded as a ``gcp.patchJob`` action on the host.

Rollouts follow the documented disruption budget: per zone, at most ``budget`` instances are disrupted
at once, and a failed instance keeps consuming its slot. ZONE_BY_ZONE patches zones one after another
(sorted by name); once a zone's failures reach its budget the job stops: the instances not yet started
(in that zone and every later zone) stay PENDING, never contacted, and the job ends
COMPLETED_WITH_ERRORS with an ``errorMessage`` naming the zone and the budget. CONCURRENT_ZONES starts
every zone at once; a zone whose budget is used up stops starting instances, the other zones go on.
Without a rollout every instance is patched at once.

Where things are, as in moto: :mod:`.models` (the instances as OS Config finds them, their inventories
and vulnerability reports, and what a patch job selects, lays out and does), :mod:`.os_policies` (OS
policy assignments, their rollouts and reports, falcon-installer in an exec resource), :mod:`.responses`
(the HTTP endpoints and the wire format), :mod:`.urls` (which path and method reach which operation),
:mod:`.exceptions` (one class per google.rpc status).
"""

from fleetsim.gcp.osconfig.responses import OsConfigApi

__all__ = ["OsConfigApi"]
