"""SAML identity-provider certificates: what the clouds trust, when it expires, what to do about it.

Pure, with the clock passed in (``now``). The seed paper's section 4.2: every SAML identity-provider
configuration registered for a tenant is read (by the hooks), its certificates are parsed with a real
X.509 library, and a certificate whose validity falls under 60 days raises an alert with a renewal
runbook; an expired certificate is an authentication outage.

* :func:`parse_metadata`: a SAML 2.0 metadata document (the OASIS "Metadata for the OASIS Security
  Assertion Markup Language (SAML) V2.0", section 2.4.1.1: ``<md:KeyDescriptor use="signing|encryption">``
  holding ``<ds:KeyInfo><ds:X509Data><ds:X509Certificate>``; no ``use`` means both) to the certificates
  of its entities. Read with the standard library's expat, never resolving anything: a document with a
  document type declaration (where entities are declared, the "billion laughs" and external-entity
  attacks) is refused outright, as defusedxml would (defusedxml is not installed here).
* :func:`certificate_facts`: one DER certificate through ``cryptography``'s x509: subject, issuer, serial,
  SHA-256 and SHA-1 fingerprints, validity, key type and size, signature hash algorithm.
* :func:`assess`: every certificate of a watch target, de-duplicated by SHA-256 fingerprint across the
  providers that trust it, with its days left, the tier it has crossed, and its findings (expired, weak
  key, SHA-1 signature, superseded, inactive); providers whose metadata cannot be parsed are named with
  the parser's error.
* :func:`plan_incidents`: which incidents to open (one per certificate and tier, once), keep, and
  resolve (the certificate was renewed or removed), from what the previous run had open.
* :func:`render_runbook`: a provider kind's Method of Procedure template (``include/runbooks/saml/``)
  filled with one certificate's facts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.parsers import expat

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

__all__ = [
    "DEFAULT_TIERS_DAYS",
    "KIND_LABELS",
    "MIN_RSA_BITS",
    "PROVIDER_KINDS",
    "CertificateFacts",
    "Finding",
    "IncidentPlan",
    "MetadataDocument",
    "MetadataError",
    "ObservedProvider",
    "PageSpec",
    "ProviderProblem",
    "RunbookTemplateError",
    "SamlAssessment",
    "TrustPoint",
    "WatchedCertificate",
    "assess",
    "certificate_facts",
    "days_left",
    "default_runbooks_dir",
    "load_runbook_template",
    "observe_key_credentials",
    "observe_metadata",
    "parse_metadata",
    "plan_incidents",
    "render_runbook",
    "runbook_facts",
    "tier_crossed",
]

ProviderKind = Literal["aws_iam", "aws_identity_center", "entra_id", "gcp_workforce"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("aws_iam", "aws_identity_center", "entra_id", "gcp_workforce")
KIND_LABELS: dict[str, str] = {
    "aws_iam": "AWS IAM SAML provider",
    "aws_identity_center": "AWS IAM Identity Center external identity provider",
    "entra_id": "Microsoft Entra ID enterprise application (SAML)",
    "gcp_workforce": "Google Cloud workforce identity pool provider (SAML)",
}
DEFAULT_TIERS_DAYS: tuple[int, ...] = (60, 30, 14, 7)
"""The paper's 60-day threshold, then the tiers an on-call rotation escalates through."""
MIN_RSA_BITS = 2048  # NIST SP 800-131A Rev. 2: RSA keys under 2048 bits are disallowed for signatures
WEAK_HASHES = frozenset({"sha1", "md5"})  # SP 800-131A: SHA-1 disallowed for digital signature generation
MAX_METADATA_CHARS = 10_000_000  # IAM's SAMLMetadataDocument maximum (the largest of the providers)
KEY_PREFIX = "patchcycle"

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_DS = "http://www.w3.org/2000/09/xmldsig#"
_ENTITY = f"{_MD} EntityDescriptor"
_KEY_DESCRIPTOR = f"{_MD} KeyDescriptor"
_CERTIFICATE = f"{_DS} X509Certificate"
_USES = ("signing", "encryption")

