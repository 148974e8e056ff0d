"""RDS DB instances as fleetsim emulates them: OS updates offered as pending maintenance actions, DB
snapshots that take time and can fail, and the rename-then-restore that rolls an instance back.

moto keeps the DB instances and snapshots; fleetsim adds what moto lacks, on moto's RDS response class
and models:

- ``DescribePendingMaintenanceActions`` and ``ApplyPendingMaintenanceAction``. Each fleet DB instance
  (a :class:`~fleetsim.fleet.SimHost` of kind ``db_instance``, keyed by its ``DBInstanceArn``) whose OS
  update is pending has one ``system-update`` action. Applying it ``immediate`` keeps the instance
  ``upgrading`` for ``timings.rds_os_update_seconds``; then it is ``available`` again and the update is
  installed (ground-truth action ``rds.os_update``, result ``installed``), or, with the
  ``install_fails`` fault, not: it stays pending and the host records it ``failed``.
- DB snapshots of fleet instances are ``creating`` for ``timings.rds_snapshot_seconds`` (or the host's
  ``backup_slow_seconds``), then ``available`` (``failed`` with ``backup_fails``); each holds the host
  as it was when the snapshot was taken (ground-truth action ``rds.create_db_snapshot``).
- ``DescribeDBSnapshots`` pages with ``MaxRecords``/``Marker`` (moto answers everything at once).
- Renaming a fleet instance (``ModifyDBInstance`` with ``NewDBInstanceIdentifier``) takes it away from
  its ARN; ``RestoreDBInstanceFromDBSnapshot`` under the original name brings the ARN back,
  ``creating`` for ``timings.rds_restore_seconds``, then ``available`` with the host put back to what
  the snapshot holds (:meth:`~fleetsim.fleet.FleetState.restore`, ground-truth action
  ``rds.restore_db_instance_from_db_snapshot``).

Every lifecycle is timestamps on moto's objects, revealed lazily by the status properties; the effects
on the hosts are applied once, whenever the fleet next advances (any read of the fleet advances it).
Refused as RDS refuses them: an unknown resource (``ResourceNotFoundFault``), an action that is not
pending or a bad parameter (``InvalidParameterValue``), an instance that is not ``available``
(``InvalidDBInstanceState``), a snapshot that is not ``available`` (``InvalidDBSnapshotState``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.rds.models import DBInstance, DBSnapshot, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from fleetsim.fleet import BackupState, FleetState, SimHost

OS_UPDATE_ACTION = "system-update"
OPT_IN_TYPES = ("immediate", "next-maintenance", "undo-opt-in")
MIN_RECORDS, MAX_RECORDS = 20, 100  # MaxRecords' documented bounds (and default: the maximum)
# When RDS applies a pending OS update by itself: in the first maintenance window after the first date,
# at the latest on the second (days after the scenario's last scan).
AUTO_APPLIED_AFTER_DAYS = 21
FORCED_APPLY_DAYS = 42
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Manual DB snapshots per account and region (moto's MOTO_RDS_SNAPSHOT_LIMIT when set). RDS's default quota
# is 100 and raised on request; a fleet of thousands of instances, each backed up every cycle, needs more.
MANUAL_SNAPSHOT_QUOTA = 100_000


class ResourceNotFoundFault(ServiceException):
    code = "ResourceNotFoundFault"


class InvalidParameterValue(ServiceException):
    code = "InvalidParameterValue"


class InvalidDBInstanceState(ServiceException):
    code = "InvalidDBInstanceState"


class InvalidDBSnapshotState(ServiceException):
    code = "InvalidDBSnapshotState"


@dataclass
class Maintenance:
    """One fleet DB instance's OS update (the ``system-update`` Description) and its opt-in, if any."""

    description: str | None
    opt_in: str | None = None  # OptInStatus: immediate | next-maintenance | undo-opt-in
    current_apply_at: float | None = None  # CurrentApplyDate


@dataclass
class Upgrade:
    """An OS update applied ``immediate``: the instance is ``upgrading`` until ``ends_at``."""

    host: SimHost
    description: str
    started_at: float
    ends_at: float
    fails: bool


@dataclass
class Restore:
    """An instance restored from a DB snapshot: ``creating`` until ``ends_at``."""

    host: SimHost | None  # None: the restored identifier is no fleet DB instance's
    backup: BackupState | None  # None: a snapshot fleetsim captured nothing for
    snapshot_id: str
    renamed_to: str | None
    ends_at: float


