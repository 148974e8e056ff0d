"""Record who could execute the cycle, at its end (SOC 2 CC6.1): SSO users, groups and permission sets."""

from __future__ import annotations

from typing import Any

from patchcycle.domain.access import access_report
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, utcnow

IDENTITY_CONNECTION = "patchcycle_identity"


class AccessReviewOperator(CycleOperator):
    """Read IAM Identity Center for the tenant's accounts and store the time-stamped access report."""

    after_the_run = True

    def __init__(self, *, identity_conn_id: str = IDENTITY_CONNECTION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.identity_conn_id = identity_conn_id

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Read the permission sets and assignments of the tenant's AWS accounts, and the users and groups,
        from IAM Identity Center; write the report to ``access.json`` and return the principal and grant
        counts."""
        from patchcycle.hooks.aws import IdentityCenterHook

        tenant = self.tenant
        hook = IdentityCenterHook(aws_conn_id=self.identity_conn_id, region_name=tenant.evidence.region)
        instance = hook.instance()
        instance_arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
        accounts: dict[str, list[dict[str, Any]]] = {}
        for account in tenant.clouds.aws.accounts if tenant.clouds.aws else []:
            grants = []
            for arn in hook.permission_sets_in_account(instance_arn, account.account_id):
                grants.append(
                    {
                        "permission_set": hook.permission_set(instance_arn, arn),
                        "assignments": hook.assignments(instance_arn, account.account_id, arn),
                    }
                )
            accounts[account.account_id] = grants
        users = {u["UserId"]: u for u in hook.users(store_id)}
        groups = {g["GroupId"]: g for g in hook.groups(store_id)}
        members = {gid: hook.group_members(store_id, gid) for gid in groups}
        report = access_report(
            reviewed_at=utcnow().isoformat(), accounts=accounts, users=users, groups=groups, members=members
        )
        cycle.write_record(cycle.paths.run_file("access.json"), report)
        log.record(
            "access.reviewed",
            target=",".join(sorted(accounts)),
            principals=report["principals"],
            permission_sets=report["permission_sets"],
            identity_store=store_id,
        )
        return {"principals": report["principals"], "grants": len(report["grants"])}
