"""The cycle PDF report: content, robustness on odd data, determinism and scale."""

from __future__ import annotations

import io
import logging
import re

import pypdf
import pytest
from reportlab.graphics.charts.legends import Legend

from devtools.evidence_documents import (
    ACCESS_USER_NAME,
    ACTIVE_EXCEPTION_APPROVER,
    ACTIVE_EXCEPTION_ID,
    CATALOG_NOTE,
    CATALOG_SOURCES,
    DRIFT_HOST_NAME,
    DRIFT_PACKAGE,
    EXPIRED_EXCEPTION_ID,
    FAILED_HOST_NAME,
    HELD_HOST_REASON,
    KEV_CATALOG_VERSION,
    MISSING_CONTROL_ID,
    NOT_ASSESSED_HOST_NAME,
    NOT_ASSESSED_REASON,
    RETENTION_DAYS,
    TREND_DATES,
    empty_evidence,
    make_evidence,
)
from patchcycle.domain import outcomes as o
from patchcycle.reports.evidence_document import EvidenceSchemaError
from patchcycle.reports.pdf import (
    ATTENTION_STATES,
    MAX_ACCESS_ROWS,
    MAX_ATTENTION_ROWS,
    MAX_RISK_ROWS,
    RELEASED_BASIS_LABELS,
    STATE_COLOURS,
    STATE_HEX,
    attention_hosts,
    host_states_chart,
    overdue_chart,
    render_cycle_report,
    trend_chart,
)

AUDIT_SECTIONS = (
    "Control coverage",
    "Risk and SLA",
    "Compliance trend",
    "Risk acceptances (exceptions)",
    "Access review (SOC 2 CC6.1)",
)
NEW_KEYS = ("controls", "controls_summary", "retention", "risk", "trend", "exceptions", "access")
NO_DATA_SENTENCES = (
    "No control coverage data",
    "No evidence retention data",
    "No risk and SLA data",
    "No compliance trend data",
    "No risk acceptance data",
    "No access review data",
)


def _pdf_text(data: bytes) -> tuple[int, str]:
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), text


def _squash(text: str) -> str:
    """Collapse whitespace so text wrapped across table lines still matches."""
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def report() -> tuple[int, str]:
    return _pdf_text(render_cycle_report(make_evidence()))


def test_report_has_pages_and_title_block(report: tuple[int, str]) -> None:
    pages, text = report
    assert pages >= 2
    assert "Patch cycle report" in text
    assert "Alpha Federal Credit Union" in text
    assert "cu_alpha" in text
    assert "2026-11-22" in text
    assert "manual__2026-11-22T02:00:00+00:00" in text
    assert "FAILED" in text
    assert "SOC 2" in text and "PCI DSS" in text


def test_report_lists_hosts_needing_attention(report: tuple[int, str]) -> None:
    _, text = report
    assert FAILED_HOST_NAME in text
    assert HELD_HOST_REASON in _squash(text)
    assert "Hosts needing attention" in text


def test_report_summary_stages_and_patches(report: tuple[int, str]) -> None:
    _, text = report
    evidence = make_evidence()
    before = f"{evidence['summary']['compliance_before'] * 100:.1f}%"
    after = f"{evidence['summary']['compliance_after'] * 100:.1f}%"
    assert f"{before} -> {after}" in text
    assert "Stages" in text and "succeeded" in text
    first_patch = evidence["plan"]["approved"]["amazon_linux_2"][0]["id"]
    assert first_patch in text


def test_footer_on_every_page() -> None:
    evidence = make_evidence()
    data = render_cycle_report(evidence)
    reader = pypdf.PdfReader(io.BytesIO(data))
    total = len(reader.pages)
    prefix = evidence["cycle"]["plan_hash"][:12]
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert f"page {number} of {total}" in text
        assert "cu_alpha" in text and "2026-11-22" in text and prefix in text


def test_outcome_word_follows_the_cycle() -> None:
    _, text = _pdf_text(render_cycle_report(make_evidence(outcome="completed")))
    assert "COMPLETED" in text
    assert "FAILED" not in text


