"""One patch-cycle DAG per tenant, built from the tenant's facts. Wiring only: tasks are package operators.

The task structure depends on the tenant's environments and clouds, never on its fleet size: a cycle has
the same tasks for 10 hosts as for 10,000, because each cloud fans out itself (SSM Run Command, OS Config
patch jobs; Arc installs are started in rounds by one deferrable task).
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Any

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, Asset, AssetAlias, BaseOperator, Param, TaskGroup, TriggerRule
from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable

from patchcycle.config.models import Environment, Tenant
from patchcycle.domain.canary import CANARY, MAIN
from patchcycle.domain.schedule import CYCLE_CRON
from patchcycle.domain.zero_day import NEW_KEV_ALIAS
from patchcycle.operators.access import AccessReviewOperator
from patchcycle.operators.approval import StageApprovalOperator
from patchcycle.operators.backup import CreateBackupsOperator
from patchcycle.operators.distribute import DistributeEvidenceOperator
from patchcycle.operators.evidence import (
    CycleOutcomeOperator,
    WriteEvidencePackOperator,
    proceed_unless_dry_run,
)
from patchcycle.operators.health import HealthGateOperator
from patchcycle.operators.incidents import IncidentsOperator
from patchcycle.operators.inventory import (
    CloudInventoryOperator,
    FalconInventoryOperator,
    MergeInventoryOperator,
    PreflightOperator,
)
from patchcycle.operators.patch import (
    PatchAwsOperator,
    PatchAzureOperator,
    PatchGcpOperator,
    PatchRdsOperator,
)
from patchcycle.operators.plan import PlanCycleOperator
from patchcycle.operators.rollback import RollbackFailedHostsOperator
from patchcycle.operators.soak import SoakOperator
from patchcycle.operators.verify import VerifyStageOperator
from patchcycle.operators.window import ChangeWindowGateOperator
from patchcycle.sensors.backup import BackupsCompleteSensor

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PATCH_OPERATORS = {"aws": PatchAwsOperator, "azure": PatchAzureOperator, "gcp": PatchGcpOperator}


def evidence_asset(tenant: Tenant) -> Asset:
    """The asset a tenant's cycle updates when its evidence pack is written (the roll-up waits on it)."""
    # A name and no URI: a URI with a scheme makes the parse load every provider's URI handlers (seconds).
    return Asset(name=f"patchcycle_evidence__{tenant.id}")


def cycle_params(tenant: Tenant) -> dict[str, Param]:
    """The trigger form: what an SRE may choose for a manual run (validated as JSON Schema)."""
    envs = [e.name.value for e in tenant.environments]
    return {
        "environments": Param(
            envs,
            type="array",
            items={"type": "string", "enum": envs},
            minItems=1,
            uniqueItems=True,
            examples=envs,
            title="Environments",
            description="Which environments this run patches, in the tenant's order.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Freeze and print the plan only; change nothing.",
        ),
        "cycle_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Cycle date",
            description=(
                "Plan as of this date (YYYY-MM-DD). Empty: the latest cycle (fourth Sunday) on or "
                "before the run's logical date."
            ),
        ),
        "soak_hours_override": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=720,
            title="Soak override (hours)",
            description="Replace the configured soak. Requires a reason, recorded in the evidence.",
        ),
        "soak_override_reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            title="Soak override reason",
            description="Why the soak is shortened or lengthened (required with an override).",
        ),
        "window_override_reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            title="Emergency change: patch outside the change window",
            description=(
                "Patch prod outside its change window. The reason and the triggering user are recorded "
                "in the evidence; leave empty to wait for the window."
            ),
        ),
    }


FRAMEWORK_LABELS = {"soc2": "SOC 2", "pci_dss": "PCI DSS", "hipaa": "HIPAA", "sox": "SOX"}


