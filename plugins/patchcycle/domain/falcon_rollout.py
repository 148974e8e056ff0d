"""The Falcon sensor roll-out as policy: which hosts need a sensor installed, upgraded or repaired; whether an
install is done; when a tenant moves from one Detection-to-Prevention phase to the next; which exclusions the
detections seen justify; and which sensor a kernel-held host needs before the next cycle.

Pure: plain records in (inventory rows, Falcon device records, sensor-update builds, kernel support records,
alerts), typed decisions out, the clock passed in. Hosts are matched to device records by
:func:`patchcycle.domain.sensor.attach_falcon` (cloud identity, never hostname alone), and kernel support is
:mod:`patchcycle.domain.falcon`'s.

* :func:`classify_hosts`: ``install`` (no device record), ``rfm`` (reduced-functionality mode: upgrade or
  reinstall), ``upgrade`` (older than the tenant's version policy, or not supporting the host's planned
  kernel), ``ok``; ``skip`` for what takes no sensor (RDS, unknown platforms). Each with its reason.
* :func:`validate_install`: passed, or every reason it did not.
* :func:`decide_phase`: stay (monitoring, days left), promote (behind an approval), blocked (detections
  above the threshold; one incident key per phase entry), done; and, when a person asks, reenter a held
  phase (behind an approval; its count starts again) or refused with the reason.
* :func:`summarise_detections`, :func:`propose_exclusions`, :func:`exclusion_problem`,
  :func:`exclusions_to_apply`: what the detections name, and narrow ML or IOA exclusions with their evidence,
  applied only with an approver.
* :func:`kernel_held_upgrades`: the cycle's kernel-held hosts and the sensor each needs (the oldest that
  supports the planned kernel and meets the policy), due before the next cycle (the paper's 6.2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from croniter import croniter

from patchcycle.config.falcon_rollout import ExclusionMode, PreventionPhase, SensorVersionPolicy
from patchcycle.config.vocabulary import OsFamily
from patchcycle.domain.falcon import sensor_build, sensor_supports_kernel
from patchcycle.domain.incidents import incident_key
from patchcycle.domain.schedule import CYCLE_CRON
from patchcycle.domain.sensor import MATCH_CONFLICT, attach_falcon, kernel_gate, sensor_gate

SensorAction = Literal["install", "upgrade", "rfm", "ok", "skip"]
PLATFORMS = ("linux", "windows")

# --- versions ----------------------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, ...]:
    """A sensor version's major.minor.build as numbers, for ordering ("7.9.1" before "7.10.1")."""
    return tuple(int(part) if part.isdigit() else -1 for part in sensor_build(version).split("."))


def listed_versions(builds: Iterable[Mapping[str, Any]], platform: str) -> list[str]:
    """The distinct sensor versions (major.minor.build) Falcon's sensor-update builds list for ``platform``
    (``linux`` or ``windows``), oldest first. Pass the builds of the stage the tenant installs (``prod``)."""
    found = {
        sensor_build(str(build["sensor_version"]))
        for build in builds
        if str(build.get("platform") or "").lower() == platform and build.get("sensor_version")
    }
    return sorted(found, key=version_key)


@dataclass(frozen=True)
class VersionFloor:
    """The oldest sensor version the tenant's policy accepts on a platform, and where it comes from."""

    version: str | None
    reason: str


def version_floor(policy: SensorVersionPolicy, listed: Sequence[str], platform: str) -> VersionFloor:
    """The stricter of the policy's rules over the versions ``listed`` for the platform (oldest first):
    N-x of the listed builds, and ``minimum_version``. None when neither can be applied (N-x only, and no
    build listed)."""
    floors: list[tuple[str, str]] = []
    if policy.max_versions_behind is not None and listed:
        newest_first = list(reversed(listed))
        behind = min(policy.max_versions_behind, len(newest_first) - 1)
        floors.append(
            (newest_first[behind], f"N-{policy.max_versions_behind} of the {platform} sensor-update builds")
        )
    if policy.minimum_version is not None:
        floors.append((sensor_build(policy.minimum_version), "the tenant's minimum_version"))
    if not floors:
        return VersionFloor(None, f"no {platform} sensor-update builds listed, so N-x cannot be applied")
    version, reason = max(floors, key=lambda floor: version_key(floor[0]))
    return VersionFloor(version, reason)


def _meets(version: str, floor: VersionFloor) -> bool:
    return floor.version is None or version_key(version) >= version_key(floor.version)


def _pick(
    listed: Sequence[str],
    floor: VersionFloor,
    kernel_record: Mapping[str, Any] | None,
    *,
    newest: bool,
    above: str | None = None,
) -> str | None:
    """A listed version that meets the floor, is newer than ``above`` and supports ``kernel_record``'s kernel
    (when given): the newest or the oldest of them, or None."""
    fits = [
        version
        for version in listed
        if _meets(version, floor)
        and (above is None or version_key(version) > version_key(above))
        and (kernel_record is None or sensor_supports_kernel(kernel_record, version))
    ]
    if not fits:
        return None
    return fits[-1] if newest else fits[0]


# --- who needs what ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SensorNeed:
    """What one host needs from the roll-out, and why."""

    host_id: str
    name: str
    cloud: str
    environment: str
    action: SensorAction
    reason: str
    platform: str | None = None
    device_id: str | None = None
    sensor_version: str | None = None
    target_version: str | None = None
    """The version to install or upgrade to (the newest listed build meeting the policy and supporting the
    host's planned kernel); None for ``ok`` and ``skip``, or when no listed build fits."""
    remedy: Literal["upgrade", "reinstall"] | None = None
    """For ``rfm``: upgrade (the sensor does not support the running kernel, or is too old) or reinstall."""

    def to_dict(self) -> dict[str, Any]:
        """The need as the roll-out's evidence records it."""
        return asdict(self)


def host_platform(row: Mapping[str, Any], device: Mapping[str, Any] | None) -> str | None:
    """``linux`` or ``windows``: from the host's OS family, else from its device record; None when unknown."""
    family = str(row.get("os_family") or "")
    if family in OsFamily.__members__:
        return "windows" if OsFamily(family).is_windows else "linux"
    name = str((device or {}).get("platform_name") or "").lower()
    return name if name in PLATFORMS else None


