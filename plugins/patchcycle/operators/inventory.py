"""Inventory each cloud and Falcon in parallel, merge into one normalized host table, then gate it.

Each cloud's task reads every scope (AWS account and region, Azure subscription, GCP project) of the
tenant. A scope that cannot be read (throttled past its retries, refused, timed out) is recorded as
failed with the error and the other scopes go on: its hosts are absent from this cycle's inventory,
the evidence says which scope halted and why, and the cycle cannot end as completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from patchcycle.domain.inventory import (
    normalize_arc_machines,
    normalize_gcp_instances,
    normalize_rds_instances,
    normalize_ssm_hosts,
    plan_patch_index,
    unregistered_ec2_hosts,
)
from patchcycle.domain.plan import planned_patch_ids, planned_rds_updates
from patchcycle.domain.preflight import evaluate_preflight
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog

CLOUDS = ("aws", "azure", "gcp")


def cloud_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this scope's cloud did not answer", as opposed to a bug of ours."""
    from azure.core.exceptions import AzureError
    from botocore.exceptions import BotoCoreError, ClientError
    from google.api_core.exceptions import GoogleAPIError
    from requests.exceptions import RequestException

    from patchcycle.hooks.azure_arc import ArcError
    from patchcycle.hooks.falcon import FalconApiError

    return (
        AzureError,
        ArcError,
        BotoCoreError,
        ClientError,
        GoogleAPIError,
        RequestException,
        FalconApiError,
    )


def scope_error(exc: BaseException) -> str:
    """An exception as a scope's recorded error: its type and message, at most 800 characters."""
    return f"{type(exc).__name__}: {exc}"[:800]


def inventory_scopes(
    tenant: Any,
    cloud: str,
    plan: dict[str, Any] | None = None,
    plan_index: dict[str, Any] | None = None,
    *,
    patch_data: bool = True,
) -> Iterator[tuple[str, Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]]]]:
    """Each scope of one of the tenant's clouds (AWS account and region, Azure subscription, GCP project)
    as ``(label, collect)``: ``collect()`` reads it into normalized host rows and its call counts. The
    frozen ``plan`` (and its patch index) fill the rows' planned patches; without one (the Falcon
    roll-out) the rows carry none. ``patch_data=False`` (the roll-out) reads the hosts only, not what they
    miss: no SSM patch states, no RDS pending updates, no Arc patch assessments, no OS Config
    vulnerability reports (the hosts' patch columns stay empty)."""
    plan, plan_index = plan or {}, plan_index or {}
    if cloud == "aws" and tenant.clouds.aws:
        for account in tenant.clouds.aws.accounts:
            for region in account.regions:
                label = f"aws:{account.account_id}:{region}"
                yield label, _aws_scope(tenant, account, region, plan, patch_data)
    elif cloud == "azure" and tenant.clouds.azure:
        for sub in tenant.clouds.azure.subscriptions:
            yield f"azure:{sub.subscription_id}", _azure_scope(tenant, sub, plan_index, patch_data)
    elif cloud == "gcp" and tenant.clouds.gcp:
        for project in tenant.clouds.gcp.projects:
            yield f"gcp:{project.project_id}", _gcp_scope(tenant, project, plan_index, patch_data)


def _aws_scope(
    tenant: Any, account: Any, region: str, plan: dict[str, Any], patch_data: bool = True
) -> Callable[[], Any]:
    def collect() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from patchcycle.hooks.aws import Ec2BackupHook, RdsHook, SsmFleetHook

        conn_id = tenant.aws_connection_id(account)
        ssm = SsmFleetHook(aws_conn_id=conn_id, region_name=region)
        ec2 = Ec2BackupHook(aws_conn_id=conn_id, region_name=region)
        instances = ssm.managed_instances()
        keys = tenant.host_tags
        tags = ec2.instance_tags([keys.name, keys.environment, keys.criticality])
        ids = [i["InstanceId"] for i in instances]
        states = ssm.patch_states(ids) if patch_data else {}
        found = normalize_ssm_hosts(tenant, account.account_id, region, instances, tags, states)
        found += unregistered_ec2_hosts(tenant, account.account_id, region, tags, set(ids))
        counts = {"managed_instances": len(instances)}
        if account.rds:
            rds = RdsHook(aws_conn_id=conn_id, region_name=region)
            databases = rds.db_instances()
            rows = normalize_rds_instances(
                tenant,
                account.account_id,
                region,
                databases,
                rds.pending_os_updates() if patch_data else {},
                planned_rds_updates(plan),
            )
            found += rows
            counts["db_instances"] = len(rows)
        return found, counts

    return collect


