"""The evidence notice: link lifetime and the mail's content (pure parts of the distribution task)."""

from __future__ import annotations

import datetime as dt

from patchcycle.operators.distribute import MAX_LINK_SECONDS, evidence_email, link_lifetime, link_seconds


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


NOW = dt.datetime(2026, 11, 22, 6, 0, tzinfo=dt.UTC)


def test_links_signed_with_long_lived_keys_live_as_long_as_asked() -> None:
    assert link_lifetime(72 * 3600, now=NOW, temporary=False, credentials_expire=None) == (72 * 3600, None)


def test_links_signed_with_a_session_die_with_it_and_the_mail_says_so() -> None:
    expires = NOW + dt.timedelta(hours=1)
    seconds, caveat = link_lifetime(72 * 3600, now=NOW, temporary=True, credentials_expire=expires)
    assert seconds == 3600
    assert caveat is not None and "expire at 2026-11-22 07:00 UTC" in caveat
    later = NOW + dt.timedelta(days=8)
    assert link_lifetime(72 * 3600, now=NOW, temporary=True, credentials_expire=later) == (72 * 3600, None)
    seconds, caveat = link_lifetime(72 * 3600, now=NOW, temporary=True, credentials_expire=None)
    assert seconds == 72 * 3600 and caveat is not None and "may be sooner" in caveat
    _, body = evidence_email(
        tenant_name="Alpha",
        cycle_date="2026-11-22",
        outcome="completed",
        links={},
        manifest_sha256="ab" * 32,
        hours=1,
        caveat="signed with <temporary> credentials",
    )
    assert "The links expire in 1 hours; signed with &lt;temporary&gt; credentials." in body
