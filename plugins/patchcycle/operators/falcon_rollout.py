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
from patchcycle.operators.base import DailyTaskMixin, EventLog, run_type_name, utcnow
from patchcycle.operators.context import TaskRunContext
from patchcycle.operators.inventory import cloud_errors, inventory_scopes, scope_error
from patchcycle.reports.drift_store import DailyPaths, free_pack, previous_manifest_sha256
from patchcycle.reports.manifest import MANIFEST_NAME, build_manifest, manifest_bytes, manifest_sha256

ROLLOUT_PREFIX = "falcon-rollout/"
REPORT_NAME = "rollout.json"
HOSTS_NAME = "hosts.csv"
NEEDS_RECORD = "needs.json"
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
)
"""The columns of ``hosts.csv``: one row per host the roll-out found."""


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
        for label, collect in inventory_scopes(tenant, cloud):
            try:
                found, calls = collect()
            except errors as exc:
                scopes.append({"cloud": cloud, "scope": label, "status": "failed", "error": scope_error(exc)})
                log.record("falcon.scope_failed", target=label, result="failed", error=scope_error(exc))
                continue
            rows.extend(found)
            scopes.append({"cloud": cloud, "scope": label, "status": "ok", "hosts": len(found), **calls})
    return rows, scopes


class SensorNeedsOperator(RolloutTaskMixin, BaseOperator):
    """What every host of the tenant needs from the roll-out (``records/needs.json``)."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e8f0fe"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Read the fleet and Falcon, classify every host, write the needs; return the counts by action."""
        from patchcycle.hooks.falcon import FalconHook

        rollout = run.rollout
        rows, scopes = read_fleet(self.tenant, log)
        falcon = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        devices = falcon.devices()
        builds = [build for platform in PLATFORMS for build in falcon.sensor_builds(platform)]
        needs = classify_hosts(rows, devices, builds, rollout.sensor_version)
        counts = Counter(need.action for need in needs)
        failed = [s["scope"] for s in scopes if s["status"] == "failed"]
        run.write_record(
            run.paths.file(NEEDS_RECORD),
            {
                "read_at": utcnow().isoformat(),
                "needs": [need.to_dict() for need in needs],
                "scopes": scopes,
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
            "summary": {"hosts": len(host_needs), **{a: counts.get(a, 0) for a in sorted(counts)}},
            "needs": host_needs,
            "scopes": (needs or {}).get("scopes", []),
            "events": events,
            "controls": [c.to_dict() for c in controls],
            "controls_summary": controls_summary(controls),
            "retention": {"days": store.retention_days, "mode": "COMPLIANCE"},
        }
        files = {
            REPORT_NAME: (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode(),
            HOSTS_NAME: hosts_csv(host_needs),
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
