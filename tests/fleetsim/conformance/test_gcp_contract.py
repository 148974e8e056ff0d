"""fleetsim's Google Cloud answers held to Google's own machine-readable contracts.

Every OS Config v1 and Compute Engine v1 answer fleetsim gives is read raw over HTTP (as the REST
transport receives it) and validated against the response schema of its method in Google's discovery
documents, shipped in ``google-api-python-client``
(``googleapiclient/discovery_cache/documents/osconfig.v1.json`` and ``compute.v1.json``; discovery
format: https://developers.google.com/discovery/v1/reference/apis, section "Resource representations"):
every member must be in the schema, of its type (int64/uint64 as decimal strings, timestamps as
RFC 3339, durations as ``<seconds>s``), and every enum value one the document lists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fleetsim_testkit import OLDER, group, patch, scenario_dict, wait_for

PROJECT = "acme-gcp-contract"
RHEL_KERNEL = "4.18.0-477.10.1.el8_8.x86_64"
RECENT = (dt.date.today() - dt.timedelta(days=3)).isoformat()

SCENARIO = scenario_dict(
    [
        {
            "id": "acme",
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    group("cu", 2, "ubuntu_22_04", zone="europe-west1-b", kernel="5.15.0-119-generic"),
                    group("cr", 1, "rhel_8", zone="europe-west1-c", kernel=RHEL_KERNEL),
                    group("cw", 1, "windows_2022", zone="europe-west1-c"),
                    group("cx", 1, "rhel_8", zone="europe-west1-d", kernel=RHEL_KERNEL),
                ],
            },
            "faults": {"install_fails": ["cu-02"]},
        }
    ],
    [
        patch("USN-0", "ubuntu_22_04", title="bash 5.1-6ubuntu1.1", released=OLDER),
        patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19", cves=["CVE-2024-1002"]),
        patch(
            "USN-2",
            "ubuntu_22_04",
            title="linux-image-5.15.0-126-generic 5.15.0-126.136",
            kernel="5.15.0-126-generic",
            cves=["CVE-2024-1001"],
        ),
        patch(
            "RHSA-1",
            "rhel_8",
            title="kernel-4.18.0-553.33.1.el8_10",
            kernel="4.18.0-553.33.1.el8_10.x86_64",
            severity="Important",
            cves=["CVE-2024-2001"],
        ),
        patch(
            "RHSA-2", "rhel_8", title="openssl-1.1.1k-14.el8_10", severity="Moderate", cves=["CVE-2024-2002"]
        ),
        patch("RHSA-3", "rhel_8", title="openssl-1.1.1k-15.el8_10", cves=["CVE-2024-2003"], released=RECENT),
        patch(
            "KB5046615",
            "windows_2022",
            title="2024-11 Cumulative Update (KB5046615)",
            classification="SecurityUpdates",
            cves=["CVE-2024-3001"],
        ),
    ],
)

DOCUMENTS = Path(__import__("googleapiclient").__file__).parent / "discovery_cache" / "documents"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")


@cache
def discovery(api: str) -> dict[str, Any]:
    return json.loads((DOCUMENTS / f"{api}.json").read_text())


def _methods(resource: dict[str, Any]) -> dict[str, Any]:
    found = {m["id"]: m for m in resource.get("methods", {}).values()}
    for child in resource.get("resources", {}).values():
        found.update(_methods(child))
    return found


def response_schema(api: str, method_id: str) -> str:
    """The response schema name of a discovery method (``osconfig.projects.patchJobs.execute``)."""
    methods = _methods(discovery(api))
    assert method_id in methods, f"{method_id} is not a method of {api}"
    return methods[method_id]["response"]["$ref"]


def violations(api: str, value: Any, schema: dict[str, Any] | str, path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (a schema or a schema name) of a discovery document."""
    schemas = discovery(api)["schemas"]
    if isinstance(schema, str):
        schema = {"$ref": schema}
    if "$ref" in schema:
        name = schema["$ref"]
        schema = schemas[name]
        path = f"{path}<{name}>"
    kind, errors = schema.get("type"), []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r:.60}"]
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, member in value.items():
            if key in properties:
                errors += violations(api, member, properties[key], f"{path}.{key}")
            elif extra is not None:
                errors += violations(api, member, extra, f"{path}[{key!r}]")
            else:
                errors.append(f"{path}.{key}: not a member of the schema")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r:.60}"]
        for i, item in enumerate(value):
            errors += violations(api, item, schema["items"], f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r:.60}"]
        fmt = schema.get("format")
        if fmt in ("int64", "uint64") and not re.fullmatch(r"-?\d+", value):
            errors.append(f"{path}: {fmt} must be a decimal string, got {value!r}")
        if fmt == "google-datetime" and not _RFC3339.match(value):
            errors.append(f"{path}: not an RFC 3339 timestamp: {value!r}")
        if fmt == "google-duration" and not _DURATION.match(value):
            errors.append(f"{path}: not a duration: {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r:.60}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path}: expected a number, got {value!r:.60}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r:.60}")
    elif kind != "any":
        errors.append(f"{path}: schema type {kind!r} not understood by this test")
    return errors


