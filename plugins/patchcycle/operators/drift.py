"""The daily drift report of one tenant: every resource its Terraform manages, compared with what is live,
each drift named with who made it, kept as evidence and mailed to its SREs.

Two tasks, as the cycle's evidence and distribution are: ``report`` reads each AWS scope (account and
region) of the tenant, builds the day's report and writes its pack (``drift/<day>/runs/<run>/pack/``:
``drift.json``, ``summary.csv`` and ``manifest.json`` chained to the previous drift pack); ``notify``
mails the SREs once a day and fails the run when a scope could not be read.

A drift run is not a cycle task: it has no plan and no stages, so it works from a small
:class:`DriftContext` (tenant, evidence store, the day, the run) instead of a ``CycleContext``. It does not
defer: it waits only for CloudTrail's pacing (half a second between lookups, a few seconds of backoff when
throttled), far less than what a deferral costs (a trigger, a reschedule and a new worker slot).

Per scope (:mod:`patchcycle.domain.drift.daily` has the policy): read the day's plan JSON (engine 1) or the
state and the live objects (engine 2); name each drift's author from CloudTrail, excluding the
orchestrator and Terraform; find launch template versions that would start instances without the SSM
bootstrap or instance profile, and (state engine) the tenant's Auto Scaling groups that would: those
whose launch template the state manages or that carry the tenant's ``patchcycle:tenant`` tag, judged on
the version they resolve to or their launch configuration. A scope that cannot be read (no state, a
refused or failing call, a state of another format) is a scope error: the others go on and the report
says it is incomplete. A CloudTrail that cannot be read leaves the drifts without an author, with a note:
the drift itself is still known.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from patchcycle import __version__
from patchcycle.domain.drift import (
    DriftInputError,
    DriftReport,
    ScopeError,
    ScopeResult,
    attach_authors,
    build_report,
    compare_state,
    drift_trend,
    read_plan,
    read_state,
)
from patchcycle.domain.drift import daily as policy
from patchcycle.domain.drift.launch import GroupFinding, LaunchFinding, launch_findings, plan_launch_templates
from patchcycle.domain.drift.model import Engine
from patchcycle.domain.terraform_vars import AwsScope, aws_scopes
from patchcycle.operators.base import DailyTaskMixin, EventLog, run_type_name, utcnow
from patchcycle.operators.context import TaskRunContext
from patchcycle.reports.drift_store import REPORT_NAME, SUMMARY_NAME, DriftPaths, free_pack
from patchcycle.reports.manifest import MANIFEST_NAME, build_manifest, manifest_bytes, manifest_sha256

REPORT_TASK_ID = "report"
SCHEMA_VERSION = "drift-1.0"


def scope_errors() -> tuple[type[BaseException], ...]:
    """What makes a scope unreadable (as opposed to a bug of ours): the AWS SDK's errors and a plan or
    state the engines refuse."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, DriftInputError)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:800]


def parse_json(data: bytes, what: str) -> Any:
    """``data`` as JSON; :class:`DriftInputError` naming ``what`` when it is not."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DriftInputError(f"{what} is not JSON: {exc}") from exc


class DriftContext(TaskRunContext):
    """One execution of a drift task: the tenant, its evidence store, the run and the day it reports (a
    drift run has no plan and no stages, so it is not a ``CycleContext``)."""

    @cached_property
    def day(self) -> dt.date:
        """The day the run reports: ``as_of``, else the run's logical date, else when it was due."""
        return policy.report_day(
            self.params.get("as_of"), self.airflow.get("logical_date"), self.dag_run.run_after
        )

    @property
    def paths(self) -> DriftPaths:
        """The keys of this run's evidence."""
        return DriftPaths(self.day.isoformat(), self.run_id)


class DriftTaskMixin(DailyTaskMixin):
    """A drift task: its :class:`DriftContext` built once per execute, and its event log appended to the
    evidence store whether the task returns or raises."""

    context_class = DriftContext


@dataclasses.dataclass
class ScopeRead:
    """What one scope gave: the engine's result (with authors), its launch findings, how it was read, and
    the provider configuration each resource is managed through (address -> alias, from the state)."""

    result: ScopeResult
    findings: list[LaunchFinding]
    facts: dict[str, Any]
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)
    groups: list[GroupFinding] = dataclasses.field(default_factory=list)


