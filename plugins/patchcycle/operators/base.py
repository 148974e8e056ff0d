"""What every cycle task shares: its tenant, its cycle, its evidence store and its event log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.config.models import Tenant
from patchcycle.operators.context import PLAN_TASK_ID, CycleContext
from patchcycle.reports.store import EvidenceStore

__all__ = [
    "PLAN_TASK_ID",
    "CycleContext",
    "CycleOperator",
    "CycleTaskMixin",
    "DailyTaskMixin",
    "EventLog",
    "TenantTaskMixin",
]


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


class TenantTaskMixin:
    """A task of one tenant: its tenant file, its evidence store, and who acts as the evidence names it
    (shared by the cycle's tasks and the daily drift run's)."""

    tenant_id: str
    task_id: str
    dag_id: str
    log: Any

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

    def actor(self, context: Any) -> str:
        """Who acts, as the evidence names it: ``airflow:<dag>/<task>``, with the user who triggered the
        run when there is one."""
        run = context["dag_run"]
        user = getattr(run, "triggering_user_name", None)
        who = f"airflow:{self.dag_id}/{self.task_id}"
        return f"{who} (triggered by {user})" if user else who


def put_events(store: Any, paths: Any, name: str, attempt: int, events: list[Any], *, resumed: bool) -> None:
    """Store one execution's events as their own object (``events/<name>.try-<n>.json``); a task that
    resumes several times in one attempt (rounds of a deferred loop) adds one object per resume."""
    key = paths.events(name, attempt)
    if resumed:
        taken = set(store.keys(f"{paths.events_prefix}{name}"))
        step = 1
        while key in taken:
            step += 1
            key = paths.events(f"{name}-{step}", attempt)
    store.put_json(key, events)


class DailyTaskMixin(TenantTaskMixin):
    """A task of a tenant's daily (or on-demand) run that is not a cycle: the daily drift report, the Falcon
    roll-out. Its context (``context_class``, a :class:`TaskRunContext` with ``paths``) is built once per
    execute, and its event log is appended to the evidence store whether the task returns or raises."""

    context_class: type[Any]

    def execute(self, context: Any) -> Any:
        """Run :meth:`run` with this execution's context and a new event log; store the events."""
        run = self.context_class(context, tenant=self.tenant, store=self.store, actor=self.actor(context))
        log = EventLog(run.actor)
        try:
            return self.run(run, log)
        finally:
            if log.events:
                put_events(run.store, run.paths, self.task_id, run.attempt, log.events, resumed=False)

    def resume(self, context: Any, event: dict[str, Any], method: Any) -> Any:
        """Run a deferred task's completion step with its own event log (``.resumed`` in the store)."""
        run = self.context_class(context, tenant=self.tenant, store=self.store, actor=self.actor(context))
        log = EventLog(run.actor)
        try:
            return method(run, event, log)
        finally:
            if log.events:
                put_events(
                    run.store, run.paths, f"{self.task_id}.resumed", run.attempt, log.events, resumed=True
                )

    def run(self, run: Any, log: EventLog) -> Any:  # pragma: no cover - abstract
        """The task's own work."""
        raise NotImplementedError


class CycleTaskMixin(TenantTaskMixin):
    """A cycle task: its tenant and evidence store, the :class:`CycleContext` it builds once per execute,
    and its event log. Subclasses implement :meth:`run`; :meth:`execute` writes their events to the
    evidence store whatever happens."""

    after_the_run: bool = False
    """True for the tasks after the stages (incidents, access review, evidence, distribution, outcome):
    they run however the run went, and when the plan never finished they work from an empty plan."""

    context_class: type[CycleContext] = CycleContext
    """The kind of context this task's executions get (the plan task, rollbacks: a subclass)."""

    def context_arguments(self) -> dict[str, Any]:
        """What a :attr:`context_class` needs beyond the tenant, store, actor and ``after_the_run``."""
        return {}

    def cycle_context(self, context: Any) -> CycleContext:
        """This execution's context (a :attr:`context_class`), built from Airflow's ``context`` (or
        ``context`` itself when it already is one: a wait polled in the worker completes with the context
        it started with)."""
        if isinstance(context, self.context_class):
            return context
        return self.context_class(
            context,
            tenant=self.tenant,
            store=self.store,
            actor=self.actor(context),
            after_the_run=self.after_the_run,
            **self.context_arguments(),
        )

    # -- execution -----------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        """Run the task's :meth:`run` with this execution's context and a new event log, and append the
        events to the evidence store whether it returns or raises."""
        cycle = self.cycle_context(context)
        log = EventLog(cycle.actor)
        try:
            return self.run(cycle, log)
        finally:
            self.flush_events(cycle, log, phase="")

    def resume(self, context: Any, event: dict[str, Any], method: Any) -> Any:
        """Run a deferred task's completion step with its own event log (``.resumed`` in the store)."""
        cycle = self.cycle_context(context)
        log = EventLog(cycle.actor)
        try:
            return method(cycle, event, log)
        finally:
            self.flush_events(cycle, log, phase=".resumed")

    def flush_events(self, cycle: CycleContext, log: EventLog, phase: str) -> None:
        """Append this attempt's events as their own object; earlier attempts' objects stay untouched."""
        if not log.events:
            return
        try:
            paths = cycle.paths
        except RuntimeError:
            return  # no plan, no cycle to record against; the task's own log has the error
        put_events(
            cycle.store, paths, f"{self.task_id}{phase}", cycle.attempt, log.events, resumed=bool(phase)
        )

    def run(self, cycle: CycleContext, log: EventLog) -> Any:  # pragma: no cover - abstract
        """The task's own work in this execution's ``cycle``, its facts recorded in ``log``; what it
        returns is the task's XCom."""
        raise NotImplementedError


class CycleOperator(CycleTaskMixin, BaseOperator):
    """Base of the cycle's operators."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#e8f0fe"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