def cycle_doc(tenant: Tenant) -> str:
    """The DAG's documentation in the UI: what the cycle does for this tenant, and what to do with it."""
    stages = []
    for env in tenant.environments:
        gates = [f"soak {env.soak_hours:g} h"] if env.soak_hours else []
        if env.approval_required:
            gates.append("a person's approval")
        if env.change_window is not None:
            window = env.change_window
            days = ", ".join(str(d.value) for d in window.days)
            gates.append(f"window {days} {window.start:%H:%M}-{window.end:%H:%M} {window.timezone}")
        if env.canary.share or env.canary.hosts:
            gates.append("canary batch first")
        stages.append(f"**{env.name.value}**" + (f" ({'; '.join(gates)})" if gates else ""))
    late = tenant.schedule
    frameworks = ", ".join(FRAMEWORK_LABELS.get(f.value, f.value) for f in tenant.frameworks)
    return "\n\n".join(
        [
            f"Monthly OS patch cycle of **{tenant.display_name}** (`{tenant.id}`), the fourth Sunday at "
            "02:00 UTC: freeze the plan, inventory every cloud, pre-flight, back up, patch and verify "
            f"{' -> '.join(stages)}, then page, review access and write the evidence pack.",
            f"Frameworks: {frameworks}. Evidence: "
            f"`s3://{tenant.evidence.bucket}/cycles/<cycle>/runs/<run>/pack/` (the outcome task's log names "
            "every host left unpatched, with the reason).",
            "Trigger with **Dry run** first. A scheduled run that starts more than "
            f"{late.late_after_hours} h late (an unpause, a scheduler outage) is "
            + (
                "patched (schedule.patch_late_runs)."
                if late.patch_late_runs
                else "refused before any change."
            )
            + " To stop a run, mark its running task failed (not the run): the pack is still written. "
            f"Roll hosts back with `patchcycle_rollback__{tenant.id}`. See docs/sre-guide.md.",
        ]
    )


def default_args(tenant: Tenant) -> dict[str, Any]:
    """Default task arguments of the tenant's cycle DAG: its owner, and 2 retries with exponential backoff
    from ``[patchcycle] retry_delay_seconds`` (120 s unless configured)."""
    # Local runs and tests shorten the delay with [patchcycle] retry_delay_seconds (read from the local
    # configuration, never from a live system, so it is safe at parse time).
    from airflow.configuration import conf

    delay = dt.timedelta(seconds=conf.getfloat("patchcycle", "retry_delay_seconds", fallback=120.0))
    return {
        "owner": tenant.owner,
        "retries": 2,
        "retry_delay": delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": max(delay, dt.timedelta(minutes=20)) if delay.total_seconds() >= 60 else delay * 4,
    }