class _Trails:
    """The CloudTrail hooks of one scope, made when first needed: the scope's account and region (``""``),
    the scope's account where IAM's events are recorded (``global``), and the platform's account in the
    evidence region (``evidence``), their calls counted."""

    def __init__(self, tenant: Any, scope: AwsScope) -> None:
        from patchcycle.hooks import aws_drift

        self._aws_drift = aws_drift
        self._where = {
            "": (scope.connection_id, scope.region),
            policy.GLOBAL_TRAIL: (
                scope.connection_id,
                policy.GLOBAL_EVENTS_REGION[policy.partition(scope.region)],
            ),
            "evidence": (tenant.evidence.connection_id, tenant.evidence.region),
        }
        self._hooks: dict[tuple[str, str], Any] = {}
        self.counter = aws_drift.CallCounter()

    def hook(self, trail: str) -> Any:
        """The hook of ``trail`` (an unknown alias reads the scope's own)."""
        conn_id, region = self._where.get(trail, self._where[""])
        if (conn_id, region) not in self._hooks:
            hook = self._aws_drift.CloudTrailHook(aws_conn_id=conn_id, region_name=region)
            self.counter.attach(hook.conn)
            self._hooks[(conn_id, region)] = hook
        return self._hooks[(conn_id, region)]

    @property
    def throttled(self) -> int:
        """Throttled lookups sent again, over every trail."""
        return sum(h.throttled for h in self._hooks.values())


