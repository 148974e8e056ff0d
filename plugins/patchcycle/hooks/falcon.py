"""CrowdStrike Falcon, spoken to only here: device records (hosts), the sensor's kernel support table and
builds, sensor installers, host groups, prevention and sensor-update policies, alerts, and ML and IOA
exclusions (the sensor roll-out, issue 15).

Thin seams over FalconPy's service classes (``Hosts``, ``SensorUpdatePolicy``, ``SensorDownload``,
``HostGroup``, ``PreventionPolicy``, ``Alerts``, ``MLExclusions``, ``IOAExclusions``), sharing one OAuth2
login. Each method is one kind of call, batched and paged to the API's documented maximum (FalconPy
1.6.6's endpoint definitions, ``falconpy/_endpoint/_<service>.py``, unless a constant says otherwise).
Configured only by an Airflow connection, so the same code runs against fleetsim and against Falcon:

* ``host``: the API base URL with its scheme: ``https://api.crowdstrike.com`` (US-1),
  ``https://api.eu-1.crowdstrike.com``, ... or fleetsim's ``http://127.0.0.1:PORT``. A host without a
  scheme gets the connection's ``schema`` (default ``https``) and ``port``: FalconPy itself would
  silently prepend ``https://`` and lose a plain-http emulator;
* ``login`` / ``password``: the API client id and secret (scopes: Hosts read; Sensor update policies
  read, and write to assign or enable one; for the roll-out also Sensor download read, Host groups,
  Prevention policies, ML exclusions and IOA exclusions read and write, Alerts read);
* extra ``member_cid`` (optional): the child CID an MSSP parent client acts for;
* extra ``timeout`` (optional, seconds, default 30): per HTTP request.

FalconPy never raises on HTTP errors; it returns ``{"status_code", "headers", "body"}``. Every method
checks the status and raises :class:`FalconApiError` naming the call, the status, the base URL and the
API's own error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow.sdk.bases.hook import BaseHook
from falconpy import (
    Alerts,
    HostGroup,
    Hosts,
    IOAExclusions,
    MLExclusions,
    OAuth2,
    PreventionPolicy,
    SensorDownload,
    SensorUpdatePolicy,
)

log = logging.getLogger(__name__)

# Documented maxima per call (FalconPy 1.6.6's endpoint definitions of the Falcon API).
DEVICE_SCROLL_PAGE = 10000  # QueryDevicesByFilterScroll: limit 1-10000, no cap on the total
DEVICE_DETAILS_BATCH = 5000  # PostDeviceDetailsV2: up to 5000 ids per request
KERNELS_PAGE = 500  # queryCombinedSensorUpdateKernels: limit 1-500
# Kernel releases per queryCombinedSensorUpdateKernels filter (``release:['a','b',...]``): keeps the
# query string far below URL length limits (a release is ~30 characters).
KERNEL_RELEASES_PER_QUERY = 100
DEFAULT_TIMEOUT_SECONDS = 30.0

# The sensor roll-out's calls (issue 15).
# GetCombinedSensorInstallersByQuery: "default: 100, max: 500" (_sensor_download.py; FalconPy's method
# docstring says 1-5000, the endpoint definition and CrowdStrike's Ansible module sensor_download_info
# say 500).
INSTALLERS_PAGE = 500
# Sensor versions per installers filter (``version:['a','b',...]``), for the URL length as above.
INSTALLER_VERSIONS_PER_QUERY = 100
HOST_GROUPS_PAGE = 5000  # queryCombinedHostGroups: limit 1-5000 (_host_group.py)
GROUP_MEMBERS_PAGE = 5000  # queryGroupMembers: limit 1-5000 (_host_group.py)
# performGroupAction: hosts named per add-hosts/remove-hosts filter. The endpoint definition and
# CrowdStrike's API docs publish no maximum; CrowdStrike's PSFalcon ``Invoke-FalconHostGroupAction``
# "Adds or removes hosts from host groups in batches of 500" (its help text and wiki page,
# github.com/CrowdStrike/psfalcon/wiki/Invoke-FalconHostGroupAction), and fleetsim refuses more.
GROUP_ACTION_BATCH = 500
POLICIES_PAGE = 5000  # queryCombinedPreventionPolicies / queryCombinedSensorUpdatePoliciesV2: 1-5000
# Ids per getPreventionPolicies / getSensorUpdatePoliciesV2 / get(ML|IOA)ExclusionsV1 request: the
# definitions publish no maximum and the ids travel in the query string (``ids=<32 hex>&...``), so a
# batch stays far below URL length limits.
IDS_PER_GET = 100
# GetQueriesAlertsV2: limit 0-10000 (_alerts.py) and offset + limit within the first 10,000 results
# (beyond that the definition points to PostCombinedAlertsV1's ``after`` token); past the window the
# query is narrowed to alerts created no later than the oldest one seen.
ALERTS_PAGE = 10000
ALERTS_WINDOW = 10000
# PostEntitiesAlertsV2: composite ids per request. No maximum is published for it; 1,000 is the batch
# CrowdStrike's PSFalcon uses for the same composite ids on PatchEntitiesAlertsV3
# (``Invoke-FalconAlertAction``, Max = 1000), and what fleetsim enforces.
ALERT_DETAILS_BATCH = 1000
EXCLUSIONS_PAGE = 500  # queryMLExclusionsV1 / queryIOAExclusionsV1: limit 1-500 (_ml_exclusions.py ...)

PolicyKind = Literal["prevention", "sensor_update"]


class FalconApiError(RuntimeError):
    """A Falcon API call that did not succeed; the message names the call, status and API errors."""


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items``, each of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fql_string(value: str) -> str:
    """A value quoted for FQL (``'5.15.0-126-generic'``), with quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fql_list(values: Iterable[str]) -> str:
    """Values quoted for an FQL list (``['a','b']``)."""
    return "[" + ",".join(fql_string(v) for v in values) + "]"


