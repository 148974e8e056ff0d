"""fleetsim's CrowdStrike Falcon API through the unmodified FalconPy 1.6.6 SDK (and raw HTTP for the traps).

Covers the token endpoint's 201 and its missing ``X-Cs-Region`` (FalconPy stays on loopback), 401 without a
token fleetsim issued, per-tenant visibility, FQL (wildcard, OR, lists, timestamps, nested fields,
unknown fields), offset and scroll paging with their limits, the 5,000-id cap on details, device records
(cloud identity, duplicates, RFM), the kernel support table, and the device view following a kernel boot.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from falconpy import Hosts, SensorUpdatePolicy
from fleetsim_testkit import Fleet, group, patch, scenario_dict

from fleetsim.seed import falcon_cid

CLIENT_ID = "fleetsim-falcon"
SECRET = "fleetsim-falcon-secret"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_aws",
            "aws": {
                "account_id": "111111111111",
                "region": "us-east-1",
                "groups": [
                    group("web", 12, "ubuntu_22_04", kernel="5.15.0-119-generic"),
                    group("win", 3, "windows_2022"),
                    group("nosensor", 2, "amazon_linux_2", falcon_sensor=None),
                ],
            },
            "faults": {"falcon_duplicate": ["web-02"], "falcon_rfm": ["web-03"]},
        },
        {
            "id": "t_mix",
            "azure": {
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-arc",
                "location": "westeurope",
                "groups": [
                    group(
                        "arc",
                        4,
                        "rhel_9",
                        kernel="5.14.0-427.13.1.el9_4.x86_64",
                        falcon_sensor="7.10.16303",
                    )
                ],
            },
            "gcp": {
                "project_id": "proj-mix",
                "groups": [
                    group("gce", 5, "ubuntu_22_04", kernel="5.15.0-119-generic", zone="europe-west2-a")
                ],
            },
        },
    ],
    catalog=[
        patch("USN-7120-1", "ubuntu_22_04", kernel="5.15.0-126-generic"),  # supported by 7.14.16703
        patch("USN-7200-1", "ubuntu_22_04", kernel="5.15.0-130-generic"),  # unknown to Falcon
    ],
    falcon={
        "kernels": [
            {
                "release": "5.15.0-126-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "base_package_supported_sensor_versions": ["7.13.16603", "7.14.16703"],
            },
            {
                "release": "5.15.0-126-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "architecture": "aarch64",
                "base_package_supported_sensor_versions": ["7.12.16500"],
            },
            {
                "release": "5.15.0-119-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "ztl_supported_sensor_versions": ["7.14.16703"],
            },
            {
                "release": "5.14.0-503.21.1.el9_5.x86_64",
                "vendor": "rhel",
                "ztl_module_supported_sensor_versions": ["7.10.16303"],
            },
            {
                "release": "5.15.0-131-generic",
                "vendor": "ubuntu",
                "distro": "ubuntu22",
                "base_package_supported_sensor_versions": ["7.15.16807"],
            },
        ]
    },
)
# Device records: 12 web (+1 stale for web-02), 3 win, 4 arc, 5 gce; nosensor hosts have none.
ALL_RECORDS = 12 + 1 + 3 + 4 + 5


def hosts_client(fleet: Fleet, client_id: str = CLIENT_ID, **kw: Any) -> Hosts:
    return Hosts(
        client_id=client_id, client_secret=kw.pop("secret", SECRET), base_url=fleet.url, timeout=10, **kw
    )


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Hosts:
    """The MSSP parent client: sees every tenant's devices."""
    return hosts_client(fleet)


@pytest.fixture(scope="module")
def kernels(hosts: Hosts) -> SensorUpdatePolicy:
    return SensorUpdatePolicy(auth_object=hosts)


def ids_for(hosts: Hosts, fql: str, limit: int = 5000) -> list[str]:
    r = hosts.query_devices_by_filter(filter=fql, limit=limit)
    assert r["status_code"] == 200, r["body"]
    return r["body"]["resources"]


def details(hosts: Hosts, ids: list[str]) -> list[dict[str, Any]]:
    r = hosts.get_device_details(ids=ids)
    assert r["status_code"] == 200, r["body"]
    return r["body"]["resources"]


def by_name(hosts: Hosts, name: str) -> list[dict[str, Any]]:
    return details(hosts, ids_for(hosts, f"hostname:'{name}'"))


