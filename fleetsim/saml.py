"""SAML identity providers for fleetsim: real X.509 certificates and SAML 2.0 metadata, made at start.

The scenario's optional ``saml:`` section says which SAML provider configurations each tenant has (AWS
IAM SAML providers per account, Entra ID enterprise applications, Google Cloud workforce pool
providers) and what their certificates are like: days of validity left, key size, signature hash, or a
metadata document that does not parse. A tenant the section does not list gets one healthy provider per
cloud it has (a year and more of validity), so every scenario has something to watch.

Certificates are generated with ``cryptography`` when fleetsim starts, relative to the wall clock (a
certificate "45 days left" has 45 days left when the server starts). ``cryptography`` refuses to sign
with SHA-1, so a SHA-1 certificate is assembled by hand: the to-be-signed part built by cryptography
with its two signature-algorithm identifiers rewritten to sha1WithRSAEncryption, signed with PKCS #1
v1.5 and SHA-1, and wrapped in the Certificate SEQUENCE (RFC 5280, section 4.1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
# DER of the OIDs sha256WithRSAEncryption (1.2.840.113549.1.1.11) and sha1WithRSAEncryption (...1.5).
_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")
UNPARSEABLE_METADATA = (
    '<?xml version="1.0"?>\n<md:EntityDescriptor xmlns:md="' + MD_NS + '" entityID="https://broken.example">'
    "<md:IDPSSODescriptor><md:KeyDescriptor use='signing'>"
    "<!-- the IdP exported a truncated document: the certificate element is never closed -->"
    + "<ds:X509Certificate xmlns:ds='"
    + DS_NS
    + "'>"
    + "MIIC" * 300
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CertificateSeed(_Strict):
    """One certificate of a provider."""

    days_left: float = 400.0
    """Whole days of validity left when fleetsim starts: the certificate ends that many days and twelve
    hours later, so a watch run the same day counts exactly ``days_left``."""
    validity_days: int = Field(730, ge=1)
    key_size: int = Field(2048, ge=1024)
    signature_hash: Literal["sha256", "sha1"] = "sha256"
    use: Literal["signing", "encryption", "both"] = "signing"
    common_name: str | None = None


class IamProviderSeed(_Strict):
    """An IAM SAML provider in one of the tenant's AWS accounts (its fleet's account by default)."""

    name: str = Field(pattern=r"^[\w+=,.@-]{1,128}$")
    account_id: str | None = Field(None, pattern=r"^\d{12}$")
    entity_id: str | None = None
    certificates: list[CertificateSeed] = Field(default_factory=lambda: [CertificateSeed()])
    unparseable: bool = False


class EntraAppSeed(_Strict):
    """An Entra ID enterprise application with SAML single sign-on (a service principal)."""

    name: str
    certificates: list[CertificateSeed] = Field(default_factory=lambda: [CertificateSeed()])
    active: int = 0
    """Which certificate is the application's preferredTokenSigningKeyThumbprint (index)."""


