"""CrowdStrike Falcon, spoken to only here: device records (hosts) and the sensor's kernel support table.

Thin seams over FalconPy's service classes ``Hosts`` and ``SensorUpdatePolicy``, sharing one OAuth2
login. Each method is one kind of call, batched and paged to the API's documented maximum. Configured
only by an Airflow connection, so the same code runs against fleetsim and against Falcon:

* ``host``: the API base URL with its scheme: ``https://api.crowdstrike.com`` (US-1),
  ``https://api.eu-1.crowdstrike.com``, ... or fleetsim's ``http://127.0.0.1:PORT``. A host without a
  scheme gets the connection's ``schema`` (default ``https``) and ``port``: FalconPy itself would
  silently prepend ``https://`` and lose a plain-http emulator;
* ``login`` / ``password``: the API client id and secret (scopes: Hosts read, Sensor update policies read);
* extra ``member_cid`` (optional): the child CID an MSSP parent client acts for;
* extra ``timeout`` (optional, seconds, default 30): per HTTP request.

FalconPy never raises on HTTP errors; it returns ``{"status_code", "headers", "body"}``. Every method
checks the status and raises :class:`FalconApiError` naming the call, the status, the base URL and the
API's own error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.bases.hook import BaseHook
from falconpy import Hosts, OAuth2, SensorUpdatePolicy

log = logging.getLogger(__name__)

# Documented maxima per call (FalconPy 1.6.6's endpoint definitions of the Falcon API).
DEVICE_SCROLL_PAGE = 10000  # QueryDevicesByFilterScroll: limit 1-10000, no cap on the total
DEVICE_DETAILS_BATCH = 5000  # PostDeviceDetailsV2: up to 5000 ids per request
KERNELS_PAGE = 500  # queryCombinedSensorUpdateKernels: limit 1-500
# Kernel releases per queryCombinedSensorUpdateKernels filter (``release:['a','b',...]``): keeps the
# query string far below URL length limits (a release is ~30 characters).
KERNEL_RELEASES_PER_QUERY = 100
DEFAULT_TIMEOUT_SECONDS = 30.0


class FalconApiError(RuntimeError):
    """A Falcon API call that did not succeed; the message names the call, status and API errors."""


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items``, each of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fql_string(value: str) -> str:
    """A value quoted for FQL (``'5.15.0-126-generic'``), with quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _api_errors(response: dict[str, Any]) -> str:
    body = response.get("body")
    errors = body.get("errors") if isinstance(body, dict) else None
    messages = [
        f"{e.get('code', '')} {e.get('message', '')}".strip() if isinstance(e, dict) else str(e)
        for e in errors or []
    ]
    return "; ".join(m for m in messages if m) or "no error message in the response"


def _only_not_found(response: dict[str, Any]) -> bool:
    """Whether a 404 answer says only that the requested devices do not exist (not a wrong URL)."""
    body = response.get("body")
    errors = body.get("errors") if isinstance(body, dict) else None
    return bool(errors) and all(isinstance(e, dict) and e.get("code") == 404 and e.get("id") for e in errors)