def test_a_refused_run_says_so_and_why() -> None:
    evidence = empty_evidence()
    evidence["cycle"].update(
        outcome="refused",
        refused_reasons=["conf key 'dryrun' is not a parameter; did you mean 'dry_run'?", "a <b>second</b>"],
    )
    _, text = _pdf_text(render_cycle_report(evidence))
    squashed = _squash(text)
    assert "REFUSED" in text and "refused before it read or changed any host" in squashed
    assert "did you mean 'dry_run'?" in squashed and "a <b>second</b>" in squashed


def test_the_title_block_shows_who_triggered_and_the_emergency_change() -> None:
    evidence = make_evidence()
    evidence["cycle"].update(
        triggered_by="jdoe",
        window_override_reason="CVE-2026-1234 exploited in the wild (CAB-991)",
        soak_hours_override=0,
        soak_override_reason="emergency: KEV listing",
    )
    squashed = _squash(_pdf_text(render_cycle_report(evidence))[1])
    assert "Triggered by jdoe" in squashed
    assert "prod patched outside its change window: CVE-2026-1234 exploited in the wild (CAB-991)" in squashed
    assert "Soak override 0 h: emergency: KEV listing" in squashed
    plain = _squash(_pdf_text(render_cycle_report(make_evidence()))[1])
    assert "Emergency change no (prod waits for its change window)" in plain
    assert "Soak override no (each stage's configured soak)" in plain


def test_the_appendix_lists_every_host_once() -> None:
    evidence = make_evidence(260)  # more than one appendix table
    _, text = _pdf_text(render_cycle_report(evidence))
    appendix = text.split("Appendix: every host (260)", 1)[1]
    for host in evidence["hosts"]:
        assert appendix.count(host["name"]) == 1, host["name"]


def test_a_stale_threat_feed_is_flagged_in_the_risk_section() -> None:
    evidence = make_evidence(20, sections=True)
    evidence["risk"]["feeds"]["warnings"] = [
        "CISA KEV catalog of 2025-08-25 is 454 days older than the cycle"
    ]
    text = _squash(_pdf_text(render_cycle_report(evidence))[1])
    assert "Stale feed: CISA KEV catalog of 2025-08-25 is 454 days older than the cycle" in text
    fresh = _squash(_pdf_text(render_cycle_report(make_evidence(20, sections=True)))[1])
    assert "Stale feed" not in fresh


def test_identical_input_gives_identical_bytes() -> None:
    assert render_cycle_report(make_evidence()) == render_cycle_report(make_evidence())


def test_generated_at_is_printed() -> None:
    _, text = _pdf_text(render_cycle_report(make_evidence(), generated_at="2026-11-22T05:30:00+00:00"))
    assert "2026-11-22T05:30:00+00:00" in text


def test_empty_hosts_renders() -> None:
    evidence = make_evidence()
    evidence["hosts"] = []
    pages, text = _pdf_text(render_cycle_report(evidence))
    assert pages >= 1
    assert "Hosts needing attention (0)" in text


def test_all_zero_evidence_renders() -> None:
    pages, text = _pdf_text(render_cycle_report(empty_evidence()))
    assert pages >= 1
    assert "PLANNED" in text
    assert "No data" in text
    assert "0.0% -> 0.0%" in text


def test_zero_values_with_categories_render() -> None:
    evidence = make_evidence(6)
    for row in [*evidence["summary"]["by_environment"].values(), *evidence["summary"]["by_cloud"].values()]:
        for key in row:
            row[key] = 0
    evidence["hosts"] = []
    evidence["summary"]["compliance_before"] = None
    _, text = _pdf_text(render_cycle_report(evidence))
    assert "n/a -> " in text


def test_markup_characters_are_escaped() -> None:
    evidence = make_evidence()
    evidence["tenant"]["display_name"] = "Alpha & Omega <Credit> Union"
    evidence["hosts"][0]["name"] = "web&<01>"
    evidence["hosts"][0]["reason"] = 'exit <1> & "rollback" needed\x00'
    evidence["stages"][0]["reason"] = "<b>not bold</b> & friends"
    _, text = _pdf_text(render_cycle_report(evidence))
    assert "Alpha & Omega <Credit> Union" in text
    assert "web&<01>" in text
    assert 'exit <1> & "rollback" needed' in _squash(text)
    assert "<b>not bold</b> & friends" in _squash(text)


