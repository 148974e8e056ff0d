"""Freeze the cycle plan: the tenant's baselines resolved against the patch catalog as of the cycle date."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.config.models import OsFamily
from patchcycle.domain.plan import (
    FULL,
    INSTALL_VARIANTS,
    build_cycle_plan,
    catalog_patch_from_ssm,
    install_override_list,
)
from patchcycle.domain.platforms import SSM_PRODUCTS
from patchcycle.domain.schedule import resolve_cycle_date
from patchcycle.operators.base import CycleOperator, EventLog
from patchcycle.reports.store import CyclePaths


def validate_run_params(params: dict[str, Any], environments: list[str]) -> list[str]:
    """The run's environments, checked against the tenant; a soak override needs a reason."""
    wanted = params.get("environments") or environments
    unknown = [e for e in wanted if e not in environments]
    if unknown:
        raise AirflowFailException(
            f"params.environments: {unknown} not configured for this tenant (it has {environments})"
        )
    if (
        params.get("soak_hours_override") is not None
        and not (params.get("soak_override_reason") or "").strip()
    ):
        raise AirflowFailException("params.soak_override_reason: a soak override needs a recorded reason")
    return [e for e in environments if e in wanted]


class PlanCycleOperator(CycleOperator):
    """Resolve the cycle date, build the plan from the catalog, store it with its install list."""

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import SsmFleetHook

        params = context["params"]
        tenant = self.tenant
        environments = validate_run_params(params, [e.name.value for e in tenant.environments])
        cycle_date = resolve_cycle_date(
            requested=params.get("cycle_date"),
            logical_date=context.get("logical_date"),
            run_after=context["dag_run"].run_after,
        )
        if tenant.clouds.aws is None:
            raise AirflowFailException(f"tenant {tenant.id}: no AWS account to read the patch catalog from")
        account = tenant.clouds.aws.accounts[0]
        hook = SsmFleetHook(aws_conn_id=tenant.aws_connection_id(account), region_name=account.regions[0])
        catalog = []
        for baseline in tenant.baselines:
            family = OsFamily(baseline.os_family)
            for row in hook.available_patches(SSM_PRODUCTS[family]):
                catalog.append(catalog_patch_from_ssm(row, family))
        plan = build_cycle_plan(tenant, cycle_date, catalog, self._rds_os_updates(log))
        paths = CyclePaths(plan.cycle_date, context["run_id"])
        plan_url = self.store.put_json(paths.plan(plan.hash), plan.to_dict())
        # One install list per variant: the full plan, and the plan without kernel updates for hosts
        # whose sensor does not support the new kernel (the pre-flight kernel gate decides who).
        install_urls = {
            variant: self.store.put_bytes(
                paths.install_list(plan.hash, variant),
                install_override_list(plan, variant).encode(),
                "application/x-yaml",
            )
            for variant in INSTALL_VARIANTS
        }
        install_url = install_urls[FULL]
        for line in plan.summary_lines():
            self.log.info("%s", line)
        dry_run = bool(params.get("dry_run"))
        info = {
            "cycle_date": plan.cycle_date,
            "plan_hash": plan.hash,
            "plan_url": plan_url,
            "install_list_url": install_url,
            "install_list_urls": install_urls,
            "approved_patches": len(plan.patch_ids),
            "environments": environments,
            "dry_run": dry_run,
            "soak_hours_override": params.get("soak_hours_override"),
            "soak_override_reason": params.get("soak_override_reason"),
            "window_override_reason": (params.get("window_override_reason") or "").strip() or None,
        }
        # The run context first, so every later event can be read against it.
        self._info = info
        log.record(
            "plan.frozen",
            target=tenant.id,
            plan_hash=plan.hash,
            cycle_date=plan.cycle_date,
            approved_patches=len(plan.patch_ids),
            environments=environments,
            dry_run=dry_run,
            run_type=str(context["dag_run"].run_type),
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
        return info

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

    def paths(self, context: Any) -> CyclePaths:
        info = getattr(self, "_info", None)
        if info is None:
            raise RuntimeError("no plan yet")
        return CyclePaths(info["cycle_date"], context["run_id"])