@dataclass
class _Registry:
    maintenance: dict[str, Maintenance] = field(default_factory=dict)  # by DBInstanceArn
    upgrades: list[Upgrade] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # DBInstanceArn -> the name it was renamed to
    # The latest automated snapshot of each instance, by (account, region, identifier).
    automated: dict[tuple[str, str, str], DBSnapshot] = field(default_factory=dict)


_STATE: dict[str, Any] = {}


def _fleet() -> FleetState:
    return _STATE["fleet"]


def _registry() -> _Registry:
    return _STATE["registry"]


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _iso(seconds: float) -> str:
    return _ts(seconds).isoformat()


# -- the lifecycles on moto's models ----------------------------------------------------------------
def _db_status_get(db: DBInstance) -> str:
    """``upgrading`` / ``creating`` while fleetsim's lifecycle runs, else what moto set."""
    busy = db.__dict__.get("_fleetsim_busy")
    state = _STATE.get("fleet")
    if busy is not None and state is not None and state.clock() < busy[1]:
        return busy[0]
    return db.__dict__.get("_fleetsim_status", "available")


def _db_status_set(db: DBInstance, value: str) -> None:
    db.__dict__["_fleetsim_status"] = value


def _snapshot_status_get(snapshot: DBSnapshot) -> str:
    until = snapshot.__dict__.get("_fleetsim_until")
    state = _STATE.get("fleet")
    if until is not None and state is not None and state.clock() < until:
        return "creating"
    return snapshot.__dict__.get("_fleetsim_state", "available")


def _snapshot_status_set(snapshot: DBSnapshot, value: str) -> None:
    snapshot.__dict__["_fleetsim_state"] = value


def _snapshot_progress(snapshot: DBSnapshot) -> int:
    """PercentProgress: grows while ``creating``, 100 once ``available``, 0 when ``failed``."""
    status = snapshot.status
    if status == "creating":
        started, until = snapshot.__dict__["_fleetsim_started"], snapshot.__dict__["_fleetsim_until"]
        return min(99, int(100 * (_fleet().clock() - started) / max(until - started, 1e-9)))
    return 0 if status == "failed" else 100


def _fleet_host(state: FleetState, db: DBInstance | None) -> SimHost | None:
    """The fleet DB instance a moto instance is (by its ARN), or None."""
    if db is None:
        return None
    return state.host(db.account_id, db.region, db.db_instance_arn, kind="db_instance")


def _db_of(host: SimHost) -> DBInstance | None:
    """The moto instance under a fleet DB instance's name (None while it is renamed away)."""
    return rds_backends[host.account][host.region].databases.get(host.name)


def _db_by_arn(backend: RDSBackend, arn: str) -> DBInstance | None:
    parts = (arn or "").split(":")
    if len(parts) != 7 or parts[:3] != ["arn", "aws", "rds"] or parts[5] != "db":
        return None
    if (parts[3], parts[4]) != (backend.region_name, backend.account_id):
        return None
    return backend.databases.get(parts[6])


def _pending(host: SimHost, maintenance: Maintenance | None) -> bool:
    """Whether the host's OS update is still to be applied (never installed, or failed)."""
    if maintenance is None or not maintenance.description:
        return False
    return maintenance.description in host.missing | host.failed


def _next_window(window: str, now: float) -> float:
    """The start of the next weekly maintenance window (``wed:06:38-wed:07:08``) after ``now``."""
    day, hour, minute = window.split("-")[0].split(":")
    at = _ts(now).replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
    at += dt.timedelta(days=(_WEEKDAYS.index(day.lower()) - at.weekday()) % 7)
    if at.timestamp() <= now:
        at += dt.timedelta(days=7)
    return at.timestamp()


def _detail(state: FleetState, maintenance: Maintenance) -> dict[str, Any]:
    """The ``system-update`` PendingMaintenanceAction of one instance."""
    day = dt.datetime.combine(state.scenario.last_scan.date(), dt.time(), dt.UTC)
    detail: dict[str, Any] = {
        "Action": OS_UPDATE_ACTION,
        "Description": maintenance.description,
        "AutoAppliedAfterDate": day + dt.timedelta(days=AUTO_APPLIED_AFTER_DAYS),
        "ForcedApplyDate": day + dt.timedelta(days=FORCED_APPLY_DAYS),
    }
    if maintenance.opt_in:
        detail["OptInStatus"] = maintenance.opt_in
    if maintenance.current_apply_at is not None:
        detail["CurrentApplyDate"] = _ts(maintenance.current_apply_at)
    return detail


