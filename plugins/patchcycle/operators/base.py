"""What every cycle task shares: its tenant, its cycle, its evidence store and its event log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.config.models import AwsAccount, Tenant
from patchcycle.domain.approval import rejection_reason
from patchcycle.reports.store import CyclePaths, EvidenceStore

PLAN_TASK_ID = "plan"


def poll_seconds() -> float:
    """How often waits poll the clouds (``[patchcycle] poll_seconds``; 30 s unless configured)."""
    return conf.getfloat("patchcycle", "poll_seconds", fallback=30.0)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class WaitArguments:
    """The one waiting contract of every operator that waits on a cloud (as the Amazon provider's
    operators have one): ``deferrable`` (True: the wait runs in the triggerer and holds no worker slot;
    False: the task polls in its worker), ``waiter_delay`` (seconds between polls; default
    ``[patchcycle] poll_seconds``) and ``waiter_max_attempts``. Either way the same named check
    (:data:`patchcycle.triggers.waits.CHECKS`) is polled with the same delay and attempts, and the task
    completes in the same method with the same event (``done``, ``wake`` or ``timeout``): ``False``
    never treats an unfinished answer as done."""

    deferrable: bool
    waiter_delay: float | None
    waiter_max_attempts: int

    def set_wait_arguments(
        self, deferrable: bool, waiter_delay: float | None, waiter_max_attempts: int
    ) -> None:
        """Set ``deferrable``, ``waiter_delay`` and ``waiter_max_attempts`` (each operator's ``__init__``
        calls it)."""
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    @property
    def delay(self) -> float:
        """Seconds between polls: ``waiter_delay``, else ``[patchcycle] poll_seconds``."""
        return self.waiter_delay if self.waiter_delay is not None else poll_seconds()

    def wait_for(
        self,
        context: Any,
        check: str,
        payload: dict[str, Any],
        *,
        max_attempts: int | None = None,
        method_name: str = "execute_complete",
    ) -> Any:
        """Wait until ``check`` answers done for ``payload``, then complete in ``method_name(context,
        event)``: deferred to the triggerer, or polled here (see the class). ``max_attempts`` overrides
        ``waiter_max_attempts`` for a wait bounded by the tenant's policy (a health watch, a reboot
        deadline)."""
        from patchcycle.triggers.waits import CloudWaitTrigger, poll_in_worker

        attempts = max_attempts if max_attempts is not None else self.waiter_max_attempts
        if self.deferrable:
            self.defer(  # type: ignore[attr-defined]
                trigger=CloudWaitTrigger(check, payload, self.delay, attempts),
                method_name=method_name,
                timeout=dt.timedelta(seconds=self.delay * (attempts + 2)),
            )
        event = poll_in_worker(check, payload, self.delay, attempts)
        return getattr(self, method_name)(context, event)

    def wait_until(
        self,
        context: Any,
        moment: dt.datetime,
        *,
        kwargs: dict[str, Any],
        method_name: str = "execute_complete",
        sleep: Any = None,
    ) -> Any:
        """Wait for a moment on the clock (a soak's end, a change window's opening), then complete in
        ``method_name(context, **kwargs)``: deferred to the triggerer (Airflow's ``DateTimeTrigger``), or
        slept in the worker until then (``deferrable=False``)."""
        import time

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        if self.deferrable:
            self.defer(  # type: ignore[attr-defined]
                trigger=DateTimeTrigger(moment=moment), method_name=method_name, kwargs=kwargs
            )
        nap = sleep or time.sleep
        while (left := (moment - utcnow()).total_seconds()) > 0:
            nap(min(left, self.delay))
        return getattr(self, method_name)(context, **kwargs)


class EventLog:
    """Facts a task appends to the cycle's evidence: who, what, when, target, result, ids."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.events: list[dict[str, Any]] = []

    def record(self, action: str, *, target: str | None = None, result: str = "ok", **details: Any) -> None:
        """Append one event by this log's actor, stamped now; ``details`` are kept as given."""
        self.events.append(
            {
                "at": utcnow().isoformat(),
                "actor": self.actor,
                "action": action,
                "target": target,
                "result": result,
                "details": details,
            }
        )


def run_type_name(dag_run: Any) -> str:
    """The run's type as Airflow names it (``scheduled``, ``manual``, ``backfill``...), not an enum repr."""
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type))


