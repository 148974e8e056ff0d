"""Which ARM path and method reach which operation: the HybridCompute swagger's paths (2024-07-10),
matched case-insensitively as ARM matches them, each with its ``operationId`` (counted per call in
``state.calls`` as ``azure.arm.<operationId>``) and the :class:`~.responses.ArmApi` method answering it.
"""

from __future__ import annotations

import re

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
MACHINES = r"/providers/microsoft\.hybridcompute/machines"

ROUTES: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (re.compile(f"^{SUB}{MACHINES}/?$", re.I), "GET", "Machines_ListBySubscription", "_list"),
    (re.compile(f"^{RG}{MACHINES}/?$", re.I), "GET", "Machines_ListByResourceGroup", "_list"),
    (re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)$", re.I), "GET", "Machines_Get", "_get"),
    (
        re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)/extensions/?$", re.I),
        "GET",
        "MachineExtensions_List",
        "_extensions",
    ),
    (
        re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)/extensions/(?P<ext>[^/]+)$", re.I),
        "PUT",
        "MachineExtensions_CreateOrUpdate",
        "_put_extension",
    ),
    (
        re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)/extensions/(?P<ext>[^/]+)$", re.I),
        "GET",
        "MachineExtensions_Get",
        "_get_extension",
    ),
    (
        re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)/installpatches$", re.I),
        "POST",
        "Machines_InstallPatches",
        "_install",
    ),
    (
        re.compile(f"^{RG}{MACHINES}/(?P<name>[^/]+)/assesspatches$", re.I),
        "POST",
        "Machines_AssessPatches",
        "_assess",
    ),
    (
        re.compile(
            f"^{SUB}/providers/microsoft\\.hybridcompute/locations/(?P<loc>[^/]+)"
            "/operationstatuses/(?P<op>[^/]+)$",
            re.I,
        ),
        "GET",
        "OperationStatus_Get",
        "_operation",
    ),
    # A machine extension's Azure-AsyncOperation and Location (fleetsim.azure.arm.extensions).
    (
        re.compile(
            f"^{SUB}/providers/microsoft\\.hybridcompute/locations/(?P<loc>[^/]+)"
            "/operationstatus/(?P<op>[^/]+)$",
            re.I,
        ),
        "GET",
        "ExtensionOperationStatus_Get",
        "_extension_status",
    ),
    (
        re.compile(
            f"^{SUB}/providers/microsoft\\.hybridcompute/locations/(?P<loc>[^/]+)"
            "/operationresults/(?P<op>[^/]+)$",
            re.I,
        ),
        "GET",
        "ExtensionOperationResults_Get",
        "_extension_result",
    ),
)
