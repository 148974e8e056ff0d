"""The roll-out's GCP install task: the Falcon sensor installed or upgraded on the tenant's Compute Engine
instances through an OS Config OS policy assignment, with no SSH and no secret in Airflow.

One assignment per project and zone (its id is unique within the project, so the zone is part of it:
:func:`assignment_id`), holding an OS policy per OS family the zone's hosts need, each with an ``exec``
resource that runs CrowdStrike's falcon-installer (github.com/CrowdStrike/falcon-installer): the Linux one
(inventory filters: the hosts' OS short names) with SHELL scripts, the Windows one (inventory filter
``windows``) with POWERSHELL scripts (``Exec.Interpreter``: POWERSHELL "runs with PowerShell"; the agent
runs Windows PowerShell 5.1, so no ``&&``).

* ``validate`` exits 100 when a sensor at the target version or newer is installed, 101 otherwise
  (ExecResource: "exit code of 100 indicates 'in desired state', and exit code of 101 indicates 'not in
  desired state'"): on Linux as ``falconctl`` reports it, on Windows as the ``CrowdStrike`` entry of the
  uninstall registry key reports it (what falcon-installer itself reads, ``osutils.InstalledFalconVersion``).
  A VM the filter selects that already has a sensor at or above the target is left untouched: enforce
  never runs on it.
* ``enforce`` downloads the pinned falcon-installer release (:data:`INSTALLER_RELEASE`: the Linux archive;
  on Windows the raw ``.exe`` its ``checksums.txt`` lists beside the archives, as its ``scripts/install.ps1``
  reads it) into a directory only the agent's account can write to, checks it against the release's
  ``checksums.txt``, and runs it with ``--gcp-project-id`` (the installer reads the ``falcon-*`` secrets of
  that project's Secret Manager on the VM, ``internal/vault/gcp.go``) and ``--sensor-version``, with
  ``--update`` when a host of that OS family in the zone has a sensor to upgrade (``pkg/installer/update.go``
  upgrades on Linux and Windows); it maps the installer's success to exit 100 ("An exit code of 100
  indicates 'success'"): ``&& exit 100`` in the shell, ``if($LASTEXITCODE -eq 0){exit 100}`` then ``exit
  $LASTEXITCODE`` in PowerShell (which "will always return an exit code of 0 unless an exit statement is
  provided"). Each script stays within the documented 1,024 characters.

One assignment rather than one per OS: the instance filter (environment labels) is the same for both, so
one rollout under one disruption budget covers the zone (the tenant's ``max_errors`` counts a zone's
failures whatever their OS), one operation is waited on, and a second id in the project is not needed. Each
OS policy allows no resource group match, so a VM of the other OS is compliant with it and left alone.

The instance filter cannot name instances (``InstanceFilter``: all, inclusion/exclusion labels,
inventories), so it selects the zone's VMs labelled with the environments of the hosts that need the
sensor (the tenant's environment label, every tag value each environment matches); the validate step keeps
the others as they are, and a VM with another OS (no resource group matches its inventory) is left alone
(``allowNoResourceGroupMatch``). Each OS policy's version is the highest target version of the zone's hosts
of that OS (sensor builds differ per platform): every host there gets at least what it needs. An
assignment left by an earlier run is updated (a new revision and a rollout when its OS policies or filter
changed). The rollout's disruption budget is the tenant's roll-out
``max_errors`` (as the cycle's patch jobs), so failures stop it early.

The Falcon API client the installer uses (secrets ``falcon-client-id`` and ``falcon-client-secret`` in each
project's Secret Manager, readable by the instances' service account) is provisioned outside Airflow: the
assignment carries no secret, and Airflow never reads one.

Not sent (each with its reason): an RFM host whose remedy is a reinstall of the same version
(falcon-installer skips an installed sensor, :data:`REINSTALL_REASON`), a host with no target version, a
Linux host whose OS family is not known (no inventory filter would select it) or a host of another
platform, and a host with no environment label to select it by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.operators.base import EventLog
from patchcycle.operators.falcon_rollout import (
    INSTALLED_ACTIONS,
    NEEDS_RECORD,
    RolloutContext,
    SensorInstallOperator,
    install_record,
)

SENT_RECORD = "install-gcp-sent.json"
"""What the GCP install task sent (its assignments and the hosts it could not send to)."""
INSTALLER_RELEASE = "0.27.0"
"""The falcon-installer release the enforce step downloads (github.com/CrowdStrike/falcon-installer
releases, assets ``falcon-installer-<version>-linux-<arch>.tar.gz`` and
``falcon-installer-<version>-windows-<arch>.exe`` beside ``checksums.txt``, as its ``scripts/install.sh``
and ``scripts/install.ps1`` read them; ``.goreleaser.yaml`` builds both)."""
POLICY_ID = "falcon-sensor-linux"
WINDOWS_POLICY_ID = "falcon-sensor-windows"
PLATFORMS = ("linux", "windows")
"""The platforms an OS policy of the assignment installs on, one OS policy each."""
WINDOWS_SHORT_NAME = "windows"
"""The inventory ``osInfo.shortName`` of every Windows VM (what the Windows OS policy's filter matches)."""
RESOURCE_ID = "falcon-installer"
SCRIPT_MAX = 1024
"""ExecResource.Exec: "The size of the script is limited to 1024 characters"."""
ID_MAX = 63
"""OSPolicyAssignment id: lowercase letters, numbers and hyphens, starting with a letter, 1-63 characters."""
# OS Config inventory ``osInfo.shortName`` per OS family prefix (what an OS policy's inventory filter
# matches); a family not listed uses its prefix.
SHORT_NAMES = {"ubuntu": "ubuntu", "rhel": "rhel", "centos": "centos", "debian": "debian", "sles": "sles"}
UNKNOWN_OS_REASON = "its OS is not known (the OS policies select VMs by their OS short name)"
REINSTALL_REASON = (
    "a reinstall out of reduced-functionality mode cannot go through falcon-installer, which skips a host "
    "whose sensor is installed (pkg/installer/installer.go): repair it by hand or upgrade it"
)
FAILED_ROLLOUT_STATES = frozenset({"CANCELLED", "CANCELLING"})

VALIDATE = (
    "v=$(/opt/CrowdStrike/falconctl -g --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1)\n"
    '[ -n "$v" ] || exit 101\n'
    "printf '%s\\n%s\\n' {version} \"$v\" | sort -V -C && exit 100\n"
    "exit 101\n"
)
ENFORCE = (
    "set -e\n"
    "R=https://github.com/CrowdStrike/falcon-installer/releases/download/v{release}\n"
    "B=falcon-installer\n"
    "A=$B-{release}-linux-$(uname -m | sed s/aarch64/arm64/).tar.gz\n"
    "D=$(mktemp -d)\n"
    'cd "$D"\n'
    "curl -fsSL -o c.txt $R/checksums.txt\n"
    "curl -fsSL -o $A $R/$A\n"
    'grep " $A$" c.txt | sha256sum -c -\n'
    "tar -xzf $A $B\n"
    '"$D/falcon-installer" --gcp-project-id {project} --sensor-version {version}{update} --tmpdir "$D"'
    " && exit 100\n"
)
# Windows PowerShell 5.1 (what the OS Config agent runs): TLS 1.2 for GitHub is not always on by default, and
# the progress bar slows Invoke-WebRequest (both as install.ps1 says). The download directory is made
# private to SYSTEM and Administrators before anything is written to it (install.ps1's concern: the
# installer runs elevated), as mktemp -d is on Linux. Get-FileHash's default algorithm is SHA-256; -ne
# compares its upper-case hex to checksums.txt's case-insensitively.
VALIDATE_WINDOWS = (
    "$k='HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*'\n"
    "$v=Get-ItemProperty $k -ErrorAction SilentlyContinue|"
    "Where-Object{{$_.DisplayName -like '*CrowdStrike*'}}|"
    "Select-Object -First 1 -ExpandProperty DisplayVersion\n"
    "if($v -and [version]$v -ge [version]'{version}'){{exit 100}}\n"
    "exit 101\n"
)
ENFORCE_WINDOWS = (
    "$ErrorActionPreference='Stop'\n"
    "$ProgressPreference='SilentlyContinue'\n"
    "[Net.ServicePointManager]::SecurityProtocol='Tls12'\n"
    "$R='https://github.com/CrowdStrike/falcon-installer/releases/download/v{release}'\n"
    "$a=('x86_64','arm64')[$env:PROCESSOR_ARCHITECTURE -eq 'ARM64']\n"
    '$A="falcon-installer-{release}-windows-$a.exe"\n'
    "$D=Join-Path $env:SystemRoot\\Temp ([guid]::NewGuid().ToString('N'))\n"
    "$null=mkdir $D\n"
    "icacls $D /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F'|Out-Null\n"
    "if($LASTEXITCODE){{exit 1}}\n"
    "$P=Join-Path $D 'falcon-installer.exe'\n"
    'Invoke-WebRequest "$R/checksums.txt" -OutFile "$D\\c.txt" -UseBasicParsing\n'
    'Invoke-WebRequest "$R/$A" -OutFile $P -UseBasicParsing\n'
    '$h=Get-Content "$D\\c.txt"|ForEach-Object{{$f=-split $_;if($f[1] -ceq $A){{$f[0]}}}}\n'
    "if(-not $h -or (Get-FileHash $P).Hash -ne $h){{'checksum mismatch';exit 1}}\n"
    "& $P --gcp-project-id {project} --sensor-version {version}{update} --tmpdir $D\n"
    "if($LASTEXITCODE -eq 0){{exit 100}}\n"
    "exit $LASTEXITCODE\n"
)


@dataclass(frozen=True)
class SensorTarget:
    """What one OS policy installs: the sensor version, whether an installed sensor is upgraded
    (``--update``), and the inventory OS short names its resource group matches."""

    version: str
    update: bool
    short_names: tuple[str, ...]


def assignment_id(configured: str, zone: str) -> str:
    """The assignment's id in one zone: the configured id and the zone, within 63 characters (a longer one
    is cut and ends with 8 hex digits of its SHA-256, so two zones never share an id)."""
    full = f"{configured}-{zone}"
    if len(full) <= ID_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: ID_MAX - 9].rstrip('-')}-{digest}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _target(hosts: Sequence[Mapping[str, Any]]) -> SensorTarget | None:
    """One OS family's target in a zone: the highest version its hosts need, ``--update`` when one of them
    has a sensor to upgrade, the OS short names to match (None: no host of that family)."""
    if not hosts:
        return None
    windows = hosts[0]["platform"] == "windows"
    return SensorTarget(
        version=max((str(h["target_version"]) for h in hosts), key=_version_key),
        update=any(h.get("sensor_version") for h in hosts),
        short_names=(WINDOWS_SHORT_NAME,)
        if windows
        else tuple(short_name(str(h["os_family"])) for h in hosts),
    )


