"""Patch a stage in each cloud, through the cloud's own fan-out, with exactly the frozen plan's patches.

- AWS: one Run Command per account, region and install variant, targeted by a tag and fanned out by
  SSM under the tenant's MaxConcurrency and MaxErrors; the install list is the plan's override list.
- Azure Arc: ``installPatches`` per machine (the API has no batch form), at most the rate control's
  concurrency in flight, no new machine started once the failures exceed MaxErrors; versioned package
  masks ``name_version`` (Linux) or KB numbers (Windows) from the plan, and no classification (whose
  updates Azure would install in addition).
- GCP: one OS Config patch job per project and install variant, for the stage's instances by name,
  zone by zone with the rate control as the disruption budget; exclusive package and KB lists from the plan.
- RDS: the OS update RDS offers each DB instance (its pending ``system-update`` maintenance action),
  applied now, only when it is one the plan froze (the API has no batch form: one call per instance).

Every wait defers to the triggerer. What was sent is recorded before waiting, so a retry resumes the
same commands, operations and jobs instead of sending them again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from patchcycle.domain import arc_installs
from patchcycle.domain.canary import CANARY
from patchcycle.domain.inventory import is_rds
from patchcycle.domain.plan import FULL, install_selection, rds_update_id
from patchcycle.operators.backup import scopes_of
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, WaitArguments, utcnow
from patchcycle.triggers import checks

TARGET_TAG = "patchcycle:target"
OSCONFIG_DURATION_SECONDS = 2 * 3600


def target_tag_value(
    cycle_date: str, environment: str, run_id: str, variant: str = FULL, batch: str | None = None
) -> str:
    """The tag value selecting this run's hosts of a stage, batch and variant (no host held earlier)."""
    value = f"{cycle_date}.{environment}.{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"
    if batch == CANARY:
        value = f"{value}.{CANARY}"
    return value if variant == FULL else f"{value}.{variant}"


