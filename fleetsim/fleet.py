"""fleetsim's own model of the fleet: hosts, their patches, commands in flight and the ground truth.

moto keeps EC2, S3, STS and the rest; this module keeps what moto lacks (the managed-instance registry,
Run Command lifecycles, per-host patch state) and what the tests need to check the product against
(what really happened to each host). Time is wall-clock; every lifecycle is computed from timestamps
set when the request arrived and revealed lazily, so there are no background threads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fleetsim.aws import baselines
from fleetsim.platforms import PLATFORMS, Platform
from fleetsim.scenario import CatalogPatch, Scenario, Timings

TERMINAL_INVOCATION_STATES = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "DeliveryTimedOut"})
ERROR_INVOCATION_STATES = frozenset({"Failed", "TimedOut", "DeliveryTimedOut"})
# Severity levels the default patch baseline approves, in both vendors' vocabularies.
DEFAULT_APPROVED_SEVERITIES = frozenset({"Critical", "Important"})
DEFAULT_APPROVE_AFTER_DAYS = 7


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stable_fraction(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# What each cloud reports for a host whose agent stopped answering.
AGENT_LOST = {"aws": "ConnectionLost", "azure": "Disconnected", "gcp": "NO_AGENT_DETECTED"}


@dataclass
class FalconSensor:
    """The CrowdStrike Falcon sensor on a host, as the Falcon API knows it."""

    device_id: str  # the AID
    cid: str
    version: str  # "7.14.16703.0"
    rfm: bool = False  # reduced-functionality mode
    stale_device_id: str | None = None  # a second, older record left by a reinstall
    # When the sensor registered with the Falcon cloud (its record appears in the Hosts API from then
    # on); None for a sensor seeded with the scenario, registered long before fleetsim started.
    registered_at: float | None = None
    # An upgrade installed but not yet reported: the version the sensor reports from ``upgrade_at`` on.
    upgrade_to: str | None = None
    upgrade_at: float | None = None

    def registered(self, now: float) -> bool:
        return self.registered_at is None or self.registered_at <= now


@dataclass
class SimHost:
    """One host as the cloud really has it."""

    tenant: str
    cloud: str
    account: str
    region: str
    host_id: str
    name: str
    environment: str
    os_family: str
    criticality: str
    kernel: str | None
    # SSM PingStatus (Online | ConnectionLost), Arc/GCP agent states; RDS DB instances: available | stopped
    agent_status: str
    # Catalog patch ids; an RDS DB instance's OS update is the Description of its system-update action.
    missing: set[str]
    installed: set[str]
    failed: set[str] = field(default_factory=set)
    # SSM: patches an Install applied with RebootOption NoReboot, not yet followed by a reboot.
    pending_reboot: set[str] = field(default_factory=set)
    install_fails: bool = False
    install_leaves_missing: bool = False
    hangs_on_reboot: bool = False
    backup_fails: bool = False
    backup_seconds: float | None = None
    patch_state: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    resource_group: str | None = None  # Azure: the machine's resource group
    private_ip: str = ""
    falcon: FalconSensor | None = None
    # Azure Arc / GCP: the last assessment or install, as the cloud reports it (vendor modules own it).
    cloud_state: dict[str, Any] = field(default_factory=dict)
    # "instance" (a VM: EC2, Arc, GCE) or "db_instance" (an RDS DB instance, host_id its DBInstanceArn).
    # Only instances are managed by SSM, run a Falcon sensor or are Dynatrace hosts.
    kind: str = "instance"

    @property
    def platform(self) -> Platform:
        return PLATFORMS[self.os_family]

    def ground_truth(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "cloud": self.cloud,
            "kind": self.kind,
            "account": self.account,
            "region": self.region,
            "host_id": self.host_id,
            "name": self.name,
            "environment": self.environment,
            "os_family": self.os_family,
            "criticality": self.criticality,
            "agent_status": self.agent_status,
            "kernel": self.kernel,
            "resource_group": self.resource_group,
            "private_ip": self.private_ip,
            "falcon": None
            if self.falcon is None
            else {
                "device_id": self.falcon.device_id,
                "cid": self.falcon.cid,
                "version": self.falcon.version,
                "rfm": self.falcon.rfm,
                "stale_device_id": self.falcon.stale_device_id,
                "registered_at": None
                if self.falcon.registered_at is None
                else dt.datetime.fromtimestamp(self.falcon.registered_at, dt.UTC).isoformat(),
                "upgrade_to": self.falcon.upgrade_to,
            },
            "missing": sorted(self.missing),
            "installed": sorted(self.installed),
            "failed": sorted(self.failed),
            "actions": list(self.actions),
        }


@dataclass
class Invocation:
    instance_id: str
    host_name: str
    platform_type: str
    delivered_at: float
    started_at: float
    ended_at: float
    outcome: str
    response_code: int = 0
    output: str = ""
    applied: bool = False

    def status_at(self, now: float) -> str:
        if now >= self.ended_at:
            return self.outcome
        if now >= self.started_at and self.outcome != "DeliveryTimedOut":
            return "InProgress"
        return "Pending"

    @property
    def plugin_name(self) -> str:
        return "PatchWindows" if self.platform_type == "Windows" else "PatchLinux"


@dataclass
class Command:
    command_id: str
    account: str
    region: str
    document_name: str
    parameters: dict[str, list[str]]
    comment: str
    targets: list[dict[str, Any]]
    instance_ids: list[str]
    max_concurrency: str
    max_errors: str
    requested_at: float
    timeout_seconds: int
    invocations: dict[str, Invocation]
    # The InstallOverrideList's entries, read when the command was sent; None without a list.
    override_entries: tuple[baselines.OverrideEntry, ...] | None
    # A document fleetsim follows step by step (fleetsim.aws.ssm_documents.FalconDocumentRun): it decides
    # each invocation's outcome when the command is sent and applies its effect when it ends.
    document_run: Any = None

    @property
    def operation(self) -> str:
        return (self.parameters.get("Operation") or ["Scan"])[0]

    def status_at(self, now: float) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter(inv.status_at(now) for inv in self.invocations.values())
        terminal = sum(counts[s] for s in TERMINAL_INVOCATION_STATES)
        if terminal < len(self.invocations):
            return ("InProgress" if counts["InProgress"] or terminal else "Pending"), counts
        errors = sum(counts[s] for s in ERROR_INVOCATION_STATES)
        if errors > max_errors_allowed(self.max_errors, len(self.invocations)):
            return "Failed", counts
        return "Success", counts


def max_errors_allowed(max_errors: str, targets: int) -> int:
    if max_errors.endswith("%"):
        return math.floor(targets * int(max_errors[:-1]) / 100)
    return int(max_errors)


def max_concurrency_slots(max_concurrency: str, targets: int) -> int:
    if targets == 0:
        return 0
    if max_concurrency.endswith("%"):
        slots = math.floor(targets * int(max_concurrency[:-1]) / 100)
    else:
        slots = int(max_concurrency)
    return max(1, min(slots, targets))


@dataclass(frozen=True)
class BackupState:
    """What a backup holds of a host when it is taken: its packages, kernel, patch state, agent and
    sensor. Restoring it (:meth:`FleetState.restore`) puts the host back as it was, whatever cloud."""

    taken_at: float
    kernel: str | None
    missing: frozenset[str]
    installed: frozenset[str]
    failed: frozenset[str]
    agent_status: str
    patch_state: dict[str, Any] | None = None
    falcon_version: str | None = None
    falcon_rfm: bool | None = None


class FleetState:
    """Everything fleetsim knows beyond moto; one lock guards it."""

    def __init__(self, scenario: Scenario, clock: Any = time.time) -> None:
        self.scenario = scenario
        self.timings: Timings = scenario.timings
        self.clock = clock
        self.lock = threading.RLock()
        self.catalog: dict[str, CatalogPatch] = {p.id: p for p in scenario.patch_catalog}
        self.catalog_by_family: dict[str, list[CatalogPatch]] = {}
        for patch in scenario.patch_catalog:
            self.catalog_by_family.setdefault(patch.os_family, []).append(patch)
        self.hosts: dict[tuple[str, str, str], SimHost] = {}  # (account, region, host_id)
        self.host_by_id: dict[str, SimHost] = {}
        self.commands: dict[str, Command] = {}
        self._due: list[tuple[float, str, str]] = []  # (ended_at, command_id, instance_id)
        self.calls: Counter[str] = Counter()
        # SendCommand Install answers still to be lost, per account (scenario: lost_install_answers).
        self.lost_install_answers: dict[str, int] = {
            tenant.aws.account_id: tenant.aws.lost_install_answers
            for tenant in scenario.tenants
            if tenant.aws and tenant.aws.lost_install_answers
        }
        # Other vendors' lifecycles (Arc installs, OS Config jobs) apply their due effects here too, so
        # whoever reads the fleet (ground truth, Falcon, any cloud) sees every cloud's effects at once.
        self.advancers: list[Any] = []
        # The Falcon cloud (fleetsim.falcon.api.FalconApi, which sets itself here): what an installer
        # running on a host reaches with the API credentials it was given (Arc extension, OS policy).
        self.falcon: Any = None
        # Falcon sensors installed or upgraded through a cloud's agent whose new version is not yet
        # reported, by host key (install_falcon_sensor); applied when the fleet advances.
        self._falcon_upgrades: set[tuple[str, str, str]] = set()
        self._faults = {tenant.id: tenant.faults for tenant in scenario.tenants}
        # SSM: the patch baseline a host's patch operations use (its patch group's for its OS, else the
        # default). fleetsim.aws.ssm installs the resolver that reads moto's baselines and EC2 tags.
        self.ssm_baseline: Any = lambda host: baselines.predefined(
            host.platform.ssm_operating_system, "pb-0fleetsim0default0"
        )

    # -- registry -------------------------------------------------------------------------------
    def add_host(self, host: SimHost) -> None:
        with self.lock:
            self.hosts[(host.account, host.region, host.host_id)] = host
            self.host_by_id[host.host_id] = host

    def hosts_in(self, account: str, region: str, kind: str = "instance") -> list[SimHost]:
        """The hosts of one kind (instances unless said otherwise) in an account (or project) and region."""
        return [h for (a, r, _), h in self.hosts.items() if a == account and r == region and h.kind == kind]

    def host(self, account: str, region: str, host_id: str, kind: str = "instance") -> SimHost | None:
        """The host of one kind (an instance unless said otherwise) with that id, or None."""
        host = self.hosts.get((account, region, host_id))
        return host if host is not None and host.kind == kind else None

    # -- patch approval -------------------------------------------------------------------------
    def default_approved(self, host: SimHost, as_of: dt.datetime) -> set[str]:
        """What the default baseline approves for a host as of a time (Security, Critical/Important, 7 d)."""
        cutoff = (as_of - dt.timedelta(days=DEFAULT_APPROVE_AFTER_DAYS)).date()
        return {
            p.id
            for p in self.catalog_by_family.get(host.os_family, [])
            if p.classification in ("Security", "SecurityUpdates", "CriticalUpdates")
            and p.severity in DEFAULT_APPROVED_SEVERITIES
            and p.released <= cutoff
        }

    def ssm_patch_states(
        self, host: SimHost, baseline: baselines.Baseline, as_of: dt.datetime
    ) -> baselines.PatchStates:
        """Each of the host's patches' state against ``baseline`` as of a time (SSM Patch Manager)."""
        catalog = [
            p
            for p in self.scenario.patch_catalog
            if PLATFORMS[p.os_family].ssm_operating_system == host.platform.ssm_operating_system
        ]
        return baselines.patch_states(
            baseline,
            host.platform.ssm_product,
            {
                "missing": host.missing,
                "installed": host.installed,
                "failed": host.failed,
                "pending_reboot": host.pending_reboot,
            },
            catalog,
            as_of.date(),
        )

    def record_scan(self, host: SimHost, at: dt.datetime, *, operation: str, **extra: Any) -> None:
        """Record the host's SSM patch state after a Scan or Install that ended at ``at``.

        The counts are measured against the patch baseline the host uses (its patch group's, else the
        default), never against an InstallOverrideList: "compliance reports reflect patch states
        according to what's specified in the patch baseline, not what you specify in an
        InstallOverrideList" (user guide, AWS-RunPatchBaseline, "Parameter name: InstallOverrideList",
        https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-aws-runpatchbaseline.html).
        Optional members (SnapshotId, InstallOverrideList, OwnerInformation) are omitted when there is
        no value: the API reference (InstancePatchState) gives each a minimum length of 1 (36 for
        SnapshotId).
        """
        baseline: baselines.Baseline = extra.get("baseline") or self.ssm_baseline(host)
        as_of = extra.get("as_of", at)
        result = self.ssm_patch_states(host, baseline, as_of)
        state: dict[str, Any] = {
            "InstanceId": host.host_id,
            "PatchGroup": baseline.patch_group,
            "BaselineId": baseline.baseline_id,
            **baselines.state_counts(result, self.catalog),
            "OperationStartTime": extra.get("started", at),
            "OperationEndTime": at,
            "Operation": operation,
            "RebootOption": extra.get("reboot_option", "RebootIfNeeded"),
        }
        for key, member in (
            ("snapshot_id", "SnapshotId"),
            ("install_override_list", "InstallOverrideList"),
            ("owner_information", "OwnerInformation"),
        ):
            if extra.get(key):
                state[member] = extra[key]
        last_no_reboot = extra.get("last_no_reboot") or (host.patch_state or {}).get(
            "LastNoRebootInstallOperationTime"
        )
        if last_no_reboot:
            state["LastNoRebootInstallOperationTime"] = last_no_reboot
        host.patch_state = state

    # -- installing patches (every cloud) ---------------------------------------------------------
    def install(self, host: SimHost, patch_ids: set[str], *, fails: bool, reboot: bool) -> dict[str, Any]:
        """Install ``patch_ids`` (those the host misses or failed before) on a host; return the effect.

        A failing install fails half of the list (at least one); a host with ``install_leaves_missing``
        reports success but leaves its last patch missing. A kernel update takes effect on reboot; the
        Falcon sensor drops into reduced-functionality mode when the new kernel is one its version does
        not support (as the real sensor does), which is what the kernel gate exists to prevent.
        """
        to_install = sorted(patch_ids & (host.missing | host.failed))
        failing = set(to_install[: max(1, len(to_install) // 2)]) if fails and to_install else set()
        installed = [p for p in to_install if p not in failing]
        if host.install_leaves_missing and installed and not failing:
            installed = installed[:-1]  # the last one was not in the repository: still missing
        host.installed |= set(installed)
        host.missing -= set(installed)
        host.failed = (host.failed - set(installed)) | failing
        host.missing -= failing
        effect: dict[str, Any] = {"installed": installed, "failed": sorted(failing), "rebooted": False}
        kernels = [self.catalog[p].kernel for p in installed if self.catalog[p].kernel]
        # RebootIfNeeded also boots a kernel installed earlier but never booted (pending a reboot).
        pending = self.pending_kernel(host)
        if pending and installed and pending not in kernels:
            kernels.append(pending)
        if kernels and host.platform.platform_type == "Linux":
            if reboot and host.hangs_on_reboot:
                # The reboot never completes: the agent is lost and the new kernel never ran.
                host.agent_status = AGENT_LOST[host.cloud]
                effect["hung"] = True
            elif reboot:
                self.boot_kernel(host, max(kernels))
                effect["rebooted"] = True
            else:
                effect["pending_reboot"] = len(kernels)
        return effect

    def pending_kernel(self, host: SimHost) -> str | None:
        """The newest kernel the host has installed when it is not the one running (None otherwise)."""
        installed = [
            self.catalog[p].kernel for p in host.installed if p in self.catalog and self.catalog[p].kernel
        ]
        newest = max(installed, default=None)
        return newest if newest and newest != host.kernel else None

    def clear_faults(self, names: list[str]) -> list[str]:
        """Make the named hosts' installs, reboots and backups behave from now on; return who changed."""
        cleared = []
        for host in self.hosts.values():
            if host.name in names:
                host.install_fails = host.install_leaves_missing = host.hangs_on_reboot = False
                host.backup_fails = False
                cleared.append(host.name)
        return sorted(cleared)

    def boot_kernel(self, host: SimHost, kernel: str) -> None:
        host.kernel = kernel
        if host.falcon is not None:
            supported = self.scenario.falcon.supported(host.falcon.version, kernel)
            if supported is not True:
                host.falcon.rfm = True

    # -- the Falcon sensor, installed through a cloud's agent --------------------------------------
    def falcon_install_fails(self, host: SimHost) -> bool:
        """Whether installing the Falcon sensor on the host fails (fault ``falcon_install_fails``), so a
        cloud's install path can fail its invocation when it schedules it."""
        faults = self._faults.get(host.tenant)
        return faults is not None and host.name in faults.falcon_install_fails

    def sensor_rfm(self, host: SimHost, version: str) -> bool:
        """Whether a sensor of ``version`` would run in reduced-functionality mode on the host now (a
        cloud's install path checks it as the sensor's own ``falconctl -g --rfm-state`` would)."""
        return self._sensor_rfm(host, version)

    def _sensor_rfm(self, host: SimHost, version: str) -> bool:
        """Whether a sensor of ``version`` runs the host's kernel in reduced-functionality mode: a Linux
        kernel the vendor's support table does not list for the version (as :meth:`boot_kernel`)."""
        if host.platform.platform_type != "Linux" or not host.kernel:
            return False
        return self.scenario.falcon.supported(version, host.kernel) is not True

    def install_falcon_sensor(
        self, host: SimHost, version: str, cid: str, *, via: str, at: float | None = None
    ) -> dict[str, Any]:
        """Install the Falcon sensor ``version`` with customer id ``cid`` on a host; return the effect.

        What every cloud's install path ends in (an SSM document run, an Arc extension or Run Command,
        an OS Config OS policy), ``via`` naming it for the ground truth; ``at`` is when the install ran
        (default: now). Outcomes (``result``):

        * ``installed``: the host had no sensor. It has one now (ground truth), with a new AID; its
          device record appears in the Hosts API ``timings.falcon_registration_seconds`` later, under
          ``cid``, or under another customer's CID when the host is in ``falcon_registers_other_cid``
          (the tenant's API clients never see it). On a Linux kernel the support table does not list
          for the version, the sensor runs in reduced-functionality mode.
        * ``upgraded``: the host had another version. The installer upgrades in place (same AID, same
          CID: ``cid`` is ignored); the record reports the new version after the registration delay,
          and reduced-functionality mode is re-evaluated then (it clears when the new version supports
          the host's kernel).
        * ``unchanged``: that version is already installed (or on its way).
        * ``failed``: the host is in ``falcon_install_fails``; nothing changes and nothing registers.
        """
        from fleetsim.seed import falcon_aid, falcon_cid  # fleetsim.seed imports this module

        if host.kind != "instance":
            raise ValueError(f"{host.name} is not an instance: only instances run a Falcon sensor")
        full = version if version.count(".") == 3 else f"{version}.0"
        # Installers take the CCID, the CID with its checksum ("<CID>-<2 hex>", upper case, as
        # GetSensorInstallersCCIDByQuery answers it: FalconPy _endpoint/_sensor_download.py, "the CID with
        # checksum"); the device record's ``cid`` is the bare customer id in lower case (the Hosts API's
        # device schema, e.g. FalconPy's hosts examples), the form every other API compares.
        cid = cid.strip().split("-")[0].lower()
        with self.lock:
            now = self.clock() if at is None else at
            registers_at = now + self.timings.falcon_registration_seconds
            effect: dict[str, Any] = {
                "at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
                "action": "falcon.install",
                "via": via,
                "version": full,
            }
            faults = self._faults.get(host.tenant)
            sensor = host.falcon
            if self.falcon_install_fails(host):
                effect.update(result="failed", message="Falcon sensor installation failed")
            elif sensor is None:
                installs = sum(
                    1
                    for a in host.actions
                    if a.get("action") == "falcon.install" and a.get("result") == "installed"
                )
                other = faults is not None and host.name in faults.falcon_registers_other_cid
                host.falcon = FalconSensor(
                    device_id=falcon_aid(host.tenant, host.name, f"install-{installs + 1}"),
                    cid=falcon_cid(f"{host.tenant}:another-customer") if other else cid,
                    version=full,
                    rfm=self._sensor_rfm(host, full),
                    registered_at=registers_at,
                )
                effect.update(result="installed", device_id=host.falcon.device_id)
                effect["registers_at"] = dt.datetime.fromtimestamp(registers_at, dt.UTC).isoformat()
            elif (sensor.upgrade_to or sensor.version) == full:
                effect.update(result="unchanged", device_id=sensor.device_id)
            else:
                effect.update(result="upgraded", device_id=sensor.device_id, from_version=sensor.version)
                effect["registers_at"] = dt.datetime.fromtimestamp(registers_at, dt.UTC).isoformat()
                sensor.upgrade_to, sensor.upgrade_at = full, registers_at
                self._falcon_upgrades.add((host.account, host.region, host.host_id))
            host.actions.append(effect)
            return effect

    def _apply_falcon_upgrades(self, now: float) -> None:
        for key in list(self._falcon_upgrades):
            host = self.hosts.get(key)
            sensor = host.falcon if host is not None else None
            if host is None or sensor is None or sensor.upgrade_to is None:
                self._falcon_upgrades.discard(key)
                continue
            if sensor.upgrade_at is not None and sensor.upgrade_at <= now:
                sensor.version = sensor.upgrade_to
                sensor.rfm = self._sensor_rfm(host, sensor.version)
                sensor.upgrade_to = sensor.upgrade_at = None
                self._falcon_upgrades.discard(key)

    # -- Run Command ----------------------------------------------------------------------------
    def schedule_command(self, command: Command, hosts: list[SimHost]) -> None:
        """Lay out each invocation's timeline under MaxConcurrency and MaxErrors, deterministically."""
        t = self.timings
        now = command.requested_at
        slots = max_concurrency_slots(command.max_concurrency, len(hosts))
        allowed_errors = max_errors_allowed(command.max_errors, len(hosts))
        free_at = [now + t.command_pending_seconds] * slots
        heapq.heapify(free_at)
        lo, hi = t.invocation_seconds
        planned: list[Invocation] = []
        for host in hosts:
            start = heapq.heappop(free_at)
            if host.agent_status != "Online":
                outcome, end = "DeliveryTimedOut", start + t.delivery_timeout_seconds
            else:
                duration = lo + (hi - lo) * _stable_fraction(command.command_id, host.host_id)
                if command.document_run is not None:
                    fails = command.document_run.fails(host)
                else:
                    fails = command.operation == "Install" and host.install_fails
                outcome, end = ("Failed" if fails else "Success"), start + duration
            heapq.heappush(free_at, end)
            planned.append(
                Invocation(host.host_id, host.name, host.platform.platform_type, now, start, end, outcome)
            )
        # Once errors exceed MaxErrors, invocations not yet started are never sent.
        errors, stop_at = 0, math.inf
        for inv in sorted(planned, key=lambda i: i.ended_at):
            if inv.started_at >= stop_at:
                continue
            if inv.outcome in ERROR_INVOCATION_STATES:
                errors += 1
                if errors > allowed_errors:
                    stop_at = min(stop_at, inv.ended_at)
        for inv in planned:
            if inv.started_at >= stop_at:
                inv.outcome, inv.ended_at, inv.started_at = "Cancelled", stop_at, stop_at
            command.invocations[inv.instance_id] = inv
            heapq.heappush(self._due, (inv.ended_at, command.command_id, inv.instance_id))
        self.commands[command.command_id] = command

    def on_advance(self, apply_due: Any) -> None:
        """Register ``apply_due(now)``: a vendor's lifecycle, applied whenever the fleet advances."""
        self.advancers.append(apply_due)

    def advance(self) -> float:
        """Apply the effects of everything (every cloud) that has finished by now; return now."""
        with self.lock:
            now = self.clock()
            while self._due and self._due[0][0] <= now:
                _, command_id, instance_id = heapq.heappop(self._due)
                command = self.commands[command_id]
                self._apply(command, command.invocations[instance_id])
            self._apply_falcon_upgrades(now)
            for apply_due in self.advancers:
                apply_due(now)
            return now

    def _apply(self, command: Command, inv: Invocation) -> None:
        host = self.host(command.account, command.region, inv.instance_id)
        if host is None or inv.applied:
            return
        inv.applied = True
        ended = dt.datetime.fromtimestamp(inv.ended_at, dt.UTC)
        action: dict[str, Any] = {
            "at": ended.isoformat(),
            "action": f"ssm.{command.operation.lower()}",
            "command_id": command.command_id,
            "result": inv.outcome,
        }
        if command.document_run is not None:
            if inv.outcome in ("Success", "Failed"):
                action.update(command.document_run.apply(self, command, inv, host))
            elif inv.outcome == "DeliveryTimedOut":
                inv.response_code = -1
            action["action"] = "ssm.runCommand"
            action["document"] = command.document_name
        elif inv.outcome in ("Success", "Failed") and command.document_name == "AWS-RunPatchBaseline":
            # The baseline snapshot is taken when the command is sent (AWS-RunPatchBaseline, "Snapshot ID").
            requested = dt.datetime.fromtimestamp(command.requested_at, dt.UTC)
            baseline = self.ssm_baseline(host)
            before = self.ssm_patch_states(host, baseline, requested)
            approved_missing = {
                pid for pid, s in before.states.items() if s in (baselines.MISSING, baselines.FAILED)
            }
            reboot_option = (command.parameters.get("RebootOption") or ["RebootIfNeeded"])[0]
            override = (command.parameters.get("InstallOverrideList") or [""])[0]
            last_no_reboot = None
            if command.operation == "Install":
                if command.override_entries is not None:
                    # The list "overrides the patches specified by the current default patch baseline":
                    # exactly the host's missing patches an entry names are installed, approved or not.
                    family = self.catalog_by_family.get(host.os_family, [])
                    op_list = {
                        p.id
                        for p in family
                        if any(baselines.override_matches(e, p) for e in command.override_entries)
                    } & (host.missing | host.failed)
                else:
                    op_list = approved_missing
                no_reboot = reboot_option == "NoReboot"
                effect = self.install(host, op_list, fails=inv.outcome == "Failed", reboot=not no_reboot)
                installed, failing = effect["installed"], set(effect["failed"])
                if no_reboot:
                    host.pending_reboot |= set(installed)
                    last_no_reboot = ended
                elif installed or host.pending_reboot:
                    host.pending_reboot.clear()  # RebootIfNeeded rebooted the node
                host.pending_reboot &= host.installed
                if effect["rebooted"]:
                    action["rebooted"] = True
                action.update(installed=installed, failed=sorted(failing))
                inv.response_code = 1 if inv.outcome == "Failed" else 0
                after = self.ssm_patch_states(host, baseline, requested)
                still = sum(1 for s in after.states.values() if s == baselines.MISSING)
                inv.output = (
                    f"Patch operation Install {'FAILED' if inv.outcome == 'Failed' else 'completed'}: "
                    f"Installed={len(installed)} Missing={still} Failed={len(failing)}"
                )
            else:
                # "Scan operations ignore the InstallOverrideList parameter" (same section).
                override = ""
                inv.output = f"Patch operation Scan completed: Missing={len(approved_missing & host.missing)}"
            snapshot = (command.parameters.get("SnapshotId") or [""])[0] or command.command_id
            self.record_scan(
                host,
                ended,
                operation=command.operation,
                baseline=baseline,
                as_of=requested,
                started=dt.datetime.fromtimestamp(inv.started_at, dt.UTC),
                install_override_list=override if command.operation == "Install" else "",
                reboot_option=reboot_option,
                snapshot_id=snapshot,
                last_no_reboot=last_no_reboot,
            )
        elif inv.outcome == "DeliveryTimedOut":
            inv.response_code = -1
        host.actions.append(action)

    # -- ground truth ---------------------------------------------------------------------------
    def ground_truth(self, tenant: str | None = None) -> dict[str, Any]:
        self.advance()
        with self.lock:
            hosts = [h.ground_truth() for h in self.hosts.values() if tenant in (None, h.tenant)]
        hosts.sort(key=lambda h: (h["tenant"], h["name"]))
        return {"generated_at": utcnow().isoformat(), "hosts": hosts}

    # -- backups and restores (every cloud) -------------------------------------------------------
    def backup_state(self, host: SimHost) -> BackupState:
        """The host as a backup taken now captures it (an AMI, a disk snapshot, the backup system's)."""
        with self.lock:
            return BackupState(
                taken_at=self.clock(),
                kernel=host.kernel,
                missing=frozenset(host.missing),
                installed=frozenset(host.installed),
                failed=frozenset(host.failed),
                agent_status=host.agent_status,
                patch_state=dict(host.patch_state) if host.patch_state else None,
                falcon_version=host.falcon.version if host.falcon else None,
                falcon_rfm=host.falcon.rfm if host.falcon else None,
            )

    def restore(self, host: SimHost, backup: BackupState, *, action: str, **details: Any) -> dict[str, Any]:
        """Put a host back to a backup's state and reboot it (every cloud's restore ends here).

        The packages, kernel and sensor come back from the restored disk; the agent comes back as it
        was when the backup was taken. Recorded as the ground-truth ``action`` with ``details``.
        """
        with self.lock:
            host.missing = set(backup.missing)
            host.installed = set(backup.installed)
            host.failed = set(backup.failed)
            host.pending_reboot = set()  # the restored disk boots: nothing awaits a reboot
            host.patch_state = dict(backup.patch_state) if backup.patch_state else None
            host.agent_status = backup.agent_status
            if host.falcon is not None and backup.falcon_version is not None:
                host.falcon.version = backup.falcon_version
                host.falcon.rfm = bool(backup.falcon_rfm)
                host.falcon.upgrade_to = host.falcon.upgrade_at = None  # the disk predates it
            host.kernel = backup.kernel
            if backup.kernel is not None:
                self.boot_kernel(host, backup.kernel)  # the restored disk boots its own kernel
            effect = {
                "at": dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat(),
                "action": action,
                "result": "restored",
                "backup_taken_at": dt.datetime.fromtimestamp(backup.taken_at, dt.UTC).isoformat(),
                "kernel": backup.kernel,
                "rebooted": True,
                **details,
            }
            host.actions.append(effect)
            return effect
