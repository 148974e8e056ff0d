"""What an Azure connection says, read once for every hook that speaks to Azure (Arc and Resource Graph
through ARM, Entra ID through Microsoft Graph): the service's base URL, the retry budget, and how to
authenticate. No Azure SDK is imported here, so a task that only reads Graph does not load ARM's clients.

Authentication, in order: ``static_token`` (a bearer token for a local emulator only, refused for any
host that is not loopback), a client id (``login``) with its secret (``password``) and extra
``tenantId`` (azure-identity's ``ClientSecretCredential``), else ``DefaultAzureCredential`` (managed
identity, workload identity, environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

DEFAULT_RETRY_TOTAL = 4
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class AzureConnection:
    """One Azure connection as the hooks use it; see :func:`read_azure_connection`."""

    conn_id: str
    url: str
    retry_total: int
    static_token: str | None
    login: str | None
    password: str | None
    tenant_id: str | None

    def credential(self) -> Any:
        """The azure-identity credential of a connection without a static token: the client secret's
        when the connection names a client, else the default chain. ``ValueError`` naming the connection
        when a client id comes without its secret or directory."""
        if self.login:
            if not self.tenant_id or not self.password:
                raise ValueError(
                    f"connection {self.conn_id!r}: a client id (login) needs the client secret "
                    "(password) and extra tenantId"
                )
            from azure.identity import ClientSecretCredential

            return ClientSecretCredential(self.tenant_id, self.login, self.password)
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()


def read_azure_connection(conn: Any, conn_id: str, url_field: str, default_url: str) -> AzureConnection:
    """Read Airflow connection ``conn`` (named ``conn_id``): its base URL from extra ``url_field`` (else
    ``default_url``), ``retry_total``, and its credentials. Each bad value is a ``ValueError`` naming the
    connection, the field and the value."""
    extra = conn.extra_dejson
    url = str(extra.get(url_field) or default_url).rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"connection {conn_id!r}: {url_field} {url!r} is not an http(s) URL")
    try:
        retry_total = int(extra.get("retry_total", DEFAULT_RETRY_TOTAL))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"connection {conn_id!r}: retry_total must be an integer, got {extra.get('retry_total')!r}"
        ) from exc
    static_token = extra.get("static_token")
    if static_token and parsed.hostname not in LOOPBACK_HOSTS:
        raise ValueError(
            f"connection {conn_id!r}: static_token is for a local emulator only, "
            f"refused for {url_field} {url!r}"
        )
    return AzureConnection(
        conn_id=conn_id,
        url=url,
        retry_total=retry_total,
        static_token=str(static_token) if static_token else None,
        login=conn.login or None,
        password=conn.password or None,
        tenant_id=extra.get("tenantId") or extra.get("tenant_id"),
    )