def raw(fleet: Fleet, method: str, path: str, *, token: str | None = None, form: dict | None = None):
    """(status, headers, body) of a plain HTTP request: what the SDK would see on the wire."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(fleet.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if form is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, dict(resp.headers), json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- auth ---------------------------------------------------------------------------------------------
def test_token_endpoint_answers_201_without_region_header(fleet: Fleet) -> None:
    status, headers, body = raw(
        fleet, "POST", "/oauth2/token", form={"client_id": CLIENT_ID, "client_secret": SECRET}
    )
    assert status == 201
    assert body["token_type"] == "bearer" and body["expires_in"] == 1799 and body["access_token"]
    assert not {k.lower() for k in headers} & {"x-cs-region"}


def test_falconpy_logs_in_and_stays_on_loopback(fleet: Fleet) -> None:
    before = fleet.calls().get("falcon.oauth2.token", 0)
    h = hosts_client(fleet)
    r = h.query_devices_by_filter(limit=1)
    assert r["status_code"] == 200, r["body"]
    assert h.token_status == 201
    assert h.base_url == fleet.url  # no X-Cs-Region: FalconPy did not move to api.crowdstrike.com
    assert r["headers"]["X-RateLimit-Limit"] == "6000"
    assert 0 <= int(r["headers"]["X-RateLimit-Remaining"]) < 6000
    assert fleet.calls()["falcon.oauth2.token"] == before + 1


def test_requests_without_an_issued_token_get_401(fleet: Fleet) -> None:
    status, _, body = raw(fleet, "GET", "/devices/queries/devices/v1")
    assert status == 401 and body["errors"][0]["code"] == 401 and body["resources"] == []
    status, _, _ = raw(fleet, "GET", "/devices/queries/devices/v1", token="not-a-token-fleetsim-issued")
    assert status == 401
    status, _, _ = raw(fleet, "GET", "/policy/combined/sensor-update-kernels/v1", token="forged")
    assert status == 401


def test_wrong_secret_is_refused_and_api_calls_then_get_401(fleet: Fleet) -> None:
    h = hosts_client(fleet, secret="wrong")
    assert h.token_status == 403
    assert h.query_devices_by_filter(limit=1)["status_code"] == 401


def test_tenant_clients_and_member_cid_see_only_their_cid(fleet: Fleet, hosts: Hosts) -> None:
    everything = ids_for(hosts, "")
    assert len(everything) == ALL_RECORDS
    mix_cid = falcon_cid("t_mix")
    own = hosts_client(fleet, client_id="t_mix")
    mix_ids = ids_for(own, "")
    assert len(mix_ids) == 4 + 5
    assert {d["cid"] for d in details(own, mix_ids)} == {mix_cid}
    child = hosts_client(fleet, member_cid=mix_cid.upper() + "-A1")  # CIDs compare without checksum/case
    assert sorted(ids_for(child, "")) == sorted(mix_ids)
    # A tenant client cannot read another tenant's device, even by id.
    aws_id = ids_for(hosts, "hostname:'web-01'")[0]
    assert own.get_device_details(ids=[aws_id])["status_code"] == 404
    # Nor act for another tenant's CID.
    assert hosts_client(fleet, client_id="t_mix", member_cid=falcon_cid("t_aws")).token_status == 403


def test_rate_limit_answers_429_with_retry_after(fleet: Fleet) -> None:
    api = next(v for v in fleet.server.app.vendors if type(v).__name__ == "FalconApi")
    h = hosts_client(fleet, client_id="t_aws")
    saved = api.requests_per_minute
    api.requests_per_minute = 2
    try:
        statuses = [h.query_devices_by_filter(limit=1) for _ in range(3)]
    finally:
        api.requests_per_minute = saved
    assert [r["status_code"] for r in statuses] == [200, 200, 429]
    assert statuses[1]["headers"]["X-RateLimit-Remaining"] == "0"
    assert int(statuses[2]["headers"]["X-RateLimit-RetryAfter"]) > 0


# -- FQL ----------------------------------------------------------------------------------------------
def names(hosts: Hosts, fql: str) -> list[str]:
    ids = ids_for(hosts, fql)
    return sorted(d["hostname"] for d in details(hosts, ids)) if ids else []


def test_fql_equality_wildcard_or_and_lists(hosts: Hosts) -> None:
    assert names(hosts, "hostname:'web-01'") == ["web-01"]
    assert names(hosts, "hostname:'WEB-01'") == ["web-01"]  # case-insensitive, as Falcon
    assert names(hosts, "hostname:*'web-1*'") == ["web-10", "web-11", "web-12"]
    assert names(hosts, "hostname:'web-01',hostname:'gce-01'") == ["gce-01", "web-01"]
    assert names(hosts, "hostname:['web-04','arc-02']") == ["arc-02", "web-04"]
    assert names(hosts, "platform_name:'Windows'+hostname:*'win-0*'") == ["win-01", "win-02", "win-03"]
    assert names(hosts, "platform_name:'Linux'+(hostname:'win-01',hostname:'arc-01')") == ["arc-01"]
    assert names(hosts, "hostname:!'web-01'+hostname:*'web-0*'") == [
        "web-02", "web-02", "web-03", "web-04", "web-05", "web-06", "web-07", "web-08", "web-09",
    ]  # fmt: skip
    assert names(hosts, "hostname:*'nosensor*'") == []  # hosts without a sensor have no record


def test_fql_fields_timestamps_and_nested(hosts: Hosts) -> None:
    in_rfm = names(hosts, "reduced_functionality_mode:'yes'")
    assert "web-03" in in_rfm and set(in_rfm) <= {"web-03", "web-05"}  # web-05: the kernel-boot test
    assert names(hosts, "service_provider:'GCP'") == [f"gce-0{i}" for i in range(1, 6)]
    assert names(hosts, "agent_version:*'7.10.*'") == ["arc-01", "arc-02", "arc-03", "arc-04"]
    assert len(ids_for(hosts, "device_policies.sensor_update.applied:true")) == ALL_RECORDS
    now = dt.datetime.now(dt.UTC)
    assert names(hosts, f"last_seen:<'{iso(now - dt.timedelta(days=10))}'") == ["web-02"]  # the stale one
    assert len(ids_for(hosts, f"last_seen:>='{iso(now - dt.timedelta(days=1))}'")) == ALL_RECORDS - 1


def test_fql_errors_name_the_problem(hosts: Hosts) -> None:
    r = hosts.query_devices_by_filter(filter="bogus_field:'x'")
    assert r["status_code"] == 400 and "bogus_field" in r["body"]["errors"][0]["message"]
    r = hosts.query_devices_by_filter(filter="hostname:'unterminated")
    assert r["status_code"] == 400 and "unterminated" in r["body"]["errors"][0]["message"]
    r = hosts.query_devices_by_filter(sort="nonsense.asc")
    assert r["status_code"] == 400 and "nonsense" in r["body"]["errors"][0]["message"]


# -- paging -------------------------------------------------------------------------------------------
def test_offset_paging_covers_every_record_once(hosts: Hosts) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        r = hosts.query_devices_by_filter(limit=7, offset=offset, sort="hostname.asc")
        assert r["status_code"] == 200
        page = r["body"]["resources"]
        assert r["body"]["meta"]["pagination"] == {"offset": offset, "limit": 7, "total": ALL_RECORDS}
        if not page:
            break
        seen.extend(page)
        offset += len(page)
    assert len(seen) == len(set(seen)) == ALL_RECORDS


def test_offset_paging_limits(hosts: Hosts) -> None:
    r = hosts.query_devices_by_filter(limit=5000, offset=5000)
    assert r["status_code"] == 400
    assert r["body"]["errors"][0]["message"] == "limit + offset must be less than 10000"
    assert hosts.query_devices_by_filter(limit=5000, offset=4999)["status_code"] == 200
    r = hosts.query_devices_by_filter(limit=5001)
    assert r["status_code"] == 400 and "limit" in r["body"]["errors"][0]["message"]


def test_scroll_pages_with_opaque_offsets(hosts: Hosts) -> None:
    collected: list[str] = []
    offset = None
    for _ in range(20):
        kwargs: dict[str, Any] = {"limit": 4}
        if offset:
            kwargs["offset"] = offset
        r = hosts.query_devices_by_filter_scroll(**kwargs)
        assert r["status_code"] == 200, r["body"]
        pagination = r["body"]["meta"]["pagination"]
        assert pagination["total"] == ALL_RECORDS and pagination["expires_at"] > 0
        collected.extend(r["body"]["resources"])
        offset = pagination["offset"]
        assert isinstance(offset, str) and offset
        if len(collected) >= pagination["total"]:
            break
    assert sorted(collected) == sorted(ids_for(hosts, ""))
    r = hosts.query_devices_by_filter_scroll(limit=4, offset=offset)  # past the end: empty
    assert r["status_code"] == 200 and r["body"]["resources"] == []
    r = hosts.query_devices_by_filter_scroll(limit=4, offset="not-an-offset")
    assert r["status_code"] == 400 and "not-an-offset" in r["body"]["errors"][0]["message"]
    assert hosts.query_devices_by_filter_scroll(limit=10000)["status_code"] == 200
    assert hosts.query_devices_by_filter_scroll(limit=10001)["status_code"] == 400
    r = hosts.query_devices_by_filter_scroll(filter="hostname:*'gce-*'", limit=10000)
    assert len(r["body"]["resources"]) == r["body"]["meta"]["pagination"]["total"] == 5


def test_device_details_cap_at_5000_ids(hosts: Hosts) -> None:
    fake = [f"{i:032x}" for i in range(5001)]
    r = hosts.get_device_details(ids=fake)
    assert r["status_code"] == 400 and "5000" in r["body"]["errors"][0]["message"]
    r = hosts.get_device_details(ids=fake[:5000])
    assert r["status_code"] == 404  # well-formed but unknown
    real = ids_for(hosts, "hostname:'web-01'")
    r = hosts.get_device_details(ids=[*real, fake[0]])
    assert r["status_code"] == 200 and [d["hostname"] for d in r["body"]["resources"]] == ["web-01"]
    assert r["body"]["errors"][0]["code"] == 404
    assert hosts.get_device_details_v2(ids=fake[:101])["status_code"] == 400  # the GET variant: 100


# -- device records -----------------------------------------------------------------------------------
def test_device_records_carry_cloud_identity(fleet: Fleet, hosts: Hosts) -> None:
    aws_truth, mix_truth = fleet.truth("t_aws"), fleet.truth("t_mix")
    [web] = by_name(hosts, "web-01")
    assert web["instance_id"] == aws_truth["web-01"]["host_id"]
    assert web["service_provider"] == "AWS_EC2_V2"
    assert web["service_provider_account_id"] == "111111111111" and web["zone_group"] == "us-east-1a"
    assert web["platform_name"] == "Linux" and web["kernel_version"] == "5.15.0-119-generic"
    assert web["agent_version"] == "7.14.16703.0" and web["reduced_functionality_mode"] == "no"
    assert web["local_ip"] == aws_truth["web-01"]["private_ip"] and web["product_type_desc"] == "Server"
    assert web["device_id"] == aws_truth["web-01"]["falcon"]["device_id"] and web["cid"] == falcon_cid(
        "t_aws"
    )
    assert web["device_policies"]["sensor_update"]["applied"] is True
    [gce] = by_name(hosts, "gce-03")
    assert gce["instance_id"] == mix_truth["gce-03"]["host_id"] and gce["service_provider"] == "GCP"
    assert gce["service_provider_account_id"] == "proj-mix" and gce["zone_group"] == "europe-west2-a"
    [arc] = by_name(hosts, "arc-01")
    assert "service_provider" not in arc and "instance_id" not in arc  # Arc servers have no cloud metadata
    assert arc["agent_version"] == "7.10.16303.0" and arc["os_version"] == "RHEL 9.2"
    [win] = by_name(hosts, "win-01")
    assert win["platform_name"] == "Windows" and win["os_version"] == "Windows Server 2022"
    [rfm] = by_name(hosts, "web-03")
    assert rfm["reduced_functionality_mode"] == "yes"


def test_reinstalled_sensor_leaves_a_stale_duplicate(fleet: Fleet, hosts: Hosts) -> None:
    records = sorted(by_name(hosts, "web-02"), key=lambda d: d["last_seen"])
    assert len(records) == 2
    stale, live = records
    truth = fleet.truth("t_aws")["web-02"]["falcon"]
    assert live["device_id"] == truth["device_id"] and stale["device_id"] == truth["stale_device_id"]
    assert stale["instance_id"] == live["instance_id"] and stale["hostname"] == live["hostname"]
    seen = {d["device_id"]: dt.datetime.fromisoformat(d["last_seen"].replace("Z", "+00:00")) for d in records}
    assert seen[live["device_id"]] - seen[stale["device_id"]] > dt.timedelta(days=19)
    assert tuple(map(int, stale["agent_version"].split("."))) < tuple(
        map(int, live["agent_version"].split("."))
    )


def test_kernel_boot_changes_kernel_and_rfm_at_once(fleet: Fleet, hosts: Hosts) -> None:
    state = fleet.server.state
    with state.lock:
        unknown = next(h for h in state.hosts.values() if h.tenant == "t_aws" and h.name == "web-05")
        supported = next(h for h in state.hosts.values() if h.tenant == "t_aws" and h.name == "web-06")
    [before] = by_name(hosts, "web-05")
    assert before["reduced_functionality_mode"] == "no"
    with state.lock:
        assert state.install(unknown, {"USN-7200-1"}, fails=False, reboot=True)["rebooted"]
        assert state.install(supported, {"USN-7120-1"}, fails=False, reboot=True)["rebooted"]
    [after] = details(hosts, [before["device_id"]])
    assert after["kernel_version"] == "5.15.0-130-generic"
    assert after["reduced_functionality_mode"] == "yes"  # a kernel Falcon does not know: RFM
    [ok] = by_name(hosts, "web-06")
    assert ok["kernel_version"] == "5.15.0-126-generic" and ok["reduced_functionality_mode"] == "no"


# -- sensor update kernels ----------------------------------------------------------------------------
def test_kernel_support_queries(kernels: SensorUpdatePolicy) -> None:
    r = kernels.query_combined_kernels(filter="release:'5.15.0-126-generic'", limit=500)
    assert r["status_code"] == 200
    assert sorted(k["architecture"] for k in r["body"]["resources"]) == ["aarch64", "x86_64"]
    r = kernels.query_combined_kernels(
        filter="release:['5.15.0-126-generic','5.14.0-503.21.1.el9_5.x86_64','9.9.9-new']+architecture:'x86_64'",
        limit=500,
    )
    records = {k["release"]: k for k in r["body"]["resources"]}
    assert sorted(records) == ["5.14.0-503.21.1.el9_5.x86_64", "5.15.0-126-generic"]
    ubuntu = records["5.15.0-126-generic"]
    assert ubuntu["base_package_supported_sensor_versions"] == ["7.13.16603", "7.14.16703"]
    assert (
        ubuntu["distro"] == "ubuntu22"
        and ubuntu["distro_version"] == "22.04"
        and ubuntu["flavor"] == "generic"
    )
    rhel = records["5.14.0-503.21.1.el9_5.x86_64"]
    assert rhel["ztl_module_supported_sensor_versions"] == ["7.10.16303"]
    assert rhel["distro"] == "rhel9" and rhel["distro_version"] == "9.5"
    for key in ("id", "vendor", "version", "ztl_supported_sensor_versions", "created_timestamp"):
        assert key in rhel
    r = kernels.query_combined_kernels(filter="vendor:'ubuntu'", limit=2, offset=2)
    assert r["body"]["meta"]["pagination"] == {"offset": 2, "limit": 2, "total": 4}
    assert len(r["body"]["resources"]) == 2
    r = kernels.query_combined_kernels(limit=501)
    assert r["status_code"] == 400 and "limit" in r["body"]["errors"][0]["message"]
    r = kernels.query_combined_kernels(filter="kernel_flavour:'x'")
    assert r["status_code"] == 400 and "kernel_flavour" in r["body"]["errors"][0]["message"]


def test_kernel_distinct_values_and_builds(kernels: SensorUpdatePolicy) -> None:
    r = kernels.query_kernels(distinct_field="release", filter="vendor:'ubuntu'")
    assert r["status_code"] == 200
    assert r["body"]["resources"] == ["5.15.0-119-generic", "5.15.0-126-generic", "5.15.0-131-generic"]
    r = kernels.query_kernels(distinct_field="no_such_field")
    assert r["status_code"] == 400 and "no_such_field" in r["body"]["errors"][0]["message"]
    r = kernels.query_combined_builds(platform="linux", stage="prod")
    assert r["status_code"] == 200
    versions = {b["sensor_version"] for b in r["body"]["resources"]}
    assert {"7.14.16703", "7.10.16303", "7.15.16807"} <= versions
    assert all(b["platform"] == "linux" and b["stage"] == "prod" for b in r["body"]["resources"])
    assert kernels.query_combined_builds(platform="beos")["status_code"] == 400


def test_calls_are_counted_per_operation(fleet: Fleet, hosts: Hosts, kernels: SensorUpdatePolicy) -> None:
    before = fleet.calls()
    hosts.query_devices_by_filter(limit=1)
    hosts.query_devices_by_filter_scroll(limit=1)
    hosts.get_device_details(ids=ids_for(hosts, "hostname:'web-01'"))
    kernels.query_combined_kernels(limit=1)
    after = fleet.calls()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["falcon.QueryDevicesByFilter"] == 2
    assert delta["falcon.QueryDevicesByFilterScroll"] == 1
    assert delta["falcon.GetDeviceDetails"] == 1
    assert delta["falcon.queryCombinedSensorUpdateKernels"] == 1
