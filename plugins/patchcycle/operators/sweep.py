"""Write the evidence pack of every cycle run that ended without one (marked failed or success by hand,
or stopped with its workers), and page once for it.

Every cycle run writes its own pack in its ``evidence`` task; this is the net under it. A run is swept
only when Airflow says it has ended (``success`` or ``failed``) and its folder in the evidence store
still has no pack: the pack is then written from what the run recorded, with the run's own facts (its
run record), stages the run stopped in judged conservatively (:func:`patchcycle.domain.sweep.
interrupted_stage`), and the reason it ended without evidence. The rollback DAG then works from the
backups the stages recorded, as for any finished run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import cached_property
from typing import Any

from patchcycle.domain.incidents import incident_key
from patchcycle.domain.sweep import RunFolder, interrupted_stage, runs_without_pack
from patchcycle.operators.base import CycleContext, EventLog
from patchcycle.operators.evidence import WriteEvidencePackOperator
from patchcycle.operators.plan import PLAN_INFO_RECORD
from patchcycle.reports.store import CyclePaths

ENDED_STATES = ("success", "failed")
"""Airflow's terminal DAG run states: a run in either with no pack ended without its evidence task."""
INCIDENT_STEP = "ended-without-evidence"


@dataclasses.dataclass(frozen=True)
class EndedRun:
    """The facts of a cycle run that ended, as its run record kept them (the shape the pack reads from
    Airflow's DagRun for a run writing its own pack)."""

    dag_id: str
    run_id: str
    run_type: str
    triggering_user_name: str | None
    start_date: dt.datetime | None
    run_after: dt.datetime | None
    state: str

    @classmethod
    def from_record(cls, record: dict[str, Any], state: str) -> EndedRun:
        """The run as its run record kept it, in its ended ``state``."""

        def when(value: Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None

        return cls(
            dag_id=record["dag_id"],
            run_id=record["run_id"],
            run_type=record["run_type"],
            triggering_user_name=record.get("triggered_by"),
            start_date=when(record.get("start_date")),
            run_after=when(record.get("run_after")),
            state=state,
        )


class SweptRunContext(CycleContext):
    """A run that ended without its evidence, as the sweep writes its pack: its facts from the records it
    left (its plan info, or an empty plan's when its plan never finished), its stages as far as they got."""

    def __init__(
        self, airflow: Any, *, folder: RunFolder, ended: EndedRun, sweeper: str, **kwargs: Any
    ) -> None:
        super().__init__(airflow, **kwargs)
        self.folder = folder
        self.ended = ended
        self.ended_reason = (
            f"the run ended {ended.state} (set by hand, or its tasks were stopped) before its evidence "
            f"task wrote a pack; this pack was written afterwards by the evidence sweep "
            f"({sweeper}) from what the run recorded"
        )

    @cached_property
    def info(self) -> dict[str, Any]:
        """The swept run's plan facts; an empty plan's, stored once, when its plan never finished."""
        folder = self.folder
        key = f"cycles/{folder.cycle_date}/runs/{folder.segment}/{PLAN_INFO_RECORD}"
        info = self.read_record(key, required=False)
        if info is not None:
            return dict(info)
        return self.unplanned_info(dt.date.fromisoformat(folder.cycle_date))

    @property
    def halted_reason(self) -> str | None:
        """Why the swept run stopped short: its plan's unplanned reason, if any, and that it ended without
        its evidence."""
        return "; ".join(r for r in (self.info.get("unplanned"), self.ended_reason) if r)

    def stage_record(self, environment: str) -> dict[str, Any] | None:
        """A finished stage's record; a stage the run stopped in (backups taken, no verified record) as an
        interrupted stage, its hosts judged conservatively."""
        paths = self.paths
        finished = self.read_record(paths.stage_file(environment, "stage.json"), required=False)
        backups = self.read_record(paths.stage_file(environment, "backup-status.json"), required=False)
        if finished is not None or backups is None:
            return super().stage_record(environment)
        return interrupted_stage(
            environment,
            self.stage_hosts(environment),
            backups,
            f"the run ended {self.ended.state} during this stage",
            canary=super().stage_record(environment),
        )


class EvidenceSweepOperator(WriteEvidencePackOperator):
    """Find the tenant's cycle runs that ended without an evidence pack and write one for each."""

    after_the_run = True

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Write a pack, and page once, for each run Airflow says has ended (``success`` or ``failed``)
        without one; return the runs swept, those still running, and those whose state Airflow could not
        give."""
        ti = cycle.ti
        swept, still_running, unknown = [], [], []
        for folder in runs_without_pack(cycle.store.keys("cycles/")):
            record = cycle.store.get_json(str(folder.run_record_key))  # its latest attempt's
            try:
                state = str(ti.get_dagrun_state(dag_id=record["dag_id"], run_id=record["run_id"]))
            except Exception as exc:  # noqa: BLE001 - a run Airflow cannot name is left for a person
                # Never written on a guess: a pack written beside a run still going would take the name
                # its own evidence task writes to. A run deleted from Airflow stays listed here each time.
                unknown.append({"run_id": record["run_id"], "error": f"{type(exc).__name__}: {exc}"[:300]})
                self.log.warning(
                    "run %s: Airflow cannot say its state (%s); not swept", record["run_id"], exc
                )
                continue
            state = state.rsplit(".", 1)[-1].lower()
            if state not in ENDED_STATES:
                still_running.append(record["run_id"])
                continue
            # Checked again now that the run has ended: its evidence task may have written the pack
            # between the listing and the question.
            if cycle.store.keys(CyclePaths(folder.cycle_date, record["run_id"]).pack("")):
                continue
            swept.append(self._sweep(cycle, folder, EndedRun.from_record(record, state)))
        for item in swept:
            self.log.warning(
                "run %s ended %s without an evidence pack: written at %s (outcome %s)",
                item["run_id"],
                item["state"],
                item["pack_url"],
                item["outcome"],
            )
        return {"swept": swept, "still_running": still_running, "unknown": unknown}

    def _sweep(self, cycle: CycleContext, folder: RunFolder, ended: EndedRun) -> dict[str, Any]:
        paths = CyclePaths(folder.cycle_date, ended.run_id)
        swept = SweptRunContext(
            {
                **{k: cycle.airflow[k] for k in ("ti", "task_instance") if k in cycle.airflow},
                "run_id": ended.run_id,
                "dag_run": ended,
                "params": {},
                "logical_date": None,
            },
            folder=folder,
            ended=ended,
            sweeper=self.dag_id,
            tenant=cycle.tenant,
            store=cycle.store,
            actor=cycle.actor,
            after_the_run=True,
        )
        # The sweep's finding is part of the run's evidence: flushed into the run's own event log first,
        # so the pack carries it and the change-management controls count it.
        found = EventLog(cycle.actor)
        found.record(
            "run.ended_without_evidence",
            target=self.tenant_id,
            result=ended.state,
            run_id=ended.run_id,
            dag_id=ended.dag_id,
        )
        cycle.store.put_json(paths.events("evidence-sweep", cycle.attempt), found.events)
        log = EventLog(cycle.actor)
        try:
            result = super().run(swept, log)
        finally:
            cycle.store.put_json(paths.events("evidence-sweep.pack", cycle.attempt), log.events)
        self._page(swept, result["pack_url"])
        return {
            "run_id": ended.run_id,
            "state": ended.state,
            "outcome": result["outcome"],
            "pack_url": result["pack_url"],
        }

    def actor(self, context: Any) -> str:
        """The sweep task itself, ``airflow:<dag>/<task>``, without a triggering user."""
        return f"airflow:{self.dag_id}/{self.task_id}"

    def _page(self, swept: SweptRunContext, pack_url: str) -> None:
        """One incident per run that ended without evidence (the same key on every sweep)."""
        ended, folder, plan_hash = swept.ended, swept.folder, swept.info["plan_hash"]
        conn_id = self.tenant.pagerduty_connection_id()
        if conn_id is None:
            return
        from patchcycle.domain.incidents import incident_details
        from patchcycle.hooks.pagerduty import PagerDutyEventsHook

        cycle = dt.date.fromisoformat(folder.cycle_date)
        step = f"{INCIDENT_STEP}-{folder.segment}"
        PagerDutyEventsHook(pagerduty_conn_id=conn_id).trigger(
            dedup_key=incident_key(self.tenant_id, cycle, step),
            summary=(
                f"{self.tenant.display_name} {cycle}: run {ended.run_id} ended {ended.state} before "
                f"writing its evidence; the sweep wrote it"
            )[:1024],
            source=f"patchcycle/{self.tenant_id}",
            severity="error",
            component=INCIDENT_STEP,
            group=self.tenant_id,
            custom_details=incident_details(
                tenant_id=self.tenant_id,
                cycle_date=cycle,
                stage=INCIDENT_STEP,
                reason=swept.ended_reason,
                failing_hosts=[],
                dag_run_id=ended.run_id,
                plan_hash=plan_hash,
                runbook_url=self.tenant.incident_runbook_url,
            )
            | {"evidence": pack_url},
            links=[{"href": self.tenant.incident_runbook_url, "text": "Runbook"}]
            if self.tenant.incident_runbook_url
            else None,
        )

    def flush_events(self, cycle: CycleContext, log: EventLog, phase: str) -> None:
        """Each swept run's events went into that run's own log; the sweep's run has no cycle of its own."""
