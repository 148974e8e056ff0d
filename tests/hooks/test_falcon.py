"""FalconHook against fleetsim's Falcon API: FalconPy over HTTP, configured only by an Airflow connection.

Checks what the hook returns, that it batches and pages to the documented maxima (counted by fleetsim),
that MSSP child CIDs and per-tenant clients scope what it sees, and that every failure names the call,
the status and the API's message.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fleetsim_testkit import Fleet, group, patch, scenario_dict

from fleetsim.seed import falcon_cid
from patchcycle.domain.falcon import sensor_supports_kernel
from patchcycle.hooks import falcon as falcon_module
from patchcycle.hooks.falcon import FalconApiError, FalconHook

CONN_ID = "falcon_test"
CLIENT_ID = "fleetsim-falcon"
SECRET = "fleetsim-falcon-secret"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "h_one",
            "aws": {
                "account_id": "444444444444",
                "region": "eu-west-1",
                "groups": [
                    group("app", 9, "ubuntu_22_04", kernel="5.15.0-119-generic"),
                    group(
                        "db", 2, "rhel_9", kernel="5.14.0-427.13.1.el9_4.x86_64", falcon_sensor="7.10.16303"
                    ),
                ],
            },
            "faults": {"falcon_duplicate": ["app-01"]},
        },
        {
            "id": "h_two",
            "gcp": {
                "project_id": "proj-two",
                "groups": [
                    group("gce", 3, "ubuntu_22_04", kernel="5.15.0-119-generic", zone="us-central1-a")
                ],
            },
        },
    ],
    catalog=[patch("USN-7200-1", "ubuntu_22_04", kernel="5.15.0-130-generic")],
    falcon={
        "kernels": [
            {
                "release": "5.15.0-126-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "base_package_supported_sensor_versions": ["7.14.16703"],
            },
            {
                "release": "5.15.0-126-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "architecture": "aarch64",
                "base_package_supported_sensor_versions": ["7.11.16405"],
            },
            {
                "release": "5.15.0-131-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "ztl_supported_sensor_versions": ["7.15.16807"],
            },
            {
                "release": "5.14.0-503.21.1.el9_5.x86_64",
                "vendor": "rhel",
                "ztl_module_supported_sensor_versions": ["7.10.16303"],
            },
        ]
    },
)
ONE_RECORDS = 9 + 1 + 2  # app (+ app-01's stale record) and db
ALL_RECORDS = ONE_RECORDS + 3


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = CONN_ID, **fields: Any) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))
    return conn_id


@pytest.fixture
def hook(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> FalconHook:
    """The MSSP parent client: every tenant's devices."""
    use_connection(monkeypatch, host=fleet.url, login=CLIENT_ID, password=SECRET, extra={"timeout": 10})
    return FalconHook(falcon_conn_id=CONN_ID)