def _azure_scope(
    tenant: Any, subscription: Any, plan_index: dict[str, Any], patch_data: bool = True
) -> Callable[[], Any]:
    def collect() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from patchcycle.hooks.azure_arc import ArcHook

        sub = subscription.subscription_id
        hook = ArcHook(azure_conn_id=tenant.azure_connection_id(subscription), subscription_id=sub)
        machines = [m for rg in subscription.resource_groups for m in hook.machines(rg)]
        assessments = hook.patch_assessments(list(subscription.resource_groups)) if patch_data else {}
        found = normalize_arc_machines(tenant, sub, machines, assessments, plan_index)
        return found, {"machines": len(machines), "assessed": len(assessments)}

    return collect


def _gcp_scope(
    tenant: Any, project: Any, plan_index: dict[str, Any], patch_data: bool = True
) -> Callable[[], Any]:
    def collect() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from patchcycle.hooks.gcp_compute import DiskSnapshotHook
        from patchcycle.hooks.gcp_osconfig import OsConfigHook
        from patchcycle.operators.verify import inventory_instance_id

        conn_id = tenant.gcp_connection_id(project)
        compute = DiskSnapshotHook(gcp_conn_id=conn_id, project_id=project.project_id)
        osconfig = OsConfigHook(gcp_conn_id=conn_id, project_id=project.project_id)
        instances, inventories, reports = [], {}, {}
        for zone in project.zones:
            instances.extend(compute.instances(zone))
            for inv in osconfig.inventories(zone):
                inventories[inventory_instance_id(inv)] = inv
            for report in osconfig.vulnerability_reports(zone) if patch_data else []:
                reports[inventory_instance_id(report)] = report
        found = normalize_gcp_instances(
            tenant, project.project_id, instances, inventories, reports, plan_index
        )
        return found, {"instances": len(instances), "inventories": len(inventories)}

    return collect