def classify_hosts(
    hosts: Iterable[Mapping[str, Any]],
    devices: Iterable[Mapping[str, Any]],
    builds: Iterable[Mapping[str, Any]],
    policy: SensorVersionPolicy,
    planned_kernels: Mapping[str, str] | None = None,
    kernel_support: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SensorNeed]:
    """What every inventory host needs, in inventory order.

    ``hosts`` are inventory rows (as :func:`attach_falcon` takes them), ``devices`` the tenant's Falcon
    device records, ``builds`` the sensor-update builds of the stage installed, ``planned_kernels`` the
    kernel release each Linux host would run after the next cycle's plan (host id -> release,
    :func:`planned_kernels`), ``kernel_support`` Falcon's kernel records (release -> record) for those
    kernels and the running ones.
    """
    devices = list(devices)
    by_id = {str(device.get("device_id")): device for device in devices if device.get("device_id")}
    builds = list(builds)
    planned = planned_kernels or {}
    support = kernel_support or {}
    return [
        classify_host(
            row,
            by_id.get(str(row.get("falcon_device_id"))),
            builds,
            policy,
            planned.get(str(row.get("host_id"))),
            support,
        )
        for row in attach_falcon(hosts, devices)
    ]


def classify_host(
    row: Mapping[str, Any],
    device: Mapping[str, Any] | None,
    builds: Sequence[Mapping[str, Any]],
    policy: SensorVersionPolicy,
    planned_kernel: str | None,
    kernel_support: Mapping[str, Mapping[str, Any]],
) -> SensorNeed:
    """What one host needs; ``row`` carries the Falcon columns :func:`attach_falcon` adds, ``device`` is the
    record it matched (None without one)."""
    base = SensorNeed(
        host_id=str(row.get("host_id")),
        name=str(row.get("name") or ""),
        cloud=str(row.get("cloud") or ""),
        environment=str(row.get("environment") or ""),
        action="skip",
        reason="",
    )
    if row.get("agent_kind") == "rds":
        return replace(base, reason="RDS DB instance: AWS runs its OS, no sensor goes there")
    platform = host_platform(row, device)
    if platform is None:
        return replace(
            base,
            reason=f"platform {row.get('platform')!r} is neither Linux nor Windows as Patchcycle knows them; "
            "no sensor package to choose",
        )
    listed = listed_versions(builds, platform)
    floor = version_floor(policy, listed, platform)
    kernel = planned_kernel if platform == "linux" else None
    kernel_record = kernel_support.get(kernel) if kernel else None
    if not row.get("falcon_device_id"):
        return _install(base, row, platform, listed, floor, kernel_record)
    version = str(row.get("falcon_sensor_version") or "")
    found = replace(base, platform=platform, device_id=str(row["falcon_device_id"]), sensor_version=version)
    if row.get("falcon_rfm"):
        return _rfm(found, row, listed, floor, kernel_support)
    reasons: list[str] = []
    notes: list[str] = []
    if not version:
        reasons.append("the device record reports no sensor version")
    elif not _meets(version, floor):
        reasons.append(f"sensor {version} is older than {floor.version} ({floor.reason})")
    needs_kernel = None
    if kernel and kernel_gate(row, kernel, kernel_support, "hold_kernel_update").action != "patch":
        if kernel_record is None:
            notes.append(
                f"planned kernel {kernel} is unknown to Falcon's support table; "
                "no sensor can be chosen for it"
            )
        elif _pick(listed, floor, kernel_record, newest=True) is None:
            notes.append(f"no listed sensor meeting the policy supports planned kernel {kernel}")
        else:
            needs_kernel = kernel_record
            reasons.append(
                f"sensor {version} does not support the planned kernel {kernel} (the cycle holds that kernel)"
            )
    if reasons:
        target = _pick(listed, floor, needs_kernel, newest=True)
        return replace(found, action="upgrade", reason="; ".join(reasons + notes), target_version=target)
    meets = f"sensor {version} meets the policy" + (
        f" (at least {floor.version}, {floor.reason})" if floor.version else ""
    )
    if floor.version is None:
        notes.append(floor.reason)
    return replace(found, action="ok", reason="; ".join([meets, *notes]))


def _install(
    base: SensorNeed,
    row: Mapping[str, Any],
    platform: str,
    listed: Sequence[str],
    floor: VersionFloor,
    kernel_record: Mapping[str, Any] | None,
) -> SensorNeed:
    target = _pick(listed, floor, kernel_record, newest=True) or _pick(listed, floor, None, newest=True)
    if row.get("falcon_match") == MATCH_CONFLICT:
        found = str(sensor_gate(row).reason)
    else:
        found = "no Falcon device record matched by cloud identity"
    then = (
        f"install {target}" if target else "no listed sensor build meets the policy; nothing to install yet"
    )
    return replace(
        base, action="install", reason=f"{found}; {then}", platform=platform, target_version=target
    )


def _rfm(
    found: SensorNeed,
    row: Mapping[str, Any],
    listed: Sequence[str],
    floor: VersionFloor,
    kernel_support: Mapping[str, Mapping[str, Any]],
) -> SensorNeed:
    version = str(found.sensor_version)
    running = str(row.get("kernel") or "")
    record = kernel_support.get(running) if found.platform == "linux" and running else None
    why = f"sensor {version} is in reduced-functionality mode"
    if record is not None and not sensor_supports_kernel(record, version):
        target = _pick(listed, floor, record, newest=True, above=version)
        if target:
            return replace(
                found,
                action="rfm",
                remedy="upgrade",
                target_version=target,
                reason=f"{why}: it does not support the running kernel {running}; upgrade to {target}",
            )
        return replace(
            found,
            action="rfm",
            remedy="reinstall",
            reason=f"{why}: it does not support the running kernel {running}, and no listed sensor "
            "meeting the policy does; reinstall, and hold the kernel",
        )
    if not _meets(version, floor):
        target = _pick(listed, floor, None, newest=True)
        return replace(
            found,
            action="rfm",
            remedy="upgrade",
            target_version=target,
            reason=f"{why} and older than {floor.version} ({floor.reason}); upgrade",
        )
    return replace(
        found,
        action="rfm",
        remedy="reinstall",
        target_version=sensor_build(version),
        reason=f"{why}; the sensor supports its kernel and meets the policy: reinstall it",
    )


# --- validation after install --------------------------------------------------------------------------

NO_RECORD = "no device record in the tenant's CID (not registered yet, or registered under another CID)"


@dataclass(frozen=True)
class InstallValidation:
    """Whether an installed or upgraded host is what the roll-out expects, with every reason it is not."""

    host_id: str
    name: str
    passed: bool
    reasons: tuple[str, ...] = ()
    device_id: str | None = None
    sensor_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The validation as the roll-out's evidence records it."""
        return {**asdict(self), "reasons": list(self.reasons)}


