"""What an Install really does to a host, and how SSM's patch state and patch list report it.

Documents (AWS Systems Manager user guide and API reference):
- "About predefined and custom patch baselines" (AWS-AmazonLinux2DefaultPatchBaseline: Security,
  Critical/Important, 7 days; predefined baselines assign compliance level Unspecified)
  https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-patch-baselines.html
- AWS-RunPatchBaseline, "Parameter name: InstallOverrideList" and "Valid YAML content formats"
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-aws-runpatchbaseline.html
- "Understanding patch compliance state values"
  https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-compliance-states.html
- API reference DescribeInstancePatches, PatchComplianceData, InstancePatchState
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeInstancePatches.html
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from botocore.exceptions import ClientError
from fleetsim_testkit import OLDER, group, patch, scenario_dict, wait_command

# One worker per module under xdist, so the module shares one fleetsim.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-patching")]

ACCOUNT = "111111111111"
BUCKET = "pc-evidence-alpha"
DOC = "AWS-RunPatchBaseline"
OLD_KERNEL = "5.10.100-1.amzn2.x86_64"
NEW_KERNEL = "5.10.300-1.amzn2.x86_64"
TODAY = dt.date.today().isoformat()

# Approved by the default baseline (Security, Critical/Important, released 7+ days ago): OLD, A, B, K.
# Not approved: LOW (severity) and NEW (released today).
APPROVED = {"ALAS2-OLD", "ALAS2-A", "ALAS2-B", "ALAS2-K"}
CATALOG = [
    # installed on every host from the start
    patch("ALAS2-OLD", "amazon_linux_2", released=OLDER, title="bash-4.2.46-34.amzn2"),
    patch("ALAS2-A", "amazon_linux_2", title="openssl-1.0.2k-24.amzn2.0.14"),
    patch("ALAS2-B", "amazon_linux_2", severity="Important", title="glibc-2.26-66.amzn2"),
    patch("ALAS2-K", "amazon_linux_2", kernel=NEW_KERNEL, title="kernel-5.10.300-1.amzn2"),
    patch("ALAS2-LOW", "amazon_linux_2", severity="Low", title="curl-8.3.0-1.amzn2.0.9"),
    patch("ALAS2-NEW", "amazon_linux_2", released=TODAY, title="sudo-1.8.23-10.amzn2.3.5"),
]
# How SSM names each package (DescribeInstancePatches KBId: ``name.arch``) and its versioned title
# (``name.arch:epoch:version-release``, the YUM format of an override list's title).
KBID = {
    "ALAS2-OLD": "bash.x86_64",
    "ALAS2-A": "openssl.x86_64",
    "ALAS2-B": "glibc.x86_64",
    "ALAS2-K": "kernel.x86_64",
    "ALAS2-LOW": "curl.x86_64",
    "ALAS2-NEW": "sudo.x86_64",
}
TITLE = {
    "ALAS2-A": "openssl.x86_64:0:1.0.2k-24.amzn2.0.14",
    "ALAS2-B": "glibc.x86_64:0:2.26-66.amzn2",
    "ALAS2-K": "kernel.x86_64:0:5.10.300-1.amzn2",
}

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("state", 2, kernel=OLD_KERNEL),
                    group("kern", 1, kernel=OLD_KERNEL),
                    group("norb", 1, kernel=OLD_KERNEL),
                    group("pend", 1, kernel=OLD_KERNEL),
                    group("ovr", 2, kernel=OLD_KERNEL),
                    group("list", 1, kernel=OLD_KERNEL),
                    group("bad", 1, kernel=OLD_KERNEL),
                    group("clean", 1, kernel=OLD_KERNEL, installed_until=TODAY),
                    group("pin", 3, kernel=OLD_KERNEL),
                ],
            },
            "faults": {"install_fails": ["state-02", "list-01", "clean-01"]},
        }
    ],
    catalog=CATALOG,
    evidence={"buckets": [BUCKET]},
)


def _install(fleet, names: list[str], **params: list[str]) -> str:
    ssm = fleet.client("ssm", ACCOUNT)
    command_id = ssm.send_command(
        DocumentName=DOC,
        InstanceIds=fleet.ids("alpha", *names),
        Parameters={"Operation": ["Install"], **params},
        MaxErrors="100%",
    )["Command"]["CommandId"]
    wait_command(ssm, command_id)
    return command_id


def _patch_state(fleet, name: str) -> dict:
    (state,) = fleet.client("ssm", ACCOUNT).describe_instance_patch_states(
        InstanceIds=fleet.ids("alpha", name)
    )["InstancePatchStates"]
    return state


def _assert_consistent(state: dict, host: dict) -> None:
    """The patch state's counts are what the ground truth says, relative to the approved patches."""
    missing, failed = set(host["missing"]) & APPROVED, set(host["failed"]) & APPROVED
    assert state["MissingCount"] == len(missing)
    assert state["FailedCount"] == len(failed)
    # Installed counts the approved patches installed; the rest installed are InstalledOther.
    assert state["InstalledCount"] == len(set(host["installed"]) & APPROVED)
    assert state["InstalledOtherCount"] == len(set(host["installed"]) - APPROVED)
    # Critical counts the compliance level the baseline assigns, which a predefined baseline leaves
    # Unspecified (user guide, predefined baselines): never the vendor severity.
    assert state["CriticalNonCompliantCount"] == 0
    assert state["SecurityNonCompliantCount"] == len(missing | failed)


