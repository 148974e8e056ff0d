"""The evidence notice: link lifetime and the mail's content (pure parts of the distribution task)."""

from __future__ import annotations

from patchcycle.operators.distribute import MAX_LINK_SECONDS, evidence_email, link_seconds


def test_links_never_outlive_a_sigv4_presigned_url() -> None:
    assert link_seconds(72) == 72 * 3600
    assert link_seconds(168) == MAX_LINK_SECONDS
    assert link_seconds(500) == MAX_LINK_SECONDS


def test_the_notice_carries_links_outcome_and_the_manifest_digest_escaped() -> None:
    subject, body = evidence_email(
        tenant_name="Alpha & Co <FCU>",
        cycle_date="2026-11-22",
        outcome="partial",
        links={"report.pdf": "http://127.0.0.1:1/b/k?X-Amz-Signature=a&X-Amz-Expires=3600"},
        manifest_sha256="ab" * 32,
        hours=72,
    )
    assert subject == "[Patchcycle] Alpha & Co <FCU>: patch cycle 2026-11-22 evidence (partial)"
    assert "Alpha &amp; Co &lt;FCU&gt;" in body and "<FCU>" not in body
    assert 'href="http://127.0.0.1:1/b/k?X-Amz-Signature=a&amp;X-Amz-Expires=3600"' in body
    assert "PARTIAL" in body and "72 hours" in body and "ab" * 32 in body
