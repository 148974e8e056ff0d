"""The Falcon sensor installed on GCE instances through an OS Config OS policy assignment whose exec
resource runs CrowdStrike's falcon-installer, driven with the unmodified google-cloud-os-config REST client
(``OsConfigZonalServiceClient``: the create and delete long-running operations, get, list, reports).

The assignment holds no secret: falcon-installer reads the API client's id and secret from the project's
Secret Manager on the VM (``--gcp-project-id``; the scenario's ``gcp.secrets``). Covers the rollout under
the disruption budget and minWaitDuration, per-instance reports, the device record only after the
registration delay, the faults (install fails, other CID), a rollout stopped by non-compliant VMs, an
enforce script that does not exit 100, VALIDATION mode, a sensor already at the version, another project's
secrets, the 400s and 409 for bad input, an update that makes a new revision and rolls it out, and delete.

Windows VMs through PowerShell scripts (``Exec.Interpreter`` POWERSHELL, which the OS Config agent runs with
Windows PowerShell 5.1, github.com/GoogleCloudPlatform/osconfig ``config/exec_resource.go``): the exit-100
mapping as PowerShell writes it, the inconvenient parts (no ``exit``: 0, "Powershell will always return an
exit code of 0 unless an exit statement is provided"; a bare ``exit 100`` reached on failure too; ``&&``,
which Windows PowerShell 5.1 does not parse), a PowerShell script on a Linux VM (the agent refuses it), and
a SHELL script on Windows (cmd.exe, not emulated).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from falconpy import Hosts
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import osconfig_v1

from fleetsim.falcon.wire import short_cid
from fleetsim.seed import falcon_cid

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-falcon-gcp")]

TENANT = "t_gcp"
PROJECT = "falcon-gcp-prod"
ZONE = "europe-west1-b"
OTHER_ZONE = "europe-west1-c"
SECRET = "fleetsim-falcon-secret"
KERNEL = "5.15.0-119-generic"
REGISTRATION_SECONDS = 2.0
INSTALL = "/usr/local/bin/falcon-installer --gcp-project-id {project} --sensor-version {version}"
# falcon-installer's Windows build called through a variable, as a PowerShell script downloads it.
PS_INSTALL = (
    "$P = Join-Path $env:SystemRoot\\Temp 'falcon-installer.exe'\n"
    "& $P --gcp-project-id {project} --sensor-version {version}\n"
)
PS_ON_SUCCESS = "if ($LASTEXITCODE -eq 0) { exit 100 }\nexit $LASTEXITCODE\n"
PS_VALIDATE = (
    "$v = Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' |"
    " Where-Object { $_.DisplayName -like '*CrowdStrike*' } |"
    " Select-Object -First 1 -ExpandProperty DisplayVersion\n"
    "if ($v) { exit 100 }\nexit 101\n"
)


def ubuntu(prefix: str, count: int, environment: str, zone: str = ZONE, **kw: Any) -> dict[str, Any]:
    return group(prefix, count, "ubuntu_22_04", zone=zone, kernel=KERNEL, environment=environment, **kw)


def windows(prefix: str, environment: str, sensor: str | None = None) -> dict[str, Any]:
    return group(prefix, 1, "windows_2022", zone=ZONE, environment=environment, falcon_sensor=sensor)


SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    ubuntu("ok", 3, "staging", falcon_sensor=None),
                    ubuntu("bad", 3, "qa", falcon_sensor=None),
                    ubuntu("noexit", 1, "dev", falcon_sensor=None),
                    ubuntu("lab", 2, "lab", falcon_sensor=None),
                    ubuntu("val", 1, "perf", falcon_sensor=None),
                    ubuntu("has", 2, "uat", falcon_sensor="7.14.16703"),
                    ubuntu("far", 1, "prod", falcon_sensor=None),
                    ubuntu("upd", 1, "demo", falcon_sensor=None),
                    group("win", 1, "windows_2022", zone=OTHER_ZONE, falcon_sensor=None, environment="win"),
                    ubuntu("pslx", 1, "pslinux", falcon_sensor=None),
                    windows("wok", "w-ok"),
                    windows("wfail", "w-fail"),
                    windows("wany", "w-any"),
                    windows("wnoexit", "w-noexit"),
                    windows("wquiet", "w-quiet"),
                    windows("wchain", "w-chain"),
                    windows("wdollar", "w-dollar"),
                    windows("wcmd", "w-cmd"),
                    windows("whas", "w-has", sensor="7.15.16807"),
                ],
                "secrets": {"FALCON_CLIENT_ID": TENANT, "falcon-client-secret": SECRET},
            },
            "faults": {
                "falcon_install_fails": ["bad-01", "bad-02", "wfail-01", "wany-01", "wquiet-01"],
                "falcon_registers_other_cid": ["lab-01"],
                "agent_offline": ["lab-02"],
            },
        },
        {"id": "t_elsewhere", "gcp": {"project_id": "another-project", "groups": [ubuntu("x", 1, "prod")]}},
    ],
    catalog=[],
    falcon={
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.14.16703", "7.15.16807"],
            }
        ]
    },
)
SCENARIO["timings"].update(falcon_registration_seconds=REGISTRATION_SECONDS)


@pytest.fixture(scope="module")
def zonal(fleet: Fleet) -> osconfig_v1.OsConfigZonalServiceClient:
    return osconfig_v1.OsConfigZonalServiceClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )


@pytest.fixture(scope="module")
def hosts_api(fleet: Fleet) -> Hosts:
    return Hosts(client_id=TENANT, client_secret=SECRET, base_url=fleet.url, timeout=10)


def assignment(
    environment: str,
    *,
    script: str | None = None,
    version: str = "7.15.16807",
    budget: dict[str, int] | None = None,
    min_wait: str = "1s",
    mode: str = "ENFORCEMENT",
    interpreter: str = "SHELL",
    os_short_name: str = "ubuntu",
    validate: str = "test -x /opt/CrowdStrike/falconctl && exit 100; exit 101",
) -> dict[str, Any]:
    """An OS policy assignment in the JSON form (what the product builds), enums by name."""
    enforce = (
        script if script is not None else INSTALL.format(project=PROJECT, version=version) + " && exit 100"
    )
    return {
        "description": "CrowdStrike Falcon sensor",
        "osPolicies": [
            {
                "id": "falcon-sensor",
                "mode": mode,
                "resourceGroups": [
                    {
                        "inventoryFilters": [{"osShortName": os_short_name}],
                        "resources": [
                            {
                                "id": "falcon-installer",
                                "exec": {
                                    "validate": {"script": validate, "interpreter": interpreter},
                                    "enforce": {"script": enforce, "interpreter": interpreter},
                                },
                            }
                        ],
                    }
                ],
            }
        ],
        "instanceFilter": {"inclusionLabels": [{"labels": {"environment": environment}}]},
        "rollout": {"disruptionBudget": budget or {"fixed": 1}, "minWaitDuration": min_wait},
    }


def create(zonal: Any, assignment_id: str, body: dict[str, Any], zone: str = ZONE) -> Any:
    message = osconfig_v1.OSPolicyAssignment.from_json(json.dumps(body))
    return zonal.create_os_policy_assignment(
        parent=f"projects/{PROJECT}/locations/{zone}",
        os_policy_assignment=message,
        os_policy_assignment_id=assignment_id,
    )


def report(zonal: Any, instance: str, assignment_id: str) -> Any:
    name = (
        f"projects/{PROJECT}/locations/{ZONE}/instances/{instance}/osPolicyAssignments/{assignment_id}/report"
    )
    return zonal.get_os_policy_assignment_report(name=name)


def state(report: Any) -> str:
    return report.os_policy_compliances[0].compliance_state.name


def records(hosts_api: Hosts, name: str) -> list[dict[str, Any]]:
    found = hosts_api.query_devices_by_filter(filter=f"hostname:'{name}'")["body"]["resources"]
    return hosts_api.get_device_details(ids=found)["body"]["resources"] if found else []


def test_rollout_installs_under_the_budget_and_reports(fleet: Fleet, zonal: Any, hosts_api: Hosts) -> None:
    operation = create(zonal, "falcon-staging", assignment("staging", min_wait="1s"))
    assert operation.metadata.rollout_state.name == "IN_PROGRESS" and not operation.done()
    result = operation.result(timeout=60)
    assert result.rollout_state.name == "SUCCEEDED" and result.baseline and not result.reconciling
    assert json.dumps(type(result).to_dict(result)).find(SECRET) == -1  # no secret in the assignment
    got = zonal.get_os_policy_assignment(
        name=f"projects/{PROJECT}/locations/{ZONE}/osPolicyAssignments/falcon-staging"
    )
    assert got.revision_id == result.revision_id and got.rollout.min_wait_duration.total_seconds() == 1
    for name in ("ok-01", "ok-02", "ok-03"):
        rep = report(zonal, name, "falcon-staging")
        assert state(rep) == "COMPLIANT" and rep.instance == name
        steps = [
            s.type_.name for s in rep.os_policy_compliances[0].os_policy_resource_compliances[0].config_steps
        ]
        assert steps[-1] == "DESIRED_STATE_CHECK_POST_ENFORCEMENT"
    truth = fleet.truth(TENANT)
    runs = sorted(
        dt.datetime.fromisoformat(a["at"].replace("Z", "+00:00")).timestamp()
        for n in ("ok-01", "ok-02", "ok-03")
        for a in truth[n]["actions"]
        if a["action"] == "gcp.osPolicyAssignment"
    )
    # Budget 1 with a one-second minWaitDuration: each VM's run ends at least a second after the last.
    assert all(later - earlier >= 1.0 for earlier, later in zip(runs, runs[1:], strict=False))
    assert {truth[n]["falcon"]["version"] for n in ("ok-01", "ok-02", "ok-03")} == {"7.15.16807.0"}
    registers_at = dt.datetime.fromisoformat(truth["ok-03"]["falcon"]["registered_at"]).timestamp()
    [record] = wait_for(lambda: records(hosts_api, "ok-03"), bool, timeout=20)
    assert time.time() >= registers_at
    assert (
        short_cid(record["cid"]) == short_cid(falcon_cid(TENANT))
        and record["agent_version"] == "7.15.16807.0"
    )
    listed = zonal.list_os_policy_assignment_reports(
        parent=f"projects/{PROJECT}/locations/{ZONE}/instances/-/osPolicyAssignments/falcon-staging"
    )
    assert {r.instance for r in listed} == {"ok-01", "ok-02", "ok-03"}
    names = [
        a.name.rsplit("/", 1)[1]
        for a in zonal.list_os_policy_assignments(parent=f"projects/{PROJECT}/locations/{ZONE}")
    ]
    assert "falcon-staging" in names


def test_non_compliant_vms_hold_the_budget_and_stop_the_rollout(fleet: Fleet, zonal: Any) -> None:
    operation = create(zonal, "falcon-qa", assignment("qa", budget={"fixed": 2}))
    with pytest.raises(exceptions.GoogleAPICallError) as stopped:
        operation.result(timeout=60)
    assert "not reached" in str(stopped.value)
    for name in ("bad-01", "bad-02"):
        rep = report(zonal, name, "falcon-qa")
        assert state(rep) == "NON_COMPLIANT"
        resource = rep.os_policy_compliances[0].os_policy_resource_compliances[0]
        assert "Error installing Falcon sensor" in resource.config_steps[-1].error_message
    with pytest.raises(exceptions.NotFound):
        report(zonal, "bad-03", "falcon-qa")  # never reached
    assert fleet.truth(TENANT)["bad-03"]["falcon"] is None


def test_enforce_must_exit_100(fleet: Fleet, zonal: Any) -> None:
    script = INSTALL.format(project=PROJECT, version="7.15.16807")  # falcon-installer's own exit 0
    operation = create(zonal, "falcon-dev", assignment("dev", script=script))
    operation.result(timeout=60)
    rep = report(zonal, "noexit-01", "falcon-dev")
    assert state(rep) == "NON_COMPLIANT"
    assert (
        "must exit 100"
        in rep.os_policy_compliances[0].os_policy_resource_compliances[0].config_steps[-1].error_message
    )
    assert fleet.truth(TENANT)["noexit-01"]["falcon"] is not None  # installed all the same


def test_other_cid_and_a_vm_without_agent(fleet: Fleet, zonal: Any, hosts_api: Hosts) -> None:
    create(zonal, "falcon-lab", assignment("lab", budget={"percent": 50})).result(timeout=60)
    assert state(report(zonal, "lab-01", "falcon-lab")) == "COMPLIANT"
    offline = report(zonal, "lab-02", "falcon-lab").os_policy_compliances[0]
    assert (
        offline.compliance_state.name == "UNKNOWN" and offline.compliance_state_reason == "no-agent-detected"
    )
    registered = dt.datetime.fromisoformat(
        fleet.truth(TENANT)["lab-01"]["falcon"]["registered_at"]
    ).timestamp()
    wait_for(time.time, lambda now: now > registered + 0.2, timeout=20)
    assert records(hosts_api, "lab-01") == []  # it registered under another customer's CID


def test_validation_mode_and_a_sensor_already_there(fleet: Fleet, zonal: Any) -> None:
    create(zonal, "falcon-perf", assignment("perf", mode="VALIDATION")).result(timeout=60)
    assert state(report(zonal, "val-01", "falcon-perf")) == "NON_COMPLIANT"
    assert fleet.truth(TENANT)["val-01"]["falcon"] is None  # validation only: nothing installed
    create(zonal, "falcon-uat", assignment("uat", version="7.14.16703", budget={"fixed": 2})).result(
        timeout=60
    )
    assert state(report(zonal, "has-01", "falcon-uat")) == "COMPLIANT"
    assert not [
        a for a in fleet.truth(TENANT)["has-01"]["actions"] if a["action"] == "gcp.osPolicyAssignment"
    ]


def test_another_projects_secrets_are_out_of_reach(fleet: Fleet, zonal: Any) -> None:
    script = INSTALL.format(project="another-project", version="7.15.16807") + " && exit 100"
    create(zonal, "falcon-prod", assignment("prod", script=script)).result(timeout=60)
    rep = report(zonal, "far-01", "falcon-prod")
    assert state(rep) == "NON_COMPLIANT"
    message = rep.os_policy_compliances[0].os_policy_resource_compliances[0].config_steps[-1].error_message
    assert "access denied to Secret Manager" in message


def test_bad_requests(zonal: Any) -> None:
    with pytest.raises(exceptions.BadRequest):
        create(zonal, "Falcon_Bad", assignment("staging"))
    long_script = assignment("staging", script="echo " + "x" * 1100)
    with pytest.raises(exceptions.BadRequest) as too_long:
        create(zonal, "falcon-long", long_script)
    assert "1024" in str(too_long.value)
    no_rollout = assignment("staging")
    del no_rollout["rollout"]
    with pytest.raises(exceptions.BadRequest):
        create(zonal, "falcon-norollout", no_rollout)
    create(zonal, "falcon-dup", assignment("nobody")).result(timeout=60)
    with pytest.raises(exceptions.Conflict):  # ids are unique within the project, whatever the zone
        create(zonal, "falcon-dup", assignment("win"), zone=OTHER_ZONE)
    with pytest.raises(exceptions.Forbidden):
        zonal.list_os_policy_assignments(parent=f"projects/nowhere/locations/{ZONE}")


def test_delete(zonal: Any) -> None:
    create(zonal, "falcon-gone", assignment("nobody")).result(timeout=60)
    name = f"projects/{PROJECT}/locations/{ZONE}/osPolicyAssignments/falcon-gone"
    zonal.delete_os_policy_assignment(name=name).result(timeout=60)
    with pytest.raises(exceptions.NotFound):
        zonal.get_os_policy_assignment(name=name)


def test_update_makes_a_new_revision_and_rolls_it_out(fleet: Fleet, zonal: Any) -> None:
    first = create(zonal, "falcon-demo", assignment("demo", mode="VALIDATION")).result(timeout=60)
    assert state(report(zonal, "upd-01", "falcon-demo")) == "NON_COMPLIANT"
    assert fleet.truth(TENANT)["upd-01"]["falcon"] is None
    name = f"projects/{PROJECT}/locations/{ZONE}/osPolicyAssignments/falcon-demo"
    # UpdateOSPolicyAssignment (os_config_zonal_service.update_os_policy_assignment): "creates a new
    # revision"; a change to os_policies triggers a rollout (OSPolicyAssignment.rollout).
    body = {**assignment("demo"), "name": name, "etag": first.etag}
    message = osconfig_v1.OSPolicyAssignment.from_json(json.dumps(body))
    operation = zonal.update_os_policy_assignment(os_policy_assignment=message)
    assert operation.metadata.api_method.name == "UPDATE"
    updated = operation.result(timeout=60)
    assert updated.revision_id != first.revision_id and updated.rollout_state.name == "SUCCEEDED"
    assert state(report(zonal, "upd-01", "falcon-demo")) == "COMPLIANT"
    assert fleet.truth(TENANT)["upd-01"]["falcon"]["version"] == "7.15.16807.0"
    # Only the rollout (update_mask): no new revision, no rollout.
    slower = {**assignment("demo", budget={"fixed": 3}), "name": name}
    again = zonal.update_os_policy_assignment(
        os_policy_assignment=osconfig_v1.OSPolicyAssignment.from_json(json.dumps(slower)),
        update_mask={"paths": ["rollout"]},
    ).result(timeout=60)
    assert again.revision_id == updated.revision_id and again.rollout.disruption_budget.fixed == 3
    stale = {**assignment("demo"), "name": name, "etag": first.etag}
    with pytest.raises(exceptions.BadRequest):  # the etag "must match the server's etag"
        zonal.update_os_policy_assignment(
            os_policy_assignment=osconfig_v1.OSPolicyAssignment.from_json(json.dumps(stale))
        )
    with pytest.raises(exceptions.NotFound):
        zonal.update_os_policy_assignment(
            os_policy_assignment=osconfig_v1.OSPolicyAssignment.from_json(
                json.dumps({**assignment("demo"), "name": name.replace("falcon-demo", "falcon-none")})
            )
        )


# -- Windows: PowerShell scripts -----------------------------------------------------------------------
def powershell(environment: str, enforce: str, **kw: Any) -> dict[str, Any]:
    """A Windows OS policy assignment whose scripts run with PowerShell."""
    kw.setdefault("os_short_name", "windows")
    return assignment(environment, script=enforce, interpreter="POWERSHELL", validate=PS_VALIDATE, **kw)


def resource_steps(report: Any) -> list[Any]:
    return list(report.os_policy_compliances[0].os_policy_resource_compliances[0].config_steps)


def installs(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    return [a for a in fleet.truth(TENANT)[name]["actions"] if a["action"] == "gcp.osPolicyAssignment"]


def test_powershell_installs_on_windows_and_maps_success_to_100(fleet: Fleet, zonal: Any) -> None:
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807") + PS_ON_SUCCESS
    result = create(zonal, "falcon-w-ok", powershell("w-ok", script)).result(timeout=60)
    assert (
        result.os_policies[0].resource_groups[0].resources[0].exec_.enforce.interpreter.name == "POWERSHELL"
    )
    rep = report(zonal, "wok-01", "falcon-w-ok")
    assert state(rep) == "COMPLIANT", rep
    assert resource_steps(rep)[-1].type_.name == "DESIRED_STATE_CHECK_POST_ENFORCEMENT"
    assert fleet.truth(TENANT)["wok-01"]["falcon"]["version"] == "7.15.16807.0"
    (action,) = installs(fleet, "wok-01")
    assert action["exit_code"] == 0 and action["secrets_in_clear"] == []


def test_powershell_failure_exits_with_the_installers_code(fleet: Fleet, zonal: Any) -> None:
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807") + PS_ON_SUCCESS
    create(zonal, "falcon-w-fail", powershell("w-fail", script)).result(timeout=60)
    rep = report(zonal, "wfail-01", "falcon-w-fail")
    assert state(rep) == "NON_COMPLIANT"
    message = resource_steps(rep)[-1].error_message
    assert message.startswith("enforce exited 1:") and "Error installing Falcon sensor" in message


def test_a_bare_exit_100_reports_success_even_when_the_install_failed(fleet: Fleet, zonal: Any) -> None:
    # A native command's exit code never stops Windows PowerShell 5.1: the script goes on to exit 100.
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807") + "exit 100\n"
    create(zonal, "falcon-w-any", powershell("w-any", script)).result(timeout=60)
    assert state(report(zonal, "wany-01", "falcon-w-any")) == "COMPLIANT"
    assert fleet.truth(TENANT)["wany-01"]["falcon"] is None  # nothing installed all the same
    assert installs(fleet, "wany-01")[0]["exit_code"] == 1


def test_powershell_without_exit_ends_0_and_unrecognised_mappings_are_not_success(
    fleet: Fleet, zonal: Any
) -> None:
    # "Powershell will always return an exit code of 0 unless an exit statement is provided".
    noexit = PS_INSTALL.format(project=PROJECT, version="7.15.16807")
    create(zonal, "falcon-w-noexit", powershell("w-noexit", noexit)).result(timeout=60)
    dollar = noexit + "if ($?) { exit 100 }\n"  # not a form fleetsim reads as success
    create(zonal, "falcon-w-dollar", powershell("w-dollar", dollar)).result(timeout=60)
    for name, assignment_id in (("wnoexit-01", "falcon-w-noexit"), ("wdollar-01", "falcon-w-dollar")):
        rep = report(zonal, name, assignment_id)
        assert state(rep) == "NON_COMPLIANT", name
        assert "must exit 100" in resource_steps(rep)[-1].error_message, name
        assert fleet.truth(TENANT)[name]["falcon"] is not None, name  # installed: only the report is wrong
    # The installer failed, yet the script without exit ends 0, not with the installer's code.
    create(zonal, "falcon-w-quiet", powershell("w-quiet", noexit)).result(timeout=60)
    message = resource_steps(report(zonal, "wquiet-01", "falcon-w-quiet"))[-1].error_message
    assert message.startswith("enforce exited 0:") and "falcon-installer exited 1" in message, message


def test_pipeline_chain_operators_do_not_parse_in_windows_powershell(fleet: Fleet, zonal: Any) -> None:
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807").rstrip() + " && exit 100\n"
    create(zonal, "falcon-w-chain", powershell("w-chain", script)).result(timeout=60)
    rep = report(zonal, "wchain-01", "falcon-w-chain")
    assert state(rep) == "NON_COMPLIANT"
    assert "The token '&&' is not a valid statement separator" in resource_steps(rep)[-1].error_message
    assert fleet.truth(TENANT)["wchain-01"]["falcon"] is None and not installs(fleet, "wchain-01")


def test_powershell_on_linux_and_shell_on_windows(fleet: Fleet, zonal: Any) -> None:
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807") + PS_ON_SUCCESS
    create(zonal, "falcon-pslinux", powershell("pslinux", script, os_short_name="ubuntu")).result(timeout=60)
    compliance = report(zonal, "pslx-01", "falcon-pslinux").os_policy_compliances[0]
    resource = compliance.os_policy_resource_compliances[0]
    assert compliance.compliance_state.name == "UNKNOWN"
    assert resource.compliance_state_reason == "execution-errors"
    check = resource.config_steps[-1]
    assert check.type_.name == "DESIRED_STATE_CHECK"
    assert check.error_message.startswith("unexpected return code from validate: 0")
    assert fleet.truth(TENANT)["pslx-01"]["falcon"] is None and not installs(fleet, "pslx-01")
    shell = assignment("w-cmd", os_short_name="windows")  # a SHELL script runs with cmd.exe on Windows
    create(zonal, "falcon-w-cmd", shell).result(timeout=60)
    cmd = report(zonal, "wcmd-01", "falcon-w-cmd").os_policy_compliances[0]
    assert cmd.compliance_state.name == "UNKNOWN"
    assert "cmd.exe" in cmd.os_policy_resource_compliances[0].config_steps[0].error_message
    assert not installs(fleet, "wcmd-01")


def test_powershell_validate_leaves_a_windows_sensor_at_the_version(fleet: Fleet, zonal: Any) -> None:
    script = PS_INSTALL.format(project=PROJECT, version="7.15.16807") + PS_ON_SUCCESS
    create(zonal, "falcon-w-has", powershell("w-has", script)).result(timeout=60)
    rep = report(zonal, "whas-01", "falcon-w-has")
    assert state(rep) == "COMPLIANT"
    assert [s.type_.name for s in resource_steps(rep)] == ["VALIDATION", "DESIRED_STATE_CHECK"]
    assert not installs(fleet, "whas-01")