def short_name(os_family: str) -> str:
    """The inventory ``osShortName`` of an OS family (``rhel_8`` -> ``rhel``)."""
    prefix = os_family.split("_", 1)[0]
    return SHORT_NAMES.get(prefix, prefix)


def _script(template: str, **values: str) -> str:
    script = template.format(**values)
    if len(script) > SCRIPT_MAX:  # the API would refuse it (400)
        raise ValueError(f"exec script of {len(script)} characters: at most {SCRIPT_MAX}")
    return script


def os_policy(project: str, target: SensorTarget, *, windows: bool) -> dict[str, Any]:
    """The OS policy (REST JSON form) that installs ``target`` on the VMs of its OS short names."""
    update = " --update" if target.update else ""
    values = {"release": INSTALLER_RELEASE, "project": project, "version": target.version, "update": update}
    validate, enforce = (VALIDATE_WINDOWS, ENFORCE_WINDOWS) if windows else (VALIDATE, ENFORCE)
    interpreter = "POWERSHELL" if windows else "SHELL"
    return {
        "id": WINDOWS_POLICY_ID if windows else POLICY_ID,
        "description": "falcon-installer, API client from the project's Secret Manager",
        "mode": "ENFORCEMENT",
        "allowNoResourceGroupMatch": True,
        "resourceGroups": [
            {
                "inventoryFilters": [{"osShortName": name} for name in sorted(set(target.short_names))],
                "resources": [
                    {
                        "id": RESOURCE_ID,
                        "exec": {
                            "validate": {"interpreter": interpreter, "script": _script(validate, **values)},
                            "enforce": {"interpreter": interpreter, "script": _script(enforce, **values)},
                        },
                    }
                ],
            }
        ],
    }


