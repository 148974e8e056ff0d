"""The roll-out's GCP install task: the Falcon sensor installed or upgraded on the tenant's Compute Engine
instances through an OS Config OS policy assignment, with no SSH and no secret in Airflow.

One assignment per project and zone (its id is unique within the project, so the zone is part of it:
:func:`assignment_id`), holding one Linux OS policy whose ``exec`` resource runs CrowdStrike's
falcon-installer (github.com/CrowdStrike/falcon-installer):

* ``validate`` exits 100 when ``falconctl`` reports a sensor at the target version or newer, 101 otherwise
  (ExecResource: "exit code of 100 indicates 'in desired state', and exit code of 101 indicates 'not in
  desired state'"). A VM the filter selects that already has a sensor at or above the target is left
  untouched: enforce never runs on it.
* ``enforce`` downloads the pinned falcon-installer release, checks it against the release's
  ``checksums.txt``, and runs it with ``--gcp-project-id`` (the installer reads the ``falcon-*`` secrets of
  that project's Secret Manager on the VM, ``internal/vault/gcp.go``) and ``--sensor-version``, with
  ``--update`` when a host of the zone has a sensor to upgrade; it ends ``&& exit 100`` ("An exit code of
  100 indicates 'success'"). Each script stays within the documented 1,024 characters.

The instance filter cannot name instances (``InstanceFilter``: all, inclusion/exclusion labels,
inventories), so it selects the zone's VMs labelled with the environments of the hosts that need the
sensor (the tenant's environment label, every tag value each environment matches); the validate step keeps
the others as they are, and a VM with another OS (no resource group matches its inventory) is left alone
(``allowNoResourceGroupMatch``). The version is the highest target version of the zone's hosts: every host
there gets at least what it needs. An assignment left by an earlier run is updated (a new revision and a
rollout when its OS policies or filter changed). The rollout's disruption budget is the tenant's roll-out
``max_errors`` (as the cycle's patch jobs), so failures stop it early.

The Falcon API client the installer uses (secrets ``falcon-client-id`` and ``falcon-client-secret`` in each
project's Secret Manager, readable by the instances' service account) is provisioned outside Airflow: the
assignment carries no secret, and Airflow never reads one.

Not sent (each with its reason): Windows instances (the path is Linux only, see :data:`WINDOWS_REASON`),
an RFM host whose remedy is a reinstall of the same version (falcon-installer skips an installed sensor),
a host with no target version or no environment label to select it by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from patchcycle.operators.base import EventLog, WaitArguments
from patchcycle.operators.falcon_rollout import (
    INSTALLED_ACTIONS,
    NEEDS_RECORD,
    RolloutContext,
    RolloutTaskMixin,
    install_record,
)

SENT_RECORD = "install-gcp-sent.json"
"""What the GCP install task sent (its assignments and the hosts it could not send to)."""
INSTALLER_RELEASE = "0.27.0"
"""The falcon-installer release the enforce step downloads (github.com/CrowdStrike/falcon-installer
releases, assets ``falcon-installer-<version>-linux-<arch>.tar.gz`` beside ``checksums.txt``, as its
``scripts/install.sh`` reads them)."""
POLICY_ID = "falcon-sensor-linux"
RESOURCE_ID = "falcon-installer"
SCRIPT_MAX = 1024
"""ExecResource.Exec: "The size of the script is limited to 1024 characters"."""
ID_MAX = 63
"""OSPolicyAssignment id: lowercase letters, numbers and hyphens, starting with a letter, 1-63 characters."""
# OS Config inventory ``osInfo.shortName`` per OS family prefix (what an OS policy's inventory filter
# matches); a family not listed uses its prefix.
SHORT_NAMES = {"ubuntu": "ubuntu", "rhel": "rhel", "centos": "centos", "debian": "debian", "sles": "sles"}
WINDOWS_REASON = (
    "Windows instances are not installed through the GCP OS policy path yet: it runs falcon-installer's "
    "Linux build from a shell exec resource"
)
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


def short_name(os_family: str) -> str:
    """The inventory ``osShortName`` of an OS family (``rhel_8`` -> ``rhel``)."""
    prefix = os_family.split("_", 1)[0]
    return SHORT_NAMES.get(prefix, prefix)


def assignment_body(
    *,
    tenant_id: str,
    project: str,
    version: str,
    update: bool,
    families: Sequence[str],
    labels: Sequence[Mapping[str, str]],
    budget: Mapping[str, int],
    min_wait_seconds: int,
) -> dict[str, Any]:
    """The OS policy assignment (REST JSON form) that installs ``version`` on the selected Linux VMs."""
    validate = VALIDATE.format(version=version)
    enforce = ENFORCE.format(
        release=INSTALLER_RELEASE, project=project, version=version, update=" --update" if update else ""
    )
    for script in (validate, enforce):
        if len(script) > SCRIPT_MAX:  # the API would refuse it (400)
            raise ValueError(f"exec script of {len(script)} characters: at most {SCRIPT_MAX}")
    return {
        "description": f"patchcycle {tenant_id}: CrowdStrike Falcon sensor {version} or newer"[:1024],
        "osPolicies": [
            {
                "id": POLICY_ID,
                "description": "falcon-installer, API client from the project's Secret Manager",
                "mode": "ENFORCEMENT",
                "allowNoResourceGroupMatch": True,
                "resourceGroups": [
                    {
                        "inventoryFilters": [{"osShortName": name} for name in sorted(set(families))],
                        "resources": [
                            {
                                "id": RESOURCE_ID,
                                "exec": {
                                    "validate": {"interpreter": "SHELL", "script": validate},
                                    "enforce": {"interpreter": "SHELL", "script": enforce},
                                },
                            }
                        ],
                    }
                ],
            }
        ],
        "instanceFilter": {"inclusionLabels": [{"labels": dict(label)} for label in labels]},
        "rollout": {"disruptionBudget": dict(budget), "minWaitDuration": f"{int(min_wait_seconds)}s"},
    }


def host_result(report: Mapping[str, Any] | None, never: str) -> dict[str, Any]:
    """One host's install result from its assignment report (None: the rollout never reached it)."""
    if report is None:
        return {"result": "failed", "status": "NOT_REACHED", "reason": never}
    compliance = next(
        (c for c in report.get("osPolicyCompliances") or [] if c.get("osPolicyId") == POLICY_ID), None
    )
    if compliance is None:
        return {"result": "failed", "status": "UNKNOWN", "reason": "its report names no Falcon OS policy"}
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