def matched_devices(
    hosts: Iterable[Mapping[str, Any]], devices: Iterable[Mapping[str, Any]]
) -> list[tuple[dict[str, Any], Mapping[str, Any] | None]]:
    """Each host (with the Falcon columns) and the device record :func:`attach_falcon` matched to it."""
    devices = list(devices)
    by_id = {str(device.get("device_id")): device for device in devices if device.get("device_id")}
    rows = attach_falcon(hosts, devices)
    return [(row, by_id.get(str(row.get("falcon_device_id")))) for row in rows]


def validate_install(
    host: Mapping[str, Any],
    device: Mapping[str, Any] | None,
    *,
    expected_version: str,
    host_group_id: str,
    prevention_policy_id: str,
    sensor_update_policy_id: str,
) -> InstallValidation:
    """Validate a host after its install or upgrade, from its matched device record.

    It passes with a record in the tenant's CID (the API sees no other CID, so a sensor registered under
    another one looks unregistered), a sensor of ``expected_version`` or newer (its sensor-update policy may
    already have moved it on), not in reduced-functionality mode, in the tenant's host group, and the
    expected prevention and sensor-update policies assigned and applied (``device_policies.<type>``).
    """
    host_id, name = str(host.get("host_id")), str(host.get("name") or "")
    if device is None:
        reasons = [NO_RECORD]
        if host.get("falcon_match") == MATCH_CONFLICT:
            reasons.append(str(sensor_gate(host).reason))
        return InstallValidation(host_id, name, False, tuple(reasons))
    reasons = []
    version = str(device.get("agent_version") or "")
    if not version:
        reasons.append("the device record reports no sensor version")
    elif version_key(version) < version_key(expected_version):
        reasons.append(f"sensor {version}, expected {sensor_build(expected_version)} or newer")
    if str(device.get("reduced_functionality_mode") or "").lower() == "yes":
        reasons.append(f"sensor {version} is in reduced-functionality mode")
    groups = [str(group) for group in device.get("groups") or []]
    if host_group_id not in groups:
        reasons.append(f"not in host group {host_group_id} (its groups: {', '.join(groups) or 'none'})")
    policies = device.get("device_policies") or {}
    for kind, expected in (("prevention", prevention_policy_id), ("sensor_update", sensor_update_policy_id)):
        policy = policies.get(kind) or {}
        if not policy.get("policy_id"):
            reasons.append(f"no {kind} policy on the device record (expected {expected})")
        elif policy["policy_id"] != expected:
            reasons.append(f"{kind} policy {policy['policy_id']} is assigned, expected {expected}")
        elif policy.get("applied") is not True:
            reasons.append(
                f"{kind} policy {expected} is assigned but not applied (device_policies.{kind}.applied false)"
            )
    return InstallValidation(
        host_id,
        name,
        not reasons,
        tuple(reasons),
        str(device.get("device_id") or "") or None,
        version or None,
    )


INSTALLER_OS: dict[str, tuple[str, str]] = {
    "amazon_linux_2": ("Amazon Linux", "2"),
    "amazon_linux_2023": ("Amazon Linux", "2023"),
    "rhel_7": ("RHEL/CentOS/Oracle", "7"),
    "centos_7": ("RHEL/CentOS/Oracle", "7"),
    "rhel_8": ("RHEL/CentOS/Oracle", "8"),
    "rhel_9": ("RHEL/CentOS/Oracle", "9"),
    "ubuntu_20_04": ("Ubuntu", "20"),
    "ubuntu_22_04": ("Ubuntu", "22"),
    "windows_2016": ("Windows", ""),
    "windows_2019": ("Windows", ""),
    "windows_2022": ("Windows", ""),
}
"""The sensor installer of each OS family, as the Sensor Download API names its ``os`` and ``os_version``
(one package per distribution release, one DEB for the Ubuntu releases it lists as ``16/18/20/22/24``,
one EXE for every Windows Server). No document lists the values: these are the ones CrowdStrike's
falcon-installer filters on (``os:"Amazon Linux"``, ``os:"RHEL/CentOS/Oracle"``, ``os:"Ubuntu"``)."""


def pick_installer(
    installers: Iterable[Mapping[str, Any]], os_family: str, version: str
) -> Mapping[str, Any] | None:
    """The installer of ``version`` (major.minor.build) for hosts of ``os_family``; None when Falcon offers
    none (or the family has no known package)."""
    wanted = INSTALLER_OS.get(os_family)
    if wanted is None:
        return None
    name, release = wanted
    for installer in installers:
        if sensor_build(str(installer.get("version") or "")) != sensor_build(version):
            continue
        if str(installer.get("os")) != name:
            continue
        listed = str(installer.get("os_version") or "")
        if release == "" or release in listed.split("/"):
            return installer
    return None


DEFAULT_POLICY = "platform_default"
"""The name of the policy Falcon applies to a device no other enabled policy holds (one per platform and
kind; it is always last in precedence)."""


def expected_policy(policies: Sequence[Mapping[str, Any]], group_id: str) -> str | None:
    """The id of the policy Falcon applies to a device of host group ``group_id``: among ``policies`` (one
    platform and kind, highest precedence first), the first enabled one that holds the group, else the
    platform's default; None when neither is there. FalconPy's setPreventionPoliciesPrecedence says "the
    first ID specified will have the highest precedence"; no published document states which policy wins
    for a device in several groups, so this takes the highest-precedence enabled one (fleetsim does the
    same, saying so)."""
    for policy in policies:
        if policy.get("name") == DEFAULT_POLICY or not policy.get("enabled"):
            continue
        if any(str((group or {}).get("id")) == group_id for group in policy.get("groups") or []):
            return str(policy.get("id"))
    default = next((p for p in policies if p.get("name") == DEFAULT_POLICY), None)
    return str(default["id"]) if default is not None and default.get("id") else None


@dataclass(frozen=True)
class Expectation:
    """What a validated host of one environment and platform must show: its host group and the prevention
    and sensor-update policies that group gets; ``problem`` when one of them cannot be named."""

    host_group_id: str | None
    prevention_policy_id: str | None
    sensor_update_policy_id: str | None
    problem: str | None = None