class FalconHook(BaseHook):
    """The Falcon API of one customer (CID), through the Airflow connection ``falcon_conn_id``."""

    conn_name_attr = "falcon_conn_id"
    default_conn_name = "falcon_default"
    conn_type = "http"
    hook_name = "CrowdStrike Falcon"

    def __init__(self, falcon_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.falcon_conn_id = falcon_conn_id

    # -- connection and login -----------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Base URL, client id and secret, member CID and timeout, read from the connection."""
        conn = self.get_connection(self.falcon_conn_id)
        name = self.falcon_conn_id
        if conn.conn_type not in ("http", "generic", None, ""):
            raise ValueError(
                f"connection {name!r}: conn_type {conn.conn_type!r}; expected 'http' or 'generic'"
            )
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ValueError(
                f"connection {name!r} has no host; set it to the Falcon API base URL, "
                "e.g. https://api.crowdstrike.com (or fleetsim's http://127.0.0.1:PORT)"
            )
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"connection {name!r}: host {conn.host!r} is not an http(s) base URL")
        if conn.port and parts.port is None:
            host = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
        if not conn.login or not conn.password:
            raise ValueError(f"connection {name!r} needs the API client id (login) and secret (password)")
        extra = conn.extra_dejson
        raw_timeout = extra.get("timeout", DEFAULT_TIMEOUT_SECONDS)
        try:
            timeout = float(raw_timeout)
        except (TypeError, ValueError):
            raise ValueError(f"connection {name!r}: extra timeout {raw_timeout!r} is not a number") from None
        if timeout <= 0:
            raise ValueError(f"connection {name!r}: extra timeout {timeout} must be positive")
        return {
            "base_url": host,
            "client_id": conn.login,
            "client_secret": conn.password,
            "member_cid": (str(extra.get("member_cid") or "").strip() or None),
            "timeout": timeout,
        }

    @property
    def base_url(self) -> str:
        """The API base URL configured in the connection, with its scheme and no trailing slash."""
        return self.settings["base_url"]

    @cached_property
    def auth(self) -> OAuth2:
        """One OAuth2 login the service classes share (FalconPy renews the token before it expires)."""
        s = self.settings
        auth = OAuth2(
            client_id=s["client_id"],
            client_secret=s["client_secret"],
            member_cid=s["member_cid"],
            base_url=s["base_url"],
            timeout=s["timeout"],
        )
        response = auth.login()
        if auth.token_status != 201:
            raise FalconApiError(
                f"Falcon login (POST /oauth2/token) for client id {s['client_id']!r} at {s['base_url']} "
                f"failed with HTTP {response.get('status_code')}: {_api_errors(response)}"
            )
        self._check_base_url(auth)
        return auth

    def _check_base_url(self, auth: OAuth2) -> None:
        """FalconPy follows the token response's ``X-Cs-Region`` to another cloud region's URL. Accept
        that only between CrowdStrike's own clouds; anything else would leave the configured endpoint."""
        configured, now = self.base_url, str(auth.base_url).rstrip("/")
        if now == configured:
            return
        configured_host = urlsplit(configured).hostname or ""
        if configured_host == "crowdstrike.com" or configured_host.endswith(".crowdstrike.com"):
            log.warning("Falcon: the token's region moved the API base URL from %s to %s", configured, now)
            return
        raise FalconApiError(
            f"Falcon login at {configured} switched the API base URL to {now} (X-Cs-Region in the token "
            f"response); refusing to leave the configured endpoint of connection {self.falcon_conn_id!r}"
        )

    @cached_property
    def hosts(self) -> Hosts:
        """FalconPy ``Hosts`` (device queries and details), on the shared login."""
        return Hosts(auth_object=self.auth)

    @cached_property
    def sensor_update(self) -> SensorUpdatePolicy:
        """FalconPy ``SensorUpdatePolicy`` (the kernel support table), on the shared login."""
        return SensorUpdatePolicy(auth_object=self.auth)

    def _ok(self, call: str, response: dict[str, Any], allowed: Iterable[int] = (200,)) -> dict[str, Any]:
        """The response body of a successful call; a :class:`FalconApiError` naming the call otherwise."""
        status = response.get("status_code")
        body = response.get("body")
        if status not in set(allowed) or not isinstance(body, dict):
            raise FalconApiError(
                f"Falcon {call} at {self.base_url} failed with HTTP {status}: {_api_errors(response)}"
            )
        return body

    # -- hosts ----------------------------------------------------------------------------------------
    def device_ids(self, fql_filter: str | None = None) -> list[str]:
        """Every device id (AID) matching an FQL filter (all devices without one), through the scroll
        query, which has no 10,000-result cap."""
        ids: list[str] = []
        offset: str | None = None
        while True:
            params: dict[str, Any] = {"limit": DEVICE_SCROLL_PAGE}
            if fql_filter:
                params["filter"] = fql_filter
            if offset:
                params["offset"] = offset
            call = f"QueryDevicesByFilterScroll(filter={fql_filter!r})"
            body = self._ok(call, self.hosts.query_devices_by_filter_scroll(**params))
            page = body.get("resources") or []
            ids.extend(page)
            pagination = (body.get("meta") or {}).get("pagination") or {}
            offset = pagination.get("offset")
            if not page or not offset or len(ids) >= int(pagination.get("total") or 0):
                break
        return list(dict.fromkeys(ids))

    def device_details(self, device_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The device records of the given ids, up to 5,000 ids per call. Ids Falcon no longer knows
        (a device removed meanwhile) are left out."""
        rows: list[dict[str, Any]] = []
        for batch in chunks(list(dict.fromkeys(device_ids)), DEVICE_DETAILS_BATCH):
            response = self.hosts.get_device_details(ids=list(batch))
            if response.get("status_code") == 404 and _only_not_found(response):
                continue  # none of the batch exists any more
            body = self._ok(f"GetDeviceDetails({len(batch)} ids)", response)
            rows.extend(body.get("resources") or [])
        return rows

    def devices(self, fql_filter: str | None = None) -> list[dict[str, Any]]:
        """Every device record matching an FQL filter (e.g. ``platform_name:'Linux'``), as Falcon returns
        it: ``device_id``, ``cid``, ``hostname``, ``platform_name``, ``kernel_version``, ``agent_version``,
        ``reduced_functionality_mode`` ("yes"/"no"), ``last_seen``, ``local_ip``, ``instance_id``,
        ``service_provider``, ``service_provider_account_id``, ``device_policies``, ..."""
        return self.device_details(self.device_ids(fql_filter))

    # -- sensor update policies: the kernel support table ---------------------------------------------
    def kernel_support(
        self, releases: Iterable[str], architecture: str = "x86_64"
    ) -> dict[str, dict[str, Any]]:
        """Falcon's support record of each kernel release it knows, by release; a release missing from
        the answer is one Falcon does not know (no sensor version supports it yet).

        One query per up to ``KERNEL_RELEASES_PER_QUERY`` releases (``release:['a','b']``), paged by 500.
        """
        wanted = sorted({r for r in releases if r})
        support: dict[str, dict[str, Any]] = {}
        for batch in chunks(wanted, KERNEL_RELEASES_PER_QUERY):
            fql = (
                f"release:[{','.join(fql_string(r) for r in batch)}]+architecture:{fql_string(architecture)}"
            )
            offset = 0
            while True:
                response = self.sensor_update.query_combined_kernels(
                    filter=fql, limit=KERNELS_PAGE, offset=offset
                )
                body = self._ok(f"queryCombinedSensorUpdateKernels({len(batch)} releases)", response)
                page = body.get("resources") or []
                for record in page:
                    support.setdefault(record.get("release"), record)
                offset += len(page)
                total = int(((body.get("meta") or {}).get("pagination") or {}).get("total") or 0)
                if not page or offset >= total:
                    break
        return {release: support[release] for release in wanted if release in support}
