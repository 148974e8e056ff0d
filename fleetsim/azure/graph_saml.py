"""Microsoft Graph v1.0: the service principals of enterprise applications with SAML single sign-on.

Each scenario tenant is its own Entra ID directory, served under ``/graph/<tenant id>`` (the product's
Graph base URL is configurable; Graph itself is ``https://graph.microsoft.com``):

* ``GET {base}/v1.0/servicePrincipals?$filter=preferredSingleSignOnMode eq 'saml'&$select=...&$top=N``:
  ``{"@odata.context", "value": [...], "@odata.nextLink"}``; ``$top`` 1..999 (Graph's maximum for
  service principals), default 100; pages go on with ``$skiptoken``. Only the documented filter on
  ``preferredSingleSignOnMode`` (``eq``) is understood; another filter is refused (400
  ``Request_UnsupportedQuery``). In a list, every keyCredential's ``key`` is null: Graph returns the
  certificate only "on $select for a single object" (keyCredential resource type, property ``key``).
* ``GET {base}/v1.0/servicePrincipals/{id}?$select=keyCredentials``: the certificates, ``key`` included.
  An application's SAML token-signing certificate appears twice, a ``Sign`` (private key) and a
  ``Verify`` (certificate) credential with one ``customKeyIdentifier`` (the certificate's thumbprint);
  ``preferredTokenSigningKeyThumbprint`` names the one the application signs with.
* ``POST {base}/v1.0/servicePrincipals/{id}/addTokenSigningCertificate`` ``{"displayName": "CN=...",
  "endDateTime"?}``: a new self-signed certificate (default three years) added beside the others;
  answers the ``selfSignedCertificate`` (its public part). It is not used until
* ``PATCH {base}/v1.0/servicePrincipals/{id}`` ``{"preferredTokenSigningKeyThumbprint": "..."}``
  makes it the active one (204). That pair is how a renewal is done, here as in Entra ID.

Requests without a bearer token get 401 ``InvalidAuthenticationToken``. Calls are counted as
``graph.servicePrincipals.list``, ``.get``, ``.addTokenSigningCertificate``, ``.update``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState
from fleetsim.saml import CertificateSeed, EntraAppSeed, MadeCertificate, make_certificate

PREFIX = "/graph/"
_PATH = re.compile(
    r"^/graph/(?P<tenant>[^/]+)/v1\.0/servicePrincipals(?:/(?P<id>[0-9a-f-]{36}))?(?:/(?P<action>\w+))?/?$"
)
_SAML_FILTER = re.compile(r"^\s*preferredSingleSignOnMode\s+eq\s+'saml'\s*$")
DEFAULT_TOP = 100
MAX_TOP = 999
THREE_YEARS_DAYS = 3 * 365


def _guid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str) -> Response:
    body = {
        "error": {"code": code, "message": message, "innerError": {"date": _iso(dt.datetime.now(dt.UTC))}}
    }
    return Response(json.dumps(body), status, mimetype="application/json")


def _credentials(made: MadeCertificate, key_id: str) -> list[dict[str, Any]]:
    """The Sign and Verify keyCredentials of one token-signing certificate, as Graph lists them."""
    cert = made.cert
    thumbprint = base64.b64encode(bytes.fromhex(made.sha1)).decode()
    common = {
        "customKeyIdentifier": thumbprint,
        "displayName": cert.subject.rfc4514_string(),
        "endDateTime": _iso(cert.not_valid_after_utc),
        "startDateTime": _iso(cert.not_valid_before_utc),
        "type": "AsymmetricX509Cert",
    }
    return [
        {**common, "keyId": _guid(key_id, "sign"), "usage": "Sign", "key": None},
        {
            **common,
            "keyId": _guid(key_id, "verify"),
            "usage": "Verify",
            "key": base64.b64encode(made.der).decode(),
        },
    ]


class ServicePrincipal:
    """One enterprise application's service principal in a directory."""

    def __init__(self, tenant: str, name: str, mode: str | None) -> None:
        self.id = _guid(tenant, "sp", name)
        self.app_id = _guid(tenant, "app", name)
        self.display_name = name
        self.mode = mode
        self.key_credentials: list[dict[str, Any]] = []
        self.thumbprints: list[str] = []
        self.preferred: str | None = None

    def add(self, made: MadeCertificate) -> None:
        self.key_credentials.extend(_credentials(made, f"{self.id}|{made.sha1}"))
        self.thumbprints.append(made.sha1)

    def as_json(self, with_keys: bool) -> dict[str, Any]:
        creds = [c if with_keys else {**c, "key": None} for c in self.key_credentials]
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "servicePrincipalType": "Application",
            "accountEnabled": True,
            "preferredSingleSignOnMode": self.mode,
            "preferredTokenSigningKeyThumbprint": self.preferred,
            "keyCredentials": creds,
        }