def build_patch_cycle_dag(tenant: Tenant) -> DAG:
    """The monthly cycle of one tenant: plan -> inventory -> pre-flight -> stages in order -> evidence."""
    ids = {"tenant_id": tenant.id}
    with DAG(
        dag_id=tenant.dag_id,
        description=f"Monthly OS patch cycle of {tenant.display_name}",
        schedule=CronTriggerTimetable(CYCLE_CRON, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=cycle_params(tenant),
        tags=["patchcycle", f"tenant:{tenant.id}", *(f"framework:{f.value}" for f in tenant.frameworks)],
        doc_md=cycle_doc(tenant),
        # A prod change window may open up to a week after staging's soak ends.
        dagrun_timeout=dt.timedelta(days=10),
    ) as dag:
        plan = PlanCycleOperator(task_id="plan", **ids)
        if tenant.risk.zero_day is not None:
            cycle_gate(tenant, "monthly") >> plan
        cycle_tasks(tenant, plan, evidence_asset(tenant))
    return dag


MONTHLY_GATE = "wait_for_zero_day"
"""The monthly cycle's first task, when the tenant has a zero-day cycle."""
ZERO_DAY_GATE = "wait_for_monthly"
"""The zero-day cycle's first task."""


def cycle_gate(tenant: Tenant, cycle: str) -> BaseOperator:
    """The first task of one of the tenant's two cycles (``monthly`` or ``zero_day``): it waits while the
    other is live (see :mod:`patchcycle.domain.cycle_gate`)."""
    from patchcycle.sensors.cycle_gate import OtherCycleIdleSensor

    policy = tenant.risk.zero_day
    if policy is None:
        raise ValueError(f"tenant {tenant.id} declares no risk.zero_day policy: it has one cycle only")
    if cycle == "monthly":
        other, task_id, other_gate = zero_day_dag_id(tenant), MONTHLY_GATE, ZERO_DAY_GATE
    else:
        other, task_id, other_gate = tenant.dag_id, ZERO_DAY_GATE, MONTHLY_GATE
    return OtherCycleIdleSensor(
        task_id=task_id,
        other_dag_id=other,
        other_gate_task_id=other_gate,
        other_goes_first=policy.starts_first != cycle,
    )


def cycle_tasks(tenant: Tenant, plan: Any, evidence_outlet: Asset) -> None:
    """The cycle after its plan task: dry-run gate -> inventory -> pre-flight -> stages in order ->
    incidents, access review, evidence (updating ``evidence_outlet``), distribution and outcome; shared by
    the monthly cycle and the zero-day cycle, which differ only in their plan task and their DAG."""
    ids = {"tenant_id": tenant.id}
    dry_run_gate = ShortCircuitOperator(
        task_id="dry_run_gate",
        python_callable=proceed_unless_dry_run,
        op_args=[plan.output],
        ignore_downstream_trigger_rules=False,
    )
    with TaskGroup(group_id="inventory", tooltip="every cloud and Falcon in parallel, then one table"):
        readers = [
            CloudInventoryOperator(task_id=cloud, cloud=cloud, **ids) for cloud in tenant.clouds.declared
        ]
        if tenant.falcon is not None:
            readers.append(FalconInventoryOperator(task_id="falcon", **ids))
        # A cloud whose task failed outright is a failed scope; the clouds that answered go on.
        merge = MergeInventoryOperator(
            task_id="merge", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **ids
        )
        readers >> merge
    preflight = PreflightOperator(task_id="preflight", **ids)
    plan >> dry_run_gate >> readers
    merge >> preflight
    previous: Any = preflight
    for index, env in enumerate(tenant.environments):
        name = env.name.value
        with TaskGroup(group_id=name, tooltip=f"back up, patch and verify {name}") as stage:
            stage_tasks(tenant, env, last_stage=index + 1 == len(tenant.environments))
        previous >> stage
        previous = stage
    # After the stages, whatever their outcome: page (or resolve) what failed, who could run the
    # cycle, then the evidence pack.
    incidents = IncidentsOperator(task_id="incidents", trigger_rule=TriggerRule.ALL_DONE, **ids)
    access_review = AccessReviewOperator(task_id="access_review", trigger_rule=TriggerRule.ALL_DONE, **ids)
    evidence = WriteEvidencePackOperator(
        task_id="evidence", trigger_rule=TriggerRule.ALL_DONE, outlets=[evidence_outlet], **ids
    )
    distribute = DistributeEvidenceOperator(task_id="distribute", **ids)
    outcome = CycleOutcomeOperator(task_id="outcome", trigger_rule=TriggerRule.ALL_DONE, retries=0, **ids)
    [plan, previous] >> incidents >> access_review >> evidence >> distribute >> outcome


def stage_tasks(tenant: Tenant, env: Environment, last_stage: bool) -> None:
    """One stage: [approval] -> [change window] -> backups -> the canary batch, if any, patched, verified
    and health-checked -> [change window again] -> the rest -> verify -> [soak] -> [health gate].

    The first task takes NONE_FAILED so a stage outside this run (skipped) does not stop the next one.
    """
    ids = {"tenant_id": tenant.id}
    name = env.name.value
    chain: list[Any] = []
    if env.approval_required:
        chain.append(StageApprovalOperator(task_id="approval", environment=name, **ids))
    batches: list[str | None] = [CANARY, MAIN] if env.canary.share or env.canary.hosts else [None]
    if env.change_window is not None:
        chain.append(
            ChangeWindowGateOperator(task_id="window", environment=name, batch=batches[0], first=True, **ids)
        )
    chain.append(CreateBackupsOperator(task_id="backup", environment=name, **ids))
    chain.append(BackupsCompleteSensor(task_id="wait_for_backups", environment=name, **ids))
    chain[0].trigger_rule = TriggerRule.NONE_FAILED
    last: Any = chain[0]
    for task in chain[1:]:
        last = last >> task
    verifies: list[Any] = []
    for number, batch in enumerate(batches):
        with (
            TaskGroup(group_id=CANARY, tooltip="the canary batch, judged on its own")
            if batch == CANARY
            else (nullcontext())
        ):
            if number > 0 and env.change_window is not None:
                last = last >> ChangeWindowGateOperator(
                    task_id=f"window_{batch}", environment=name, batch=batch, first=False, **ids
                )
            patches = [
                PATCH_OPERATORS[cloud](task_id=f"patch_{cloud}", environment=name, batch=batch, **ids)
                for cloud in tenant.clouds.declared
            ]
            if tenant.patches_rds:
                patches.append(PatchRdsOperator(task_id="patch_rds", environment=name, batch=batch, **ids))
            # A cloud with no host in this batch skips its patch task; verify runs on the others.
            verify = VerifyStageOperator(
                task_id="verify", environment=name, batch=batch, trigger_rule=TriggerRule.NONE_FAILED, **ids
            )
            last >> patches >> verify
            verifies.append(verify)
            last = verify
            if batch != CANARY and env.soak_hours > 0 and not last_stage:
                last = last >> SoakOperator(
                    task_id="soak", environment=name, soak_hours=env.soak_hours, **ids
                )
            if tenant.health is not None:
                # After the soak: problems that surfaced while the stage soaked count too.
                last = last >> HealthGateOperator(task_id="health", environment=name, batch=batch, **ids)
    if last_stage and tenant.rollback is not None and tenant.rollback.automatic:
        # Opted in: prod's failed hosts go back to the backup this stage took, whatever else happened.
        verifies >> RollbackFailedHostsOperator(
            task_id="rollback_failed", environment=name, trigger_rule=TriggerRule.ALL_DONE, **ids
        )


def build_portfolio_dag(tenants: list[Tenant]) -> DAG:
    """The cross-tenant roll-up, run once every tenant has written its evidence for the round."""
    from airflow.configuration import conf

    from patchcycle.operators.portfolio import PortfolioRollupOperator

    with DAG(
        dag_id="patchcycle_portfolio",
        description="Cross-tenant portfolio: compliance, overdue critical patches, held hosts, exceptions",
        # A list of assets means all of them: one report per monthly round, after the last tenant reports.
        schedule=[evidence_asset(t) for t in tenants],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "sre-platform", "retries": 2},
        tags=["patchcycle", "portfolio"],
    ) as dag:
        PortfolioRollupOperator(
            task_id="rollup",
            tenant_ids=[t.id for t in tenants],
            portfolio_bucket=conf.get("patchcycle", "portfolio_bucket", fallback="patchcycle-portfolio"),
        )
    return dag