KeyUse = Literal["signing", "encryption"]
Severity = Literal["critical", "error", "warning", "info"]
Standing = Literal["active", "superseded", "inactive"]


class MetadataError(ValueError):
    """A SAML metadata document that cannot be used; the message says why and where."""


class RunbookTemplateError(ValueError):
    """A runbook template that names a fact no certificate has, or cannot be read."""


# --------------------------------------------------------------------------------------------------
# Certificates and metadata documents
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFacts:
    """One X.509 certificate as a SAML trust decision needs it."""

    use: KeyUse
    subject: str
    issuer: str
    serial: str
    """The serial number in hexadecimal (upper case), as certificate tools print it."""
    sha256: str
    """SHA-256 fingerprint of the DER certificate, lower-case hexadecimal: the certificate's identity."""
    sha1: str
    """SHA-1 thumbprint, upper-case hexadecimal (Entra ID's ``customKeyIdentifier``): an identifier only."""
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_size: int | None
    signature_hash: str | None
    """The signature's hash algorithm (``sha256``, ``sha1``...); None for schemes without one (Ed25519)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (times as ISO 8601)."""
        return {
            "use": self.use,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "sha256": self.sha256,
            "sha1": self.sha1,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "signature_hash": self.signature_hash,
        }


def _key(public_key: Any) -> tuple[str, int | None]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}", public_key.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size
    return type(public_key).__name__, None