# -- applying the lifecycles' effects ---------------------------------------------------------------
def _finish_upgrade(state: FleetState, upgrade: Upgrade) -> None:
    host, description = upgrade.host, upgrade.description
    maintenance = _registry().maintenance[host.host_id]
    maintenance.opt_in = maintenance.current_apply_at = None
    host.missing.discard(description)
    if upgrade.fails:
        host.failed.add(description)  # still pending in RDS: not installed
        result = "failed"
    else:
        host.failed.discard(description)
        host.installed.add(description)
        result = "installed"
    host.actions.append(
        {
            "at": _iso(upgrade.ends_at),
            "action": "rds.os_update",
            "result": result,
            "description": description,
            "started_at": _iso(upgrade.started_at),
        }
    )


def _finish_restore(state: FleetState, restore: Restore) -> None:
    host = restore.host
    if host is None:
        return
    maintenance = _registry().maintenance.get(host.host_id)
    if maintenance is not None:
        maintenance.opt_in = maintenance.current_apply_at = None
    if restore.backup is None:
        # A snapshot fleetsim captured nothing for (another, non-fleet instance's; a copy): RDS restores
        # it, but what the host then runs is unknown to fleetsim, so its state is left as it was.
        host.actions.append(
            {
                "at": _iso(restore.ends_at),
                "action": "rds.restore_db_instance_from_db_snapshot",
                "result": "unknown_snapshot",
                "snapshot_id": restore.snapshot_id,
                "renamed_to": restore.renamed_to,
            }
        )
        return
    state.restore(
        host,
        restore.backup,
        action="rds.restore_db_instance_from_db_snapshot",
        snapshot_id=restore.snapshot_id,
        renamed_to=restore.renamed_to,
    )
    host.agent_status = "available"  # a restored instance runs, whatever the snapshot's source did


def _apply_due(now: float) -> None:
    """Apply the OS updates and restores that have finished by ``now`` (once each)."""
    state, registry = _fleet(), _registry()
    due_upgrades = [u for u in registry.upgrades if u.ends_at <= now]
    registry.upgrades = [u for u in registry.upgrades if u.ends_at > now]
    for upgrade in sorted(due_upgrades, key=lambda u: u.ends_at):
        _finish_upgrade(state, upgrade)
    due_restores = [r for r in registry.restores if r.ends_at <= now]
    registry.restores = [r for r in registry.restores if r.ends_at > now]
    for restore in sorted(due_restores, key=lambda r: r.ends_at):
        _finish_restore(state, restore)


# -- moto backend methods, wrapped ------------------------------------------------------------------
_original_create_db_snapshot = RDSBackend.create_db_snapshot
_original_start_db_instance = RDSBackend.start_db_instance
_original_stop_db_instance = RDSBackend.stop_db_instance