class PatchCloudOperator(WaitArguments, CycleOperator):
    """What the three clouds' patch tasks share: the stage's ready hosts in one cloud, and the waits."""

    cloud: str = ""
    check: str = ""
    template_fields: Sequence[str] = ("tenant_id", "environment")

    def __init__(
        self,
        *,
        environment: str,
        batch: str | None = None,
        deferrable: bool = True,
        waiter_delay: float | None = None,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.batch = batch
        self.set_wait_arguments(deferrable, waiter_delay, waiter_max_attempts)

    def record_key(self, cycle: CycleContext, name: str) -> str:
        """Where this cloud's record ``name`` of the batch lives (``<cloud>-<name>``, see
        :meth:`batch_file`)."""
        return cycle.batch_file(self.environment, self.batch, f"{self.cloud}-{name}")

    def ready_hosts(self, cycle: CycleContext) -> list[dict[str, Any]]:
        """The stage's hosts in this cloud whose backup is complete (the others are held)."""
        status = cycle.read_record(cycle.paths.stage_file(self.environment, "backup-status.json"))
        return [
            r
            for r in cycle.batch_hosts(self.environment, self.batch)
            if r["cloud"] == self.cloud and status.get(r["host_id"], {}).get("ready")
        ]

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resume after a wait, in the cloud's completion step."""
        return self.resume(context, event, self._complete)

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> Any:  # pragma: no cover
        raise NotImplementedError

    def selection(self, plan: dict[str, Any], host: dict[str, Any]) -> Any:
        """The plan's install selection for the host's OS family and install variant."""
        return install_selection(plan, host["os_family"], host.get("install_variant", FULL))


class PatchAwsOperator(PatchCloudOperator):
    """Install the frozen plan's patch list on the stage's EC2 hosts through SSM Run Command."""

    cloud = "aws"
    check = "run_commands"

    def ready_hosts(self, cycle: CycleContext) -> list[dict[str, Any]]:
        """The batch's ready AWS hosts, without the RDS DB instances."""
        # RDS DB instances are AWS hosts too, but RDS patches them (PatchRdsOperator), not SSM.
        return [r for r in super().ready_hosts(cycle) if not is_rds(r)]

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Send (or resume) the batch's Run Commands, recorded in ``aws-commands.json``, and wait for them;
        the completion writes each host's invocation to ``aws-invocations.json``. Skipped when no AWS
        host is ready."""
        key = self.record_key(cycle, "commands.json")
        earlier = cycle.read_record(key, required=False)
        if earlier is not None:
            log.record(
                "patch.resumed",
                target=self.environment,
                command_ids=[c["command_id"] for c in earlier if c.get("command_id")],
            )
        commands = self._send(cycle, log, earlier or [])
        if not commands:
            raise AirflowSkipException(f"no AWS host of {self.environment} is ready to patch")
        payload = {"commands": [c for c in commands if c.get("command_id")]}
        answer = checks.run_commands(payload)
        if answer["done"]:
            return self.resume(cycle, {**answer, "status": "done"}, self._complete)
        return self.wait_for(cycle, self.check, payload)

    def _send(
        self, cycle: CycleContext, log: EventLog, earlier: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Send one command per scope and variant, each at most once per run however often the task
        runs: the intent is recorded before each SendCommand and its command id right after it; a
        later attempt keeps what an earlier one recorded, and for an intent without an answer (the
        attempt died in between) asks SSM for a command already sent to that target before sending."""
        from patchcycle.hooks.aws import Ec2BackupHook, SsmFleetHook

        key = self.record_key(cycle, "commands.json")
        done = {(c["account"], c["region"], c["variant"]): c for c in earlier}
        steps = iter(range(10_000))

        def record(entries: list[dict[str, Any]]) -> None:
            cycle.write_record(key, entries, step=next(steps))

        info = cycle.info
        plan = cycle.plan
        rows = self.ready_hosts(cycle)
        rate = self.tenant.environment(self.environment).rate_control
        plan_id = info["plan_hash"][:12]
        urls = info.get("install_list_urls") or {FULL: info["install_list_url"]}
        commands = []
        for (account, region), hosts in sorted(scopes_of(rows).items()):
            conn_id = cycle.aws_conn_id(account)
            variants: dict[str, list[str]] = defaultdict(list)
            for h in hosts:
                variants[h.get("install_variant", FULL)].append(h["host_id"])
            for variant, ids in sorted(variants.items()):
                ids.sort()
                prior = done.get((account, region, variant))
                if prior is not None and (prior.get("command_id") or prior.get("nothing_to_install")):
                    commands.append(prior)
                    continue
                if not any(install_selection(plan, f, variant).patch_ids for f in plan["approved"]):
                    # No document says what an empty InstallOverrideList installs; an absent one
                    # installs everything the baseline approves. Send nothing: verify judges these
                    # hosts by SSM's own assessment against the tenant's baseline.
                    commands.append(
                        {
                            "command_id": None,
                            "nothing_to_install": True,
                            "conn_id": conn_id,
                            "account": account,
                            "region": region,
                            "variant": variant,
                            "hosts": ids,
                        }
                    )
                    log.record("patch.nothing_to_install", target=f"aws:{account}:{region}", hosts=len(ids))
                    continue
                value = target_tag_value(
                    info["cycle_date"], self.environment, cycle.run_id, variant, self.batch
                )
                ssm = SsmFleetHook(aws_conn_id=conn_id, region_name=region)
                target = {"Key": f"tag:{TARGET_TAG}", "Values": [value]}
                if prior is not None and prior.get("intent_at"):
                    # Five minutes' margin for the difference between this clock and SSM's.
                    since = dt.datetime.fromisoformat(prior["intent_at"]) - dt.timedelta(minutes=5)
                    found = ssm.find_patch_command(target, since.strftime("%Y-%m-%dT%H:%M:%SZ"))
                    if found is not None:
                        commands.append(
                            {
                                **{k: v for k, v in prior.items() if k != "intent_at"},
                                "command_id": found["CommandId"],
                                "sent_at": _iso(found.get("RequestedDateTime")),
                            }
                        )
                        record(commands)
                        log.record(
                            "patch.reconciled",
                            target=f"aws:{account}:{region}",
                            command_id=found["CommandId"],
                            hosts=len(ids),
                            variant=variant,
                        )
                        continue
                intent = {
                    "command_id": None,
                    "intent_at": dt.datetime.now(dt.UTC).isoformat(),
                    "target": value,
                    "conn_id": conn_id,
                    "account": account,
                    "region": region,
                    "variant": variant,
                    "hosts": ids,
                }
                record([*commands, intent])
                Ec2BackupHook(aws_conn_id=conn_id, region_name=region).tag_instances(ids, {TARGET_TAG: value})
                command = ssm.send_patch_install(
                    target_tag=(TARGET_TAG, value),
                    override_list_url=urls[variant],
                    max_concurrency=rate.max_concurrency,
                    max_errors=rate.max_errors,
                    comment=f"patchcycle {self.tenant_id} {info['cycle_date']} {self.environment} "
                    f"plan {plan_id} {variant}",
                )
                commands.append(
                    {
                        "command_id": command["CommandId"],
                        # SSM's own clock (SendCommand's Command.RequestedDateTime), to tell a patch
                        # state taken after this install from one taken before it.
                        "sent_at": _iso(command.get("RequestedDateTime")),
                        "target": value,
                        "conn_id": conn_id,
                        "account": account,
                        "region": region,
                        "variant": variant,
                        "hosts": ids,
                    }
                )
                record(commands)
                log.record(
                    "patch.sent",
                    target=f"aws:{account}:{region}",
                    command_id=command["CommandId"],
                    hosts=len(ids),
                    document="AWS-RunPatchBaseline",
                    max_concurrency=rate.max_concurrency,
                    max_errors=rate.max_errors,
                    install_list=urls[variant],
                    variant=variant,
                    plan_hash=info["plan_hash"],
                )
        if commands:
            record(commands)
        return commands

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.aws import SsmFleetHook

        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        commands = cycle.read_record(self.record_key(cycle, "commands.json"))
        invocations: dict[str, dict[str, Any]] = {}
        for command in commands:
            if command.get("nothing_to_install"):
                for host_id in command["hosts"]:
                    invocations[host_id] = {"command_id": None, "status": None, "nothing_to_install": True}
                continue
            hook = SsmFleetHook(aws_conn_id=command["conn_id"], region_name=command["region"])
            for inv in hook.command_invocations(command["command_id"]):
                plugin = (inv.get("CommandPlugins") or [{}])[0]
                invocations[inv["InstanceId"]] = {
                    "command_id": command["command_id"],
                    "sent_at": command.get("sent_at"),
                    "status": inv["Status"],
                    "status_details": inv.get("StatusDetails"),
                    "response_code": plugin.get("ResponseCode"),
                    "output": (plugin.get("Output") or "")[:500],
                }
            log.record(
                "patch.finished",
                target=f"aws:{command['account']}:{command['region']}",
                result=event.get("commands", {}).get(command["command_id"], "unknown"),
                command_id=command["command_id"],
                wait=event.get("status"),
            )
        cycle.write_record(self.record_key(cycle, "invocations.json"), invocations)
        return {"invocations": len(invocations)}


def _iso(moment: Any) -> str | None:
    """A timestamp from boto3 (an aware datetime) as ISO 8601 text, or None."""
    return moment.isoformat() if hasattr(moment, "isoformat") else (str(moment) if moment else None)


class PatchAzureOperator(PatchCloudOperator):
    """installPatches on the stage's Arc machines, a bounded number in flight, until all have finished.

    Each round starts machines into the free slots (none once failures exceed MaxErrors), records the
    round (``azure-installs`` step records), and defers until half of those in flight have finished.
    A retry resumes from the last recorded round: machines already started are never started again.
    """

    cloud = "azure"
    check = "arc_installs"

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Start the first round of installs (see the class); the last round writes ``azure-results.json``.
        Skipped when no Azure host is ready."""
        if not self.ready_hosts(cycle):
            raise AirflowSkipException(f"no Azure host of {self.environment} is ready to patch")
        return self._round(cycle, log, finished={})

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> Any:
        if event.get("status") not in ("done", "wake", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        if event["status"] == "timeout":
            state = self._state(cycle)
            state["results"].update(event.get("results", {}))
            return self._finish(cycle, log, state, timed_out=True)
        return self._round(cycle, log, finished=event.get("results", {}))

    def _state(self, cycle: CycleContext) -> dict[str, Any]:
        state = cycle.read_record(self.record_key(cycle, "installs.json"), required=False)
        return state or {"operations": {}, "results": {}, "round": 0, "not_sent": []}

    def _round(self, cycle: CycleContext, log: EventLog, finished: dict[str, Any]) -> Any:
        from patchcycle.hooks.azure_arc import ArcError, ArcHook

        state = self._state(cycle)
        state["results"].update(finished)
        for host_id in arc_installs.answers_lost(state["operations"], state["results"]):
            op = state["operations"][host_id]
            op["answer_lost"] = True
            state["results"][host_id] = None
            log.record("patch.answer_lost", target=host_id, result="unknown", intent_at=op["intent_at"])
        rows = {r["host_id"]: r for r in self.ready_hosts(cycle)}

        def record(current: dict[str, Any]) -> None:
            current["writes"] = current.get("writes", 0) + 1
            cycle.write_record(self.record_key(cycle, "installs.json"), current, step=current["writes"])

        rate = self.tenant.environment(self.environment).rate_control
        decision = arc_installs.plan_round(list(rows), state["operations"], state["results"], rate)
        if decision.not_sent and not state["not_sent"]:
            state["not_sent"] = decision.not_sent
            log.record(
                "patch.budget_exhausted",
                target=f"azure:{self.environment}",
                result="stopped",
                errors=decision.errors,
                allowed_errors=decision.allowed_errors,
                not_sent=len(decision.not_sent),
            )
        if decision.start:
            plan, info = cycle.plan, cycle.info
            for host_id in decision.start:
                host = rows[host_id]
                selection = self.selection(plan, host)
                if not selection.patch_ids:
                    # An empty include list would make Update Manager install by classification instead.
                    state["operations"][host_id] = {
                        "nothing_to_install": True,
                        "variant": host.get("install_variant", FULL),
                    }
                    state["results"][host_id] = None
                    log.record("patch.nothing_to_install", target=host_id, name=host["name"])
                    continue
                body = arc_installs.install_parameters(
                    arc_installs.planned_patches(plan, host["os_family"], selection.patch_ids),
                    windows=host["os_family"].startswith("windows"),
                )
                conn_id = cycle.azure_conn_id(host["account"])
                hook = ArcHook(azure_conn_id=conn_id, subscription_id=host["account"])
                operation = {
                    "conn_id": conn_id,
                    "subscription": host["account"],
                    "intent_at": utcnow().isoformat(),
                    "variant": host.get("install_variant", FULL),
                }
                state["operations"][host_id] = operation
                record(state)  # the intent, before the request
                try:
                    operation["location"] = hook.start_install(host["resource_group"], host["name"], body)
                except ArcError as exc:
                    if exc.refused:  # ARM refused it: nothing started, a retry may ask again
                        del state["operations"][host_id]
                        record(state)
                    raise
                record(state)
                log.record(
                    "patch.sent",
                    target=host_id,
                    operation="installPatches",
                    name=host["name"],
                    variant=host.get("install_variant", FULL),
                    packages=body.get("linuxParameters", {}).get("packageNameMasksToInclude"),
                    kbs=body.get("windowsParameters", {}).get("kbNumbersToInclude"),
                    plan_hash=info["plan_hash"],
                )
        state["round"] += 1
        record(state)
        pending = {
            h: op for h, op in state["operations"].items() if h not in state["results"] and op.get("location")
        }
        remaining = 0 if decision.stopped else len([h for h in rows if h not in state["operations"]])
        if not pending and not remaining:
            return self._finish(cycle, log, state, timed_out=False)
        payload = {
            "operations": pending,
            "queued": remaining,
            "wake_after": arc_installs.wake_after(len(pending)),
        }
        return self.wait_for(cycle, self.check, payload)

    def _finish(
        self, cycle: CycleContext, log: EventLog, state: dict[str, Any], timed_out: bool
    ) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for host_id, op in state["operations"].items():
            out[host_id] = {
                "operation": op.get("location"),
                "variant": op["variant"],
                "result": state["results"].get(host_id),
                "nothing_to_install": bool(op.get("nothing_to_install")),
                "answer_lost": bool(op.get("answer_lost")),
            }
        for host_id in state["not_sent"]:
            out[host_id] = {"operation": None, "variant": None, "result": None, "not_sent": True}
        cycle.write_record(self.record_key(cycle, "results.json"), out)
        log.record(
            "patch.finished",
            target=f"azure:{self.environment}",
            result="timeout" if timed_out else "done",
            machines=len(state["operations"]),
            failed=sum(1 for r in state["results"].values() if arc_installs.result_failed(r)),
            not_sent=len(state["not_sent"]),
            rounds=state["round"],
        )
        return {"machines": len(out)}


class PatchGcpOperator(PatchCloudOperator):
    """One OS Config patch job per project and install variant, zone by zone under a disruption budget."""

    cloud = "gcp"
    check = "osconfig_jobs"

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Start (or resume) the batch's patch jobs, recorded in ``gcp-jobs.json``, and wait for them; the
        completion writes each host's result to ``gcp-results.json``. With no job, every ready host is
        recorded as having nothing to install; skipped when no GCP host is ready."""
        key = self.record_key(cycle, "jobs.json")
        earlier = cycle.read_record(key, required=False)
        if earlier is not None:
            log.record(
                "patch.resumed", target=self.environment, jobs=[j["name"] for j in earlier if j.get("name")]
            )
        jobs = self._execute(cycle, log, earlier or [])
        if not jobs:
            ready = self.ready_hosts(cycle)
            if not ready:
                raise AirflowSkipException(f"no GCP host of {self.environment} is ready to patch")
            results = {h["host_id"]: {"nothing_to_install": True} for h in ready}
            cycle.write_record(self.record_key(cycle, "results.json"), results)
            return {"instances": 0}
        payload = {"jobs": [{k: j[k] for k in ("conn_id", "project", "name")} for j in jobs]}
        answer = checks.osconfig_jobs(payload)
        if answer["done"]:
            return self.resume(cycle, {**answer, "status": "done"}, self._complete)
        return self.wait_for(cycle, self.check, payload)

    def _execute(
        self, cycle: CycleContext, log: EventLog, earlier: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Start the stage's patch jobs: instances share a job only when their plans give the same
        exclusive lists (:func:`patchcycle.domain.gcp_jobs.gcp_patch_job_groups`).

        Each job is started at most once per run however often the task runs: the intent is recorded
        before ExecutePatchJob (which takes no request id) and the job's name right after; a later
        attempt keeps the jobs recorded, and for an intent without a name looks for a job with its
        display name and description (they name the run) created since, before starting one.

        The lists name packages without versions (OS Config cannot pin one: PatchConfig, AptSettings /
        YumSettings, https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig): the planned
        versions are logged with the job, and verify reads back what was installed.
        """
        from patchcycle.domain import gcp_jobs
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        info = cycle.info
        plan = cycle.plan
        rate = self.tenant.environment(self.environment).rate_control
        budget = gcp_jobs.disruption_budget(rate.max_errors)
        groups, idle = gcp_jobs.gcp_patch_job_groups(plan, self.ready_hosts(cycle))
        for host in idle:
            # An empty exclusive list would make OS Config apply the OS's default update set.
            log.record("patch.nothing_to_install", target=host["host_id"], name=host["name"])
        names = gcp_jobs.patch_job_names(
            groups,
            tenant_id=self.tenant_id,
            cycle_date=info["cycle_date"],
            environment=self.environment,
            batch=self.batch,
            plan_hash=info["plan_hash"],
            run_token=hashlib.sha256(cycle.run_id.encode()).hexdigest()[:8],
        )
        jobs: list[dict[str, Any]] = []
        record_key = self.record_key(cycle, "jobs.json")
        done = {(j["project"], j["display_name"]): j for j in earlier if j.get("display_name")}
        steps = iter(range(10_000))
        for group, name in zip(groups, names, strict=True):
            display_name, description = name.display_name, name.description
            conn_id = cycle.gcp_conn_id(group.project)
            hook = OsConfigHook(gcp_conn_id=conn_id, project_id=group.project)
            entry = {
                "name": None,
                "display_name": display_name,
                "conn_id": conn_id,
                "project": group.project,
                "variant": group.variant,
                "hosts": sorted(h["host_id"] for h in group.hosts),
            }
            prior = done.get((group.project, display_name))
            if prior is not None and prior.get("name"):
                jobs.append(prior)
                continue
            if prior is not None and prior.get("intent_at"):
                found = gcp_jobs.started_job(
                    hook.patch_jobs(display_name), description, dt.datetime.fromisoformat(prior["intent_at"])
                )
                if found is not None:
                    jobs.append({**entry, "name": found["name"]})
                    cycle.write_record(record_key, jobs, step=next(steps))
                    log.record("patch.reconciled", target=f"gcp:{group.project}", job=found["name"])
                    continue
            intent = {**entry, "intent_at": dt.datetime.now(dt.UTC).isoformat()}
            cycle.write_record(record_key, [*jobs, intent], step=next(steps))
            job = hook.execute_patch_job(
                display_name=display_name,
                description=description,
                instances=[(h["region"], h["name"]) for h in group.hosts],
                apt_packages=list(group.apt_packages),
                yum_packages=list(group.yum_packages),
                windows_kbs=list(group.windows_kbs),
                reboot="DEFAULT",
                duration_seconds=OSCONFIG_DURATION_SECONDS,
                rollout_mode="ZONE_BY_ZONE",
                disruption_budget=budget,
            )
            jobs.append({**entry, "name": job["name"]})
            cycle.write_record(record_key, jobs, step=next(steps))
            families = sorted({h["os_family"] for h in group.hosts})
            log.record(
                "patch.sent",
                target=f"gcp:{group.project}",
                job=job["name"],
                hosts=len(group.hosts),
                variant=group.variant,
                disruption_budget=budget,
                apt_packages=list(group.apt_packages),
                yum_packages=list(group.yum_packages),
                windows_kbs=list(group.windows_kbs),
                # What the plan froze; the job installs each package's newest build (not pinnable).
                planned_versions={
                    f: {
                        p["package"]: p.get("version")
                        for p in plan["approved"].get(f, [])
                        if p.get("package")
                    }
                    for f in families
                },
                plan_hash=info["plan_hash"],
            )
        cycle.write_record(record_key, jobs, step=next(steps))
        return jobs

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        from patchcycle.hooks.gcp_osconfig import OsConfigHook

        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        jobs = cycle.read_record(self.record_key(cycle, "jobs.json"))
        ready = self.ready_hosts(cycle)  # every job's hosts are among them
        results: dict[str, dict[str, Any]] = {}
        for job in jobs:
            hook = OsConfigHook(gcp_conn_id=job["conn_id"], project_id=job["project"])
            detail = hook.patch_job(job["name"])
            by_name = {inst["name"].rsplit("/", 1)[-1]: inst for inst in hook.instance_details(job["name"])}
            in_job = set(job["hosts"])
            for host in ready:
                if host["host_id"] in in_job:
                    inst = by_name.get(host["name"], {})
                    results[host["host_id"]] = {
                        "job": job["name"],
                        "job_state": detail.get("state"),
                        "job_error": detail.get("errorMessage"),
                        "state": inst.get("state", "NOT_STARTED"),
                        "failure_reason": inst.get("failureReason"),
                    }
            log.record(
                "patch.finished",
                target=f"gcp:{job['project']}",
                result=event.get("jobs", {}).get(job["name"], detail.get("state")),
                job=job["name"],
                error=detail.get("errorMessage"),
            )
        for host in ready:
            results.setdefault(host["host_id"], {"nothing_to_install": True})
        cycle.write_record(self.record_key(cycle, "results.json"), results)
        return {"instances": len(results)}


class PatchRdsOperator(PatchCloudOperator):
    """Apply the frozen plan's OS update to the stage's RDS DB instances, then wait until RDS is done.

    Each instance's pending ``system-update`` is applied only when its description is one the plan
    froze; an instance RDS now offers another update is left alone (non-compliant, with the reason), and
    one with nothing pending has nothing to install. What was applied is recorded before the wait; a
    retry reads RDS again and never opts an instance in twice (one already opted in is resumed).
    """

    cloud = "rds"
    check = "rds_updates"

    def ready_hosts(self, cycle: CycleContext) -> list[dict[str, Any]]:
        """The batch's RDS DB instances whose backup is complete."""
        status = cycle.read_record(cycle.paths.stage_file(self.environment, "backup-status.json"))
        return [
            r
            for r in cycle.batch_hosts(self.environment, self.batch)
            if is_rds(r) and status.get(r["host_id"], {}).get("ready")
        ]

    def run(self, cycle: CycleContext, log: EventLog) -> Any:
        """Apply the planned OS updates (recorded in ``rds-updates.json``; a retry resumes them) and wait
        until RDS is done; the completion writes ``rds-results.json``. Skipped when no DB instance is
        ready."""
        key = self.record_key(cycle, "updates.json")
        sent = cycle.read_record(key, required=False)
        if sent is not None:
            log.record("patch.resumed", target=f"rds:{self.environment}", instances=sorted(sent))
        else:
            rows = self.ready_hosts(cycle)
            if not rows:
                raise AirflowSkipException(f"no RDS DB instance of {self.environment} is ready to patch")
            sent = self._apply(cycle, rows, log)
            cycle.write_record(key, sent)
        payload = self._payload(sent)
        if not payload["scopes"]:
            return self.resume(cycle, {"status": "done", "instances": {}}, self._complete)
        answer = checks.rds_updates(payload)
        if answer["done"]:
            return self.resume(cycle, {**answer, "status": "done"}, self._complete)
        return self.wait_for(cycle, self.check, payload)

    def _apply(self, cycle: CycleContext, rows: list[dict[str, Any]], log: EventLog) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        from patchcycle.domain.plan import planned_rds_updates
        from patchcycle.hooks.aws import RdsHook

        info = cycle.info
        planned = set(planned_rds_updates(cycle.plan))
        sent: dict[str, dict[str, Any]] = {}
        for (account, region), hosts in sorted(scopes_of(rows).items()):
            conn_id = cycle.aws_conn_id(account)
            hook = RdsHook(aws_conn_id=conn_id, region_name=region)
            offered = hook.pending_os_updates()
            for host in sorted(hosts, key=lambda h: h["host_id"]):
                arn = host["host_id"]
                base = {"conn_id": conn_id, "account": account, "region": region, "name": host["name"]}
                update = offered.get(arn)
                description = str((update or {}).get("Description") or "").strip()
                if update is None:
                    sent[arn] = {**base, "nothing_to_install": True}
                    log.record("patch.nothing_to_install", target=arn, name=host["name"])
                elif description not in planned:
                    sent[arn] = {**base, "not_frozen": description}
                    log.record(
                        "patch.not_sent",
                        target=arn,
                        result="not_in_plan",
                        name=host["name"],
                        offered=description,
                        planned=sorted(planned),
                    )
                elif update.get("OptInStatus") == "immediate":
                    # An earlier attempt opted it in before it could record so: never apply twice.
                    sent[arn] = {**base, "applied": True, "description": description, "resumed": True}
                    log.record("patch.resumed", target=arn, name=host["name"], update=description)
                else:
                    try:
                        hook.apply_os_update(arn)
                    except ClientError as exc:  # this instance is refused; the others go on
                        error = exc.response.get("Error", {})
                        sent[arn] = {**base, "error": f"{error.get('Code')}: {error.get('Message')}"}
                        log.record("patch.refused", target=arn, result="failed", error=sent[arn]["error"])
                        continue
                    sent[arn] = {**base, "applied": True, "description": description}
                    log.record(
                        "patch.sent",
                        target=arn,
                        operation="ApplyPendingMaintenanceAction",
                        name=host["name"],
                        update=description,
                        update_id=rds_update_id(description),
                        plan_hash=info["plan_hash"],
                    )
        return sent

    @staticmethod
    def _payload(sent: dict[str, Any]) -> dict[str, Any]:
        scopes: dict[tuple[str, str], dict[str, Any]] = {}
        for arn, entry in sorted(sent.items()):
            if entry.get("applied"):
                scope = scopes.setdefault(
                    (entry["conn_id"], entry["region"]),
                    {"conn_id": entry["conn_id"], "region": entry["region"], "hosts": []},
                )
                scope["hosts"].append(arn)
        return {"scopes": [scopes[k] for k in sorted(scopes)]}

    def _complete(self, cycle: CycleContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        if event.get("status") not in ("done", "timeout"):
            raise AirflowFailException(f"unexpected trigger event: {event}")
        results = event.get("instances", {})
        cycle.write_record(self.record_key(cycle, "results.json"), results)
        log.record(
            "patch.finished",
            target=f"rds:{self.environment}",
            wait=event.get("status"),
            instances=len(results),
            still_pending=sorted(a for a, r in results.items() if r.get("pending")),
        )
        return {"instances": len(results)}