def certificate_facts(der: bytes, use: KeyUse) -> CertificateFacts:
    """Parse one DER-encoded certificate; ``ValueError`` naming the problem when it is not one."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ValueError(f"not an X.509 certificate: {exc}") from None
    try:
        algorithm = cert.signature_hash_algorithm
        signature_hash = algorithm.name if algorithm is not None else None
    except UnsupportedAlgorithm:
        signature_hash = cert.signature_algorithm_oid.dotted_string
    key_type, key_size = _key(cert.public_key())
    return CertificateFacts(
        use=use,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - an identifier, not a check
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_size=key_size,
        signature_hash=signature_hash,
    )


@dataclass(frozen=True)
class MetadataDocument:
    """What a SAML metadata document declares: its entity, its own validity and its certificates."""

    entity_id: str | None
    valid_until: dt.datetime | None
    certificates: tuple[CertificateFacts, ...]


def _xml_time(value: str | None) -> dt.datetime | None:
    """An ``xs:dateTime`` (``2027-01-01T00:00:00Z``) as an aware datetime; None when absent."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError(f"validUntil {value!r} is not an xs:dateTime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class _MetadataReader:
    """expat handlers that collect entities and the certificates of their key descriptors."""

    def __init__(self) -> None:
        self.entities: list[tuple[str | None, str | None]] = []  # (entityID, validUntil), first first
        self.keys: list[tuple[str | None, tuple[KeyUse, ...], str]] = []  # (entity, uses, base64)
        self._entity: str | None = None
        self._uses: tuple[KeyUse, ...] | None = None
        self._text: list[str] | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == _ENTITY:
            self._entity = attrs.get("entityID")
            self.entities.append((self._entity, attrs.get("validUntil")))
        elif name == _KEY_DESCRIPTOR:
            use = attrs.get("use")
            if use is not None and use not in _USES:
                raise MetadataError(f"KeyDescriptor use={use!r} is neither 'signing' nor 'encryption'")
            # No use attribute: the key serves both (SAML metadata 2.0, section 2.4.1.1).
            self._uses = (use,) if use in _USES else ("signing", "encryption")  # type: ignore[assignment]
        elif name == _CERTIFICATE and self._uses is not None:
            self._text = []

    def end(self, name: str) -> None:
        if name == _CERTIFICATE and self._text is not None and self._uses is not None:
            self.keys.append((self._entity, self._uses, "".join(self._text)))
            self._text = None
        elif name == _KEY_DESCRIPTOR:
            self._uses = None

    def text(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _refuse_dtd(*_: Any) -> None:
    raise MetadataError("the document declares a DTD (entities are refused: SAML metadata needs none)")


def _read_xml(document: str | bytes) -> _MetadataReader:
    if len(document) > MAX_METADATA_CHARS:
        raise MetadataError(f"the document is {len(document)} characters, more than {MAX_METADATA_CHARS}")
    reader = _MetadataReader()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd  # type: ignore[assignment]
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    try:
        parser.Parse(document, True)
    except expat.ExpatError as exc:
        raise MetadataError(
            f"not well-formed XML: {expat.ErrorString(exc.code)} at line {exc.lineno}, column {exc.offset}"
        ) from None
    return reader


def parse_metadata(document: str | bytes) -> MetadataDocument:
    """Every certificate of a SAML 2.0 metadata document, signing and encryption.

    Raises :class:`MetadataError` naming the problem: not XML, a DTD, no ``EntityDescriptor``, no
    certificate at all, or a certificate that is not base64 DER X.509 (with its position).
    """
    if not isinstance(document, str | bytes) or not document.strip():
        raise MetadataError("the metadata document is empty")
    reader = _read_xml(document)
    if not reader.entities:
        raise MetadataError("no md:EntityDescriptor element (is this SAML 2.0 metadata?)")
    if not reader.keys:
        raise MetadataError("no ds:X509Certificate in any md:KeyDescriptor")
    certificates: list[CertificateFacts] = []
    for number, (entity, uses, text) in enumerate(reader.keys, start=1):
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
            for use in uses:
                certificates.append(certificate_facts(der, use))
        except (binascii.Error, ValueError) as exc:
            raise MetadataError(f"certificate {number} (entity {entity!r}): {exc}") from None
    entity_id, valid_until = reader.entities[0]
    return MetadataDocument(
        entity_id=entity_id, valid_until=_xml_time(valid_until), certificates=tuple(certificates)
    )


# --------------------------------------------------------------------------------------------------
# What the clouds trust
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustPoint:
    """One place that trusts an identity provider's certificates: an IAM SAML provider in an account, an
    Entra enterprise application, a workforce pool provider."""

    kind: ProviderKind
    scope: str
    """Where it lives, as the evidence names the scope: ``aws:111111111111``, ``entra:<directory>``..."""
    provider_id: str
    """The provider's own id: an IAM SAML provider ARN, a service principal's object id, a workforce
    pool provider's resource name."""
    provider_name: str
    trusted_by: str
    """Who relies on it, in words: ``AWS account 111111111111`` or ``application Payroll (appId ...)``."""
    entity_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "kind": self.kind,
            "scope": self.scope,
            "provider_id": self.provider_id,
            "provider_name": self.provider_name,
            "trusted_by": self.trusted_by,
            "entity_id": self.entity_id,
        }


@dataclass(frozen=True)
class ObservedProvider:
    """One provider configuration as read: its certificates, or why they could not be read."""

    trust: TrustPoint
    certificates: tuple[CertificateFacts, ...] = ()
    error: str | None = None
    """The metadata could not be parsed (the parser's message); ``certificates`` is empty then."""
    active_sha1: str | None = None
    """Entra ID's ``preferredTokenSigningKeyThumbprint``: the one signing certificate in use."""
    valid_until: dt.datetime | None = None
    """AWS IAM's ``ValidUntil``: the provider object's own expiry."""


def observe_metadata(
    trust: TrustPoint, document: str | bytes | None, *, valid_until: dt.datetime | None = None
) -> ObservedProvider:
    """A provider whose trust is a metadata document (AWS IAM, a workforce pool provider): its
    certificates, or the parser's error (never raised: one bad document is one finding)."""
    try:
        parsed = parse_metadata(document or "")
    except MetadataError as exc:
        return ObservedProvider(trust=trust, error=str(exc), valid_until=valid_until)
    named = trust if trust.entity_id else _with_entity(trust, parsed.entity_id)
    return ObservedProvider(trust=named, certificates=parsed.certificates, valid_until=valid_until)


