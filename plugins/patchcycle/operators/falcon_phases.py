"""The roll-out's phases from Detection to Prevention (issue 15; the seed paper's 3.3): non-prod host groups
first, a monitoring period in which the DAG counts the detections on them and names their processes,
exclusions proposed (or, with an approver, applied) from what was seen, then prod; each promotion behind
the same human approval step the cycle uses, and a phase with too many detections held and paged once.

Three tasks, wired after ``validate`` when the tenant declares ``falcon.rollout.prevention_phases``:

* ``phase_decide`` (:class:`PhaseDecideOperator`) reads where the tenant is, counts the detections on the
  current phase's host groups since it was entered (the Alerts API), summarises them per process, proposes
  exclusions, decides (:func:`patchcycle.domain.falcon_rollout.decide_phase`), pages once when blocked,
  and writes ``records/phases.json``.
* ``phase_approval`` (:class:`PhaseApprovalOperator`): the cycle's approval step (Airflow's HITL
  ``ApprovalOperator``) listing the phase, the monitoring figures and the exclusion proposals; skipped
  unless the decision is to promote. Who answered and when: ``records/phase-approval.json``.
* ``phase_promote`` (:class:`PhasePromoteOperator`) applies the next phase's settings and, in
  ``apply_approved`` mode, creates the approved exclusions; ``records/phase-change.json``.

**A way out of a held phase**: the trigger form's ``reenter_phase`` (and its required ``reason``) asks to
enter the current, held phase again once its exclusions were tuned. ``phase_decide`` decides ``reenter``
(or ``refused``, with why: the phase is not the current one or is not held; the run's evidence then
names it as a problem, so the run fails after its pack is written), the same approval step asks with the
detections, what they named and the exclusion proposals, and on approval ``phase_promote`` creates the
approved exclusions (``apply_approved`` mode) and records a ``phase-change`` of the same phase with
``reentered: true``, the reason and a new ``entered_at``: the detections and the monitoring period count
from there. The phase's settings are not applied again (they are in place). A rejection changes nothing.
A phase the tenant does not declare is refused when the run is triggered (the param's ``enum``), and by
``phase_decide`` before anything else (the tenant file may have changed since).

Choices the issue leaves open, made here:

* **Where the tenant is** is derived from the evidence store, not kept in a mutable file: the latest
  ``phase-change`` record of an earlier roll-out run whose phase was entered no later than this run's
  moment. Records are write-once, so the history cannot be rewritten, and a backfilled day sees the
  phase the tenant was in on that day.
* **Time**: a run's moment is its logical date (else when it was due, as the pack's day is): the monitoring
  period, the detection window ``[entered, moment)`` and a phase's entry are all measured on it, so a
  backfill decides as that day would have. A scheduled or manual run's logical date is when it runs.
* **Paging once**: the incident key is the decision's (tenant, the day the phase was entered, phase). A
  marker ``falcon-rollout/phase-pages/<key>.json`` is written after PagerDuty accepted the trigger; a later
  run that finds it does not page again. A tenant without incident routing is recorded as not paged.
* **Approvals**: each promotion is approved in the run that applies it (as each cycle's prod stage is);
  a rejection stops that run and the next run asks again. Approving a promotion approves the exclusion
  proposals its request lists (each recorded with that approver and time); in ``propose`` mode they
  are only listed.
* **Exclusions** are scoped to the host groups of the phase they were seen on and of the phase being
  promoted (the process that fired in non-prod will run in prod); an exclusion already in Falcon with
  the same content is not created again.
* **Settings**: one Patchcycle-owned prevention policy per phase and platform
  (``patchcycle-<tenant>-<phase>-<platform>``) with the phase's declared settings (those the platform
  knows; the others are recorded as skipped), holding the phase's host groups, enabled, and moved to the
  top of the platform's precedence ("The first ID specified will have the highest precedence",
  setPreventionPoliciesPrecedence) so it overrides whatever policy the groups had. Earlier phases'
  policies stay: each holds only its own groups. The platforms are those of the groups' devices.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator, Param, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from patchcycle.config.falcon_rollout import FalconRollout, PreventionPhase
from patchcycle.domain.falcon_rollout import (
    DEFAULT_POLICY,
    Approval,
    ExclusionProposal,
    PhaseDecision,
    PhaseState,
    count_detections,
    decide_phase,
    exclusions_to_apply,
    propose_exclusions,
    summarise_detections,
)
from patchcycle.operators.base import EventLog, utcnow
from patchcycle.operators.falcon_rollout import ROLLOUT_PREFIX, RolloutContext, RolloutTaskMixin
from patchcycle.reports.store import safe_run_segment

DECIDE_TASK_ID = "phase_decide"
APPROVAL_TASK_ID = "phase_approval"
PROMOTE_TASK_ID = "phase_promote"
PHASES_RECORD = "phases.json"
APPROVAL_RECORD = "phase-approval.json"
CHANGE_RECORD = "phase-change.json"
APPROVAL_RESPONSE_TIMEOUT = dt.timedelta(hours=20)
"""How long a phase approval waits for a person: less than the roll-out run's own timeout (one day), so an
unanswered request still leaves the run's pack, and the next run asks again."""
PAGE_MARKERS = f"{ROLLOUT_PREFIX}phase-pages/"
"""Where the marker of each prevention incident paged lives (one per incident key, write-once)."""
REENTER_PARAM = "reenter_phase"
REASON_PARAM = "reason"
"""The trigger form's params asking to enter a held phase again, and why."""
ASKED = ("promote", "reenter")
"""The decisions the approval step asks a person about."""
ALERT_DEVICES_PER_QUERY = 100
"""Device ids per Alerts API filter (``device.device_id:[...]``): keeps the query string far below URL
length limits, as the hook's other id lists do."""