def test_patch_state_after_install_matches_ground_truth(fleet):
    before = _patch_state(fleet, "state-01")
    assert before["Operation"] == "Scan"
    assert before["MissingCount"] == 3  # A, B and K, as of the scenario's last scan
    assert before["InstalledCount"] == 1

    command_id = _install(fleet, ["state-01", "state-02"])
    truth = fleet.truth("alpha")
    ok, bad = _patch_state(fleet, "state-01"), _patch_state(fleet, "state-02")
    for state, name in ((ok, "state-01"), (bad, "state-02")):
        assert state["Operation"] == "Install"
        assert state["SnapshotId"] == command_id
        assert state["OperationEndTime"] >= state["OperationStartTime"] > before["OperationEndTime"]
        _assert_consistent(state, truth[name])

    assert sorted(truth["state-01"]["installed"]) == sorted(APPROVED)
    assert sorted(truth["state-01"]["missing"]) == ["ALAS2-LOW", "ALAS2-NEW"]
    assert (ok["MissingCount"], ok["FailedCount"], ok["InstalledCount"]) == (0, 0, 4)
    assert bad["FailedCount"] >= 1 and truth["state-02"]["failed"]
    assert not set(truth["state-02"]["failed"]) & set(truth["state-02"]["installed"])


def test_patch_states_take_at_most_50_instance_ids(fleet):
    ssm = fleet.client("ssm", ACCOUNT)
    with pytest.raises(ClientError) as exc:
        ssm.describe_instance_patch_states(InstanceIds=[f"i-{n:017x}" for n in range(51)])
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    # Unknown ids are simply absent.
    assert (
        ssm.describe_instance_patch_states(InstanceIds=["i-00000000000000000"])["InstancePatchStates"] == []
    )


def test_kernel_patch_changes_the_kernel_after_reboot(fleet):
    assert fleet.truth("alpha")["kern-01"]["kernel"] == OLD_KERNEL
    _install(fleet, ["kern-01"], RebootOption=["RebootIfNeeded"])
    host = fleet.truth("alpha")["kern-01"]
    assert host["kernel"] == NEW_KERNEL
    assert "ALAS2-K" in host["installed"]
    (action,) = host["actions"]
    assert action["action"] == "ssm.install" and action["rebooted"] is True
    assert _patch_state(fleet, "kern-01")["InstalledPendingRebootCount"] == 0


def test_no_reboot_leaves_the_old_kernel_running(fleet):
    _install(fleet, ["norb-01"], RebootOption=["NoReboot"])
    host = fleet.truth("alpha")["norb-01"]
    assert "ALAS2-K" in host["installed"]
    assert host["kernel"] == OLD_KERNEL
    assert "rebooted" not in host["actions"][-1]
    state = _patch_state(fleet, "norb-01")
    # Every patch the NoReboot install applied awaits the reboot, not only the kernel
    # (compliance state values: INSTALLED_PENDING_REBOOT).
    assert state["InstalledPendingRebootCount"] == 3
    assert state["InstalledCount"] == 1  # ALAS2-OLD, installed before
    assert state["RebootOption"] == "NoReboot"
    assert "LastNoRebootInstallOperationTime" in state


