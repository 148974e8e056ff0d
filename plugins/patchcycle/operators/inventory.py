"""Inventory every AWS account and region of the tenant into the normalized host table."""

from __future__ import annotations

from typing import Any

from patchcycle.domain.inventory import normalize_ssm_hosts, unregistered_ec2_hosts
from patchcycle.domain.preflight import evaluate_preflight
from patchcycle.operators.base import CycleOperator, EventLog


class InventoryOperator(CycleOperator):
    """SSM managed instances + EC2 tags + last patch state, batched, for every account and region."""

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import Ec2BackupHook, SsmFleetHook

        tenant = self.tenant
        rows: list[dict[str, Any]] = []
        for account in tenant.clouds.aws.accounts if tenant.clouds.aws else []:
            conn_id = tenant.aws_connection_id(account)
            for region in account.regions:
                ssm = SsmFleetHook(aws_conn_id=conn_id, region_name=region)
                ec2 = Ec2BackupHook(aws_conn_id=conn_id, region_name=region)
                instances = ssm.managed_instances()
                keys = tenant.host_tags
                tags = ec2.instance_tags([keys.name, keys.environment, keys.criticality])
                ids = [i["InstanceId"] for i in instances]
                states = ssm.patch_states(ids)
                found = normalize_ssm_hosts(tenant, account.account_id, region, instances, tags, states)
                found += unregistered_ec2_hosts(tenant, account.account_id, region, tags, set(ids))
                rows.extend(found)
                log.record(
                    "inventory.collected",
                    target=f"aws:{account.account_id}:{region}",
                    managed_instances=len(instances),
                    hosts=len(found),
                )
        url = self.write_record(context, self.paths(context).run_file("inventory.json"), rows)
        return {"inventory_url": url, "hosts": len(rows)}


class PreflightOperator(CycleOperator):
    """Hold hosts that cannot be patched safely, record why, and halt the scope above the threshold."""

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        import datetime as dt

        from airflow.sdk.exceptions import AirflowFailException

        from patchcycle.config.exceptions import load_exception_registers
        from patchcycle.domain.preflight import deferral_for

        paths = self.paths(context)
        rows = self.read_record(paths.run_file("inventory.json"))
        info = self.plan_info(context)
        plan = self.store.get_json(info["plan_url"].removeprefix(f"s3://{self.store.bucket}/"))
        register = load_exception_registers(tenant_ids=[self.tenant_id])[self.tenant_id]
        as_of = dt.date.fromisoformat(info["cycle_date"])
        deferrals = {}
        for row in rows:
            planned = {p["id"] for p in plan["approved"].get(row.get("os_family") or "", [])}
            if (decision := deferral_for(row, planned, register, as_of)) is not None:
                deferrals[row["host_id"]] = decision
        result = evaluate_preflight(self.tenant, rows, info["environments"], deferrals)
        self.write_record(context, paths.run_file("preflight.json"), result.to_dict())
        names = {r["host_id"]: r.get("name") for r in rows}
        for decision in result.excepted:
            log.record(
                "exceptions.applied",
                target=decision.host_id,
                result="excepted",
                reason=decision.reason,
                name=names.get(decision.host_id),
            )
        for decision in result.held:
            log.record(
                "preflight.held",
                target=decision.host_id,
                result="held",
                reason=decision.reason,
                name=names.get(decision.host_id),
            )
        log.record(
            "preflight.evaluated",
            target=self.tenant.id,
            result="halted" if result.halted else "passed",
            eligible=len(result.eligible),
            held=len(result.held),
            out_of_scope=len(result.out_of_scope),
            held_share=round(result.held_share, 4),
            threshold=result.max_held_share,
        )
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