def test_attention_rows_are_capped_with_a_pointer_to_the_csv() -> None:
    evidence = make_evidence(0)
    evidence["hosts"] = [
        {**make_evidence(2)["hosts"][0], "name": f"host-{i:04d}", "host_id": f"i-{i:04d}"}
        for i in range(MAX_ATTENTION_ROWS + 25)
    ]
    _, text = _pdf_text(render_cycle_report(evidence))
    attention = text.split("Appendix: every host", 1)[0]  # the appendix lists them all
    assert "host-0000" in attention
    assert "host-0499" in attention
    assert "host-0500" not in attention
    assert "25 more hosts needing attention" in _squash(text)
    assert "CSV" in text


def test_attention_hosts_ordering() -> None:
    hosts = [
        {"name": "b", "host_id": "2", "environment": "prod", "final_state": "held"},
        {"name": "a", "host_id": "1", "environment": "prod", "final_state": "patched"},
        {"name": "c", "host_id": "3", "environment": "prod", "final_state": "failed"},
        {"name": "d", "host_id": "4", "environment": "nonprod", "final_state": "failed"},
        {"name": "e", "host_id": "5", "environment": "staging", "final_state": "not_run"},
        {"name": "f", "host_id": "6", "environment": "staging", "final_state": "non_compliant"},
    ]
    assert [h["name"] for h in attention_hosts(hosts)] == ["d", "c", "f", "e", "b"]


def test_ten_thousand_hosts_render() -> None:
    evidence = make_evidence(10_000, patches_per_family=120)
    data = render_cycle_report(evidence)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2
    last = reader.pages[-1].extract_text()
    assert f"page {len(reader.pages)} of {len(reader.pages)}" in last


# --------------------------------------------------------------------------- audit sections


@pytest.fixture(scope="module")
def audit_evidence() -> dict:
    return make_evidence(sections=True)


@pytest.fixture(scope="module")
def audit_report(audit_evidence: dict) -> tuple[int, str]:
    return _pdf_text(render_cycle_report(audit_evidence))


def test_audit_sections_follow_the_stages_in_order(audit_report: tuple[int, str]) -> None:
    _, text = audit_report
    positions = [text.index(title) for title in ("Stages", *AUDIT_SECTIONS, "Hosts needing attention")]
    assert positions == sorted(positions)
    for sentence in NO_DATA_SENTENCES:
        assert sentence not in text


def test_control_coverage_summary_table_and_retention(audit_report: tuple[int, str]) -> None:
    text = _squash(audit_report[1])
    assert "SOC 2: 4 of 4 evidenced" in text
    assert "PCI DSS: 2 of 3 evidenced, 1 missing" in text
    assert "References (not a framework the tenant selected): 1 of 2 evidenced, 1 partial" in text
    # Row by row: control id, title, source URL, then the status word.
    assert re.search(rf"{re.escape(MISSING_CONTROL_ID)} Audit logs of actions \S+ missing", text)
    assert re.search(r"CC6\.1 Logical access security .{0,80}? evidenced access\.reviewed \(1\)", text)
    assert "NIST-SP-800-40r4-REPORTING" in text and "evidence.distributed" in text
    assert f"Evidence is locked in compliance mode for {RETENTION_DAYS:,} days" in text


def test_risk_and_sla_section(audit_evidence: dict, audit_report: tuple[int, str]) -> None:
    text = _squash(audit_report[1])
    risk = audit_evidence["risk"]
    kev = next(row for row in risk["open"] if row["kev"])
    assert f"{kev['patch_id']} [KEV]" in text
    plain = next(row for row in risk["open"] if not row["kev"])
    assert f"{plain['patch_id']} [KEV]" not in text
    assert f"{risk['summary']['open']:,} open patches" in text
    assert f"{risk['summary']['by_status']['overdue']:,} overdue" in text
    assert f"P1: {risk['summary']['open_by_priority']['P1']:,}" in text
    assert f"CISA KEV catalog {KEV_CATALOG_VERSION}" in text
    assert "Overdue open patches, by severity" in text
    # The fixture keeps 6 of the open rows: the report says evidence.json holds only those.
    assert f"lists 6 of the {risk['summary']['open']:,} open patches row by row" in text