def _with_entity(trust: TrustPoint, entity_id: str | None) -> TrustPoint:
    return TrustPoint(
        kind=trust.kind,
        scope=trust.scope,
        provider_id=trust.provider_id,
        provider_name=trust.provider_name,
        trusted_by=trust.trusted_by,
        entity_id=entity_id,
    )


def observe_key_credentials(
    trust: TrustPoint, key_credentials: Iterable[Mapping[str, Any]], preferred_thumbprint: str | None
) -> ObservedProvider:
    """An Entra ID service principal's SAML token-signing certificates from its ``keyCredentials``.

    Graph lists each certificate twice, a ``Sign`` credential (the private key) and a ``Verify`` one
    (the certificate, whose ``key`` is the base64 DER when read with ``$select=keyCredentials`` on the
    single object); the ``Verify`` credentials are read. ``preferred_thumbprint`` is the service
    principal's ``preferredTokenSigningKeyThumbprint``, the certificate it signs with.
    """
    certificates: list[CertificateFacts] = []
    for number, credential in enumerate(key_credentials, start=1):
        if credential.get("usage") != "Verify" or credential.get("type") != "AsymmetricX509Cert":
            continue
        key = credential.get("key")
        if not key:
            error = f"keyCredential {credential.get('keyId')} carries no certificate (key is null)"
            return ObservedProvider(trust=trust, error=error)
        try:
            certificates.append(certificate_facts(base64.b64decode(str(key), validate=True), "signing"))
        except (binascii.Error, ValueError) as exc:
            error = f"keyCredential {number} ({credential.get('keyId')}): {exc}"
            return ObservedProvider(trust=trust, error=error)
    if not certificates:
        return ObservedProvider(trust=trust, error="no token-signing certificate (no Verify keyCredential)")
    thumbprint = preferred_thumbprint.upper() if preferred_thumbprint else None
    return ObservedProvider(trust=trust, certificates=tuple(certificates), active_sha1=thumbprint)


# --------------------------------------------------------------------------------------------------
# Assessment
# --------------------------------------------------------------------------------------------------


def days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    """Whole days from ``now`` to ``not_after``, rounded down (negative once expired)."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    return (not_after - now) // dt.timedelta(days=1)


def tier_crossed(days: int, tiers: Sequence[int]) -> int | None:
    """The smallest tier the remaining validity has fallen under (45 days of 60/30/14/7 -> 60; 10 -> 14);
    None while it is above every tier."""
    crossed = [tier for tier in tiers if days < tier]
    return min(crossed) if crossed else None


def tier_severity(tier: int | None, expired: bool) -> Severity:
    """PagerDuty severity of a tier: expired or a week or less critical, two weeks error, else warning."""
    if expired or (tier is not None and tier <= 7):
        return "critical"
    if tier is not None and tier <= 14:
        return "error"
    return "warning"


@dataclass(frozen=True)
class Finding:
    """Something about a certificate or a provider that a person must know."""

    kind: str
    """``expiring``, ``expired``, ``weak_key``, ``sha1_signature``, ``superseded``, ``inactive``,
    ``not_yet_valid``, ``unparseable``, ``provider_expiring``."""
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"kind": self.kind, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class WatchedCertificate:
    """A certificate some of the target's providers trust, with what it means today."""

    facts: CertificateFacts
    trust: tuple[TrustPoint, ...]
    days_left: int
    tier: int | None
    expired: bool
    standing: Standing
    findings: tuple[Finding, ...]
    incident_key: str | None
    """The incident this certificate should have open now (its current tier), None when none."""

    @property
    def severity(self) -> Severity:
        """How urgent its expiry is (see :func:`tier_severity`)."""
        return tier_severity(self.tier, self.expired)

    def kinds(self) -> list[str]:
        """The provider kinds that trust it, each once, in :data:`PROVIDER_KINDS` order."""
        present = {t.kind for t in self.trust}
        return [kind for kind in PROVIDER_KINDS if kind in present]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            **self.facts.to_dict(),
            "days_left": self.days_left,
            "tier": self.tier,
            "expired": self.expired,
            "standing": self.standing,
            "trusted_by": [t.to_dict() for t in self.trust],
            "findings": [f.to_dict() for f in self.findings],
            "incident_key": self.incident_key,
        }


