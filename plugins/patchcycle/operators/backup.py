"""Take the pre-patch backup of every host in a stage: one AMI per EC2 host, once per cycle and stage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from patchcycle.operators.base import CycleOperator, EventLog, utcnow


def backup_tags(tenant_id: str, cycle_date: str, environment: str) -> dict[str, str]:
    """The tags that identify a cycle stage's backups (and make a retry find them again)."""
    return {
        "patchcycle:tenant": tenant_id,
        "patchcycle:cycle": cycle_date,
        "patchcycle:environment": environment,
    }


def scopes_of(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Hosts grouped by (account, region): the unit every AWS call works in."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[(row["account"], row["region"])].append(row)
    return grouped


class CreateBackupsOperator(CycleOperator):
    """Create (or find, on a retry) an AMI for each eligible host of the environment."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    def run(self, context: Any, log: EventLog) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        started_at = utcnow().isoformat()
        info = self.plan_info(context)
        if info["dry_run"] or self.environment not in info["environments"]:
            # A dry run, or an environment this run does not include: the stage is skipped, not failed.
            raise AirflowSkipException(f"{self.environment} is not part of this run")
        paths = self.paths(context)
        from patchcycle.hooks.aws import Ec2BackupHook

        rows = self.stage_hosts(context, self.environment)
        tags = backup_tags(self.tenant_id, info["cycle_date"], self.environment)
        backups: dict[str, dict[str, Any]] = {}
        for (account, region), hosts in scopes_of(rows).items():
            hook = Ec2BackupHook(aws_conn_id=self.aws_conn_id(account), region_name=region)
            existing = {
                t["Value"]: img["ImageId"]
                for img in hook.images_tagged(tags)
                for t in img.get("Tags", [])
                if t["Key"] == "patchcycle:host"
            }
            for host in hosts:
                host_id = host["host_id"]
                if host_id in existing:
                    image_id, created = existing[host_id], False
                else:
                    name = f"patchcycle-{self.tenant_id}-{info['cycle_date']}-{self.environment}-{host_id}"
                    image_id = hook.create_image(
                        host_id,
                        name,
                        {**tags, "patchcycle:host": host_id, "patchcycle:plan": info["plan_hash"]},
                    )
                    created = True
                backups[host_id] = {
                    "image_id": image_id,
                    "account": account,
                    "region": region,
                    "created": created,
                }
                log.record(
                    "backup.created" if created else "backup.reused",
                    target=host_id,
                    image_id=image_id,
                    kind="ami",
                    name=host.get("name"),
                )
        self.write_record(context, paths.stage_file(self.environment, "backups.json"), backups)
        return {
            "backups": len(backups),
            "created": sum(1 for b in backups.values() if b["created"]),
            "started_at": started_at,
        }
