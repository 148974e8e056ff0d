"""Freeze the cycle plan: the tenant's baselines resolved against each cloud's patch catalog as of the
cycle date.

The catalog is collected from per-cloud readers (:data:`CATALOG_READERS`), each reading the source its
vendor documents for each OS family; a tenant reads only the clouds it has. On AWS the plan first
makes the tenant's own SSM patch baselines (one per OS family, approving up to the cycle's cutoff),
binds the tenant's hosts to them through patch groups, and runs one Scan per account and region; the
task defers while SSM scans and reads the result when it resumes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.config.models import OsFamily, Tenant
from patchcycle.domain.catalog import (
    AVAILABLE_PATCHES_FAMILIES,
    AVAILABLE_PATCHES_SOURCE,
    PATCH_GROUP_TAG,
    SCAN_SOURCE,
    BaselineRequest,
    baseline_request,
    catalog_patch_from_instance_patch,
    moment,
    scan_first_seen,
    scan_notes,
    scanned_hosts,
    ssm_approved_list,
    supports_approval_date,
)
from patchcycle.domain.fast_track import (
    ApprovedList,
    FastTrackPolicy,
    kev_clock_lines,
    kev_clocks,
    zero_day_approved_patches,
)
from patchcycle.domain.inventory import environment_for_tag
from patchcycle.domain.plan import (
    INSTALL_VARIANTS,
    LEDGER_PREFIX,
    CatalogPatch,
    PlanRisk,
    age_by_ledger,
    approval_cutoff,
    build_cycle_plan,
    catalog_patch_from_ssm,
    install_override_list,
    ledger_additions,
    merge_ledgers,
)
from patchcycle.domain.platforms import SSM_PRODUCTS, os_family_from_ssm
from patchcycle.domain.run_conf import (
    CYCLE_PARAMS,
    conf_problems,
    cycle_date_problem,
    late_scheduled_run_problem,
    run_info,
)
from patchcycle.domain.schedule import resolve_cycle_date
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, run_type_name
from patchcycle.reports.store import CyclePaths

AWS_SCAN_RECORD = "plan-aws-scans.json"
PLAN_INFO_RECORD = "plan-info.json"
RUN_RECORD = "run.json"
"""The run's own facts, written first (before any cloud is read): the evidence sweep finds runs by it."""
"""The frozen plan's facts (what the task returns), kept so a later attempt returns the same plan."""


def run_params_problems(params: dict[str, Any], environments: list[str]) -> tuple[list[str], list[str]]:
    """The run's environments in the tenant's order, and what is wrong with the params: environments the
    tenant does not have, a soak override without a reason."""
    wanted = params.get("environments") or environments
    problems: list[str] = []
    unknown = [e for e in wanted if e not in environments]
    if unknown:
        problems.append(
            f"params.environments: {unknown} not configured for this tenant (it has {environments})"
        )
    if (
        params.get("soak_hours_override") is not None
        and not (params.get("soak_override_reason") or "").strip()
    ):
        problems.append("params.soak_override_reason: a soak override needs a recorded reason")
    return [e for e in environments if e in wanted], problems


class PlanContext(CycleContext):
    """The plan task's execution: there is no plan yet, so its records and events are filed under the
    cycle date it resolves from the run (:meth:`PlanCycleOperator._run_scope` sets it), not under a plan's
    facts."""

    cycle_date: dt.date | None = None

    @property
    def paths(self) -> CyclePaths:
        """The run's evidence keys once the cycle date is resolved; ``RuntimeError`` before."""
        if self.cycle_date is None:
            raise RuntimeError("no cycle date yet")
        return CyclePaths(self.cycle_date.isoformat(), self.run_id)


@dataclass
class CatalogRead:
    """What one cloud's reader found: catalog entries, and per-family notes on what it could not read."""

    patches: list[CatalogPatch] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


# A cloud's catalog reader: (tenant, cycle date, what the plan prepared for that cloud, event log).
CatalogReader = Callable[[Tenant, dt.date, dict[str, Any], EventLog], CatalogRead]


