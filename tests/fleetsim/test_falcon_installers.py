"""The Falcon Sensor Download API through FalconPy's ``SensorDownload`` (1.6.6): the installer catalog in
its v1/v2 shapes, FQL filters, sort and limits, ids and entities, the download (bytes whose SHA-256 is the
id), the 404 and 400 answers, the CCID of each API client's customer, and the catalog's agreement with the
sensor-update builds and the kernel support table.
"""

from __future__ import annotations

import hashlib

import pytest
from falconpy import SensorDownload, SensorUpdatePolicy
from fleetsim_testkit import Fleet, group, scenario_dict

from fleetsim.falcon.installers import CCID_PATTERN
from fleetsim.falcon.wire import short_cid
from fleetsim.seed import falcon_cid

SECRET = "fleetsim-falcon-secret"
PARENT = "fleetsim-falcon"
KERNEL = "5.15.0-119-generic"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_dl",
            "aws": {
                "account_id": "171717171717",
                "region": "us-east-1",
                "groups": [
                    group("u", 1, "ubuntu_22_04", kernel=KERNEL, falcon_sensor="7.13.16606"),
                    group("w", 1, "windows_2022"),
                ],
            },
        },
        {
            "id": "t_other",
            "aws": {"account_id": "181818181818", "region": "us-east-1", "groups": [group("o", 1)]},
        },
    ],
    catalog=[],
    falcon={
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.14.16703", "7.15.16807"],
            }
        ]
    },
)
VERSIONS = {"7.13.16606", "7.14.16703", "7.15.16807"}
FIELDS_V1 = {
    "sha256", "name", "description", "platform", "os", "os_version", "version", "release_date",
    "file_size", "file_type",
}  # fmt: skip


@pytest.fixture(scope="module")
def sd(fleet: Fleet) -> SensorDownload:
    return SensorDownload(client_id="t_dl", client_secret=SECRET, base_url=fleet.url, timeout=10)


def test_catalog_v1_and_v2_shapes_and_versions(sd: SensorDownload) -> None:
    v1 = sd.get_combined_sensor_installers_by_query(limit=500)
    assert v1["status_code"] == 200, v1
    rows = v1["body"]["resources"]
    assert rows and all(set(r) == FIELDS_V1 for r in rows)
    assert {r["version"] for r in rows} == VERSIONS
    assert {r["platform"] for r in rows} == {"linux", "windows"}
    assert v1["body"]["meta"]["pagination"]["total"] == len(rows)
    # "0 is the latest item": newest release first.
    dates = [r["release_date"] for r in rows]
    assert dates == sorted(dates, reverse=True) and rows[0]["version"] == "7.15.16807"
    v2 = sd.get_combined_sensor_installers_by_query_v2(limit=500)["body"]["resources"]
    assert all(set(r) == FIELDS_V1 | {"architectures"} and r["architectures"] == ["x86_64"] for r in v2)
    ubuntu = [r for r in v2 if r["os"] == "Ubuntu" and r["version"] == "7.14.16703"]
    assert [r["name"] for r in ubuntu] == ["falcon-sensor_7.14.0-16703_amd64.deb"]
    assert ubuntu[0]["file_type"] == "deb" and ubuntu[0]["file_size"] > 0


def test_catalog_agrees_with_the_sensor_update_builds(fleet: Fleet, sd: SensorDownload) -> None:
    builds = SensorUpdatePolicy(auth_object=sd).query_combined_builds(platform="linux")["body"]["resources"]
    offered = {b["sensor_version"] for b in builds}
    linux = {
        r["version"]
        for r in sd.get_combined_sensor_installers_by_query_v2(filter="platform:'linux'", limit=500)["body"][
            "resources"
        ]
    }
    assert offered <= linux


def test_filters_sort_and_limits(sd: SensorDownload) -> None:
    rows = sd.get_combined_sensor_installers_by_query_v2(
        filter="os:'RHEL/CentOS/Oracle'+os_version:'9'", sort="version|asc"
    )["body"]["resources"]
    assert [r["version"] for r in rows] == sorted(VERSIONS)
    assert all(r["name"].endswith(".el9.x86_64.rpm") for r in rows)
    windows = sd.get_combined_sensor_installers_by_query_v2(filter="platform:'windows'+version:'7.15.16807'")
    [win] = windows["body"]["resources"]
    assert win["file_type"] == "exe" and win["os"] == "Windows"
    page = sd.get_combined_sensor_installers_by_query_v2(limit=2, offset=2)["body"]
    assert len(page["resources"]) == 2 and page["meta"]["pagination"]["offset"] == 2
    too_many = sd.get_combined_sensor_installers_by_query_v2(limit=501)
    assert too_many["status_code"] == 400 and "limit" in too_many["body"]["errors"][0]["message"]
    bad = sd.get_combined_sensor_installers_by_query_v2(filter="flavour:'x'")
    assert bad["status_code"] == 400
    bad_sort = sd.get_combined_sensor_installers_by_query_v2(sort="sha256.asc")
    assert bad_sort["status_code"] == 400


def test_ids_entities_and_download(sd: SensorDownload) -> None:
    ids = sd.get_sensor_installers_by_query_v2(filter="os:'Amazon Linux'+os_version:'2'")["body"]["resources"]
    assert len(ids) == len(VERSIONS)
    entities = sd.get_sensor_installer_entities_v2(ids=ids)
    assert entities["status_code"] == 200
    assert {e["sha256"] for e in entities["body"]["resources"]} == set(ids)
    content = sd.download_sensor_installer_v2(id=ids[0])
    assert isinstance(content, bytes) and hashlib.sha256(content).hexdigest() == ids[0]
    assert sd.download_sensor_installer(id=ids[0]) == content  # v1 serves the same bytes
    unknown = "0" * 64
    missing = sd.download_sensor_installer_v2(id=unknown)
    assert isinstance(missing, dict) and missing["status_code"] == 404
    partly = sd.get_sensor_installer_entities_v2(ids=[ids[0], unknown])
    assert partly["status_code"] == 200 and len(partly["body"]["resources"]) == 1
    assert partly["body"]["errors"][0]["id"] == unknown
    none = sd.get_sensor_installer_entities(ids=[unknown])
    assert none["status_code"] == 404
    no_id = sd.download_sensor_installer_v2(parameters={})
    assert isinstance(no_id, dict) and no_id["status_code"] == 400


def test_ccid_is_the_clients_customer(fleet: Fleet, sd: SensorDownload) -> None:
    [mine] = sd.get_sensor_installer_ccid()["body"]["resources"]
    assert CCID_PATTERN.match(mine) and short_cid(mine) == short_cid(falcon_cid("t_dl"))
    other = SensorDownload(
        client_id=PARENT, client_secret=SECRET, member_cid=falcon_cid("t_other"), base_url=fleet.url
    )
    [theirs] = other.get_sensor_installer_ccid()["body"]["resources"]
    assert short_cid(theirs) == short_cid(falcon_cid("t_other")) and theirs != mine
    parent = SensorDownload(client_id=PARENT, client_secret=SECRET, base_url=fleet.url)
    [own] = parent.get_sensor_installer_ccid()["body"]["resources"]
    assert own not in (mine, theirs)  # the MSSP parent's own CID, where no tenant device is


def test_a_token_is_required(fleet: Fleet) -> None:
    anonymous = SensorDownload(access_token="not-issued", base_url=fleet.url)
    assert anonymous.get_combined_sensor_installers_by_query_v2()["status_code"] == 401
