"""What the Google Cloud hooks share: one Airflow connection -> credentials and client options for
Google's REST clients, errors that name the project and the ask, and messages as plain dicts.

Connection (conn_type ``google_cloud_platform``, the Google provider's own):

- Google Cloud: the provider's credential handling (:class:`GoogleBaseHook`): extra ``key_path`` or
  ``keyfile_dict`` (a service-account key), ``credential_config_file`` (workload identity federation),
  ``impersonation_chain`` via the hook, or none of them -> Application Default Credentials (the metadata
  server, ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud). Extra ``api_endpoint`` optionally overrides the
  service endpoint (a Private Service Connect endpoint, say).
- fleetsim: extra ``{"api_endpoint": "http://127.0.0.1:PORT", "anonymous": true}`` ->
  ``AnonymousCredentials`` (no Authorization header at all) and that endpoint; the REST transport honours
  the ``http`` scheme. Anonymous credentials are refused for any endpoint that is not loopback, so a real
  Google endpoint is never called without credentials.

Every client uses ``transport="rest"`` (the same in production and against fleetsim; research §2.5) and
every call a bounded timeout. Google's client libraries load only when a client is first used (they
cost seconds to import); operators import these hook modules inside ``execute``, never at DAG parse.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
from google.api_core.exceptions import GoogleAPIError
from google.auth.exceptions import GoogleAuthError
from requests import RequestException

CALL_TIMEOUT_SECONDS = 60.0  # per HTTP request (each page of a list is one request)
# What a Google REST call raises when it fails: Google's answer, the HTTP transport, or the credentials.
CALL_ERRORS = (GoogleAPIError, RequestException, GoogleAuthError)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class GcpError(RuntimeError):
    """A Google Cloud call that failed; the message names the project and what was asked."""


class GcpNotFound(GcpError):
    """The resource asked for does not exist (Google answered 404)."""


class GcpConflict(GcpError):
    """The resource to create exists already (Google answered 409)."""


def message_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as the REST API writes it: camelCase keys, enums by name, int64 as strings,
    fields at their default value left out (``json_format.MessageToDict``)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(type(message).pb(message))


class GoogleRestHook(GoogleBaseHook):
    """Credentials and client options for Google's REST clients, from one Airflow connection."""

    def __init__(self, gcp_conn_id: str, project_id: str, **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
        if not project_id:
            raise ValueError(f"connection {gcp_conn_id!r}: a Google Cloud project id is required")
        # Not ``project_id``: GoogleBaseHook has a read-only property of that name (the connection's).
        self.project = project_id

    def client_kwargs(self) -> dict[str, Any]:
        """``credentials``, ``client_options`` and ``transport`` for a Google REST client."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        endpoint = self._get_field("api_endpoint")
        anonymous = str(self._get_field("anonymous", False)).lower() in ("true", "1", "yes")
        if anonymous:
            host = urlparse(endpoint or "").hostname
            if host not in LOOPBACK_HOSTS:
                raise ValueError(
                    f"connection {self.gcp_conn_id!r}: anonymous credentials are for a loopback emulator "
                    f"only, not api_endpoint {endpoint!r}"
                )
            credentials: Any = AnonymousCredentials()
        else:
            credentials = self.get_credentials()
        options = ClientOptions(api_endpoint=endpoint) if endpoint else self.get_client_options()
        return {"credentials": credentials, "client_options": options, "transport": "rest"}

    def failed(self, what: str, exc: Exception) -> GcpError:
        """The error to raise for a failed call: names the project, the ask and Google's answer."""
        from google.api_core import exceptions

        kind = GcpError
        if isinstance(exc, exceptions.NotFound):
            kind = GcpNotFound
        elif isinstance(exc, exceptions.Conflict):
            kind = GcpConflict
        return kind(f"{what} in project {self.project} (connection {self.gcp_conn_id!r}) failed: {exc}")