def validate_hosts(
    hosts: Iterable[Mapping[str, Any]],
    devices: Iterable[Mapping[str, Any]],
    expectations: Mapping[tuple[str, str], Expectation],
    expected_versions: Mapping[str, str],
) -> list[InstallValidation]:
    """Validate every host (inventory rows with ``platform`` set) from the tenant's device records:
    ``expectations`` by (environment, platform), ``expected_versions`` by host id (the target of an
    install or upgrade, the reported version of a host left alone). A host whose expectation has a problem
    fails with it."""
    out = []
    for row, device in matched_devices(hosts, devices):
        key = (str(row.get("environment")), str(row.get("platform")))
        expected = expectations.get(key)
        host_id = str(row.get("host_id"))
        if (
            expected is None
            or expected.problem
            or not (
                expected.host_group_id and expected.prevention_policy_id and expected.sensor_update_policy_id
            )
        ):
            why = expected.problem if expected and expected.problem else f"nothing expected for {key}"
            out.append(InstallValidation(host_id, str(row.get("name") or ""), False, (why,)))
            continue
        out.append(
            validate_install(
                row,
                device,
                expected_version=expected_versions.get(host_id) or "0",
                host_group_id=expected.host_group_id,
                prevention_policy_id=expected.prevention_policy_id,
                sensor_update_policy_id=expected.sensor_update_policy_id,
            )
        )
    return out


# --- Detection to Prevention phases -------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """A person's answer about one subject: a phase to promote to (its name) or an exclusion (its key)."""

    subject: str
    by: str
    at: dt.datetime
    decision: Literal["approved", "rejected"] = "approved"

    def to_dict(self) -> dict[str, str]:
        """The approval as evidence records it."""
        return {"subject": self.subject, "by": self.by, "at": self.at.isoformat(), "decision": self.decision}


@dataclass(frozen=True)
class PhaseState:
    """Where the tenant is: the phase applied last (None: Detection everywhere, no phase yet), when it was
    applied, the approvals recorded so far, and whether that entry was a re-entry of a held phase."""

    phase: str | None = None
    entered_at: dt.datetime | None = None
    approvals: tuple[Approval, ...] = ()
    reentered: bool = False


PhaseAction = Literal["stay", "promote", "blocked", "done", "reenter", "refused"]


