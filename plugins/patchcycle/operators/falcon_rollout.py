"""The Falcon sensor roll-out of one tenant (``falcon_rollout__<tenant>``): who needs a sensor, and the
run's evidence.

``find`` reads every scope of every cloud of the tenant (the cycle's own inventory readers, without a
plan), the tenant's Falcon device records and the sensor-update builds, and records what each host needs
(:mod:`patchcycle.domain.falcon_rollout`: install, upgrade, repair from reduced-functionality mode, ok, or
skip, each with its reason and target version). A scope that cannot be read is recorded with its error and
the others go on; without Falcon's answer nothing can be decided and the task fails (the evidence still
records why). ``evidence`` runs however the tasks before it ended and writes the run's pack
(``falcon-rollout/<day>/runs/<run>/pack/``: ``rollout.json``, ``hosts.csv``, ``manifest.json`` chained to
the previous roll-out pack, a chain of its own as the drift reports have), mapped to the controls the
catalogs' ``rollout_controls`` name (endpoint protection), then fails the run when it did not complete.

A roll-out run is not a cycle: it has no plan and no stages, so it works from a :class:`RolloutContext`
(tenant, evidence store, the day, the run).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.exceptions import AirflowFailException

from patchcycle import __version__
from patchcycle.config.falcon_rollout import FalconRollout
from patchcycle.domain.falcon_rollout import PLATFORMS, classify_hosts
from patchcycle.operators.base import DailyTaskMixin, EventLog, WaitArguments, run_type_name, utcnow
from patchcycle.operators.context import TaskRunContext
from patchcycle.operators.inventory import cloud_errors, inventory_scopes, scope_error
from patchcycle.reports.drift_store import DailyPaths, free_pack, previous_manifest_sha256
from patchcycle.reports.manifest import MANIFEST_NAME, build_manifest, manifest_bytes, manifest_sha256

ROLLOUT_PREFIX = "falcon-rollout/"
REPORT_NAME = "rollout.json"
HOSTS_NAME = "hosts.csv"
NEEDS_RECORD = "needs.json"
VALIDATION_RECORD = "validation.json"
WAIT_RECORD = "validation-wait.json"
"""What the validation waits on (its hosts and expectations), read again when a wake adds group members."""
SCHEMA_VERSION = "rollout-1.0"
FIND_TASK_ID = "find"

HOST_COLUMNS: tuple[str, ...] = (
    "name",
    "cloud",
    "environment",
    "host_id",
    "platform",
    "action",
    "reason",
    "device_id",
    "sensor_version",
    "target_version",
    "install",
    "validated",
    "validation_reasons",
)
"""The columns of ``hosts.csv``: one row per host the roll-out found."""
IDENTITY: tuple[str, ...] = (
    "host_id",
    "name",
    "cloud",
    "account",
    "region",
    "private_ip",
    "environment",
    "os_family",
)
"""The inventory fields a host is matched to its Falcon device record by (``domain.sensor.attach_falcon``)."""


class RolloutContext(TaskRunContext):
    """One execution of a roll-out task: the tenant, its evidence store, the run and the day it is filed
    under (the run's logical date, else when it was due)."""

    @cached_property
    def day(self) -> dt.date:
        """The day the run is filed under."""
        moment = self.airflow.get("logical_date") or self.dag_run.run_after
        return moment.astimezone(dt.UTC).date()

    @property
    def paths(self) -> DailyPaths:
        """The keys of this run's records and pack."""
        return DailyPaths(self.day.isoformat(), self.run_id, ROLLOUT_PREFIX)

    @property
    def rollout(self) -> FalconRollout:
        """The tenant's roll-out policy (``falcon.rollout``)."""
        falcon = self.tenant.falcon
        if falcon is None or falcon.rollout is None:
            raise AirflowFailException(f"tenant {self.tenant.id} declares no falcon.rollout")
        return falcon.rollout


class RolloutTaskMixin(DailyTaskMixin):
    """A roll-out task: its :class:`RolloutContext` built once per execute, its events stored."""

    context_class = RolloutContext


def read_fleet(tenant: Any, log: EventLog) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every host of every cloud of the tenant as normalized inventory rows, and each scope's outcome; a
    scope that does not answer is recorded with its error and the others go on."""
    rows: list[dict[str, Any]] = []
    scopes: list[dict[str, Any]] = []
    errors = cloud_errors()
    for cloud in tenant.clouds.declared:
        for label, collect in inventory_scopes(tenant, cloud, patch_data=False):
            try:
                found, calls = collect()
            except errors as exc:
                scopes.append({"cloud": cloud, "scope": label, "status": "failed", "error": scope_error(exc)})
                log.record("falcon.scope_failed", target=label, result="failed", error=scope_error(exc))
                continue
            rows.extend(found)
            scopes.append({"cloud": cloud, "scope": label, "status": "ok", "hosts": len(found), **calls})
    return rows, scopes


def handed_off_kernels(run: RolloutContext, log: EventLog) -> dict[str, str]:
    """The kernel each host the tenant's latest cycle held must be able to run, for the sensor upgrades it
    handed off that are still due (its evidence's ``sensor_upgrades.handed_off``, the paper's 6.2): the
    roll-out upgrades those sensors to one that supports the kernel before the next cycle."""
    from patchcycle.domain.falcon_rollout import open_upgrades
    from patchcycle.domain.fleet_status import PackUnreadable, latest_packs

    try:
        latest = latest_packs(run.store.keys("cycles/"), run.store.get_json).cycle
    except PackUnreadable as exc:
        log.record("falcon.handoff_unreadable", target=run.tenant.id, result="failed", error=str(exc))
        return {}
    if latest is None:
        return {}
    handed = list((latest.evidence.get("sensor_upgrades") or {}).get("handed_off") or [])
    due = open_upgrades(handed, utcnow())
    if handed:
        log.record(
            "falcon.handoff_read",
            target=latest.key,
            cycle_date=latest.evidence["cycle"]["cycle_date"],
            handed_off=len(handed),
            due=sorted(due),
        )
    return due


class SensorNeedsOperator(RolloutTaskMixin, BaseOperator):
    """What every host of the tenant needs from the roll-out (``records/needs.json``)."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e8f0fe"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Read the fleet and Falcon, classify every host, write the needs; return the counts by action. A
        trigger form's request to re-enter a prevention phase is checked first: a bad one fails the run
        before any install."""
        from patchcycle.hooks.falcon import FalconHook

        rollout = run.rollout
        if rollout.prevention_phases:
            from patchcycle.operators.falcon_phases import reentry_request

            try:
                reentry_request(run.params, [p.name for p in rollout.prevention_phases], None)
            except ValueError as exc:
                raise AirflowFailException(f"refused before any change: {exc}") from exc
        rows, scopes = read_fleet(self.tenant, log)
        falcon = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        devices = falcon.devices()
        builds = [build for platform in PLATFORMS for build in falcon.sensor_builds(platform)]
        handoff = handed_off_kernels(run, log)
        support = falcon.kernel_support(sorted(set(handoff.values()))) if handoff else {}
        needs = classify_hosts(rows, devices, builds, rollout.sensor_version, handoff, support)
        counts = Counter(need.action for need in needs)
        failed = [s["scope"] for s in scopes if s["status"] == "failed"]
        platform = {need.host_id: need.platform for need in needs}
        run.write_record(
            run.paths.file(NEEDS_RECORD),
            {
                "read_at": utcnow().isoformat(),
                "needs": [need.to_dict() for need in needs],
                # What matches a host to its device record later (cloud identity, name and private IP).
                "hosts": [
                    {key: row.get(key) for key in IDENTITY}
                    | {"platform": platform.get(str(row.get("host_id")))}
                    for row in rows
                ],
                "scopes": scopes,
                # Hosts a cycle's kernel gate held, with the kernel their sensor must support.
                "kernel_handoff": handoff,
                "devices": len(devices),
                "builds": len(builds),
            },
        )
        log.record(
            "falcon.sensors_assessed",
            target=self.tenant.id,
            result="partial" if failed else "ok",
            hosts=len(needs),
            devices=len(devices),
            failed_scopes=failed,
            **{action: counts.get(action, 0) for action in ("install", "upgrade", "rfm", "ok", "skip")},
        )
        return {"hosts": len(needs), "failed_scopes": len(failed), **dict(counts)}


INSTALLED_ACTIONS = ("install", "upgrade", "rfm")
"""The needs the roll-out acts on: a sensor installed, upgraded, or reinstalled/upgraded out of RFM."""


SENT_RECORD = "install-aws-sent.json"
"""What the AWS install task sent (its commands and the hosts it could not send to)."""


def install_record(cloud: str) -> str:
    """The record of one cloud's install task (``records/install-<cloud>.json``)."""
    return f"install-{cloud}.json"


class SensorInstallOperator(WaitArguments, RolloutTaskMixin, BaseOperator):
    """A cloud's install task of the roll-out: deferrable, waiting on its cloud's check (the one waiting
    contract), writing ``records/install-<cloud>.json``."""

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


class InstallSensorsAwsOperator(SensorInstallOperator):
    """Installs or upgrades the sensor on the tenant's EC2 hosts that need it, with no SSH: Run Command of
    the tenant's Falcon install document (``falcon.rollout.install.aws.document_name``, the one its
    Terraform declares). Per account and region, the CID and installation token (from the roll-out's
    connection: login and password) are written as the SecureString parameters the document reads on the
    host, under the names Terraform gave it; each sensor package is downloaded from Falcon (checked against
    its SHA-256) and staged in the tenant's installer bucket; the document gets only the package's URL and
    SHA-256, never a secret. At most 50 instances per SendCommand, under the tenant's rate control; the task
    waits deferred for the commands, then records each host's result (``records/install-aws.json``)."""

    def execute(self, context: Any) -> Any:
        """Send the installs; wait for them when any was sent."""
        payload = super().execute(context)
        if not payload["commands"]:
            return self.resume(context, {"status": "done", "commands": {}}, self._complete)
        return self.wait_for(context, "run_commands", payload)

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Stage packages and secrets, send the commands; the wait's payload (and the hosts not sent)."""
        needs = run.read_record(run.paths.file(NEEDS_RECORD))
        identity = {str(h["host_id"]): h for h in needs["hosts"]}
        wanted = [n for n in needs["needs"] if n["cloud"] == "aws" and n["action"] in INSTALLED_ACTIONS]
        install = run.rollout.install.aws
        not_sent: dict[str, str] = {}
        commands: list[dict[str, Any]] = []
        if wanted and install.installer_bucket is None:
            not_sent = {
                n["host_id"]: "falcon.rollout.install.aws.installer_bucket is not set" for n in wanted
            }
            wanted = []
        groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        for need in wanted:
            host = identity[str(need["host_id"])]
            if not need.get("target_version"):
                not_sent[need["host_id"]] = f"no sensor version to install: {need['reason']}"
                continue
            key = (
                str(host["account"]),
                str(host["region"]),
                str(host["os_family"]),
                str(need["target_version"]),
            )
            groups.setdefault(key, []).append(need)
        if groups:
            commands = self._send(run, log, groups, not_sent)
        sent = {"commands": commands, "not_sent": not_sent}
        run.write_record(run.paths.file(SENT_RECORD), sent)
        return sent

    def _send(
        self,
        run: RolloutContext,
        log: EventLog,
        groups: Mapping[tuple[str, str, str, str], list[dict[str, Any]]],
        not_sent: dict[str, str],
    ) -> list[dict[str, Any]]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.sdk.bases.hook import BaseHook

        from patchcycle.domain.falcon_rollout import host_platform, pick_installer
        from patchcycle.domain.terraform_vars import falcon_parameter_names
        from patchcycle.hooks.aws import SSM_SEND_INSTANCE_IDS, SsmFleetHook
        from patchcycle.hooks.falcon import FalconHook, chunks

        tenant, install = self.tenant, run.rollout.install.aws
        secret = BaseHook.get_connection(run.rollout.install_connection_id(tenant.id))
        names = falcon_parameter_names(tenant.id)
        falcon = FalconHook(falcon_conn_id=tenant.falcon_connection_id())
        staged: dict[str, str] = {}
        offered: dict[tuple[str, str], list[dict[str, Any]]] = {}
        secured: set[tuple[str, str]] = set()
        rate = install.rate_control
        commands = []
        for (account_id, region, family, version), needs in sorted(groups.items()):
            account = next(a for a in tenant.clouds.aws.accounts if a.account_id == account_id)
            conn_id = tenant.aws_connection_id(account)
            platform = host_platform({"os_family": family}, None) or "linux"
            if (platform, version) not in offered:  # one query per platform and version, whatever the scopes
                offered[(platform, version)] = falcon.sensor_installers(platform, [version])
            installer = pick_installer(offered[(platform, version)], family, version)
            if installer is None:
                for need in needs:
                    not_sent[need["host_id"]] = f"Falcon offers no {family} installer of sensor {version}"
                continue
            sha256 = str(installer["sha256"])
            key = f"falcon-sensor/{sha256}/{installer['name']}"
            if key not in staged:
                data = falcon.download_installer(sha256)
                S3Hook(aws_conn_id=conn_id).load_bytes(data, key, install.installer_bucket, replace=True)
                staged[key] = f"s3://{install.installer_bucket}/{key}"
                log.record("falcon.installer_staged", target=staged[key], sha256=sha256, version=version)
            ssm = SsmFleetHook(aws_conn_id=conn_id, region_name=region)
            if (account_id, region) not in secured:
                cid = str(secret.login or "") or falcon.ccid()  # the connection's, else the API client's
                ssm.put_secure_string(names["cid"], cid, f"Falcon CID of {tenant.id}")
                ssm.put_secure_string(
                    names["installation_token"],
                    str(secret.password),
                    f"Falcon installation token of {tenant.id}",
                )
                secured.add((account_id, region))
            for batch in chunks(needs, SSM_SEND_INSTANCE_IDS):
                ids = [str(n["host_id"]) for n in batch]
                command = ssm.send_document(
                    document=install.document_name,
                    instance_ids=ids,
                    parameters={"InstallerUrl": [staged[key]], "InstallerSha256": [sha256]},
                    max_concurrency=rate.max_concurrency,
                    max_errors=rate.max_errors,
                    comment=f"patchcycle {tenant.id} falcon sensor {version}",
                )
                commands.append(
                    {
                        "conn_id": conn_id,
                        "region": region,
                        "command_id": command["CommandId"],
                        "hosts": {n["host_id"]: n["name"] for n in batch},
                        "version": version,
                    }
                )
                log.record(
                    "falcon.install_sent",
                    target=f"aws:{account_id}:{region}",
                    command_id=command["CommandId"],
                    document=install.document_name,
                    version=version,
                    installer=staged[key],
                    hosts=[n["name"] for n in batch],
                )
        return commands

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Record each host's install result."""
        return self.resume(context, event, self._complete)

    def _complete(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import SsmFleetHook

        payload = self._payload(run)
        results: dict[str, dict[str, Any]] = {
            host_id: {"result": "not_sent", "reason": why} for host_id, why in payload["not_sent"].items()
        }
        hooks: dict[tuple[str, str], SsmFleetHook] = {}  # one per scope: its session (and role) reused
        for command in payload["commands"]:
            key = (command["conn_id"], command["region"])
            if key not in hooks:
                hooks[key] = SsmFleetHook(aws_conn_id=command["conn_id"], region_name=command["region"])
            seen = {i["InstanceId"]: i for i in hooks[key].command_invocations(command["command_id"])}
            for host_id, name in command["hosts"].items():
                invocation = seen.get(host_id)
                status = (invocation or {}).get("Status", "NotDelivered")
                output = " ".join(
                    str(p.get("Output") or "")
                    for p in (invocation or {}).get("CommandPlugins") or []
                    if p.get("Status") != "Success" or p.get("StatusDetails") != "Skipped"
                ).strip()
                results[host_id] = {
                    "name": name,
                    "result": "sent_succeeded" if status == "Success" else "failed",
                    "status": status,
                    "command_id": command["command_id"],
                    "version": command["version"],
                    "output": output[-800:],
                }
        failed = [r for r in results.values() if r["result"] != "sent_succeeded"]
        run.write_record(
            run.paths.file(install_record("aws")), {"wait": event.get("status"), "hosts": results}
        )
        log.record(
            "falcon.install_finished",
            target=f"aws:{self.tenant.id}",
            result="failed" if failed else "ok",
            hosts=len(results),
            failed=len(failed),
        )
        return {"hosts": len(results), "failed": len(failed)}

    def _payload(self, run: RolloutContext) -> dict[str, Any]:
        """What :meth:`run` sent (``records/install-aws-sent.json``)."""
        sent = run.read_record(run.paths.file(SENT_RECORD), required=False)
        return sent or {"commands": [], "not_sent": {}}


VALIDATED_ACTIONS = ("install", "upgrade", "rfm", "ok")
"""The hosts validated through the Falcon API: every one that can carry a sensor."""


class ValidateSensorsOperator(WaitArguments, RolloutTaskMixin, BaseOperator):
    """Each host validated through the Falcon API (``records/validation.json``): a device record in the
    tenant's CID matched by cloud identity, the expected sensor version or newer, not in RFM, in its
    environment's host group, and the prevention and sensor-update policies that group gets assigned and
    applied. Static host groups get their missing members added first (a dynamic group picks its own by
    its rule). Deferrable: it waits, holding no worker slot, until every host passes or the attempts run
    out, then records every host's result with its reasons."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        tenant_id: str,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 60,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)  # validate whatever the installs did
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

    def execute(self, context: Any) -> Any:
        """Resolve what each host must show, add missing static group members, then wait."""
        payload = super().execute(context)
        return self.wait_for(context, "falcon_sensors", payload)

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """The wait's payload: the hosts, what their environment and platform expect, their versions."""
        from patchcycle.hooks.falcon import FalconHook

        needs = run.read_record(run.paths.file(NEEDS_RECORD))
        by_id = {str(n["host_id"]): n for n in needs["needs"]}
        hosts = [
            h for h in needs["hosts"] if by_id.get(str(h["host_id"]), {}).get("action") in VALIDATED_ACTIONS
        ]
        conn_id = self.tenant.falcon_connection_id()
        hook = FalconHook(falcon_conn_id=conn_id)
        expectations = self._expectations(run, hook, hosts, log)
        self._add_static_members(hook, hosts, expectations, log)
        installed = self._installed(run)
        versions, awaited = {}, []
        for host in hosts:
            host_id = str(host["host_id"])
            need = by_id[host_id]
            if need["action"] == "ok":
                versions[host_id] = str(need.get("sensor_version") or "0")
                awaited.append(host_id)  # its group's policies may still be applying
            else:
                versions[host_id] = str(need.get("target_version") or "0")
                if installed.get(host_id) == "sent_succeeded":
                    awaited.append(host_id)  # its device record registers after the install
        payload = {
            "conn_id": conn_id,
            "hosts": hosts,
            "expectations": list(expectations.values()),
            "expected_versions": versions,
            "awaited": awaited,
        }
        run.write_record(run.paths.file(WAIT_RECORD), payload)
        return payload

    def _installed(self, run: RolloutContext) -> dict[str, str]:
        """Each host's install result in this run, by host id, across the clouds' install tasks."""
        found: dict[str, str] = {}
        for cloud in self.tenant.clouds.declared:
            record = run.read_record(run.paths.file(install_record(cloud)), required=False) or {}
            for host_id, result in (record.get("hosts") or {}).items():
                found[str(host_id)] = str(result.get("result"))
        return found

    def _expectations(
        self, run: RolloutContext, hook: Any, hosts: Sequence[Mapping[str, Any]], log: EventLog
    ) -> dict[tuple[str, str], dict[str, Any]]:
        from patchcycle.domain.falcon_rollout import expected_policy

        groups = run.rollout.host_groups
        policies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        found: dict[str, dict[str, Any]] = {}  # one look (and at most one create) per environment's group
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for environment, platform in sorted({(str(h["environment"]), str(h["platform"])) for h in hosts}):
            entry: dict[str, Any] = {"environment": environment, "platform": platform}
            name = groups.get(environment)  # type: ignore[call-overload]
            if not name:
                entry["problem"] = f"falcon.rollout.host_groups names no group for environment {environment}"
                out[(environment, platform)] = entry
                continue
            if environment not in found:
                # The tenant's group, or a new static one the roll-out fills (a dynamic group fills itself).
                group = hook.host_group_by_name(name)
                if group is None:
                    group = hook.ensure_host_group(name, f"Patchcycle: {self.tenant.id} {environment} hosts")
                    log.record("falcon.host_group_created", target=f"falcon:group/{group['id']}", name=name)
                found[environment] = group
            group = found[environment]
            entry.update(host_group_id=str(group["id"]), host_group_type=group.get("group_type"))
            for kind in ("prevention", "sensor_update"):
                if (kind, platform) not in policies:  # one listing per kind and platform
                    policies[(kind, platform)] = hook.policies(kind, platform.capitalize())
                entry[f"{kind}_policy_id"] = expected_policy(policies[(kind, platform)], str(group["id"]))
            out[(environment, platform)] = entry
            log.record(
                "falcon.expectations",
                target=f"falcon:{environment}/{platform}",
                host_group=name,
                **{k: v for k, v in entry.items() if k.endswith("_id")},
            )
        return out

    def _add_static_members(
        self,
        hook: Any,
        hosts: Sequence[Mapping[str, Any]],
        expectations: Mapping[tuple[str, str], Mapping[str, Any]],
        log: EventLog,
    ) -> None:
        from patchcycle.domain.falcon_rollout import matched_devices

        devices = hook.devices()
        wanted: dict[str, set[str]] = {}
        for row, device in matched_devices(hosts, devices):
            entry = expectations.get((str(row["environment"]), str(row["platform"]))) or {}
            if device is not None and entry.get("host_group_type") in ("static", "staticByID"):
                wanted.setdefault(str(entry["host_group_id"]), set()).add(str(device["device_id"]))
        for group_id, device_ids in sorted(wanted.items()):
            missing = sorted(device_ids - set(hook.host_group_members(group_id)))
            if missing:
                hook.add_hosts_to_group(group_id, missing)
                log.record("falcon.group_members_added", target=f"falcon:group/{group_id}", devices=missing)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Woken by sensors that registered outside their static group: add them, wait again. Otherwise
        record every host's validation (``records/validation.json``); failures are the evidence's to
        report, the run goes on to it."""
        if event.get("status") == "wake":
            payload = self.resume(context, event, self._join)
            return self.wait_for(context, "falcon_sensors", payload)
        return self.resume(context, event, self._complete)

    def _join(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        """Add newly registered sensors to their static groups; the wait's payload, as first written."""
        from patchcycle.hooks.falcon import FalconHook

        hook = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        joined = list(event.get("joined") or [])
        for group_id, device_ids in sorted((event.get("join") or {}).items()):
            hook.add_hosts_to_group(group_id, device_ids)
            log.record("falcon.group_members_added", target=f"falcon:group/{group_id}", devices=device_ids)
            joined.extend(device_ids)
        return {**run.read_record(run.paths.file(WAIT_RECORD)), "joined": sorted(set(joined))}

    def _complete(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        validations = event.get("validations") or []
        failed = [v for v in validations if not v.get("passed")]
        run.write_record(
            run.paths.file(VALIDATION_RECORD),
            {
                "validated_at": utcnow().isoformat(),
                "outcome": event.get("status"),
                "validations": validations,
            },
        )
        log.record(
            "falcon.sensors_validated",
            target=self.tenant.id,
            result="failed" if failed else "ok",
            hosts=len(validations),
            passed=len(validations) - len(failed),
            failed=[{"name": v["name"], "reasons": v["reasons"]} for v in failed],
        )
        return {"hosts": len(validations), "failed": len(failed)}


def _validation_columns(validation: Mapping[str, Any] | None) -> dict[str, str]:
    """A host's validation as ``hosts.csv`` shows it (empty when the host was not validated)."""
    if validation is None:
        return {"validated": "", "validation_reasons": ""}
    return {
        "validated": "yes" if validation["passed"] else "no",
        "validation_reasons": "; ".join(validation.get("reasons") or []),
    }


def hosts_csv(needs: Sequence[Mapping[str, Any]]) -> bytes:
    """``hosts.csv``: one row per host the roll-out found, in :data:`HOST_COLUMNS`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HOST_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for need in needs:
        writer.writerow({column: need.get(column) or "" for column in HOST_COLUMNS})
    return out.getvalue().encode()


def run_events(run: RolloutContext) -> list[dict[str, Any]]:
    """Every event the run's tasks recorded so far, in the order they were recorded."""
    events: list[dict[str, Any]] = []
    for key in sorted(run.store.keys(f"{run.paths.run}/events/")):
        events.extend(run.store.get_json(key) or [])
    return sorted(events, key=lambda e: str(e.get("at") or ""))


def install_counts(
    needs: Sequence[Mapping[str, Any]], installs: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """How many sensors the run installed (``install``) and upgraded or repaired (``upgrade``, ``rfm``)
    through the clouds' agents, and how many it meant to but did not (not sent, or failed)."""
    done = {"installed": 0, "upgraded": 0, "not_done": 0}
    for need in needs:
        result = (installs.get(str(need.get("host_id"))) or {}).get("result")
        if result is None:
            continue
        if result != "sent_succeeded":
            done["not_done"] += 1
        elif need.get("action") == "install":
            done["installed"] += 1
        else:
            done["upgraded"] += 1
    return done


def rollout_timing(
    events: Sequence[Mapping[str, Any]], validation: Mapping[str, Any] | None
) -> dict[str, Any]:
    """When the run began (its first recorded step), when validation ended (the last host passed, or the
    wait gave up), and the seconds between: the roll-out's time from start to last validation."""
    started = min((str(e["at"]) for e in events if e.get("at")), default=None)
    validated = (validation or {}).get("validated_at")
    seconds = None
    if started and validated:
        seconds = round(
            (dt.datetime.fromisoformat(str(validated)) - dt.datetime.fromisoformat(started)).total_seconds(),
            1,
        )
    return {
        "started_at": started,
        "validation_ended_at": validated,
        "validation_outcome": (validation or {}).get("outcome"),
        "seconds_to_last_validation": seconds,
    }


class RolloutEvidenceOperator(RolloutTaskMixin, BaseOperator):
    """The run's pack, however the tasks before it ended; then the run fails if it did not complete."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e6f4ea"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.tenant_id = tenant_id

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Write ``rollout.json``, ``hosts.csv`` and the chained manifest; fail when the run is incomplete."""
        from patchcycle.domain.controls import controls_summary, load_control_catalogs, map_controls

        store, paths = run.store, run.paths
        needs = run.read_record(paths.file(NEEDS_RECORD), required=False)
        problems = []
        if needs is None:
            problems.append("the find task wrote no needs (see its log): nothing was decided")
        failed = [s for s in (needs or {}).get("scopes", []) if s.get("status") == "failed"]
        problems += [f"scope {s['scope']} could not be read: {s.get('error')}" for s in failed]
        host_needs = (needs or {}).get("needs", [])
        counts = Counter(str(n.get("action")) for n in host_needs)
        validation = run.read_record(paths.file(VALIDATION_RECORD), required=False)
        checked = {str(v["host_id"]): v for v in (validation or {}).get("validations", [])}
        if needs is not None and validation is None:
            problems.append("the validate task recorded no validation (see its log)")
        problems += [
            f"{v['name']} failed validation: {'; '.join(v['reasons'])}"
            for v in checked.values()
            if not v["passed"]
        ]
        installs: dict[str, dict[str, Any]] = {}
        for cloud in self.tenant.clouds.declared:
            record = run.read_record(paths.file(install_record(cloud)), required=False) or {}
            installs.update({str(k): v for k, v in (record.get("hosts") or {}).items()})
        for need in host_needs:
            done = installs.get(str(need["host_id"]))
            if done is not None and done["result"] != "sent_succeeded":
                why = done.get("reason") or done.get("output") or done.get("status") or ""
                problems.append(f"{need['name']}: the {need['action']} was not done: {why}")
        from patchcycle.operators.falcon_phases import phases_evidence

        phases = phases_evidence(run)  # None when the tenant declares no prevention phases
        problems += (phases or {}).get("problems", [])
        rows = [
            {
                **n,
                **_validation_columns(checked.get(str(n.get("host_id")))),
                "install": (installs.get(str(n.get("host_id"))) or {}).get("result", ""),
            }
            for n in host_needs
        ]
        pack = free_pack(store, paths, run.attempt)
        now = utcnow().isoformat()
        log.record(
            "falcon.rollout_reported",
            target=store.url(pack),
            result="incomplete" if problems else "complete",
            hosts=len(host_needs),
            **{action: counts.get(action, 0) for action in ("install", "upgrade", "rfm", "ok", "skip")},
        )
        events = run_events(run) + list(log.events)
        controls = map_controls(
            events,
            [f.value for f in self.tenant.frameworks],
            load_control_catalogs(),
            retention_days=store.retention_days or 0,
            evidence="rollout",
        )
        dag_run = run.dag_run
        document = {
            "schema_version": SCHEMA_VERSION,
            "kind": "falcon_rollout",
            "tenant_id": self.tenant.id,
            "day": run.day.isoformat(),
            "run": {
                "run_id": run.run_id,
                "run_type": run_type_name(dag_run),
                "triggered_by": getattr(dag_run, "triggering_user_name", None),
                "params": dict(run.params),
                "finished_at": now,
                "generated_by": f"patchcycle {__version__}",
            },
            "outcome": "incomplete" if problems else "complete",
            "problems": problems,
            "summary": {
                "hosts": len(host_needs),
                **{a: counts.get(a, 0) for a in sorted(counts)},
                **install_counts(host_needs, installs),
                "validated": sum(1 for v in checked.values() if v["passed"]),
                "failed_validation": sum(1 for v in checked.values() if not v["passed"]),
            },
            "timing": rollout_timing(events, validation),
            "needs": host_needs,
            "phases": phases,
            "validation": validation,
            "installs": installs,
            "scopes": (needs or {}).get("scopes", []),
            "kernel_handoff": (needs or {}).get("kernel_handoff") or {},
            "events": events,
            "controls": [c.to_dict() for c in controls],
            "controls_summary": controls_summary(controls),
            "retention": {"days": store.retention_days, "mode": "COMPLIANCE"},
        }
        files = {
            REPORT_NAME: (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode(),
            HOSTS_NAME: hosts_csv(rows),
        }
        previous = previous_manifest_sha256(store, run.day.isoformat(), prefix=ROLLOUT_PREFIX)
        manifest = build_manifest(
            files,
            tenant_id=self.tenant.id,
            cycle_date=run.day.isoformat(),
            run_id=run.run_id,
            created_at=now,
            previous_manifest_sha256=previous,
        )
        store.put_bytes(f"{pack}/{REPORT_NAME}", files[REPORT_NAME], "application/json")
        store.put_bytes(f"{pack}/{HOSTS_NAME}", files[HOSTS_NAME], "text/csv")
        store.put_bytes(f"{pack}/{MANIFEST_NAME}", manifest_bytes(manifest), "application/json")
        self.log.info(
            "Falcon roll-out of %s: pack %s (%s)", self.tenant.id, store.url(pack), document["outcome"]
        )
        if problems:
            raise AirflowFailException(
                f"the roll-out of {self.tenant.id} did not complete (its pack is written): "
                + "; ".join(problems)
            )
        return {
            "pack_url": store.url(pack),
            "manifest_sha256": manifest_sha256(manifest),
            "previous_manifest_sha256": previous,
            **document["summary"],
        }