def test_compliance_trend_section(audit_evidence: dict, audit_report: tuple[int, str]) -> None:
    text = _squash(audit_report[1])
    assert "Compliance over the last cycles" in text
    assert all(date in text for date in TREND_DATES)
    after = audit_evidence["summary"]["compliance_after"] * 100
    assert f"{TREND_DATES[-1]} (this cycle) failed" in text
    assert f"{after:.1f}%" in text


def test_risk_acceptances_section(audit_report: tuple[int, str]) -> None:
    text = _squash(audit_report[1])
    assert f"{ACTIVE_EXCEPTION_ID} CHG0041877" in text
    assert f"{ACTIVE_EXCEPTION_APPROVER} CISO" in text
    assert EXPIRED_EXCEPTION_ID in text
    assert "expired — no longer counts" in text
    assert f"{EXPIRED_EXCEPTION_ID} (expired)" in text  # the held host it named has lapsed
    assert "Expiring soon (1)" in text
    # No host of the 40-host fixture is excepted, so the active acceptance is unused.
    assert "Hosts excepted this cycle (0)" in text
    assert f"(candidates to revoke or correct): {ACTIVE_EXCEPTION_ID}." in text


def test_hosts_excepted_this_cycle_are_listed() -> None:
    evidence = make_evidence(300, sections=True)
    applied = evidence["exceptions"]["applied"]
    assert applied
    _, text = _pdf_text(render_cycle_report(evidence))
    text = _squash(text)
    assert f"Hosts excepted this cycle ({len(applied)})" in text
    assert f"{applied[0]['name']} " in text
    assert "non compliant" in text


def test_access_review_section(audit_evidence: dict, audit_report: tuple[int, str]) -> None:
    text = _squash(audit_report[1])
    access = audit_evidence["access"]
    assert f"Reviewed at {access['reviewed_at']}" in text
    assert f"{access['principals']} people" in text
    assert ACCESS_USER_NAME in text
    assert "Maria Garcia" in text
    assert "arn:aws:iam::aws:policy/AdministratorAc" in text


def test_document_without_the_new_keys_says_there_is_no_data() -> None:
    _, text = _pdf_text(render_cycle_report(make_evidence()))
    for title in AUDIT_SECTIONS:
        assert title in text
    for sentence in NO_DATA_SENTENCES:
        assert sentence in text


def test_new_keys_set_to_none_say_there_is_no_data() -> None:
    evidence = make_evidence(sections=True)
    evidence.update(dict.fromkeys(NEW_KEYS))
    _, text = _pdf_text(render_cycle_report(evidence))
    for sentence in NO_DATA_SENTENCES:
        assert sentence in text


def test_audit_sections_with_empty_and_zero_data() -> None:
    evidence = make_evidence(0, outcome="planned", patches_per_family=0, sections=True)
    evidence["controls"] = []
    evidence["controls_summary"] = {}
    evidence["trend"] = evidence["trend"][-1:]
    evidence["exceptions"] = {"active": [], "expired": []}
    evidence["access"] = {"grants": []}
    pages, text = _pdf_text(render_cycle_report(evidence))
    text = _squash(text)
    assert pages >= 1
    assert "maps no controls" in text
    assert "No open patch is overdue" in text  # all-zero overdue chart
    assert "0 open patches" in text
    assert "Fewer than two cycles" in text
    assert "No host was excepted this cycle." in text
    assert "No access grants are recorded." in text