class GraphSamlApi:
    """The Graph service-principal endpoints over each scenario tenant's directory."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.directories: dict[str, dict[str, ServicePrincipal]] = {}

    # -- seeding ----------------------------------------------------------------------------------
    def seed(self, tenant: str, apps: list[EntraAppSeed], now: dt.datetime) -> None:
        """Create the tenant's SAML applications (and one OIDC application the filter must leave out)."""
        directory = self.directories.setdefault(tenant, {})
        oidc = ServicePrincipal(tenant, f"{tenant} internal portal (OIDC)", "oidc")
        directory[oidc.id] = oidc
        for app in apps:
            sp = ServicePrincipal(tenant, app.name, "saml")
            for number, seed in enumerate(app.certificates, start=1):
                sp.add(make_certificate(seed, f"{tenant}-{app.name}-{number}", now))
            if sp.thumbprints:
                sp.preferred = sp.thumbprints[min(app.active, len(sp.thumbprints) - 1)]
            directory[sp.id] = sp

    # -- WSGI -------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if match is None:
            return _error(
                404, "Request_ResourceNotFound", f"Resource not found for the segment '{request.path}'."
            )
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        directory = self.directories.get(match["tenant"], {})
        sp_id, action = match["id"], match["action"]
        operation = {
            (None, None, "GET"): "list",
            ("id", None, "GET"): "get",
            ("id", None, "PATCH"): "update",
            ("id", "addTokenSigningCertificate", "POST"): "addTokenSigningCertificate",
        }.get(("id" if sp_id else None, action, request.method))
        with self.state.lock:
            self.state.calls[f"graph.servicePrincipals.{operation or 'unknown'}"] += 1
            if operation is None:
                return _error(405, "Request_BadRequest", f"{request.method} {request.path} is not supported.")
            if operation == "list":
                return self._list(request, match["tenant"], directory)
            sp = directory.get(sp_id or "")
            if sp is None:
                return _error(404, "Request_ResourceNotFound", f"Resource '{sp_id}' does not exist.")
            if operation == "get":
                return self._get(request, match["tenant"], sp)
            if operation == "update":
                return self._update(request, sp)
            return self._add_certificate(request, sp)

    def _list(self, request: Request, tenant: str, directory: dict[str, ServicePrincipal]) -> Response:
        wanted = request.args.get("$filter")
        if wanted is not None and not _SAML_FILTER.match(wanted):
            return _error(
                400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause: {wanted}"
            )
        try:
            top = int(request.args.get("$top", DEFAULT_TOP))
            start = int(request.args.get("$skiptoken", 0))
        except ValueError:
            return _error(400, "Request_BadRequest", "Invalid $top or $skiptoken.")
        if not 1 <= top <= MAX_TOP:
            return _error(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
            )
        rows = [sp for sp in directory.values() if wanted is None or sp.mode == "saml"]
        select = [s for s in request.args.get("$select", "").split(",") if s]
        page = [self._shape(sp.as_json(with_keys=False), select) for sp in rows[start : start + top]]
        body: dict[str, Any] = {
            "@odata.context": f"{request.host_url}graph/{tenant}/v1.0/$metadata#servicePrincipals",
            "value": page,
        }
        if start + top < len(rows):
            query = "&".join(f"{k}={quote(v)}" for k, v in request.args.items() if k != "$skiptoken")
            body["@odata.nextLink"] = f"{request.base_url}?{query}&$skiptoken={start + top}"
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _get(self, request: Request, tenant: str, sp: ServicePrincipal) -> Response:
        select = [s for s in request.args.get("$select", "").split(",") if s]
        body = self._shape(sp.as_json(with_keys=True), select)
        body["@odata.context"] = f"{request.host_url}graph/{tenant}/v1.0/$metadata#servicePrincipals/$entity"
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _update(self, request: Request, sp: ServicePrincipal) -> Response:
        body = json.loads(request.get_data() or b"{}")
        thumbprint = body.get("preferredTokenSigningKeyThumbprint")
        if thumbprint is not None:
            if str(thumbprint).upper() not in sp.thumbprints:
                return _error(
                    400, "Request_BadRequest", f"No key credential has the thumbprint {thumbprint}."
                )
            sp.preferred = str(thumbprint).upper()
        return Response(status=204)

    def _add_certificate(self, request: Request, sp: ServicePrincipal) -> Response:
        body = json.loads(request.get_data() or b"{}")
        name = str(body.get("displayName") or "")
        if not name.startswith("CN="):
            return _error(400, "Request_BadRequest", "displayName must start with 'CN='.")
        now = dt.datetime.now(dt.UTC)
        end = body.get("endDateTime")
        end_at = (
            dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
            if end
            else now + dt.timedelta(days=THREE_YEARS_DAYS)
        )
        if end_at > now + dt.timedelta(days=THREE_YEARS_DAYS + 1):
            return _error(
                400,
                "Request_BadRequest",
                "endDateTime can be up to three years after the certificate is created.",
            )
        seed = CertificateSeed(
            days_left=(end_at - now).total_seconds() / 86400,
            validity_days=THREE_YEARS_DAYS,
            common_name=name[3:],
        )
        made = make_certificate(seed, f"{sp.id}-{len(sp.thumbprints) + 1}", now)
        sp.add(made)
        verify = sp.key_credentials[-1]
        answer = {
            "customKeyIdentifier": verify["customKeyIdentifier"],
            "displayName": verify["displayName"],
            "endDateTime": verify["endDateTime"],
            "key": verify["key"],
            "keyId": verify["keyId"],
            "startDateTime": verify["startDateTime"],
            "thumbprint": made.sha1,
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }
        return Response(json.dumps(answer), 200, mimetype="application/json")

    @staticmethod
    def _shape(item: dict[str, Any], select: list[str]) -> dict[str, Any]:
        if not select:
            return item
        return {k: v for k, v in item.items() if k in select or k == "id"}