@dataclass(frozen=True)
class ProviderProblem:
    """A provider whose certificates cannot be watched (unparseable metadata), or whose own validity
    (AWS IAM's ``ValidUntil``) runs out."""

    trust: TrustPoint
    finding: Finding
    incident_key: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {**self.trust.to_dict(), **self.finding.to_dict(), "incident_key": self.incident_key}


@dataclass(frozen=True)
class SamlAssessment:
    """Every certificate and problem of one watch target (a tenant, or the platform) at ``observed_at``."""

    target_id: str
    observed_at: dt.datetime
    tiers: tuple[int, ...]
    certificates: tuple[WatchedCertificate, ...]
    problems: tuple[ProviderProblem, ...]

    @property
    def nearest_expiry(self) -> WatchedCertificate | None:
        """The active certificate that expires first (expired ones included), or None."""
        active = [c for c in self.certificates if c.standing == "active"]
        return min(active, key=lambda c: c.facts.not_after) if active else None

    def wanted_incidents(self) -> dict[str, PageSpec]:
        """Every incident that should be open now, by dedup key."""
        pages: dict[str, PageSpec] = {}
        for cert in self.certificates:
            if cert.incident_key is not None:
                what = "expired" if cert.expired else f"under {cert.tier} days"
                pages[cert.incident_key] = PageSpec(
                    key=cert.incident_key,
                    severity=cert.severity,
                    summary=(
                        f"SAML certificate {cert.facts.subject} ({cert.facts.sha256[:16]}) {what}: "
                        f"not after {cert.facts.not_after:%Y-%m-%d}, trusted by "
                        + "; ".join(sorted({t.trusted_by for t in cert.trust}))
                    ),
                    certificate=cert.facts.sha256,
                    scopes=tuple(sorted({t.scope for t in cert.trust})),
                )
        for problem in self.problems:
            pages[problem.incident_key] = PageSpec(
                key=problem.incident_key,
                severity=problem.finding.severity,
                summary=f"SAML {problem.trust.provider_name}: {problem.finding.message}",
                certificate=None,
                scopes=(problem.trust.scope,),
            )
        return pages

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the watch record's body)."""
        nearest = self.nearest_expiry
        return {
            "target": self.target_id,
            "observed_at": self.observed_at.isoformat(),
            "tiers_days": list(self.tiers),
            "certificates": [c.to_dict() for c in self.certificates],
            "problems": [p.to_dict() for p in self.problems],
            "nearest_expiry": (
                {
                    "sha256": nearest.facts.sha256,
                    "subject": nearest.facts.subject,
                    "not_after": nearest.facts.not_after.isoformat(),
                    "days_left": nearest.days_left,
                }
                if nearest
                else None
            ),
        }