def test_odd_values_in_audit_sections_do_not_crash() -> None:
    evidence = make_evidence(sections=True)
    evidence["controls"] = ["not a control", {"framework": None, "status": None}, *evidence["controls"]]
    evidence["controls_summary"] = {"soc2": None}
    evidence["retention"] = {"days": "many"}
    evidence["risk"]["open"][0].update(score=None, epss_percentile="x", reasons=None, kev="yes")
    evidence["risk"]["summary"]["overdue_by_severity"] = {"Critical": None, "Unrated": 2}
    evidence["trend"] = [{"cycle_date": "2026-10-25", "compliance_after": None}, {"compliance_after": "0.5"}]
    evidence["exceptions"]["active"][0]["days_left"] = None
    evidence["access"]["grants"].append({"account": None})
    evidence["access"]["principals"] = None
    pages, text = _pdf_text(render_cycle_report(evidence))
    assert pages >= 1
    assert "No evidence retention data" in text
    assert "Fewer than two cycles" in text


def test_markup_in_audit_sections_is_escaped() -> None:
    evidence = make_evidence(sections=True)
    evidence["controls"][0]["title"] = "Access <b>&</b> control"
    evidence["exceptions"]["active"][0]["approver"] = "O'Brien & <Sons>"
    evidence["access"]["grants"][0]["display_name"] = 'Ann "<admin>" Lee\x07'
    evidence["risk"]["open"][0]["reasons"] = ["<i>not italic</i> & bold"]
    _, text = _pdf_text(render_cycle_report(evidence))
    text = _squash(text)
    assert "Access <b>&</b> control" in text
    assert "O'Brien & <Sons>" in text
    assert 'Ann "<admin>" Lee' in text
    assert "<i>not italic</i> & bold" in text


def test_huge_cells_are_clipped_not_fatal() -> None:
    evidence = make_evidence(sections=True)
    hosts = [f"alpha-prod-web-{i:05d}" for i in range(5000)]
    evidence["exceptions"]["active"][0]["scope"] = "all patches on " + ", ".join(hosts)
    evidence["access"]["grants"][0]["managed_policies"] = ["arn:aws:iam::aws:policy/" + "X" * 20_000]
    evidence["risk"]["open"][0]["patch_id"] = "P" * 5000
    _, text = _pdf_text(render_cycle_report(evidence))
    assert "characters in evidence.json" in _squash(text)


def test_identical_input_with_audit_sections_gives_identical_bytes() -> None:
    assert render_cycle_report(make_evidence(sections=True)) == render_cycle_report(
        make_evidence(sections=True)
    )


def test_charts_handle_empty_and_zero_data() -> None:
    assert overdue_chart({}).contents
    assert overdue_chart({"summary": {"overdue_by_severity": {"Critical": 0, "High": 0}}}).contents
    assert trend_chart([]).contents
    assert trend_chart([{"compliance_after": 0}, {"compliance_after": 0, "compliance_before": None}]).contents


def test_long_audit_tables_are_capped_with_a_pointer_to_the_json() -> None:
    evidence = make_evidence(
        400, sections=True, open_risk_rows=MAX_RISK_ROWS + 40, access_grants=MAX_ACCESS_ROWS + 7
    )
    assert len(evidence["risk"]["open"]) == MAX_RISK_ROWS + 40
    _, text = _pdf_text(render_cycle_report(evidence))
    text = _squash(text)
    assert "40 more open patches are not shown here" in text
    assert "7 more grants are not shown here" in text
    assert "listed in evidence.json" in text
    last_shown = evidence["access"]["grants"][MAX_ACCESS_ROWS - 1]["user_name"]
    first_hidden = evidence["access"]["grants"][MAX_ACCESS_ROWS]["user_name"]
    assert last_shown in text and first_hidden not in text


def test_ten_thousand_hosts_with_audit_sections_render() -> None:
    evidence = make_evidence(
        10_000, patches_per_family=120, sections=True, open_risk_rows=5000, access_grants=400
    )
    assert len(evidence["risk"]["open"]) == 5000
    data = render_cycle_report(evidence)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    total = len(reader.pages)
    assert total >= 10
    assert f"page {total} of {total}" in reader.pages[-1].extract_text()
    assert any("Control coverage" in page.extract_text() for page in reader.pages[:4])


