"""Falcon sensor coverage and mode of one tenant, as the portfolio shows them (issue 15).

Two sources say which hosts have a healthy sensor:

* the latest roll-out pack (``falcon-rollout/<day>/runs/<run>/<pack>/rollout.json``): what the roll-out found
  on every host (``needs``), then what the Falcon API showed after its installs (``validation``). It alone
  judges the tenant's version policy and validates groups and policies;
* the latest cycle's evidence: the Falcon columns the cycle's inventory matched to each host (device, sensor
  version, reduced-functionality mode), for tenants without a roll-out.

The newer one is authoritative (a tie goes to the roll-out, which checks more); a roll-out pack that lists
no host cannot be, whatever its day. The mode (Detection or Prevention, per environment) comes from the
roll-out pack's ``phases.phase`` (the phase the tenant is in after the run; null: Detection everywhere) and
the tenant file's ``falcon.rollout.prevention_phases``: that phase and the ones before it moved their
environments to Prevention. Otherwise the mode is reported unknown, never assumed Detection: a pack without
a ``phases`` section was written before the roll-out recorded phases (settings may have been moved by a run
before it, or outside Patchcycle); ``phases: null`` means the tenant declares no phases, so the roll-out
does not manage its prevention policies; a section without ``phase`` means the run could not decide it.

Pure: plain records in (the tenant file's Falcon policy, the pack and evidence documents), columns out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from patchcycle.config.policies import FalconPolicy
from patchcycle.domain.falcon_rollout import host_platform, version_floor, version_key

SENSOR_COLUMNS: tuple[str, ...] = (
    "sensor_source",
    "sensor_as_of",
    "sensor_hosts",
    "sensor_healthy",
    "sensor_coverage",
    "sensor_coverage_by_cloud",
    "sensor_missing",
    "sensor_rfm",
    "sensor_below_policy",
    "sensor_failed_validation",
    "falcon_phase",
    "falcon_mode",
    "rollout_day",
    "rollout_outcome",
    "sensor_note",
)
"""The portfolio's sensor columns: where the coverage comes from (``falcon_rollout`` or ``cycle``) and the
date of that pack, hosts that can carry a sensor and how many have a healthy one (and the share, overall
and per cloud), hosts without a sensor, in reduced-functionality mode, below the version policy, failing
validation; the last Detection-to-Prevention phase applied and each environment's mode; the day and outcome
of the latest roll-out pack; and why anything is unknown."""

ROLLOUT_SOURCE = "falcon_rollout"
CYCLE_SOURCE = "cycle"
DETECTION, PREVENTION = "Detection", "Prevention"

ROLLOUT_REPORT = re.compile(
    r"^falcon-rollout/(?P<day>\d{4}-\d{2}-\d{2})/runs/(?P<run>[^/]+)/(?P<pack>pack(?:-try(?P<try>\d+))?)"
    r"/rollout\.json$"
)
"""The key of a roll-out pack's report (a retry's pack is ``pack-try<n>``)."""

SensorState = Literal["healthy", "missing", "rfm", "below_policy", "failing"]
"""One host as the coverage counts it: a healthy sensor; none; one in reduced-functionality mode; one
older than the version policy; or one that is there and current but failed validation (group, policies)."""


@dataclass(frozen=True)
class RolloutPack:
    """A roll-out pack's report and where it was read."""

    key: str
    day: str
    document: Mapping[str, Any]


def latest_rollout_pack(keys: Iterable[str], read: Callable[[str], Mapping[str, Any]]) -> RolloutPack | None:
    """The latest roll-out pack among an evidence store's ``keys``; ``read`` reads one ``rollout.json``.

    Newest is the latest day, then within it the latest ``run.finished_at`` (run ids of different run
    types do not sort by time), then the later retry. Only that day's reports are read. None before the
    tenant's first roll-out.
    """
    by_day: dict[str, list[tuple[str, int]]] = {}
    for key in keys:
        match = ROLLOUT_REPORT.match(key)
        if match:
            by_day.setdefault(match["day"], []).append((key, int(match["try"] or 1)))
    if not by_day:
        return None
    day = max(by_day)
    packs = [(RolloutPack(key, day, read(key)), attempt) for key, attempt in by_day[day]]
    latest, _ = max(
        packs, key=lambda p: (str((p[0].document.get("run") or {}).get("finished_at") or ""), p[1], p[0].key)
    )
    return latest