def call(fleet: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        fleet.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback emulator)
        return json.loads(answer.read())


def conforms(api: str, method_id: str, answer: Any) -> None:
    schema = response_schema(api, method_id)
    errors = violations(api, answer, schema)
    assert not errors, f"{method_id} answer breaks {api} {schema}:\n" + "\n".join(errors[:20])


def test_the_discovery_documents_are_installed() -> None:
    for api in ("osconfig.v1", "compute.v1"):
        assert discovery(api)["version"] == "v1", api


def test_the_validator_refuses_what_google_would_not_send() -> None:
    assert violations("osconfig.v1", {"state": "HALF_DONE"}, "PatchJob") == [
        "$<PatchJob>.state: 'HALF_DONE' is not one of "
        + str(discovery("osconfig.v1")["schemas"]["PatchJob"]["properties"]["state"]["enum"])
    ]
    assert violations("osconfig.v1", {"nickname": "x"}, "PatchJob") == [
        "$<PatchJob>.nickname: not a member of the schema"
    ]
    assert violations("osconfig.v1", {"percentComplete": "50"}, "PatchJob")
    assert violations("compute.v1", {"id": 5}, "Instance")  # uint64 is a string on the wire


OSCONFIG = "osconfig.v1"
ZONAL = f"/v1/projects/{PROJECT}/locations"


@pytest.mark.parametrize("view", ["FULL", "BASIC"])
def test_inventories_and_vulnerability_reports_conform(fleet, view) -> None:
    for zone in ("europe-west1-b", "europe-west1-c"):
        listed = call(fleet, "GET", f"{ZONAL}/{zone}/instances/-/inventories?view={view}&pageSize=1")
        assert listed["inventories"] and listed.get("nextPageToken") or zone == "europe-west1-c"
        conforms(OSCONFIG, "osconfig.projects.locations.instances.inventories.list", listed)
        reports = call(fleet, "GET", f"{ZONAL}/{zone}/instances/-/vulnerabilityReports")
        conforms(OSCONFIG, "osconfig.projects.locations.instances.vulnerabilityReports.list", reports)
        for inventory in listed["inventories"]:
            instance = inventory["name"].split("/instances/")[1].split("/")[0]
            one = call(fleet, "GET", f"{ZONAL}/{zone}/instances/{instance}/inventory?view={view}")
            conforms(OSCONFIG, "osconfig.projects.locations.instances.inventories.get", one)
            report = call(fleet, "GET", f"{ZONAL}/{zone}/instances/{instance}/vulnerabilityReport")
            conforms(OSCONFIG, "osconfig.projects.locations.instances.vulnerabilityReports.get", report)


def test_patch_jobs_conform_through_their_lifecycle(fleet) -> None:
    body = {
        "displayName": "contract",
        "instanceFilter": {
            "instances": [
                "zones/europe-west1-b/instances/cu-01",
                "zones/europe-west1-b/instances/cu-02",
                "zones/europe-west1-c/instances/cr-01",
                "zones/europe-west1-c/instances/cw-01",
            ]
        },
        "patchConfig": {
            "rebootConfig": "DEFAULT",
            "apt": {"exclusivePackages": ["openssl"]},
            "yum": {"exclusivePackages": ["openssl", "kernel"]},
            "windowsUpdate": {"exclusivePatches": ["KB5046615"]},
        },
        "duration": "600s",
        "rollout": {"mode": "ZONE_BY_ZONE", "disruptionBudget": {"fixed": 1}},
    }
    job = call(fleet, "POST", f"/v1/projects/{PROJECT}/patchJobs:execute", body)
    conforms(OSCONFIG, "osconfig.projects.patchJobs.execute", job)
    job_id = job["name"].rsplit("/", 1)[1]
    seen = set()

    def probe() -> Any:
        current = call(fleet, "GET", f"/v1/projects/{PROJECT}/patchJobs/{job_id}")
        conforms(OSCONFIG, "osconfig.projects.patchJobs.get", current)
        details = call(fleet, "GET", f"/v1/projects/{PROJECT}/patchJobs/{job_id}/instanceDetails")
        conforms(OSCONFIG, "osconfig.projects.patchJobs.instanceDetails.list", details)
        seen.add(current["state"])
        return current

    done = wait_for(probe, lambda j: j["state"] in ("SUCCEEDED", "COMPLETED_WITH_ERRORS"), timeout=15)
    assert done["state"] == "COMPLETED_WITH_ERRORS" and "errorMessage" in done  # cu-02 fails
    assert "PATCHING" in seen
    conforms(
        OSCONFIG, "osconfig.projects.patchJobs.list", call(fleet, "GET", f"/v1/projects/{PROJECT}/patchJobs")
    )
    # After the job the inventories (one build per package, the newest) still conform.
    for zone in ("europe-west1-b", "europe-west1-c"):
        after = call(fleet, "GET", f"{ZONAL}/{zone}/instances/-/inventories?view=FULL")
        conforms(OSCONFIG, "osconfig.projects.locations.instances.inventories.list", after)