class InstallSensorsGcpOperator(WaitArguments, RolloutTaskMixin, BaseOperator):
    """Installs or upgrades the sensor on the tenant's GCE instances that need it: one OS Config OS policy
    assignment per project and zone (created, or updated when an earlier run left it), whose exec resource
    runs falcon-installer (see the module). The Falcon API client the installer reads from each project's
    Secret Manager (``falcon-client-id``, ``falcon-client-secret``) is provisioned outside Airflow; the
    assignment holds no secret. Waits deferred until every assignment's rollout is done, then records each
    host's result from the per-instance reports (``records/install-gcp.json``)."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        tenant_id: str,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

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
        if need.get("platform") != "linux" or not host.get("os_family"):
            return WINDOWS_REASON if need.get("platform") == "windows" else "its OS is not known"
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
        version = max((str(h["target_version"]) for h in hosts), key=_version_key)
        labels = {
            tuple(sorted(label.items())): label
            for environment in sorted({str(h["environment"]) for h in hosts})
            for label in self._labels(environment)
        }
        body = assignment_body(
            tenant_id=self.tenant.id,
            project=project,
            version=version,
            update=any(h.get("sensor_version") for h in hosts),
            families=[short_name(str(h["os_family"])) for h in hosts],
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
            version=version,
            hosts=[str(h["name"]) for h in hosts],
        )
        return {
            "conn_id": conn_id,
            "project": project,
            "zone": zone,
            "assignment": name,
            "operation": operation,
            "version": version,
            "hosts": {str(h["host_id"]): str(h["name"]) for h in hosts},
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
            for host_id, name in sent_to["hosts"].items():
                results[host_id] = {
                    "name": name,
                    "version": sent_to["version"],
                    "assignment": sent_to["assignment"],
                    **host_result(reports.get(name), never),
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