class CloudInventoryOperator(CycleOperator):
    """Every scope of one cloud into normalized rows (``inventory/<cloud>.json``)."""

    template_fields: Sequence[str] = ("tenant_id", "cloud")

    def __init__(self, *, cloud: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cloud not in CLOUDS:
            raise ValueError(f"cloud must be one of {CLOUDS}, got {cloud!r}")
        self.cloud = cloud

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Read each scope of the cloud (a scope whose cloud does not answer is recorded with its error,
        the others go on), write the rows and scopes to ``inventory/<cloud>.json``, and return the host
        and failed-scope counts."""
        plan = cycle.plan
        plan_index = plan_patch_index(plan)
        rows: list[dict[str, Any]] = []
        scopes: list[dict[str, Any]] = []
        errors = cloud_errors()
        for label, collect in self._scopes(plan, plan_index):
            try:
                found, calls = collect()
            except errors as exc:  # this scope halts; the tenant's other scopes go on
                scopes.append(
                    {"cloud": self.cloud, "scope": label, "status": "failed", "error": scope_error(exc)}
                )
                log.record("inventory.scope_failed", target=label, result="failed", error=scope_error(exc))
                continue
            rows.extend(found)
            scopes.append({"cloud": self.cloud, "scope": label, "status": "ok", "hosts": len(found), **calls})
            log.record("inventory.collected", target=label, hosts=len(found), **calls)
        cycle.write_record(
            cycle.paths.run_file(f"inventory/{self.cloud}.json"),
            {"rows": rows, "scopes": scopes},
        )
        return {"hosts": len(rows), "failed_scopes": sum(1 for s in scopes if s["status"] == "failed")}

    def _scopes(
        self, plan: dict[str, Any], plan_index: dict[str, Any]
    ) -> Iterator[tuple[str, Callable[[], Any]]]:
        return inventory_scopes(self.tenant, self.cloud, plan, plan_index)


class FalconInventoryOperator(CycleOperator):
    """Every device record of the tenant's Falcon CID (``inventory/falcon.json``)."""

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Read the CID's devices into ``inventory/falcon.json`` (status ``failed``, with the error, when
        Falcon does not answer); return the device count and the status."""
        from patchcycle.hooks.falcon import FalconHook

        conn_id = self.tenant.falcon_connection_id()
        record: dict[str, Any] = {"devices": [], "status": "ok", "error": None}
        try:
            record["devices"] = FalconHook(falcon_conn_id=conn_id).devices()
            log.record("inventory.collected", target=f"falcon:{conn_id}", devices=len(record["devices"]))
        except cloud_errors() as exc:  # without Falcon's answer every host's sensor is unknown: held
            record.update(status="failed", error=scope_error(exc))
            log.record(
                "inventory.scope_failed", target=f"falcon:{conn_id}", result="failed", error=record["error"]
            )
        cycle.write_record(cycle.paths.run_file("inventory/falcon.json"), record)
        return {"devices": len(record["devices"]), "status": record["status"]}


class MergeInventoryOperator(CycleOperator):
    """One normalized host table from the clouds' inventories, with each host's Falcon record attached.

    Runs whatever the cloud tasks' outcome: a cloud whose task failed outright is recorded as a failed
    scope, and the hosts of the clouds that answered go on.
    """

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Merge the clouds' rows, with their Falcon records, into ``inventory.json`` and their scopes into
        ``scopes.json`` (a cloud without a record, or Falcon without an answer, is a failed scope);
        return the host and failed-scope counts."""
        from patchcycle.domain.sensor import attach_falcon

        paths = cycle.paths
        rows: list[dict[str, Any]] = []
        scopes: list[dict[str, Any]] = []
        for cloud in self.tenant.clouds.declared:
            record = cycle.read_record(paths.run_file(f"inventory/{cloud}.json"), required=False)
            if record is None:
                scopes.append(
                    {
                        "cloud": cloud,
                        "scope": f"{cloud}:*",
                        "status": "failed",
                        "error": "inventory task failed",
                    }
                )
                log.record(
                    "inventory.scope_failed", target=f"{cloud}:*", result="failed", error="task failed"
                )
                continue
            rows.extend(record["rows"])
            scopes.extend(record["scopes"])
        if self.tenant.falcon is not None:
            falcon = cycle.read_record(paths.run_file("inventory/falcon.json"), required=False)
            if falcon is None or falcon["status"] != "ok":
                error = (falcon or {}).get("error") or "inventory task failed"
                scopes.append({"cloud": "falcon", "scope": "falcon", "status": "failed", "error": error})
            rows = attach_falcon(rows, (falcon or {}).get("devices", []))
        cycle.write_record(paths.run_file("inventory.json"), rows)
        cycle.write_record(paths.run_file("scopes.json"), scopes)
        failed = [s for s in scopes if s["status"] == "failed"]
        log.record(
            "inventory.merged",
            target=self.tenant.id,
            result="partial" if failed else "ok",
            hosts=len(rows),
            failed_scopes=[s["scope"] for s in failed],
        )
        return {"hosts": len(rows), "failed_scopes": len(failed)}