def build_feeds_dag() -> DAG:
    """Daily refresh of CISA KEV and FIRST EPSS into the platform bucket, ahead of any cycle."""
    from airflow.configuration import conf

    from patchcycle.operators.feeds import RefreshFeedsOperator

    with DAG(
        dag_id="patchcycle_feeds",
        description="Refresh the KEV and EPSS feeds that rank missing patches",
        schedule=CronTriggerTimetable("0 1 * * *", timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "sre-platform", "retries": 3, "retry_delay": dt.timedelta(minutes=10)},
        tags=["patchcycle", "feeds"],
    ) as dag:
        RefreshFeedsOperator(
            task_id="refresh",
            platform_bucket=conf.get("patchcycle", "portfolio_bucket", fallback="patchcycle-portfolio"),
            # New KEV listings that affect a tenant with an automatic zero-day cycle: one event on that
            # tenant's kev asset (kev_asset), added through this alias at run time.
            outlets=[AssetAlias(name=NEW_KEV_ALIAS)],
        )
    return dag


# -- the zero-day cycle ----------------------------------------------------------------------------


def kev_asset(tenant: Tenant) -> Asset:
    """The asset whose events (a new KEV listing affecting the tenant, with its CVE ids) start the tenant's
    zero-day cycle."""
    from patchcycle.domain.zero_day import kev_asset_name

    return Asset(name=kev_asset_name(tenant.id))