class CycleTaskMixin:
    """The cycle's context for a task: tenant, plan, evidence store, event log. Subclasses implement
    :meth:`run`; :meth:`execute` writes their events to the evidence store whatever happens."""

    tenant_id: str
    task_id: str
    dag_id: str
    log: Any

    # -- context -------------------------------------------------------------------------------
    @cached_property
    def tenant(self) -> Tenant:
        """The task's tenant, loaded from its YAML file in the tenants directory."""
        return load_tenant(default_tenants_dir() / f"{self.tenant_id}.yaml")

    @cached_property
    def store(self) -> EvidenceStore:
        """The tenant's evidence bucket; every object is locked for the longest retention any of its
        frameworks demands."""
        from patchcycle.domain.controls import load_control_catalogs, retention_days_for
        from patchcycle.hooks.s3 import EvidenceBucketHook  # the AWS SDK loads when a task runs, not at parse

        ev = self.tenant.evidence
        # Every object is locked for the longest retention any of the tenant's frameworks demands.
        retention = retention_days_for([f.value for f in self.tenant.frameworks], load_control_catalogs())
        hook = EvidenceBucketHook(aws_conn_id=ev.connection_id, region_name=ev.region)
        return EvidenceStore(hook, ev.bucket, retention_days=retention)

    after_the_run: bool = False
    """True for the tasks after the stages (incidents, access review, evidence, distribution, outcome):
    they run however the run went, and when the plan never finished they work from an empty plan."""

    def plan_info(self, context: Any) -> dict[str, Any]:
        """The run's plan facts (the plan task's XCom). When the plan left none, a task after the run gets
        an empty plan's facts (:meth:`_unplanned_info`); any other raises ``RuntimeError``."""
        info = context["ti"].xcom_pull(task_ids=PLAN_TASK_ID)
        if info:
            return info
        if not self.after_the_run:
            raise RuntimeError("the plan task left no cycle plan; it must run first")
        return self._unplanned_info(context)

    def stage_plan_info(self, context: Any, environment: str) -> dict[str, Any]:
        """The run's plan facts for a task of ``environment``'s stage; the task is skipped (not failed)
        when the stage is not part of the run: a dry run, or an environment the run's params left out."""
        info = self.plan_info(context)
        if info["dry_run"] or environment not in info["environments"]:
            raise AirflowSkipException(f"{environment} is not part of this run")
        return info

    def _unplanned_info(self, context: Any) -> dict[str, Any]:
        """The run's facts when its plan task never finished (it crashed, was marked failed, or its worker
        died): the run's cycle as the plan would have resolved it and an empty frozen plan, so the evidence
        pack still says what was done (nothing was patched without a plan) and why it stopped."""
        cached = getattr(self, "_unplanned", None)
        if cached is not None:
            return cached
        from patchcycle.domain.schedule import resolve_cycle_date

        run = context["dag_run"]
        scope = {"logical_date": context.get("logical_date"), "run_after": run.run_after}
        try:  # the date the plan files the run's records under, when the conf's date can be read
            cycle_date = resolve_cycle_date(
                requested=(context.get("params") or {}).get("cycle_date"), **scope
            )
        except ValueError:
            cycle_date = resolve_cycle_date(requested=None, **scope)
        self._unplanned: dict[str, Any] | None = self.unplanned_info(cycle_date, context["run_id"])
        return self._unplanned

    def unplanned_info(self, cycle_date: dt.date, run_id: str) -> dict[str, Any]:
        """An empty frozen plan for ``cycle_date``, stored under the run, as the plan info of a run whose
        plan task never finished."""
        from patchcycle.domain.plan import build_cycle_plan
        from patchcycle.domain.run_conf import run_info

        plan = build_cycle_plan(self.tenant, cycle_date, [])
        paths = CyclePaths(plan.cycle_date, run_id)
        return run_info(
            cycle_date=plan.cycle_date,
            plan_hash=plan.hash,
            plan_url=self.store.put_json(paths.plan(plan.hash), plan.to_dict()),
            unplanned="the plan task did not finish (see its log): nothing was planned or patched",
        )

    def paths(self, context: Any) -> CyclePaths:
        """The keys of this run's evidence, under the plan's cycle date."""
        return CyclePaths(self.plan_info(context)["cycle_date"], context["run_id"])

    def actor(self, context: Any) -> str:
        """Who acts, as the evidence names it: ``airflow:<dag>/<task>``, with the user who triggered the
        run when there is one."""
        run = context["dag_run"]
        user = getattr(run, "triggering_user_name", None)
        who = f"airflow:{self.dag_id}/{self.task_id}"
        return f"{who} (triggered by {user})" if user else who

    def aws_account(self, account_id: str) -> AwsAccount:
        """The tenant's AWS account with this id; ``KeyError`` if it declares none."""
        for account in self.tenant.clouds.aws.accounts if self.tenant.clouds.aws else []:
            if account.account_id == account_id:
                return account
        raise KeyError(f"tenant {self.tenant_id} declares no AWS account {account_id}")

    def aws_conn_id(self, account_id: str) -> str:
        """The Airflow connection of one of the tenant's AWS accounts."""
        return self.tenant.aws_connection_id(self.aws_account(account_id))

    def azure_conn_id(self, subscription_id: str) -> str:
        """The Airflow connection of one of the tenant's Azure subscriptions; ``KeyError`` if it declares
        none."""
        for sub in self.tenant.clouds.azure.subscriptions if self.tenant.clouds.azure else []:
            if sub.subscription_id == subscription_id.lower():
                return self.tenant.azure_connection_id(sub)
        raise KeyError(f"tenant {self.tenant_id} declares no Azure subscription {subscription_id}")

    def gcp_conn_id(self, project_id: str) -> str:
        """The Airflow connection of one of the tenant's GCP projects; ``KeyError`` if it declares none."""
        for project in self.tenant.clouds.gcp.projects if self.tenant.clouds.gcp else []:
            if project.project_id == project_id:
                return self.tenant.gcp_connection_id(project)
        raise KeyError(f"tenant {self.tenant_id} declares no GCP project {project_id}")

    def plan(self, context: Any) -> dict[str, Any]:
        """The frozen plan of this run (its JSON, as stored in the evidence bucket)."""
        info = self.plan_info(context)
        return self.store.get_json(info["plan_url"].removeprefix(f"s3://{self.store.bucket}/"))

    # -- execution -----------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        """Run the task's :meth:`run` with a new event log, and append the events to the evidence store
        whether it returns or raises."""
        log = EventLog(self.actor(context))
        try:
            return self.run(context, log)
        finally:
            self.flush_events(context, log, phase="")

    def resume(self, context: Any, event: dict[str, Any], method: Any) -> Any:
        """Run a deferred task's completion step with its own event log (``.resumed`` in the store)."""
        log = EventLog(self.actor(context))
        try:
            return method(context, event, log)
        finally:
            self.flush_events(context, log, phase=".resumed")

    def flush_events(self, context: Any, log: EventLog, phase: str) -> None:
        """Append this attempt's events as their own object; earlier attempts' objects stay untouched."""
        if not log.events:
            return
        try:
            paths = self.paths(context)
        except RuntimeError:
            return  # no plan, no cycle to record against; the task's own log has the error
        key = paths.events(f"{self.task_id}{phase}", int(context["ti"].try_number))
        if phase:
            # A task that resumes several times in one attempt (rounds of a deferred loop) adds one
            # object per resume.
            taken = set(self.store.keys(f"{paths.events_prefix}{self.task_id}{phase}"))
            step = 1
            while key in taken:
                step += 1
                key = paths.events(f"{self.task_id}{phase}-{step}", int(context["ti"].try_number))
        self.store.put_json(key, log.events)

    def run(self, context: Any, log: EventLog) -> Any:  # pragma: no cover - abstract
        """The task's own work, its facts recorded in ``log``; what it returns is the task's XCom."""
        raise NotImplementedError

    def write_record(self, context: Any, key: str, obj: Any, step: int | None = None) -> str:
        """Write this attempt's record (see :meth:`EvidenceStore.put_record`); ``step`` numbers the
        records of a task that writes the same record several times in one attempt."""
        return self.store.put_record(key, obj, int(context["ti"].try_number), step)

    def read_record(self, key: str, *, required: bool = True) -> Any:
        """The latest attempt's record at ``key``; when none was written, ``RuntimeError`` if ``required``,
        else ``None``."""
        record = self.store.get_record(key)
        if record is None and required:
            raise RuntimeError(f"{self.store.url(key)}: no attempt has written this record yet")
        return record

    def stage_record(self, context: Any, environment: str) -> dict[str, Any] | None:
        """A stage's verified record with its health gate folded in: a stage whose health gate failed
        is a failed stage (its hosts were patched, but the next stage must not follow). A stage that
        stopped at its canary is the canary's record (the rest of its hosts not started)."""
        from patchcycle.domain.outcomes import rejected_stage, stage_with_gates

        paths = self.paths(context)
        stage = self.read_record(paths.stage_file(environment, "stage.json"), required=False)
        canary_only = stage is None
        if canary_only:
            stage = self.read_record(paths.stage_file(environment, "canary/stage.json"), required=False)
        approval = self.read_record(paths.stage_file(environment, "approval.json"), required=False)
        if stage is None and approval is not None and approval.get("decision") != "approved":
            return rejected_stage(environment, approval, rejection_reason(approval))
        if stage is None:
            return None
        windows = [
            w
            for w in (
                self.read_record(paths.stage_file(environment, f"window-{b}.json"), required=False)
                for b in ("stage", "canary", "main")
            )
            if w is not None
        ]
        health_file = "canary/health.json" if canary_only else "health.json"
        health = self.read_record(paths.stage_file(environment, health_file), required=False)
        return stage_with_gates(
            stage, windows=windows, approval=approval, health=health, canary_only=canary_only
        )

    def stage_hosts(self, context: Any, environment: str) -> list[dict[str, Any]]:
        """Inventory rows of the hosts the pre-flight gate let through, in one environment."""
        paths = self.paths(context)
        rows = self.read_record(paths.run_file("inventory.json"))
        preflight = self.read_record(paths.run_file("preflight.json"))
        eligible = {
            d["host_id"]: d.get("variant", "full")
            for d in preflight["decisions"]
            if d["verdict"] == "eligible"
        }
        return [
            {**r, "install_variant": eligible[r["host_id"]]}
            for r in rows
            if r["host_id"] in eligible and r["environment"] == environment
        ]

    def batch_hosts(self, context: Any, environment: str, batch: str | None) -> list[dict[str, Any]]:
        """The stage's hosts of one batch: the canary, the rest after it (``main``), or all (``None``).

        The split is a pure function of the stage's eligible hosts and the tenant's canary setting, so
        every task of the stage (and every retry) sees the same batches."""
        from patchcycle.domain.canary import CANARY, split_canary

        rows = self.stage_hosts(context, environment)
        if batch is None:
            return rows
        split = split_canary(rows, self.tenant.environment(environment).canary)
        ids = set(split.canary if batch == CANARY else split.rest)
        return [r for r in rows if r["host_id"] in ids]

    def batch_file(self, context: Any, environment: str, batch: str | None, name: str) -> str:
        """Where a batch's record lives: the canary's under ``canary/``, the rest's as the stage's own."""
        from patchcycle.domain.canary import CANARY

        return self.paths(context).stage_file(environment, f"canary/{name}" if batch == CANARY else name)


class CycleOperator(CycleTaskMixin, BaseOperator):
    """Base of the cycle's operators."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e8f0fe"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
