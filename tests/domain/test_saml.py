"""The SAML certificate watch's pure policy, on real certificates made here with ``cryptography``
(``fleetsim.saml`` makes them, SHA-1 signed and RSA-1024 ones included): metadata parsing, findings,
tiers, de-duplication, the roll (superseded, inactive), incidents across runs, and the runbooks."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from fleetsim.saml import CertificateSeed, make_certificate, metadata_document
from patchcycle.domain.saml import (
    DEFAULT_TIERS_DAYS,
    PROVIDER_KINDS,
    MetadataError,
    ObservedProvider,
    RunbookTemplateError,
    TrustPoint,
    assess,
    certificate_facts,
    days_left,
    load_runbook_template,
    observe_key_credentials,
    observe_metadata,
    parse_metadata,
    plan_incidents,
    render_runbook,
    runbook_facts,
    tier_crossed,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TIERS = DEFAULT_TIERS_DAYS


def cert(days: float, *, name: str = "idp", **kw):
    return make_certificate(CertificateSeed(days_left=days, **kw), name, NOW)


def trust(account: str = "111111111111", name: str = "okta", kind: str = "aws_iam") -> TrustPoint:
    return TrustPoint(
        kind=kind,  # type: ignore[arg-type]
        scope=f"aws:{account}",
        provider_id=f"arn:aws:iam::{account}:saml-provider/{name}",
        provider_name=name,
        trusted_by=f"AWS account {account}",
    )


def provider(*made, account: str = "111111111111", name: str = "okta", **kw) -> ObservedProvider:
    document = metadata_document(f"https://idp.example/{name}", list(made))
    return observe_metadata(trust(account, name), document, **kw)


# -- parsing -----------------------------------------------------------------------------------------


def test_metadata_gives_each_certificate_with_its_facts_and_use():
    signing = cert(45, name="sign")
    both = cert(300, name="both", use="both")
    parsed = parse_metadata(metadata_document("https://idp.example/x", [signing, both]))
    assert parsed.entity_id == "https://idp.example/x"
    assert [(c.use, c.sha256) for c in parsed.certificates] == [
        ("signing", hashlib.sha256(signing.der).hexdigest()),
        # No use attribute: the key serves both (SAML metadata 2.0, section 2.4.1.1).
        ("signing", hashlib.sha256(both.der).hexdigest()),
        ("encryption", hashlib.sha256(both.der).hexdigest()),
    ]
    facts = parsed.certificates[0]
    x = signing.cert
    assert facts.subject == x.subject.rfc4514_string() and "CN=sign" in facts.subject
    assert facts.issuer == facts.subject  # self-signed, as IdP signing certificates are
    assert facts.serial == format(x.serial_number, "X")
    assert facts.sha1 == signing.sha1
    assert facts.not_after == x.not_valid_after_utc
    assert (facts.key_type, facts.key_size, facts.signature_hash) == ("RSA", 2048, "sha256")


def test_a_sha1_signed_and_a_1024_bit_certificate_are_read_as_such():
    sha1 = certificate_facts(cert(400, signature_hash="sha1").der, "signing")
    weak = certificate_facts(cert(400, key_size=1024).der, "signing")
    assert sha1.signature_hash == "sha1" and sha1.key_size == 2048
    assert weak.key_size == 1024 and weak.signature_hash == "sha256"


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("", "empty"),
        ("<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata'", "not well-formed"),
        ("<root/>", "no md:EntityDescriptor"),
        (
            "<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'/>",
            "no ds:X509Certificate",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            "<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='&lol2;'/>",
            "DTD",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]><x>&ext;</x>',
            "DTD",
        ),
    ],
)
def test_a_document_that_cannot_be_read_is_refused_with_the_reason(document, says):
    with pytest.raises(MetadataError, match=says):
        parse_metadata(document)


def test_a_certificate_that_is_not_der_names_its_position():
    good = metadata_document("https://idp.example/x", [cert(100)])
    broken = good.replace("<ds:X509Certificate>\n", "<ds:X509Certificate>\nAAAA", 1)
    with pytest.raises(MetadataError, match=r"certificate 1 \(entity 'https://idp.example/x'\)"):
        parse_metadata(broken)


def test_an_unparseable_provider_is_a_finding_never_an_exception():
    observed = observe_metadata(trust(), "<md:EntityDescriptor")
    assert observed.certificates == () and "not well-formed" in (observed.error or "")
    result = assess("cu_alpha", [observed], tiers=TIERS, now=NOW)
    (problem,) = result.problems
    assert problem.finding.kind == "unparseable" and "not well-formed" in problem.finding.message
    assert problem.incident_key.startswith("patchcycle/cu_alpha/saml/unparseable/")


# -- tiers and findings ----------------------------------------------------------------------------------


def test_days_left_and_the_tier_crossed():
    assert days_left(NOW + dt.timedelta(days=45, hours=3), NOW) == 45
    assert days_left(NOW - dt.timedelta(hours=1), NOW) == -1
    assert [tier_crossed(d, TIERS) for d in (400, 60, 59, 45, 30, 29, 10, 7, 6, 0, -3)] == [
        None,
        None,
        60,
        60,
        60,
        30,
        14,
        14,
        7,
        7,
        7,
    ]


def test_each_certificate_gets_its_tier_severity_and_findings():
    providers = [
        provider(cert(45, name="a"), name="a"),
        provider(cert(10, name="b"), name="b"),
        provider(cert(5, name="c"), name="c"),
        provider(cert(-2, name="d"), name="d"),
        provider(cert(400, name="e", signature_hash="sha1"), name="e"),
        provider(cert(500, name="f", key_size=1024), name="f"),
    ]
    result = assess("cu_alpha", providers, tiers=TIERS, now=NOW)
    by_name = {c.trust[0].provider_name: c for c in result.certificates}
    assert {n: (c.days_left, c.tier, c.expired, c.severity) for n, c in by_name.items()} == {
        "a": (45, 60, False, "warning"),
        "b": (10, 14, False, "error"),
        "c": (5, 7, False, "critical"),
        "d": (-2, 7, True, "critical"),
        "e": (400, None, False, "warning"),
        "f": (500, None, False, "warning"),
    }
    kinds = {n: [f.kind for f in c.findings] for n, c in by_name.items()}
    assert kinds["a"] == ["expiring"] and kinds["d"] == ["expired"]
    assert kinds["e"] == ["sha1_signature"] and kinds["f"] == ["weak_key"]
    # Only expiry pages: a weak key or a SHA-1 signature is mailed and recorded, not an incident.
    assert by_name["e"].incident_key is None and by_name["f"].incident_key is None
    assert by_name["a"].incident_key == f"patchcycle/cu_alpha/saml/{by_name['a'].facts.sha256[:20]}/60"
    assert by_name["d"].incident_key.endswith("/expired")
    assert result.nearest_expiry is by_name["d"]


def test_one_certificate_trusted_in_three_accounts_is_one_incident():
    shared = cert(20)
    providers = [provider(shared, account=a) for a in ("111111111111", "222222222222", "333333333333")]
    result = assess("cu_alpha", providers, tiers=TIERS, now=NOW)
    (watched,) = result.certificates
    assert [t.scope for t in watched.trust] == ["aws:111111111111", "aws:222222222222", "aws:333333333333"]
    (page,) = result.wanted_incidents().values()
    assert page.scopes == ("aws:111111111111", "aws:222222222222", "aws:333333333333")
    assert "AWS account 222222222222" in page.summary


def test_a_new_certificate_beside_the_old_one_supersedes_it():
    old, new = cert(10, name="old"), cert(700, name="new")
    result = assess("cu_alpha", [provider(old, new)], tiers=TIERS, now=NOW)
    standing = {c.facts.sha256: c.standing for c in result.certificates}
    assert standing == {
        hashlib.sha256(old.der).hexdigest(): "superseded",
        hashlib.sha256(new.der).hexdigest(): "active",
    }
    assert result.wanted_incidents() == {}
    # A second near-expiry certificate does not cover the first: both still page.
    crowded = assess("cu_alpha", [provider(old, cert(40, name="other"))], tiers=TIERS, now=NOW)
    assert len(crowded.wanted_incidents()) == 2


def test_a_certificate_superseded_in_one_account_but_alone_in_another_still_pages():
    old, new = cert(10, name="old"), cert(700, name="new")
    result = assess(
        "cu_alpha", [provider(old, new), provider(old, account="222222222222")], tiers=TIERS, now=NOW
    )
    old_watch = next(c for c in result.certificates if c.facts.sha256 == hashlib.sha256(old.der).hexdigest())
    assert old_watch.standing == "active" and old_watch.incident_key is not None


def entra(*made, active: int = 0) -> ObservedProvider:
    creds = []
    for m in made:
        thumb = base64.b64encode(bytes.fromhex(m.sha1)).decode()
        creds.append(
            {"usage": "Sign", "type": "AsymmetricX509Cert", "customKeyIdentifier": thumb, "key": None}
        )
        creds.append(
            {
                "usage": "Verify",
                "type": "AsymmetricX509Cert",
                "customKeyIdentifier": thumb,
                "keyId": "k",
                "key": base64.b64encode(m.der).decode(),
            }
        )
    point = TrustPoint("entra_id", "entra:dir", "sp-1", "Payroll", "application Payroll (appId a-1)")
    return observe_key_credentials(point, creds, made[active].sha1.lower())


def test_an_entra_application_pages_for_the_certificate_it_signs_with_only():
    old, new = cert(10, name="old"), cert(900, name="new")
    before = assess("cu_alpha", [entra(old, new, active=0)], tiers=TIERS, now=NOW)
    # The new certificate is beside the old one but not in use: the old one still pages.
    assert {c.facts.sha1: c.standing for c in before.certificates} == {
        old.sha1: "active",
        new.sha1: "inactive",
    }
    assert len(before.wanted_incidents()) == 1
    after = assess("cu_alpha", [entra(old, new, active=1)], tiers=TIERS, now=NOW)
    assert {c.facts.sha1: c.standing for c in after.certificates} == {
        old.sha1: "inactive",
        new.sha1: "active",
    }
    assert after.wanted_incidents() == {}


def test_an_entra_credential_without_its_certificate_is_named():
    point = TrustPoint("entra_id", "entra:dir", "sp-1", "Payroll", "application Payroll")
    observed = observe_key_credentials(
        point, [{"usage": "Verify", "type": "AsymmetricX509Cert", "keyId": "k-9", "key": None}], None
    )
    assert observed.error == "keyCredential k-9 carries no certificate (key is null)"


def test_a_provider_whose_own_validity_runs_out_is_a_problem():
    soon = NOW + dt.timedelta(days=20)
    result = assess("cu_alpha", [provider(cert(400), valid_until=soon)], tiers=TIERS, now=NOW)
    (problem,) = result.problems
    assert problem.finding.kind == "provider_expiring" and "2026-12-21" in problem.finding.message
    far = assess("cu_alpha", [provider(cert(400), valid_until=NOW.replace(year=2126))], tiers=TIERS, now=NOW)
    assert far.problems == ()


def test_tiers_are_the_tenants():
    result = assess("cu_alpha", [provider(cert(80))], tiers=(90, 45), now=NOW)
    assert result.certificates[0].tier == 90 and result.tiers == (90, 45)
    with pytest.raises(ValueError, match="positive"):
        assess("cu_alpha", [], tiers=(30, 0), now=NOW)


# -- incidents across daily runs ---------------------------------------------------------------------------


def test_a_certificate_pages_once_per_tier_and_resolves_when_renewed():
    near = cert(45, name="near")
    day1 = assess("cu_alpha", [provider(near)], tiers=TIERS, now=NOW)
    first = plan_incidents(day1, {})
    assert [p.key for p in first.trigger] == list(day1.wanted_incidents()) and first.resolve == ()
    # The next day: same certificate, same tier: nothing new to page.
    day2 = assess("cu_alpha", [provider(near)], tiers=TIERS, now=NOW + dt.timedelta(days=1))
    second = plan_incidents(day2, first.open_after)
    assert second.trigger == () and second.keep == tuple(first.open_after)
    # Three weeks on it crosses 30 days: the 30-day incident opens, the 60-day one is resolved.
    day22 = assess("cu_alpha", [provider(near)], tiers=TIERS, now=NOW + dt.timedelta(days=22))
    third = plan_incidents(day22, second.open_after)
    assert [p.key.rsplit("/", 1)[1] for p in third.trigger] == ["30"]
    assert [k.rsplit("/", 1)[1] for k in third.resolve] == ["60"]
    # Renewed (the provider now trusts a new certificate only): resolved, nothing opened.
    renewed = assess("cu_alpha", [provider(cert(700, name="renewed"))], tiers=TIERS, now=NOW)
    fourth = plan_incidents(renewed, third.open_after)
    assert fourth.trigger == () and fourth.resolve == tuple(third.open_after) and fourth.open_after == {}


def test_an_incident_of_a_scope_that_could_not_be_read_stays_open():
    near = cert(10, name="near")
    day1 = plan_incidents(assess("cu_alpha", [provider(near)], tiers=TIERS, now=NOW), {})
    blind = assess("cu_alpha", [], tiers=TIERS, now=NOW)
    kept = plan_incidents(blind, day1.open_after, unread_scopes=["aws:111111111111"])
    assert kept.resolve == () and kept.keep == tuple(day1.open_after)
    assert plan_incidents(blind, day1.open_after, unread_scopes=["aws:999999999999"]).resolve


# -- runbooks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_every_provider_kind_has_a_runbook_filled_with_the_certificates_facts(kind):
    watched = assess("cu_alpha", [provider(cert(12), account="444444444444")], tiers=TIERS, now=NOW)
    (c,) = watched.certificates
    text = render_runbook(
        load_runbook_template(kind), runbook_facts(c, kind, target_name="Alpha FCU", generated_at=NOW)
    )
    assert "{{" not in text and "}}" not in text
    for fact in (c.facts.subject, c.facts.serial, "Alpha FCU"):
        assert fact in text
    assert c.facts.sha256 in text or c.facts.sha1 in text
    assert "https://" in text  # every template cites the vendor's documents
    assert "2026-12-14" in text  # the not-after date: 12 days and 12 hours on


def test_the_aws_runbook_names_every_trusting_account():
    shared = cert(12)
    result = assess(
        "cu_alpha",
        [provider(shared, account=a) for a in ("111111111111", "222222222222")],
        tiers=TIERS,
        now=NOW,
    )
    text = render_runbook(
        load_runbook_template("aws_iam"),
        runbook_facts(result.certificates[0], "aws_iam", target_name="Alpha", generated_at=NOW),
    )
    assert "arn:aws:iam::111111111111:saml-provider/okta" in text
    assert "AWS account 222222222222" in text


def test_a_template_naming_an_unknown_fact_fails():
    with pytest.raises(RunbookTemplateError, match="serial_number"):
        render_runbook("Serial: {{ serial_number }}", {"serial": "01"})
    with pytest.raises(RunbookTemplateError, match="no provider kind"):
        load_runbook_template("okta")