def test_a_later_install_that_reboots_boots_the_kernel_installed_without_one(fleet):
    # A kernel installed with NoReboot is pending; the next RebootIfNeeded install, even of another
    # package, reboots into it (the reboot boots the newest installed kernel).
    _put_override(fleet, "overrides/pend-k.yaml", ["kernel.x86_64"])
    _put_override(fleet, "overrides/pend-a.yaml", ["openssl.x86_64"])
    url = f"s3://{BUCKET}/overrides/"
    _install(fleet, ["pend-01"], RebootOption=["NoReboot"], InstallOverrideList=[url + "pend-k.yaml"])
    assert fleet.truth("alpha")["pend-01"]["kernel"] == OLD_KERNEL
    assert _patch_state(fleet, "pend-01")["InstalledPendingRebootCount"] == 1
    _install(fleet, ["pend-01"], RebootOption=["RebootIfNeeded"], InstallOverrideList=[url + "pend-a.yaml"])
    host = fleet.truth("alpha")["pend-01"]
    assert host["kernel"] == NEW_KERNEL
    assert host["actions"][-1]["installed"] == ["ALAS2-A"] and host["actions"][-1]["rebooted"] is True
    assert _patch_state(fleet, "pend-01")["InstalledPendingRebootCount"] == 0


def _put_override(fleet, key: str, ids: list[str], titles: dict[str, str] | None = None) -> None:
    """An override list in the documented Linux format: ``id`` name.arch, optional versioned ``title``."""
    entries = [{"id": i, **({"title": titles[i]} if titles and i in titles else {})} for i in ids]
    body = yaml.safe_dump({"patches": entries})
    fleet.evidence_s3().put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def test_install_override_list_installs_exactly_the_listed_patches(fleet):
    _put_override(fleet, "overrides/only-b.yaml", ["glibc.x86_64"])
    _put_override(fleet, "overrides/new-and-low.yaml", ["sudo.x86_64", "cur*"])
    s3_url = f"s3://{BUCKET}/overrides/only-b.yaml"
    https_url = f"https://s3.us-east-1.amazonaws.com/{BUCKET}/overrides/new-and-low.yaml"
    _install(fleet, ["ovr-01"], InstallOverrideList=[s3_url])
    _install(fleet, ["ovr-02"], InstallOverrideList=[https_url])

    truth = fleet.truth("alpha")
    assert truth["ovr-01"]["installed"] == ["ALAS2-B", "ALAS2-OLD"]
    assert truth["ovr-01"]["missing"] == ["ALAS2-A", "ALAS2-K", "ALAS2-LOW", "ALAS2-NEW"]
    assert truth["ovr-01"]["actions"][-1]["installed"] == ["ALAS2-B"]
    assert truth["ovr-01"]["kernel"] == OLD_KERNEL  # the kernel patch was not in the list
    # The list overrides the baseline: patches it would not approve are installed when listed.
    assert truth["ovr-02"]["installed"] == ["ALAS2-LOW", "ALAS2-NEW", "ALAS2-OLD"]
    assert truth["ovr-02"]["missing"] == ["ALAS2-A", "ALAS2-B", "ALAS2-K"]
    assert _patch_state(fleet, "ovr-01")["InstallOverrideList"] == s3_url
    assert _patch_state(fleet, "ovr-02")["InstallOverrideList"] == https_url
    # The counts measure the baseline, not the list: ovr-02's listed patches are InstalledOther and the
    # approved ones it did not list are still Missing.
    state = _patch_state(fleet, "ovr-02")
    assert (state["MissingCount"], state["InstalledOtherCount"], state["InstalledCount"]) == (3, 2, 1)