def run_facts(cycle: CycleContext, dag_id: str, cycle_date: dt.date) -> dict[str, Any]:
    """Who started the run, when and how, as the run record keeps them: enough for a pack written after
    the run ended without one (see :mod:`patchcycle.operators.sweep`) to name the run as Airflow did."""
    run = cycle.dag_run

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "dag_id": dag_id,
        "run_id": cycle.run_id,
        "run_type": run_type_name(run),
        "triggered_by": getattr(run, "triggering_user_name", None),
        "start_date": iso(getattr(run, "start_date", None)),
        "run_after": iso(getattr(run, "run_after", None)),
        "logical_date": iso(cycle.airflow.get("logical_date")),
        "cycle_date": cycle_date.isoformat(),
    }


def cloud_has_hosts(tenant: Tenant, cloud: str) -> bool:
    """Whether the tenant declares ``cloud`` (``aws``, ``azure`` or ``gcp``)."""
    return getattr(tenant.clouds, cloud, None) is not None


# -- AWS ---------------------------------------------------------------------------------------
def aws_approved_lists(
    tenant: Tenant, cycle_date: dt.date, risk: PlanRisk | None, log: EventLog
) -> dict[str, ApprovedList] | None:
    """What each of the tenant's SSM baselines approves by list this cycle (None: the tenant has no risk
    policy, and the cycle leaves ApprovedPatches alone). DescribeAvailablePatches families read AWS's
    catalog first, in the first account and region (it is AWS's, the same in every one), so the fixes the
    plan will fast-track are approved before the Scan (:func:`ssm_approved_list`)."""
    from patchcycle.hooks.aws import SsmFleetHook

    if risk is None or tenant.clouds.aws is None:
        return None
    account = tenant.clouds.aws.accounts[0]
    hook = SsmFleetHook(aws_conn_id=tenant.aws_connection_id(account), region_name=account.regions[0])
    lists: dict[str, ApprovedList] = {}
    for baseline in sorted(tenant.baselines, key=lambda b: b.os_family.value):
        family = OsFamily(baseline.os_family)
        listed = None
        if family in AVAILABLE_PATCHES_FAMILIES:
            listed = [catalog_patch_from_ssm(r, family) for r in hook.available_patches(SSM_PRODUCTS[family])]
        lists[family.value] = ssm_approved_list(baseline, cycle_date, risk, listed)
        log.record(
            "plan.approved_list",
            target=f"aws:{account.account_id}:{account.regions[0]}",
            os_family=family.value,
            approved_patches=list(lists[family.value].entries),
            left_out=list(lists[family.value].left_out),
            source=AVAILABLE_PATCHES_SOURCE if listed is not None else "feeds",
        )
    return lists