def _create_db_snapshot(
    self: RDSBackend,
    db_instance_identifier: str,
    db_snapshot_identifier: str,
    snapshot_type: str = "manual",
    **kwargs: Any,
) -> DBSnapshot:
    """DB snapshots of fleet instances: ``creating`` for a while, then ``available`` (or ``failed``).

    Automated snapshots (moto takes one whenever an instance is created) are available at once; their
    identifiers get a suffix when two fall in the same minute, where moto would refuse the second.
    """
    state: FleetState | None = _STATE.get("fleet")
    if state is None:
        return _original_create_db_snapshot(
            self, db_instance_identifier, db_snapshot_identifier, snapshot_type, **kwargs
        )
    with state.lock:
        if snapshot_type == "automated":
            base, n = db_snapshot_identifier, 2
            while db_snapshot_identifier in self.database_snapshots:
                db_snapshot_identifier, n = f"{base}-{n}", n + 1
            snapshot = _original_create_db_snapshot(
                self, db_instance_identifier, db_snapshot_identifier, snapshot_type, **kwargs
            )
            self.__dict__["_fleetsim_automated"] = self.__dict__.get("_fleetsim_automated", 0) + 1
            key = (self.account_id, self.region_name, db_instance_identifier.lower())
            _registry().automated[key] = snapshot
            return snapshot
        database = self.databases.get(db_instance_identifier)
        host = _fleet_host(state, database)
        if host is not None and database is not None and database.status in ("upgrading", "creating"):
            raise InvalidDBInstanceState(
                f"Cannot create a snapshot because the database instance {database.db_instance_identifier} "
                f"is not currently in the available state ({database.status})."
            )
        snapshot = _original_create_db_snapshot(
            self, db_instance_identifier, db_snapshot_identifier, snapshot_type, **kwargs
        )
        if host is None:
            return snapshot
        now = state.clock()
        seconds = (
            host.backup_seconds if host.backup_seconds is not None else state.timings.rds_snapshot_seconds
        )
        final = "failed" if host.backup_fails else "available"
        snapshot.__dict__.update(
            _fleetsim_started=now,
            _fleetsim_until=now + seconds,
            _fleetsim_state=final,
            # What the snapshot holds: a restore from it puts the host back to exactly this.
            _fleetsim_backup=state.backup_state(host),
        )
        host.actions.append(
            {
                "at": _iso(now),
                "action": "rds.create_db_snapshot",
                "snapshot_id": snapshot.db_snapshot_identifier,
                "result": final,
                "ready_at": _iso(now + seconds),
            }
        )
        return snapshot


def _snapshot_quota(self: RDSBackend) -> int:
    """moto counts automated snapshots (one per instance) against the quota; RDS counts manual ones only."""
    manual = int(os.environ.get("MOTO_RDS_SNAPSHOT_LIMIT", MANUAL_SNAPSHOT_QUOTA))
    return manual + self.__dict__.get("_fleetsim_automated", 0)


def _start_db_instance(self: RDSBackend, db_instance_identifier: str) -> DBInstance:
    """StartDBInstance, the fleet host's state following the instance's."""
    db = _original_start_db_instance(self, db_instance_identifier)
    state: FleetState | None = _STATE.get("fleet")
    host = _fleet_host(state, db) if state is not None else None
    if host is not None:
        host.agent_status = "available"
    return db


def _stop_db_instance(
    self: RDSBackend, db_instance_identifier: str, db_snapshot_identifier: str | None = None
) -> DBInstance:
    """StopDBInstance, the fleet host's state following the instance's."""
    db = _original_stop_db_instance(self, db_instance_identifier, db_snapshot_identifier)
    state: FleetState | None = _STATE.get("fleet")
    host = _fleet_host(state, db) if state is not None else None
    if host is not None:
        host.agent_status = "stopped"
    return db


# -- the RDS API: actions moto lacks, and moto's, wrapped -------------------------------------------
_original_describe_db_instances = RDSResponse.describe_db_instances
_original_describe_db_snapshots = RDSResponse.describe_db_snapshots
_original_modify_db_instance = RDSResponse.modify_db_instance
_original_restore_db_instance_from_db_snapshot = RDSResponse.restore_db_instance_from_db_snapshot


def _max_records(raw: Any) -> int:
    size = MAX_RECORDS if raw is None else int(raw)
    if not MIN_RECORDS <= size <= MAX_RECORDS:
        raise InvalidParameterValue(
            f"Invalid value {size} for MaxRecords. Must be between {MIN_RECORDS} and {MAX_RECORDS}"
        )
    return size


