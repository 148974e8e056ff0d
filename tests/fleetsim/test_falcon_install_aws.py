"""The Falcon sensor installed on AWS through Run Command of the install document Terraform declares
(include/terraform/modules/falcon_install_document), driven with boto3 and FalconPy as the product would:
the installer downloaded from the Sensor Download API and staged in S3, the CID and token in SecureString
parameters, SendCommand by document name with InstallerUrl and InstallerSha256.

Covers: success (the invocation's two steps, the device record appearing only after the registration
delay), each fault (install fails, other CID, reduced-functionality mode), bad input refused by SendCommand
(InvalidParameters for the allowedPattern, unknown and missing parameters), a checksum that differs, a
missing or undecryptable parameter, a package for another OS, an anonymous https URL, MaxErrors stopping
later invocations, and that no output ever holds the CID or the token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from falconpy import Hosts, SensorDownload
from fleetsim_testkit import Fleet, group, invocations, scenario_dict, wait_command, wait_for

from fleetsim.falcon.wire import short_cid
from fleetsim.seed import falcon_cid

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-falcon-aws")]

TENANT = "cu_alpha"  # a tenant root of include/terraform/tenants with Falcon: fleetsim applies it
ACCOUNT, REGION = "111111111111", "us-east-1"
DOCUMENT = "Patchcycle-FalconSensorInstall"
CID_PARAMETER = "/patchcycle/cu_alpha/falcon/cid"
TOKEN_PARAMETER = "/patchcycle/cu_alpha/falcon/installation-token"
TOKEN_VALUE = "9f2c41aa07be4c8e"
BUCKET = "cu-alpha-falcon-installers"
SECRET = "fleetsim-falcon-secret"
VERSION = "7.15.16807"
OLD_KERNEL = "5.15.0-119-generic"  # 7.15 supports it
NEW_KERNEL = "5.15.0-131-generic"  # no sensor of the table supports it
REGISTRATION_SECONDS = 2.0

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "aws": {
                "account_id": ACCOUNT,
                "region": REGION,
                "groups": [
                    group("al", 8, "amazon_linux_2", falcon_sensor=None, environment="staging"),
                    group("ub", 3, "ubuntu_22_04", kernel=OLD_KERNEL, falcon_sensor=None),
                    group("ubnew", 1, "ubuntu_22_04", kernel=NEW_KERNEL, falcon_sensor=None),
                    group("wn", 1, "windows_2022", falcon_sensor=None),
                    group("ax", 3, "amazon_linux_2", falcon_sensor=None, environment="batch"),
                ],
            },
            "faults": {
                "falcon_install_fails": ["al-02", "ax-01", "ax-02", "ax-03"],
                "falcon_registers_other_cid": ["al-03"],
                "agent_offline": ["al-08"],
            },
        }
    ],
    catalog=[],
    terraform={"tenants": [TENANT]},
    falcon={
        "kernels": [
            {
                "release": OLD_KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.14.16703", VERSION],
            }
        ]
    },
)
SCENARIO["timings"].update(falcon_registration_seconds=REGISTRATION_SECONDS)


@pytest.fixture(scope="module")
def sensor_download(fleet: Fleet) -> SensorDownload:
    return SensorDownload(client_id=TENANT, client_secret=SECRET, base_url=fleet.url, timeout=10)


@pytest.fixture(scope="module")
def hosts_api(fleet: Fleet) -> Hosts:
    return Hosts(client_id=TENANT, client_secret=SECRET, base_url=fleet.url, timeout=10)


@pytest.fixture(scope="module")
def staged(fleet: Fleet, sensor_download: SensorDownload) -> dict[str, dict[str, str]]:
    """The product's preparation: each OS's installer downloaded from Falcon and put in S3; the CCID and
    the installation token in their SecureString parameters."""
    s3 = fleet.client("s3", ACCOUNT, REGION)
    s3.create_bucket(Bucket=BUCKET)
    staged: dict[str, dict[str, str]] = {}
    for label, fql in (
        ("al2", "os:'Amazon Linux'+os_version:'2'"),
        ("ubuntu", "os:'Ubuntu'"),
        ("windows", "platform:'windows'"),
    ):
        [installer] = sensor_download.get_combined_sensor_installers_by_query_v2(
            filter=f"{fql}+version:'{VERSION}'"
        )["body"]["resources"]
        content = sensor_download.download_sensor_installer_v2(id=installer["sha256"])
        assert hashlib.sha256(content).hexdigest() == installer["sha256"]
        key = f"falcon/{installer['name']}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=content)
        staged[label] = {"url": f"s3://{BUCKET}/{key}", "sha": installer["sha256"], "name": installer["name"]}
    [ccid] = sensor_download.get_sensor_installer_ccid()["body"]["resources"]
    ssm = fleet.client("ssm", ACCOUNT, REGION)
    ssm.put_parameter(Name=CID_PARAMETER, Value=ccid, Type="SecureString")
    ssm.put_parameter(Name=TOKEN_PARAMETER, Value=TOKEN_VALUE, Type="SecureString")
    staged["ccid"] = {"value": ccid}
    return staged


def ssm(fleet: Fleet) -> Any:
    return fleet.client("ssm", ACCOUNT, REGION)


def ids(fleet: Fleet, *names: str) -> list[str]:
    return fleet.ids(TENANT, *names)


def send(fleet: Fleet, instance_ids: list[str], installer: dict[str, str], **extra: Any) -> str:
    parameters = {"InstallerUrl": [installer["url"]], "InstallerSha256": [installer["sha"]]}
    parameters.update(extra.pop("parameters", {}))
    return ssm(fleet).send_command(
        DocumentName=DOCUMENT, InstanceIds=instance_ids, Parameters=parameters, **extra
    )["Command"]["CommandId"]


def step(fleet: Fleet, command_id: str, instance_id: str, name: str) -> dict[str, Any]:
    return ssm(fleet).get_command_invocation(CommandId=command_id, InstanceId=instance_id, PluginName=name)


def records(hosts_api: Hosts, name: str) -> list[dict[str, Any]]:
    found = hosts_api.query_devices_by_filter(filter=f"hostname:'{name}'")["body"]["resources"]
    return hosts_api.get_device_details(ids=found)["body"]["resources"] if found else []


def no_secret_in(fleet: Fleet, command_id: str, staged: dict[str, Any]) -> None:
    """Neither the CID nor the token appears in anything the command shows."""
    shown = json.dumps(invocations(ssm(fleet), command_id), default=str)
    shown += json.dumps(ssm(fleet).list_commands(CommandId=command_id)["Commands"], default=str)
    for secret in (staged["ccid"]["value"], TOKEN_VALUE, short_cid(staged["ccid"]["value"])):
        assert secret.lower() not in shown.lower()


def test_the_document_is_the_one_terraform_applied(fleet: Fleet) -> None:
    described = ssm(fleet).describe_document(Name=DOCUMENT)["Document"]
    names = {p["Name"] for p in described["Parameters"]}
    assert names == {"InstallerUrl", "InstallerSha256", "CidParameterName", "TokenParameterName"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in described["Parameters"]}
    assert defaults["CidParameterName"] == CID_PARAMETER and defaults["TokenParameterName"] == TOKEN_PARAMETER


def test_install_succeeds_and_the_device_registers_after_the_delay(
    fleet: Fleet, staged: dict[str, Any], hosts_api: Hosts
) -> None:
    [al1] = ids(fleet, "al-01")
    command_id = send(fleet, [al1], staged["al2"])
    command = wait_command(ssm(fleet), command_id)
    assert command["Status"] == "Success" and command["DocumentName"] == DOCUMENT
    [inv] = invocations(ssm(fleet), command_id).values()
    plugins = {p["Name"]: p for p in inv["CommandPlugins"]}
    assert list(plugins) == ["installFalconLinux", "installFalconWindows"]
    assert plugins["installFalconLinux"]["Status"] == "Success"
    assert plugins["installFalconLinux"]["ResponseCode"] == 0
    assert plugins["installFalconWindows"]["StatusDetails"] == "Skipped"
    linux = step(fleet, command_id, al1, "installFalconLinux")
    assert linux["Status"] == "Success" and linux["StandardOutputContent"].startswith(
        "falcon sensor installed: aid="
    )
    with pytest.raises(ClientError) as no_plugin:  # two steps: the step must be named
        ssm(fleet).get_command_invocation(CommandId=command_id, InstanceId=al1)
    assert no_plugin.value.response["Error"]["Code"] == "InvalidPluginName"
    truth = fleet.truth(TENANT)["al-01"]
    registers_at = truth["falcon"]["registered_at"]
    aid = linux["StandardOutputContent"].strip().split("aid=")[1]
    assert truth["falcon"]["device_id"] == aid and truth["falcon"]["version"] == f"{VERSION}.0"
    assert any(
        a["action"] == "falcon.install" and a["via"].startswith(f"ssm:{DOCUMENT}:") for a in truth["actions"]
    )
    [record] = wait_for(lambda: records(hosts_api, "al-01"), bool, timeout=20)
    seen = time.time()
    assert seen >= dt.datetime.fromisoformat(registers_at).timestamp()  # never before it registered
    ended = dt.datetime.fromisoformat(linux["ExecutionEndDateTime"]).timestamp()
    assert dt.datetime.fromisoformat(registers_at).timestamp() - ended == pytest.approx(
        REGISTRATION_SECONDS, abs=0.01
    )
    assert record["device_id"] == aid and record["agent_version"] == f"{VERSION}.0"
    assert short_cid(record["cid"]) == short_cid(falcon_cid(TENANT))
    assert record["instance_id"] == al1
    no_secret_in(fleet, command_id, staged)


def test_faults_fail_or_hide_the_sensor(fleet: Fleet, staged: dict[str, Any], hosts_api: Hosts) -> None:
    al2, al3, ubnew = ids(fleet, "al-02", "al-03", "ubnew-01")
    command_id = send(fleet, [al2, al3], staged["al2"], MaxErrors="1")
    assert wait_command(ssm(fleet), command_id)["Status"] == "Success"  # one error is within MaxErrors
    failed = step(fleet, command_id, al2, "installFalconLinux")
    assert failed["Status"] == "Failed" and failed["ResponseCode"] == 1
    assert "scriptlet failed" in failed["StandardErrorContent"]
    other = step(fleet, command_id, al3, "installFalconLinux")
    assert other["Status"] == "Success"  # the sensor installed; it registered elsewhere
    truth = fleet.truth(TENANT)
    assert truth["al-02"]["falcon"] is None
    assert short_cid(truth["al-03"]["falcon"]["cid"]) != short_cid(falcon_cid(TENANT))
    rfm_command = send(fleet, [ubnew], staged["ubuntu"])
    assert wait_command(ssm(fleet), rfm_command)["Status"] == "Failed"
    rfm = step(fleet, rfm_command, ubnew, "installFalconLinux")
    assert (
        rfm["ResponseCode"] == 1 and rfm["StandardErrorContent"] == "sensor in reduced functionality mode\n"
    )
    [record] = wait_for(lambda: records(hosts_api, "ubnew-01"), bool, timeout=20)
    assert record["reduced_functionality_mode"] == "yes"  # installed and registered, but degraded
    # The other-CID host never shows to the tenant, even once its registration delay has passed.
    registered = dt.datetime.fromisoformat(
        fleet.truth(TENANT)["al-03"]["falcon"]["registered_at"]
    ).timestamp()
    wait_for(time.time, lambda now: now > registered + 0.2, timeout=20)
    assert records(hosts_api, "al-03") == []


def test_send_command_refuses_bad_parameters(fleet: Fleet, staged: dict[str, Any]) -> None:
    [al4] = ids(fleet, "al-04")
    good = staged["al2"]
    cases = [
        {"InstallerUrl": [good["url"]], "InstallerSha256": ["NOT-A-SHA"]},
        {"InstallerUrl": ["ftp://example.com/x.rpm"], "InstallerSha256": [good["sha"]]},
        {"InstallerUrl": [good["url"]], "InstallerSha256": [good["sha"]], "Cid": ["x"]},
        {"InstallerSha256": [good["sha"]]},
        {"InstallerUrl": [good["url"]], "InstallerSha256": [good["sha"]], "CidParameterName": ["no-slash"]},
        {"InstallerUrl": [good["url"], good["url"]], "InstallerSha256": [good["sha"]]},
    ]
    for parameters in cases:
        with pytest.raises(ClientError) as refused:
            ssm(fleet).send_command(DocumentName=DOCUMENT, InstanceIds=[al4], Parameters=parameters)
        assert refused.value.response["Error"]["Code"] == "InvalidParameters", parameters
        assert "NOT-A-SHA" not in refused.value.response["Error"]["Message"]
    assert not [a for a in fleet.truth(TENANT)["al-04"]["actions"] if a["action"] == "ssm.runCommand"]


def test_checksum_parameters_package_and_url_failures(fleet: Fleet, staged: dict[str, Any]) -> None:
    al4, al5, al6, ub1, wn1 = ids(fleet, "al-04", "al-05", "al-06", "ub-01", "wn-01")
    sms = ssm(fleet)
    wrong_sha = send(fleet, [al4], {**staged["al2"], "sha": staged["ubuntu"]["sha"]})
    missing = send(
        fleet, [al5], staged["al2"], parameters={"TokenParameterName": ["/patchcycle/cu_alpha/nope"]}
    )
    kms = fleet.client("kms", ACCOUNT, REGION)
    key = kms.create_key(Description="falcon secrets")["KeyMetadata"]["KeyId"]
    sms.put_parameter(Name="/patchcycle/cu_alpha/falcon/cmk-token", Value="t", Type="SecureString", KeyId=key)
    undecryptable = send(
        fleet,
        [al6],
        staged["al2"],
        parameters={"TokenParameterName": ["/patchcycle/cu_alpha/falcon/cmk-token"]},
    )
    wrong_os = send(fleet, [ub1], staged["al2"])  # an .rpm on Ubuntu
    anonymous = send(
        fleet, [wn1], {**staged["windows"], "url": f"https://{BUCKET}.s3.{REGION}.amazonaws.com/falcon/x.exe"}
    )
    expected = {
        wrong_sha: (al4, "installFalconLinux", 1, "sensor package checksum differs"),
        missing: (al5, "installFalconLinux", 255, "ParameterNotFound"),
        undecryptable: (al6, "installFalconLinux", 255, "kms:Decrypt"),
        wrong_os: (ub1, "installFalconLinux", 127, "yum: command not found"),
        anonymous: (wn1, "installFalconWindows", 1, "(403) Forbidden"),
    }
    for command_id, (instance_id, name, code, message) in expected.items():
        assert wait_command(sms, command_id)["Status"] == "Failed"
        result = step(fleet, command_id, instance_id, name)
        assert (result["Status"], result["ResponseCode"]) == ("Failed", code), result
        assert message in result["StandardErrorContent"]
        no_secret_in(fleet, command_id, staged)
    truth = fleet.truth(TENANT)
    assert truth["al-04"]["falcon"] is None and truth["wn-01"]["falcon"] is None
    # The Linux script installs the package before it reads the parameters: installed, never registered.
    assert truth["al-05"]["falcon"] is None
    assert truth["al-05"]["actions"][-1]["falcon"] == "package_only"


def test_windows_installs_and_max_errors_stops_the_rest(fleet: Fleet, staged: dict[str, Any]) -> None:
    # A Windows host whose earlier, anonymous attempt failed, now with the S3 URL.
    [wn1] = ids(fleet, "wn-01")
    command_id = send(fleet, [wn1], staged["windows"])
    assert wait_command(ssm(fleet), command_id)["Status"] == "Success"
    windows = step(fleet, command_id, wn1, "installFalconWindows")
    assert windows["StandardOutputContent"] == "falcon sensor installed and running\n"
    assert step(fleet, command_id, wn1, "installFalconLinux")["StatusDetails"] == "Skipped"
    # Targets by tag, one at a time, no error tolerated: the first fails, the others never start.
    ec2 = fleet.client("ec2", ACCOUNT, REGION)
    targets = ids(fleet, "ax-01", "ax-02", "ax-03")
    ec2.create_tags(Resources=targets, Tags=[{"Key": "FalconWave", "Value": "ax"}])
    batch = ssm(fleet).send_command(
        DocumentName=DOCUMENT,
        Targets=[{"Key": "tag:FalconWave", "Values": ["ax"]}],
        Parameters={"InstallerUrl": [staged["al2"]["url"]], "InstallerSha256": [staged["al2"]["sha"]]},
        MaxConcurrency="1",
        MaxErrors="0",
    )["Command"]["CommandId"]
    assert wait_command(ssm(fleet), batch)["Status"] == "Failed"
    statuses = {i["InstanceId"]: i["Status"] for i in invocations(ssm(fleet), batch).values()}
    assert sorted(statuses) == sorted(targets)
    assert sorted(statuses.values()) == ["Cancelled", "Cancelled", "Failed"]
    truth = fleet.truth(TENANT)
    ran = [
        n for n in ("ax-01", "ax-02", "ax-03") for a in truth[n]["actions"] if a.get("command_id") == batch
    ]
    assert all(truth[n]["falcon"] is None for n in ("ax-01", "ax-02", "ax-03"))
    assert len([n for n in ran if truth[n]["actions"][-1].get("exit_code") == 1]) == 1


def test_an_offline_instance_times_out_and_nothing_installs(fleet: Fleet, staged: dict[str, Any]) -> None:
    [al8] = ids(fleet, "al-08")
    command_id = send(fleet, [al8], staged["al2"])
    assert wait_command(ssm(fleet), command_id)["Status"] == "Failed"
    [inv] = invocations(ssm(fleet), command_id).values()
    assert (inv["Status"], inv["StatusDetails"]) == ("TimedOut", "Delivery Timed Out")
    assert fleet.truth(TENANT)["al-08"]["falcon"] is None