@dataclass(frozen=True)
class HostSensor:
    """One host that can carry a sensor, as the coverage counts it."""

    cloud: str
    state: SensorState
    failed_validation: bool = False


# --- from a roll-out pack ------------------------------------------------------------------------------


def rollout_host(need: Mapping[str, Any], check: Mapping[str, Any] | None) -> HostSensor | None:
    """A host as the roll-out left it: ``need`` is what it found (``needs[]``), ``check`` the host's
    validation after its installs (``validation.validations[]``; None when it was not validated). None for
    a host that takes no sensor (``skip``).

    A passed validation is a healthy sensor. Otherwise the validation's own facts decide where they can: no
    device record is no sensor; an upgrade that reached its target version but failed is ``failing``. The
    rest keep the state the roll-out found (an install not done is still no sensor, an RFM sensor not fixed
    is still in RFM). A host found ``ok`` and not validated (the run ended before) counts healthy.
    """
    action = str(need.get("action"))
    if action == "skip":
        return None
    cloud = str(need.get("cloud") or "")
    failed = check is not None
    if check is not None:
        if check.get("passed"):
            return HostSensor(cloud, "healthy")
        if not check.get("device_id"):
            return HostSensor(cloud, "missing", failed)
    state: SensorState
    if action == "install":
        state = "failing" if failed else "missing"
    elif action == "rfm":
        state = "rfm"
    elif action == "upgrade":
        now = str((check or {}).get("sensor_version") or "")
        target = str(need.get("target_version") or "")
        upgraded = bool(now and target) and version_key(now) >= version_key(target)
        state = "failing" if upgraded else "below_policy"
    else:
        state = "failing" if failed else "healthy"
    return HostSensor(cloud, state, failed)


def rollout_hosts(document: Mapping[str, Any]) -> list[HostSensor]:
    """Every host of a roll-out pack that can carry a sensor, as the run left it."""
    validations = (document.get("validation") or {}).get("validations") or []
    checks = {str(v.get("host_id")): v for v in validations}
    hosts = (rollout_host(n, checks.get(str(n.get("host_id")))) for n in document.get("needs") or [])
    return [h for h in hosts if h is not None]


def _rollout_notes(pack: RolloutPack) -> list[str]:
    doc = pack.document
    notes: list[str] = []
    failed = [str(s.get("scope")) for s in doc.get("scopes") or [] if s.get("status") == "failed"]
    if failed:
        notes.append(f"scopes the roll-out of {pack.day} could not read are not counted: {', '.join(failed)}")
    if doc.get("needs") and not (doc.get("validation") or {}).get("validations"):
        notes.append(f"the roll-out of {pack.day} recorded no validation: hosts are counted as it found them")
    return notes


# --- from a cycle's evidence ---------------------------------------------------------------------------


def cycle_host(record: Mapping[str, Any], minimum: str | None) -> HostSensor | None:
    """A host of a cycle's evidence (its Falcon columns); None for one that takes no sensor (RDS, a platform
    neither Linux nor Windows). ``minimum`` is the version floor to judge by (None: not judged)."""
    if host_platform(record, None) is None:
        return None
    cloud = str(record.get("cloud") or "")
    if not record.get("falcon_device_id"):
        return HostSensor(cloud, "missing")
    if record.get("falcon_rfm"):
        return HostSensor(cloud, "rfm")
    version = str(record.get("falcon_sensor_version") or "")
    if minimum is not None and (not version or version_key(version) < version_key(minimum)):
        return HostSensor(cloud, "below_policy")
    return HostSensor(cloud, "healthy")