def zero_day_evidence_asset(tenant: Tenant) -> Asset:
    """The asset a zero-day cycle updates when its pack is written (not the monthly round's: the roll-up
    waits for every tenant's monthly pack)."""
    return Asset(name=f"patchcycle_zero_day_evidence__{tenant.id}")


def zero_day_dag_id(tenant: Tenant) -> str:
    """``zero_day__<tenant>``."""
    return f"zero_day__{tenant.id}"


def zero_day_params(tenant: Tenant) -> dict[str, Param]:
    """The zero-day cycle's trigger form: its CVEs, why, and the monthly form's environments and dry run."""
    from patchcycle.domain.zero_day import CVE_ID, MAX_CVES

    monthly = cycle_params(tenant)
    return {
        "cve_ids": Param(
            [],
            type="array",
            items={"type": "string", "pattern": CVE_ID.pattern},
            uniqueItems=True,
            maxItems=MAX_CVES,
            title="CVE ids",
            description=(
                "The CVEs to patch now (CVE-YYYY-NNNN), at most 50: only the patches that fix them are "
                "planned. Empty for a run started by a KEV asset event (its CVEs are in the event)."
            ),
        ),
        "justification": Param(
            None,
            type=["null", "string"],
            maxLength=1000,
            title="Justification",
            description="Why this cannot wait for the monthly cycle (required by hand; in the evidence).",
        ),
        "environments": monthly["environments"],
        "dry_run": monthly["dry_run"],
    }


def build_zero_day_dag(tenant: Tenant) -> DAG:
    """The out-of-band zero-day cycle of one tenant (it must declare ``risk.zero_day``): it waits while the
    monthly cycle runs, then plans only the fixes of its CVEs and runs the monthly cycle's tasks with the
    tenant's emergency soak and change-window policy; started by hand or by a KEV asset event."""
    from patchcycle.operators.zero_day import ZeroDayPlanOperator

    policy = tenant.risk.zero_day
    if policy is None:
        raise ValueError(f"tenant {tenant.id} declares no risk.zero_day policy")
    window = (
        "patched outside their change windows"
        if policy.emergency_change_window == "patch_outside_window"
        else "patched in their change windows"
    )
    with DAG(
        dag_id=zero_day_dag_id(tenant),
        description=f"Out-of-band zero-day cycle of {tenant.display_name}",
        schedule=[kev_asset(tenant)] if policy.automatic else None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=zero_day_params(tenant),
        tags=["patchcycle", "zero-day", f"tenant:{tenant.id}"],
        doc_md=(
            f"Zero-day cycle of **{tenant.display_name}** (`{tenant.id}`): plans only the patches that fix "
            "the given CVEs (frozen and hashed as usual), waits while the monthly cycle runs, then backs "
            f"up, patches and verifies every environment as the monthly cycle does, with a soak of "
            f"{policy.emergency_soak_hours:g} h and environments {window} (approved by {policy.approver}, "
            f"{policy.approver_role}, on {policy.approved_on.isoformat()}). Trigger it with the CVE ids and "
            "a justification"
            + (
                ", or let a new KEV listing that affects the tenant's OS families start it."
                if policy.automatic
                else "."
            )
            + " A CVE with no fix yet is reported with its exposed hosts and compensating controls."
        ),
        dagrun_timeout=dt.timedelta(days=10),
    ) as dag:
        plan = ZeroDayPlanOperator(task_id="plan", tenant_id=tenant.id)
        cycle_gate(tenant, "zero_day") >> plan
        cycle_tasks(tenant, plan, zero_day_evidence_asset(tenant))
    return dag