@dataclass(frozen=True)
class PhaseDecision:
    """What the roll-out does about the phases now.

    ``promote`` with ``approval`` None: ask for one (the cycle's approval step); with an approval: apply
    ``next_phase``'s settings. ``blocked``: page with ``incident_key`` (the same key for every run while the
    phase stays blocked, so the tenant is paged once). ``reenter``: a person asked to enter the held
    ``phase`` again (``next_phase`` is the same phase; ``incident_key`` the hold's); behind an approval, its
    entry time is then reset and its detections counted anew. ``refused``: that request cannot be done, the
    ``reason`` says why.
    """

    action: PhaseAction
    phase: str | None
    next_phase: str | None
    reason: str
    days_left: float | None = None
    monitoring_ends: dt.datetime | None = None
    approval: Approval | None = None
    incident_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The decision as evidence records it."""
        return {
            **asdict(self),
            "monitoring_ends": self.monitoring_ends.isoformat() if self.monitoring_ends else None,
            "approval": self.approval.to_dict() if self.approval else None,
        }


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value


def decide_phase(
    tenant_id: str,
    phases: Sequence[PreventionPhase],
    state: PhaseState,
    detections: int,
    now: dt.datetime,
    reenter: str | None = None,
) -> PhaseDecision:
    """Decide the next step from Detection to Prevention.

    ``detections`` counts the detections on the current phase's hosts since it was entered
    (:func:`count_detections`). Above the phase's threshold: ``blocked``, whether or not its monitoring period
    is over; a new count starts when the phase is entered again (after exclusions were tuned). Within the
    monitoring period: ``stay``. After it: ``promote`` the next phase, behind an approval given since the
    current phase was entered (the latest answer counts; a rejection keeps the tenant where it is), or
    ``done`` after the last phase.

    ``reenter`` names the phase a person asked to enter again (the trigger form's): ``reenter`` when it is
    the current phase and it is blocked, else ``refused`` with the reason; a phase the tenant does not
    declare is a ``ValueError``.
    """
    _aware(now, "now")
    if detections < 0:
        raise ValueError(f"detections must be zero or more, got {detections}")
    if reenter is not None:
        return _reentry(tenant_id, phases, state, detections, reenter)
    if not phases:
        return PhaseDecision("done", state.phase, None, "the tenant declares no prevention phases")
    if state.phase is None:
        return _promotion(phases[0], None, state, None, "Detection everywhere; the first phase is next")
    index, entered = _current(phases, state)
    phase = phases[index]
    ends = entered + dt.timedelta(days=phase.monitoring_days)
    following = phases[index + 1] if index + 1 < len(phases) else None
    if detections > phase.detection_threshold:
        return _held(tenant_id, phase, following, entered, state.reentered, detections)
    if now < ends:
        left = (ends - now).total_seconds() / 86400
        return PhaseDecision(
            "stay",
            phase.name,
            following.name if following else None,
            f"phase {phase.name!r} is monitored until {ends.isoformat()} ({detections} detections so far, "
            f"threshold {phase.detection_threshold})",
            days_left=left,
            monitoring_ends=ends,
        )
    if following is None:
        return PhaseDecision(
            "done",
            phase.name,
            None,
            f"the last phase {phase.name!r} was monitored until {ends.isoformat()} "
            f"with {detections} detections",
            monitoring_ends=ends,
        )
    return _promotion(
        following,
        phase,
        state,
        entered,
        f"phase {phase.name!r} was monitored until {ends.isoformat()} with {detections} detections "
        f"(threshold {phase.detection_threshold})",
    )


def _current(phases: Sequence[PreventionPhase], state: PhaseState) -> tuple[int, dt.datetime]:
    """The index of the state's phase among ``phases`` and when it was entered; ``ValueError`` when the
    state cannot be read against them."""
    names = [phase.name for phase in phases]
    if state.phase not in names:
        raise ValueError(
            f"the roll-out's state names phase {state.phase!r}, which the tenant file no longer declares "
            f"(phases: {', '.join(names)})"
        )
    if state.entered_at is None:
        raise ValueError(f"the roll-out's state names phase {state.phase!r} but not when it was entered")
    return names.index(state.phase), _aware(state.entered_at, "entered_at")


def _held(
    tenant_id: str,
    phase: PreventionPhase,
    following: PreventionPhase | None,
    entered: dt.datetime,
    reentered: bool,
    detections: int,
) -> PhaseDecision:
    """The ``blocked`` decision of the current phase, entered at ``entered``. Its incident is the phase
    entry's: the day it was entered, and for a re-entry also the time (a re-entry held on the day of the
    first entry is a new incident, paged again)."""
    stage = f"falcon-prevention-{phase.name}"
    if reentered:
        stage += f"-reentered-{entered.astimezone(dt.UTC):%H%M%S}"
    return PhaseDecision(
        "blocked",
        phase.name,
        following.name if following else None,
        f"{detections} detections on phase {phase.name!r}'s hosts since {entered.isoformat()} exceed its "
        f"threshold of {phase.detection_threshold}; "
        + (f"phase {following.name!r} is not promoted" if following else "the last phase is not done"),
        monitoring_ends=entered + dt.timedelta(days=phase.monitoring_days),
        incident_key=incident_key(tenant_id, entered.astimezone(dt.UTC).date(), stage),
    )


def _reentry(
    tenant_id: str, phases: Sequence[PreventionPhase], state: PhaseState, detections: int, name: str
) -> PhaseDecision:
    """A person's request to enter phase ``name`` again: ``reenter`` when it is the current phase and it
    is held, else ``refused`` saying why."""
    names = [phase.name for phase in phases]
    if name not in names:
        raise ValueError(
            f"phase {name!r} cannot be entered again: the tenant file declares no such phase "
            f"(phases: {', '.join(names) or 'none'})"
        )
    if state.phase != name:
        where = f"phase {state.phase!r}" if state.phase else "Detection everywhere (no phase entered yet)"
        return PhaseDecision(
            "refused", state.phase, None, f"phase {name!r} is not entered again: the tenant is in {where}"
        )
    index, entered = _current(phases, state)
    phase = phases[index]
    following = phases[index + 1] if index + 1 < len(phases) else None
    if detections <= phase.detection_threshold:
        return PhaseDecision(
            "refused",
            phase.name,
            following.name if following else None,
            f"phase {name!r} is not entered again: it is not held ({detections} detections since "
            f"{entered.isoformat()}, threshold {phase.detection_threshold})",
        )
    held = _held(tenant_id, phase, following, entered, state.reentered, detections)
    return PhaseDecision(
        "reenter",
        phase.name,
        phase.name,
        f"{held.reason}; entering phase {name!r} again (its detections counted anew from then) "
        "needs approval",
        monitoring_ends=held.monitoring_ends,
        incident_key=held.incident_key,
    )


def _promotion(
    target: PreventionPhase,
    current: PreventionPhase | None,
    state: PhaseState,
    since: dt.datetime | None,
    why: str,
) -> PhaseDecision:
    answers = [
        approval
        for approval in state.approvals
        if approval.subject == target.name and (since is None or _aware(approval.at, "approval.at") >= since)
    ]
    latest = max(answers, key=lambda approval: approval.at) if answers else None
    here = current.name if current else None
    if latest is None:
        return PhaseDecision(
            "promote", here, target.name, f"{why}; promoting to {target.name!r} needs approval"
        )
    if latest.decision != "approved":
        return PhaseDecision(
            "stay",
            here,
            target.name,
            f"{why}; promotion to {target.name!r} was {latest.decision} by {latest.by} "
            f"at {latest.at.isoformat()}",
        )
    return PhaseDecision(
        "promote",
        here,
        target.name,
        f"{why}; promotion to {target.name!r} approved by {latest.by} at {latest.at.isoformat()}",
        approval=latest,
    )


# --- detections and exclusions -------------------------------------------------------------------------


def _time(value: Any) -> dt.datetime:
    text = str(value or "")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"alert created_timestamp {text!r} is not an ISO-8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _device(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    device = alert.get("device")
    return device if isinstance(device, Mapping) else {}


def alerts_on(
    alerts: Iterable[Mapping[str, Any]], device_ids: Collection[str] | None
) -> list[Mapping[str, Any]]:
    """The alerts raised on these devices (all alerts when ``device_ids`` is None)."""
    return [a for a in alerts if device_ids is None or str(_device(a).get("device_id")) in device_ids]


def count_detections(
    alerts: Iterable[Mapping[str, Any]],
    device_ids: Collection[str],
    since: dt.datetime,
    until: dt.datetime,
) -> int:
    """How many alerts were raised on these devices from ``since`` (inclusive) to ``until`` (exclusive)."""
    _aware(since, "since")
    _aware(until, "until")
    return sum(
        1 for alert in alerts_on(alerts, device_ids) if since <= _time(alert.get("created_timestamp")) < until
    )


def _process(alert: Mapping[str, Any]) -> str:
    """The alert's process: its image path, else its file name."""
    return str(alert.get("filepath") or alert.get("filename") or "")


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _windows(path: str) -> bool:
    return "\\" in path


def _process_key(path: str) -> str:
    # Windows paths are case-insensitive, Linux paths are not.
    return path.lower() if _windows(path) else path


@dataclass(frozen=True)
class ProcessSummary:
    """The alerts that name one process, with what a reviewer needs to judge them."""

    process: str
    filename: str
    count: int
    hosts: tuple[str, ...]
    device_ids: tuple[str, ...]
    first_seen: str
    last_seen: str
    max_severity: int
    parents: tuple[str, ...]
    command_lines: tuple[str, ...]
    tactics: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The summary as evidence records it."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