def _and(fql_filter: str | None, term: str) -> str:
    """``term`` AND a caller's filter, which keeps its own OR (``,``) inside parentheses."""
    return f"({fql_filter})+{term}" if fql_filter else term


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
        """FalconPy ``SensorUpdatePolicy`` (kernel support table, builds, policies), on the shared login."""
        return SensorUpdatePolicy(auth_object=self.auth)

    @cached_property
    def sensor_download_api(self) -> SensorDownload:
        """FalconPy ``SensorDownload`` (sensor installers), on the shared login."""
        return SensorDownload(auth_object=self.auth)

    @cached_property
    def host_group_api(self) -> HostGroup:
        """FalconPy ``HostGroup`` (host groups and their members), on the shared login."""
        return HostGroup(auth_object=self.auth)

    @cached_property
    def prevention_api(self) -> PreventionPolicy:
        """FalconPy ``PreventionPolicy``, on the shared login."""
        return PreventionPolicy(auth_object=self.auth)

    @cached_property
    def alerts_api(self) -> Alerts:
        """FalconPy ``Alerts`` (the Alerts API v2), on the shared login."""
        return Alerts(auth_object=self.auth)

    @cached_property
    def ml_exclusions_api(self) -> MLExclusions:
        """FalconPy ``MLExclusions``, on the shared login."""
        return MLExclusions(auth_object=self.auth)

    @cached_property
    def ioa_exclusions_api(self) -> IOAExclusions:
        """FalconPy ``IOAExclusions``, on the shared login."""
        return IOAExclusions(auth_object=self.auth)

    def _ok(self, call: str, response: dict[str, Any], allowed: Iterable[int] = (200,)) -> dict[str, Any]:
        """The response body of a successful call; a :class:`FalconApiError` naming the call otherwise."""
        status = response.get("status_code")
        body = response.get("body")
        if status not in set(allowed) or not isinstance(body, dict):
            raise FalconApiError(
                f"Falcon {call} at {self.base_url} failed with HTTP {status}: {_api_errors(response)}"
            )
        return body

    def _offset_pages(
        self, call: str, query: Callable[..., dict[str, Any]], page: int, **params: Any
    ) -> list[Any]:
        """Every resource of an offset-paged query, ``page`` per call, until ``meta.pagination.total``."""
        rows: list[Any] = []
        offset = 0
        while True:
            body = self._ok(call, query(limit=page, offset=offset, **params))
            resources = body.get("resources") or []
            rows.extend(resources)
            offset += len(resources)
            total = int(((body.get("meta") or {}).get("pagination") or {}).get("total") or 0)
            if not resources or offset >= total:
                return rows

    def _by_ids(
        self, call: str, get: Callable[..., dict[str, Any]], ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The records of ``ids`` from a GET entities call, ``IDS_PER_GET`` per request; ids the API
        answers 404 for (every one of a batch unknown) are left out."""
        rows: list[dict[str, Any]] = []
        for batch in chunks(list(dict.fromkeys(ids)), IDS_PER_GET):
            response = get(ids=list(batch))
            if response.get("status_code") == 404 and _only_not_found(response):
                continue
            rows.extend(self._ok(f"{call}({len(batch)} ids)", response).get("resources") or [])
        return rows

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

    # -- sensor update builds and sensor installers ---------------------------------------------------
    def sensor_builds(self, platform: str, stage: str | Sequence[str] = "prod") -> list[dict[str, Any]]:
        """The sensor builds a sensor-update policy can pin on ``platform`` (``linux``, ``windows``,
        ``mac``, ``linuxarm64``, ``zlinux``) in ``stage`` (``prod`` by default; ``early_adopter`` ...):
        ``build`` (``16703``, or a tagged alias ``16703|n|tagged|1``), ``sensor_version`` (``7.14.16703``),
        ``stage``, ``platform``. One call (queryCombinedSensorUpdateBuilds: not paged,
        ``_sensor_update_policies.py``)."""
        stages = [stage] if isinstance(stage, str) else list(stage)
        response = self.sensor_update.query_combined_builds(platform=platform, stage=stages)
        body = self._ok(f"queryCombinedSensorUpdateBuilds(platform={platform!r})", response)
        return list(body.get("resources") or [])

    def sensor_installers(self, platform: str, versions: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The sensor installers Falcon offers for ``platform`` (``linux``, ``windows``, ``mac``), of the
        given sensor versions (``7.14.16703``; all without), newest first: ``sha256`` (what the download
        call takes), ``version``, ``os`` (``Ubuntu``, ``RHEL/CentOS/Oracle``, ...), ``os_version``,
        ``name`` (the package file name), ``platform``, ``release_date``, ``file_type``, ...

        GetCombinedSensorInstallersByQuery (``/sensors/combined/installers/v1``, ``_sensor_download.py``),
        filtered with FQL ``platform:'linux'+version:['a','b']`` (the definition's examples filter on
        ``platform`` and ``version``), paged by 500, up to ``INSTALLER_VERSIONS_PER_QUERY`` versions per
        query.
        """
        platform_term = f"platform:{fql_string(platform)}"
        wanted = None if versions is None else sorted({v for v in versions if v})
        if wanted == []:
            return []
        filters = (
            [platform_term]
            if wanted is None
            else [
                f"{platform_term}+version:{fql_list(batch)}"
                for batch in chunks(wanted, INSTALLER_VERSIONS_PER_QUERY)
            ]
        )
        by_sha256: dict[Any, dict[str, Any]] = {}
        for fql in filters:
            rows = self._offset_pages(
                f"GetCombinedSensorInstallersByQuery(filter={fql!r})",
                self.sensor_download_api.get_combined_sensor_installers_by_query,
                INSTALLERS_PAGE,
                filter=fql,
                sort="version|desc",
            )
            for row in rows:
                by_sha256.setdefault(row.get("sha256"), row)
        return sorted(by_sha256.values(), key=lambda row: _version_key(row.get("version")), reverse=True)

    def ccid(self) -> str:
        """The customer's CID with its checksum, as sensors are installed with it
        (GetSensorInstallersCCIDByQuery; what CrowdStrike's falcon-installer reads too)."""
        response = self.sensor_download_api.get_sensor_installer_ccid()
        body = self._ok("GetSensorInstallersCCIDByQuery", response)
        resources = body.get("resources") or []
        if not resources:
            raise FalconApiError(f"Falcon GetSensorInstallersCCIDByQuery at {self.base_url} returned no CID")
        return str(resources[0])

    def download_installer(self, sha256: str) -> bytes:
        """The sensor package whose SHA-256 is ``sha256`` (DownloadSensorInstallerByIdV2: the API answers the
        file's bytes), checked against that digest before it is handed on."""
        import hashlib

        response = self.sensor_download_api.download_sensor_installer_v2(id=sha256)
        data = response if isinstance(response, bytes) else None
        if data is None:
            status = response.get("status_code") if isinstance(response, dict) else None
            raise FalconApiError(
                f"Falcon DownloadSensorInstallerByIdV2(id={sha256[:12]}...) at {self.base_url} failed with "
                f"HTTP {status}: {_api_errors(response) if isinstance(response, dict) else 'no content'}"
            )
        if hashlib.sha256(data).hexdigest() != sha256:
            raise FalconApiError(f"Falcon installer {sha256[:12]}... downloaded with another SHA-256")
        return data

    # -- host groups ------------------------------------------------------------------------------------
    def host_group_by_name(self, name: str) -> dict[str, Any] | None:
        """The host group named exactly ``name`` (FQL matches names without regard to case; the name is
        compared exactly here), as Falcon returns it: ``id``, ``name``, ``group_type`` (static,
        staticByID, dynamic), ``description``, ``assignment_rule``, ...; None when there is none.
        queryCombinedHostGroups with ``name:'<name>'``, paged by 5,000."""
        groups = self._offset_pages(
            f"queryCombinedHostGroups(name={name!r})",
            self.host_group_api.query_combined_host_groups,
            HOST_GROUPS_PAGE,
            filter=f"name:{fql_string(name)}",
        )
        return next((g for g in groups if g.get("name") == name), None)

    def ensure_host_group(self, name: str, description: str = "") -> dict[str, Any]:
        """The host group named exactly ``name``: the existing one, whatever its type (a dynamic group
        picks its own hosts), or else a new ``static`` group created with ``description``
        (createHostGroups, body ``{"resources": [{name, group_type, description}]}``)."""
        existing = self.host_group_by_name(name)
        if existing is not None:
            return existing
        item = {"name": name, "group_type": "static", "description": description}
        response = self.host_group_api.create_host_groups(body={"resources": [item]})
        body = self._ok(f"createHostGroups(name={name!r})", response, allowed=(200, 201))
        created = body.get("resources") or []
        if not created:
            raise FalconApiError(
                f"Falcon createHostGroups(name={name!r}) at {self.base_url} returned no group"
            )
        log.info("Falcon: created static host group %r (%s)", name, created[0].get("id"))
        return created[0]

    def add_hosts_to_group(self, group_id: str, device_ids: Sequence[str]) -> None:
        """Add devices (AIDs) to a static host group: performGroupAction ``add-hosts`` with the filter
        ``device_id:['a','b',...]``, ``GROUP_ACTION_BATCH`` devices per action."""
        self._group_action("add-hosts", group_id, device_ids)

    def remove_hosts_from_group(self, group_id: str, device_ids: Sequence[str]) -> None:
        """Remove devices (AIDs) from a static host group: performGroupAction ``remove-hosts``, batched
        like :meth:`add_hosts_to_group`."""
        self._group_action("remove-hosts", group_id, device_ids)

    def _group_action(self, action: str, group_id: str, device_ids: Sequence[str]) -> None:
        for batch in chunks(list(dict.fromkeys(device_ids)), GROUP_ACTION_BATCH):
            body = {
                "ids": [group_id],
                "action_parameters": [{"name": "filter", "value": f"device_id:{fql_list(batch)}"}],
            }
            response = self.host_group_api.perform_group_action(action_name=action, body=body)
            self._ok(f"performGroupAction({action}, group {group_id!r}, {len(batch)} devices)", response)

    def host_group_members(self, group_id: str) -> list[str]:
        """The device ids (AIDs) in a host group: queryGroupMembers, paged by 5,000."""
        members = self._offset_pages(
            f"queryGroupMembers(id={group_id!r})",
            self.host_group_api.query_group_members,
            GROUP_MEMBERS_PAGE,
            id=group_id,
        )
        return list(dict.fromkeys(members))

    # -- prevention and sensor-update policies ----------------------------------------------------------
    def _policy_api(self, kind: PolicyKind) -> tuple[Any, str, str]:
        """The service class of a policy kind and the operation names of its combined query and get."""
        if kind == "prevention":
            return self.prevention_api, "queryCombinedPreventionPolicies", "getPreventionPolicies"
        if kind == "sensor_update":
            return self.sensor_update, "queryCombinedSensorUpdatePoliciesV2", "getSensorUpdatePoliciesV2"
        raise ValueError(f"policy kind {kind!r}: one of 'prevention', 'sensor_update'")

    def policy_by_name(
        self, kind: PolicyKind, name: str, platform: str | None = None
    ) -> dict[str, Any] | None:
        """The prevention or sensor-update policy named exactly ``name`` (on ``platform``: ``Linux``,
        ``Windows``, ``Mac``, when given), as Falcon returns it: ``id``, ``name``, ``platform_name``,
        ``enabled``, ``groups`` (host group records), and ``prevention_settings`` (prevention:
        ``[{name: category, settings: [{id, type, value}]}]``) or ``settings`` (sensor update:
        ``{build, sensor_version, uninstall_protection, ...}``); None when there is none.
        queryCombinedPreventionPolicies / queryCombinedSensorUpdatePoliciesV2, paged by 5,000."""
        api, query_call, _ = self._policy_api(kind)
        query = api.query_combined_policies if kind == "prevention" else api.query_combined_policies_v2
        fql = f"name:{fql_string(name)}"
        if platform:
            fql += f"+platform_name:{fql_string(platform)}"
        policies = self._offset_pages(f"{query_call}(filter={fql!r})", query, POLICIES_PAGE, filter=fql)
        return next((p for p in policies if p.get("name") == name), None)

    def policies(self, kind: PolicyKind, platform: str) -> list[dict[str, Any]]:
        """Every prevention or sensor-update policy of ``platform`` (``Linux``, ``Windows``, ``Mac``), highest
        precedence first (``sort=precedence.asc``, one of the sort values the definitions enumerate; the
        records carry no precedence of their own), the records :meth:`policy_by_name` describes.
        queryCombinedPreventionPolicies / queryCombinedSensorUpdatePoliciesV2, paged by 5,000."""
        api, query_call, _ = self._policy_api(kind)
        query = api.query_combined_policies if kind == "prevention" else api.query_combined_policies_v2
        fql = f"platform_name:{fql_string(platform)}"
        return self._offset_pages(
            f"{query_call}(filter={fql!r})", query, POLICIES_PAGE, filter=fql, sort="precedence.asc"
        )

    def policies_by_id(self, kind: PolicyKind, policy_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The prevention or sensor-update policies of the given ids (the records :meth:`policy_by_name`
        describes); ids Falcon does not know are left out. getPreventionPolicies /
        getSensorUpdatePoliciesV2, ``IDS_PER_GET`` ids per call."""
        api, _, get_call = self._policy_api(kind)
        get = api.get_policies if kind == "prevention" else api.get_policies_v2
        return self._by_ids(get_call, get, policy_ids)

    def create_prevention_policy(
        self,
        name: str,
        platform: str,
        settings: Sequence[Mapping[str, Any]],
        description: str = "",
    ) -> dict[str, Any]:
        """A new prevention policy on ``platform`` (``Linux``, ``Windows``, ``Mac``) with ``settings`` in
        the API's input shape ``[{"id": "CloudAntiMalware", "value": {"detection": ..., "prevention":
        ...}}, {"id": ..., "value": {"enabled": true}}]`` (other keys of a setting, such as ``type``, are
        not sent). Falcon creates it disabled; the created policy is returned (createPreventionPolicies)."""
        item = {
            "name": name,
            "platform_name": platform,
            "description": description,
            "settings": _setting_values(settings),
        }
        response = self.prevention_api.create_policies(body={"resources": [item]})
        body = self._ok(f"createPreventionPolicies(name={name!r})", response, allowed=(200, 201))
        created = body.get("resources") or []
        if not created:
            raise FalconApiError(
                f"Falcon createPreventionPolicies(name={name!r}) at {self.base_url} returned no policy"
            )
        log.info("Falcon: created prevention policy %r (%s)", name, created[0].get("id"))
        return created[0]

    def update_prevention_settings(
        self, policy_id: str, settings: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Set prevention settings (the ``[{id, value}]`` shape of :meth:`create_prevention_policy`) on a
        policy; settings not named keep their values. The updated policy (updatePreventionPolicies)."""
        item = {"id": policy_id, "settings": _setting_values(settings)}
        response = self.prevention_api.update_policies(body={"resources": [item]})
        return self._one(f"updatePreventionPolicies(id={policy_id!r})", response)

    def add_host_group_to_policy(self, kind: PolicyKind, policy_id: str, group_id: str) -> dict[str, Any]:
        """Assign a host group to a prevention or sensor-update policy (perform(Prevention|SensorUpdate)
        PoliciesAction ``add-host-group``, body ``{"ids": [policy], "action_parameters": [{"name":
        "group_id", "value": group}]}``). The policy as the action returns it."""
        body = {"ids": [policy_id], "action_parameters": [{"name": "group_id", "value": group_id}]}
        return self._policy_action(kind, "add-host-group", policy_id, body)

    def enable_policy(self, kind: PolicyKind, policy_id: str) -> dict[str, Any]:
        """Enable a prevention or sensor-update policy (perform...PoliciesAction ``enable``); the policy."""
        return self._policy_action(kind, "enable", policy_id, {"ids": [policy_id]})

    def set_policies_precedence(self, kind: PolicyKind, platform: str, policy_ids: Sequence[str]) -> None:
        """Order the policies of ``platform`` (``Linux``, ``Windows``, ``Mac``): "The first ID specified
        will have the highest precedence and the last ID specified will have the lowest. You must specify
        all non-Default Policies for a platform when updating precedence" (setPreventionPoliciesPrecedence
        / setSensorUpdatePoliciesPrecedence, body ``{"ids", "platform_name"}``)."""
        api, _, _ = self._policy_api(kind)
        name = (
            "setPreventionPoliciesPrecedence" if kind == "prevention" else "setSensorUpdatePoliciesPrecedence"
        )
        response = api.set_policies_precedence(body={"ids": list(policy_ids), "platform_name": platform})
        self._ok(f"{name}(platform_name={platform!r}, {len(policy_ids)} ids)", response)

    def _policy_action(
        self, kind: PolicyKind, action: str, policy_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        api, _, _ = self._policy_api(kind)
        name = (
            "performPreventionPoliciesAction" if kind == "prevention" else "performSensorUpdatePoliciesAction"
        )
        response = api.perform_policies_action(action_name=action, body=body)
        return self._one(f"{name}({action}, policy {policy_id!r})", response)

    def _one(self, call: str, response: dict[str, Any]) -> dict[str, Any]:
        """The one record a write on a single entity answers with."""
        resources = self._ok(call, response).get("resources") or []
        if not resources:
            raise FalconApiError(f"Falcon {call} at {self.base_url} returned no record")
        return resources[0]

    # -- alerts -----------------------------------------------------------------------------------------
    def alerts(self, fql_filter: str | None = None) -> list[dict[str, Any]]:
        """Every alert matching an FQL filter (e.g. ``product:'epp'+device.device_id:['a','b']
        +created_timestamp:>='2025-05-18T00:00:00Z'``), newest first, as the Alerts API v2 returns it:
        ``composite_id``, ``device`` (``device_id``, ``hostname``, ...), ``created_timestamp``,
        ``filename``, ``filepath``, ``cmdline``, ``tactic``, ``technique``, ``pattern_id``,
        ``pattern_disposition``, ``severity``, ...

        GetQueriesAlertsV2 (composite ids, sorted ``created_timestamp|desc``) pages within its 10,000
        result window; when more match, the query goes on with alerts created no later than the oldest one
        seen, until the window holds the rest. PostEntitiesAlertsV2 then reads them, up to 1,000 ids per
        call. Raises :class:`FalconApiError` when a whole window of alerts shares one timestamp.
        """
        found: dict[str, dict[str, Any]] = {}
        fql = fql_filter
        while True:
            ids, total = self._alert_ids(fql)
            new = [i for i in ids if i not in found]
            for alert in self._alert_details(new):
                found[alert["composite_id"]] = alert
            if len(ids) >= total:
                break
            stamps = [found[i].get("created_timestamp") for i in ids if i in found]
            oldest = min((s for s in stamps if s), default=None)
            if not new or oldest is None:
                raise FalconApiError(
                    f"Falcon GetQueriesAlertsV2(filter={fql!r}) at {self.base_url}: {total} alerts match and "
                    f"its whole {ALERTS_WINDOW}-result window is alerts created at {oldest}, so narrowing by "
                    "time cannot reach the rest; narrow the filter"
                )
            fql = _and(fql_filter, f"created_timestamp:<={fql_string(oldest)}")
        return sorted(found.values(), key=lambda a: str(a.get("created_timestamp") or ""), reverse=True)

    def _alert_ids(self, fql_filter: str | None) -> tuple[list[str], int]:
        """The composite ids within the query's result window, newest first, and how many match."""
        ids: list[str] = []
        offset, total = 0, 0
        while offset < ALERTS_WINDOW:
            params: dict[str, Any] = {
                "limit": min(ALERTS_PAGE, ALERTS_WINDOW - offset),
                "offset": offset,
                "sort": "created_timestamp|desc",
            }
            if fql_filter:
                params["filter"] = fql_filter
            response = self.alerts_api.query_alerts_v2(**params)
            body = self._ok(f"GetQueriesAlertsV2(filter={fql_filter!r}, offset={offset})", response)
            page = body.get("resources") or []
            ids.extend(page)
            offset += len(page)
            total = int(((body.get("meta") or {}).get("pagination") or {}).get("total") or 0)
            if not page or offset >= total:
                break
        return list(dict.fromkeys(ids)), total

    def _alert_details(self, composite_ids: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for batch in chunks(list(composite_ids), ALERT_DETAILS_BATCH):
            response = self.alerts_api.get_alerts_v2(composite_ids=list(batch))
            rows.extend(self._ok(f"PostEntitiesAlertsV2({len(batch)} ids)", response).get("resources") or [])
        return rows

    # -- ML and IOA exclusions --------------------------------------------------------------------------
    def ml_exclusions(self, fql_filter: str | None = None) -> list[dict[str, Any]]:
        """Every machine-learning exclusion matching an FQL filter (all without; fields ``value``,
        ``applied_globally``, ``created_by``, ...), as Falcon returns it: ``id``, ``value``,
        ``excluded_from``, ``groups`` (host group records), ``applied_globally``, ``created_by``, ...
        queryMLExclusionsV1 (limit 1-500, ``_ml_exclusions.py``), then getMLExclusionsV1."""
        params = {"filter": fql_filter} if fql_filter else {}
        ids = self._offset_pages(
            f"queryMLExclusionsV1(filter={fql_filter!r})",
            self.ml_exclusions_api.query_exclusions,
            EXCLUSIONS_PAGE,
            **params,
        )
        return self._by_ids("getMLExclusionsV1", self.ml_exclusions_api.get_exclusions, ids)

    def ioa_exclusions(self, fql_filter: str | None = None) -> list[dict[str, Any]]:
        """Every IOA exclusion matching an FQL filter (all without; fields ``name``, ``pattern_id``,
        ``pattern_name``, ...), as Falcon returns it: ``id``, ``name``, ``description``, ``pattern_id``,
        ``pattern_name``, ``ifn_regex``, ``cl_regex``, ``groups``, ``applied_globally``, ...
        queryIOAExclusionsV1 (limit 1-500, ``_ioa_exclusions.py``), then getIOAExclusionsV1."""
        params = {"filter": fql_filter} if fql_filter else {}
        ids = self._offset_pages(
            f"queryIOAExclusionsV1(filter={fql_filter!r})",
            self.ioa_exclusions_api.query_exclusions,
            EXCLUSIONS_PAGE,
            **params,
        )
        return self._by_ids("getIOAExclusionsV1", self.ioa_exclusions_api.get_exclusions, ids)

    def create_ml_exclusion(
        self,
        value: str,
        groups: Sequence[str],
        comment: str,
        excluded_from: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A new machine-learning exclusion of ``value`` (a file path or glob) on the host groups ``groups``
        (ids), ``comment`` saying why (createMLExclusionsV1, body ``{value, groups, comment[,
        excluded_from]}`` as FalconPy's ``MLExclusions.create_exclusions`` documents it). The created
        exclusion. ``groups`` must name at least one group: FalconPy would turn an empty list into
        ``["all"]`` (every host; its issue 1233)."""
        body: dict[str, Any] = {"value": value, "groups": _exclusion_groups(groups), "comment": comment}
        if excluded_from is not None:
            body["excluded_from"] = list(excluded_from)
        response = self.ml_exclusions_api.create_exclusions(body=body)
        created = self._ok("createMLExclusionsV1", response, allowed=(200, 201)).get("resources") or []
        if not created:
            raise FalconApiError(f"Falcon createMLExclusionsV1 at {self.base_url} returned no exclusion")
        log.info("Falcon: created ML exclusion %s of %r", created[0].get("id"), value)
        return created[0]

    def create_ioa_exclusion(
        self,
        *,
        name: str,
        pattern_id: str,
        pattern_name: str,
        cl_regex: str,
        ifn_regex: str,
        groups: Sequence[str],
        comment: str,
        description: str = "",
    ) -> dict[str, Any]:
        """A new IOA exclusion of the behavioural pattern ``pattern_id`` for images matching ``ifn_regex``
        run with command lines matching ``cl_regex``, on the host groups ``groups`` (ids), ``comment``
        saying why (createIOAExclusionsV1, body ``{name, description, pattern_id, pattern_name, ifn_regex,
        cl_regex, groups, comment}`` as FalconPy's ``IOAExclusions.create_exclusions`` documents it). The
        created exclusion. ``groups`` must name at least one group."""
        body = {
            "name": name,
            "description": description,
            "pattern_id": str(pattern_id),
            "pattern_name": pattern_name,
            "ifn_regex": ifn_regex,
            "cl_regex": cl_regex,
            "groups": _exclusion_groups(groups),
            "comment": comment,
        }
        response = self.ioa_exclusions_api.create_exclusions(body=body)
        created = self._ok(f"createIOAExclusionsV1(name={name!r})", response, allowed=(200, 201))
        resources = created.get("resources") or []
        if not resources:
            raise FalconApiError(
                f"Falcon createIOAExclusionsV1(name={name!r}) at {self.base_url} returned no exclusion"
            )
        log.info("Falcon: created IOA exclusion %s %r (pattern %s)", resources[0].get("id"), name, pattern_id)
        return resources[0]


def _version_key(version: Any) -> tuple[int, ...]:
    """A sensor version (``7.14.16703``) as numbers, so 7.9 sorts before 7.14."""
    return tuple(int(part) if part.isdigit() else -1 for part in str(version or "").split("."))


def _setting_values(settings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Prevention settings in the API's input shape ``[{"id", "value"}]``."""
    values = []
    for setting in settings:
        if not isinstance(setting, Mapping) or "id" not in setting or "value" not in setting:
            raise ValueError(f'prevention setting {setting!r}: expected {{"id": ..., "value": ...}}')
        values.append({"id": setting["id"], "value": setting["value"]})
    return values


def _exclusion_groups(groups: Sequence[str]) -> list[str]:
    if isinstance(groups, str) or not groups or not all(isinstance(g, str) and g for g in groups):
        raise ValueError(f"groups {groups!r}: an exclusion names the host group ids it applies to")
    return list(groups)