def prepare_aws_catalog(
    tenant: Tenant,
    cycle_date: dt.date,
    run_id: str,
    environments: list[str],
    log: EventLog,
    approved: Mapping[str, ApprovedList] | None = None,
    zero_day: bool = False,
) -> dict[str, Any]:
    """Per account and region: the tenant's patch baseline for each family (approving up to the
    cycle's cutoff, and the ``approved`` lists when the tenant has a risk policy), its patch group, the
    ``Patch Group`` tag on the tenant's hosts of that family, and one AWS-RunPatchBaseline Scan of them
    all. Returns what the read step needs (JSON).

    A ``zero_day`` plan leaves an existing baseline's approval rules (the monthly plan's cutoff) as they
    are and adds its fixes to the baseline's ApprovedPatches (:func:`zero_day_approved_patches`): the
    fixes are then Missing in the Scan whatever their age, and nothing else the baseline approves moves
    until the next monthly plan."""
    from patchcycle.hooks.aws import Ec2BackupHook, SsmFleetHook

    scans = []
    rate = tenant.environment(environments[0]).rate_control  # the first stage's: Scan installs nothing
    families = {OsFamily(b.os_family): b for b in tenant.baselines}
    for account in tenant.clouds.aws.accounts if tenant.clouds.aws else []:
        conn_id = tenant.aws_connection_id(account)
        for region in account.regions:
            ssm = SsmFleetHook(aws_conn_id=conn_id, region_name=region)
            ec2 = Ec2BackupHook(aws_conn_id=conn_id, region_name=region)
            baselines: dict[str, str] = {}
            for family, baseline in sorted(families.items()):
                listed = approved[family.value].entries if approved is not None else None
                request = baseline_request(
                    tenant.id, baseline, approval_cutoff(cycle_date, baseline.approve_after_days), listed
                )
                baseline_id = ssm.patch_baseline_named(request.name)
                if zero_day and baseline_id is not None:
                    request, listed = _extend_approved_patches(ssm, baseline_id, request, listed)
                    action = "approved_patches_extended"
                elif baseline_id is None:
                    token = str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{account.account_id}/{region}/{family}")
                    )
                    baseline_id = ssm.create_patch_baseline(request.create_kwargs(), token)
                    action = "created"
                else:
                    ssm.update_patch_baseline(baseline_id, request.update_kwargs())
                    action = "updated"
                registered = ssm.register_patch_group(
                    baseline_id, request.patch_group, request.operating_system
                )
                baselines[family.value] = baseline_id
                log.record(
                    "plan.patch_baseline",
                    target=f"aws:{account.account_id}:{region}",
                    result=action,
                    baseline_id=baseline_id,
                    name=request.name,
                    os_family=family.value,
                    patch_group=request.patch_group,
                    patch_group_registered=registered,
                    approval_rules=request.approval_rules,
                    **({"approved_patches": list(listed)} if listed is not None else {}),
                )
            hosts, to_tag = _tenant_hosts_by_family(tenant, ssm, ec2, set(families))
            tagging_calls = sum(
                ec2.tag_instances(ids, {PATCH_GROUP_TAG: group})
                for group, ids in sorted(to_tag.items())
                if ids
            )
            scope = {
                "conn_id": conn_id,
                "account": account.account_id,
                "region": region,
                "baselines": baselines,
                "hosts": hosts,
            }
            groups = sorted(baseline_group(tenant, f) for f in hosts)
            if groups:
                command = ssm.send_patch_scan(
                    target_tags=(PATCH_GROUP_TAG, groups),
                    snapshot_id=str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{account.account_id}/{region}")
                    ),
                    max_concurrency=rate.max_concurrency,
                    max_errors=rate.max_errors,
                    comment=f"patchcycle {tenant.id} {cycle_date.isoformat()} plan scan",
                )
                scope["command_id"] = command["CommandId"]
                scope["requested_at"] = _iso(command.get("RequestedDateTime"))
            scans.append(scope)
            log.record(
                "plan.scan_sent" if groups else "plan.scan_skipped",
                target=f"aws:{account.account_id}:{region}",
                command_id=scope.get("command_id"),
                document="AWS-RunPatchBaseline",
                operation="Scan",
                patch_groups=groups,
                hosts=sum(len(v) for v in hosts.values()),
                tagged=sum(len(v) for v in to_tag.values()),
                create_tags_calls=tagging_calls,
            )
    return {"scans": scans}


def _extend_approved_patches(
    ssm: Any, baseline_id: str, request: BaselineRequest, listed: Sequence[str] | None
) -> tuple[BaselineRequest, list[str]]:
    """A zero-day plan's change to an existing baseline: its fixes added to ApprovedPatches, nothing else
    (UpdatePatchBaseline leaves the fields it is not given unchanged). Returns the request with the
    baseline's approval rules as they stand, and the list as it now is, for the plan's record."""
    current = ssm.patch_baseline(baseline_id)
    before = list(current.get("ApprovedPatches") or [])
    merged = zero_day_approved_patches(listed or (), before)
    if merged != before:
        fields = {k: v for k, v in request.update_kwargs().items() if k.startswith("ApprovedPatches")}
        ssm.update_patch_baseline(baseline_id, {**fields, "ApprovedPatches": merged})
    return replace(request, approval_rules=current.get("ApprovalRules") or {}), merged


def baseline_group(tenant: Tenant, family: str) -> str:
    """The patch group of the tenant's hosts of one OS family."""
    from patchcycle.domain.catalog import patch_group

    return patch_group(tenant.id, family)