def assignment_body(
    *,
    tenant_id: str,
    project: str,
    linux: SensorTarget | None,
    windows: SensorTarget | None,
    labels: Sequence[Mapping[str, str]],
    budget: Mapping[str, int],
    min_wait_seconds: int,
) -> dict[str, Any]:
    """The OS policy assignment (REST JSON form) that installs each target on the selected VMs of its OS:
    a Linux and a Windows OS policy, each only when given."""
    policies = [os_policy(project, linux, windows=False)] if linux else []
    policies += [os_policy(project, windows, windows=True)] if windows else []
    if not policies:
        raise ValueError("an OS policy assignment needs a Linux or a Windows target")
    versions = " and ".join(sorted({t.version for t in (linux, windows) if t}, key=_version_key))
    return {
        "description": f"patchcycle {tenant_id}: CrowdStrike Falcon sensor {versions} or newer"[:1024],
        "osPolicies": policies,
        "instanceFilter": {"inclusionLabels": [{"labels": dict(label)} for label in labels]},
        "rollout": {"disruptionBudget": dict(budget), "minWaitDuration": f"{int(min_wait_seconds)}s"},
    }


def host_result(report: Mapping[str, Any] | None, never: str, *, windows: bool = False) -> dict[str, Any]:
    """One host's install result from its assignment report (None: the rollout never reached it), read
    from the OS policy of its OS."""
    if report is None:
        return {"result": "failed", "status": "NOT_REACHED", "reason": never}
    policy_id = WINDOWS_POLICY_ID if windows else POLICY_ID
    compliance = next(
        (c for c in report.get("osPolicyCompliances") or [] if c.get("osPolicyId") == policy_id), None
    )
    if compliance is None:
        return {
            "result": "failed",
            "status": "UNKNOWN",
            "reason": f"its report names no {policy_id} OS policy",
        }
    state = str(compliance.get("complianceState") or "UNKNOWN")
    if state == "COMPLIANT":
        return {"result": "sent_succeeded", "status": state}
    errors = [
        f"{step.get('type')}: {step['errorMessage']}"
        for resource in compliance.get("osPolicyResourceCompliances") or []
        for step in resource.get("configSteps") or []
        if step.get("errorMessage")
    ]
    reason = "; ".join(errors) or str(compliance.get("complianceStateReason") or state.lower())
    return {"result": "failed", "status": state, "reason": reason[-800:]}


