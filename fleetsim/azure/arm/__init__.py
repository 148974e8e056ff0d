"""Azure Resource Manager for Arc-enabled servers, as the unmodified azure-mgmt SDKs reach it.

Serves the hosts whose ``cloud`` is ``"azure"`` (seeded by :mod:`fleetsim.seed`), following the 2024-07-10
HybridCompute swagger and research §1 / §7:

ARM (``Authorization: Bearer <anything>`` required; paths matched case-insensitively; ``api-version``
accepted whatever its value):

- ``GET /subscriptions/{sub}/providers/Microsoft.HybridCompute/machines`` and
  ``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines``: machines
  sorted by name, :data:`MACHINES_PAGE` per page, absolute ``nextLink`` (``$skiptoken`` = offset) built
  from the request's Host. Unknown subscription 404 ``SubscriptionNotFound``, unknown resource group 404
  ``ResourceGroupNotFound``.
- ``GET .../machines/{name}``: one machine, 404 ``ResourceNotFound`` when unknown.
- ``GET .../machines/{name}/extensions``: the machine's extensions (CrowdStrike Falcon sensor when the host
  runs one, Azure Monitor agent, and those clients put).
- ``PUT`` / ``GET .../machines/{name}/extensions/{extension}``: CrowdStrike's Falcon sensor extension as a
  long-running operation (``Azure-AsyncOperation`` ``.../locations/{loc}/operationStatus/{id}``,
  ``Location`` ``.../operationResults/{id}``), run as its handler runs falcon-installer; see
  :mod:`.extensions`.
- ``POST .../machines/{name}/installPatches`` (MachineInstallPatchesParameters) → 202, empty body, absolute
  ``Location`` (``/subscriptions/{sub}/providers/Microsoft.HybridCompute/locations/{loc}/operationStatuses/
  {id}``) and ``Retry-After: 1``. 400 ``InvalidParameter`` for a body the service would refuse, 409
  ``Conflict`` while another install runs on the machine. ``GET`` on the Location answers 202 (same
  headers) until the operation's end, then 200 with the MachineInstallPatchesResult, every time after.
  The operation takes ``timings.invocation_seconds`` (deterministic per operation and machine).

  Which patches (see :func:`plan_install`, after Microsoft Learn "How to programmatically manage updates
  for Azure Arc-enabled servers", "Update deployment" > "Request body"): of the catalog patches the
  machine misses or failed before, the union of those whose classification (Linux: Critical = security
  patch of Critical severity, Security, Other) is in ``classificationsToInclude`` and those named by
  ``linuxParameters.packageNameMasksToInclude`` (``name_version`` or ``name=version``: that version;
  a bare name or glob: the newest available version of each package) or
  ``windowsParameters.kbNumbersToInclude`` (digits, without "KB"); Windows then keeps those published on
  or before ``maxPatchPublishDate``; finally those matching ``packageNameMasksToExclude`` /
  ``kbNumbersToExclude`` are dropped (excluded). Windows patch-name masks are not emulated (400);
  ``excludeKbsRequiringReboot`` is ignored.

  Effects are applied once, when the fleet first advances past the operation's end (any Azure request, the
  ground truth, another vendor reading hosts), through ``FleetState.install`` (shared with every cloud),
  and recorded as the ground-truth action ``azure.installPatches``; a Disconnected machine's operation
  fails with ``errorDetails.code`` ``MachineDisconnected`` and changes nothing. Status: Succeeded;
  CompletedWithWarnings when some patches failed and others installed; Failed when every selected patch
  failed. rebootStatus: Completed when the machine rebooted (rebootSetting Always, or a kernel / Windows
  update under IfRequired), Required when one needed a reboot under Never, NotNeeded otherwise. An install
  is followed by an assessment, so Resource Graph then reports the machine as of the install's end
  (startedBy "User").
- ``POST .../machines/{name}/assessPatches`` (no body) → the same long-running protocol (202 + ``Location``
  + ``Retry-After``, 409 ``Conflict`` while an install or assessment runs on the machine, same duration).
  The final 200 is the MachineAssessPatchesResult: status Succeeded, ``assessmentActivityId`` (the
  operation id), ``rebootPending`` (as the previous assessment knew it),
  ``availablePatchCountByClassification`` with all nine keys (critical, security, other, updateRollup,
  featurePack, servicePack, definition, tools, updates) counted over the catalog patches the machine
  misses or failed when the operation ends (Linux: Critical = security patch of Critical severity,
  Security, Other; Windows by classification), startDateTime, lastModifiedDateTime, startedBy "User",
  patchServiceUsed, osType, errorDetails null. It changes no patch; it replaces the assessment Resource
  Graph serves (activity id, times, startedBy "User"), and is recorded as the ground-truth action
  ``azure.assessPatches``. A Disconnected machine's assessment fails (status Failed, zero counts,
  ``errorDetails.code`` ``MachineDisconnected``) and leaves Resource Graph's assessment as it was.
- Throttling (scenario ``azure.throttle``, per subscription, over every ``/subscriptions/{sub}/...``
  request): the first ``requests`` requests, then every ``every``-th, get 429 ``TooManyRequests`` with
  ``Retry-After`` and ``x-ms-ratelimit-remaining-subscription-reads: 0``.
- Lost answers (scenario ``azure.lost_install_answers``, per subscription): the first n installPatches
  requests start their operation, but the caller gets 500 ``InternalServerError``.

Azure Resource Graph (``POST /providers/Microsoft.ResourceGraph/resources``, research §1.8; not throttled):
KQL cannot be emulated, so only these query shapes are answered (anything else is 400 ``BadRequest``
naming the shapes)::

    patchassessmentresources
    | where type =~ 'microsoft.hybridcompute/machines/patchassessmentresults'
    | where resourceGroup in~ ('rg-a', 'rg-b')           (optional)
    | order by id asc                                     (optional)

where the type may also be ``.../patchassessmentresults/softwarepatches`` and ``=~`` may be ``==``; and
the same shapes over ``patchinstallationresources`` with type ``.../patchinstallationresults`` (one row
per install: its MachineInstallPatchesResult) or ``.../patchinstallationresults/softwarepatches`` (one
row per update the install considered: installationState Installed / Failed / NotSelected / Excluded,
patchName, version, kbId, classifications, publishedDateTime, rebootRequired, rebootBehavior).

Rows are the table's full rows (no projection), ordered by id, all ids lower-cased as Resource Graph
reports them: ``{id, name, type, tenantId, location, resourceGroup, subscriptionId, properties}``.
A summary row (``<machine id>/patchassessmentresults/latest``) has ``properties`` {status,
assessmentActivityId, rebootPending, availablePatchCountByClassification (Linux: critical, security,
other; Windows: critical, security, updateRollup, featurePack, servicePack, definition, tools, updates),
startDateTime, lastModifiedDateTime, startedBy, patchServiceUsed, osType, errorDetails}; a patch row
(``.../latest/softwarepatches/<patch guid>``), one per patch the machine misses or failed, has
``properties`` {patchName (Linux package name / Windows update title), version, kbId (Windows),
classifications [..], msrcSeverity (Windows), patchId, publishedDateTime (null for Linux, as Learn's
query-logs page says), lastModifiedDateTime}. The
assessment is derived from the machine's current missing/failed sets. Scope: the body's
``subscriptions`` (all of fleetsim's when absent). Paging: ``options.$top`` (1..1000, default 100) and
an opaque ``$skipToken`` bound to the query and scope; ``resultFormat`` must be ``objectArray``.

Calls counted in ``state.calls``: ``azure.arm.<swagger operationId>`` (``Machines_ListBySubscription``,
``Machines_ListByResourceGroup``, ``Machines_Get``, ``MachineExtensions_List``, ``Machines_InstallPatches``,
``Machines_AssessPatches``, ``OperationStatus_Get``, ``MachineExtensions_CreateOrUpdate``,
``MachineExtensions_Get``, ``ExtensionOperationStatus_Get``, ``ExtensionOperationResults_Get``),
``azure.arm.throttled`` (a 429 counts only there), ``azure.arm.unauthenticated``, ``azure.arm.unrouted``,
and ``azure.resourcegraph.Resources``.

Where things are, as in moto: :mod:`.models` (the fleet as Azure sees it, and what an operation does),
:mod:`.responses` (the HTTP endpoints), :mod:`.urls` (which path and method reach which operation),
:mod:`.graph` (Resource Graph's query shapes and paging), :mod:`.extensions` (machine extensions and their
operations), :mod:`.exceptions` (one class per error code).
"""

from fleetsim.azure.arm.responses import ArmApi

__all__ = ["ArmApi"]
