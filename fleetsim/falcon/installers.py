"""The Falcon Sensor Download API: the catalog of sensor installers, their download, and the CCID.

Served paths, as FalconPy 1.6.6 calls them (``falconpy/_endpoint/_sensor_download.py``; the service class
``SensorDownload``), each in its v1, v2 and v3 form:

* ``GET /sensors/combined/installers/v{1,2,3}`` (``GetCombinedSensorInstallersByQuery[V2|V3]``): installer
  records matching an FQL ``filter`` (``platform:"windows"``, ``version:>"5.2"``, ``os:~"Ubuntu"``), in
  ``sort`` order (``version|asc``, ``release_date|desc``; default: "0 is the latest item", newest first),
  ``limit`` 1-500 ("default: 100, max: 500"), ``offset``;
* ``GET /sensors/queries/installers/v{1,2,3}`` (``GetSensorInstallersByQuery[V2|V3]``): their ids (SHA-256);
* ``GET /sensors/entities/installers/v{1,2,3}?ids=`` (``GetSensorInstallersEntities[V2|V3]``): records by id;
* ``GET /sensors/entities/download-installer/v{1,2,3}?id=<sha256>`` (``DownloadSensorInstallerById[V2|V3]``):
  the installer's bytes (``application/octet-stream``, so FalconPy returns ``bytes``); an unknown id is
  404 in Falcon's JSON envelope (gofalcon's ``DownloadSensorInstallerByIDV2`` reader lists 200, 400, 401,
  403, 404, 429, 500);
* ``GET /sensors/queries/installers/ccid/v1`` (``GetSensorInstallersCCIDByQuery``): ``[CCID]``, the CID
  with its two-character checksum that installers take ("The Falcon Customer ID (CID) with checksum is
  required", CrowdStrike's Ansible collection, role ``falcon_configure``).

A record has the fields of the API specification's ``domain.SensorInstallerV1`` (gofalcon
``falcon/models/domain_sensor_installer_v1.go``): ``sha256``, ``name``, ``description``, ``platform``,
``os``, ``os_version``, ``version`` (major.minor.build, the form sensor-update policies'
``settings.sensor_version`` take), ``release_date``, ``file_size``, ``file_type``; v2 adds
``architectures`` (``domain.SensorInstallerV2``). No public document describes v3's record; fleetsim
answers v3 as v2.

The catalog is CrowdStrike's, the same for every customer: one installer per sensor version the scenario
knows (``falcon.default_sensor_version``, each group's ``falcon_sensor`` and every version the kernel
support table lists, the versions ``queryCombinedSensorUpdateBuilds`` offers) and per OS package: an RPM
per Amazon Linux 2, Amazon Linux 2023, RHEL/CentOS/Oracle 7, 8 and 9, a DEB for Ubuntu, an EXE for Windows,
x86_64. The names follow CrowdStrike's (``falcon-sensor-7.14.0-16703.el9.x86_64.rpm``,
``falcon-sensor_7.14.0-16703_amd64.deb``); the bytes are fleetsim's, made up and stable, so a SHA-256
identifies one installer everywhere: the API's id, an S3 object's content, an OS policy's checksum.
What a host does with a package is :func:`package_problem` and :func:`install_failure`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from fleetsim.falcon import fql
from fleetsim.falcon.wire import ApiError, Token, digest, filtered, ids_arg, iso, page
from fleetsim.fleet import SimHost
from fleetsim.scenario import Scenario

if TYPE_CHECKING:
    from fleetsim.falcon.api import FalconApi

INSTALLERS_MAX_LIMIT = 500  # "The number of items to return in this response (default: 100, max: 500)"
# No document gives a cap for these entities; the Hosts API's GET entities cap, the conservative reading.
ENTITIES_MAX_IDS = 100
INSTALLER_FIELDS = (
    "sha256", "name", "description", "platform", "os", "os_version", "version", "release_date",
    "file_size", "file_type", "architectures",
)  # fmt: skip
_INSTALLER_FIELD = fql.field_checker(INSTALLER_FIELDS)
_SORTS = {f"{f}.{d}" for f in ("version", "release_date", "name", "os", "platform") for d in ("asc", "desc")}
_API_VERSIONS = ("v1", "v2", "v3")


@dataclass(frozen=True)
class OsPackage:
    """One operating system an installer package is built for."""

    os: str
    os_version: str
    file_type: str  # rpm | deb | exe
    dist: str  # the RPM dist tag ("el9", "amzn2"); "" otherwise
    families: frozenset[str]  # fleetsim os_family values it installs on

    @property
    def platform(self) -> str:
        return "windows" if self.file_type == "exe" else "linux"


OS_PACKAGES: tuple[OsPackage, ...] = (
    OsPackage("Amazon Linux", "2", "rpm", "amzn2", frozenset({"amazon_linux_2"})),
    OsPackage("Amazon Linux", "2023", "rpm", "amzn2023", frozenset({"amazon_linux_2023"})),
    OsPackage("RHEL/CentOS/Oracle", "7", "rpm", "el7", frozenset({"rhel_7", "centos_7"})),
    OsPackage("RHEL/CentOS/Oracle", "8", "rpm", "el8", frozenset({"rhel_8"})),
    OsPackage("RHEL/CentOS/Oracle", "9", "rpm", "el9", frozenset({"rhel_9"})),
    OsPackage("Ubuntu", "16/18/20/22/24", "deb", "", frozenset({"ubuntu_20_04", "ubuntu_22_04"})),
    OsPackage("Windows", "", "exe", "", frozenset({"windows_2016", "windows_2019", "windows_2022"})),
)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def short_version(version: str) -> str:
    """``7.14.16703`` from ``7.14.16703.0`` (the installer catalog's form)."""
    return ".".join(version.split(".")[:3])


@dataclass(frozen=True)
class Installer:
    """One sensor installer of the catalog, with its made-up bytes."""

    version: str  # major.minor.build
    package: OsPackage
    release_date: dt.datetime
    content: bytes
    sha256: str
    name: str

    @property
    def platform(self) -> str:
        return self.package.platform

    def installs_on(self, host: SimHost) -> bool:
        return host.os_family in self.package.families

    def record(self, api_version: str) -> dict[str, Any]:
        """The installer as ``domain.SensorInstallerV1`` (v1) or ``V2`` (v2, v3) describes it."""
        os_label = self.package.os + (f" {self.package.os_version}" if self.package.os_version else "")
        body: dict[str, Any] = {
            "sha256": self.sha256,
            "name": self.name,
            "description": f"Falcon sensor for {os_label}",
            "platform": self.platform,
            "os": self.package.os,
            "os_version": self.package.os_version,
            "version": self.version,
            "release_date": iso(self.release_date),
            "file_size": len(self.content),
            "file_type": self.package.file_type,
        }
        if api_version != "v1":
            body["architectures"] = ["x86_64"]
        return body


def _file_name(version: str, package: OsPackage) -> str:
    major, minor, build = (version.split(".") + ["0", "0", "0"])[:3]
    if package.file_type == "rpm":
        return f"falcon-sensor-{major}.{minor}.0-{build}.{package.dist}.x86_64.rpm"
    if package.file_type == "deb":
        return f"falcon-sensor_{major}.{minor}.0-{build}_amd64.deb"
    return f"WindowsSensor.{major}.{minor}.{build}.exe"


def catalog_versions(scenario: Scenario) -> list[str]:
    """The sensor versions the scenario knows, oldest first (major.minor.build)."""
    versions = {short_version(scenario.falcon.default_sensor_version)}
    for tenant in scenario.tenants:
        for fleet in (tenant.aws, tenant.azure, tenant.gcp):
            for group in fleet.groups if fleet else []:
                if group.falcon_sensor not in (None, "default"):
                    versions.add(short_version(group.falcon_sensor))
    for kernel in scenario.falcon.kernels:
        versions.update(
            short_version(v)
            for v in (
                *kernel.base_package_supported_sensor_versions,
                *kernel.ztl_supported_sensor_versions,
                *kernel.ztl_module_supported_sensor_versions,
            )
        )
    return sorted(versions, key=_version_key)


class InstallerCatalog:
    """Every installer CrowdStrike offers in this scenario, by SHA-256."""

    def __init__(self, scenario: Scenario) -> None:
        versions = catalog_versions(scenario)
        newest = scenario.last_scan - dt.timedelta(days=14)
        self.installers: dict[str, Installer] = {}
        for rank, version in enumerate(reversed(versions)):
            released = newest - dt.timedelta(days=45 * rank)
            for package in OS_PACKAGES:
                name = _file_name(version, package)
                header = {"product": "CrowdStrike Falcon Sensor (fleetsim)", "name": name, "version": version}
                content = (
                    b"FLEETSIM-FALCON-INSTALLER\n"
                    + json.dumps({**header, "os": package.os, "os_version": package.os_version}).encode()
                    + b"\n"
                )
                sha = hashlib.sha256(content).hexdigest()
                self.installers[sha] = Installer(version, package, released, content, sha, name)

    def get(self, sha256: str) -> Installer | None:
        return self.installers.get(sha256.strip().lower())

    def by_content(self, content: bytes) -> Installer | None:
        """The installer whose bytes these are (a copy kept in S3), or None."""
        return self.installers.get(hashlib.sha256(content).hexdigest())

    def newest_first(self) -> list[Installer]:
        return sorted(
            self.installers.values(),
            key=lambda i: (i.release_date, _version_key(i.version), i.name),
            reverse=True,
        )

    def for_host(self, host: SimHost, version: str | None) -> Installer | None:
        """The installer for the host's OS at ``version`` (the newest one when None), as CrowdStrike's
        falcon-installer picks it (``QuerySuitableSensor``: the first of the newest-first answer)."""
        for installer in self.newest_first():
            if installer.installs_on(host) and version in (None, installer.version):
                return installer
        return None


def ccid(cid: str) -> str:
    """A CID with its checksum, as ``GetSensorInstallersCCIDByQuery`` answers it: upper-case hex, ``-``
    and two characters. CrowdStrike does not publish how the checksum is computed; fleetsim derives it
    from the CID, so every CID has one stable CCID."""
    short = cid.strip().lower().split("-", 1)[0]
    return f"{short.upper()}-{digest('ccid', short)[:2].upper()}"


CCID_PATTERN = re.compile(r"^[0-9A-Fa-f]{32}-[0-9A-Fa-f]{2}$")


# -- what a host does with a package ------------------------------------------------------------------
def package_problem(host: SimHost, installer: Installer) -> str | None:
    """Why the host's package manager refuses the package (another OS's), or None when it fits."""
    if installer.installs_on(host):
        return None
    family = host.platform.platform_name
    if installer.platform == "windows":
        return f"{installer.name} is a Windows installer; {host.name} runs {family}"
    if host.platform.platform_type == "Windows":
        return f"{installer.name} is not a valid Win32 application"
    return (
        f"{installer.name} is built for {installer.package.os} {installer.package.os_version}; "
        f"{host.name} runs {family} {host.platform.platform_version}"
    )


def install_failure(installer: Installer) -> tuple[int, str]:
    """(exit code, stderr) of the sensor package's own installer failing (fault ``falcon_install_fails``).

    The codes are the tools': ``rpm``/``dnf`` exit 1 on a failed scriptlet, ``apt-get`` exits 100 when
    dpkg fails, and a failed Windows installer exits 1603 (Windows Installer's "fatal error during
    installation", https://learn.microsoft.com/windows/win32/msi/error-codes). The messages are fleetsim's
    wording of theirs.
    """
    base = installer.name.rsplit(".", 1)[0]
    if installer.package.file_type == "rpm":
        return 1, (f"error: %prein({base}) scriptlet failed, exit status 1\nerror: {base}: install failed\n")
    if installer.package.file_type == "deb":
        return 100, (
            f"dpkg: error processing archive {installer.name} (--install):\n"
            " new falcon-sensor package pre-installation script subprocess returned error exit status 1\n"
            "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
        )
    return 1603, f"sensor installer exited with 1603 (fatal error during installation of {installer.name})\n"


# -- the API --------------------------------------------------------------------------------------------
class InstallerResponses:
    """The Sensor Download endpoints over the catalog; the CCID is the token's customer's."""

    def __init__(self, api: FalconApi) -> None:
        self.api = api
        self.catalog = InstallerCatalog(api.state.scenario)

    def routes(self) -> dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]]:
        routes: dict[tuple[str, str], tuple[str, Callable[[Request, Token], Response]]] = {}
        for v in _API_VERSIONS:
            suffix = "" if v == "v1" else v.upper()
            routes[("GET", f"/sensors/combined/installers/{v}")] = (
                f"GetCombinedSensorInstallersByQuery{suffix}",
                lambda r, t, v=v: self.combined(r, t, v),
            )
            routes[("GET", f"/sensors/queries/installers/{v}")] = (
                f"GetSensorInstallersByQuery{suffix}",
                self.query,
            )
            routes[("GET", f"/sensors/entities/installers/{v}")] = (
                f"GetSensorInstallersEntities{suffix}",
                lambda r, t, v=v: self.entities(r, t, v),
            )
            routes[("GET", f"/sensors/entities/download-installer/{v}")] = (
                f"DownloadSensorInstallerById{suffix}",
                self.download,
            )
        routes[("GET", "/sensors/queries/installers/ccid/v1")] = ("GetSensorInstallersCCIDByQuery", self.ccid)
        return routes

    def _rows(self, request: Request, api_version: str) -> list[dict[str, Any]]:
        records = [i.record(api_version) for i in self.catalog.newest_first()]

        def sort_key(row: dict[str, Any], field: str) -> Any:
            return _version_key(row["version"]) if field == "version" else fql.text(row.get(field))

        return filtered(records, request, _INSTALLER_FIELD, sorts=_SORTS, sort_key=sort_key)

    def combined(self, request: Request, token: Token, api_version: str) -> Response:
        rows, pagination = page(self._rows(request, api_version), request, high=INSTALLERS_MAX_LIMIT)
        return self.api.reply(rows, pagination=pagination)

    def query(self, request: Request, token: Token) -> Response:
        rows, pagination = page(self._rows(request, "v2"), request, high=INSTALLERS_MAX_LIMIT)
        return self.api.reply([r["sha256"] for r in rows], pagination=pagination)

    def entities(self, request: Request, token: Token, api_version: str) -> Response:
        ids = ids_arg(request)
        if not ids:
            raise ApiError(400, "ids: at least one installer id (SHA-256) is required")
        if len(ids) > ENTITIES_MAX_IDS:
            raise ApiError(400, f"ids: {len(ids)} given, at most {ENTITIES_MAX_IDS} per request")
        found = [i.record(api_version) for i in (self.catalog.get(x) for x in ids) if i is not None]
        errors = [
            {"code": 404, "message": f"installer {x!r} not found", "id": x}
            for x in ids
            if self.catalog.get(x) is None
        ]
        return self.api.reply(found, status=200 if found else 404, errors=errors)

    def download(self, request: Request, token: Token) -> Response:
        sha = request.args.get("id", "").strip()
        if not sha:
            raise ApiError(400, "id: the SHA-256 of the installer to download is required")
        installer = self.catalog.get(sha)
        if installer is None:
            raise ApiError(404, f"installer {sha!r} not found")
        response = Response(installer.content, 200, mimetype="application/octet-stream")
        response.headers["Content-Disposition"] = f'attachment; filename="{installer.name}"'
        return response

    def ccid(self, request: Request, token: Token) -> Response:
        customer = self.api.backend.write_customer(token)
        return self.api.reply([ccid(customer.cid)])