def test_override_list_matches_package_ids_and_titles_never_catalog_ids(fleet):
    """AWS-RunPatchBaseline, "Valid YAML content formats": ``id`` name.arch (wildcards), ``title`` the
    version in ``{name}.{architecture}:{epoch}:{version}-{release}``; a pinned title installs only that
    version; an advisory id (the catalog's ALAS2-...) names no package."""
    _put_override(fleet, "overrides/pin-right.yaml", ["openssl.x86_64"], {"openssl.x86_64": TITLE["ALAS2-A"]})
    _put_override(
        fleet, "overrides/pin-wrong.yaml", ["openssl.x86_64"], {"openssl.x86_64": "*:0:1.0.2k-99.amzn2"}
    )
    _put_override(fleet, "overrides/advisory.yaml", ["ALAS2-A", "ALAS2-B"])
    url = f"s3://{BUCKET}/overrides/"
    _install(fleet, ["pin-01"], InstallOverrideList=[url + "pin-right.yaml"])
    _install(fleet, ["pin-02"], InstallOverrideList=[url + "pin-wrong.yaml"])
    _install(fleet, ["pin-03"], InstallOverrideList=[url + "advisory.yaml"])
    truth = fleet.truth("alpha")
    assert truth["pin-01"]["actions"][-1]["installed"] == ["ALAS2-A"]
    assert truth["pin-02"]["actions"][-1]["installed"] == []
    assert truth["pin-03"]["actions"][-1]["installed"] == []
    assert "ALAS2-A" in truth["pin-03"]["missing"]


def test_install_override_list_must_exist(fleet):
    ssm = fleet.client("ssm", ACCOUNT)
    for url in (f"s3://{BUCKET}/overrides/absent.yaml", "s3://no-such-bucket-anywhere/x.yaml"):
        with pytest.raises(ClientError) as exc:
            ssm.send_command(
                DocumentName=DOC,
                InstanceIds=fleet.ids("alpha", "bad-01"),
                Parameters={"Operation": ["Install"], "InstallOverrideList": [url]},
            )
        assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert fleet.truth("alpha")["bad-01"]["actions"] == []


def _patches(fleet, name: str, **kw) -> dict[str, str]:
    rows = fleet.client("ssm", ACCOUNT).describe_instance_patches(
        InstanceId=fleet.ids("alpha", name)[0], **kw
    )
    return {p["KBId"]: p["State"] for p in rows["Patches"]}


def test_instance_patches_list_the_baselines_states(fleet):
    """API reference DescribeInstancePatches / PatchComplianceData, and "Understanding patch compliance
    state values": KBId is name.arch, State one of INSTALLED, MISSING, FAILED...; a patch the baseline
    does not approve and the node lacks (LOW, NEW) has no row; the State filter takes "Failed"."""
    before = _patches(fleet, "list-01")
    assert before == {
        "bash.x86_64": "INSTALLED",
        "openssl.x86_64": "MISSING",
        "glibc.x86_64": "MISSING",
        "kernel.x86_64": "MISSING",
    }

    _install(fleet, ["list-01"])
    host = fleet.truth("alpha")["list-01"]
    after = _patches(fleet, "list-01")
    assert {k for k, s in after.items() if s == "INSTALLED"} == {KBID[p] for p in host["installed"]}
    assert {k for k, s in after.items() if s == "FAILED"} == {KBID[p] for p in host["failed"]} != set()
    assert {k for k, s in after.items() if s == "MISSING"} == {
        KBID[p] for p in set(host["missing"]) & APPROVED
    }
    assert "curl.x86_64" not in after and "sudo.x86_64" not in after

    failed_only = _patches(fleet, "list-01", Filters=[{"Key": "State", "Values": ["Failed"]}])
    assert failed_only == {KBID[p]: "FAILED" for p in host["failed"]}
    rows = fleet.client("ssm", ACCOUNT).describe_instance_patches(InstanceId=host["host_id"])["Patches"]
    titles = {r["KBId"]: r["Title"] for r in rows}
    assert titles["glibc.x86_64"] == TITLE["ALAS2-B"]

    with pytest.raises(ClientError) as exc:
        fleet.client("ssm", ACCOUNT).describe_instance_patches(InstanceId="i-00000000000000000")
    assert exc.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_failed_install_has_a_nonzero_response_code_even_with_nothing_to_install(fleet):
    """A Failed invocation always reports a non-zero code (it used to say 0 and "completed")."""
    (host_id,) = fleet.ids("alpha", "clean-01")
    assert fleet.truth("alpha")["clean-01"]["missing"] == []
    command_id = _install(fleet, ["clean-01"])
    inv = fleet.client("ssm", ACCOUNT).get_command_invocation(CommandId=command_id, InstanceId=host_id)
    assert inv["Status"] == "Failed"
    assert inv["ResponseCode"] != 0
    assert inv["StandardOutputContent"].startswith("Patch operation Install FAILED")
    assert fleet.truth("alpha")["clean-01"]["failed"] == []