def _page(items: list[Any], marker: str | None, size: int) -> tuple[list[Any], str | None]:
    try:
        start = int(marker) if marker else 0
    except ValueError as exc:
        raise InvalidParameterValue(f"Invalid marker: {marker}") from exc
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _describe_pending_maintenance_actions(self: RDSResponse) -> ActionResult:
    state, registry = _fleet(), _registry()
    size = _max_records(self.params.get("MaxRecords"))
    resource = self.params.get("ResourceIdentifier")
    with state.lock:
        state.advance()
        if resource and _db_by_arn(self.backend, resource) is None:
            raise ResourceNotFoundFault(f"The specified resource ARN {resource} was not found.")
        hosts = sorted(
            state.hosts_in(self.current_account, self.region, kind="db_instance"), key=lambda h: h.host_id
        )
        if resource:
            hosts = [h for h in hosts if h.host_id == resource]
        for f in self.params.get("Filters") or []:
            name, values = f.get("Name"), {str(v).lower() for v in f.get("Values") or []}
            if name == "db-instance-id":
                hosts = [h for h in hosts if h.name in values or h.host_id.lower() in values]
            elif name == "db-cluster-id":
                hosts = []  # fleetsim emulates no DB clusters
            else:
                raise InvalidParameterValue(f"Unrecognized filter name: {name}")
        listed = []
        for host in hosts:
            db, maintenance = _db_of(host), registry.maintenance.get(host.host_id)
            # A renamed-away instance is not at this ARN; one being restored is not there yet.
            if db is not None and db.status != "creating" and maintenance and _pending(host, maintenance):
                listed.append((host, maintenance))
        chosen, marker = _page(listed, self.params.get("Marker"), size)
        page = [
            {"ResourceIdentifier": host.host_id, "PendingMaintenanceActionDetails": [_detail(state, m)]}
            for host, m in chosen
        ]
        body: dict[str, Any] = {"PendingMaintenanceActions": page}
        if marker:
            body["Marker"] = marker
        return ActionResult(body)


def _apply_pending_maintenance_action(self: RDSResponse) -> ActionResult:
    state, registry = _fleet(), _registry()
    arn = self.params.get("ResourceIdentifier") or ""
    action = self.params.get("ApplyAction")
    opt_in = self.params.get("OptInType")
    with state.lock:
        now = state.advance()
        db = _db_by_arn(self.backend, arn)
        if db is None:
            raise ResourceNotFoundFault(f"The specified resource ARN {arn} was not found.")
        if opt_in not in OPT_IN_TYPES:
            raise InvalidParameterValue(
                f"Invalid value {opt_in} for OptInType. Valid values: {', '.join(OPT_IN_TYPES)}"
            )
        host = _fleet_host(state, db)
        maintenance = registry.maintenance.get(arn) if host is not None else None
        if host is None or action != OS_UPDATE_ACTION or not _pending(host, maintenance):
            raise InvalidParameterValue(
                f"The pending maintenance action {action} is not available for resource {arn}."
            )
        assert maintenance is not None
        if db.status != "available":
            raise InvalidDBInstanceState(
                f"Database instance {db.db_instance_identifier} is not in available state ({db.status})."
            )
        if opt_in == "immediate":
            ends = now + state.timings.rds_os_update_seconds
            maintenance.opt_in, maintenance.current_apply_at = "immediate", now
            db.__dict__["_fleetsim_busy"] = ("upgrading", ends)
            registry.upgrades.append(
                Upgrade(host, str(maintenance.description), now, ends, fails=host.install_fails)
            )
        elif opt_in == "next-maintenance":
            maintenance.opt_in = "next-maintenance"
            maintenance.current_apply_at = _next_window(db.preferred_maintenance_window, now)
        else:
            maintenance.opt_in, maintenance.current_apply_at = "undo-opt-in", None
        return ActionResult(
            {
                "ResourcePendingMaintenanceActions": {
                    "ResourceIdentifier": arn,
                    "PendingMaintenanceActionDetails": [_detail(state, maintenance)],
                }
            }
        )


def _describe_db_instances(self: RDSResponse) -> ActionResult:
    """moto's DescribeDBInstances, once the fleet has advanced (finished updates and restores applied)."""
    _fleet().advance()
    return _original_describe_db_instances(self)


def _describe_db_snapshots(self: RDSResponse) -> ActionResult:
    """moto's DescribeDBSnapshots, paged with ``MaxRecords`` and ``Marker`` as RDS pages it."""
    _fleet().advance()
    size = _max_records(self.params.get("MaxRecords"))
    result = _original_describe_db_snapshots(self)
    snapshots = list(result.result["DBSnapshots"])  # type: ignore[index]
    page, marker = _page(snapshots, self.params.get("Marker"), size)
    body: dict[str, Any] = {"DBSnapshots": page}
    if marker:
        body["Marker"] = marker
    return ActionResult(body)


