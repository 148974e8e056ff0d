"""One cycle across AWS, Azure Arc and GCP through Airflow, checked against fleetsim's ground truth."""

from __future__ import annotations

import pytest

from devtools.local import fleetsim_get
from tests.e2e.conftest import changes
from tests.e2e.test_patch_cycle import DAG_ID, NOV, assert_pack_intact

pytestmark = [pytest.mark.e2e, pytest.mark.tenants("demo"), pytest.mark.scenario("alpha_three_clouds.yaml")]

INSTALL_ACTIONS = {"aws": "ssm.install", "azure": "azure.installPatches", "gcp": "gcp.patchJob"}
BACKUP_KINDS = {"aws": "ami", "azure": "attestation", "gcp": "disk_snapshot"}
NEW_UBUNTU_KERNEL = "5.15.0-126-generic"


def installs(truth_host: dict) -> list[dict]:
    return [a for a in truth_host["actions"] if a["action"] == INSTALL_ACTIONS[truth_host["cloud"]]]


# Update Manager publishes no date for Linux updates ("publishedDateTime ... is not available in case of
# Linux updates": https://learn.microsoft.com/azure/update-manager/query-logs), so the plan ages the Arc
# machines' Ubuntu updates from the day an earlier plan of the tenant first saw them. This tenant has
# run Patchcycle before: its October cycle saw the kernel, a plan in early November the openssl update
# (both on or before the cycle's cutoff, 2026-11-15). Without this history the plan would approve
# neither (first seen today), which test_single_cloud_tenants covers.
FIRST_SEEN = {
    "ubuntu_22_04|pkg|linux-image-5.15.0-126-generic|5.15.0-126|": "2026-10-25",
    "ubuntu_22_04|pkg|openssl|3.0.2-0ubuntu1.19|": "2026-11-08",
}