EVIDENCE_SWEEP_CRON = "20 * * * *"
"""Hourly: a run stopped by hand has its evidence pack (and its page) within the hour."""


def build_evidence_sweep_dag(tenants: list[Tenant]) -> DAG:
    """Write the evidence pack of every cycle run that ended without one; one task per tenant, so one
    tenant's unreadable store does not keep another's runs unswept."""
    from patchcycle.operators.sweep import EvidenceSweepOperator

    with DAG(
        dag_id="patchcycle_evidence_sweep",
        description="Evidence packs for cycle runs that ended without one (marked failed, workers stopped)",
        doc_md=(
            "Every hour, for each tenant: cycle runs that Airflow says have ended (success or failed) "
            "but left no evidence pack in the tenant's evidence bucket get one, written from what the "
            "run recorded (stages it stopped in are shown failed, their patched-or-not hosts "
            "`not_assessed` with the backup a rollback can use), and page once. Trigger it by hand "
            "right after marking a run failed to get the pack at once."
        ),
        schedule=CronTriggerTimetable(EVIDENCE_SWEEP_CRON, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "sre-platform", "retries": 2, "retry_delay": dt.timedelta(minutes=5)},
        tags=["patchcycle", "evidence"],
    ) as dag:
        for tenant in tenants:
            EvidenceSweepOperator(task_id=tenant.id, tenant_id=tenant.id)
    return dag


IAC_DRIFT_CRON = "0 5 * * *"
"""Daily at 05:00 UTC: the report is in the SREs' mail before business hours in the Americas and Europe."""


def iac_drift_dag_id(tenant: Tenant) -> str:
    """``iac_drift__<tenant>``."""
    return f"iac_drift__{tenant.id}"


def iac_drift_params() -> dict[str, Param]:
    """The drift run's trigger form."""
    return {
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Report date",
            description=(
                "The day the report is for (YYYY-MM-DD). Empty: the run's logical date. A state can only "
                "be compared with what is live now, so an earlier day read from the state is marked late; "
                "the plan engine reads that day's plans."
            ),
        ),
        "engine": Param(
            "auto",
            type="string",
            enum=["auto", "state", "plan"],
            title="Engine",
            description=(
                "auto: the tenant pipeline's refresh-only plans of the day when every scope has one, else "
                "the Terraform state compared with the live API; state or plan: that engine only."
            ),
        ),
    }