def test_the_plans_rds_os_updates_are_listed_with_their_ids() -> None:
    from patchcycle.domain.plan import rds_update_id

    update = "New Operating System update is available"
    evidence = make_evidence()
    evidence["plan"]["rds_os_updates"] = [update]
    _, text = _pdf_text(render_cycle_report(evidence))
    assert "rds (1 OS update(s))" in text
    assert rds_update_id(update) in _squash(text) and update in _squash(text)
    # An RDS-only plan approves no packages but still lists its OS updates.
    evidence["plan"]["approved"] = {}
    _, text = _pdf_text(render_cycle_report(evidence))
    assert "The plan approved no patches" in text and rds_update_id(update) in _squash(text)
    _, without = _pdf_text(render_cycle_report(make_evidence()))
    assert "rds (" not in without


# --- evidence schema 1.1: not_assessed, installed versions, the plan's catalog facts ------------------------


@pytest.fixture(scope="module")
def v11_evidence() -> dict:
    return make_evidence(40, sections=True, schema_version="1.1", not_assessed=2)


@pytest.fixture(scope="module")
def v11_report(v11_evidence: dict) -> str:
    return _squash(_pdf_text(render_cycle_report(v11_evidence))[1])


def test_not_assessed_hosts_are_in_the_summary_with_what_that_means(v11_evidence, v11_report) -> None:
    assert f"Not assessed {v11_evidence['summary']['not_assessed']}" in v11_report
    assert "Not assessed: 2 hosts" in v11_report
    assert "counts as not compliant, before and after" in v11_report


def test_not_assessed_hosts_need_attention_with_their_reason(v11_evidence, v11_report) -> None:
    assert NOT_ASSESSED_HOST_NAME in v11_report
    assert NOT_ASSESSED_REASON in v11_report
    assert "2 not assessed" in v11_report  # the attention breakdown
    assert [
        h["name"] for h in attention_hosts(v11_evidence["hosts"]) if h["final_state"] == "not_assessed"
    ] == [
        NOT_ASSESSED_HOST_NAME,
        "alpha-prod-gce-rhel-02",
    ]
    # Ranked after non-compliant and before not run.
    assert ATTENTION_STATES.index("non_compliant") < ATTENTION_STATES.index("not_assessed")
    assert ATTENTION_STATES.index("not_assessed") < ATTENTION_STATES.index("not_run")


def test_not_assessed_has_its_own_colour_in_the_legend_and_tables(v11_evidence) -> None:
    palette = dict(STATE_COLOURS)
    others = [c.hexval() for s, c in STATE_COLOURS if s != "not_assessed"]
    assert palette["not_assessed"].hexval() not in others
    assert set(palette) == set(o.FINAL_STATES)  # every final state has a colour and a legend entry
    chart = host_states_chart(v11_evidence)
    legend = next(item for item in chart.contents if isinstance(item, Legend))
    assert (palette["not_assessed"], "not assessed") in legend.colorNamePairs
    assert STATE_HEX["not_assessed"] == "#" + palette["not_assessed"].hexval()[2:]


def test_the_stage_table_counts_not_assessed_hosts(v11_report) -> None:
    assert "Not assessed" in v11_report and "Targeted Succeeded Failed Not assessed Backups" in v11_report


def test_the_plan_shows_catalog_sources_notes_versions_and_released_basis(v11_evidence, v11_report) -> None:
    for family, sources in CATALOG_SOURCES.items():
        assert f"{family} (" in v11_report
        assert f"Catalog sources: {', '.join(sources)}." in v11_report
    assert f"Not judged: {CATALOG_NOTE}" in v11_report
    assert "Package (version)" in v11_report
    rhel = v11_evidence["plan"]["approved"]["rhel_9"]
    assert "1:1.0.0-1.el9 (x86_64)" in v11_report and rhel[0]["epoch"] == "1"  # epoch:version (arch)
    assert "KB5041000" in v11_report  # Windows: the KB
    for label in RELEASED_BASIS_LABELS.values():
        assert label in v11_report


def test_a_family_with_no_catalog_source_says_so() -> None:
    evidence = make_evidence(10, schema_version="1.1")
    evidence["plan"]["baselines"].append({"os_family": "rhel_7", "sources": [], "notes": []})
    text = _squash(_pdf_text(render_cycle_report(evidence))[1])
    assert "rhel_7 (0)" in text
    assert "Catalog sources: none. No source lists this family's updates; nothing was approved." in text


