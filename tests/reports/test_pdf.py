"""The cycle PDF report: content, robustness on odd data, determinism and scale."""

from __future__ import annotations

import io
import re

import pypdf
import pytest

from patchcycle.reports.pdf import MAX_ATTENTION_ROWS, attention_hosts, render_cycle_report

from .conftest import (
    FAILED_HOST_NAME,
    HELD_HOST_REASON,
    empty_evidence,
    make_evidence,
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
    assert "host-0000" in text
    assert "host-0499" in text
    assert "host-0500" not in text
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