class InstallSensorsGcpOperator(SensorInstallOperator):
    """Installs or upgrades the sensor on the tenant's GCE instances that need it, Linux and Windows: one
    OS Config OS policy assignment per project and zone (created, or updated when an earlier run left it),
    with a Linux OS policy (shell scripts) and a Windows one (PowerShell scripts) for the OS families the
    zone's hosts need, whose exec resources run falcon-installer (see the module). The Falcon API client
    the installer reads from each project's Secret Manager (``falcon-client-id``, ``falcon-client-secret``)
    is provisioned outside Airflow; the assignment holds no secret. Waits deferred until every assignment's
    rollout is done, then records each host's result from the per-instance reports, read from the OS policy
    of its OS (``records/install-gcp.json``)."""

    def execute(self, context: Any) -> Any:
        """Create or update the assignments; wait for their rollouts when any was sent."""
        payload = super().execute(context)
        if not payload["assignments"]:
            return self.resume(context, {"status": "done", "operations": {}}, self._complete)
        return self.wait_for(context, "os_policy_assignments", payload)

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Group the GCP hosts that need the sensor by project and zone, send one assignment each; the
        wait's payload (and the hosts not sent)."""
        needs = run.read_record(run.paths.file(NEEDS_RECORD))
        identity = {str(h["host_id"]): h for h in needs["hosts"]}
        not_sent: dict[str, str] = {}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for need in needs["needs"]:
            if need["cloud"] != "gcp" or need["action"] not in INSTALLED_ACTIONS:
                continue
            host = identity[str(need["host_id"])]
            why = self._not_sendable(need, host)
            if why:
                not_sent[str(need["host_id"])] = why
                continue
            groups.setdefault((str(host["account"]), str(host["region"])), []).append(need | host)
        assignments = [
            self._send(run, log, project, zone, hosts) for (project, zone), hosts in sorted(groups.items())
        ]
        sent = {"assignments": assignments, "not_sent": not_sent}
        run.write_record(run.paths.file(SENT_RECORD), sent)
        return sent

    def _not_sendable(self, need: Mapping[str, Any], host: Mapping[str, Any]) -> str | None:
        if not need.get("target_version"):
            return f"no sensor version to install: {need['reason']}"
        if need["action"] == "rfm" and need.get("remedy") == "reinstall":
            return REINSTALL_REASON
        if need.get("platform") not in ("linux", "windows"):
            return UNKNOWN_OS_REASON
        if need["platform"] == "linux" and not host.get("os_family"):
            return UNKNOWN_OS_REASON
        if not self._labels(str(host.get("environment") or "")):
            return "no environment label selects it (the OS policy's filter selects VMs by label)"
        return None

    def _labels(self, environment: str) -> list[dict[str, str]]:
        """The label sets that select an environment's VMs: the tenant's environment label key, each tag
        value the environment matches (GCE labels are lower case)."""
        key = self.tenant.host_tags.environment.lower()
        for env in self.tenant.environments:
            if env.name.value == environment:
                return [{key: value.lower()} for value in sorted(set(env.matches_tag_values))]
        return []

    def _send(
        self, run: RolloutContext, log: EventLog, project: str, zone: str, hosts: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        from patchcycle.domain.gcp_jobs import disruption_budget
        from patchcycle.hooks.gcp_base import GcpConflict
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        install = run.rollout.install.gcp
        gcp_project = next(p for p in self.tenant.clouds.gcp.projects if p.project_id == project)
        conn_id = self.tenant.gcp_connection_id(gcp_project)
        targets = {
            platform: _target([h for h in hosts if h["platform"] == platform]) for platform in PLATFORMS
        }
        labels = {
            tuple(sorted(label.items())): label
            for environment in sorted({str(h["environment"]) for h in hosts})
            for label in self._labels(environment)
        }
        body = assignment_body(
            tenant_id=self.tenant.id,
            project=project,
            linux=targets["linux"],
            windows=targets["windows"],
            labels=list(labels.values()),
            budget=disruption_budget(install.rate_control.max_errors),
            min_wait_seconds=install.min_wait_seconds,
        )
        hook = OsConfigHook(gcp_conn_id=conn_id, project_id=project)
        name = assignment_id(install.os_policy_assignment, zone)
        try:
            operation, method = hook.create_os_policy_assignment(zone, name, body), "create"
        except GcpConflict:  # left by an earlier run: a new revision of it
            etag = hook.os_policy_assignment(zone, name).get("etag")
            operation, method = hook.update_os_policy_assignment(zone, name, body, etag=etag), "update"
        log.record(
            "falcon.install_sent",
            target=f"gcp:{project}:{zone}",
            assignment=name,
            operation=operation,
            method=method,
            versions={platform: t.version for platform, t in targets.items() if t},
            hosts=[str(h["name"]) for h in hosts],
        )
        return {
            "conn_id": conn_id,
            "project": project,
            "zone": zone,
            "assignment": name,
            "operation": operation,
            "versions": {platform: t.version for platform, t in targets.items() if t},
            "hosts": {str(h["host_id"]): str(h["name"]) for h in hosts},
            "windows": sorted(str(h["host_id"]) for h in hosts if h["platform"] == "windows"),
        }

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Record each host's install result."""
        return self.resume(context, event, self._complete)

    def _complete(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        sent = run.read_record(run.paths.file(SENT_RECORD), required=False) or {
            "assignments": [],
            "not_sent": {},
        }
        results: dict[str, dict[str, Any]] = {
            host_id: {"result": "not_sent", "reason": why} for host_id, why in sent["not_sent"].items()
        }
        operations = event.get("operations") or {}
        for sent_to in sent["assignments"]:
            hook = OsConfigHook(gcp_conn_id=sent_to["conn_id"], project_id=sent_to["project"])
            reports = {
                str(r.get("instance")): r
                for r in hook.os_policy_assignment_reports(sent_to["zone"], sent_to["assignment"])
            }
            answer = operations.get(sent_to["operation"]) or {}
            if not answer.get("done"):
                never = (
                    f"the assignment's rollout had not reached it when the wait ended ({event.get('status')})"
                )
            elif answer.get("error"):
                never = f"the rollout stopped before reaching it: {answer['error']}"
            else:
                never = "the rollout did not select it (check its environment label and OS Config agent)"
            # A record written before Windows was sent holds one Linux "version" and no "windows".
            windows = set(sent_to.get("windows") or [])
            versions = sent_to.get("versions") or {"linux": sent_to.get("version")}
            for host_id, name in sent_to["hosts"].items():
                platform = "windows" if host_id in windows else "linux"
                results[host_id] = {
                    "name": name,
                    "version": versions[platform],
                    "assignment": sent_to["assignment"],
                    **host_result(reports.get(name), never, windows=host_id in windows),
                }
        failed = [r for r in results.values() if r["result"] != "sent_succeeded"]
        run.write_record(
            run.paths.file(install_record("gcp")), {"wait": event.get("status"), "hosts": results}
        )
        log.record(
            "falcon.install_finished",
            target=f"gcp:{self.tenant.id}",
            result="failed" if failed else "ok",
            hosts=len(results),
            failed=len(failed),
        )
        return {"hosts": len(results), "failed": len(failed)}