def build_iac_drift_dag(tenant: Tenant) -> DAG:
    """The daily drift report of one tenant: every resource its Terraform manages against what is live,
    kept as evidence and mailed to its SREs (report -> notify)."""
    from patchcycle.operators.drift import REPORT_TASK_ID, DriftNoticeOperator, DriftReportOperator

    ids = {"tenant_id": tenant.id}
    with DAG(
        dag_id=iac_drift_dag_id(tenant),
        description=f"Daily infrastructure drift report of {tenant.display_name}",
        schedule=CronTriggerTimetable(IAC_DRIFT_CRON, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=iac_drift_params(),
        tags=["patchcycle", "drift", f"tenant:{tenant.id}"],
        doc_md=(
            f"Every morning at 05:00 UTC: every resource the Terraform of **{tenant.display_name}** "
            "(`include/terraform/tenants/<tenant>`) manages, compared with what is live in each AWS account "
            "and region; each difference shown declared against live with who made it (CloudTrail), to "
            "ratify (write it into Terraform) or remediate (terraform apply). Launch template versions that "
            "would start instances without the SSM bootstrap or instance profile are called out. Evidence: "
            f"`s3://{tenant.evidence.bucket}/drift/<day>/runs/<run>/pack/`; the SREs get one mail a day. "
            "A scope that could not be read fails the run after the mail. Backfill missed days with "
            f"`airflow backfill create --dag-id {iac_drift_dag_id(tenant)}`."
        ),
        dagrun_timeout=dt.timedelta(hours=6),
    ) as dag:
        report = DriftReportOperator(task_id=REPORT_TASK_ID, **ids)
        report >> DriftNoticeOperator(task_id="notify", **ids)
    return dag


def falcon_rollout_dag_id(tenant: Tenant) -> str:
    """``falcon_rollout__<tenant>``."""
    return tenant.falcon_rollout_dag_id


def build_falcon_rollout_dag(tenant: Tenant) -> DAG:
    """The Falcon sensor roll-out of one tenant (it must declare ``falcon.rollout``): on the tenant's
    schedule, or on demand from the trigger form (find -> install per cloud -> validate -> evidence)."""
    from patchcycle.operators.falcon_install_azure import InstallSensorsArcOperator
    from patchcycle.operators.falcon_install_gcp import InstallSensorsGcpOperator
    from patchcycle.operators.falcon_rollout import (
        FIND_TASK_ID,
        InstallSensorsAwsOperator,
        RolloutEvidenceOperator,
        SensorNeedsOperator,
        ValidateSensorsOperator,
    )

    rollout = tenant.falcon.rollout if tenant.falcon is not None else None
    if rollout is None:
        raise ValueError(f"tenant {tenant.id} declares no falcon.rollout")
    ids = {"tenant_id": tenant.id}
    # After each monthly cycle (its evidence asset): the kernel-held hosts it handed off get their sensor
    # upgrade then, well before the next cycle, and the sensors are validated again after the kernels moved.
    after_cycle = evidence_asset(tenant)
    schedule: Any = (
        AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(rollout.schedule, timezone="UTC"), assets=[after_cycle]
        )
        if rollout.schedule
        else [after_cycle]
    )
    params: dict[str, Param] = {}
    held = ""
    if rollout.prevention_phases:
        from patchcycle.operators.falcon_phases import reentry_params

        # The way out of a held phase: enter it again from the trigger form, behind the approval step.
        params = reentry_params([phase.name for phase in rollout.prevention_phases])
        held = (
            " A prevention phase held by its detections is entered again from the trigger form "
            "(`reenter_phase` and its `reason`), behind the same approval as a promotion."
        )
    with DAG(
        dag_id=falcon_rollout_dag_id(tenant),
        description=f"CrowdStrike Falcon sensor roll-out of {tenant.display_name}",
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(tenant),
        params=params,
        tags=["patchcycle", "falcon", f"tenant:{tenant.id}"],
        doc_md=(
            f"Falcon sensor roll-out of **{tenant.display_name}** "
            + (f"(`{rollout.schedule}` UTC, " if rollout.schedule else "(")
            + f"after each `{tenant.dag_id}` run, and on demand)"
            + ": finds every host of the tenant in every cloud without a Falcon sensor, with one older than "
            "the tenant's version policy or in reduced-functionality mode, each with its reason, and "
            "validates every host through the Falcon API (device record in the tenant's CID, version, "
            "RFM, host group, prevention and sensor-update policies applied). Evidence: "
            f"`s3://{tenant.evidence.bucket}/falcon-rollout/<day>/runs/<run>/pack/` (`rollout.json`, "
            "`hosts.csv`, a manifest chained to the previous roll-out). A scope that could not be read, or "
            "a host that fails validation, fails the run after its pack is written." + held
        ),
        dagrun_timeout=dt.timedelta(days=1),
    ) as dag:
        find = SensorNeedsOperator(task_id=FIND_TASK_ID, **ids)
        validate = ValidateSensorsOperator(task_id="validate", **ids)
        if tenant.clouds.aws is not None:
            find >> InstallSensorsAwsOperator(task_id="install_aws", **ids) >> validate
        if tenant.clouds.azure is not None:
            find >> InstallSensorsArcOperator(task_id="install_azure", **ids) >> validate
        if tenant.clouds.gcp is not None:
            find >> InstallSensorsGcpOperator(task_id="install_gcp", **ids) >> validate
        evidence = RolloutEvidenceOperator(task_id="evidence", **ids)
        find >> validate >> evidence
        if rollout.prevention_phases:
            # Detection to Prevention: decide (count, propose, page once) -> the cycle's approval step ->
            # promote; the evidence waits for them and reports the phases.
            from patchcycle.operators.falcon_phases import (
                APPROVAL_TASK_ID,
                DECIDE_TASK_ID,
                PROMOTE_TASK_ID,
                PhaseApprovalOperator,
                PhaseDecideOperator,
                PhasePromoteOperator,
            )

            decide = PhaseDecideOperator(task_id=DECIDE_TASK_ID, **ids)
            approval = PhaseApprovalOperator(task_id=APPROVAL_TASK_ID, **ids)
            validate >> decide >> approval >> PhasePromoteOperator(task_id=PROMOTE_TASK_ID, **ids) >> evidence
    return dag


