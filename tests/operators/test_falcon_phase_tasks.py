"""The roll-out's phase tasks (phase_decide -> phase_approval -> phase_promote) executed against fleetsim's
Falcon, with the detections the seed paper saw: the SSM agent's own shell script (an IOA, pattern 10197)
and the agent's binary judged by machine learning, on a non-prod host.

* ``apply_approved``: non-prod monitored, prod promoted on a named person's approval; the approved ML and
  IOA exclusions exist in Falcon afterwards, scoped to the phases' host groups, the approver named in
  their comment; a second attempt of phase_promote finds them and creates none.
* The way out of a held phase: the same detections above a threshold of one hold non-prod (paged once);
  a run triggered with ``reenter_phase`` asks the approval step, and on approval the exclusions are
  created and non-prod is entered again (the count starts anew: the next run stays, and later SSM
  detections are silenced by the exclusions); a request for a phase that is not the current one is
  refused, a rejection changes nothing, an undeclared phase fails phase_decide at once.

The approval step's deferral (Airflow's HITL API) is not run: its request is composed by the operator's own
``execute`` up to the hand-off, and its answer recorded by its own ``execute_complete`` with the event
Airflow's HITL trigger delivers.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DownstreamTasksSkipped

from devtools.local import falcon_connection, pagerduty_connection
from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.dag_factory import build_falcon_rollout_dag
from patchcycle.hooks.falcon import FalconHook
from patchcycle.operators.falcon_phases import (
    APPROVAL_RECORD,
    CHANGE_RECORD,
    PHASES_RECORD,
    phases_evidence,
)
from patchcycle.operators.falcon_rollout import RolloutContext
from patchcycle.reports.store import EvidenceStore

from .stand_ins import MemoryBucket, recorded_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))
from fleetsim_testkit import Fleet, group, running, scenario_dict  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operators-falcon-phases")]

TENANT = "cu_alpha"
KERNEL = "5.10.220-209.869.amzn2.x86_64"
APPROVER = {"id": "jlee", "name": "Jordan Lee"}
GROUPS = {"nonprod": "phx-nonprod", "staging": "phx-staging", "prod": "phx-prod"}
SSM_SCRIPT = {
    "filename": "sh",
    "filepath": "/bin/sh",
    "cmdline": "/bin/sh /var/lib/amazon/ssm/i-0abc123def4567890/document/orchestration/"
    "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10/awsrunShellScript/0.awsrunShellScript/_script.sh",
    "user_name": "root",
}
SSM_WORKER = {
    "filename": "ssm-document-worker",
    "filepath": "/usr/bin/ssm-document-worker",
    "cmdline": "/usr/bin/ssm-document-worker",
}
SSM_AGENT = {
    "filename": "amazon-ssm-agent",
    "filepath": "/usr/bin/amazon-ssm-agent",
    "cmdline": "/usr/bin/amazon-ssm-agent",
    "user_name": "root",
}
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "aws": {
                "account_id": "111111111111",
                "region": "us-east-1",
                "groups": [
                    group("dev", 2, kernel=KERNEL, environment="nonprod"),
                    group("prd", 2, kernel=KERNEL, environment="prod"),
                ],
            },
            # Two hours before fleetsim started: the SSM agent's script twice, its binary once (ML).
            "detections": [
                {
                    "host": "dev-01",
                    "at_seconds": -7200,
                    "count": 2,
                    "every_seconds": 60,
                    "process": SSM_SCRIPT,
                    "parent": SSM_WORKER,
                    "kind": "behavioral",
                },
                {
                    "host": "dev-02",
                    "at_seconds": -7200,
                    "process": SSM_AGENT,
                    "kind": "machine_learning",
                    "pattern_id": 10500,
                },
            ],
        }
    ],
    catalog=[],
    falcon={
        "default_sensor_version": "7.14.16703",
        "kernels": [
            {"release": KERNEL, "vendor": "amazon", "base_package_supported_sensor_versions": ["7.14.16703"]}
        ],
    },
)
ML = {"id": "CloudAntiMalware", "type": "mlslider"}


def phases(threshold: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "nonprod",
            "environments": ["nonprod", "staging"],
            "settings": [{**ML, "value": {"detection": "MODERATE", "prevention": "MODERATE"}}],
            "monitoring_days": 1,
            "detection_threshold": threshold,
            "exclusions": "apply_approved",
        },
        {
            "name": "prod",
            "environments": ["prod"],
            "settings": [{**ML, "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"}}],
        },
    ]


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    # One fleetsim per test: the exclusions a test creates would otherwise be found by the next one.
    with running(SCENARIO) as served:
        yield served


class Phases:
    """The roll-out DAG's three phase tasks of a tenant file with ``threshold``, over one evidence bucket,
    each executed as Airflow would (its own context per run and attempt)."""

    def __init__(self, tmp_path: Path, threshold: int) -> None:
        data = yaml.safe_load((default_tenants_dir() / f"{TENANT}.yaml").read_text())
        data["incidents"] = {}  # pages through PagerDuty (pagerduty_cu_alpha)
        data["falcon"] = {
            **data.get("falcon", {}),
            "rollout": {"host_groups": GROUPS, "prevention_phases": phases(threshold)},
        }
        path = tmp_path / f"{TENANT}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.tenant = load_tenant(path)
        self.bucket = MemoryBucket()
        self.store = EvidenceStore(self.bucket, "evidence")
        self.dag = build_falcon_rollout_dag(self.tenant)
        for task_id in ("phase_decide", "phase_approval", "phase_promote"):
            self.dag.get_task(task_id).__dict__.update(tenant=self.tenant, store=self.store)
        self.hook = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())

    def context(
        self, moment: dt.datetime, *, attempt: int = 1, user: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Airflow's context of one attempt of the run at ``moment``: triggered by ``user`` with ``params``
        (a manual run), else a scheduled one. The approval step is its task (a rejection skips from it)."""
        run_type = "manual" if user else "scheduled"
        return {
            "ti": SimpleNamespace(try_number=attempt, map_index=-1, xcom_push=lambda **kw: None),
            "run_id": f"{run_type}__{moment.isoformat()}",
            "dag_run": SimpleNamespace(run_after=moment, triggering_user_name=user, run_type=run_type),
            "logical_date": moment,
            "params": {"reenter_phase": None, "reason": None, **params},
            "task": self.dag.get_task("phase_approval"),
        }

    def run(self, context: dict[str, Any]) -> RolloutContext:
        return RolloutContext(context, tenant=self.tenant, store=self.store, actor="test")

    def decide(self, context: dict[str, Any]) -> dict[str, Any]:
        return self.dag.get_task("phase_decide").execute(context)

    def request(self, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
        """The approval request the step composes (subject, body), up to its hand-off to Airflow's HITL."""
        monkeypatch.setattr(ApprovalOperator, "execute", lambda op, ctx: (op.subject, op.body))
        return self.dag.get_task("phase_approval").execute(context)

    def answer(self, context: dict[str, Any], option: str) -> Any:
        """Airflow's HITL trigger event for ``option`` chosen by APPROVER, through the step's completion."""
        event = {
            "chosen_options": [option],
            "params_input": {},
            "responded_at": context["logical_date"] + dt.timedelta(minutes=5),
            "responded_by_user": APPROVER,
        }
        return self.dag.get_task("phase_approval").execute_complete(context, event)

    def promote(self, context: dict[str, Any]) -> dict[str, Any]:
        return self.dag.get_task("phase_promote").execute(context)

    def entered(self, phase: str, at: dt.datetime) -> None:
        """An earlier run's phase-change record: ``phase`` entered at ``at``."""
        earlier = self.run(self.context(at))
        earlier.write_record(
            earlier.paths.file(CHANGE_RECORD), {"phase": phase, "entered_at": at.isoformat()}
        )

    def put_in_groups(self, fleet: Fleet) -> dict[str, str]:
        """The tenant's host groups (validate's work) with their environment's devices: name -> id."""
        truth = fleet.truth(TENANT)
        devices = {d["hostname"]: d["device_id"] for d in self.hook.devices()}
        ids = {}
        for environment, name in GROUPS.items():
            ids[name] = str(self.hook.ensure_host_group(name)["id"])
            members = [devices[h] for h, row in truth.items() if row["environment"] == environment]
            if members:
                self.hook.add_hosts_to_group(ids[name], members)
        return ids


def falcon_state(fleet: Fleet) -> dict[str, Any]:
    (customer,) = fleet.get("/fleetsim/falcon")["customers"].values()
    return customer


@pytest.fixture
def connections(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_FALCON_{TENANT.upper()}", falcon_connection(fleet.url, TENANT))
    monkeypatch.setenv(f"AIRFLOW_CONN_PAGERDUTY_{TENANT.upper()}", pagerduty_connection(fleet.url, TENANT))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def comments(state: dict[str, Any], exclusion_id: str) -> list[str]:
    return [h["comment"] for h in state["exclusion_history"] if h["id"] == exclusion_id]


def test_apply_approved_creates_the_approved_exclusions_once_scoped_and_signed(
    fleet: Fleet, connections: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = Phases(tmp_path, threshold=5)
    group_ids = tenant.put_in_groups(fleet)
    moment = now()
    tenant.entered("nonprod", moment - dt.timedelta(days=2))
    context = tenant.context(moment)

    assert tenant.decide(context) == {"action": "promote", "phase": "nonprod", "next_phase": "prod"}
    decided = tenant.run(context).read_record(tenant.run(context).paths.file(PHASES_RECORD))
    assert decided["detections"]["count"] == 3 and decided["exclusions_mode"] == "apply_approved"
    scope = sorted(group_ids.values())
    assert [(p["kind"], p["process"], sorted(p["groups"])) for p in decided["proposals"]] == [
        ("ioa", "/bin/sh", scope),
        ("ml", "/usr/bin/amazon-ssm-agent", scope),
    ]
    subject, body = tenant.request(context, monkeypatch)
    assert subject == f"Approve Falcon prevention phase prod of {TENANT}"
    assert "promote Falcon prevention phase `prod` (from `nonprod`)" in body
    assert "Approving creates these exclusions:" in body and "ml /usr/bin/amazon-ssm-agent" in body
    tenant.answer(context, "Approve")

    promoted = tenant.promote(context)

    assert promoted == {"phase": "prod", "policies": 1, "exclusions": 2}
    run = tenant.run(context)
    change = run.read_record(run.paths.file(CHANGE_RECORD))
    assert change["approval"]["by"] == "Jordan Lee" and "reentered" not in change
    assert [(e["kind"], e["created"], e["approved_by"]) for e in change["exclusions"]] == [
        ("ioa", True, "Jordan Lee"),
        ("ml", True, "Jordan Lee"),
    ]
    state = falcon_state(fleet)
    made = {e["id"]: e for e in state["exclusions"]}
    assert sorted(made) == sorted(e["id"] for e in change["exclusions"])
    for entry in change["exclusions"]:
        exclusion = made[entry["id"]]
        assert exclusion["kind"] == entry["kind"] and sorted(exclusion["groups"]) == scope
        (comment,) = comments(state, entry["id"])
        assert f"patchcycle {entry['key']}:" in comment and "approved by Jordan Lee at " in comment
    (ml,) = [e for e in state["exclusions"] if e["kind"] == "ml"]
    assert ml["value"] == "/usr/bin/amazon-ssm-agent"
    (ioa,) = [e for e in state["exclusions"] if e["kind"] == "ioa"]
    assert ioa["name"] == "patchcycle SuspiciousActivity sh"
    (found,) = tenant.hook.ioa_exclusions("pattern_id:'10197'")  # as the API returns it
    assert found["id"] == ioa["id"] and re.fullmatch(found["ifn_regex"], "/bin/sh")
    assert re.fullmatch(found["cl_regex"], SSM_SCRIPT["cmdline"]) and not re.fullmatch(
        found["cl_regex"], "sh -c id"
    )

    # A second attempt of phase_promote (a retry) finds each exclusion and creates none.
    again = tenant.context(moment, attempt=2)
    assert tenant.promote(again)["exclusions"] == 2
    retried = run.read_record(run.paths.file(CHANGE_RECORD))
    assert [(e["id"], e["created"]) for e in retried["exclusions"]] == [
        (e["id"], False) for e in change["exclusions"]
    ]
    assert sorted(e["id"] for e in falcon_state(fleet)["exclusions"]) == sorted(made)
    actions = [e["action"] for e in recorded_events(tenant.bucket)]
    assert actions.count("falcon.exclusion_created") == 2 and actions.count("falcon.exclusion_exists") == 2


def test_a_held_phase_is_entered_again_on_approval_and_counts_anew(
    fleet: Fleet, connections: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = Phases(tmp_path, threshold=1)
    group_ids = tenant.put_in_groups(fleet)
    start = now()
    entered = start - dt.timedelta(days=2)
    tenant.entered("nonprod", entered)

    # A scheduled run: the SSM agent's detections hold non-prod; paged once.
    held = tenant.context(start - dt.timedelta(minutes=30))
    assert tenant.decide(held)["action"] == "blocked"
    decided = tenant.run(held).read_record(tenant.run(held).paths.file(PHASES_RECORD))
    assert decided["paged"]["paged"] is True
    key = decided["decision"]["incident_key"]

    # Asking for a phase that is not the current one: refused, and the run's evidence says why.
    wrong = tenant.context(
        start - dt.timedelta(minutes=25), user="jlee", reenter_phase="prod", reason="tuned"
    )
    assert tenant.decide(wrong)["action"] == "refused"
    problems = phases_evidence(tenant.run(wrong))["problems"]
    assert problems == [
        "the request to enter a prevention phase again was refused: phase 'prod' is not entered again: "
        "the tenant is in phase 'nonprod'"
    ]
    with pytest.raises(AirflowSkipException):
        tenant.request(wrong, monkeypatch)
    # A phase the tenant does not declare: phase_decide fails at once, naming the param and the phases.
    unknown = tenant.context(
        start - dt.timedelta(minutes=24), user="jlee", reenter_phase="canary", reason="x"
    )
    with pytest.raises(AirflowFailException, match=r"reenter_phase='canary'.*\(declared: nonprod, prod\)"):
        tenant.decide(unknown)
    assert (
        tenant.run(unknown).read_record(tenant.run(unknown).paths.file(PHASES_RECORD), required=False) is None
    )

    # Asked and rejected: nothing changes.
    reason = "the SSM agent's script and binary are excluded on the phases' groups"
    rejected = tenant.context(
        start - dt.timedelta(minutes=22), user="jlee", reenter_phase="nonprod", reason=reason
    )
    assert tenant.decide(rejected)["action"] == "reenter"
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        tenant.answer(rejected, "Reject")
    answer = tenant.run(rejected).read_record(tenant.run(rejected).paths.file(APPROVAL_RECORD))
    assert (answer["action"], answer["phase"], answer["decision"], answer["by"]) == (
        "reenter",
        "nonprod",
        "rejected",
        "Jordan Lee",
    )
    assert [t if isinstance(t, str) else t[0] for t in skipped.value.tasks] == ["phase_promote"]
    with pytest.raises(AirflowSkipException, match="rejected"):
        tenant.promote(rejected)
    assert (
        tenant.run(rejected).read_record(tenant.run(rejected).paths.file(CHANGE_RECORD), required=False)
        is None
    )
    assert falcon_state(fleet)["exclusions"] == []

    # Asked again and approved: the exclusions are created and non-prod entered again.
    moment = start - dt.timedelta(minutes=20)
    asked = tenant.context(moment, user="jlee", reenter_phase="nonprod", reason=reason)
    assert tenant.decide(asked) == {"action": "reenter", "phase": "nonprod", "next_phase": "nonprod"}
    run = tenant.run(asked)
    decided = run.read_record(run.paths.file(PHASES_RECORD))
    assert decided["reentry"] == {"phase": "nonprod", "reason": reason, "by": "jlee"}
    assert decided["decision"]["incident_key"] == key and "paged" not in decided  # re-entering pages no one
    subject, body = tenant.request(asked, monkeypatch)
    assert subject == f"Approve entering Falcon prevention phase nonprod of {TENANT} again"
    assert f"Asked by jlee: {reason}" in body
    assert "3 detections on 2 devices of phx-nonprod, phx-staging" in body
    assert "- 2 x /bin/sh on dev-01" in body and "- 1 x /usr/bin/amazon-ssm-agent on dev-02" in body
    assert "Approving creates these exclusions:" in body
    tenant.answer(asked, "Approve")
    assert tenant.promote(asked) == {"phase": "nonprod", "policies": 0, "exclusions": 2}

    change = run.read_record(run.paths.file(CHANGE_RECORD))
    assert (change["phase"], change["previous_phase"], change["reentered"]) == ("nonprod", "nonprod", True)
    assert change["entered_at"] == moment.isoformat() and change["reason"] == reason
    assert change["approval"]["by"] == "Jordan Lee" and change["requested_by"] == "jlee"
    assert change["policies"] == []  # the phase's settings are in place; nothing applied again
    state = falcon_state(fleet)
    assert sorted(e["kind"] for e in state["exclusions"]) == ["ioa", "ml"]
    assert all(sorted(e["groups"]) == sorted(group_ids.values()) for e in state["exclusions"])
    assert not [p for p in state["policies"] if p["name"].startswith("patchcycle-")]
    section = phases_evidence(run)
    assert section["changes"] == [change] and section["problems"] == []
    (changed,) = [
        e for e in recorded_events(tenant.bucket) if e["action"] == "falcon.prevention_phase_changed"
    ]
    assert changed["details"]["reentered"] is True and changed["details"]["approved_by"] == "Jordan Lee"

    # The SSM agent's script runs again on both non-prod hosts: the exclusions silence it.
    for host in ("dev-01", "dev-02"):
        status, _ = fleet.post_json(
            "/fleetsim/falcon/detections",
            {
                "tenant": TENANT,
                "host": host,
                "process": SSM_SCRIPT,
                "parent": SSM_WORKER,
                "kind": "behavioral",
            },
        )
        assert status == 200
    silenced = [
        s for s in fleet.get("/fleetsim/falcon")["skipped_detections"] if s["reason"].startswith("silenced")
    ]
    assert sorted(s["host"] for s in silenced) == ["dev-01", "dev-02"]

    # The next scheduled run: the count starts from the re-entry (the earlier detections are before it).
    later = tenant.context(now() + dt.timedelta(minutes=1))
    decision = tenant.decide(later)
    after = tenant.run(later).read_record(tenant.run(later).paths.file(PHASES_RECORD))
    assert decision["action"] == "stay", after["decision"]
    assert after["state"] == {"phase": "nonprod", "entered_at": moment.isoformat(), "reentered": True}
    assert after["detections"]["count"] == 0 and after["detections"]["since"] == moment.isoformat()
    # Paged once when held; the hold's incident resolved when the phase was entered again.
    sent = [e for e in fleet.get("/fleetsim/pagerduty")["events"] if e.get("dedup_key") == key]
    assert [e.get("event_action") for e in sent] == ["trigger", "resolve"], sent
    assert change["incident_resolved"] == key


def test_a_reentry_without_its_reason_fails_the_run_before_any_install(tmp_path: Path) -> None:
    phases = Phases(tmp_path, threshold=5)
    find = phases.dag.get_task("find")
    find.__dict__.update(tenant=phases.tenant, store=phases.store)
    context = phases.context(now(), user="jlee", reenter_phase="nonprod")
    # No cloud connection is set: a find that read anything would fail otherwise than here.
    with pytest.raises(AirflowFailException, match="refused before any change: param reason is required"):
        find.execute(context)
    assert phases.bucket.objects == {}
