"""Real cycles through Airflow against fleetsim, checked against what fleetsim says really happened."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from devtools.local import airflow_env, run_cycle, running_fleetsim
from patchcycle.config.loader import load_tenant
from patchcycle.dag_factory import build_patch_cycle_dag
from patchcycle.reports.manifest import manifest_sha256, verify_pack
from tests.conftest import REPO
from tests.e2e.conftest import HERE, CycleResult, CycleRunner, changes, write_scenario

pytestmark = pytest.mark.e2e

DAG_ID = "patch_cycle__cu_alpha"
NOV = "2026-11-22T02:00:00+00:00"
OCT = "2026-10-25T02:00:00+00:00"
# cu_alpha's amazon_linux_2 baseline (Security/Bugfix, Critical/High, 7 days) as of each cycle date:
PLAN_NOV = {"ALAS2-2026-2610", "ALAS2-2026-2644", "ALAS2-2026-2671"}
PLAN_OCT = {"ALAS2-2026-2610", "ALAS2-2026-2644"}
NEVER_APPROVED = {"ALAS2-2026-2688", "ALAS2-2026-2702"}  # Medium; and released after the cutoff


def installs(truth_host: dict) -> list[dict]:
    return [a for a in truth_host["actions"] if a["action"] == "ssm.install"]


def images(truth_host: dict) -> list[dict]:
    return [a for a in truth_host["actions"] if a["action"] == "ec2.create_image"]


def assert_evidence_tells_the_truth(result: CycleResult) -> None:
    """Every host in the evidence, in the state fleetsim says it is in, with the ids fleetsim issued."""
    evidence = result.evidence
    assert {h["name"] for h in evidence["hosts"]} == set(result.truth)
    for record in evidence["hosts"]:
        truth = result.truth[record["name"]]
        assert record["host_id"] == truth["host_id"]
        state = record["final_state"]
        made = images(truth)
        if record["backup_id"]:
            assert [a["image_id"] for a in made] == [record["backup_id"]], record["name"]
        if state == "patched":
            (install,) = installs(truth)
            assert install["result"] == "Success" and install["command_id"] == record["command_id"]
            assert not truth["failed"]
            assert made and made[0]["ready_at"] <= install["at"], "patched before its backup was complete"
        elif state == "failed":
            assert truth["failed"], record["name"]
            assert installs(truth)[0]["result"] == "Failed"
        elif state in ("held", "not_run", "out_of_scope"):
            # SSM lists an invocation it never sent (the error budget ran out first) as Cancelled.
            sent = [i for i in installs(truth) if i["result"] != "Cancelled"]
            assert not sent, f"{record['name']} is {state} but was patched"
        assert record["reason"] or state == "patched"


def assert_pack_intact(result: CycleResult) -> None:
    import jsonschema

    from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSION, evidence_schema_path

    # A pack is written to the current version and validates against that version's published schema.
    assert result.evidence["schema_version"] == EVIDENCE_SCHEMA_VERSION
    schema = json.loads(evidence_schema_path(result.evidence["schema_version"]).read_text())
    jsonschema.validate(result.evidence, schema, format_checker=jsonschema.FormatChecker())
    manifest = json.loads(result.files["manifest.json"])
    files = {f["name"]: result.files[f["name"]] for f in manifest["files"]}
    assert verify_pack(manifest, files) == []
    assert [f["name"] for f in manifest["files"]] == ["report.pdf", "evidence.json", "hosts.csv"]
    pdf = PdfReader(io.BytesIO(result.files["report.pdf"]))
    text = "".join(page.extract_text() for page in pdf.pages)
    assert len(pdf.pages) >= 2
    assert "Alpha Federal Credit Union" in text
    assert result.evidence["cycle"]["outcome"].upper() in text
    csv_lines = result.files["hosts.csv"].decode().strip().splitlines()
    assert len(csv_lines) == len(result.evidence["hosts"]) + 1


def test_cycle_patches_in_order_and_its_evidence_matches_ground_truth(fleet) -> None:
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    evidence = result.evidence
    assert evidence["cycle"]["outcome"] == "partial"
    assert [s["status"] for s in evidence["stages"]] == ["succeeded"] * 3
    assert_evidence_tells_the_truth(result)
    assert_pack_intact(result)

    assert result.host("t-dev-app-02")["final_state"] == "failed"
    assert result.host("t-prd-web-03")["final_state"] == "held"
    assert result.host("t-prd-web-03")["reason"] == "ssm agent ConnectionLost"
    assert result.host("t-prd-web-04")["final_state"] == "held"
    assert (
        "backup" in result.host("t-prd-web-04")["reason"]
        and "failed" in result.host("t-prd-web-04")["reason"]
    )
    patched = [h for h in evidence["hosts"] if h["final_state"] == "patched"]
    assert len(patched) == 8
    for record in patched:
        truth = result.truth[record["name"]]
        if truth["os_family"] == "amazon_linux_2":
            # Exactly the frozen plan: approved patches in, unapproved ones still missing.
            assert PLAN_NOV <= set(truth["installed"])
            assert NEVER_APPROVED <= set(truth["missing"])
            assert truth["kernel"] == "5.10.230-223.885.amzn2.x86_64"
        else:
            assert "KB5046615" in truth["installed"]
    # Stages ran in order: every nonprod install ended before any prod backup began.
    last_nonprod = max(a["at"] for n, t in result.truth.items() if n.startswith("t-dev") for a in installs(t))
    first_prod = min(a["at"] for n, t in result.truth.items() if n.startswith("t-prd") for a in images(t))
    assert last_nonprod < first_prod
    summary = evidence["summary"]
    assert (summary["patched"], summary["failed"], summary["held"]) == (8, 1, 2)
    # Before: the plan's Scan measured every host against the tenant's own baseline (cutoff 2026-11-15),
    # under which each one missed an approved patch (the Windows host KB5046615, released 2026-11-10);
    # after: the eight patched hosts.
    assert summary["compliance_before"] == 0.0
    assert summary["compliance_after"] == round(8 / 11, 4)
    actions = {e["action"] for e in evidence["events"]}
    assert {
        "plan.frozen",
        "inventory.collected",
        "preflight.held",
        "backup.created",
        "backup.failed",
        "patch.sent",
        "patch.finished",
        "stage.verified",
        "soak.started",
        "soak.override_requested",
    } <= actions
    assert set(result.task_states.values()) == {"success"}
    dag = build_patch_cycle_dag(load_tenant(HERE / "tenants" / "aws_only" / "cu_alpha.yaml"))
    assert set(result.task_states) == set(dag.task_ids)
    # A green run all the same: its outcome task names every host left, and its asset event says partial.
    assert "t-dev-app-02 (nonprod) failed:" in result.log
    assert "t-prd-web-03 (prod) held: ssm agent ConnectionLost" in result.log
    extra = fleet.asset_event_extra("patchcycle_evidence__cu_alpha")
    assert (extra["outcome"], extra["failed"], extra["held"]) == ("partial", 1, 2)
    assert extra["pack_url"].startswith("s3://") and extra["cycle_date"] == "2026-11-22"


@pytest.mark.scenario("alpha_nonprod_breaks.yaml")
def test_a_failed_stage_stops_every_later_stage(fleet) -> None:
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode != 0
    evidence = result.evidence
    assert evidence["cycle"]["outcome"] == "failed"
    assert [(s["environment"], s["status"]) for s in evidence["stages"]] == [
        ("nonprod", "failed"),
        ("staging", "not_run"),
        ("prod", "not_run"),
    ]
    assert "max errors" in evidence["stages"][0]["reason"]
    for name, truth in result.truth.items():
        if not name.startswith("t-dev"):
            assert changes(truth) == [], f"{name} was touched after nonprod failed"
    assert {h["final_state"] for h in evidence["hosts"] if h["environment"] != "nonprod"} <= {
        "not_run",
        "held",
    }
    assert_evidence_tells_the_truth(result)
    assert_pack_intact(result)
    assert result.task_states["staging.backup"] == "upstream_failed"
    assert result.task_states["evidence"] == "success"
    assert result.task_states["outcome"] == "failed"


def test_dry_run_plans_and_changes_nothing(fleet) -> None:
    result = fleet.run(DAG_ID, NOV, {"dry_run": True})
    assert result.returncode == 0, result.log[-3000:]
    assert result.evidence["cycle"]["outcome"] == "planned"
    # The plan's Scan assessed the hosts; nothing was installed, imaged or rebooted.
    assert all(changes(t) == [] for t in result.truth.values())
    assert any(k.endswith("/plan.json") for k in result.keys)
    plan = result.evidence["plan"]
    assert {p["id"] for p in plan["approved"]["amazon_linux_2"]} == PLAN_NOV
    assert result.task_states["inventory.aws"] == "skipped"
    assert "Cycle plan for cu_alpha" in result.log


def test_a_typo_in_the_conf_refuses_the_run_and_still_leaves_evidence(fleet) -> None:
    """``dryrun`` (for ``dry_run``) would otherwise start a real cycle. The run is refused before any
    cloud is read, every downstream step still runs on the refusal, the pack says why, and the run fails
    so Airflow shows it was not done."""
    import datetime as dt

    before = dt.datetime.now(dt.UTC).isoformat()
    result = fleet.run(DAG_ID, NOV, {"dryrun": True, "soak_hours_override": 1, "soak_override_reason": ""})
    assert result.returncode != 0
    cycle = result.evidence["cycle"]
    assert cycle["outcome"] == "refused" and cycle["cycle_date"] == "2026-11-22"
    # When the run began (not its logical date), and its type as Airflow names it.
    assert cycle["started_at"] >= before and cycle["run_type"] == "manual"
    reasons = "\n".join(cycle["refused_reasons"])
    assert "'dryrun'" in reasons and "did you mean 'dry_run'?" in reasons
    assert "params.soak_override_reason: a soak override needs a recorded reason" in reasons
    # Nothing was read or changed: not even the plan's Scan ran.
    assert all(t["actions"] == [] for t in result.truth.values())
    assert result.evidence["hosts"] == [] and result.evidence["stages"] == []
    states = result.task_states
    assert (states["plan"], states["inventory.aws"], states["evidence"], states["outcome"]) == (
        "success",
        "skipped",
        "success",
        "failed",
    )
    refused = [e for e in result.evidence["events"] if e["action"] == "cycle.refused"]
    assert len(refused) == 1 and refused[0]["result"] == "refused"
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(result.files["report.pdf"])).pages)
    assert "REFUSED" in text and "did you mean 'dry_run'?" in " ".join(text.split())
    assert_pack_intact(result)


def test_a_plan_that_cannot_finish_still_leaves_a_pack_that_says_so(
    airflow_home, aws_only_tenants, tmp_path
) -> None:
    """The tenant's AWS connection points nowhere: the plan task fails (after its retries) before any
    plan exists. Every task after the stages still runs: the pack holds an empty plan and says the run
    stopped before planning, the run fails, and the tenant (with incident routing) is paged for the plan;
    a later run of the same cycle that plans resolves that incident."""
    from devtools.local import aws_connection, fleetsim_get
    from tests.e2e.conftest import fleet_with

    def with_incidents(alpha: dict) -> None:
        alpha["incidents"] = {}

    key = "patchcycle/cu_alpha/2026-11-22/plan"
    with fleet_with(
        airflow_home, tmp_path, tenants_from=aws_only_tenants, edit_alpha=with_incidents
    ) as fleet:
        env = {**fleet.env, "AIRFLOW_CONN_AWS_CU_ALPHA": aws_connection("http://127.0.0.1:9", "us-east-1")}
        (tmp_path / "broken").mkdir()
        result = CycleRunner(fleet.url, env, tmp_path / "broken").run(DAG_ID, NOV)
        paged = {i["dedup_key"]: i for i in fleetsim_get(fleet.url, "/fleetsim/pagerduty")["incidents"]}
        assert paged[key]["status"] == "triggered"
        assert result.returncode != 0
        states = result.task_states
        assert (states["plan"], states["evidence"], states["distribute"], states["outcome"]) == (
            "failed",
            "success",
            "success",
            "failed",
        )
        cycle = result.evidence["cycle"]
        assert cycle["outcome"] == "failed" and cycle["cycle_date"] == "2026-11-22"
        assert "the plan task did not finish" in cycle["halted_reason"]
        assert not any(result.evidence["plan"]["approved"].values())  # nothing was planned
        assert all(changes(t) == [] for t in result.truth.values())
        assert_pack_intact(result)

        # The connection is fixed and the cycle run again: it plans, and the plan incident is resolved.
        again = fleet.run(DAG_ID, "2026-11-22T05:00:00+00:00", conf={"cycle_date": NOV[:10]})
        pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    assert again.evidence["cycle"]["halted_reason"] is None
    (incident,) = [i for i in pager["incidents"] if i["dedup_key"] == key]
    assert incident["status"] == "resolved"


def test_backfilled_cycles_plan_as_of_their_own_dates_and_chain_their_evidence(fleet) -> None:
    october = fleet.run(DAG_ID, OCT)
    assert october.returncode == 0, october.log[-3000:]
    patched = [
        h
        for h in october.evidence["hosts"]
        if h["final_state"] == "patched" and h["os_family"] == "amazon_linux_2"
    ]
    assert patched
    for record in patched:
        truth = october.truth[record["name"]]
        assert PLAN_OCT <= set(truth["installed"])
        assert "ALAS2-2026-2671" in truth["missing"], "October's plan must not contain November's kernel"
        assert truth["kernel"] == "5.10.220-209.869.amzn2.x86_64"
    november = fleet.run(DAG_ID, NOV)
    assert november.returncode == 0, november.log[-3000:]
    assert november.evidence["cycle"]["plan_hash"] != october.evidence["cycle"]["plan_hash"]
    plans = [k for k in november.keys if k.endswith("/plan.json")]
    assert {k.split("/")[1] for k in plans} == {"2026-10-25", "2026-11-22"}
    # November's pack chains to October's manifest.
    nov_manifest = json.loads(november.files["manifest.json"])
    assert nov_manifest["previous_manifest_sha256"] == manifest_sha256(
        json.loads(october.files["manifest.json"])
    )


@pytest.mark.scenario("alpha_agents_down.yaml")
def test_preflight_halts_the_scope_when_too_many_hosts_are_held(fleet) -> None:
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode != 0
    evidence = result.evidence
    assert evidence["cycle"]["outcome"] == "failed"
    assert all(changes(t) == [] for t in result.truth.values()), "nothing may be touched after a halt"
    held = [h for h in evidence["hosts"] if h["final_state"] == "held"]
    assert len(held) == 4 and all(h["reason"] == "ssm agent ConnectionLost" for h in held)
    assert result.task_states["preflight"] == "failed"
    assert_pack_intact(result)


def test_task_structure_is_the_same_for_a_large_fleet(fleet_large) -> None:
    result = fleet_large.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    assert result.evidence["summary"]["hosts_total"] == 300
    dag = build_patch_cycle_dag(load_tenant(HERE / "tenants" / "aws_only" / "cu_alpha.yaml"))
    assert set(result.task_states) == set(dag.task_ids)


@pytest.fixture
def fleet_large(airflow_home: Path, aws_only_tenants: Path, tmp_path: Path):
    from devtools.local import airflow_env, running_fleetsim
    from tests.e2e.conftest import CycleRunner

    data = yaml.safe_load((HERE / "scenarios" / "alpha_small.yaml").read_text())
    data["tenants"][0]["faults"] = {}
    for group, count in zip(data["tenants"][0]["aws"]["groups"], (100, 80, 100, 20), strict=True):
        group["count"] = count
    scenario = write_scenario(tmp_path / "large.yaml", "alpha_small.yaml", tenants=data["tenants"])
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        yield CycleRunner(
            url, airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=aws_only_tenants), tmp_path
        )


def test_evidence_is_retained_distributed_mapped_and_verifiable(fleet, tmp_path) -> None:
    """The audit side of a cycle: access review, controls, risk clocks, Object Lock, the emailed link,
    and the one-command verification an auditor runs (which must catch an overwritten file)."""
    import subprocess
    import sys
    import urllib.request

    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    evidence = result.evidence

    # SOC 2 CC6.1: who could run the cycle in the tenant account, and how.
    listed = [(g["user_name"], g["permission_set"], g["via"]) for g in evidence["access"]["grants"]]
    grants = set(listed)
    assert len(listed) == len(grants), "each grant is listed once"
    assert ("jlee", "PatchcycleExecution", "group sre-patching") in grants
    assert ("rgarcia", "BreakGlassAdmin", "direct assignment") in grants
    controls = {(c["framework"], c["control_id"]): c["status"] for c in evidence["controls"]}
    assert controls[("soc2", "CC6.1")] == "evidenced"
    assert controls[("pci_dss", "10.5.1")] == "evidenced"
    # cu_alpha answers to SOX: the strictest retention (7 years) locks every object.
    assert evidence["retention"] == {"days": 2555, "mode": "COMPLIANCE"}
    failed_host = result.host("t-dev-app-02")["host_id"]
    open_items = [r for r in evidence["risk"]["open"] if r["host_id"] == failed_host]
    assert {r["patch_id"] for r in open_items} == PLAN_NOV
    assert all(r["due"] and r["priority"] in ("P1", "P2", "P3", "P4") for r in open_items)

    s3 = fleet.s3()
    pack_key = next(k for k in result.keys if k.endswith("/pack/report.pdf"))
    head = s3.head_object(Bucket="patchcycle-evidence-cu-alpha", Key=pack_key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert (head["ObjectLockRetainUntilDate"].date() - head["LastModified"].date()).days >= 2554

    # The compliance contact got one mail with working, pre-signed links and the manifest's digest; the
    # SREs got the pre-flight alert about the held hosts, once.
    mails = fleet.mail()
    (mail,) = [m for m in mails if m["rcpt_tos"] == ["alpha-compliance@example.com"]]
    (alert,) = [m for m in mails if m["rcpt_tos"] == ["alpha-sre@example.com"]]
    assert "t-prd-web-03" in alert["body"] and "held" in alert["subject"]
    assert mail["rcpt_tos"] == ["alpha-compliance@example.com"]
    assert "2026-11-22" in mail["subject"] and "PARTIAL" in mail["body"]
    manifest_digest = manifest_sha256(json.loads(result.files["manifest.json"]))
    assert manifest_digest in mail["body"]
    link = mail["body"].split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    with urllib.request.urlopen(link, timeout=30) as response:  # noqa: S310 - fleetsim on loopback
        assert response.read() == result.files["report.pdf"]
    # The links travel only in the mail: no XCom (readable by anyone who can view the DAG) or log has one.
    signature = link.split("?", 1)[1]
    assert "X-Amz-Signature" in signature or "Signature=" in signature
    assert "Signature=" not in fleet.xcom_text(DAG_ID)
    assert "Signature=" not in result.log
    # The pack was sealed before it was sent: the distribution addendum, chained to it by the manifest's
    # digest, closes the SOX control that needs the distribution.
    (addendum_key,) = [k for k in result.keys if "/distribution/" in k]
    addendum = json.loads(
        s3.get_object(Bucket="patchcycle-evidence-cu-alpha", Key=addendum_key)["Body"].read()
    )
    assert addendum["pack_manifest_sha256"] == manifest_digest
    assert addendum["distributed"]["action"] == "evidence.distributed"
    closed = {(c["framework"], c["control_id"]): c for c in addendum["controls"]}
    assert closed[("sox", "ITGC-CM-04")]["status"] == "evidenced"
    assert closed[("sox", "ITGC-CM-04")]["status_in_pack"] != "evidenced"

    def verify(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "patchcycle",
                "verify-evidence",
                "cu_alpha",
                "2026-11-22",
                "--endpoint-url",
                fleet.url,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=fleet.env,
        )

    intact = verify("--expect-manifest", manifest_digest)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact" in intact.stdout
    # The addendum is checked too: it names the manifest its pack has now.
    assert f"ok   s3://patchcycle-evidence-cu-alpha/{addendum_key}" in intact.stdout
    assert "1 distribution addendum" in intact.stdout
    # Object Lock forbids deleting a version; an attacker with write access can only add a version.
    csv_key = pack_key.replace("report.pdf", "hosts.csv")
    version = s3.head_object(Bucket="patchcycle-evidence-cu-alpha", Key=csv_key)["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket="patchcycle-evidence-cu-alpha", Key=csv_key, VersionId=version)
    s3.put_object(Bucket="patchcycle-evidence-cu-alpha", Key=csv_key, Body=b"host_id\ni-nothing-to-see\n")
    tampered = verify()
    assert tampered.returncode == 1
    assert "hosts.csv was overwritten" in tampered.stdout and "changed file hosts.csv" in tampered.stdout


def test_a_risk_acceptance_defers_its_host_and_is_reported(fleet, tmp_path) -> None:
    register = tmp_path / "exceptions"
    register.mkdir()
    (register / "cu_alpha.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": "cu_alpha",
                "exceptions": [
                    {
                        "id": "EXC-2026-101",
                        "hosts": ["t-prd-web-01"],
                        "justification": "payment switch vendor certifies only the current glibc build",
                        "compensating_control": "host isolated in a segmented VLAN, EDR in prevention mode",
                        "requested_by": "Payments app owner",
                        "approver": "Dana Whitfield",
                        "approver_role": "CISO",
                        "approved_on": "2026-11-01",
                        "expires_on": "2027-02-28",
                        "risk_rating": "High",
                    },
                    {
                        "id": "EXC-2026-042",
                        "hosts": ["t-prd-web-02"],
                        "justification": "migration window for the legacy batch job was not yet agreed",
                        "compensating_control": "restricted network path, daily integrity checks",
                        "requested_by": "Batch team",
                        "approver": "Dana Whitfield",
                        "approver_role": "CISO",
                        "approved_on": "2026-06-01",
                        "expires_on": "2026-10-31",
                        "risk_rating": "Medium",
                    },
                ],
            }
        )
    )
    fleet.env["PATCHCYCLE_EXCEPTIONS_DIR"] = str(register)
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    deferred = result.host("t-prd-web-01")
    assert deferred["final_state"] == "excepted"
    assert "EXC-2026-101" in deferred["reason"] and "Dana Whitfield" in deferred["reason"]
    assert installs(result.truth["t-prd-web-01"]) == [], "an excepted host must not be patched"
    assert images(result.truth["t-prd-web-01"]) == []
    # The expired acceptance no longer counts: its host was patched, and the report flags it.
    assert result.host("t-prd-web-02")["final_state"] == "patched"
    exceptions = result.evidence["exceptions"]
    assert [a["id"] for a in exceptions["active"]] == ["EXC-2026-101"]
    assert [a["id"] for a in exceptions["expired"]] == ["EXC-2026-042"]
    assert result.evidence["summary"]["excepted"] == 1
    assert_evidence_tells_the_truth(result)


def test_the_portfolio_rolls_up_every_tenant_after_a_round(fleet) -> None:
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    rc = run_cycle(fleet.env, "patchcycle_portfolio", NOV, {}, fleet.workdir / "portfolio.log")
    assert rc == 0, (fleet.workdir / "portfolio.log").read_text()[-3000:]
    s3 = fleet.s3()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="patchcycle-portfolio").get("Contents", [])]
    assert {k.rsplit("/", 1)[1] for k in keys} == {"portfolio.json", "portfolio.csv", "portfolio.pdf"}
    view = json.loads(
        s3.get_object(Bucket="patchcycle-portfolio", Key=next(k for k in keys if k.endswith(".json")))[
            "Body"
        ].read()
    )
    rows = {r["tenant"]: r for r in view["tenants"]}
    alpha = result.evidence["summary"]
    assert rows["cu_alpha"]["compliance_after"] == alpha["compliance_after"]
    assert (rows["cu_alpha"]["patched"], rows["cu_alpha"]["held"]) == (alpha["patched"], alpha["held"])
    # The other tenants have no bucket in this scenario: listed, with the reason, never dropped.
    assert rows["cu_birch"]["outcome"].startswith("evidence unreadable")
    assert view["totals"]["tenants"] == 3 and view["totals"]["tenants_reported"] == 1
    # The AWS-only cu_alpha declares no Falcon: no sensor figure, and the row says why.
    assert rows["cu_alpha"]["sensor_hosts"] is None
    assert rows["cu_alpha"]["sensor_note"] == "no Falcon in the tenant file"
    pdf = s3.get_object(Bucket="patchcycle-portfolio", Key=next(k for k in keys if k.endswith(".pdf")))
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf["Body"].read())).pages)
    assert "Falcon sensor coverage and mode" in text


@pytest.mark.scenario("alpha_every_state.yaml")
def test_every_final_state_matches_ground_truth(fleet, tmp_path) -> None:
    register = tmp_path / "exceptions"
    register.mkdir()
    (register / "cu_alpha.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": "cu_alpha",
                "exceptions": [
                    {
                        "id": "EXC-2026-102",
                        "hosts": ["t-prd-win-01"],
                        "justification": "core banking terminal server frozen until the vendor upgrade",
                        "compensating_control": "jump-host only access, application allow-listing",
                        "requested_by": "Core banking owner",
                        "approver": "Dana Whitfield",
                        "approver_role": "CISO",
                        "approved_on": "2026-11-01",
                        "expires_on": "2027-01-31",
                        "risk_rating": "High",
                    }
                ],
            }
        )
    )
    fleet.env["PATCHCYCLE_EXCEPTIONS_DIR"] = str(register)
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    states = {h["name"]: h["final_state"] for h in result.evidence["hosts"]}
    assert states["t-dev-app-03"] == "non_compliant"
    assert states["t-prd-web-03"] == states["t-prd-web-04"] == "held"
    assert states["t-lab-box-01"] == "out_of_scope"
    assert states["t-prd-win-01"] == "excepted"
    assert {"patched", "non_compliant", "held", "out_of_scope", "excepted"} <= set(states.values())
    assert_evidence_tells_the_truth(result)
    assert_pack_intact(result)
    # What the evidence calls non-compliant, fleetsim confirms: the install ran, a planned patch is missing.
    truth = result.truth["t-dev-app-03"]
    assert installs(truth)[0]["result"] == "Success" and PLAN_NOV & set(truth["missing"])
    assert result.host("t-dev-app-03")["missing_after"] == 1
    assert "environment tag 'sandbox'" in result.host("t-lab-box-01")["reason"]


def test_refreshed_feeds_are_what_the_next_cycle_ranks_with(fleet) -> None:
    """KEV and EPSS fetched over HTTP (a loopback server stands in for CISA and FIRST), checked, stored,
    and then used by the cycle's risk section instead of the committed snapshots."""
    import functools
    import http.server
    import threading

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(REPO / "include" / "feeds")
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        fleet.env["AIRFLOW_CONN_PATCHCYCLE_FEEDS"] = json.dumps(
            {
                "conn_type": "http",
                "extra": {"kev_url": f"{base}/kev-subset.json", "epss_url": f"{base}/epss-sample.csv"},
            }
        )
        rc = run_cycle(fleet.env, "patchcycle_feeds", NOV, {}, fleet.workdir / "feeds.log")
        assert rc == 0, (fleet.workdir / "feeds.log").read_text()[-3000:]
    finally:
        server.shutdown()
    keys = [o["Key"] for o in fleet.s3().list_objects_v2(Bucket="patchcycle-portfolio").get("Contents", [])]
    assert {k.rsplit("/", 1)[1] for k in keys} == {
        "known_exploited_vulnerabilities.json",
        "epss_scores.csv.gz",
    }
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode == 0, result.log[-3000:]
    feeds = result.evidence["risk"]["feeds"]
    assert feeds["source"].startswith("s3://patchcycle-portfolio/feeds/")
    assert feeds["kev_catalog_version"] == "2025.08.25"