def test_installed_versions_that_differ_from_the_plan_are_listed(v11_report) -> None:
    package, planned, installed = DRIFT_PACKAGE
    assert "Installed versions that differ from the plan (1)" in v11_report
    assert DRIFT_HOST_NAME in v11_report
    assert f"{package} {planned} -> {installed}" in v11_report
    assert f"libssl3 {planned} -> {planned}" not in v11_report  # at the plan's version: not listed


def test_a_1_0_document_renders_as_before() -> None:
    text = _squash(_pdf_text(render_cycle_report(make_evidence(40)))[1])
    assert "Catalog sources" not in text and "Installed versions that differ" not in text
    assert "Not assessed 0" in text
    assert "Not assessed: " not in text


def test_identical_1_1_input_gives_identical_bytes(v11_evidence) -> None:
    assert render_cycle_report(v11_evidence) == render_cycle_report(v11_evidence)


# --- the document is read as the typed view of patchcycle.reports.evidence_document -----------------------


def test_a_document_departing_from_its_schema_still_renders_and_is_logged(caplog) -> None:
    evidence = make_evidence(10)
    evidence["summary"]["compliance_before"] = None
    with caplog.at_level(logging.WARNING, logger="patchcycle.reports.evidence_document"):
        _, text = _pdf_text(render_cycle_report(evidence))
    assert "n/a -> " in text
    assert "evidence-1.0.schema.json" in caplog.text and "at $.summary.compliance_before" in caplog.text


def test_a_document_without_what_the_report_needs_raises_the_schema_error() -> None:
    evidence = make_evidence(10)
    del evidence["cycle"]
    with pytest.raises(
        EvidenceSchemaError, match=r"evidence-1\.0\.schema\.json at \$: 'cycle' is a required"
    ):
        render_cycle_report(evidence)


def test_the_kernel_held_hand_off_and_its_follow_up_are_in_the_report() -> None:
    evidence = make_evidence(5, sections=True)
    evidence["sensor_upgrades"] = {
        "rollout_dag_id": "falcon_rollout__cu_alpha",
        "handed_off": [
            {
                "host_id": "i-0old",
                "name": "web-old-01",
                "sensor_version": "7.10.16303",
                "kernel": "5.10.230-223.885.amzn2.x86_64",
                "upgrade_to": "7.14.16703",
                "reason": "sensor 7.10.16303 does not support kernel 5.10.230-223.885.amzn2.x86_64",
                "due_before": "2026-12-27T02:00:00+00:00",
            }
        ],
        "previous_cycle_date": "2026-10-25",
        "followed_up": [
            {
                "host_id": "i-0arc",
                "name": "arc-old-01",
                "kernel": "5.15.0-126-generic",
                "upgrade_to": "7.14.16703",
                "status": "open",
                "reason": "its sensor is still 7.10.16303, older than 7.14.16703",
                "sensor_version": "7.10.16303",
                "final_state": "non_compliant",
            }
        ],
    }
    _, text = _pdf_text(render_cycle_report(evidence, generated_at="2026-11-22T09:00:00+00:00"))
    text = _squash(text)
    assert "Falcon sensor upgrades for held kernels" in text
    assert "1 host kept its kernel" in text and "falcon_rollout__cu_alpha" in text
    assert "web-old-01" in text and "7.14.16703" in text
    assert "The previous cycle (2026-10-25) handed off 1 upgrade: 0 resolved, 1 open." in text
    assert "still 7.10.16303" in text


def test_a_cycle_without_a_hand_off_has_no_sensor_upgrade_section() -> None:
    evidence = make_evidence(5, sections=True)
    evidence["sensor_upgrades"] = {
        "rollout_dag_id": None,
        "handed_off": [],
        "previous_cycle_date": None,
        "followed_up": [],
    }
    _, text = _pdf_text(render_cycle_report(evidence, generated_at="2026-11-22T09:00:00+00:00"))
    assert "Falcon sensor upgrades" not in text