class WorkforceProviderSeed(_Strict):
    """A SAML provider of a workforce identity pool in the tenant's Google Cloud organization."""

    pool: str = Field(pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")
    provider: str = Field(pattern=r"^[a-z][a-z0-9-]{2,30}[a-z0-9]$")
    certificates: list[CertificateSeed] = Field(default_factory=lambda: [CertificateSeed()])
    unparseable: bool = False
    disabled: bool = False


class TenantSaml(_Strict):
    """One tenant's SAML provider configurations."""

    id: str
    aws_iam: list[IamProviderSeed] = Field(default_factory=list)
    entra_id: list[EntraAppSeed] = Field(default_factory=list)
    gcp_workforce: list[WorkforceProviderSeed] = Field(default_factory=list)


class SamlSeed(_Strict):
    """The scenario's ``saml:`` section. Tenants not listed get one healthy provider per cloud they have
    (``default_healthy``)."""

    tenants: list[TenantSaml] = Field(default_factory=list)
    default_healthy: bool = True


@dataclass(frozen=True)
class MadeCertificate:
    """A generated certificate: its DER bytes and the use its metadata declares."""

    der: bytes
    use: str  # signing | encryption | both

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.der).hexdigest().upper()  # noqa: S324 - a thumbprint, as Graph names it

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@cache
def _rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """One key per size for the whole process (generating RSA keys is the slow part; certificates
    still differ by name, serial and validity)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _sha1_signed(builder: x509.CertificateBuilder, key: rsa.RSAPrivateKey) -> bytes:
    """The builder's certificate signed with SHA-1 (see the module docstring)."""
    tbs = builder.sign(key, hashes.SHA256()).tbs_certificate_bytes.replace(_SHA256_RSA, _SHA1_RSA)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the weakness under test
    algorithm = _tlv(0x30, _SHA1_RSA + b"\x05\x00")
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def make_certificate(seed: CertificateSeed, name: str, now: dt.datetime) -> MadeCertificate:
    """A self-signed certificate for ``name`` with ``seed.days_left`` days of validity left at ``now``."""
    key = _rsa_key(seed.key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, seed.common_name or name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetsim identity provider"),
        ]
    )
    not_after = now + dt.timedelta(days=seed.days_left, hours=12)
    not_before = min(now - dt.timedelta(days=1), not_after - dt.timedelta(days=seed.validity_days))
    serial = (
        int.from_bytes(hashlib.sha256(f"{name}|{seed!r}|{now:%Y%m%d}".encode()).digest()[:16], "big") >> 1
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial or 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if seed.signature_hash == "sha1":
        der = _sha1_signed(builder, key)
    else:
        from cryptography.hazmat.primitives.serialization import Encoding

        der = builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
    return MadeCertificate(der=der, use=seed.use)


def _key_descriptor(made: MadeCertificate) -> str:
    import base64

    text = base64.b64encode(made.der).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    use = "" if made.use == "both" else f' use="{made.use}"'
    return (
        f"    <md:KeyDescriptor{use}>\n      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>\n{lines}\n"
        "      </ds:X509Certificate></ds:X509Data></ds:KeyInfo>\n    </md:KeyDescriptor>\n"
    )


def metadata_document(entity_id: str, certificates: list[MadeCertificate], sso_url: str | None = None) -> str:
    """A SAML 2.0 identity provider's metadata (an ``IDPSSODescriptor`` with its key descriptors)."""
    location = sso_url or f"{entity_id.rstrip('/')}/sso/saml"
    keys = "".join(_key_descriptor(c) for c in certificates)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<md:EntityDescriptor xmlns:md="{MD_NS}" xmlns:ds="{DS_NS}" entityID="{entity_id}">\n'
        '  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">\n'
        f"{keys}"
        "    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>\n"
        '    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{location}"/>\n'
        "  </md:IDPSSODescriptor>\n</md:EntityDescriptor>\n"
    )


def provider_metadata(
    entity_id: str, seeds: list[CertificateSeed], name: str, now: dt.datetime, *, unparseable: bool = False
) -> str:
    """The metadata document of a seeded provider (or a truncated one, for ``unparseable``)."""
    if unparseable:
        return UNPARSEABLE_METADATA
    made = [make_certificate(seed, f"{name}-{i}", now) for i, seed in enumerate(seeds, start=1)]
    return metadata_document(entity_id, made)


def organization_id(tenant_id: str) -> str:
    """The Google Cloud organization number fleetsim gives a tenant's projects (stable per tenant)."""
    return str(int(hashlib.sha256(f"org|{tenant_id}".encode()).hexdigest()[:12], 16) % 10**12).rjust(12, "1")


def directory_id(tenant_id: str) -> str:
    """The Entra ID directory (tenant) id fleetsim gives a tenant: a stable GUID."""
    digest = hashlib.sha256(f"entra|{tenant_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