def test_an_install_whose_answer_was_lost_is_found_and_not_sent_again(
    airflow_home, aws_only_tenants, tmp_path
):
    """SendCommand takes no idempotency token. fleetsim loses the answer to the first Install (it takes
    effect; the caller sees HTTP 500): the patch task fails, Airflow retries it, and the retry finds the
    command by its target in ListCommands instead of sending a second one. Every host installs once."""
    data = yaml.safe_load((HERE / "scenarios" / "alpha_small.yaml").read_text())
    data["tenants"][0]["aws"]["lost_install_answers"] = 1
    scenario = write_scenario(tmp_path / "lossy.yaml", "alpha_small.yaml", tenants=data["tenants"])
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        fleet = CycleRunner(
            url, airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=aws_only_tenants), tmp_path
        )
        result = fleet.run(DAG_ID, NOV)
    events = [e for e in result.evidence["events"] if e["action"].startswith("patch.")]
    reconciled = [e for e in events if e["action"] == "patch.reconciled"]
    assert len(reconciled) == 1, [e["action"] for e in events]
    installs = {
        name: sum(1 for a in h["actions"] if a["action"] == "ssm.install") for name, h in result.truth.items()
    }
    assert installs and max(installs.values()) == 1, installs
    sent = [e for e in events if e["action"] == "patch.sent"]
    stages = {e["target"] for e in sent} | {e["target"] for e in reconciled}
    assert len(sent) + len(reconciled) >= len(stages)


