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
from typing import Any

from patchcycle.domain.incidents import incident_key
from patchcycle.domain.sweep import RunFolder, interrupted_stage, runs_without_pack
from patchcycle.operators.base import EventLog
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


class EvidenceSweepOperator(WriteEvidencePackOperator):
    """Find the tenant's cycle runs that ended without an evidence pack and write one for each."""

    after_the_run = True

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        """Write a pack, and page once, for each run Airflow says has ended (``success`` or ``failed``)
        without one; return the runs swept, those still running, and those whose state Airflow could not
        give."""
        ti = context["ti"]
        swept, still_running, unknown = [], [], []
        for folder in runs_without_pack(self.store.keys("cycles/")):
            record = self.store.get_json(str(folder.run_record_key))  # its latest attempt's
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
            if self.store.keys(CyclePaths(folder.cycle_date, record["run_id"]).pack("")):
                continue
            swept.append(self._sweep(context, folder, EndedRun.from_record(record, state)))
        for item in swept:
            self.log.warning(
                "run %s ended %s without an evidence pack: written at %s (outcome %s)",
                item["run_id"],
                item["state"],
                item["pack_url"],
                item["outcome"],
            )
        return {"swept": swept, "still_running": still_running, "unknown": unknown}

    def _sweep(self, context: Any, folder: RunFolder, ended: EndedRun) -> dict[str, Any]:
        paths = CyclePaths(folder.cycle_date, ended.run_id)
        self._ended = ended
        self._folder = folder
        self._swept_unplanned: dict[str, Any] | None = None
        reason = (
            f"the run ended {ended.state} (set by hand, or its tasks were stopped) before its evidence "
            f"task wrote a pack; this pack was written afterwards by the evidence sweep "
            f"({self.dag_id}) from what the run recorded"
        )
        self._halted = reason
        ended_context = {
            **{k: context[k] for k in ("ti", "task_instance") if k in context},
            "run_id": ended.run_id,
            "dag_run": ended,
            "params": {},
            "logical_date": None,
        }
        # The sweep's finding is part of the run's evidence: flushed into the run's own event log first,
        # so the pack carries it and the change-management controls count it.
        found = EventLog(self.actor(context))
        found.record(
            "run.ended_without_evidence",
            target=self.tenant_id,
            result=ended.state,
            run_id=ended.run_id,
            dag_id=ended.dag_id,
        )
        self.store.put_json(paths.events("evidence-sweep", int(context["ti"].try_number)), found.events)
        log = EventLog(self.actor(context))
        try:
            result = super().run(ended_context, log)
        finally:
            self.store.put_json(
                paths.events("evidence-sweep.pack", int(context["ti"].try_number)), log.events
            )
        self._page(ended, folder, result["pack_url"], self.plan_info(ended_context)["plan_hash"])
        return {
            "run_id": ended.run_id,
            "state": ended.state,
            "outcome": result["outcome"],
            "pack_url": result["pack_url"],
        }

    # -- the ended run's facts, from its records instead of the sweep's own run ------------------------
    def plan_info(self, context: Any) -> dict[str, Any]:
        """The swept run's plan facts; an empty plan's, stored once, when its plan never finished."""
        folder = self._folder
        key = f"cycles/{folder.cycle_date}/runs/{folder.segment}/{PLAN_INFO_RECORD}"
        info = self.read_record(key, required=False)
        if info is not None:
            return info
        if self._swept_unplanned is None:  # its plan never finished: an empty plan, stored once
            self._swept_unplanned = self.unplanned_info(
                dt.date.fromisoformat(folder.cycle_date), context["run_id"]
            )
        return self._swept_unplanned

    def halted_reason(self, info: dict[str, Any]) -> str | None:
        """Why the swept run stopped short: its plan's unplanned reason, if any, and that it ended without
        its evidence."""
        return "; ".join(r for r in (info.get("unplanned"), self._halted) if r)

    def actor(self, context: Any) -> str:
        """The sweep task itself, ``airflow:<dag>/<task>``, without a triggering user."""
        return f"airflow:{self.dag_id}/{self.task_id}"

    def stage_record(self, context: Any, environment: str) -> dict[str, Any] | None:
        """A finished stage's record; a stage the run stopped in (backups taken, no verified record) as an
        interrupted stage, its hosts judged conservatively."""
        paths = self.paths(context)
        finished = self.read_record(paths.stage_file(environment, "stage.json"), required=False)
        backups = self.read_record(paths.stage_file(environment, "backup-status.json"), required=False)
        if finished is not None or backups is None:
            return super().stage_record(context, environment)
        return interrupted_stage(
            environment,
            self.stage_hosts(context, environment),
            backups,
            f"the run ended {self._ended.state} during this stage",
            canary=super().stage_record(context, environment),
        )

    def _page(self, ended: EndedRun, folder: RunFolder, pack_url: str, plan_hash: str) -> None:
        """One incident per run that ended without evidence (the same key on every sweep)."""
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
                reason=self._halted,
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

    def flush_events(self, context: Any, log: EventLog, phase: str) -> None:
        """Each swept run's events went into that run's own log; the sweep's run has no cycle of its own."""