def cycle_floor(falcon: FalconPolicy) -> tuple[str | None, str]:
    """The version floor a cycle's evidence can be judged by, or None and why not. The evidence carries no
    sensor-update build list, so only a policy of ``minimum_version`` alone applies."""
    policy = falcon.rollout.sensor_version if falcon.rollout else None
    if policy is None:
        return None, "no version policy (the tenant file declares no falcon.rollout)"
    if policy.max_versions_behind is not None:
        return None, "the version policy's N-x needs Falcon's build list, which the cycle evidence lacks"
    return version_floor(policy, [], "linux").version, ""


def _cycle_unusable(evidence: Mapping[str, Any]) -> str | None:
    """Why a cycle's evidence cannot give coverage, or None when it can."""
    date = (evidence.get("cycle") or {}).get("cycle_date")
    falcon = [s for s in evidence.get("scopes") or [] if s.get("cloud") == "falcon"]
    if any(s.get("status") == "failed" for s in falcon):
        return f"the cycle of {date} could not read Falcon"
    hosts = evidence.get("hosts") or []
    if not hosts:
        return f"the cycle of {date} lists no host"
    if not any("falcon_device_id" in h for h in hosts):
        return f"the cycle evidence of {date} has no Falcon columns"
    return None


# --- the mode -------------------------------------------------------------------------------------------


def prevention_modes(
    falcon: FalconPolicy, environments: Sequence[str], pack: RolloutPack | None
) -> tuple[str | None, dict[str, str] | None, str | None]:
    """The last phase applied, each environment's mode (``Prevention (<phase>)`` or ``Detection``), and why
    the mode is unknown (then the modes are None)."""
    if pack is None:
        return None, None, "mode unknown: no roll-out pack records it"
    if "phases" not in pack.document:
        return (
            None,
            None,
            f"mode unknown: the roll-out pack of {pack.day} records no phases (written before phases were "
            "recorded); not assumed to be Detection",
        )
    phases = pack.document["phases"]
    if not isinstance(phases, Mapping):
        return (
            None,
            None,
            f"mode unknown: the roll-out of {pack.day} manages no prevention policy (the tenant file "
            "declared no prevention_phases)",
        )
    if "phase" not in phases:
        problems = [str(p) for p in phases.get("problems") or []]
        return (
            None,
            None,
            f"mode unknown: the roll-out pack of {pack.day} records no phase"
            + (f" ({problems[0]})" if problems else ""),
        )
    current = phases["phase"]
    if current is None:
        return None, {str(env): DETECTION for env in environments}, None
    declared = list(falcon.rollout.prevention_phases) if falcon.rollout else []
    names = [phase.name for phase in declared]
    if current not in names:
        return (
            str(current),
            None,
            f"mode unknown: phase {current!r} of the roll-out pack of {pack.day} is not in the tenant file's "
            f"prevention_phases ({', '.join(names) or 'none'})",
        )
    moved = {
        str(env): phase.name for phase in declared[: names.index(current) + 1] for env in phase.environments
    }
    modes = {
        str(env): f"{PREVENTION} ({moved[str(env)]})" if str(env) in moved else DETECTION
        for env in environments
    }
    return str(current), modes, None


# --- the columns ----------------------------------------------------------------------------------------


def _counts(hosts: Sequence[HostSensor]) -> dict[str, Any]:
    states = Counter(h.state for h in hosts)
    clouds: dict[str, list[int]] = {}
    for h in hosts:
        tally = clouds.setdefault(h.cloud, [0, 0])
        tally[0] += h.state == "healthy"
        tally[1] += 1
    return {
        "sensor_hosts": len(hosts),
        "sensor_healthy": states["healthy"],
        "sensor_coverage": round(states["healthy"] / len(hosts), 4) if hosts else None,
        "sensor_coverage_by_cloud": "; ".join(f"{c} {ok}/{n}" for c, (ok, n) in sorted(clouds.items())),
        "sensor_missing": states["missing"],
        "sensor_rfm": states["rfm"],
        "sensor_below_policy": states["below_policy"],
        "sensor_failed_validation": sum(1 for h in hosts if h.failed_validation),
    }