def test_a_three_cloud_cycle_gates_patches_and_verifies_every_host(fleet) -> None:
    fleet.seed_first_seen(FIRST_SEEN)
    result = fleet.run(DAG_ID, NOV)
    evidence = result.evidence
    hosts = {h["name"]: h for h in evidence["hosts"]}

    # Every host of every cloud is in the evidence, with the same fields whatever its cloud.
    assert set(hosts) == set(result.truth)
    assert {h["cloud"] for h in hosts.values()} == {"aws", "azure", "gcp"}
    assert len({frozenset(h) for h in hosts.values()}) == 1
    for name, record in hosts.items():
        truth = result.truth[name]
        assert record["host_id"] == truth["host_id"] and record["cloud"] == truth["cloud"]
        if record["final_state"] == "patched":
            (install,) = installs(truth)
            assert not truth["failed"], name
            assert record["backup_kind"] == BACKUP_KINDS[record["cloud"]] and record["backup_id"], name
            assert record["falcon_device_id"] == truth["falcon"]["device_id"], name
        if record["final_state"] in ("held", "not_run"):
            assert not installs(truth), f"{name} is {record['final_state']} but was patched"

    # The throttled subscription answered 429 first; the SDK waited Retry-After and every machine was read.
    calls = fleetsim_get(fleet.url, "/fleetsim/calls")["calls"]
    assert calls.get("azure.arm.throttled", 0) == 3
    assert sum(1 for h in hosts.values() if h["cloud"] == "azure") == 7

    # Falcon's kernel gate: the old sensor does not support the plan's kernel, so that host got the rest
    # of the plan, kept its kernel, and its sensor stayed healthy; its peers moved to the new kernel.
    old = hosts["t-arc-prd-old-01"]
    assert old["final_state"] == "non_compliant" and old["install_variant"] == "no_kernel"
    assert old["reason"].startswith("kernel update held: Falcon sensor 7.10.16303.0 does not support kernel")
    truth_old = result.truth["t-arc-prd-old-01"]
    assert truth_old["kernel"] == "5.15.0-119-generic" and truth_old["falcon"]["rfm"] is False
    assert "USN-7120-1" in truth_old["missing"] and "USN-7141-1" in truth_old["installed"]
    for name in ("t-arc-prd-web-01", "t-arc-prd-web-02", "t-arc-stg-web-01"):
        assert hosts[name]["final_state"] == "patched", hosts[name]
        assert (
            result.truth[name]["kernel"] == NEW_UBUNTU_KERNEL and result.truth[name]["falcon"]["rfm"] is False
        )

    # A sensor already in reduced-functionality mode holds its host before any backup or patch.
    rfm = hosts["t-gce-dev-db-02"]
    assert rfm["final_state"] == "held" and "reduced-functionality mode" in rfm["reason"]
    assert result.truth["t-gce-dev-db-02"]["actions"] == []

    # GCP prod: a failed instance in us-central1-a used up the zone's disruption budget (5% of 3: one
    # instance), so the zone-by-zone job stopped, as OS Config does; the instances it never reached,
    # and all of us-central1-b, were not patched.
    assert hosts["t-gce-prd-a-01"]["final_state"] == "failed"
    for name in ("t-gce-prd-a-02", "t-gce-prd-a-03", "t-gce-prd-b-01", "t-gce-prd-b-02"):
        assert hosts[name]["final_state"] == "not_run", hosts[name]
        assert "the patch job stopped" in hosts[name]["reason"]
        assert not installs(result.truth[name])
    stages = {s["environment"]: s["status"] for s in evidence["stages"]}
    assert stages == {"nonprod": "succeeded", "staging": "succeeded", "prod": "failed"}
    assert evidence["cycle"]["outcome"] == "failed" and result.returncode != 0
    # The other clouds' prod hosts were patched in parallel, within their own budgets.
    assert hosts["t-prd-web-01"]["final_state"] == "patched"
    assert hosts["t-arc-prd-win-01"]["final_state"] == "patched"

    # Held hosts are alerted once to the tenant's SREs; the evidence pack is intact and valid.
    alerts = [m for m in fleet.mail() if "held" in m["subject"] and "alpha-sre@example.com" in m["rcpt_tos"]]
    assert (
        len(alerts) == 1
        and "t-gce-dev-db-02" in alerts[0]["body"]
        and "t-arc-prd-old-01" in alerts[0]["body"]
    )
    assert {s["cloud"] for s in evidence["scopes"]} == {"aws", "azure", "gcp"}
    assert all(s["status"] == "ok" for s in evidence["scopes"])
    # One incident per failed step of the cycle: prod pages (critical) with its failing hosts and the
    # runbook; the held hosts are one warning; nothing else pages, and no incident is opened twice.
    pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    incidents = {i["dedup_key"]: i for i in pager["incidents"]}
    assert set(incidents) == {
        "patchcycle/cu_alpha/2026-11-22/prod",
        "patchcycle/cu_alpha/2026-11-22/preflight-held",
    }
    prod = incidents["patchcycle/cu_alpha/2026-11-22/prod"]
    assert prod["status"] == "triggered" and prod["severity"] == "critical"
    assert "t-gce-prd-a-01" in prod["custom_details"]["failing_hosts"]
    assert prod["custom_details"]["runbook_url"] == "https://runbooks.example.com/patchcycle/cu_alpha"
    held = incidents["patchcycle/cu_alpha/2026-11-22/preflight-held"]
    assert held["severity"] == "warning" and held["custom_details"]["failing_hosts"] == ["t-gce-dev-db-02"]
    assert_pack_intact(result)


@pytest.fixture
def unhealthy_staging(request, airflow_home, tmp_path):
    """The three-cloud scenario where patching one staging host opens a Dynatrace problem."""
    import yaml

    from devtools.local import airflow_env, running_fleetsim
    from tests.e2e.conftest import HERE, REPO, CycleRunner, write_scenario

    data = yaml.safe_load((HERE / "scenarios" / "alpha_three_clouds.yaml").read_text())
    data["tenants"][0]["faults"] = {"health_problem_after_patch": ["t-stg-app-01"]}
    scenario = write_scenario(tmp_path / "unhealthy.yaml", "alpha_three_clouds.yaml", tenants=data["tenants"])
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=REPO / "include" / "tenants")
        yield CycleRunner(url, env, tmp_path)