@dataclass(frozen=True)
class PageSpec:
    """One incident to have open: its dedup key, severity and summary."""

    key: str
    severity: Severity
    summary: str
    certificate: str | None
    """The SHA-256 of the certificate it is about; None for a provider problem."""
    scopes: tuple[str, ...] = ()
    """The scopes (``aws:<account>``, ``entra:<directory>``...) where it was seen."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def certificate_incident_key(target_id: str, sha256: str, tier: int | None, expired: bool) -> str:
    """``patchcycle/<target>/saml/<fingerprint prefix>/<tier days or expired>``: one incident per
    certificate and tier (a certificate trusted in several places is one incident)."""
    return f"{KEY_PREFIX}/{target_id}/saml/{sha256[:20]}/{'expired' if expired else tier}"


def provider_incident_key(target_id: str, what: str, provider_id: str) -> str:
    """``patchcycle/<target>/saml/<what>/<digest of the provider id>``."""
    return f"{KEY_PREFIX}/{target_id}/saml/{what}/{_digest(provider_id)}"


@dataclass
class _Seen:
    facts: CertificateFacts
    trust: list[TrustPoint] = field(default_factory=list)
    active: bool = False  # active in at least one of its providers


def _successor_in(provider: ObservedProvider, cert: CertificateFacts, now: dt.datetime, horizon: int) -> bool:
    """Whether ``provider`` also trusts a newer certificate of the same use that is valid now and beyond
    every tier: the roll has begun (the new one is beside the old), so the old one's expiry is covered
    once the identity provider signs with the new one."""
    return any(
        other.sha256 != cert.sha256
        and other.use == cert.use
        and other.not_after > cert.not_after
        and other.not_before <= now
        and days_left(other.not_after, now) >= horizon
        for other in provider.certificates
    )


def _collect(
    providers: Sequence[ObservedProvider], now: dt.datetime, horizon: int
) -> tuple[dict[tuple[str, str], _Seen], set[tuple[str, str]], set[tuple[str, str]]]:
    """Certificates by (fingerprint, use) with every trust point; which are active somewhere; which an
    Entra application does not sign with."""
    seen: dict[tuple[str, str], _Seen] = {}
    inactive: set[tuple[str, str]] = set()
    covered: set[tuple[str, str]] = set()
    for provider in providers:
        for cert in provider.certificates:
            key = (cert.sha256, cert.use)
            entry = seen.setdefault(key, _Seen(cert))
            if provider.trust not in entry.trust:
                entry.trust.append(provider.trust)
            if provider.active_sha1 is not None:
                # Entra ID says which certificate the application signs with: that one alone counts.
                if cert.sha1 == provider.active_sha1:
                    entry.active = True
                else:
                    inactive.add(key)
                continue
            if _successor_in(provider, cert, now, horizon):
                covered.add(key)
                continue
            entry.active = True
    return seen, inactive, covered


def _certificate_findings(
    cert: CertificateFacts, days: int, tier: int | None, now: dt.datetime
) -> list[Finding]:
    findings: list[Finding] = []
    if cert.not_after <= now:
        findings.append(Finding("expired", "critical", f"expired {cert.not_after:%Y-%m-%d %H:%M} UTC"))
    elif tier is not None:
        findings.append(
            Finding("expiring", tier_severity(tier, False), f"{days} days left (under the {tier}-day tier)")
        )
    if cert.not_before > now:
        findings.append(Finding("not_yet_valid", "warning", f"not valid before {cert.not_before:%Y-%m-%d}"))
    if cert.key_type == "RSA" and cert.key_size is not None and cert.key_size < MIN_RSA_BITS:
        findings.append(
            Finding("weak_key", "warning", f"RSA key of {cert.key_size} bits (under {MIN_RSA_BITS})")
        )
    if cert.signature_hash in WEAK_HASHES:
        findings.append(
            Finding(
                "sha1_signature", "warning", f"signed with {cert.signature_hash.upper()} (collision-prone)"
            )
        )
    return findings


def _watched(
    target_id: str, entry: _Seen, standing: Standing, now: dt.datetime, tiers: Sequence[int]
) -> WatchedCertificate:
    cert = entry.facts
    days = days_left(cert.not_after, now)
    expired = cert.not_after <= now
    tier = tier_crossed(days, tiers)
    findings = _certificate_findings(cert, days, tier, now)
    if standing == "superseded":
        findings.append(
            Finding(
                "superseded",
                "info",
                "a newer certificate is configured beside it: switch the identity provider to the new one, "
                "then remove this one",
            )
        )
    elif standing == "inactive":
        findings.append(Finding("inactive", "info", "not the application's active signing certificate"))
    pages = standing == "active" and (expired or tier is not None)
    return WatchedCertificate(
        facts=cert,
        trust=tuple(sorted(entry.trust, key=lambda t: (t.kind, t.scope, t.provider_id))),
        days_left=days,
        tier=tier,
        expired=expired,
        standing=standing,
        findings=tuple(findings),
        incident_key=certificate_incident_key(target_id, cert.sha256, tier, expired) if pages else None,
    )


def _provider_problems(
    target_id: str, providers: Sequence[ObservedProvider], now: dt.datetime, tiers: Sequence[int]
) -> list[ProviderProblem]:
    problems: list[ProviderProblem] = []
    for provider in providers:
        trust = provider.trust
        if provider.error is not None:
            finding = Finding("unparseable", "warning", f"metadata cannot be read: {provider.error}")
            key = provider_incident_key(target_id, "unparseable", trust.provider_id)
            problems.append(ProviderProblem(trust, finding, key))
        if provider.valid_until is not None:
            days = days_left(provider.valid_until, now)
            expired = provider.valid_until <= now
            tier = tier_crossed(days, tiers)
            if expired or tier is not None:
                what = "expired" if expired else f"{days} days left"
                finding = Finding(
                    "provider_expiring",
                    tier_severity(tier, expired),
                    f"the provider itself is valid until {provider.valid_until:%Y-%m-%d} ({what})",
                )
                key = provider_incident_key(
                    target_id, f"provider-{'expired' if expired else tier}", trust.provider_id
                )
                problems.append(ProviderProblem(trust, finding, key))
    return problems


def assess(
    target_id: str, providers: Sequence[ObservedProvider], *, tiers: Sequence[int], now: dt.datetime
) -> SamlAssessment:
    """Every certificate the target's providers trust, de-duplicated by fingerprint and use, with its days
    left, tier, findings and standing, and every provider problem.

    A certificate is ``active`` when at least one provider relies on it with nothing to replace it;
    ``superseded`` when every provider trusting it also trusts a newer certificate of the same use that
    is valid beyond every tier (the roll is under way: no incident, a note to finish it); ``inactive``
    when it is an Entra application's certificate other than the one it signs with. Only active
    certificates page.
    """
    if not tiers or any(t <= 0 for t in tiers):
        raise ValueError(f"tiers must be positive day counts, got {list(tiers)}")
    ordered = tuple(sorted(set(tiers), reverse=True))
    seen, inactive, covered = _collect(providers, now, ordered[0])
    certificates: list[WatchedCertificate] = []
    for key, entry in seen.items():
        standing: Standing = (
            "active"
            if entry.active
            else ("inactive" if key in inactive and key not in covered else "superseded")
        )
        certificates.append(_watched(target_id, entry, standing, now, ordered))
    certificates.sort(key=lambda c: (c.facts.not_after, c.facts.sha256, c.facts.use))
    return SamlAssessment(
        target_id=target_id,
        observed_at=now,
        tiers=ordered,
        certificates=tuple(certificates),
        problems=tuple(_provider_problems(target_id, providers, now, ordered)),
    )


# --------------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentPlan:
    """What to tell PagerDuty after a watch: open these (new), leave these (already paged), resolve these."""

    trigger: tuple[PageSpec, ...]
    keep: tuple[str, ...]
    resolve: tuple[str, ...]
    open_after: dict[str, list[str]]
    """The incidents open once the plan is carried out, each with the scopes it was seen in (the next
    run's ``previously_open``)."""


def plan_incidents(
    assessment: SamlAssessment,
    previously_open: Mapping[str, Sequence[str]],
    *,
    unread_scopes: Iterable[str] = (),
) -> IncidentPlan:
    """Page each certificate and tier once: open the wanted incidents that were not open after the
    previous run, keep those that were, resolve the previous run's incidents no longer wanted (the
    certificate was renewed or removed, or crossed into a more urgent tier whose incident replaces it).

    ``previously_open`` maps each incident open after the previous run to the scopes it was seen in. One
    seen only in scopes that could not be read today (``unread_scopes``) is kept, not resolved: not
    seeing a certificate is not knowing it was renewed.
    """
    wanted = assessment.wanted_incidents()
    blind = set(unread_scopes)
    trigger = tuple(page for key, page in sorted(wanted.items()) if key not in previously_open)
    keep: list[str] = [key for key in previously_open if key in wanted]
    resolve: list[str] = []
    open_after = {key: list(page.scopes) for key, page in wanted.items()}
    for key, scopes in previously_open.items():
        if key in wanted:
            continue
        if set(scopes) & blind:
            keep.append(key)
            open_after[key] = list(scopes)
        else:
            resolve.append(key)
    return IncidentPlan(
        trigger=trigger,
        keep=tuple(sorted(keep)),
        resolve=tuple(sorted(resolve)),
        open_after=dict(sorted(open_after.items())),
    )


# --------------------------------------------------------------------------------------------------
# Runbooks
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


def default_runbooks_dir() -> Path:
    """``include/runbooks/saml`` in the repository."""
    # plugins/patchcycle/domain/saml.py -> repository root
    return Path(__file__).resolve().parents[3] / "include" / "runbooks" / "saml"


def load_runbook_template(kind: str, directory: Path | None = None) -> str:
    """The Method of Procedure template of a provider kind (``<kind>.md``)."""
    if kind not in PROVIDER_KINDS:
        raise RunbookTemplateError(f"no provider kind {kind!r}; known: {', '.join(PROVIDER_KINDS)}")
    path = (directory or default_runbooks_dir()) / f"{kind}.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookTemplateError(f"{path}: cannot read the runbook template: {exc}") from None


def runbook_facts(
    cert: WatchedCertificate, kind: str, *, target_name: str, generated_at: dt.datetime
) -> dict[str, str]:
    """The facts a runbook template may name, for one certificate as one provider kind trusts it."""
    points = [t for t in cert.trust if t.kind == kind] or list(cert.trust)
    first = points[0]
    key = f"{cert.facts.key_type}" + (f" {cert.facts.key_size} bits" if cert.facts.key_size else "")
    status = "EXPIRED" if cert.expired else f"{cert.days_left} days left"
    return {
        "tenant": target_name,
        "provider_kind": KIND_LABELS.get(kind, kind),
        "provider_name": ", ".join(sorted({t.provider_name for t in points})),
        "provider_id": first.provider_id,
        "provider_ids": "\n".join(f"- `{t.provider_id}`" for t in points),
        "entity_id": first.entity_id or "(not declared)",
        "subject": cert.facts.subject,
        "issuer": cert.facts.issuer,
        "serial": cert.facts.serial,
        "sha256": cert.facts.sha256,
        "sha1": cert.facts.sha1,
        "use": cert.facts.use,
        "not_before": f"{cert.facts.not_before:%Y-%m-%d %H:%M} UTC",
        "not_after": f"{cert.facts.not_after:%Y-%m-%d %H:%M} UTC",
        "status": status,
        "key": key,
        "signature_hash": cert.facts.signature_hash or "(none)",
        "trusted_by": "\n".join(f"- {t.trusted_by} ({t.provider_name})" for t in points),
        "findings": "\n".join(f"- **{f.kind}** ({f.severity}): {f.message}" for f in cert.findings)
        or "- none",
        "incident_key": cert.incident_key or "(no incident)",
        "generated_at": f"{generated_at:%Y-%m-%d %H:%M} UTC",
    }


def render_runbook(template: str, facts: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` placeholders with ``facts``; a name the facts lack is a
    :class:`RunbookTemplateError` (a template is reviewed like code: a typo must not ship as a gap)."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(facts))
    if unknown:
        raise RunbookTemplateError(f"the template names facts no certificate has: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: facts[m.group(1)], template)
