"""CrowdStrike's falcon-installer as it runs on a host: what the Falcon VM extension runs on an Arc machine
and what an OS policy's exec resource can run on a GCE instance.

Followed from its source (github.com/CrowdStrike/falcon-installer, ``pkg/installer/installer.go``,
``pkg/falcon/falcon.go``) and the extension that wraps it (github.com/CrowdStrike/azure-vm-extension,
``linux/handler/enable.sh`` and ``helper.sh``):

1. It authenticates to the Falcon API with the client id and secret (or an access token) it was given,
   with ``member_cid`` for an MSSP parent ("Failed to issue access token - Not Authorized" otherwise).
2. The sensor version: ``--sensor-version`` when given, else the ``sensor_version`` of the enabled,
   ``prod``-stage sensor-update policy named ``--sensor-update-policy`` (default ``platform_default``) for
   the host's platform (``QueryCombinedSensorUpdatePoliciesV2``, filter
   ``platform_name:"Linux"+name.raw:"<name>"``). A policy without a build gives no version: then the
   newest installer for the host's OS is taken (``GetCombinedSensorInstallersByQueryV2`` answers newest
   first and ``QuerySuitableSensor`` takes the first). No installer: "Could not find Falcon sensor for
   '<os>' '<version>'", exit 1.
3. The CID is the API client's CCID (``GetSensorInstallersCCIDByQuery``), unless ``--cid`` was given.
4. A host that has a sensor already: "Sensor is already installed. Skipping download and installation"
   (the extension's ``enable.sh`` stops even earlier, at ``/opt/CrowdStrike/falconctl``). Only
   ``--update`` with a ``--sensor-version`` changes an installed sensor's version (``update.go``).
5. The package is downloaded (``DownloadSensorInstallerByIdV2``, checked against its SHA-256) and
   installed; ``FleetState.install_falcon_sensor`` then does what the sensor does.

Not emulated: the credentials' format checks (``^[a-zA-Z0-9]{40}$`` for the secret: fleetsim's own API
clients do not have CrowdStrike's formats), proxies and tags. Installation tokens: fleetsim's customers do
not require them, so a ``provisioning_token`` given is accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetsim.falcon.installers import Installer, ccid, install_failure, short_version
from fleetsim.falcon.policies import SENSOR_UPDATE
from fleetsim.falcon.wire import ApiError
from fleetsim.fleet import FleetState, SimHost


@dataclass
class InstallerRun:
    """What one run of falcon-installer did on a host."""

    exit_code: int
    log: str  # what it wrote (its log file); never a credential
    installer: Installer | None = None
    effect: dict[str, Any] | None = None  # FleetState.install_falcon_sensor's, when it installed
    skipped: bool = False  # a sensor was there already

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class InstallerOptions:
    """falcon-installer's options, as the extension's settings or the command line give them."""

    client_id: str = ""
    client_secret: str = ""
    access_token: str = ""
    member_cid: str = ""
    sensor_update_policy: str = "platform_default"
    sensor_version: str = ""
    cid: str = ""
    update: bool = False


def _platform_name(host: SimHost) -> str:
    return "Windows" if host.platform.platform_type == "Windows" else "Linux"


def policy_version(api: Any, cid: str, host: SimHost, policy_name: str) -> str:
    """The ``sensor_version`` of the customer's enabled prod policy of that name for the host's platform
    ("" when there is none or it names no build), as ``GetSensorUpdatePolicies`` reads it."""
    customer = api.backend.customer(cid)
    platform = _platform_name(host)
    version = ""
    for policy in customer.policies[SENSOR_UPDATE].policies.values():
        if policy.name != policy_name or policy.platform_name != platform or not policy.enabled:
            continue
        build = policy.settings.get("build", "")
        row = next((r for r in api.build_rows(platform.lower()) if r["build"] == build), None)
        version = row["sensor_version"] if row else ""
    return version


def run(
    state: FleetState, host: SimHost, options: InstallerOptions, *, via: str, at: float, dry_run: bool = False
) -> InstallerRun:
    """Run falcon-installer on ``host`` at ``at`` (the caller holds ``state.lock``). ``dry_run``: what the
    run would end in, without installing (a rollout laid out ahead of its runs)."""
    api = state.falcon
    if api is None:
        return InstallerRun(1, "could not reach the CrowdStrike Falcon API\n")
    try:
        if options.access_token:
            token = api.token(options.access_token)
            if token is None:
                raise ApiError(401, "access denied, authorization failed")
        else:
            value = api.issue_token(options.client_id, options.client_secret, options.member_cid)
            token = api.token(value)
        customer = api.backend.write_customer(token)
    except ApiError as exc:
        return InstallerRun(1, f"Error authenticating to the CrowdStrike Falcon API: {exc.message}\n")
    catalog = api.installers.catalog
    wanted = short_version(options.sensor_version) if options.sensor_version else ""
    if not wanted:
        wanted = policy_version(api, customer.cid, host, options.sensor_update_policy or "platform_default")
    installer = catalog.for_host(host, wanted or None)
    os_name = host.platform.platform_name.lower().split(" ")[0]
    if installer is None:
        return InstallerRun(
            1, f"Could not find Falcon sensor for '{os_name}' '{host.platform.platform_version}'\n"
        )
    sensor = host.falcon
    if sensor is not None and not (options.update and options.sensor_version):
        return InstallerRun(
            0, "Sensor is already installed. Skipping download and installation\n", installer, skipped=True
        )
    cid = options.cid or ccid(customer.cid)
    if dry_run:
        fails = state.falcon_install_fails(host)
        return InstallerRun(1 if fails else 0, "Error installing Falcon sensor\n" if fails else "", installer)
    effect = state.install_falcon_sensor(host, installer.version, cid, via=via, at=at)
    if effect["result"] == "failed":
        _, stderr = install_failure(installer)
        return InstallerRun(1, f"Error installing Falcon sensor: {stderr}", installer, effect)
    return InstallerRun(0, "Falcon sensor installation complete\n", installer, effect)