class DriftReportOperator(DriftTaskMixin, BaseOperator):
    """Read every AWS scope of the tenant, build the day's drift report and write its evidence pack."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#fdf1e4"

    def __init__(self, *, tenant_id: str, engine: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.engine = engine
        """The engine to use (``auto``, ``state``, ``plan``); None: the run's ``engine`` param."""

    # -- configuration read when the task runs (never at parse) ---------------------------------------
    @cached_property
    def state_bucket(self) -> str:
        """The Terraform state bucket (``[patchcycle] terraform_state_bucket``)."""
        from airflow.configuration import conf

        return conf.get("patchcycle", "terraform_state_bucket", fallback=policy.STATE_BUCKET)

    @cached_property
    def state_hook(self) -> Any:
        """The state bucket's hook, through the platform's connection (``[patchcycle]
        terraform_state_conn_id``, else the evidence writer's) in its region (``terraform_state_region``,
        else the tenant's evidence region)."""
        from airflow.configuration import conf

        from patchcycle.hooks.terraform_state import TerraformStateHook

        evidence = self.tenant.evidence
        conn_id = conf.get("patchcycle", "terraform_state_conn_id", fallback=evidence.connection_id)
        region = conf.get("patchcycle", "terraform_state_region", fallback=evidence.region)
        return TerraformStateHook(aws_conn_id=conn_id, region_name=region)

    @cached_property
    def configured_exclusions(self) -> list[str]:
        """Principals the deployment names as never a drift's author (``drift_excluded_principals``)."""
        from airflow.configuration import conf

        raw = conf.get("patchcycle", "drift_excluded_principals", fallback="")
        return [p.strip() for p in raw.split(",") if p.strip()]

    # -- the run ----------------------------------------------------------------------------------------
    def run(self, drift: DriftContext, log: EventLog) -> dict[str, Any]:
        """Read each scope, build the report, write the pack; return the day, the pack's URL and digest
        and the counts (never a value)."""
        read_at = utcnow()
        requested = self.engine or drift.params.get("engine") or "auto"
        if requested not in policy.ENGINE_CHOICES:
            raise ValueError(f"engine {requested!r} is not one of {', '.join(policy.ENGINE_CHOICES)}")
        scopes = aws_scopes(self.tenant)
        plans = self._plans(drift, scopes) if requested != "state" else {}
        engine = policy.choose_engine(requested, {k: v is not None for k, v in plans.items()})
        reads: list[ScopeRead] = []
        errors: list[ScopeError] = []
        for scope in scopes:
            label = policy.scope_label(scope.account_id, scope.region)
            try:
                read = self._scope(drift, scope, engine, plans.get(scope.key), read_at)
            except scope_errors() as exc:  # this scope halts; the tenant's others go on
                errors.append(ScopeError(label, _error_text(exc)))
                log.record("drift.scope_failed", target=label, result="failed", error=_error_text(exc))
                continue
            reads.append(read)
            result = read.result
            log.record(
                "drift.checked",
                target=label,
                engine=engine,
                checked=len(result.checked),
                drifts=sum(1 for d in result.differences if d.classification == "drift"),
                unchecked=len(result.unchecked),
                api_calls=read.facts.get("api_calls", {}),
            )
        report = build_report(self.tenant.id, drift.day, engine, [r.result for r in reads], errors)
        if late := policy.late_note(drift.day, read_at, engine):
            report = dataclasses.replace(report, notes=(*report.notes, late))
        findings = [f for r in reads for f in r.findings]
        groups = [g for r in reads for g in r.groups]
        return self._write(drift, log, report, findings, reads, requested, read_at, groups)

    def _plans(self, drift: DriftContext, scopes: Sequence[AwsScope]) -> dict[str, Any]:
        """The day's plan JSON of each scope (None where the pipeline left none)."""
        found: dict[str, Any] = {}
        for scope in scopes:
            key = policy.plan_key(self.tenant.id, scope.account_id, scope.region, drift.day)
            found[scope.key] = self.state_hook.read(self.state_bucket, key)
        return found

    def _scope(
        self, drift: DriftContext, scope: AwsScope, engine: Engine, plan: Any, read_at: dt.datetime
    ) -> ScopeRead:
        label = policy.scope_label(scope.account_id, scope.region)
        if engine == "plan_json":
            if plan is None:
                key = policy.plan_key(self.tenant.id, scope.account_id, scope.region, drift.day)
                raise DriftInputError(f"no plan JSON at s3://{self.state_bucket}/{key}")
            data, obj = plan
            document = parse_json(data, "the plan")
            read = self._from_plan(label, document, obj)
            callers = policy.caller_arns_in_plan(document)
        else:
            read, callers = self._from_state(label, scope)
        excluded = policy.excluded_principals(
            scope.account_id, scope.region, callers, self.configured_exclusions
        )
        read.result = self._attribute(read, scope, excluded, read_at)
        read.facts["excluded_principals"] = list(excluded)
        return read

    def _from_plan(self, label: str, plan: Mapping[str, Any], obj: Mapping[str, Any]) -> ScopeRead:
        result = read_plan(plan, scope=label)
        note = "Auto Scaling groups are not read by the plan engine (the state engine reads them)"
        result = dataclasses.replace(
            result, notes=(*result.notes, note), source={**result.source, "object": dict(obj)}
        )
        findings = [
            f
            for address, name, declared, latest in plan_launch_templates(plan)
            for f in launch_findings(label, address, name, declared, [latest])
        ]
        return ScopeRead(result, findings, {"scope": label, "engine": "plan_json", "api_calls": {}})

    def _from_state(self, label: str, scope: AwsScope) -> tuple[ScopeRead, list[str]]:
        from patchcycle.hooks import aws_drift

        key = policy.state_key(self.tenant.id, scope.account_id, scope.region)
        found = self.state_hook.read(self.state_bucket, key)
        if found is None:
            raise DriftInputError(f"no Terraform state at s3://{self.state_bucket}/{key}")
        data, obj = found
        state = read_state(parse_json(data, "the state file"))
        evidence = self.tenant.evidence
        reader = aws_drift.LiveResourceReader(
            {
                "": aws_drift.Connection(scope.connection_id, scope.region),
                "evidence": aws_drift.Connection(evidence.connection_id, evidence.region),
            }
        )
        live = reader.read(state.managed())
        result = compare_state(state, live.live, scope=label)
        notes = [f"{address} not read: {why}" for address, why in sorted(live.unread.items())]
        result = dataclasses.replace(
            result, notes=(*result.notes, *notes), source={**result.source, "object": dict(obj)}
        )
        declared = {i.address: i.attributes for i in state.managed()}
        findings = [
            f
            for address, versions in sorted(live.launch_versions.items())
            for f in launch_findings(
                label,
                address,
                str((declared.get(address) or {}).get("name") or address),
                declared.get(address),
                versions,
            )
        ]
        groups = reader.read_groups(label, self.tenant.id, state.managed())
        facts = {"scope": label, "engine": "state_compare", "api_calls": dict(reader.counter.calls)}
        aliases = {i.address: policy.provider_alias(i.provider) for i in state.managed()}
        read = ScopeRead(result, findings, facts, aliases, groups)
        return read, policy.caller_arns_in_state(state)

    def _attribute(
        self, read: ScopeRead, scope: AwsScope, excluded: Sequence[str], read_at: dt.datetime
    ) -> ScopeResult:
        """The scope's result with each drift's author, from the CloudTrail of the account each resource
        lives in: by resource name, then by the write events of the types still without one. CloudTrail
        failing leaves them unknown, noted."""
        from botocore.exceptions import BotoCoreError, ClientError

        result = read.result
        facts: dict[str, Any] = {"lookups": 0, "events": 0, "throttled": 0, "error": None}
        read.facts["cloudtrail"] = facts
        if not policy.lookup_names(result, read.aliases):
            return result
        trails = _Trails(self.tenant, scope)
        start, events = read_at - policy.CLOUDTRAIL_LOOKBACK, {}

        def ask(by_trail: Mapping[str, list[str]], event_names: bool) -> ScopeResult:
            for trail, values in by_trail.items():
                hook = trails.hook(trail)
                lookup = hook.lookup_events_named if event_names else hook.lookup_events
                for value in values[: max(0, policy.MAX_LOOKUPS - facts["lookups"])]:
                    facts["lookups"] += 1
                    for event in lookup(value, start, read_at):
                        key = event.get("EventId") or json.dumps(event, sort_keys=True, default=str)
                        events[key] = event
            return attach_authors(result, events.values(), exclude_principals=excluded, not_after=read_at)

        try:
            result = ask(policy.lookup_names(result, read.aliases), event_names=False)
            if fallback := policy.unattributed_event_names(result, read.aliases):
                result = ask(fallback, event_names=True)
        except (BotoCoreError, ClientError) as exc:
            facts["error"] = _error_text(exc)
            note = f"who made each drift is unknown: CloudTrail could not be read ({facts['error']})"
            result = dataclasses.replace(result, notes=(*result.notes, note))
        if facts["lookups"] >= policy.MAX_LOOKUPS:
            note = (
                f"CloudTrail asked {policy.MAX_LOOKUPS} times (the most per scope): some drifts may lack "
                "an author"
            )
            result = dataclasses.replace(result, notes=(*result.notes, note))
        facts.update(events=len(events), throttled=trails.throttled)
        calls = read.facts.setdefault("api_calls", {})
        for name, count in trails.counter.calls.items():
            calls[name] = calls.get(name, 0) + count
        return result

    # -- the pack ---------------------------------------------------------------------------------------
    def _write(
        self,
        drift: DriftContext,
        log: EventLog,
        report: DriftReport,
        findings: list[LaunchFinding],
        reads: list[ScopeRead],
        requested: str,
        read_at: dt.datetime,
        groups: Sequence[GroupFinding] = (),
    ) -> dict[str, Any]:
        from patchcycle.domain.controls import controls_summary, load_control_catalogs, map_controls
        from patchcycle.domain.drift.stored import report_from_dict
        from patchcycle.domain.drift.summary import drift_rows, summary_csv
        from patchcycle.reports.drift_store import latest_reports, previous_manifest_sha256

        store, paths, day = drift.store, drift.paths, drift.day
        first = day - dt.timedelta(days=policy.TREND_DAYS - 1)
        earlier = latest_reports(store, first, day - dt.timedelta(days=1))
        trend = drift_trend([report_from_dict(doc["report"]) for _, doc in sorted(earlier.items())], report)
        pack = free_pack(store, paths, drift.attempt)
        now = utcnow().isoformat()
        log.record(
            "drift.reported",
            target=store.url(pack),
            result="complete" if report.complete else "incomplete",
            open_drift=report.open_drift,
            launch_findings=len(findings),
            group_findings=len(groups),
            unchecked=len(report.unchecked),
            failed_scopes=[e.scope for e in report.errors],
        )
        frameworks = [f.value for f in self.tenant.frameworks]
        controls = map_controls(
            log.events,
            frameworks,
            load_control_catalogs(),
            retention_days=store.retention_days or 0,
            evidence="drift",
        )
        run = drift.dag_run
        document = {
            "schema_version": SCHEMA_VERSION,
            "kind": "drift_report",
            "run": {
                "run_id": drift.run_id,
                "run_type": run_type_name(run),
                "triggered_by": getattr(run, "triggering_user_name", None),
                "engine_requested": requested,
                "read_at": read_at.isoformat(),
                "finished_at": now,
                "generated_by": f"patchcycle {__version__}",
            },
            "report": report.to_dict(),
            "launch_findings": [f.to_dict() for f in findings],
            "group_findings": [g.to_dict() for g in groups],
            "scopes": [r.facts for r in reads]
            + [{"scope": e.scope, "error": e.message} for e in report.errors],
            "trend": [p.to_dict() for p in trend],
            "events": list(log.events),
            "controls": [c.to_dict() for c in controls],
            "controls_summary": controls_summary(controls),
            "retention": {"days": store.retention_days, "mode": "COMPLIANCE"},
        }
        scope_of = {
            a: r.result.scope
            for r in reads
            for a in (*r.result.checked, *(u.address for u in r.result.unchecked))
        }
        files = {
            REPORT_NAME: (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode(),
            SUMMARY_NAME: summary_csv(drift_rows(report, scope_of)),
        }
        previous = previous_manifest_sha256(store, day.isoformat())
        manifest = build_manifest(
            files,
            tenant_id=self.tenant.id,
            cycle_date=day.isoformat(),
            run_id=drift.run_id,
            created_at=now,
            previous_manifest_sha256=previous,
        )
        store.put_bytes(f"{pack}/{REPORT_NAME}", files[REPORT_NAME], "application/json")
        store.put_bytes(f"{pack}/{SUMMARY_NAME}", files[SUMMARY_NAME], "text/csv")
        store.put_bytes(f"{pack}/{MANIFEST_NAME}", manifest_bytes(manifest), "application/json")
        return {
            "day": day.isoformat(),
            "engine": report.engine,
            "pack_url": store.url(pack),
            "manifest_sha256": manifest_sha256(manifest),
            "previous_manifest_sha256": previous,
            "complete": report.complete,
            "open_drift": report.open_drift,
            "drifted_resources": len(report.drifted_resources),
            "launch_findings": len(findings),
            "group_findings": len(groups),
            "unchecked": len(report.unchecked),
            "failed_scopes": [e.scope for e in report.errors],
        }


class DriftNoticeOperator(DriftTaskMixin, BaseOperator):
    """Mail the day's drift report to the tenant's SREs once a day; fail when it is incomplete."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#fdf1e4"

    def __init__(self, *, tenant_id: str, smtp_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.smtp_conn_id = smtp_conn_id

    def run(self, drift: DriftContext, log: EventLog) -> dict[str, Any]:
        """Mail the report task's pack (once per day: a retry or a second run of the day does not mail
        again), then fail when a scope could not be read; return whether it mailed."""
        from airflow.sdk.exceptions import AirflowFailException

        from patchcycle.domain.drift.launch import GroupFinding, LaunchFinding
        from patchcycle.domain.drift.model import TrendPoint
        from patchcycle.domain.drift.stored import report_from_dict
        from patchcycle.domain.drift.summary import drift_email
        from patchcycle.operators.distribute import SMTP_CONNECTION, send_once

        result = drift.ti.xcom_pull(task_ids=REPORT_TASK_ID)
        if not result:
            raise AirflowFailException("the report task wrote no drift report; see its log")
        store = drift.store
        pack = result["pack_url"].removeprefix(f"s3://{store.bucket}/")
        document = store.get_json(f"{pack}/{REPORT_NAME}")
        report = report_from_dict(document["report"])
        findings = [
            LaunchFinding(
                scope=f["scope"],
                address=f["address"],
                template=f["template"],
                versions=tuple(f["versions"]),
                problems=tuple(f["problems"]),
            )
            for f in document.get("launch_findings") or ()
        ]
        groups = [GroupFinding.from_dict(g) for g in document.get("group_findings") or ()]
        trend = [
            TrendPoint(
                day=dt.date.fromisoformat(p["date"]),
                open_drift=p["open_drift"],
                drifted_resources=p["drifted_resources"],
                unchecked=p["unchecked"],
                complete=p["complete"],
            )
            for p in document.get("trend") or ()
        ]
        subject, body = drift_email(
            tenant_name=self.tenant.display_name,
            report=report,
            findings=findings,
            groups=groups,
            trend=trend,
            pack_url=result["pack_url"],
            manifest_sha256=result["manifest_sha256"],
        )
        recipients = [c.email for c in self.tenant.contacts.sre]
        marker = DriftPaths(report.day.isoformat(), drift.run_id).alert
        sent = send_once(
            store, marker, recipients, subject, body, smtp_conn_id=self.smtp_conn_id or SMTP_CONNECTION
        )
        if sent:
            log.record(
                "drift.distributed",
                target=",".join(recipients),
                pack=result["pack_url"],
                open_drift=report.open_drift,
                launch_findings=len(findings),
                group_findings=len(groups),
            )
        if not report.complete:
            raise AirflowFailException(
                f"the drift report of {self.tenant_id} for {report.day} is incomplete: "
                + "; ".join(f"{e.scope}: {e.message}" for e in report.errors)
                + f" (evidence: {result['pack_url']})"
            )
        return {"mailed": sent, "recipients": recipients, "open_drift": report.open_drift}