def _group(alerts: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for alert in alerts:
        grouped.setdefault(_process_key(_process(alert)), []).append(alert)
    return grouped


def _distinct(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(sorted({str(value) for value in values if value}))


def _seen(alerts: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    ordered = sorted(alerts, key=lambda alert: _time(alert.get("created_timestamp")))
    return str(ordered[0].get("created_timestamp")), str(ordered[-1].get("created_timestamp"))


def summarise_detections(
    alerts: Iterable[Mapping[str, Any]], device_ids: Collection[str] | None = None
) -> list[ProcessSummary]:
    """The alerts on these devices (Alerts API records) per process, the most frequent first."""
    summaries = []
    for group in _group(alerts_on(alerts, device_ids)).values():
        first, last = _seen(group)
        parents = [
            (alert.get("parent_details") or {}).get("filepath")
            or (alert.get("parent_details") or {}).get("filename")
            for alert in group
        ]
        summaries.append(
            ProcessSummary(
                process=_process(group[0]),
                filename=str(group[0].get("filename") or _basename(_process(group[0]))),
                count=len(group),
                hosts=_distinct(_device(alert).get("hostname") for alert in group),
                device_ids=_distinct(_device(alert).get("device_id") for alert in group),
                first_seen=first,
                last_seen=last,
                max_severity=max(int(alert.get("severity") or 0) for alert in group),
                parents=_distinct(parents),
                command_lines=_distinct(alert.get("cmdline") for alert in group),
                tactics=_distinct(alert.get("tactic") for alert in group),
            )
        )
    return sorted(summaries, key=lambda summary: (-summary.count, summary.process))


# Interpreters and shells: excluding one would exclude every script it runs.
_INTERPRETERS = re.compile(
    r"(ba|da|z|k|c|tc)?sh|python[\d.]*|perl|ruby|node|php|java|powershell(\.exe)?|pwsh(\.exe)?|cmd\.exe"
    r"|wscript\.exe|cscript\.exe|mshta\.exe|rundll32\.exe|regsvr32\.exe",
    re.IGNORECASE,
)
_DEVICE_PREFIX = re.compile(r"^(\\Device\\HarddiskVolume\d+|[A-Za-z]:)(?=\\)", re.IGNORECASE)
_VOLATILE = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<hex>\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b)"
    r"|(?P<digits>\d{6,})"
)
_VOLATILE_PATTERNS = {"uuid": "[0-9A-Fa-f-]{36}", "hex": "[0-9A-Fa-f]+", "digits": r"\d+"}
MAX_COMMAND_LINES = 10
"""More distinct command-line shapes than this for one process and pattern: too varied to propose a narrow
IOA exclusion; a person reviews it."""
_CANARY = "patchcycle-exclusion-canary"
_ML_TACTIC = "machine learning"
_MALWARE_TACTIC = "malware"


def command_line_pattern(cmdline: str) -> str:
    """A regular expression matching this command line, with its run-specific parts (UUIDs, long hex ids,
    long numbers) matching any such value, so the next run of the same command matches too."""
    parts: list[str] = []
    end = 0
    for match in _VOLATILE.finditer(cmdline):
        parts.append(re.escape(cmdline[end : match.start()]))
        parts.append(_VOLATILE_PATTERNS[str(match.lastgroup)])
        end = match.end()
    parts.append(re.escape(cmdline[end:]))
    return "".join(parts)


def _image_regex(path: str) -> str:
    stripped = _DEVICE_PREFIX.sub("", path)
    # A Windows image is recorded with its volume's device path; the exclusion must not depend on it.
    return ".*" + re.escape(stripped) if stripped != path else re.escape(path)


@dataclass(frozen=True)
class ExclusionProposal:
    """A narrow exclusion the detections on a phase's hosts justify, with its evidence. Applied only after
    an approver approves its ``key``."""

    key: str
    kind: Literal["ml", "ioa"]
    process: str
    groups: tuple[str, ...]
    count: int
    hosts: tuple[str, ...]
    first_seen: str
    last_seen: str
    command_lines: tuple[str, ...]
    value: str | None = None
    """ML: the one file excluded (its path without the drive or volume)."""
    pattern_id: str | None = None
    pattern_name: str | None = None
    ifn_regex: str | None = None
    cl_regex: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The proposal as evidence records it."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    def request_body(self, approval: Approval) -> dict[str, Any]:
        """The create request's body (ML: ``POST /policy/entities/ml-exclusions/v1``; IOA:
        ``POST /policy/entities/ioa-exclusions/v1``), its comment naming the evidence and the approver."""
        comment = (
            f"patchcycle {self.key}: {self.count} detections on {len(self.hosts)} hosts, "
            f"{self.first_seen} to {self.last_seen}; approved by {approval.by} at {approval.at.isoformat()}"
        )
        if self.kind == "ml":
            return {
                "value": self.value,
                "excluded_from": ["blocking"],
                "groups": list(self.groups),
                "comment": comment,
            }
        return {
            "name": f"patchcycle {self.pattern_name or self.pattern_id} {_basename(self.process)}"[:100],
            "pattern_id": self.pattern_id,
            "pattern_name": self.pattern_name or "",
            "ifn_regex": self.ifn_regex,
            "cl_regex": self.cl_regex,
            "groups": list(self.groups),
            "description": f"proposed by patchcycle from {self.count} detections",
            "comment": comment,
        }


@dataclass(frozen=True)
class ExclusionProposals:
    """The proposals, and why some processes got none."""

    proposals: tuple[ExclusionProposal, ...]
    not_proposed: tuple[str, ...]


def _key(*parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"exclusion-{digest[:16]}"


def propose_exclusions(
    alerts: Iterable[Mapping[str, Any]], device_ids: Collection[str], groups: Sequence[str]
) -> ExclusionProposals:
    """Narrow exclusions from the alerts on a phase's devices, scoped to ``groups`` (host group ids).

    Machine-learning detections give an ML exclusion of the one file; behavioural (IOA) detections an IOA
    exclusion of their pattern for that image and the command lines seen. Known malware, alerts without an
    image path or pattern, and command lines too varied are not proposed; nor is anything
    :func:`exclusion_problem` calls blanket.
    """
    if not groups:
        raise ValueError("groups: an exclusion is scoped to the phase's host groups; none given")
    proposals: list[ExclusionProposal] = []
    skipped: list[str] = []
    by_kind: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for alert in alerts_on(alerts, device_ids):
        process = _process(alert)
        tactic = str(alert.get("tactic") or "").lower()
        if not alert.get("filepath"):
            skipped.append(f"{process or 'an alert'}: no image path in the alert; no exclusion proposed")
            continue
        if tactic == _MALWARE_TACTIC:
            skipped.append(f"{process}: known malware ({alert.get('technique') or tactic}) is never excluded")
            continue
        kind = "ml" if tactic == _ML_TACTIC else "ioa"
        pattern = "" if kind == "ml" else str(alert.get("pattern_id") or "")
        if kind == "ioa" and not pattern:
            skipped.append(
                f"{process}: a behavioural detection without a pattern_id; no IOA exclusion proposed"
            )
            continue
        by_kind.setdefault((kind, pattern, _process_key(process)), []).append(alert)
    for (kind, pattern, _), group in sorted(by_kind.items()):
        proposal, why = _proposal(kind, pattern, group, tuple(groups))
        if proposal is None:
            skipped.append(str(why))
            continue
        problem = exclusion_problem(proposal)
        if problem:
            skipped.append(f"{proposal.process}: {problem}")
            continue
        proposals.append(proposal)
    return ExclusionProposals(tuple(proposals), tuple(dict.fromkeys(skipped)))


def _proposal(
    kind: str, pattern: str, group: Sequence[Mapping[str, Any]], groups: tuple[str, ...]
) -> tuple[ExclusionProposal | None, str | None]:
    process = _process(group[0])
    first, last = _seen(group)
    evidence = ExclusionProposal(
        key="",
        kind="ml",
        process=process,
        groups=groups,
        count=len(group),
        hosts=_distinct(_device(alert).get("hostname") for alert in group),
        first_seen=first,
        last_seen=last,
        command_lines=_distinct(alert.get("cmdline") for alert in group),
    )
    if kind == "ml":
        value = _DEVICE_PREFIX.sub("", process)
        return replace(evidence, key=_key("ml", value, groups), value=value), None
    shapes = sorted({command_line_pattern(line) for line in evidence.command_lines})
    if not shapes:
        return None, f"{process}: no command line in the alerts; no IOA exclusion proposed"
    if len(shapes) > MAX_COMMAND_LINES:
        return None, (
            f"{process}: {len(shapes)} different command lines for pattern {pattern}; "
            "too varied for a narrow IOA exclusion, review by hand"
        )
    cl_regex = shapes[0] if len(shapes) == 1 else "(?:" + "|".join(shapes) + ")"
    ifn_regex = _image_regex(process)
    names = _distinct(alert.get("display_name") or alert.get("name") for alert in group)
    proposal = replace(
        evidence,
        key=_key("ioa", pattern, ifn_regex, cl_regex, groups),
        kind="ioa",
        pattern_id=pattern,
        pattern_name=names[0] if names else None,
        ifn_regex=ifn_regex,
        cl_regex=cl_regex,
    )
    return proposal, None


def _sibling(path: str) -> str:
    """Another file in the same directory as ``path``."""
    cut = max(path.rfind("/"), path.rfind("\\"))
    return path[: cut + 1] + _CANARY


def exclusion_problem(proposal: ExclusionProposal) -> str | None:
    """Why an exclusion is blanket and must never be applied (None: it is narrow).

    An exclusion names one file (ML) or one pattern on one image with the command lines seen (IOA), in given
    host groups. Refused: no host group or all of them; an ML value that is a pattern, a directory, a
    top-level path or an interpreter or shell (it runs everything); an image regex that matches another file
    in the same directory, or not the process seen; a command-line regex that matches any command line (so
    an interpreter is excluded only for the scripts seen).
    """
    if not proposal.groups or any(group.lower() == "all" for group in proposal.groups):
        scope = "all host groups" if proposal.groups else "no host group"
        return f"applies to {scope}; exclusions stay in the phase's host groups"
    if _WRITABLE_BY_ANYONE.search(proposal.process):
        return (
            "it runs from a directory any user or process can write to; an exclusion there would let a "
            "dropped binary of that name run unchecked (the detection may well be real)"
        )
    if proposal.kind == "ml":
        return _ml_problem(proposal.value or "")
    return _ioa_problem(proposal)


_WRITABLE_BY_ANYONE = re.compile(
    r"^(?:/tmp/|/var/tmp/|/dev/shm/|/run/user/)"
    r"|\\(?:Windows\\Temp|Users\\Public|AppData\\Local\\Temp|\$Recycle\.Bin)\\",
    re.IGNORECASE,
)
"""Where no exclusion is ever proposed: world-writable and temporary directories (the sticky temp dirs of
Linux, Windows' temp and public folders), the usual drop sites of miners and droppers (e.g. the Kinsing
miner's ``/tmp/kdevtmpfsi``)."""


def _ml_problem(value: str) -> str | None:
    name = _basename(value)
    if _INTERPRETERS.fullmatch(name):
        return f"{name} is an interpreter or shell; excluding it would exclude everything it runs"
    if not value or any(char in value for char in "*?["):
        return f"ML exclusion value {value!r} is a pattern or empty, not one file"
    if value.endswith(("/", "\\")):
        return f"ML exclusion value {value!r} is a directory"
    if len([part for part in re.split(r"[\\/]", value) if part]) < 2:
        return f"ML exclusion value {value!r} is a top-level path"
    return None


def _ioa_problem(proposal: ExclusionProposal) -> str | None:
    if not proposal.pattern_id:
        return "an IOA exclusion without a pattern_id would exclude every pattern"
    try:
        image = re.compile(proposal.ifn_regex or "", re.IGNORECASE)
        command = re.compile(proposal.cl_regex or "")
    except re.error as exc:
        return f"an exclusion regex does not compile: {exc}"
    if not proposal.ifn_regex or image.fullmatch(_sibling(proposal.process)):
        return f"ifn_regex {proposal.ifn_regex!r} matches other files beside {proposal.process}"
    if not image.fullmatch(proposal.process):
        return f"ifn_regex {proposal.ifn_regex!r} does not match the process seen ({proposal.process})"
    if not proposal.cl_regex or command.fullmatch(f"{_CANARY} --any --arguments"):
        return f"cl_regex {proposal.cl_regex!r} matches any command line"
    return None


def exclusions_to_apply(
    proposals: Iterable[ExclusionProposal], approvals: Iterable[Approval], mode: ExclusionMode
) -> list[tuple[ExclusionProposal, Approval]]:
    """The proposals to create now, each with the approval that allows it: none in ``propose`` mode; in
    ``apply_approved`` mode those whose key's latest answer is an approval. A blanket proposal raises
    ``ValueError`` (it cannot come from :func:`propose_exclusions`)."""
    if mode != "apply_approved":
        return []
    latest: dict[str, Approval] = {}
    for approval in approvals:
        if approval.subject not in latest or approval.at >= latest[approval.subject].at:
            latest[approval.subject] = approval
    chosen = []
    for proposal in proposals:
        problem = exclusion_problem(proposal)
        if problem:
            raise ValueError(f"exclusion {proposal.key} for {proposal.process} is blanket: {problem}")
        answer = latest.get(proposal.key)
        if answer is not None and answer.decision == "approved":
            chosen.append((proposal, answer))
    return chosen


# --- the kernel-held hand-off ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelUpgrade:
    """A host the cycle's kernel gate held, and the sensor it needs before the next cycle."""

    host_id: str
    name: str
    sensor_version: str
    kernel: str
    upgrade_to: str | None
    reason: str
    due_before: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """The upgrade as the roll-out's evidence (and the next cycle's) records it."""
        return {**asdict(self), "due_before": self.due_before.isoformat()}


def planned_kernels(plan: Mapping[str, Any], hosts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each host's kernel after a cycle's plan (host id -> release), for the hosts whose OS family the plan
    updates the kernel of (Linux families only have kernel updates)."""
    from patchcycle.domain.plan import target_kernel

    kernels = {}
    for row in hosts:
        release = target_kernel(plan, str(row.get("os_family") or ""))
        if release:
            kernels[str(row.get("host_id"))] = release
    return kernels


def next_cycle_start(now: dt.datetime) -> dt.datetime:
    """The next scheduled monthly cycle after ``now``: the fourth Sunday, 02:00 UTC."""
    start: dt.datetime = croniter(CYCLE_CRON, _aware(now, "now").astimezone(dt.UTC)).get_next(dt.datetime)
    return start


def rollout_run_before(schedule: str | None, now: dt.datetime, deadline: dt.datetime) -> dt.datetime | None:
    """The roll-out's next scheduled run after ``now`` if it comes before ``deadline``; None otherwise (no
    schedule, or none in time: the upgrade needs a triggered run)."""
    if schedule is None:
        return None
    run: dt.datetime = croniter(schedule, _aware(now, "now").astimezone(dt.UTC)).get_next(dt.datetime)
    return run if run < deadline else None


def kernel_held_upgrades(
    decisions: Iterable[Mapping[str, Any]],
    hosts: Iterable[Mapping[str, Any]],
    planned_kernels: Mapping[str, str],
    kernel_support: Mapping[str, Mapping[str, Any]],
    builds: Iterable[Mapping[str, Any]],
    policy: SensorVersionPolicy,
    now: dt.datetime,
) -> list[KernelUpgrade]:
    """The sensor upgrade each kernel-held host of a cycle needs (the paper's 6.2: pin the kernel, upgrade
    the sensor), due before the next cycle.

    ``decisions`` are the pre-flight's (``preflight.json``): a host held, or patched without its kernel
    (``variant`` ``no_kernel``), is kernel-held when :func:`kernel_gate` still says its sensor does not run
    the planned kernel; the reason text is not parsed. ``hosts`` are the cycle's inventory rows with the
    Falcon columns, ``planned_kernels`` each host's planned kernel (:func:`planned_kernels`).
    The version is the oldest listed build that supports the kernel, meets the policy and is newer than the
    host's sensor.
    """
    rows = {str(row.get("host_id")): row for row in hosts}
    builds = list(builds)
    listed = listed_versions(builds, "linux")
    floor = version_floor(policy, listed, "linux")
    due = next_cycle_start(now)
    upgrades = []
    for decision in decisions:
        if decision.get("verdict") != "held" and decision.get("variant") != "no_kernel":
            continue
        row = rows.get(str(decision.get("host_id")))
        kernel = planned_kernels.get(str(decision.get("host_id")))
        if row is None or kernel is None:
            continue
        if kernel_gate(row, kernel, kernel_support, "hold_kernel_update").action == "patch":
            continue  # held for another reason
        version = str(row.get("falcon_sensor_version"))
        record = kernel_support.get(kernel)
        target = _pick(listed, floor, record, newest=False, above=version) if record is not None else None
        if record is None:
            reason = f"kernel {kernel} is unknown to Falcon's support table; no sensor can be chosen yet"
        elif target is None:
            reason = f"no listed sensor newer than {version} that meets the policy supports kernel {kernel}"
        else:
            reason = f"sensor {version} does not support kernel {kernel}; {target} is the oldest that does"
        upgrades.append(
            KernelUpgrade(
                str(row.get("host_id")), str(row.get("name") or ""), version, kernel, target, reason, due
            )
        )
    return upgrades


@dataclass(frozen=True)
class UpgradeFollowUp:
    """A sensor upgrade the previous cycle handed to the roll-out, as this cycle finds the host."""

    host_id: str
    name: str
    kernel: str
    upgrade_to: str | None
    status: Literal["resolved", "open"]
    reason: str
    sensor_version: str | None = None
    final_state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The follow-up as the cycle's evidence records it."""
        return asdict(self)


def follow_up_upgrades(
    handed_off: Iterable[Mapping[str, Any]], hosts: Iterable[Mapping[str, Any]]
) -> list[UpgradeFollowUp]:
    """Whether each upgrade the previous cycle handed off (:meth:`KernelUpgrade.to_dict`) is resolved in this
    cycle's evidence ``hosts``: resolved when the host's sensor is at ``upgrade_to`` or newer (when one was
    named) and this cycle patched it with the whole plan (its kernel not held again); open otherwise, with
    why. A host this cycle did not see stays open."""
    rows = {str(row.get("host_id")): row for row in hosts}
    found = []
    for upgrade in handed_off:
        host_id = str(upgrade.get("host_id"))
        base = UpgradeFollowUp(
            host_id=host_id,
            name=str(upgrade.get("name") or ""),
            kernel=str(upgrade.get("kernel") or ""),
            upgrade_to=upgrade.get("upgrade_to"),
            status="open",
            reason="",
        )
        row = rows.get(host_id)
        if row is None:
            found.append(replace(base, reason="the host is not in this cycle's inventory"))
            continue
        version = str(row.get("falcon_sensor_version") or "") or None
        state = str(row.get("final_state") or "") or None
        seen = replace(base, sensor_version=version, final_state=state)
        target = base.upgrade_to
        if version is None:
            found.append(replace(seen, reason="this cycle found no Falcon sensor version on the host"))
        elif target and version_key(version) < version_key(str(target)):
            found.append(replace(seen, reason=f"its sensor is still {version}, older than {target}"))
        elif state != "patched" or row.get("install_variant") == "no_kernel":
            found.append(
                replace(
                    seen,
                    reason=f"its sensor is {version}, but this cycle left it {state}"
                    + (" without its kernel" if row.get("install_variant") == "no_kernel" else ""),
                )
            )
        else:
            found.append(
                replace(
                    seen,
                    status="resolved",
                    reason=f"sensor upgraded to {version}; this cycle patched the host with its kernel",
                )
            )
    return found


def open_upgrades(handed_off: Iterable[Mapping[str, Any]], now: dt.datetime) -> dict[str, str]:
    """The kernel each handed-off host must be able to run (host id -> release), for the upgrades still due
    (``due_before`` after ``now``): what the roll-out's ``find`` treats as the host's planned kernel."""
    _aware(now, "now")
    due = {}
    for upgrade in handed_off:
        when = dt.datetime.fromisoformat(str(upgrade["due_before"]))
        if when > now and upgrade.get("kernel"):
            due[str(upgrade["host_id"])] = str(upgrade["kernel"])
    return due