def test_a_staging_health_failure_stops_prod_and_pages_once(unhealthy_staging) -> None:
    fleet = unhealthy_staging
    fleet.seed_first_seen(FIRST_SEEN)
    result = fleet.run(DAG_ID, NOV)
    assert result.returncode != 0
    assert result.task_states["nonprod.health"] == "success"
    assert result.task_states["staging.health"] == "failed"
    assert result.task_states["prod.window"] == "upstream_failed"
    stages = {s["environment"]: s for s in result.evidence["stages"]}
    assert stages["staging"]["status"] == "failed"
    assert stages["staging"]["reason"].startswith("health gate: open problem")
    assert stages["staging"]["health"]["healthy"] is False
    assert stages["nonprod"]["health"]["healthy"] is True
    assert stages["prod"]["status"] == "not_run"
    # Staging's hosts were patched (that is what made it unhealthy); no prod host was touched.
    assert result.host("t-stg-app-01")["final_state"] == "patched"
    for name, truth in result.truth.items():
        if "-prd-" in name:
            # The plan's Scan (read-only: it assesses, never installs) is the only thing that ran there.
            assert changes(truth) == [], f"{name} was touched after staging turned unhealthy"
    pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    (incident,) = [
        i for i in pager["incidents"] if i["dedup_key"] == "patchcycle/cu_alpha/2026-11-22/staging"
    ]
    assert incident["status"] == "triggered" and "health gate" in incident["summary"]
    # The page counts for the monitoring control that maps it (the event name the code records).
    controls = {(c["framework"], c["control_id"]): c for c in result.evidence["controls"]}
    cc72 = controls[("soc2", "CC7.2")]
    assert {e["event"]: e["count"] for e in cc72["evidenced"]}.get("incident.triggered", 0) >= 1
    assert_pack_intact(result)


@pytest.fixture
def throttled_subscription(airflow_home, tmp_path):
    """The three-cloud scenario whose Azure subscription answers 429 to every request."""
    import yaml

    from devtools.local import airflow_env, running_fleetsim
    from tests.e2e.conftest import HERE, REPO, CycleRunner, write_scenario

    data = yaml.safe_load((HERE / "scenarios" / "alpha_three_clouds.yaml").read_text())
    tenant = data["tenants"][0]
    tenant["faults"] = {}
    tenant["azure"]["throttle"] = {"requests": 100000, "retry_after_seconds": 0}
    scenario = write_scenario(tmp_path / "throttled.yaml", "alpha_three_clouds.yaml", tenants=data["tenants"])
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=REPO / "include" / "tenants")
        yield CycleRunner(url, env, tmp_path)


def test_a_subscription_throttled_past_its_retries_halts_alone(throttled_subscription) -> None:
    fleet = throttled_subscription
    result = fleet.run(DAG_ID, NOV)
    evidence = result.evidence
    (azure,) = [s for s in evidence["scopes"] if s["cloud"] == "azure"]
    assert azure["status"] == "failed" and "429" in azure["error"]
    assert azure["scope"] == "azure:6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10"
    # The subscription's machines were never reached; the other clouds' hosts were patched.
    for name, truth in result.truth.items():
        if truth["cloud"] == "azure":
            assert truth["actions"] == [], name
    patched = {h["cloud"] for h in evidence["hosts"] if h["final_state"] == "patched"}
    assert patched == {"aws", "gcp"}
    # The plan was frozen from the sources that answered, and says which one did not.
    plan_notes = [n for b in evidence["plan"].get("baselines", []) for n in b.get("notes", [])]
    assert any("azure catalog source could not be read" in n for n in plan_notes), plan_notes
    assert {s["environment"]: s["status"] for s in evidence["stages"]} == {
        "nonprod": "succeeded",
        "staging": "succeeded",
        "prod": "succeeded",
    }
    # A scope that could not be read is not a completed cycle, and it pages.
    assert evidence["cycle"]["outcome"] == "failed" and result.returncode != 0
    pager = fleetsim_get(fleet.url, "/fleetsim/pagerduty")
    (incident,) = [i for i in pager["incidents"] if i["dedup_key"].endswith("/inventory")]
    assert "azure:6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10" in incident["summary"]
    assert_pack_intact(result)