class PreflightOperator(CycleOperator):
    """Hold hosts that cannot be patched safely, record why, and halt the scope above the threshold."""

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Apply the exception register's deferrals, the gates and Falcon's kernel support to the
        inventory, write ``preflight.json``, mail the SREs the held hosts once per cycle, and fail the
        task when the scope halted; else return the eligible and held counts."""
        import datetime as dt

        from airflow.sdk.exceptions import AirflowFailException

        from patchcycle.config.exceptions import load_tenant_exception_register
        from patchcycle.domain.plan import target_kernel
        from patchcycle.domain.preflight import deferral_for

        paths = cycle.paths
        rows = cycle.read_record(paths.run_file("inventory.json"))
        info = cycle.info
        plan = cycle.plan
        register = load_tenant_exception_register(self.tenant_id)
        as_of = dt.date.fromisoformat(info["cycle_date"])
        deferrals = {}
        for row in rows:
            if (decision := deferral_for(row, planned_patch_ids(plan, row), register, as_of)) is not None:
                deferrals[row["host_id"]] = decision
        support: dict[str, Any] = {}
        if self.tenant.falcon is not None:
            kernels = sorted({k for family in plan["approved"] if (k := target_kernel(plan, family))})
            if kernels:
                from patchcycle.hooks.falcon import FalconHook

                support = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id()).kernel_support(
                    kernels
                )
                log.record(
                    "preflight.kernel_support",
                    target=self.tenant.id,
                    kernels=kernels,
                    known=sorted(support),
                )
        result = evaluate_preflight(
            self.tenant, rows, info["environments"], deferrals, plan, support, now=dt.datetime.now(dt.UTC)
        )
        record = result.to_dict()
        if result.kernel_held or any(d.variant == "no_kernel" for d in result.decisions):
            record["sensor_upgrades"] = self._sensor_upgrades(log, record["decisions"], rows, plan, support)
        record["drift"] = self._open_drift(cycle, log, as_of)
        record["kev_exposure"] = self._kev_exposure(cycle, log, rows, record, register, as_of)
        cycle.write_record(paths.run_file("preflight.json"), record)
        names = {r["host_id"]: r.get("name") for r in rows}
        for decisions, action, verdict in (
            (result.excepted, "exceptions.applied", "excepted"),
            (result.held, "preflight.held", "held"),
            (result.kernel_held, "preflight.kernel_held", "kernel_update_held"),
        ):
            for decision in decisions:
                log.record(
                    action,
                    target=decision.host_id,
                    result=verdict,
                    reason=decision.reason,
                    name=names.get(decision.host_id),
                )
        log.record(
            "preflight.evaluated",
            target=self.tenant.id,
            result="halted" if result.halted else "passed",
            eligible=len(result.eligible),
            held=len(result.held),
            kernel_held=len(result.kernel_held),
            out_of_scope=len(result.out_of_scope),
            held_share=round(result.held_share, 4),
            threshold=result.max_held_share,
        )
        if result.held or result.kernel_held:
            self._alert_once(cycle, log, result, names)
        if result.halted and not result.in_scope:
            raise AirflowFailException(
                f"pre-flight halted {self.tenant.id}: no host in scope among {len(rows)} inventoried "
                f"({len(result.out_of_scope)} out of scope); check the accounts, regions and tags"
            )
        if result.halted:
            raise AirflowFailException(
                f"pre-flight halted {self.tenant.id}: {result.held_share:.0%} of in-scope hosts held "
                f"(threshold {result.max_held_share:.0%})"
            )
        return {"eligible": len(result.eligible), "held": len(result.held), "halted": result.halted}

    def _kev_exposure(
        self,
        cycle: CycleContext,
        log: EventLog,
        rows: list[dict[str, Any]],
        record: dict[str, Any],
        register: Any,
        as_of: Any,
    ) -> dict[str, Any] | None:
        """The hosts exposed to KEV CVEs the plan's patches (fast-tracked ones included) fix or their
        clouds report missing, named with their verdicts; for a zero-day cycle, each of its CVEs with no
        fix yet, its exposed hosts and the compensating controls the exception register names for them.
        Read with the feeds the plan and the evidence read; None when they cannot be read (said in an
        event: a record, never a gate)."""
        from patchcycle.domain.fast_track import kev_exposure
        from patchcycle.domain.zero_day import without_fix
        from patchcycle.operators.feeds import cycle_feeds

        try:
            feeds, _ = cycle_feeds(cycle.store.hook)
        except Exception as exc:  # noqa: BLE001 - the exposure is recorded, not a gate
            log.record("preflight.kev_exposure", target=self.tenant_id, result="failed", error=str(exc)[:300])
            return None
        plan = cycle.plan
        verdicts = {str(d["host_id"]): d["verdict"] for d in record.get("decisions", [])}
        exposure = kev_exposure(rows, plan, feeds, as_of, verdicts)
        log.record(
            "preflight.kev_exposure",
            target=self.tenant_id,
            hosts=len(exposure["hosts"]),
            cves=sorted(exposure["cves"]),
            names=[h["name"] for h in exposure["hosts"]][:100],
        )
        unfixed = ((plan.get("risk") or {}).get("zero_day") or {}).get("without_fix") or []
        if unfixed:
            exposure["without_fix"] = without_fix(unfixed, rows, feeds, register, as_of)
            for item in exposure["without_fix"]:
                log.record(
                    "zero_day.no_fix",
                    target=item["cve"],
                    result="exposed",
                    hosts=[h["name"] for h in item["exposed_hosts"]][:100],
                    without_compensating_control=item["uncovered_hosts"][:100],
                )
        return exposure

    def _sensor_upgrades(
        self,
        log: EventLog,
        decisions: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        plan: dict[str, Any],
        support: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The sensor upgrade each kernel-held host needs before the next cycle (the paper's 6.2: pin the
        kernel, upgrade the sensor): handed to the tenant's Falcon roll-out through the cycle's evidence
        (``sensor_upgrades``), which the roll-out's ``find`` reads."""
        import datetime as dt

        from patchcycle.config.falcon_rollout import SensorVersionPolicy
        from patchcycle.domain.falcon_rollout import kernel_held_upgrades, planned_kernels
        from patchcycle.hooks.falcon import FalconHook

        falcon = self.tenant.falcon
        rollout = falcon.rollout if falcon is not None else None
        policy = rollout.sensor_version if rollout is not None else SensorVersionPolicy()
        builds = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id()).sensor_builds("linux")
        upgrades = kernel_held_upgrades(
            decisions, rows, planned_kernels(plan, rows), support, builds, policy, dt.datetime.now(dt.UTC)
        )
        for upgrade in upgrades:
            log.record(
                "falcon.sensor_upgrade_handed_off",
                target=upgrade.host_id,
                result="scheduled" if rollout is not None and upgrade.upgrade_to else "unscheduled",
                name=upgrade.name,
                kernel=upgrade.kernel,
                sensor_version=upgrade.sensor_version,
                upgrade_to=upgrade.upgrade_to,
                due_before=upgrade.due_before.isoformat(),
                reason=upgrade.reason,
            )
        return [upgrade.to_dict() for upgrade in upgrades]

    def _open_drift(self, cycle: CycleContext, log: EventLog, as_of: Any) -> dict[str, Any]:
        """What the tenant's latest drift report (of a day on or before the cycle's) says about what the
        cycle relies on that Terraform declares: its baselines, patch groups and the Falcon document.

        Recorded, never a gate: a drifted baseline is still the tenant's baseline, and the plan writes the
        declared filters back (docs/design/iac-drift.md); the SREs had the drift by mail the morning it
        was found. A report that cannot be read is recorded as such.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from patchcycle.domain.drift import DriftInputError, open_drift_on
        from patchcycle.domain.drift.daily import CYCLE_DEPENDENCIES
        from patchcycle.domain.drift.stored import report_from_dict
        from patchcycle.reports.drift_store import latest_report

        record: dict[str, Any] = {"dependencies": list(CYCLE_DEPENDENCIES)}
        try:
            document = latest_report(cycle.store, as_of)
            report = report_from_dict(document["report"]) if document is not None else None
        except (BotoCoreError, ClientError, DriftInputError, ValueError, KeyError) as exc:
            record.update(status="unreadable", error=scope_error(exc))
            log.record(
                "preflight.drift_read", target=self.tenant.id, result="unreadable", error=record["error"]
            )
            return record
        if report is None:
            record["status"] = "no drift report"
            log.record("preflight.drift_read", target=self.tenant.id, result="no drift report")
            return record
        found = open_drift_on(report, CYCLE_DEPENDENCIES)
        record.update(status="read", report_age_days=(as_of - report.day).days, **found.to_dict())
        log.record(
            "preflight.drift_read",
            target=self.tenant.id,
            result="open drift" if found.drifts else "no open drift",
            report_date=report.day.isoformat(),
            report_complete=report.complete,
            drifts=[
                {
                    "scope": d.scope,
                    "address": d.address,
                    "attribute": d.path,
                    "what": d.description,
                    "changed_by": d.changed_by.username if d.changed_by else None,
                    "changed_at": d.changed_by.event_time.isoformat() if d.changed_by else None,
                }
                for d in found.drifts
            ],
            unchecked=[u.address for u in found.unchecked],
        )
        return record

    def _alert_once(self, cycle: CycleContext, log: EventLog, result: Any, names: dict[str, Any]) -> None:
        """Tell the tenant's SREs which hosts the gates held, once per cycle (not per retry or re-run)."""
        from patchcycle.operators.distribute import held_hosts_email, send_once

        info = cycle.info
        held = [(names.get(d.host_id) or d.host_id, d.reason or "") for d in result.held]
        kernel = [(names.get(d.host_id) or d.host_id, d.reason or "") for d in result.kernel_held]
        subject, body = held_hosts_email(
            tenant_name=self.tenant.display_name, cycle_date=info["cycle_date"], held=held, kernel_held=kernel
        )
        marker = f"cycles/{info['cycle_date']}/alerts/preflight-held.json"
        recipients = [c.email for c in self.tenant.contacts.sre]
        if send_once(cycle.store, marker, recipients, subject, body):
            log.record(
                "preflight.alerted", target=",".join(recipients), held=len(held), kernel_held=len(kernel)
            )