# --- pure parts -------------------------------------------------------------------------------------


def run_moment(logical_date: dt.datetime | None, run_after: dt.datetime) -> dt.datetime:
    """The moment a roll-out run decides at: its logical date, else when it was due (UTC)."""
    return (logical_date or run_after).astimezone(dt.UTC)


def _when(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def phase_state(changes: Iterable[Mapping[str, Any]], now: dt.datetime) -> PhaseState:
    """Where the tenant was at ``now``: the phase of the latest ``phase-change`` record entered no later
    than ``now`` (none: Detection everywhere), and whether that entry was a re-entry. Approvals are not
    carried over (each run asks its own)."""
    entered = [(_when(c["entered_at"]), c) for c in changes if c.get("phase")]
    entered = [(at, change) for at, change in entered if at <= now]
    if not entered:
        return PhaseState()
    at, latest = max(entered, key=lambda item: item[0])
    return PhaseState(phase=str(latest["phase"]), entered_at=at, reentered=bool(latest.get("reentered")))


def reentry_params(phases: Sequence[str]) -> dict[str, Param]:
    """The roll-out's trigger form for a tenant with prevention phases (validated as JSON Schema when the
    run is triggered: a phase the tenant does not declare is refused then)."""
    return {
        REENTER_PARAM: Param(
            None,
            type=["null", "string"],
            enum=[None, *phases],
            title="Enter a held prevention phase again",
            description=(
                "The current phase, held by too many detections, to enter again once its exclusions were "
                "tuned: behind the same approval as a promotion, the approved exclusions are created and "
                "its detections and monitoring period count anew. Empty: decide as usual."
            ),
        ),
        REASON_PARAM: Param(
            None,
            type=["null", "string"],
            maxLength=500,
            title="Reason for entering it again",
            description="Required with the phase above: what was tuned, recorded in the evidence.",
        ),
    }


@dataclass(frozen=True)
class ReentryRequest:
    """A person's request, from the trigger form, to enter a held phase again."""

    phase: str
    reason: str
    by: str | None

    def to_dict(self) -> dict[str, Any]:
        """The request as evidence records it."""
        return asdict(self)


def reentry_request(
    params: Mapping[str, Any], phases: Sequence[str], by: str | None
) -> ReentryRequest | None:
    """The run's request to enter a phase again (its ``reenter_phase`` and ``reason`` params; ``by``: who
    triggered the run), None when it makes none. ``ValueError`` naming the param when the phase is not one
    the tenant declares or the reason is missing."""
    phase = str(params.get(REENTER_PARAM) or "").strip()
    if not phase:
        return None
    if phase not in phases:
        raise ValueError(
            f"param {REENTER_PARAM}={phase!r} names no prevention phase of the tenant "
            f"(declared: {', '.join(phases) or 'none'})"
        )
    reason = str(params.get(REASON_PARAM) or "").strip()
    if not reason:
        raise ValueError(
            f"param {REASON_PARAM} is required with {REENTER_PARAM}={phase!r}: say what was tuned"
        )
    return ReentryRequest(phase=phase, reason=reason, by=by)


def alerts_filters(device_ids: Sequence[str], since: dt.datetime) -> list[str]:
    """FQL filters (GetQueriesAlertsV2) of the endpoint alerts on these devices created from ``since``,
    ``ALERT_DEVICES_PER_QUERY`` devices each."""
    from patchcycle.hooks.falcon import chunks, fql_list, fql_string

    stamp = fql_string(since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return [
        f"product:'epp'+device.device_id:{fql_list(batch)}+created_timestamp:>={stamp}"
        for batch in chunks(sorted(device_ids), ALERT_DEVICES_PER_QUERY)
    ]


def proposal_from_dict(data: Mapping[str, Any]) -> ExclusionProposal:
    """An :class:`ExclusionProposal` back from its evidence form (:meth:`ExclusionProposal.to_dict`)."""
    values = {}
    for item in fields(ExclusionProposal):
        value = data.get(item.name)
        values[item.name] = tuple(value) if isinstance(value, list) else value
    return ExclusionProposal(**values)


def phase_policy_name(tenant_id: str, phase: str, platform: str) -> str:
    """The Patchcycle-owned prevention policy of one phase and platform."""
    return f"patchcycle-{tenant_id}-{phase}-{platform.lower()}"


def platform_settings(
    declared: Sequence[Mapping[str, Any]], policies: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The declared settings the platform knows (the ids its ``platform_default`` prevention policy
    shows), in the API's ``[{id, value}]`` shape, and the ids it does not know. Without a default policy
    to read, every declared setting is sent (Falcon refuses one it does not know)."""
    default = next((p for p in policies if p.get("name") == DEFAULT_POLICY), None)
    known = {
        str(setting.get("id"))
        for category in (default or {}).get("prevention_settings") or []
        for setting in category.get("settings") or []
    }
    kept = [{"id": s["id"], "value": s["value"]} for s in declared if default is None or s["id"] in known]
    skipped = [str(s["id"]) for s in declared if default is not None and s["id"] not in known]
    return kept, skipped


def precedence_with_first(policies: Sequence[Mapping[str, Any]], policy_id: str) -> list[str] | None:
    """The platform's non-default policy ids (highest precedence first) with ``policy_id`` moved first;
    None when it already is."""
    ids = [str(p["id"]) for p in policies if p.get("name") != DEFAULT_POLICY]
    if ids and ids[0] == policy_id:
        return None
    return [policy_id, *(i for i in ids if i != policy_id)]


def approval_from_answer(answer: Mapping[str, Any]) -> Approval | None:
    """The promotion's approval from the ``phase-approval`` record; None unless it was approved."""
    if answer.get("decision") != "approved" or not answer.get("by") or not answer.get("at"):
        return None
    return Approval(subject=str(answer["phase"]), by=str(answer["by"]), at=_when(answer["at"]))


def approval_body(tenant_name: str, record: Mapping[str, Any]) -> str:
    """The approval request's text: the phase, the monitoring figures, the processes and the proposals."""
    decision, detections = record["decision"], record.get("detections") or {}
    mode = record.get("exclusions_mode") or "propose"
    if decision["action"] == "reenter":
        request = record.get("reentry") or {}
        lines = [
            f"**{tenant_name}**: enter Falcon prevention phase `{decision['phase']}` again; its detections "
            "and monitoring period count anew from then.",
            f"Asked by {request.get('by') or 'an unnamed user'}: {request.get('reason')}",
        ]
    else:
        lines = [
            f"**{tenant_name}**: promote Falcon prevention phase `{decision['next_phase']}` "
            f"(from `{decision['phase'] or 'Detection'}`).",
        ]
    lines.append(f"Why: {decision['reason']}.")
    if detections:
        lines.append(
            f"{detections['count']} detections on {detections['devices']} devices of "
            f"{', '.join(detections['groups'])} from {detections['since']} to {detections['until']}."
        )
    for process in record.get("processes") or []:
        lines.append(f"- {process['count']} x {process['process']} on {', '.join(process['hosts'])}")
    proposals = record.get("proposals") or []
    if proposals:
        verb = "Approving creates" if mode == "apply_approved" else "Proposed (not created: mode propose)"
        lines.append(f"{verb} these exclusions:")
        lines += [f"- `{p['key']}` {p['kind']} {p['process']} ({p['count']} detections)" for p in proposals]
    return "\n".join(lines)


def phases_section(records: Mapping[str, Any]) -> dict[str, Any]:
    """The ``phases`` section of ``rollout.json`` from the run's phase records (``phases``,
    ``approval``, ``change``; each None when its task wrote none): the phase before and after the run,
    the decision, the detections and what they name, the proposals, the answer, the exclusions created
    with their approvers and the phase change with its approver; ``problems`` when the decision is
    missing."""
    decided, answer, change = records.get("phases"), records.get("approval"), records.get("change")
    if decided is None:
        return {"problems": ["the phase_decide task recorded no decision (see its log)"]}
    current, decision = decided["state"]["phase"], decided["decision"]
    problems = []
    if decision["action"] == "refused":
        problems.append(f"the request to enter a prevention phase again was refused: {decision['reason']}")
    return {
        "phase_before": current,
        "entered_at": decided["state"]["entered_at"],
        "phase": change["phase"] if change else current,
        "decision": decision,
        "reentry": decided.get("reentry"),
        "detections": decided.get("detections"),
        "processes": decided.get("processes") or [],
        "proposals": decided.get("proposals") or [],
        "not_proposed": decided.get("not_proposed") or [],
        "paged": decided.get("paged"),
        "approval": answer,
        "exclusions_created": (change or {}).get("exclusions") or [],
        "changes": [change] if change else [],
        "problems": problems,
    }


# --- the tasks -----------------------------------------------------------------------------------


def _phases(run: RolloutContext) -> tuple[FalconRollout, list[PreventionPhase]]:
    rollout = run.rollout
    if not rollout.prevention_phases:
        raise AirflowSkipException(f"tenant {run.tenant.id} declares no prevention phases")
    return rollout, list(rollout.prevention_phases)


def _moment(run: RolloutContext) -> dt.datetime:
    return run_moment(run.airflow.get("logical_date"), run.dag_run.run_after)


def earlier_records(run: RolloutContext, record: str) -> list[dict[str, Any]]:
    """The latest attempt of ``record`` in every earlier roll-out run of the tenant (not this one)."""
    stem = record.removesuffix(".json") + ".try-"
    latest: dict[str, tuple[int, str]] = {}
    for key in run.store.keys(ROLLOUT_PREFIX):
        folder, found, tail = key.partition("/records/")
        if not found or not tail.startswith(stem) or folder == run.paths.run:
            continue
        attempt = int(tail.removeprefix(stem).removesuffix(".json").split(".", 1)[0])
        if folder not in latest or attempt > latest[folder][0]:
            latest[folder] = (attempt, key)
    return [run.store.get_json(key) for _, key in sorted(latest.values(), key=lambda item: item[1])]


def page_marker(incident_key: str) -> str:
    """The key of the marker that the incident ``incident_key`` was paged."""
    return f"{PAGE_MARKERS}{safe_run_segment(incident_key)}.json"


class PhaseDecideOperator(RolloutTaskMixin, BaseOperator):
    """Decide the tenant's next step from Detection to Prevention (``records/phases.json``); page once when
    the current phase's detections are above its threshold. Runs however this run's installs went: the
    detections on the phase's groups do not depend on them."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#fdecea"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.tenant_id = tenant_id

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Count, summarise, propose, decide, page once; return the decision's action and phases."""
        from patchcycle.hooks.falcon import FalconHook

        rollout, phases = _phases(run)
        try:
            request = reentry_request(
                run.params, [p.name for p in phases], getattr(run.dag_run, "triggering_user_name", None)
            )
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        now = _moment(run)
        state = phase_state(earlier_records(run, CHANGE_RECORD), now)
        hook = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        record: dict[str, Any] = {
            "decided_at": utcnow().isoformat(),
            "moment": now.isoformat(),
            "state": {
                "phase": state.phase,
                "entered_at": state.entered_at.isoformat() if state.entered_at else None,
                "reentered": state.reentered,
            },
            "reentry": request.to_dict() if request else None,
        }
        count = 0
        if state.phase is not None and state.entered_at is not None:
            count = self._observe(hook, rollout, phases, state, now, record)
        decision = decide_phase(self.tenant.id, phases, state, count, now, request.phase if request else None)
        record["decision"] = decision.to_dict()
        record["exclusions_mode"] = rollout.phase(state.phase).exclusions if state.phase else "propose"
        if decision.action == "blocked":
            record["paged"] = self._page_once(run, decision, record, log)
        log.record(
            "falcon.prevention_phase_decided",
            target=f"falcon:{self.tenant.id}/{decision.phase or 'detection'}",
            result=decision.action,
            phase=decision.phase,
            next_phase=decision.next_phase,
            detections=count,
            reason=decision.reason,
        )
        run.write_record(run.paths.file(PHASES_RECORD), record)
        return {"action": decision.action, "phase": decision.phase, "next_phase": decision.next_phase}

    def _observe(
        self,
        hook: Any,
        rollout: FalconRollout,
        phases: Sequence[PreventionPhase],
        state: PhaseState,
        now: dt.datetime,
        record: dict[str, Any],
    ) -> int:
        """Count the detections on the current phase's devices since it was entered, name their processes
        and propose exclusions (scoped to this phase's groups and the next one's); fill ``record``."""
        assert state.phase is not None and state.entered_at is not None
        phase = rollout.phase(state.phase)
        names = [phase.name for phase in phases]
        following = phases[names.index(phase.name) + 1] if phase.name != names[-1] else None
        groups = _group_ids(hook, rollout, phase.environments)
        scope = dict(groups)
        if following is not None:
            scope.update(_group_ids(hook, rollout, following.environments))
        devices = sorted({d for group_id in groups.values() for d in hook.host_group_members(group_id)})
        alerts = [a for fql in alerts_filters(devices, state.entered_at) for a in hook.alerts(fql)]
        count = count_detections(alerts, devices, state.entered_at, now)
        window = [a for a in alerts if state.entered_at <= _alert_time(a) < now]
        proposals = propose_exclusions(window, devices, sorted(scope.values())) if window else None
        record.update(
            detections={
                "count": count,
                "threshold": phase.detection_threshold,
                "since": state.entered_at.isoformat(),
                "until": now.isoformat(),
                "groups": sorted(groups),
                "devices": len(devices),
            },
            processes=[s.to_dict() for s in summarise_detections(window, devices)],
            proposals=[p.to_dict() for p in proposals.proposals] if proposals else [],
            not_proposed=list(proposals.not_proposed) if proposals else [],
            exclusion_groups=scope,
        )
        return count

    def _page_once(
        self, run: RolloutContext, decision: PhaseDecision, record: Mapping[str, Any], log: EventLog
    ) -> dict[str, Any]:
        """Trigger the blocked phase's incident unless its marker says it was paged; the outcome."""
        key = str(decision.incident_key)
        marker = run.store.get_json_or_none(page_marker(key))
        if marker is not None:
            return {"incident_key": key, "paged": False, "already_paged_at": marker.get("paged_at")}
        conn_id = self.tenant.pagerduty_connection_id()
        if conn_id is None:
            return {"incident_key": key, "paged": False, "note": "the tenant has no incident routing"}
        from patchcycle.hooks.pagerduty import PagerDutyEventsHook

        detections = record.get("detections") or {}
        top = [f"{p['process']} x{p['count']}" for p in (record.get("processes") or [])[:3]]
        PagerDutyEventsHook(pagerduty_conn_id=conn_id).trigger(
            dedup_key=key,
            summary=(
                f"{self.tenant.display_name}: Falcon prevention phase {decision.phase} held: "
                f"{detections.get('count')} detections (threshold {detections.get('threshold')})"
                + (f"; {', '.join(top)}" if top else "")
            ),
            source=f"patchcycle/{self.tenant.id}",
            severity="error",
            component="falcon-prevention",
            group=self.tenant.id,
            custom_details={
                "tenant_id": self.tenant.id,
                "phase": decision.phase,
                "next_phase": decision.next_phase,
                "reason": decision.reason,
                "detections": detections,
                "dag_run_id": run.run_id,
            },
        )
        paged_at = utcnow().isoformat()
        run.store.put_json(
            page_marker(key), {"incident_key": key, "paged_at": paged_at, "run_id": run.run_id}
        )
        log.record(
            "incident.triggered", target=key, result="error", step=f"falcon-prevention-{decision.phase}"
        )
        return {"incident_key": key, "paged": True, "paged_at": paged_at}


def _alert_time(alert: Mapping[str, Any]) -> dt.datetime:
    return _when(str(alert.get("created_timestamp") or "").replace("Z", "+00:00"))


def _group_ids(hook: Any, rollout: FalconRollout, environments: Iterable[Any]) -> dict[str, str]:
    """Host group name -> id of the environments' groups; a group Falcon does not have fails the task."""
    found: dict[str, str] = {}
    for environment in environments:
        name = rollout.host_groups[environment]
        group = hook.host_group_by_name(name)
        if group is None:
            raise AirflowFailException(
                f"Falcon has no host group {name!r} (environment {environment}); the roll-out's validate "
                "task creates the tenant's groups"
            )
        found[name] = str(group["id"])
    return found


class PhaseApprovalOperator(RolloutTaskMixin, ApprovalOperator):
    """The cycle's approval step (Airflow's HITL ``ApprovalOperator``) before a prevention phase is
    promoted or a held one entered again; skipped unless ``phase_decide`` decided one of them. The answer
    is recorded with who gave it and when; a rejection skips ``phase_promote``. A request no one answers
    within :data:`APPROVAL_RESPONSE_TIMEOUT` fails this task (recorded "no answer"): the run still writes
    its pack before its own one-day timeout, and the next run asks again."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "tenant_id")

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("response_timeout", APPROVAL_RESPONSE_TIMEOUT)
        super().__init__(
            subject=f"Approve the next Falcon prevention phase of {tenant_id}",
            body=f"Approve the next Falcon Detection-to-Prevention phase of {tenant_id}.",
            ignore_downstream_trigger_rules=False,
            **kwargs,
        )
        self.tenant_id = tenant_id

    def _context(self, context: Any) -> RolloutContext:
        return RolloutContext(context, tenant=self.tenant, store=self.store, actor=self.actor(context))

    def execute(self, context: Any) -> Any:
        """Compose the request from ``phases.json`` and wait for the answer (ApprovalOperator)."""
        run = self._context(context)
        record = run.read_record(run.paths.file(PHASES_RECORD))
        decision = record["decision"]
        if decision["action"] not in ASKED:
            raise AirflowSkipException(f"nothing to approve: {decision['action']} ({decision['reason']})")
        self.body = approval_body(self.tenant.display_name, record)
        self.subject = (
            f"Approve entering Falcon prevention phase {decision['phase']} of {self.tenant.id} again"
            if decision["action"] == "reenter"
            else f"Approve Falcon prevention phase {decision['next_phase']} of {self.tenant.id}"
        )
        log = EventLog(run.actor)
        log.record("approval.requested", target=f"falcon-phase:{decision['next_phase']}")
        self._flush(run, log, "")
        return ApprovalOperator.execute(self, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Write the answer to ``phase-approval.json`` and record ``approval.answered``; then
        ApprovalOperator's own step (a rejection skips ``phase_promote``)."""
        run = self._context(context)
        record = run.read_record(run.paths.file(PHASES_RECORD))
        chosen = (event.get("chosen_options") or [None])[0] if "error" not in event else None
        by = event.get("responded_by_user") or {}
        at = event.get("responded_at")
        answer = {
            "action": record["decision"]["action"],
            "phase": record["decision"]["next_phase"],
            "from_phase": record["decision"]["phase"],
            "decision": "approved" if chosen == self.APPROVE else "rejected" if chosen else "no answer",
            "by": by.get("name") or by.get("id"),
            "by_id": by.get("id"),
            "at": at.isoformat() if hasattr(at, "isoformat") else at,
            "recorded_at": utcnow().isoformat(),
            "proposals": [p["key"] for p in record.get("proposals") or []],
            "error": event.get("error"),
        }
        run.write_record(run.paths.file(APPROVAL_RECORD), answer)
        log = EventLog(run.actor)
        log.record(
            "approval.answered",
            target=f"falcon-phase:{answer['phase']}",
            result=answer["decision"],
            by=answer["by"],
            at=answer["at"],
        )
        self._flush(run, log, ".resumed")
        return ApprovalOperator.execute_complete(self, context, event)

    def _flush(self, run: RolloutContext, log: EventLog, phase: str) -> None:
        from patchcycle.operators.base import put_events

        put_events(
            run.store, run.paths, f"{self.task_id}{phase}", run.attempt, log.events, resumed=bool(phase)
        )


class PhasePromoteOperator(RolloutTaskMixin, BaseOperator):
    """Apply the approved next phase: the approved exclusions (``apply_approved`` mode), then the phase's
    prevention settings on its host groups (see the module for how); or, for an approved re-entry, the
    exclusions and a new entry of the same phase; ``records/phase-change.json``."""

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#fdecea"

    def __init__(self, *, tenant_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id

    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Create the approved exclusions, move the groups to the phase's settings (not on a re-entry),
        record the change."""
        from patchcycle.hooks.falcon import FalconHook

        rollout, _ = _phases(run)
        record = run.read_record(run.paths.file(PHASES_RECORD))
        answer = run.read_record(run.paths.file(APPROVAL_RECORD), required=False) or {}
        decision = record["decision"]
        approval = approval_from_answer(answer)
        if decision["action"] not in ASKED or approval is None or approval.subject != decision["next_phase"]:
            raise AirflowSkipException(f"nothing approved to promote ({answer.get('decision', 'no answer')})")
        reentry = decision["action"] == "reenter"
        hook = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        exclusions = self._exclusions(hook, record, approval, log)
        target = rollout.phase(decision["next_phase"])
        groups = _group_ids(hook, rollout, target.environments)
        # A re-entry restarts the count of a phase whose settings are in place: nothing to apply again.
        policies = [] if reentry else self._apply(hook, target, groups, log)
        change: dict[str, Any] = {
            "phase": target.name,
            "previous_phase": decision["phase"],
            "entered_at": _moment(run).isoformat(),
            "applied_at": utcnow().isoformat(),
            "approval": approval.to_dict(),
            "environments": [str(e) for e in target.environments],
            "groups": groups,
            "policies": policies,
            "exclusions": exclusions,
            "run_id": run.run_id,
        }
        if reentry:
            request = record.get("reentry") or {}
            change.update(reentered=True, reason=request.get("reason"), requested_by=request.get("by"))
            change["incident_resolved"] = self._resolve_hold(run, decision.get("incident_key"), log)
        run.write_record(run.paths.file(CHANGE_RECORD), change)
        log.record(
            "falcon.prevention_phase_changed",
            target=f"falcon:{self.tenant.id}/{target.name}",
            previous_phase=decision["phase"],
            phase=target.name,
            approved_by=approval.by,
            approved_at=approval.at.isoformat(),
            policies=[p["id"] for p in policies],
            reentered=reentry,
        )
        return {"phase": target.name, "policies": len(policies), "exclusions": len(exclusions)}

    def _resolve_hold(self, run: RolloutContext, key: str | None, log: EventLog) -> str | None:
        """Resolve the held phase's incident once the phase is entered again (its marker says it was paged;
        PagerDuty drops a resolve when no incident of that key is open); the key
        resolved, None when there was none to resolve."""
        if not key or run.store.get_json_or_none(page_marker(key)) is None:
            return None
        conn_id = self.tenant.pagerduty_connection_id()
        if conn_id is None:
            return None
        from patchcycle.hooks.pagerduty import PagerDutyEventsHook

        PagerDutyEventsHook(pagerduty_conn_id=conn_id).resolve(key)
        log.record("incident.resolved", target=key, step="falcon-prevention-reentered")
        return key

    def _exclusions(
        self, hook: Any, record: Mapping[str, Any], approval: Approval, log: EventLog
    ) -> list[dict[str, Any]]:
        """Create the proposals the approval covered, in ``apply_approved`` mode; one already in Falcon
        with the same content is recorded as existing."""
        proposals = [proposal_from_dict(p) for p in record.get("proposals") or []]
        approvals = [Approval(p.key, approval.by, approval.at) for p in proposals]
        created = []
        for proposal, allowed in exclusions_to_apply(proposals, approvals, record["exclusions_mode"]):
            body = proposal.request_body(allowed)
            existing = _existing_exclusion(hook, proposal)
            if existing is None:
                if proposal.kind == "ml":
                    made = hook.create_ml_exclusion(
                        body["value"], body["groups"], body["comment"], body["excluded_from"]
                    )
                else:
                    made = hook.create_ioa_exclusion(
                        **{
                            k: body[k]
                            for k in ("name", "pattern_id", "pattern_name", "cl_regex", "ifn_regex")
                        },
                        groups=body["groups"],
                        comment=body["comment"],
                        description=body["description"],
                    )
            entry = {
                "key": proposal.key,
                "kind": proposal.kind,
                "process": proposal.process,
                "id": str((existing or made).get("id")),
                "created": existing is None,
                "groups": list(proposal.groups),
                "approved_by": allowed.by,
                "approved_at": allowed.at.isoformat(),
            }
            created.append(entry)
            log.record(
                "falcon.exclusion_created" if existing is None else "falcon.exclusion_exists",
                target=f"falcon:{proposal.kind}-exclusion/{entry['id']}",
                key=proposal.key,
                process=proposal.process,
                approved_by=allowed.by,
            )
        return created

    def _apply(
        self, hook: Any, phase: PreventionPhase, groups: Mapping[str, str], log: EventLog
    ) -> list[dict[str, Any]]:
        """The phase's policy on each platform of its groups' devices: created or updated with its
        settings, holding the groups, enabled, first in precedence."""
        declared = [s.model_dump(mode="json") for s in phase.settings]
        members = sorted({d for group_id in groups.values() for d in hook.host_group_members(group_id)})
        platforms = sorted({str(d.get("platform_name")) for d in hook.device_details(members)} - {"None"})
        applied = []
        for platform in platforms:
            listed = hook.policies("prevention", platform)
            settings, skipped = platform_settings(declared, listed)
            name = phase_policy_name(self.tenant.id, phase.name, platform)
            policy = next((p for p in listed if p.get("name") == name), None)
            created = policy is None
            if policy is None:
                policy = hook.create_prevention_policy(
                    name, platform, settings, f"Patchcycle: {self.tenant.id} prevention phase {phase.name}"
                )
                listed = [*listed, policy]
            else:
                policy = hook.update_prevention_settings(str(policy["id"]), settings)
            policy_id = str(policy["id"])
            held = {str((g or {}).get("id")) for g in policy.get("groups") or []}
            for group_id in sorted(set(groups.values()) - held):
                hook.add_host_group_to_policy("prevention", policy_id, group_id)
            if not policy.get("enabled"):
                hook.enable_policy("prevention", policy_id)
            order = precedence_with_first(listed, policy_id)
            if order is not None:
                hook.set_policies_precedence("prevention", platform, order)
            applied.append(
                {
                    "platform": platform,
                    "id": policy_id,
                    "name": name,
                    "created": created,
                    "settings": settings,
                    "skipped_settings": skipped,
                    "groups": sorted(groups.values()),
                }
            )
            log.record(
                "falcon.prevention_policy_applied",
                target=f"falcon:prevention-policy/{policy_id}",
                phase=phase.name,
                platform=platform,
                created=created,
                groups=sorted(groups),
                skipped_settings=skipped,
            )
        return applied


def _existing_exclusion(hook: Any, proposal: ExclusionProposal) -> dict[str, Any] | None:
    """An exclusion Falcon already has with the proposal's content and host groups, or None."""
    from patchcycle.hooks.falcon import fql_string

    wanted = set(proposal.groups)
    if proposal.kind == "ml":
        found = hook.ml_exclusions(f"value:{fql_string(str(proposal.value))}")
        same = [e for e in found if e.get("value") == proposal.value]
    else:
        found = hook.ioa_exclusions(f"pattern_id:{fql_string(str(proposal.pattern_id))}")
        same = [
            e
            for e in found
            if e.get("ifn_regex") == proposal.ifn_regex and e.get("cl_regex") == proposal.cl_regex
        ]
    for exclusion in same:
        if {str((g or {}).get("id")) for g in exclusion.get("groups") or []} == wanted:
            return exclusion
    return None


def phases_evidence(run: RolloutContext) -> dict[str, Any] | None:
    """The ``phases`` section of this run's ``rollout.json`` (:func:`phases_section` of its phase
    records), or None when the tenant declares no prevention phases."""
    if not run.rollout.prevention_phases:
        return None
    return phases_section(
        {
            "phases": run.read_record(run.paths.file(PHASES_RECORD), required=False),
            "approval": run.read_record(run.paths.file(APPROVAL_RECORD), required=False),
            "change": run.read_record(run.paths.file(CHANGE_RECORD), required=False),
        }
    )
