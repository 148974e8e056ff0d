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

from patchcycle.domain import arc_installs, outcomes, verification
from patchcycle.domain.approval import rejection_reason
from patchcycle.domain.canary import CANARY, MAIN
from patchcycle.domain.inventory import is_rds
from patchcycle.domain.plan import FULL, install_selection, target_kernel
from patchcycle.operators.backup import scopes_of
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, utcnow
from patchcycle.operators.window import window_not_started
from patchcycle.triggers import checks

STATE_KEYS = (
    "Operation",
    "MissingCount",
    "FailedCount",
    "InstalledCount",
    "InstalledPendingRebootCount",
    "OperationEndTime",
    "InstallOverrideList",
    "BaselineId",  # the baseline the counts were measured against (InstancePatchState)
)


class VerifyStageOperator(WaitArguments, CycleOperator):
    """Read patch states back, classify each host, write the stage record, and stop the cycle on failure."""

    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        environment: str,
        batch: str | None = None,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.batch = batch
        # The reboot watch lasts the environment's reboot_timeout_minutes: attempts follow from the delay.
        self.set_wait_arguments(deferrable, waiter_delay, 0)

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Wait (deferred) until every host the install touched is back from its reboot, then verify."""
        from airflow.sdk.exceptions import AirflowSkipException

        cycle.stage_info(str(self.environment))
        if rejected := rejection_reason(self._stage_level_record(cycle, "approval.json")):
            raise AirflowSkipException(f"{self.environment} was not approved: {rejected}")
        payload = self._reboot_watch(cycle)
        if payload is None:
            return self._verify(cycle, {}, log)
        log.record(
            "reboot.watch_started",
            target=self.environment,
            batch=self.batch,
            hosts=payload["count"],
            deadline=payload["deadline"],
        )
        answer = checks.reboots(payload)
        if answer["done"]:
            return self._verify(cycle, answer, log)
        return self.wait_for(
            cycle,
            "reboots",
            payload,
            max_attempts=int(self.reboot_timeout.total_seconds() / self.delay) + 3,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resume after the reboot watch, then verify the batch."""
        return self.resume(context, event, lambda ctx, ev, log: self._verify(ctx, ev, log))

    @property
    def reboot_timeout(self) -> timedelta:
        """How long the hosts have to come back from their reboot (the environment's
        ``reboot_timeout_minutes``)."""
        return timedelta(minutes=self.tenant.environment(self.environment).reboot_timeout_minutes)

    def _reboot_watch(self, cycle: CycleContext) -> dict[str, Any] | None:
        """The hosts this batch's install reached, by scope, with the deadline for them to come back."""
        rows = {r["host_id"]: r for r in cycle.batch_hosts(self.environment, self.batch)}
        sent: set[str] = set()
        sent |= {
            h
            for h, r in (self._stage_record(cycle, "aws-invocations.json") or {}).items()
            if r.get("command_id")
        }
        sent |= {
            h
            for h, r in (self._stage_record(cycle, "azure-results.json") or {}).items()
            if r.get("operation")
        }
        sent |= {
            h for h, r in (self._stage_record(cycle, "gcp-results.json") or {}).items() if r.get("state")
        }
        hosts = [rows[h] for h in sorted(sent) if h in rows]
        if not hosts:
            return None
        scopes: dict[str, dict[tuple[str, ...], dict[str, Any]]] = defaultdict(dict)
        for row in hosts:
            if row["cloud"] == "aws":
                key: tuple[str, ...] = (row["account"], row["region"])
                base = {"conn_id": cycle.aws_conn_id(row["account"]), "region": row["region"]}
            elif row["cloud"] == "azure":
                key = (row["account"], row["resource_group"])
                base = {
                    "conn_id": cycle.azure_conn_id(row["account"]),
                    "subscription": row["account"],
                    "resource_group": row["resource_group"],
                }
            else:
                key = (row["account"], row["region"])
                base = {
                    "conn_id": cycle.gcp_conn_id(row["account"]),
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

    def _verify(self, cycle: CycleContext, reboots: dict[str, Any], log: EventLog) -> dict[str, Any]:
        """Read each cloud's answer for the batch, merge it per host (:mod:`patchcycle.domain.verification`),
        judge the batch against its error budget, and write the stage record."""
        paths = cycle.paths
        rows = cycle.batch_hosts(self.environment, self.batch)
        backups = cycle.read_record(paths.stage_file(self.environment, "backup-status.json"))
        plan = cycle.plan
        ready = [r for r in rows if backups.get(r["host_id"], {}).get("ready")]
        checked, ids = self._read_clouds(cycle, ready, plan)
        for finding in verification.apply_reboots(
            checked,
            rows,
            reboots.get("hosts") or {},
            expected_kernel=lambda row: self._expected_kernel(plan, row),
            timeout_minutes=self.reboot_timeout.total_seconds() / 60,
        ):
            log.record("reboot.failed", target=finding.host_id, name=finding.name, reason=finding.reason)
        merged = verification.merge_hosts(
            rows,
            backups=backups,
            checked=checked,
            window_closed=window_not_started(
                [self._stage_level_record(cycle, f"window-{self.batch or 'stage'}.json")]
            ),
            held_kernels=verification.held_kernel_reasons(
                cycle.read_record(paths.run_file("preflight.json"))
            ),
            batch=self.batch,
        )
        for finding in merged.findings:
            log.record(
                "verify.host",
                target=finding.host_id,
                result=finding.final_state,
                reason=finding.reason,
                name=finding.name,
            )
        rate = verification.batch_rate(self.tenant.environment(self.environment).rate_control, self.batch)
        verdict = outcomes.stage_verdict(merged.budget_states, rate)
        status = "succeeded" if verdict.succeeded else "failed"
        stage: dict[str, Any] = {
            "environment": self.environment,
            "status": status,
            "reason": verdict.reason,
            "started_at": (cycle.ti.xcom_pull(task_ids=f"{self.environment}.backup") or {}).get("started_at"),
            "finished_at": utcnow().isoformat(),
            "command_ids": ids,
            "budget": {
                "targets": verdict.targets,
                "errors": verdict.errors,
                "allowed_errors": verdict.allowed_errors,
            },
            "hosts": merged.hosts,
        }
        if self.batch == CANARY:
            stage = verification.canary_stage(stage, cycle.batch_hosts(self.environment, MAIN))
        elif self.batch == MAIN:
            stage = verification.stage_with_canary(
                stage,
                self._stage_level_record(cycle, "canary/stage.json"),
                self._stage_level_record(cycle, "canary/health.json"),
            )
        cycle.write_record(cycle.batch_file(self.environment, self.batch, "stage.json"), stage)
        log.record(
            "stage.verified",
            target=self.environment,
            batch=self.batch,
            result=status,
            reason=stage["reason"],
            patched=merged.patched,
            errors=verdict.errors,
            allowed_errors=verdict.allowed_errors,
        )
        if not verdict.succeeded:
            what = (
                f"the canary of {self.environment}" if self.batch == CANARY else f"stage {self.environment}"
            )
            raise AirflowFailException(f"{what} of {self.tenant_id} failed: {stage['reason']}")
        return {"status": status, "errors": verdict.errors, "targets": verdict.targets}

    def _read_clouds(
        self, cycle: CycleContext, ready: list[dict[str, Any]], plan: dict[str, Any]
    ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Each ready host's classified result, read from its cloud, and the Run Command and patch job
        ids the answers came from."""
        by_cloud: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in ready:
            by_cloud["rds" if is_rds(row) else row["cloud"]].append(row)
        checked: dict[str, dict[str, Any]] = {}
        ids: list[str] = []
        if by_cloud.get("aws"):
            checked.update(self._aws(cycle, by_cloud["aws"], ids, plan))
        if by_cloud.get("rds"):
            checked.update(self._rds(cycle, by_cloud["rds"]))
        if by_cloud.get("azure"):
            checked.update(self._azure(cycle, by_cloud["azure"], plan, ids))
        if by_cloud.get("gcp"):
            checked.update(self._gcp(cycle, by_cloud["gcp"], plan, ids))
        return checked, ids

    @staticmethod
    def _expected_kernel(plan: dict[str, Any], row: dict[str, Any]) -> str | None:
        """The kernel a host should run after the install: the plan's, unless its kernel update was held."""
        planned = target_kernel(plan, row["os_family"]) if row.get("install_variant", FULL) == FULL else None
        return planned or row.get("kernel")

    def _stage_record(self, cycle: CycleContext, name: str) -> Any:
        """This batch's record of the stage (the canary's live under ``canary/``)."""
        return cycle.read_record(cycle.batch_file(self.environment, self.batch, name), required=False)

    def _stage_level_record(self, cycle: CycleContext, name: str) -> Any:
        return cycle.read_record(cycle.paths.stage_file(self.environment, name), required=False)

    # -- AWS: Run Command invocations + each planned item as SSM reports it on the host ------------
    def _aws(
        self,
        cycle: CycleContext,
        rows: list[dict[str, Any]],
        ids: list[str],
        plan: dict[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Judge the plan on each host the install reached: its planned items as DescribeInstancePatches
        reports them (per instance: the API has no batch form), the patch state (batches of 50) kept as
        supporting data and, for a host with nothing planned, read against the tenant's baseline.

        DescribeInstancePatches reports "patches on the specified managed node and their state relative
        to the patch baseline being used for the node"
        (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeInstancePatches.html);
        states per "Understanding patch compliance state values"
        (https://docs.aws.amazon.com/systems-manager/latest/userguide/about-patch-compliance-states.html).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from patchcycle.domain.catalog import baseline_name, planned_item_states
        from patchcycle.hooks.aws import SsmFleetHook

        plan = plan if plan is not None else cycle.plan
        invocations = self._stage_record(cycle, "aws-invocations.json") or {}
        ids.extend(
            c["command_id"]
            for c in self._stage_record(cycle, "aws-commands.json") or []
            if c.get("command_id")
        )
        states: dict[str, dict[str, Any]] = {}
        patches: dict[str, list[dict[str, Any]]] = {}
        unreadable: dict[str, str] = {}
        tenant_baselines: dict[tuple[str, str, str], str | None] = {}
        reached = [
            r
            for r in rows
            if (inv := invocations.get(r["host_id"]))
            and (inv.get("status") == "Success" or inv.get("nothing_to_install"))
        ]
        calls = 0
        for (account, region), hosts in scopes_of(reached).items():
            hook = SsmFleetHook(aws_conn_id=cycle.aws_conn_id(account), region_name=region)
            try:
                states.update(hook.patch_states([h["host_id"] for h in hosts]))
            except (ClientError, BotoCoreError) as exc:
                for h in hosts:
                    unreadable[h["host_id"]] = f"DescribeInstancePatchStates: {exc}"
                continue
            for family in sorted({h["os_family"] for h in hosts if h.get("os_family")}):
                try:
                    tenant_baselines[(account, region, family)] = hook.patch_baseline_named(
                        baseline_name(self.tenant_id, family)
                    )
                except (ClientError, BotoCoreError):
                    tenant_baselines[(account, region, family)] = None
            for h in hosts:
                if h["host_id"] in unreadable:
                    continue
                try:
                    patches[h["host_id"]], n = hook.instance_patches(h["host_id"])
                    calls += n
                except (ClientError, BotoCoreError) as exc:
                    unreadable[h["host_id"]] = f"DescribeInstancePatches: {exc}"
        out = {}
        for row in rows:
            inv = invocations.get(row["host_id"])
            state = states.get(row["host_id"])
            variant = row.get("install_variant", FULL)
            selection = install_selection(plan, row["os_family"], variant) if row.get("os_family") else None
            wanted = set(selection.patch_ids) if selection else set()
            planned_rows = [
                p for p in plan.get("approved", {}).get(row.get("os_family") or "", []) if p["id"] in wanted
            ]
            planned = (
                planned_item_states(planned_rows, patches[row["host_id"]], row["os_family"])
                if row["host_id"] in patches
                else {}
            )
            final, reason = outcomes.classify_patched_host(
                inv and inv["status"],
                state,
                inv and inv.get("status_details"),
                planned=planned,
                tenant_baseline_id=tenant_baselines.get(
                    (row["account"], row["region"], row.get("os_family"))
                ),
                unreadable=unreadable.get(row["host_id"]),
                nothing_to_install=bool(inv and inv.get("nothing_to_install")),
                installed_after=inv and inv.get("sent_at"),
            )
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": inv and inv["command_id"],
                "invocation": inv and inv["status"],
                "patch_state": state and {k: state.get(k) for k in STATE_KEYS},
                "planned_states": planned or None,
            }
        self._aws_calls = calls
        return out

    # -- RDS: what was applied + the instance's status and pending OS update afterwards -------------
    def _rds(self, cycle: CycleContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        sent = self._stage_record(cycle, "rds-updates.json") or {}
        after = self._stage_record(cycle, "rds-results.json") or {}
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

    # -- Azure Arc: installPatches results, the install's record and the assessment after it ------
    def _azure(
        self, cycle: CycleContext, rows: list[dict[str, Any]], plan: dict[str, Any], ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Each machine against the plan, from Resource Graph (three paged queries per subscription, no
        per-machine call): the latest assessment (what it still misses), and Update Manager's record of
        the install (what it installed, with versions: Learn query-logs, "Patch installation results")."""
        import datetime as dt

        from patchcycle.config.models import OsFamily
        from patchcycle.domain.catalog_arc import approvable_missing, install_readback
        from patchcycle.domain.inventory import plan_patch_index
        from patchcycle.hooks.azure_arc import ArcError, ArcHook

        results = self._stage_record(cycle, "azure-results.json") or {}
        index = plan_patch_index(plan)
        cycle_date = dt.date.fromisoformat(plan["cycle_date"])
        groups: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            groups[row["account"]].add(row["resource_group"])
        assessments: dict[str, Any] = {}
        installations: dict[str, dict[str, list[dict[str, Any]]]] = {}
        unreadable: dict[str, str] = {}
        for subscription, resource_groups in groups.items():
            hook = ArcHook(azure_conn_id=cycle.azure_conn_id(subscription), subscription_id=subscription)
            try:
                assessments.update(hook.patch_assessments(sorted(resource_groups)))
            except ArcError as exc:
                unreadable[subscription] = str(exc)
            try:
                installations.update(hook.patch_installations(sorted(resource_groups)))
            except ArcError as exc:
                self.log.warning("Update Manager's install records unreadable: %s", exc)
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
            result = sent.get("result") or {}
            planned = arc_installs.planned_patches(plan, row["os_family"], selection.patch_ids)
            activity = str(result.get("installationActivityId") or "").lower()
            runs = installations.get(row["host_id"].lower(), {})
            readback = install_readback(planned, runs.get(activity) if activity in runs else None)
            approvable = None
            if sent.get("nothing_to_install") and assessment is not None:
                approvable = approvable_missing(
                    OsFamily(row["os_family"]),
                    assessment.get("patches") or [],
                    self.tenant.baseline_for(row["os_family"]),
                    cycle_date,
                )
            final, reason = outcomes.classify_arc_host(
                sent, still, approvable_missing=approvable, outside_plan=readback["outside_plan"]
            )
            if final == outcomes.NOT_ASSESSED and row["account"] in unreadable:
                reason = f"{reason}: {unreadable[row['account']]}"
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": sent.get("operation"),
                "invocation": result.get("status"),
                "installed_versions": readback["installed_versions"],
                "patch_state": {
                    "Operation": "Install" if result else None,
                    "MissingCount": len(still) if still is not None else None,
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
        self, cycle: CycleContext, rows: list[dict[str, Any]], plan: dict[str, Any], ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Each instance's job state and, read back from its FULL inventory (one zone-wide list per
        zone), the version installed of each planned package: OS Config cannot pin versions, so the
        record shows planned vs installed (``installed_versions``)."""
        from patchcycle.domain.inventory import VERSION_STILL_MISSING, gcp_installed_versions
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        results = self._stage_record(cycle, "gcp-results.json") or {}
        ids.extend(j["name"] for j in self._stage_record(cycle, "gcp-jobs.json") or [])
        zones: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            zones[(row["account"], row["region"])].append(row)
        inventories: dict[str, Any] = {}
        for (project, zone), _hosts in sorted(zones.items()):
            hook = OsConfigHook(gcp_conn_id=cycle.gcp_conn_id(project), project_id=project)
            for inv in hook.inventories(zone):
                inventories[inventory_instance_id(inv)] = inv
        out = {}
        for row in rows:
            sent = results.get(row["host_id"]) or {}
            inventory = inventories.get(str(row["host_id"]))
            selection = install_selection(plan, row["os_family"], row.get("install_variant", FULL))
            chosen = set(selection.patch_ids)
            planned = [p for p in plan["approved"].get(row["os_family"], []) if p["id"] in chosen]
            versions = gcp_installed_versions(inventory, planned) if inventory else []
            still = (
                sorted(v["patch_id"] for v in versions if v["status"] in VERSION_STILL_MISSING)
                if inventory
                else None
            )
            final, reason = outcomes.classify_gcp_host(sent, still, versions)
            decision = next(
                (b for b in plan.get("baselines", []) if b.get("os_family") == row["os_family"]), None
            )
            if not planned and final == outcomes.PATCHED and not (decision or {}).get("sources"):
                # Nothing planned because no catalog source listed this family's updates: that says
                # nothing about what the host is missing, so it is not judged compliant.
                final = outcomes.NOT_ASSESSED
                reason = f"the plan read no catalog source for {row['os_family']}: nothing to judge by"
            out[row["host_id"]] = {
                "final": final,
                "reason": reason,
                "command_id": sent.get("job"),
                "invocation": sent.get("state"),
                "installed_versions": [
                    {k: v.get(k) for k in ("package", "kb", "planned", "installed", "status")}
                    for v in versions
                ],
                "patch_state": {
                    "Operation": "Install" if sent.get("state") else None,
                    "MissingCount": len(still) if still is not None else None,
                    "FailedCount": 1 if sent.get("state") == "FAILED" else 0,
                    "InstalledCount": sum(1 for v in versions if v["status"] in ("exact", "newer"))
                    if inventory
                    else None,
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