def test_a_rerun_replaces_a_failed_backup_instead_of_reusing_it(fleet) -> None:
    """t-prd-web-04's AMI fails, so the first run holds it. Once the host is repaired, a new run of the
    same cycle takes a new AMI (the failed one is no backup) and patches the host behind it."""
    import json
    import urllib.request

    first = fleet.run(DAG_ID, NOV)
    assert first.host("t-prd-web-04")["final_state"] == "held"
    request = urllib.request.Request(
        f"{fleet.url}/fleetsim/faults/clear",
        data=json.dumps({"hosts": ["t-prd-web-04"]}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fleetsim on loopback
        assert json.load(response)["cleared"] == ["t-prd-web-04"]
    second = fleet.run(DAG_ID, "2026-11-22T05:00:00+00:00", conf={"cycle_date": "2026-11-22"})
    host_id = second.host("t-prd-web-04")["host_id"]
    created = [
        e for e in second.evidence["events"] if e["action"] == "backup.created" and e["target"] == host_id
    ]
    assert len(created) == 1 and created[0]["details"]["replaces_failed"], created
    assert second.host("t-prd-web-04")["final_state"] == "patched"
    images = [a for a in second.truth["t-prd-web-04"]["actions"] if a["action"] == "ec2.create_image"]
    assert [a["result"] for a in images] == ["failed", "available"], images
