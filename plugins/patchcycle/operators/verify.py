"""Verify a stage: each host's state after the install, read back from its cloud; the stage's verdict.

Every cloud's answer is classified into the same final states (see :mod:`patchcycle.domain.outcomes`)
and the same after-install counts, so the evidence has one shape whatever cloud a host lives in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle.domain import outcomes
from patchcycle.domain.approval import rejection_reason
from patchcycle.domain.canary import CANARY, MAIN
from patchcycle.domain.inventory import is_rds
from patchcycle.domain.plan import FULL, install_selection, target_kernel
from patchcycle.operators.backup import scopes_of
from patchcycle.operators.base import CycleOperator, EventLog, poll_seconds, utcnow
from patchcycle.operators.window import window_not_started
from patchcycle.triggers import checks
from patchcycle.triggers.waits import CloudWaitTrigger

STATE_KEYS = (
    "Operation",
    "MissingCount",
    "FailedCount",
    "InstalledCount",
    "InstalledPendingRebootCount",
    "OperationEndTime",
    "InstallOverrideList",
)


class VerifyStageOperator(CycleOperator):
    """Read patch states back, classify each host, write the stage record, and stop the cycle on failure."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(self, *, environment: str, batch: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.batch = batch

    def run(self, context: Any, log: EventLog) -> Any:
        """Wait (deferred) until every host the install touched is back from its reboot, then verify."""
        from airflow.sdk.exceptions import AirflowSkipException

        info = self.plan_info(context)
        if info["dry_run"] or self.environment not in info["environments"]:
            raise AirflowSkipException(f"{self.environment} is not part of this run")
        if rejected := rejection_reason(self._stage_level_record(context, "approval.json")):
            raise AirflowSkipException(f"{self.environment} was not approved: {rejected}")
        payload = self._reboot_watch(context)
        if payload is None:
            return self._verify(context, {}, log)
        log.record(
            "reboot.watch_started",
            target=self.environment,
            batch=self.batch,
            hosts=payload["count"],
            deadline=payload["deadline"],
        )
        answer = checks.reboots(payload)
        if answer["done"]:
            return self._verify(context, answer, log)
        delay = poll_seconds()
        attempts = int(self.reboot_timeout.total_seconds() / delay) + 3
        self.defer(
            trigger=CloudWaitTrigger("reboots", payload, delay, attempts),
            method_name="execute_complete",
            timeout=timedelta(seconds=delay * (attempts + 2)),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return self.resume(context, event, lambda ctx, ev, log: self._verify(ctx, ev, log))

    @property
    def reboot_timeout(self) -> timedelta:
        return timedelta(minutes=self.tenant.environment(self.environment).reboot_timeout_minutes)

    def _reboot_watch(self, context: Any) -> dict[str, Any] | None:
        """The hosts this batch's install reached, by scope, with the deadline for them to come back."""
        rows = {r["host_id"]: r for r in self.batch_hosts(context, self.environment, self.batch)}
        sent: set[str] = set()
        sent |= set(self._stage_record(context, "aws-invocations.json") or {})
        sent |= {
            h
            for h, r in (self._stage_record(context, "azure-results.json") or {}).items()
            if r.get("operation")
        }
        sent |= {
            h for h, r in (self._stage_record(context, "gcp-results.json") or {}).items() if r.get("state")
        }
        hosts = [rows[h] for h in sorted(sent) if h in rows]
        if not hosts:
            return None
        scopes: dict[str, dict[tuple[str, ...], dict[str, Any]]] = defaultdict(dict)
        for row in hosts:
            if row["cloud"] == "aws":
                key: tuple[str, ...] = (row["account"], row["region"])
                base = {"conn_id": self.aws_conn_id(row["account"]), "region": row["region"]}
            elif row["cloud"] == "azure":
                key = (row["account"], row["resource_group"])
                base = {
                    "conn_id": self.azure_conn_id(row["account"]),
                    "subscription": row["account"],
                    "resource_group": row["resource_group"],
                }
            else:
                key = (row["account"], row["region"])
                base = {
                    "conn_id": self.gcp_conn_id(row["account"]),
                    "project": row["account"],
                    "zone": row["region"],
                }
            scopes[row["cloud"]].setdefault(key, {**base, "hosts": []})["hosts"].append(row["host_id"])
        payload: dict[str, Any] = {cloud: list(by_key.values()) for cloud, by_key in scopes.items()}
        devices = {r["host_id"]: r["falcon_device_id"] for r in hosts if r.get("falcon_device_id")}
        if devices and self.tenant.falcon is not None:
            payload["falcon"] = {"conn_id": self.tenant.falcon_connection_id(), "devices": devices}
        payload["deadline"] = (utcnow() + self.reboot_timeout).isoformat()
        payload["count"] = len(hosts)
        return payload

    def _verify(self, context: Any, reboots: dict[str, Any], log: EventLog) -> dict[str, Any]:
        paths = self.paths(context)
        rows = self.batch_hosts(context, self.environment, self.batch)
        backups = self.read_record(paths.stage_file(self.environment, "backup-status.json"))
        window_closed = window_not_started(
            [self._stage_level_record(context, f"window-{self.batch or 'stage'}.json")]
        )
        plan = self.plan(context)
        ready = [r for r in rows if backups.get(r["host_id"], {}).get("ready")]
        by_cloud: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in ready:
            by_cloud["rds" if is_rds(row) else row["cloud"]].append(row)
        checked: dict[str, dict[str, Any]] = {}
        ids: list[str] = []
        if by_cloud.get("aws"):
            checked.update(self._aws(context, by_cloud["aws"], ids))
        if by_cloud.get("rds"):
            checked.update(self._rds(context, by_cloud["rds"]))
        if by_cloud.get("azure"):
            checked.update(self._azure(context, by_cloud["azure"], plan, ids))
        if by_cloud.get("gcp"):
            checked.update(self._gcp(context, by_cloud["gcp"], plan, ids))
        self._apply_reboots(checked, rows, plan, reboots, log)
        hosts_out: dict[str, dict[str, Any]] = {}
        budget_states: dict[str, str] = {}
        kernel_reasons = self._kernel_reasons(context)
        for row in rows:
            host_id = row["host_id"]
            backup = backups.get(host_id, {})
            entry: dict[str, Any] = {
                "backup_id": backup.get("backup_id"),
                "backup_kind": backup.get("kind"),
                "backup_state": backup.get("state"),
                "install_variant": row.get("install_variant", FULL),
            }
            if not backup.get("ready"):
                final, reason = outcomes.HELD, backup.get("reason") or "no completed backup"
            else:
                result = checked.get(host_id) or {
                    "final": outcomes.NOT_RUN,
                    "reason": window_closed or "no result from the cloud",
                }
                if window_closed and result["final"] == outcomes.NOT_RUN:
                    result["reason"] = window_closed
                final, reason = result.pop("final"), result.pop("reason")
                entry.update(result)
                budget_states[host_id] = final
                if final == outcomes.PATCHED and row.get("install_variant", FULL) != FULL:
                    # Installed all it was sent, but the plan's kernel update was held for this host.
                    final = outcomes.NON_COMPLIANT
                    reason = f"kernel update held: {kernel_reasons.get(host_id) or 'sensor gate'}"
            entry.update(final_state=final, reason=reason)
            if self.batch == CANARY:
                entry["batch"] = CANARY
            hosts_out[host_id] = entry
            if final != outcomes.PATCHED:
                log.record("verify.host", target=host_id, result=final, reason=reason, name=row.get("name"))
        rate = self.tenant.environment(self.environment).rate_control
        if self.batch == CANARY:
            # The canary is judged on its own and strictly: one failed canary host stops the rollout.
            rate = rate.model_copy(update={"max_errors": "0"})
        verdict = outcomes.stage_verdict(budget_states, rate)
        status = "succeeded" if verdict.succeeded else "failed"
        stage: dict[str, Any] = {
            "environment": self.environment,
            "status": status,
            "reason": verdict.reason,
            "started_at": (context["ti"].xcom_pull(task_ids=f"{self.environment}.backup") or {}).get(
                "started_at"
            ),
            "finished_at": utcnow().isoformat(),
            "command_ids": ids,
            "budget": {
                "targets": verdict.targets,
                "errors": verdict.errors,
                "allowed_errors": verdict.allowed_errors,
            },
            "hosts": hosts_out,
        }
        if self.batch == CANARY:
            stage = self._canary_stage(context, stage)
        elif self.batch == MAIN:
            stage = self._with_canary(context, stage)
        self.write_record(
            context, self.batch_file(context, self.environment, self.batch, "stage.json"), stage
        )
        log.record(
            "stage.verified",
            target=self.environment,
            batch=self.batch,
            result=status,
            reason=stage["reason"],
            patched=sum(1 for e in hosts_out.values() if e["final_state"] == outcomes.PATCHED),
            errors=verdict.errors,
            allowed_errors=verdict.allowed_errors,
        )
        if not verdict.succeeded:
            what = (
                f"the canary of {self.environment}" if self.batch == CANARY else f"stage {self.environment}"
            )
            raise AirflowFailException(f"{what} of {self.tenant_id} failed: {stage['reason']}")
        return {"status": status, "errors": verdict.errors, "targets": verdict.targets}

    def _apply_reboots(
        self,
        checked: dict[str, dict[str, Any]],
        rows: list[dict[str, Any]],
        plan: dict[str, Any],
        reboots: dict[str, Any],
        log: EventLog,
    ) -> None:
        """A host the install reached is patched only if it came back: agent answering, the expected
        kernel running, Falcon's sensor not in reduced-functionality mode."""
        seen = reboots.get("hosts") or {}
        minutes = self.reboot_timeout.total_seconds() / 60
        for row in rows:
            look = seen.get(row["host_id"])
            result = checked.get(row["host_id"])
            if look is None or result is None:
                continue
            variant = row.get("install_variant", FULL)
            expected = (target_kernel(plan, row["os_family"]) if variant == FULL else None) or row.get(
                "kernel"
            )
            verdict = outcomes.reboot_verdict(
                back=look["back"],
                agent=look.get("agent"),
                kernel=look.get("kernel"),
                expected_kernel=expected,
                rfm=look.get("rfm"),
                timeout_minutes=minutes,
            )
            result["reboot"] = {
                "back": look["back"],
                "agent": look.get("agent"),
                "kernel": look.get("kernel"),
                "expected_kernel": expected,
                "falcon_rfm": look.get("rfm"),
            }
            if verdict and result["final"] in (outcomes.PATCHED, outcomes.NON_COMPLIANT):
                result["final"], result["reason"] = outcomes.FAILED, verdict
                log.record("reboot.failed", target=row["host_id"], name=row.get("name"), reason=verdict)

    def _canary_stage(self, context: Any, canary: dict[str, Any]) -> dict[str, Any]:
        """The stage as it stands after its canary: the rest not started until the canary passes."""
        rest = self.batch_hosts(context, self.environment, MAIN)
        hosts = dict(canary["hosts"])
        for row in rest:
            hosts[row["host_id"]] = {
                "final_state": outcomes.NOT_RUN,
                "reason": "not started: the canary must pass verification and the health gate first",
                "install_variant": row.get("install_variant", FULL),
            }
        reason = None if canary["status"] == "succeeded" else f"canary failed: {canary['reason']}"
        return {
            **canary,
            "reason": reason,
            "hosts": hosts,
            "canary": {
                "status": canary["status"],
                "reason": canary["reason"],
                "hosts": sorted(canary["hosts"]),
                "budget": canary["budget"],
            },
        }

    def _with_canary(self, context: Any, main: dict[str, Any]) -> dict[str, Any]:
        """The whole stage: the canary's hosts as the canary left them, the rest as verified now."""
        canary_stage = self._stage_level_record(context, "canary/stage.json") or {}
        section = dict(canary_stage.get("canary") or {})
        section["health"] = self._stage_level_record(context, "canary/health.json")
        hosts = {h: e for h, e in (canary_stage.get("hosts") or {}).items() if e.get("batch") == CANARY}
        hosts.update(main["hosts"])
        return {
            **main,
            "started_at": canary_stage.get("started_at") or main["started_at"],
            "command_ids": [*canary_stage.get("command_ids", []), *main["command_ids"]],
            "hosts": hosts,
            "canary": section,
        }

    def _kernel_reasons(self, context: Any) -> dict[str, str]:
        preflight = self.read_record(self.paths(context).run_file("preflight.json"))
        return {
            d["host_id"]: d.get("reason") or ""
            for d in preflight["decisions"]
            if d.get("variant", FULL) != FULL and d["verdict"] == "eligible"
        }

    def _stage_record(self, context: Any, name: str) -> Any:
        """This batch's record of the stage (the canary's live under ``canary/``)."""
        return self.read_record(self.batch_file(context, self.environment, self.batch, name), required=False)

    def _stage_level_record(self, context: Any, name: str) -> Any:
        return self.read_record(self.paths(context).stage_file(self.environment, name), required=False)

    # -- AWS: Run Command invocations + SSM patch states --------------------------------------------
    def _aws(self, context: Any, rows: list[dict[str, Any]], ids: list[str]) -> dict[str, dict[str, Any]]:
        from patchcycle.hooks.aws import SsmFleetHook

        invocations = self._stage_record(context, "aws-invocations.json") or {}
        ids.extend(c["command_id"] for c in self._stage_record(context, "aws-commands.json") or [])
        states: dict[str, dict[str, Any]] = {}
        invoked = [r for r in rows if r["host_id"] in invocations]
        for (account, region), hosts in scopes_of(invoked).items():
            hook = SsmFleetHook(aws_conn_id=self.aws_conn_id(account), region_name=region)
            states.update(hook.patch_states([h["host_id"] for h in hosts]))
        out = {}
        for row in rows:
            inv = invocations.get(row["host_id"])
            state = states.get(row["host_id"])
            final, reason = outcomes.classify_patched_host(
                inv and inv["status"], state, inv and inv.get("status_details")
            )
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": inv and inv["command_id"],
                "invocation": inv and inv["status"],
                "patch_state": state and {k: state.get(k) for k in STATE_KEYS},
            }
        return out

    # -- RDS: what was applied + the instance's status and pending OS update afterwards -------------
    def _rds(self, context: Any, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        sent = self._stage_record(context, "rds-updates.json") or {}
        after = self._stage_record(context, "rds-results.json") or {}
        out = {}
        for row in rows:
            entry = sent.get(row["host_id"])
            look = after.get(row["host_id"])
            final, reason = outcomes.classify_rds_instance(entry, look)
            applied = bool(entry and entry.get("applied"))
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": None,
                "invocation": (look or {}).get("status") if applied else None,
                "patch_state": {
                    "Operation": "Install" if applied else None,
                    "MissingCount": 1 if (look or {}).get("pending") else 0,
                    "FailedCount": 1 if final == outcomes.FAILED else 0,
                    "InstalledCount": 1 if applied and final == outcomes.PATCHED else 0,
                    "InstalledPendingRebootCount": 0,
                    "OperationEndTime": None,
                    "InstallOverrideList": (entry or {}).get("description"),
                },
            }
        return out

    # -- Azure Arc: installPatches results + the assessment that follows an install ----------------
    def _azure(
        self, context: Any, rows: list[dict[str, Any]], plan: dict[str, Any], ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        from patchcycle.domain.inventory import plan_patch_index
        from patchcycle.hooks.azure_arc import ArcHook

        results = self._stage_record(context, "azure-results.json") or {}
        index = plan_patch_index(plan)
        groups: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            groups[row["account"]].add(row["resource_group"])
        assessments: dict[str, Any] = {}
        for subscription, resource_groups in groups.items():
            hook = ArcHook(azure_conn_id=self.azure_conn_id(subscription), subscription_id=subscription)
            assessments.update(hook.patch_assessments(sorted(resource_groups)))
        out = {}
        for row in rows:
            sent = results.get(row["host_id"]) or {}
            if sent.get("operation"):
                ids.append(sent["operation"].split("?")[0].rsplit("/", 1)[-1])
            assessment = assessments.get(row["host_id"].lower())
            selection = install_selection(plan, row["os_family"], row.get("install_variant", FULL))
            still = outcomes.planned_still_missing(
                assessment_missing_ids(assessment, row["os_family"], index), selection.patch_ids
            )
            final, reason = outcomes.classify_arc_host(sent, still)
            result = sent.get("result") or {}
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": sent.get("operation"),
                "invocation": result.get("status"),
                "patch_state": {
                    "Operation": "Install" if result else None,
                    "MissingCount": len(still),
                    "FailedCount": result.get("failedPatchCount"),
                    "InstalledCount": result.get("installedPatchCount"),
                    "InstalledPendingRebootCount": 1 if result.get("rebootStatus") == "Required" else 0,
                    "OperationEndTime": result.get("lastModifiedDateTime"),
                    "InstallOverrideList": None,
                },
            }
        return out

    # -- GCP: patch job instance details + the inventory after the job -----------------------------
    def _gcp(
        self, context: Any, rows: list[dict[str, Any]], plan: dict[str, Any], ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        from patchcycle.domain.inventory import gcp_missing_patch_ids, plan_patch_index
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        results = self._stage_record(context, "gcp-results.json") or {}
        ids.extend(j["name"] for j in self._stage_record(context, "gcp-jobs.json") or [])
        index = plan_patch_index(plan)
        zones: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            zones[(row["account"], row["region"])].append(row)
        inventories: dict[str, Any] = {}
        for (project, zone), _hosts in sorted(zones.items()):
            hook = OsConfigHook(gcp_conn_id=self.gcp_conn_id(project), project_id=project)
            for inv in hook.inventories(zone):
                inventories[inventory_instance_id(inv)] = inv
        out = {}
        for row in rows:
            sent = results.get(row["host_id"]) or {}
            inventory = inventories.get(str(row["host_id"]))
            selection = install_selection(plan, row["os_family"], row.get("install_variant", FULL))
            missing = gcp_missing_patch_ids(inventory, row["os_family"], index) if inventory else None
            still = outcomes.planned_still_missing(missing, selection.patch_ids)
            final, reason = outcomes.classify_gcp_host(sent, still)
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": sent.get("job"),
                "invocation": sent.get("state"),
                "patch_state": {
                    "Operation": "Install" if sent.get("state") else None,
                    "MissingCount": len(still),
                    "FailedCount": 1 if sent.get("state") == "FAILED" else 0,
                    "InstalledCount": None,
                    "InstalledPendingRebootCount": 1
                    if sent.get("state") == "SUCCEEDED_REBOOT_REQUIRED"
                    else 0,
                    "OperationEndTime": None,
                    "InstallOverrideList": None,
                },
            }
        return out


def inventory_instance_id(inventory: dict[str, Any]) -> str:
    """The instance id in an inventory's name (``projects/P/locations/Z/instances/ID/inventory``)."""
    return inventory["name"].split("/instances/", 1)[1].split("/", 1)[0]


def assessment_missing_ids(
    assessment: dict[str, Any] | None, os_family: str, index: dict[str, dict[tuple[str, str], str]]
) -> list[str] | None:
    """Plan patch ids an Arc assessment still lists as missing (None: no assessment to judge by)."""
    from patchcycle.domain.inventory import arc_missing_patch_ids

    if assessment is None:
        return None
    return arc_missing_patch_ids(assessment, os_family, index)