def test_a_canceled_patch_job_conforms(fleet) -> None:
    body = {
        "instanceFilter": {"instances": ["zones/europe-west1-d/instances/cx-01"]},
        "patchConfig": {"yum": {"exclusivePackages": ["openssl"]}},
    }
    job = call(fleet, "POST", f"/v1/projects/{PROJECT}/patchJobs:execute", body)
    canceled = call(fleet, "POST", f"/v1/projects/{PROJECT}/{job['name'].split('/', 2)[2]}:cancel", {})
    conforms(OSCONFIG, "osconfig.projects.patchJobs.cancel", canceled)


COMPUTE = "compute.v1"
ZONE_B = f"/compute/v1/projects/{PROJECT}/zones/europe-west1-b"


def _done(fleet: Any, operation: dict[str, Any]) -> dict[str, Any]:
    def probe() -> Any:
        current = call(fleet, "GET", f"{ZONE_B}/operations/{operation['name']}")
        conforms(COMPUTE, "compute.zoneOperations.get", current)
        return current

    return wait_for(probe, lambda op: op["status"] == "DONE", timeout=15)


def test_compute_instances_snapshots_and_disks_conform(fleet) -> None:
    listed = call(fleet, "GET", f"{ZONE_B}/instances?maxResults=1")
    conforms(COMPUTE, "compute.instances.list", listed)
    instance = call(fleet, "GET", f"{ZONE_B}/instances/cu-01")
    conforms(COMPUTE, "compute.instances.get", instance)

    operation = call(fleet, "POST", f"{ZONE_B}/disks/cu-01/createSnapshot", {"name": "cu-01-contract"})
    conforms(COMPUTE, "compute.disks.createSnapshot", operation)
    _done(fleet, operation)
    snapshot = call(fleet, "GET", f"/compute/v1/projects/{PROJECT}/global/snapshots/cu-01-contract")
    conforms(COMPUTE, "compute.snapshots.get", snapshot)
    conforms(
        COMPUTE,
        "compute.snapshots.list",
        call(fleet, "GET", f"/compute/v1/projects/{PROJECT}/global/snapshots"),
    )

    stop = call(fleet, "POST", f"{ZONE_B}/instances/cu-01/stop", {})
    conforms(COMPUTE, "compute.instances.stop", stop)
    _done(fleet, stop)
    disk = call(
        fleet,
        "POST",
        f"{ZONE_B}/disks",
        {"name": "cu-01-restored", "sourceSnapshot": f"projects/{PROJECT}/global/snapshots/cu-01-contract"},
    )
    conforms(COMPUTE, "compute.disks.insert", disk)
    _done(fleet, disk)
    conforms(COMPUTE, "compute.disks.get", call(fleet, "GET", f"{ZONE_B}/disks/cu-01-restored"))
    detach = call(fleet, "POST", f"{ZONE_B}/instances/cu-01/detachDisk?deviceName=persistent-disk-0", {})
    conforms(COMPUTE, "compute.instances.detachDisk", detach)
    _done(fleet, detach)
    attach = call(
        fleet,
        "POST",
        f"{ZONE_B}/instances/cu-01/attachDisk",
        {"source": f"projects/{PROJECT}/zones/europe-west1-b/disks/cu-01-restored", "boot": True},
    )
    conforms(COMPUTE, "compute.instances.attachDisk", attach)
    _done(fleet, attach)
    start = call(fleet, "POST", f"{ZONE_B}/instances/cu-01/start", {})
    conforms(COMPUTE, "compute.instances.start", start)
    _done(fleet, start)
    conforms(COMPUTE, "compute.instances.get", call(fleet, "GET", f"{ZONE_B}/instances/cu-01"))