def empty_sensor_columns(note: str | None = None) -> dict[str, Any]:
    """The sensor columns of a tenant nothing could be said about, with why."""
    return {column: None for column in SENSOR_COLUMNS} | {"sensor_note": note}


def sensor_columns(
    falcon: FalconPolicy | None,
    environments: Sequence[str],
    rollout: RolloutPack | None,
    evidence: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A tenant's sensor columns (:data:`SENSOR_COLUMNS`) from its Falcon policy (the tenant file's
    ``falcon``), its environments in order, its latest roll-out pack and its latest cycle's evidence."""
    if falcon is None:
        return empty_sensor_columns("no Falcon in the tenant file")
    notes: list[str] = []
    candidates: list[
        tuple[str, int, str]
    ] = []  # (day, preference, source): the newest wins, then the roll-out
    if rollout is not None:
        if rollout.document.get("needs"):
            candidates.append((rollout.day, 1, ROLLOUT_SOURCE))
        else:
            problems = [str(p) for p in rollout.document.get("problems") or []]
            notes.append(
                f"the roll-out pack of {rollout.day} lists no host"
                + (f" ({problems[0]})" if problems else "")
            )
    if evidence is not None:
        why = _cycle_unusable(evidence)
        if why is None:
            candidates.append((str(evidence["cycle"]["cycle_date"]), 0, CYCLE_SOURCE))
        else:
            notes.append(why)
    phase, modes, unknown = prevention_modes(falcon, environments, rollout)
    columns = empty_sensor_columns() | {
        "falcon_phase": phase,
        "falcon_mode": "; ".join(f"{env} {mode}" for env, mode in modes.items()) if modes else None,
        "rollout_day": rollout.day if rollout else None,
        "rollout_outcome": rollout.document.get("outcome") if rollout else None,
    }
    if candidates:
        day, _, source = max(candidates)
        if source == ROLLOUT_SOURCE:
            assert rollout is not None
            hosts = rollout_hosts(rollout.document)
            notes.extend(_rollout_notes(rollout))
            columns |= {"sensor_source": source, "sensor_as_of": day} | _counts(hosts)
        else:
            assert evidence is not None
            floor, why_not = cycle_floor(falcon)
            found = (cycle_host(h, floor) for h in evidence.get("hosts") or [])
            hosts = [h for h in found if h is not None]
            columns |= {"sensor_source": source, "sensor_as_of": day} | _counts(hosts)
            columns["sensor_failed_validation"] = None  # the cycle does not validate through the Falcon API
            if floor is None:
                columns["sensor_below_policy"] = None
                notes.append(f"version policy not judged: {why_not}")
    elif not notes:
        notes.append("no roll-out pack and no cycle evidence yet")
    if unknown:
        notes.append(unknown)
    return columns | {"sensor_note": "; ".join(notes) or None}


def sensor_totals(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The portfolio's sensor totals over the tenants whose coverage is known."""
    known = [r for r in rows if r.get("sensor_hosts") is not None]
    hosts = sum(int(r["sensor_hosts"]) for r in known)
    healthy = sum(int(r["sensor_healthy"]) for r in known)

    def total(key: str) -> int | None:
        values = [int(r[key]) for r in known if r.get(key) is not None]
        return sum(values) if values else None

    return {
        "sensor_tenants": len(known),
        "sensor_hosts": hosts,
        "sensor_healthy": healthy,
        "sensor_coverage": round(healthy / hosts, 4) if hosts else None,
        "sensor_missing": total("sensor_missing"),
        "sensor_rfm": total("sensor_rfm"),
        "sensor_below_policy": total("sensor_below_policy"),
        "sensor_failed_validation": total("sensor_failed_validation"),
    }
