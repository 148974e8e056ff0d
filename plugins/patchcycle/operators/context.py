"""What one execution of a cycle task works with, built once per execute: the tenant, its evidence store,
the run's plan facts and frozen plan, the connections of the tenant's clouds, the attempt, and the
records of this run. Operators read it; they do not rebuild any of it.

The event log and its numbering stay with the task (:class:`patchcycle.operators.base.CycleTaskMixin`),
and so does the rule that skips a stage's task when its stage is not part of the run
(:meth:`CycleContext.stage_info` is that rule, in one place)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from patchcycle.config.models import AwsAccount, Tenant
from patchcycle.domain.approval import rejection_reason
from patchcycle.reports.store import CyclePaths, EvidenceStore

PLAN_TASK_ID = "plan"


class TaskRunContext:
    """One execution of a tenant's task: Airflow's context, the tenant, its evidence store, who acts, and
    the run (task instance, DAG run, id, params, attempt). The cycle's tasks extend it
    (:class:`CycleContext`), and so does the daily drift run (``operators/drift.DriftContext``)."""

    def __init__(
        self, airflow: Mapping[str, Any], *, tenant: Tenant, store: EvidenceStore, actor: str
    ) -> None:
        self.airflow = airflow
        self.tenant = tenant
        self.store = store
        self.actor = actor

    # -- the run -------------------------------------------------------------------------------
    @property
    def ti(self) -> Any:
        """Airflow's task instance (XCom, the attempt number)."""
        return self.airflow["ti"]

    @property
    def dag_run(self) -> Any:
        """Airflow's DAG run (its type, who triggered it, when it was due)."""
        return self.airflow["dag_run"]

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.airflow["run_id"])

    @property
    def params(self) -> Mapping[str, Any]:
        """The run's params (the trigger form's answers, or the defaults)."""
        return self.airflow.get("params") or {}

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first try; a retry writes its records beside the earlier)."""
        return int(self.ti.try_number)

    def write_record(self, key: str, obj: Any, step: int | None = None) -> str:
        """Write this attempt's record (see :meth:`EvidenceStore.put_record`); ``step`` numbers the
        records of a task that writes the same record several times in one attempt."""
        return self.store.put_record(key, obj, self.attempt, step)

    def read_record(self, key: str, *, required: bool = True) -> Any:
        """The latest attempt's record at ``key``; when none was written, ``RuntimeError`` if ``required``,
        else ``None``."""
        record = self.store.get_record(key)
        if record is None and required:
            raise RuntimeError(f"{self.store.url(key)}: no attempt has written this record yet")
        return record


class CycleContext(TaskRunContext):
    """One execution of a cycle task: built from Airflow's context by the task's ``execute`` (or its
    resume after a deferral), passed to the task's ``run`` and its helpers.

    ``after_the_run`` is true for the tasks after the stages (incidents, access review, evidence,
    distribution, outcome): when the plan never finished they work from an empty plan's facts."""

    def __init__(
        self,
        airflow: Mapping[str, Any],
        *,
        tenant: Tenant,
        store: EvidenceStore,
        actor: str,
        after_the_run: bool = False,
    ) -> None:
        super().__init__(airflow, tenant=tenant, store=store, actor=actor)
        self.after_the_run = after_the_run

    # -- the plan ------------------------------------------------------------------------------
    @cached_property
    def info(self) -> dict[str, Any]:
        """The run's plan facts (the plan task's XCom). When the plan left none, a task after the run gets
        an empty plan's facts (:meth:`unplanned_info`); any other raises ``RuntimeError``."""
        info = self.ti.xcom_pull(task_ids=PLAN_TASK_ID)
        if info:
            return dict(info)
        if not self.after_the_run:
            raise RuntimeError("the plan task left no cycle plan; it must run first")
        return self._unplanned_info()

    @property
    def halted_reason(self) -> str | None:
        """Why the run stopped short of its plan, if it did: the plan task never finished."""
        return self.info.get("unplanned")

    def stage_info(self, environment: str) -> dict[str, Any]:
        """The run's plan facts for a task of ``environment``'s stage; the task is skipped (not failed)
        when the stage is not part of the run: a dry run, or an environment the run's params left out."""
        info = self.info
        if info["dry_run"] or environment not in info["environments"]:
            raise AirflowSkipException(f"{environment} is not part of this run")
        return info

    @property
    def paths(self) -> CyclePaths:
        """The keys of this run's evidence, under the plan's cycle date."""
        return CyclePaths(self.info["cycle_date"], self.run_id)

    @cached_property
    def plan(self) -> dict[str, Any]:
        """The frozen plan of this run (its JSON, as stored in the evidence bucket)."""
        plan: dict[str, Any] = self.store.get_json(
            self.info["plan_url"].removeprefix(f"s3://{self.store.bucket}/")
        )
        return plan

    def _unplanned_info(self) -> dict[str, Any]:
        """The run's facts when its plan task never finished (it crashed, was marked failed, or its worker
        died): the run's cycle as the plan would have resolved it and an empty frozen plan, so the evidence
        pack still says what was done (nothing was patched without a plan) and why it stopped."""
        from patchcycle.domain.schedule import resolve_cycle_date

        scope = {"logical_date": self.airflow.get("logical_date"), "run_after": self.dag_run.run_after}
        try:  # the date the plan files the run's records under, when the conf's date can be read
            cycle_date = resolve_cycle_date(requested=self.params.get("cycle_date"), **scope)
        except ValueError:
            cycle_date = resolve_cycle_date(requested=None, **scope)
        return self.unplanned_info(cycle_date)

    def unplanned_info(self, cycle_date: dt.date) -> dict[str, Any]:
        """An empty frozen plan for ``cycle_date``, stored under the run, as the plan info of a run whose
        plan task never finished."""
        from patchcycle.domain.plan import build_cycle_plan
        from patchcycle.domain.run_conf import run_info

        plan = build_cycle_plan(self.tenant, cycle_date, [])
        paths = CyclePaths(plan.cycle_date, self.run_id)
        return run_info(
            cycle_date=plan.cycle_date,
            plan_hash=plan.hash,
            plan_url=self.store.put_json(paths.plan(plan.hash), plan.to_dict()),
            unplanned="the plan task did not finish (see its log): nothing was planned or patched",
        )

    # -- connections ---------------------------------------------------------------------------
    def aws_account(self, account_id: str) -> AwsAccount:
        """The tenant's AWS account with this id; ``KeyError`` if it declares none."""
        for account in self.tenant.clouds.aws.accounts if self.tenant.clouds.aws else []:
            if account.account_id == account_id:
                return account
        raise KeyError(f"tenant {self.tenant.id} declares no AWS account {account_id}")

    def aws_conn_id(self, account_id: str) -> str:
        """The Airflow connection of one of the tenant's AWS accounts."""
        return self.tenant.aws_connection_id(self.aws_account(account_id))

    def azure_conn_id(self, subscription_id: str) -> str:
        """The Airflow connection of one of the tenant's Azure subscriptions; ``KeyError`` if it declares
        none."""
        for sub in self.tenant.clouds.azure.subscriptions if self.tenant.clouds.azure else []:
            if sub.subscription_id == subscription_id.lower():
                return self.tenant.azure_connection_id(sub)
        raise KeyError(f"tenant {self.tenant.id} declares no Azure subscription {subscription_id}")

    def gcp_conn_id(self, project_id: str) -> str:
        """The Airflow connection of one of the tenant's GCP projects; ``KeyError`` if it declares none."""
        for project in self.tenant.clouds.gcp.projects if self.tenant.clouds.gcp else []:
            if project.project_id == project_id:
                return self.tenant.gcp_connection_id(project)
        raise KeyError(f"tenant {self.tenant.id} declares no GCP project {project_id}")

    # -- records -------------------------------------------------------------------------------

    def stage_record(self, environment: str) -> dict[str, Any] | None:
        """A stage's verified record with its health gate folded in: a stage whose health gate failed
        is a failed stage (its hosts were patched, but the next stage must not follow). A stage that
        stopped at its canary is the canary's record (the rest of its hosts not started)."""
        from patchcycle.domain.outcomes import rejected_stage, stage_with_gates

        paths = self.paths
        stage = self.read_record(paths.stage_file(environment, "stage.json"), required=False)
        canary_only = stage is None
        if canary_only:
            stage = self.read_record(paths.stage_file(environment, "canary/stage.json"), required=False)
        approval = self.read_record(paths.stage_file(environment, "approval.json"), required=False)
        if stage is None and approval is not None and approval.get("decision") != "approved":
            # Not None here (the decision is not "approved"); str() keeps an empty record's "None" as before.
            return rejected_stage(environment, approval, str(rejection_reason(approval)))
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

    def stage_hosts(self, environment: str) -> list[dict[str, Any]]:
        """Inventory rows of the hosts the pre-flight gate let through, in one environment."""
        paths = self.paths
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

    def batch_hosts(self, environment: str, batch: str | None) -> list[dict[str, Any]]:
        """The stage's hosts of one batch: the canary, the rest after it (``main``), or all (``None``).

        The split is a pure function of the stage's eligible hosts and the tenant's canary setting, so
        every task of the stage (and every retry) sees the same batches."""
        from patchcycle.domain.canary import CANARY, split_canary

        rows = self.stage_hosts(environment)
        if batch is None:
            return rows
        split = split_canary(rows, self.tenant.environment(environment).canary)
        ids = set(split.canary if batch == CANARY else split.rest)
        return [r for r in rows if r["host_id"] in ids]

    def batch_file(self, environment: str, batch: str | None, name: str) -> str:
        """Where a batch's record lives: the canary's under ``canary/``, the rest's as the stage's own."""
        from patchcycle.domain.canary import CANARY

        return self.paths.stage_file(environment, f"canary/{name}" if batch == CANARY else name)