def _modify_db_instance(self: RDSResponse) -> ActionResult:
    """moto's ModifyDBInstance; renaming a fleet instance takes it off its ARN until it is restored."""
    state, registry = _fleet(), _registry()
    identifier = self.params.get("DBInstanceIdentifier") or ""
    new_identifier = self.params.get("NewDBInstanceIdentifier")
    with state.lock:
        now = state.advance()
        db = self.backend.databases.get(identifier)
        host = _fleet_host(state, db)
        if host is not None and db is not None and new_identifier and db.status != "available":
            raise InvalidDBInstanceState(
                f"Database instance {db.db_instance_identifier} is not in available state ({db.status})."
            )
        result = _original_modify_db_instance(self)
        if host is not None and new_identifier:
            registry.renamed[host.host_id] = new_identifier.lower()
            host.actions.append(
                {
                    "at": _iso(now),
                    "action": "rds.rename_db_instance",
                    "result": "renamed",
                    "renamed_to": new_identifier.lower(),
                }
            )
        return result


def _restore_db_instance_from_db_snapshot(self: RDSResponse) -> ActionResult:
    """moto's restore, refused from a snapshot that is not ``available``; the instance then ``creating``."""
    state, registry = _fleet(), _registry()
    with state.lock:
        now = state.advance()
        snapshot = self.backend.get_db_snapshot(self.params.get("DBSnapshotIdentifier") or "")
        if snapshot.status != "available":
            raise InvalidDBSnapshotState(
                f"Snapshot {snapshot.db_snapshot_identifier} is {snapshot.status}; "
                "only an available DB snapshot can be restored."
            )
        result = _original_restore_db_instance_from_db_snapshot(self)
        db: DBInstance = result.result["DBInstance"]  # type: ignore[index]
        ends = now + state.timings.rds_restore_seconds
        db.__dict__["_fleetsim_busy"] = ("creating", ends)
        backup: BackupState | None = snapshot.__dict__.get("_fleetsim_backup")
        # moto took an automated snapshot of the new instance: it holds what the instance is restored to.
        automated = registry.automated.get((db.account_id, db.region, db.db_instance_identifier))
        if automated is not None and "_fleetsim_backup" not in automated.__dict__ and backup is not None:
            automated.__dict__["_fleetsim_backup"] = backup
        host = _fleet_host(state, db)
        registry.restores.append(
            Restore(
                host=host,
                backup=backup,
                snapshot_id=snapshot.db_snapshot_identifier,
                renamed_to=registry.renamed.pop(host.host_id, None) if host is not None else None,
                ends_at=ends,
            )
        )
        return result


# -- seeding and installing -------------------------------------------------------------------------
def register(state: FleetState, host: SimHost, description: str | None) -> None:
    """Make a seeded DB instance a fleet one: its OS update, and its first automated snapshot holding it."""
    with state.lock:
        registry = _registry()
        registry.maintenance[host.host_id] = Maintenance(description=description)
        automated = registry.automated.get((host.account, host.region, host.name))
        if automated is not None:
            automated.__dict__["_fleetsim_backup"] = state.backup_state(host)


def install(state: FleetState) -> None:
    """Serve fleet DB instances' OS updates, snapshots and restores on moto's RDS over ``state``."""
    _STATE["fleet"] = state
    _STATE["registry"] = _Registry()
    state.on_advance(_apply_due)
    DBInstance.status = property(_db_status_get, _db_status_set)  # type: ignore[assignment]
    DBSnapshot.status = property(_snapshot_status_get, _snapshot_status_set)  # type: ignore[assignment]
    DBSnapshot.percent_progress = property(_snapshot_progress)  # type: ignore[attr-defined]
    RDSBackend.create_db_snapshot = _create_db_snapshot  # type: ignore[method-assign]
    RDSBackend.SNAPSHOT_QUOTA = property(_snapshot_quota)  # type: ignore[assignment,method-assign]
    RDSBackend.start_db_instance = _start_db_instance  # type: ignore[method-assign]
    RDSBackend.stop_db_instance = _stop_db_instance  # type: ignore[method-assign]
    RDSResponse.describe_pending_maintenance_actions = _describe_pending_maintenance_actions  # type: ignore[attr-defined]
    RDSResponse.apply_pending_maintenance_action = _apply_pending_maintenance_action  # type: ignore[attr-defined]
    RDSResponse.describe_db_instances = _describe_db_instances  # type: ignore[method-assign]
    RDSResponse.describe_db_snapshots = _describe_db_snapshots  # type: ignore[method-assign]
    RDSResponse.modify_db_instance = _modify_db_instance  # type: ignore[method-assign]
    RDSResponse.restore_db_instance_from_db_snapshot = _restore_db_instance_from_db_snapshot  # type: ignore[method-assign]