class Calls:
    """The falcon.* calls fleetsim counted inside a ``with`` block (operation -> count, zeros left out)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def __enter__(self) -> dict[str, int]:
        self.before = self.fleet.calls()
        self.delta: dict[str, int] = {}
        return self.delta

    def __exit__(self, *exc: object) -> None:
        after = self.fleet.calls()
        self.delta.update({k: v - self.before.get(k, 0) for k, v in after.items() if k.startswith("falcon.")})
        for k in [k for k, v in self.delta.items() if v == 0]:
            del self.delta[k]


# -- devices ------------------------------------------------------------------------------------------
def test_devices_returns_every_record_in_three_calls(fleet: Fleet, hook: FalconHook) -> None:
    with Calls(fleet) as calls:
        devices = hook.devices()
    assert len(devices) == ALL_RECORDS
    assert len({d["device_id"] for d in devices}) == ALL_RECORDS
    assert calls == {
        "falcon.oauth2.token": 1,
        "falcon.QueryDevicesByFilterScroll": 1,
        "falcon.GetDeviceDetails": 1,
    }
    json.dumps(devices)  # plain JSON-able data, storable by callers
    truth = fleet.truth("h_one")
    [app] = [d for d in devices if d["hostname"] == "app-02"]
    assert app["instance_id"] == truth["app-02"]["host_id"] and app["service_provider"] == "AWS_EC2_V2"
    assert app["reduced_functionality_mode"] == "no" and app["agent_version"] == "7.14.16703.0"
    assert sorted(d["hostname"] for d in devices if d["hostname"] == "app-01") == ["app-01", "app-01"]


def test_devices_with_an_fql_filter(hook: FalconHook) -> None:
    rhel = hook.devices("os_version:*'RHEL*'")
    assert sorted(d["hostname"] for d in rhel) == ["db-01", "db-02"]
    gce = hook.devices("service_provider:'GCP'+hostname:['gce-01','gce-03']")
    assert sorted(d["hostname"] for d in gce) == ["gce-01", "gce-03"]
    assert hook.devices("hostname:'no-such-host'") == []


def test_devices_pages_and_batches_to_the_maxima(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(falcon_module, "DEVICE_SCROLL_PAGE", 4)
    monkeypatch.setattr(falcon_module, "DEVICE_DETAILS_BATCH", 5)
    with Calls(fleet) as calls:
        devices = hook.devices()
    assert len(devices) == len({d["device_id"] for d in devices}) == ALL_RECORDS
    assert calls["falcon.QueryDevicesByFilterScroll"] == -(-ALL_RECORDS // 4)
    assert calls["falcon.GetDeviceDetails"] == -(-ALL_RECORDS // 5)


def test_documented_maxima() -> None:
    assert falcon_module.DEVICE_SCROLL_PAGE == 10000
    assert falcon_module.DEVICE_DETAILS_BATCH == 5000
    assert falcon_module.KERNELS_PAGE == 500


def test_member_cid_and_tenant_clients_scope_the_devices(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(
        monkeypatch,
        host=fleet.url,
        login=CLIENT_ID,
        password=SECRET,
        extra={"member_cid": falcon_cid("h_two")},
    )
    child = FalconHook(CONN_ID).devices()
    assert sorted(d["hostname"] for d in child) == ["gce-01", "gce-02", "gce-03"]
    assert {d["cid"] for d in child} == {falcon_cid("h_two")}
    use_connection(monkeypatch, "falcon_one", host=fleet.url, login="h_one", password=SECRET)
    own = FalconHook("falcon_one").devices()
    assert len(own) == ONE_RECORDS and {d["cid"] for d in own} == {falcon_cid("h_one")}


def test_device_view_follows_a_kernel_boot(fleet: Fleet, hook: FalconHook) -> None:
    state = fleet.server.state
    with state.lock:
        host = next(h for h in state.hosts.values() if h.tenant == "h_one" and h.name == "app-09")
    [before] = hook.devices("hostname:'app-09'")
    assert before["kernel_version"] == "5.15.0-119-generic" and before["reduced_functionality_mode"] == "no"
    with state.lock:
        state.install(host, {"USN-7200-1"}, fails=False, reboot=True)
    [after] = hook.devices("hostname:'app-09'")
    assert after["kernel_version"] == "5.15.0-130-generic" and after["reduced_functionality_mode"] == "yes"


# -- kernel support -----------------------------------------------------------------------------------
def test_kernel_support_by_release(fleet: Fleet, hook: FalconHook) -> None:
    releases = [
        "5.15.0-126-generic",
        "5.14.0-503.21.1.el9_5.x86_64",
        "6.8.0-99-generic",
        "5.15.0-126-generic",
    ]
    with Calls(fleet) as calls:
        support = hook.kernel_support(releases)
    assert sorted(support) == ["5.14.0-503.21.1.el9_5.x86_64", "5.15.0-126-generic"]  # 6.8.0-99: unknown
    assert support["5.15.0-126-generic"]["architecture"] == "x86_64"
    assert calls == {"falcon.oauth2.token": 1, "falcon.queryCombinedSensorUpdateKernels": 1}
    assert sensor_supports_kernel(support["5.15.0-126-generic"], "7.14.16703.0")
    assert not sensor_supports_kernel(support["5.15.0-126-generic"], "7.10.16303.0")
    assert sensor_supports_kernel(support["5.14.0-503.21.1.el9_5.x86_64"], "7.10.16303.0")
    arm = hook.kernel_support(["5.15.0-126-generic"], architecture="aarch64")
    assert arm["5.15.0-126-generic"]["base_package_supported_sensor_versions"] == ["7.11.16405"]
    assert hook.kernel_support([]) == {}


def test_kernel_support_batches_releases_and_pages(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(falcon_module, "KERNEL_RELEASES_PER_QUERY", 2)
    monkeypatch.setattr(falcon_module, "KERNELS_PAGE", 1)
    releases = ["5.15.0-126-generic", "5.15.0-131-generic", "5.14.0-503.21.1.el9_5.x86_64", "7.0.0-new"]
    hook.auth  # log in first, so only the kernel queries are counted  # noqa: B018
    with Calls(fleet) as calls:
        support = hook.kernel_support(releases)
    assert sorted(support) == sorted(releases[:3])
    # Batches [5.14.., 5.15.0-126] and [5.15.0-131, 7.0.0-new]: 2 + 1 pages of one record each.
    assert calls == {"falcon.queryCombinedSensorUpdateKernels": 3}


# -- connection and errors ----------------------------------------------------------------------------
def test_host_without_scheme_uses_schema_and_port(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = fleet.url.removeprefix("http://").split(":")
    use_connection(monkeypatch, host=host, port=int(port), schema="http", login=CLIENT_ID, password=SECRET)
    hook = FalconHook(CONN_ID)
    assert hook.base_url == fleet.url
    assert len(hook.device_ids("hostname:'db-01'")) == 1
    assert hook.auth.base_url == fleet.url


def test_wrong_secret_names_the_login_call(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, host=fleet.url, login=CLIENT_ID, password="wrong-secret")
    with pytest.raises(FalconApiError) as err:
        FalconHook(CONN_ID).devices()
    message = str(err.value)
    assert "POST /oauth2/token" in message and repr(CLIENT_ID) in message and "HTTP 403" in message
    assert "Not Authorized" in message and fleet.url in message


def test_api_errors_name_the_call_status_and_message(hook: FalconHook) -> None:
    with pytest.raises(FalconApiError) as err:
        hook.devices("no_such_field:'x'")
    message = str(err.value)
    assert "QueryDevicesByFilterScroll" in message and "HTTP 400" in message and "no_such_field" in message


def test_unreachable_endpoint_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    use_connection(
        monkeypatch, host=f"http://127.0.0.1:{port}", login=CLIENT_ID, password=SECRET, extra={"timeout": 3}
    )
    with pytest.raises(FalconApiError) as err:
        FalconHook(CONN_ID).kernel_support(["5.15.0-126-generic"])
    assert f"127.0.0.1:{port}" in str(err.value) and "HTTP 500" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"login": CLIENT_ID, "password": SECRET}, "has no host"),
        ({"host": "http://127.0.0.1:9", "password": SECRET}, "client id (login) and secret"),
        ({"host": "ftp://127.0.0.1:9", "login": CLIENT_ID, "password": SECRET}, "not an http(s) base URL"),
        (
            {
                "host": "http://127.0.0.1:9",
                "login": CLIENT_ID,
                "password": SECRET,
                "extra": {"timeout": "soon"},
            },
            "extra timeout 'soon'",
        ),
    ],
)
def test_bad_connections_are_named(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], problem: str
) -> None:
    use_connection(monkeypatch, **fields)
    with pytest.raises(ValueError) as err:
        FalconHook(CONN_ID).settings  # noqa: B018
    assert problem in str(err.value) and CONN_ID in str(err.value)


class _RegionTokenHandler(BaseHTTPRequestHandler):
    """A token endpoint that, like Falcon's, names its cloud region in ``X-Cs-Region``."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "t", "token_type": "bearer", "expires_in": 1799}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Cs-Region", "eu-1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_region_header_never_moves_the_hook_off_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RegionTokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        use_connection(monkeypatch, host=url, login=CLIENT_ID, password=SECRET, extra={"timeout": 3})
        with pytest.raises(FalconApiError) as err:
            FalconHook(CONN_ID).devices()  # raises after login, before any call to the moved URL
    finally:
        server.shutdown()
        server.server_close()
    assert url in str(err.value) and "api.eu-1.crowdstrike.com" in str(err.value)