def _tenant_hosts_by_family(
    tenant: Tenant, ssm: Any, ec2: Any, families: set[OsFamily]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The tenant's managed instances (an environment tag the tenant patches) of its baseline families,
    by family; and those whose ``Patch Group`` tag is not yet their family's group, by group."""
    tags = ec2.instance_tags([tenant.host_tags.environment, PATCH_GROUP_TAG])
    hosts: dict[str, list[str]] = defaultdict(list)
    to_tag: dict[str, list[str]] = defaultdict(list)
    for info in ssm.managed_instances():
        family = os_family_from_ssm(info.get("PlatformName", ""), info.get("PlatformVersion", ""))
        host_tags = tags.get(info["InstanceId"], {})
        if family not in families or not environment_for_tag(
            tenant, host_tags.get(tenant.host_tags.environment)
        ):
            continue
        hosts[family.value].append(info["InstanceId"])
        group = baseline_group(tenant, family.value)
        if host_tags.get(PATCH_GROUP_TAG) != group:
            to_tag[group].append(info["InstanceId"])
    return {k: sorted(v) for k, v in hosts.items()}, {k: sorted(v) for k, v in to_tag.items()}


def read_aws_catalog(
    tenant: Tenant, cycle_date: dt.date, prepared: dict[str, Any], log: EventLog
) -> CatalogRead:
    """Each family's catalog from the SSM source AWS documents for it.

    Amazon Linux 2 and Windows Server: DescribeAvailablePatches (read once, the catalog is AWS's).
    Every other family: the Missing patches of each host's Scan against the tenant's baseline, read
    with DescribeInstancePatches, which is per instance (no batch form): one call per host that the
    Scan found missing something (its patch state, read in batches of 50, says which), more for hosts
    with over 100 missing.
    """
    from patchcycle.hooks.aws import SsmFleetHook

    read = CatalogRead()
    families = {OsFamily(b.os_family) for b in tenant.baselines}
    listed = sorted(families & AVAILABLE_PATCHES_FAMILIES)
    scans = prepared.get("scans", [])
    if listed and scans:
        first = scans[0]
        hook = SsmFleetHook(aws_conn_id=first["conn_id"], region_name=first["region"])
        for family in listed:
            rows = hook.available_patches(SSM_PRODUCTS[family])
            read.patches.extend(catalog_patch_from_ssm(row, family) for row in rows)
            log.record(
                "plan.catalog_read",
                target=f"aws:{first['account']}:{first['region']}",
                source=AVAILABLE_PATCHES_SOURCE,
                os_family=family.value,
                entries=len(rows),
            )
    for scope in scans:
        hosts = {f: ids for f, ids in scope["hosts"].items() if OsFamily(f) not in AVAILABLE_PATCHES_FAMILIES}
        if not hosts:
            continue
        hook = SsmFleetHook(aws_conn_id=scope["conn_id"], region_name=scope["region"])
        states = hook.patch_states([h for ids in hosts.values() for h in ids])
        requested = moment(scope.get("requested_at"))
        for family_name, ids in sorted(hosts.items()):
            family = OsFamily(family_name)
            baseline_id = scope["baselines"].get(family_name)
            found = scanned_hosts(ids, states, baseline_id, requested)
            calls, unparsed, entries = 0, 0, 0
            for host_id in found.to_read:
                rows, n = hook.instance_patches(host_id, ["Missing"])
                calls += n
                first_seen = scan_first_seen(
                    family, moment(states[host_id].get("OperationEndTime")), requested, _now()
                )
                for row in rows:
                    patch = catalog_patch_from_instance_patch(
                        row,
                        family,
                        approved_by_source=supports_approval_date(family),
                        first_seen=first_seen,
                    )
                    if patch is None:
                        unparsed += 1
                    else:
                        read.patches.append(patch)
                        entries += 1
            where = f"aws:{scope['account']}:{scope['region']}"
            read.notes[family_name].extend(scan_notes(where, len(found.unread), unparsed))
            log.record(
                "plan.catalog_read",
                target=where,
                source=SCAN_SOURCE,
                os_family=family_name,
                baseline_id=baseline_id,
                hosts=len(ids),
                hosts_not_scanned=len(found.unread),
                entries=entries,
                describe_instance_patches_calls=calls,
            )
    return read


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- Azure Arc and GCP: the clouds' own assessments, read in pages (no per-host call) -------------
def read_azure_catalog(
    tenant: Tenant, cycle_date: dt.date, prepared: dict[str, Any], log: EventLog
) -> CatalogRead:
    """The updates Update Manager's assessments list for the tenant's Arc machines (Resource Graph)."""
    from patchcycle.hooks.azure_arc import read_arc_catalog

    return CatalogRead(patches=list(read_arc_catalog(tenant, log)))


def read_gcp_catalog(
    tenant: Tenant, cycle_date: dt.date, prepared: dict[str, Any], log: EventLog
) -> CatalogRead:
    """The updates OS Config's inventories list as available on the tenant's GCE instances."""
    from patchcycle.operators.catalog_gcp import read_gcp_catalog as read

    return CatalogRead(patches=list(read(tenant, log)))


# Every cloud's catalog reader; a tenant reads the clouds it has (any mix, one cloud alone included).
CATALOG_READERS: dict[str, CatalogReader] = {
    "aws": read_aws_catalog,
    "azure": read_azure_catalog,
    "gcp": read_gcp_catalog,
}


class PlanCycleOperator(WaitArguments, CycleOperator):
    """Resolve the cycle date, read each cloud's catalog, build the plan, store it with its install list.

    On AWS the SSM Scan that assesses the tenant's hosts against its baselines is waited for deferred
    (``run_commands``), as every cloud wait is; ``deferrable=False`` polls in the task (operator tests).
    """

    context_class = PlanContext

    def __init__(
        self,
        *,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 240,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

    def run(self, cycle: PlanContext, log: EventLog) -> dict[str, Any] | None:
        """Write the run record, then freeze the plan once per run: a retry returns the plan an earlier
        attempt froze, a refused run gets an empty plan; on AWS first prepare the baselines and wait for
        their Scan. Return the plan's facts, also kept in ``plan-info.json``."""
        tenant = self.tenant
        cycle_date, environments, refusals = self._run_scope(cycle)
        paths = CyclePaths(cycle_date.isoformat(), cycle.run_id)
        cycle.write_record(paths.run_file(RUN_RECORD), run_facts(cycle, self.dag_id, cycle_date))
        # A plan is frozen once per run: a retry or a cleared task returns the plan an earlier attempt
        # froze (and the stages after it judge hosts by it), and never sends a second Scan.
        frozen = cycle.read_record(paths.run_file(PLAN_INFO_RECORD), required=False)
        if frozen is not None:
            log.record("plan.reused", target=tenant.id, plan_hash=frozen["plan_hash"])
            return frozen
        if refusals:
            return self._refuse(cycle, log, cycle_date, refusals)
        prepared: dict[str, Any] = {}
        scans = cycle.read_record(paths.run_file(AWS_SCAN_RECORD), required=False)
        if scans is not None:
            prepared["aws"] = scans
            log.record(
                "plan.scan_resumed",
                target=tenant.id,
                command_ids=[s["command_id"] for s in scans.get("scans", []) if s.get("command_id")],
            )
        elif tenant.clouds.aws is not None:
            prepared["aws"] = self._prepare_aws(cycle, log, cycle_date, environments)
            cycle.write_record(paths.run_file(AWS_SCAN_RECORD), prepared["aws"])
        commands = [
            {"command_id": s["command_id"], "conn_id": s["conn_id"], "region": s["region"]}
            for s in prepared.get("aws", {}).get("scans", [])
            if s.get("command_id")
        ]
        if commands:
            return self.wait_for(cycle, "run_commands", {"commands": commands})
        return self._freeze(
            cycle, log, cycle_date, environments, prepared, {"status": "done", "commands": {}}
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the AWS Scan: read the catalogs and freeze the plan; return its facts."""
        # The run's scope is a pure function of the run (params, logical date, run_after): resolved
        # again here rather than carried through the trigger.
        cycle = self.cycle_context(context)
        cycle_date, environments, _ = self._run_scope(cycle)
        paths = CyclePaths(cycle_date.isoformat(), cycle.run_id)

        def complete(cycle: PlanContext, ev: dict[str, Any], log: EventLog) -> dict[str, Any]:
            if ev.get("status") not in ("done", "timeout"):
                raise AirflowFailException(f"unexpected trigger event: {ev}")
            prepared = {"aws": cycle.read_record(paths.run_file(AWS_SCAN_RECORD))}
            return self._freeze(cycle, log, cycle_date, environments, prepared, ev)

        return self.resume(cycle, event, complete)

    def _run_scope(self, cycle: PlanContext) -> tuple[dt.date, list[str], list[str]]:
        """The run's cycle date, its environments, and why it must be refused (empty: it may go on).

        Refused before any change: a conf key the DAG does not take, a non-finite number, an environment
        the tenant lacks, a soak override without a reason, a cycle date out of bounds, a scheduled run
        that starts late (unless the tenant patches late runs). A refused run is filed under the cycle
        of its logical date, and still leaves an evidence pack saying why.
        """
        params = cycle.params
        dag_run = cycle.dag_run
        tenant = self.tenant
        problems = conf_problems(getattr(dag_run, "conf", None), CYCLE_PARAMS, dag=self.dag_id)
        environments, param_problems = run_params_problems(
            params, [e.name.value for e in tenant.environments]
        )
        problems += param_problems
        by_logical = resolve_cycle_date(
            requested=None, logical_date=cycle.airflow.get("logical_date"), run_after=dag_run.run_after
        )
        try:
            cycle_date = resolve_cycle_date(
                requested=params.get("cycle_date"),
                logical_date=cycle.airflow.get("logical_date"),
                run_after=dag_run.run_after,
            )
        except ValueError as exc:
            problems.append(str(exc))
            cycle_date = by_logical
        if problem := cycle_date_problem(cycle_date, now=dag_run.run_after, onboarded_on=tenant.onboarded_on):
            problems.append(problem)
            cycle_date = by_logical
        if not tenant.schedule.patch_late_runs and (
            late := late_scheduled_run_problem(
                run_type=run_type_name(dag_run),
                scheduled_for=cycle.airflow.get("logical_date") or dag_run.run_after,
                started_at=dag_run.start_date,
                late_after=timedelta(hours=tenant.schedule.late_after_hours),
                dag_id=self.dag_id,
                cycle_date=cycle_date,
            )
        ):
            problems.append(late)
        cycle.cycle_date = cycle_date
        return cycle_date, ([] if problems else environments), problems

    def _refuse(
        self, cycle: PlanContext, log: EventLog, cycle_date: dt.date, refusals: list[str]
    ) -> dict[str, Any]:
        """Freeze an empty plan for a refused run (no cloud is read or changed) and say why: the run goes
        straight to its evidence pack, and its outcome task fails it."""
        for problem in refusals:
            self.log.error("the run is refused; nothing was changed: %s", problem)
        paths = CyclePaths(cycle_date.isoformat(), cycle.run_id)
        plan = build_cycle_plan(self.tenant, cycle_date, [])
        plan_url = cycle.store.put_json(paths.plan(plan.hash), plan.to_dict())
        info = run_info(cycle_date=plan.cycle_date, plan_hash=plan.hash, plan_url=plan_url, refused=refusals)
        info.update(self.run_extras(cycle))
        log.record(
            "cycle.refused",
            target=self.tenant.id,
            result="refused",
            reasons=refusals,
            run_type=run_type_name(cycle.dag_run),
        )
        cycle.write_record(paths.run_file(PLAN_INFO_RECORD), info)
        return info

    def _freeze(
        self,
        cycle: PlanContext,
        log: EventLog,
        cycle_date: dt.date,
        environments: list[str],
        prepared: dict[str, Any],
        event: dict[str, Any],
    ) -> dict[str, Any]:
        params = self.run_params(cycle)
        tenant = self.tenant
        for scope in prepared.get("aws", {}).get("scans", []):
            if scope.get("command_id"):
                log.record(
                    "plan.scan_finished",
                    target=f"aws:{scope['account']}:{scope['region']}",
                    result=event.get("status", "done"),
                    command_id=scope["command_id"],
                    status=(event.get("commands") or {}).get(scope["command_id"]),
                )
        catalog, notes = self._read_catalogs(cycle, cycle_date, prepared, log)
        aws_risk = prepared.get("aws", {}).get("risk", {})
        feeds = self._feeds(cycle, log, aws_risk.get("feeds_prefix"))
        risk = self._plan_risk(cycle, feeds, aws_risk.get("approved", {})) if feeds is not None else None
        plan = build_cycle_plan(
            tenant, cycle_date, catalog, self._rds_os_updates(log), source_notes=notes, risk=risk
        )
        paths = CyclePaths(plan.cycle_date, cycle.run_id)
        plan_url = cycle.store.put_json(paths.plan(plan.hash), plan.to_dict())
        # One install list per variant: the full plan, and the plan without kernel updates for hosts
        # whose sensor does not support the new kernel (the pre-flight kernel gate decides who).
        install_urls = {
            variant: cycle.store.put_bytes(
                paths.install_list(plan.hash, variant),
                install_override_list(plan, variant).encode(),
                "application/x-yaml",
            )
            for variant in INSTALL_VARIANTS
        }
        # The SLA clock of each open KEV item, in the dry run's output and the plan.frozen event.
        clocks = kev_clocks(plan.to_dict(), feeds, cycle_date) if feeds is not None else []
        for line in [*plan.summary_lines(), *kev_clock_lines(clocks)]:
            self.log.info("%s", line)
        info = run_info(
            cycle_date=plan.cycle_date,
            plan_hash=plan.hash,
            plan_url=plan_url,
            install_list_urls=install_urls,
            approved_patches=len(plan.patch_ids),
            environments=environments,
            params=params,
        )
        info.update(self.run_extras(cycle))
        dry_run = info["dry_run"]
        log.record(
            "plan.frozen",
            target=tenant.id,
            plan_hash=plan.hash,
            cycle_date=plan.cycle_date,
            approved_patches=len(plan.patch_ids),
            environments=environments,
            dry_run=dry_run,
            run_type=run_type_name(cycle.dag_run),
            kev_clocks=[c.to_dict() for c in clocks],
            **({"risk": plan.risk} if plan.risk is not None else {}),
        )
        if params.get("soak_hours_override") is not None:
            log.record(
                "soak.override_requested",
                target=tenant.id,
                soak_hours=params["soak_hours_override"],
                reason=params["soak_override_reason"],
            )
        if info["window_override_reason"]:
            log.record("window.override_requested", target=tenant.id, reason=info["window_override_reason"])
        cycle.write_record(paths.run_file(PLAN_INFO_RECORD), info)
        return info

    # -- what another kind of cycle (the zero-day cycle) changes ------------------------------------
    def run_params(self, cycle: PlanContext) -> Mapping[str, Any]:
        """The run's params as its facts take them (a zero-day cycle adds its emergency overrides)."""
        return cycle.params

    def run_extras(self, cycle: PlanContext) -> dict[str, Any]:
        """Facts of the run kept beside the plan's (a zero-day cycle: its CVEs, trigger and policy)."""
        return {}

    # -- risk: the feeds the plan reads, and what they change ------------------------------------
    def zero_day_cves(self, cycle: PlanContext) -> tuple[str, ...] | None:
        """The CVEs this run plans only the fixes of (a zero-day cycle); None: the regular plan."""
        return None

    def _plans_risk(self, cycle: PlanContext) -> bool:
        """Whether the feeds decide what is planned: the tenant fast-tracks, or this is a zero-day run."""
        return self.tenant.risk.fast_track or self.zero_day_cves(cycle) is not None

    def _feeds(self, cycle: PlanContext, log: EventLog, pinned: str | None) -> Any:
        """The feeds the evidence reads too (the newest refresh, else the committed snapshots); ``pinned``
        is the refresh the AWS step of this plan read before its Scan ("" for the committed snapshots).

        Feeds that cannot be read fail a plan they decide; any other plan goes on without KEV clocks."""
        from patchcycle.operators.feeds import cycle_feeds

        try:
            feeds, prefix = cycle_feeds(cycle.store.hook, pinned)
        except Exception as exc:  # noqa: BLE001 - only the clocks need them here; said in the evidence
            if self._plans_risk(cycle):
                raise
            log.record("plan.feeds_unreadable", target="feeds", result="failed", error=str(exc)[:300])
            return None
        log.record(
            "plan.feeds_read",
            target=feeds.source,
            kev_catalog_version=feeds.kev.catalog_version,
            epss_score_date=feeds.epss.score_date,
            prefix=prefix,
        )
        return feeds

    def _plan_risk(self, cycle: PlanContext, feeds: Any, approved: Mapping[str, Any]) -> PlanRisk | None:
        """What the feeds bring to this plan (None: nothing), with what the tenant's SSM baselines were
        told to approve by list before the Scan (``approved``: per family, an ApprovedList as JSON)."""
        if not self._plans_risk(cycle):
            return None
        zero_day = self.zero_day_cves(cycle)
        return PlanRisk(
            feeds=feeds,
            policy=FastTrackPolicy.of(self.tenant.risk) if zero_day is None else FastTrackPolicy(),
            zero_day_cves=zero_day,
            source_approved_cves={
                f: tuple(a["entries"])
                for f, a in approved.items()
                if OsFamily(f) not in AVAILABLE_PATCHES_FAMILIES
            },
            notes={f: tuple(a["notes"]) for f, a in approved.items()},
        )

    def _prepare_aws(
        self, cycle: PlanContext, log: EventLog, cycle_date: dt.date, environments: list[str]
    ) -> dict[str, Any]:
        """The AWS step before the Scan: with a risk policy, the feeds (pinned for the rest of the plan)
        and each baseline's approved list; then the baselines, patch groups and the Scan."""
        tenant = self.tenant
        risk, pinned = None, None
        if self._plans_risk(cycle):
            from patchcycle.operators.feeds import cycle_feeds

            feeds, prefix = cycle_feeds(cycle.store.hook, None)
            risk, pinned = self._plan_risk(cycle, feeds, {}), prefix or ""
        lists = aws_approved_lists(tenant, cycle_date, risk, log)
        prepared = prepare_aws_catalog(
            tenant,
            cycle_date,
            cycle.run_id,
            environments,
            log,
            lists,
            zero_day=self.zero_day_cves(cycle) is not None,
        )
        if lists is not None:
            prepared["risk"] = {"feeds_prefix": pinned, "approved": {f: asdict(a) for f, a in lists.items()}}
        return prepared

    def _read_catalogs(
        self, cycle: PlanContext, cycle_date: dt.date, prepared: dict[str, Any], log: EventLog
    ) -> tuple[list[CatalogPatch], dict[str, list[str]]]:
        """Every cloud's catalog of the tenant's families, aged by the ledger, and what the plan must say
        about its sources (a cloud that could not be read, families whose source has no approval date)."""
        tenant = self.tenant
        catalog: list[CatalogPatch] = []
        notes: dict[str, list[str]] = defaultdict(list)
        for cloud, reader in CATALOG_READERS.items():
            if not cloud_has_hosts(tenant, cloud):
                continue
            try:
                found = reader(tenant, cycle_date, prepared.get(cloud, {}), log)
            except Exception as exc:  # noqa: BLE001 - a cloud's fault halts its own scope, not the plan
                # The inventory marks that cloud's scopes failed and their hosts are never patched; the
                # other clouds' hosts are planned from the sources that answered, and the plan says so.
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.record("plan.catalog_unreadable", target=cloud, result="failed", error=error)
                for baseline in tenant.baselines:
                    notes[OsFamily(baseline.os_family).value].append(
                        f"the {cloud} catalog source could not be read ({error}); planned without it"
                    )
                continue
            catalog.extend(found.patches)
            for family, lines in found.notes.items():
                notes[family].extend(lines)
        catalog = self._aged_by_ledger(cycle, catalog, log)
        scanned = {
            f
            for scope in prepared.get("aws", {}).get("scans", [])
            for f, ids in scope["hosts"].items()
            if ids
        }
        for baseline in tenant.baselines:
            family = OsFamily(baseline.os_family)
            if family.value in scanned and not supports_approval_date(family):
                notes[family.value].extend(
                    baseline_request(tenant.id, baseline, approval_cutoff(cycle_date, 0)).notes
                )
        return catalog, notes

    def _aged_by_ledger(
        self, cycle: PlanContext, catalog: list[CatalogPatch], log: EventLog
    ) -> list[CatalogPatch]:
        """Undated catalog entries aged from the first day a plan of this tenant saw them (the ledger
        in its evidence bucket, updated here; see :func:`patchcycle.domain.plan.age_by_ledger`)."""
        parts = [cycle.store.get_json(key) for key in sorted(cycle.store.keys(LEDGER_PREFIX))]
        ledger = merge_ledgers(parts)
        now = _now()
        aged, updated = age_by_ledger(catalog, ledger, now.date())
        added = ledger_additions(ledger, updated)
        if added:
            key = f"{LEDGER_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
            cycle.store.put_json(key, added)
            log.record(
                "plan.first_seen_recorded", target=cycle.store.url(key), new=len(added), known=len(ledger)
            )
        return aged

    def _rds_os_updates(self, log: EventLog) -> list[str]:
        """The OS updates RDS offers the DB instances of every account that patches RDS, now."""
        from patchcycle.hooks.aws import RdsHook

        tenant = self.tenant
        offered: set[str] = set()
        for account in tenant.clouds.aws.accounts if tenant.clouds.aws else []:
            if not account.rds:
                continue
            for region in account.regions:
                hook = RdsHook(aws_conn_id=tenant.aws_connection_id(account), region_name=region)
                found = {str(d.get("Description") or "").strip() for d in hook.pending_os_updates().values()}
                offered |= {d for d in found if d}
                log.record(
                    "plan.rds_os_updates_read",
                    target=f"aws:{account.account_id}:{region}",
                    offered=sorted(found - {""}),
                )
        return sorted(offered)
