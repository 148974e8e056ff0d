"""fleetsim's HybridCompute and Resource Graph answers, held to Microsoft's machine-readable contracts.

Every JSON body fleetsim gives for an Arc operation Patchcycle uses is checked strictly against the
model the Azure SDK generates from Microsoft's REST specification (azure-mgmt-hybridcompute 10.0.0,
from Azure/azure-rest-api-specs specification/hybridcompute; azure-mgmt-resourcegraph 8.0.1): an unknown
member, or a member of the wrong JSON type, fails the test. The SDK's own deserialization is lenient
(it keeps unknown members), so :func:`strict` walks the model's fields and type hints itself.

Resource Graph rows are not modelled by the SDK (``data`` is ``object``): their envelope members are
those Learn documents for Resource Graph tables, and their ``properties`` are held to the HybridCompute
result models where Microsoft documents them as the same record (assessment and installation summaries),
or to the member lists of Learn, "Access Azure Update Manager operations data using Azure Resource
Graph" (https://learn.microsoft.com/azure/update-manager/query-logs), for softwarepatches rows.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
from typing import Any

import pytest
from azure.mgmt.hybridcompute import models as hc
from azure.mgmt.resourcegraph import models as rg
from fleetsim_testkit import group, patch, scenario_dict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("conformance-arc")]

SUB = "00000000-0000-0000-0000-00000000c401"
RG = "rg-contract"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "contract",
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "groups": [
                    group("cl", 3, "rhel_9", falcon_sensor=None),
                    group("cu", 1, "ubuntu_22_04"),
                    group("cw", 2, "windows_2022"),
                ],
            },
            "faults": {"agent_offline": ["cl-03"]},
        }
    ],
    catalog=[
        patch("RHSA-91", "rhel_9", title="openssl-3.0.7-24.el9"),
        patch("RHSA-92", "rhel_9", title="curl-7.76.1-29.el9_4", classification="Bugfix", severity="Low"),
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19"),
        patch(
            "KB5046616", "windows_2022", title="2026-11 Cumulative Update", classification="SecurityUpdates"
        ),
    ],
)

# Learn query-logs, "Description of the patchassessmentresources property" / "...patchinstallationresults
# property": the documented softwarepatches members. ``patchId`` and ``msrcSeverity`` (Windows) are
# named by Microsoft's Update Manager sample queries, not by this table; fleetsim keeps them, and this
# list says so rather than hiding it.
SOFTWARE_PATCH_MEMBERS = {
    "lastModifiedDateTime",
    "publishedDateTime",
    "classifications",
    "rebootRequired",
    "rebootBehavior",
    "patchName",
    "kbId",
    "version",
    "patchId",
    "msrcSeverity",
}
INSTALLED_PATCH_MEMBERS = SOFTWARE_PATCH_MEMBERS | {"installationState"}
INSTALLATION_STATES = {"Installed", "Failed", "Pending", "NotSelected", "Excluded"}
# Resource Graph row members (Learn query-logs, "Patch assessment results" table of properties).
ROW_MEMBERS = {
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
}


# -- strict checking against the SDK models -----------------------------------------------------------
def _fields(model: type) -> dict[str, tuple[str, Any]]:
    """rest name -> (attribute, type hint) of an azure-core (TypeSpec) model."""
    model({})  # the field table is built on first use
    namespace = vars(hc) | vars(__import__(model.__module__, fromlist=["*"])) | {"_models": hc}
    hints = typing.get_type_hints(model, namespace)
    return {
        f._rest_name_input or attr: (attr, hints.get(attr, Any))
        for attr, f in model._attr_to_rest_field.items()
    }


def strict(model: Any, value: Any, path: str = "$") -> list[str]:
    """Where ``value`` breaks ``model`` (an SDK model class or a type hint): unknown members, wrong types."""
    origin = typing.get_origin(model)
    if model is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(model) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(model)):
            return []
        problems = [strict(a, value, path) for a in args]
        return [] if any(not p for p in problems) else problems[0]
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {type(value).__name__}"]
        (item,) = typing.get_args(model)
        return [e for i, v in enumerate(value) for e in strict(item, v, f"{path}[{i}]")]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        _, item = typing.get_args(model)
        return [e for k, v in value.items() for e in strict(item, v, f"{path}.{k}")]
    if (
        isinstance(model, type)
        and issubclass(model, typing.MutableMapping)
        and model.__module__.startswith("azure.mgmt.hybridcompute.models")
    ):
        if not isinstance(value, dict):
            return [f"{path}: expected a {model.__name__} object, got {type(value).__name__}"]
        fields = _fields(model)
        out = [f"{path}.{k}: not a member of {model.__name__}" for k in value if k not in fields]
        for key, item in value.items():
            if key in fields and item is not None:
                out += strict(fields[key][1], item, f"{path}.{key}")
        return out
    if model is dt.datetime:
        try:
            dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return [f"{path}: {value!r} is not a date-time"]
        return [] if isinstance(value, str) else [f"{path}: date-time must be a string"]
    if isinstance(model, type) and issubclass(model, enum.Enum):
        return [] if isinstance(value, str) else [f"{path}: expected a string enum value"]
    if model is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if model is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if model is float:
        return (
            []
            if isinstance(value, int | float) and not isinstance(value, bool)
            else [f"{path}: expected a number"]
        )
    if model is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]
    return []


def strict_msrest(model: type, value: Any, path: str = "$") -> list[str]:
    """The same for an msrest-style model (azure-mgmt-resourcegraph): ``_attribute_map`` types."""
    keys = {spec["key"]: spec["type"] for spec in model._attribute_map.values()}
    out = [f"{path}.{k}: not a member of {model.__name__}" for k in value if k not in keys]
    simple = {"int": int, "str": str, "bool": bool}
    for key, item in value.items():
        kind = keys.get(key)
        if (
            kind in simple
            and item is not None
            and (not isinstance(item, simple[kind]) or (kind == "int" and isinstance(item, bool)))
        ):
            out.append(f"{path}.{key}: expected {kind}, got {item!r}")
        if kind == "object" and not isinstance(item, list | dict):
            out.append(f"{path}.{key}: expected JSON")
    return out


def test_the_checker_rejects_unknown_and_mistyped_members():
    assert strict(hc.MachineInstallPatchesResult, {"status": "Succeeded", "installedPatchCount": 1}) == []
    assert strict(hc.MachineInstallPatchesResult, {"installedPatchCount": "1"}) == [
        "$.installedPatchCount: expected an integer, got '1'"
    ]
    assert strict(hc.MachineInstallPatchesResult, {"patches": []}) == [
        "$.patches: not a member of MachineInstallPatchesResult"
    ]
    assert strict_msrest(rg.QueryResponse, {"count": "2", "extra": 1}) == [
        "$.extra: not a member of QueryResponse",
        "$.count: expected int, got '2'",
    ]


# -- fleetsim's answers --------------------------------------------------------------------------------
def _get(fleet, path: str) -> tuple[int, Any, dict[str, str]]:
    import urllib.request

    req = urllib.request.Request(fleet.url + path, headers={"Authorization": "Bearer fleetsim"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, dict(resp.headers)


def _post(fleet, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    import urllib.request

    req = urllib.request.Request(
        fleet.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": "Bearer fleetsim", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, dict(resp.headers)


API = "api-version=2024-07-10"
MACHINES = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.HybridCompute/machines"


def _operation(fleet, machine: str, verb: str, body: Any) -> dict[str, Any]:
    status, _, headers = _post(fleet, f"{MACHINES}/{machine}/{verb}?{API}", body)
    assert status == 202
    location = headers["Location"].removeprefix(fleet.url)
    final = wait_for(lambda: _get(fleet, location), lambda r: r[0] == 200, timeout=10)
    return final[1]


def test_machines_and_extensions_keep_the_hybridcompute_contract(fleet):
    status, page, _ = _get(fleet, f"{MACHINES}?{API}")
    assert status == 200 and set(page) <= {"value", "nextLink"}
    for machine in page["value"]:
        assert strict(hc.Machine, machine) == []
        _, one, _ = _get(fleet, f"{MACHINES}/{machine['name']}?{API}")
        assert strict(hc.Machine, one) == []
        _, extensions, _ = _get(fleet, f"{MACHINES}/{machine['name']}/extensions?{API}")
        assert set(extensions) <= {"value", "nextLink"}
        for ext in extensions["value"]:
            assert strict(hc.MachineExtension, ext) == []


def test_install_and_assess_results_keep_the_hybridcompute_contract(fleet):
    linux = {
        "maximumDuration": "PT2H",
        "rebootSetting": "IfRequired",
        "linuxParameters": {"packageNameMasksToInclude": ["openssl_3.0.7-24.el9"]},
    }
    assert strict(hc.MachineInstallPatchesParameters, linux) == []  # what Patchcycle sends
    windows = {
        "maximumDuration": "PT2H",
        "rebootSetting": "IfRequired",
        "windowsParameters": {"kbNumbersToInclude": ["5046616"], "excludeKbsRequiringReboot": False},
    }
    assert strict(hc.MachineInstallPatchesParameters, windows) == []
    for machine, body in (("cl-01", linux), ("cl-03", linux), ("cw-01", windows)):
        assert (
            strict(hc.MachineInstallPatchesResult, _operation(fleet, machine, "installPatches", body)) == []
        )
    for machine in ("cl-02", "cl-03", "cw-02"):
        assert strict(hc.MachineAssessPatchesResult, _operation(fleet, machine, "assessPatches", {})) == []


@pytest.mark.parametrize(
    ("table", "row_type", "properties"),
    [
        (
            "patchassessmentresources",
            "microsoft.hybridcompute/machines/patchassessmentresults",
            hc.MachineAssessPatchesResult,
        ),
        (
            "patchassessmentresources",
            "microsoft.hybridcompute/machines/patchassessmentresults/softwarepatches",
            SOFTWARE_PATCH_MEMBERS,
        ),
        (
            "patchinstallationresources",
            "microsoft.hybridcompute/machines/patchinstallationresults",
            hc.MachineInstallPatchesResult,
        ),
        (
            "patchinstallationresources",
            "microsoft.hybridcompute/machines/patchinstallationresults/softwarepatches",
            INSTALLED_PATCH_MEMBERS,
        ),
    ],
)
def test_resource_graph_answers_keep_their_contracts(fleet, table, row_type, properties):
    _operation(
        fleet,
        "cu-01",
        "installPatches",
        {
            "maximumDuration": "PT2H",
            "rebootSetting": "Never",
            "linuxParameters": {"classificationsToInclude": ["Other"]},
        },
    )
    token, rows = None, []
    while True:
        body = {
            "subscriptions": [SUB],
            "query": f"{table} | where type =~ '{row_type}'",
            "options": {"$top": 2, "resultFormat": "objectArray"} | ({"$skipToken": token} if token else {}),
        }
        assert strict_msrest(rg.QueryRequest, body) == []
        status, page, _ = _post(
            fleet, "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01", body
        )
        assert status == 200 and strict_msrest(rg.QueryResponse, page) == []
        rows += page["data"]
        token = page.get("$skipToken")
        if not token:
            break
    assert rows
    for row in rows:
        assert set(row) <= ROW_MEMBERS and row["type"] == row_type
        props = row["properties"]
        if isinstance(properties, set):
            assert set(props) <= properties, set(props) - properties
            assert all(isinstance(c, str) for c in props["classifications"])
            assert props.get("installationState", "Installed") in INSTALLATION_STATES
        else:
            # maintenanceRunId: documented for installation records (Learn query-logs), not in the model.
            assert strict(properties, {k: v for k, v in props.items() if k != "maintenanceRunId"}) == []