SAML_CERTIFICATES_CRON = "30 6 * * *"
"""Daily at 06:30 UTC: a certificate that crossed a tier overnight is paged and mailed before work starts."""
PLATFORM_TASK_ID = "_platform"
"""The platform's own watch (a leading underscore: no tenant id can take it)."""


def build_saml_certificates_dag(tenants: list[Tenant]) -> DAG:
    """The daily SAML certificate watch: one task per tenant that watches (``saml.enabled``), and one for
    the platform; each reads, decides, pages, mails and records on its own, so one tenant's unreadable
    cloud never holds up another's."""
    from airflow.configuration import conf

    from patchcycle.operators.saml import PLATFORM, SamlCertificateWatchOperator

    delay = dt.timedelta(seconds=conf.getfloat("patchcycle", "retry_delay_seconds", fallback=300.0))
    with DAG(
        dag_id="saml_certificates",
        description="Daily SAML identity-provider certificate watch: expiry tiers, pages, renewal runbooks",
        schedule=CronTriggerTimetable(SAML_CERTIFICATES_CRON, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "sre-platform", "retries": 2, "retry_delay": delay},
        tags=["patchcycle", "saml"],
        doc_md=(
            "Every morning at 06:30 UTC, for each tenant and the platform: every SAML identity-provider "
            "configuration its clouds trust (IAM SAML providers in each AWS account, Entra ID enterprise "
            "applications, workforce pool providers, Identity Center's identity source) is read, and each "
            "certificate judged: days left against the tenant's tiers (60/30/14/7 by default), expired, "
            "weak key, SHA-1 signature, unparseable metadata. One PagerDuty incident per certificate and "
            "tier, resolved once it is renewed; the SREs get the renewal runbook attached. Evidence: "
            "`s3://<evidence bucket>/saml/<day>/runs/<run>/` (SOC 2 CC6.1, CC7.1). A scope that could not "
            "be read fails its task after the rest is done. Backfill with "
            "`airflow backfill create --dag-id saml_certificates` (a backfilled day records what the "
            "clouds trust now: they keep no history)."
        ),
        dagrun_timeout=dt.timedelta(hours=2),
    ) as dag:
        for tenant in tenants:
            if tenant.saml.enabled:
                SamlCertificateWatchOperator(task_id=tenant.id, target_id=tenant.id)
        SamlCertificateWatchOperator(task_id=PLATFORM_TASK_ID, target_id=PLATFORM)
    return dag
