"""Run Command as the product drives it: AWS-RunPatchBaseline by ids or by tag, lifecycles, rate control."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError
from fleetsim_testkit import TERMINAL, group, invocations, patch, scenario_dict, wait_command, wait_for

# One worker per module under xdist, so the module shares one fleetsim.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-run-command")]

ACCOUNT, OTHER, LOSSY = "111111111111", "222222222222", "333333333333"
DOC = "AWS-RunPatchBaseline"
INSTALL = {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]}

# One group per test that sends commands, so no test sees another's effects.
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("life", 1, environment="life"),
                    group("plug-lin", 1, environment="plugins"),
                    group("plug-win", 1, "windows_2019", environment="plugins"),
                    group("tag", 3, environment="tagged"),
                    group("untag", 2, environment="tagged-not"),
                    group("bulk", 55, environment="bulk"),
                    group("seq", 4, environment="seq"),
                    group("par", 3, environment="par"),
                    group("mefail", 2, environment="maxerrors"),
                    group("meok", 3, environment="maxerrors"),
                    group("within", 3, environment="within"),
                    group("off", 2, environment="offline"),
                    group("err", 1, environment="errors"),
                    group("xacct", 1, environment="xacct"),
                    group("rate", 1, environment="rate"),
                ],
            },
            "faults": {
                "install_fails": ["mefail-01", "mefail-02", "within-02"],
                "agent_offline": ["off-02"],
            },
        },
        {"id": "birch", "aws": {"account_id": OTHER, "region": "us-east-1", "groups": [group("bi", 1)]}},
        {
            "id": "cedar",
            "aws": {
                "account_id": LOSSY,
                "region": "us-east-1",
                "groups": [group("lost", 1)],
                "lost_install_answers": 1,
            },
        },
    ],
    catalog=[
        patch("ALAS2-1", "amazon_linux_2"),
        patch("ALAS2-2", "amazon_linux_2"),
        # The Windows default baseline approves CriticalUpdates/SecurityUpdates (user guide, "About
        # predefined and custom patch baselines"), not the Linux "Security" classification.
        patch("KB1", "windows_2019", classification="SecurityUpdates"),
    ],
)


def _ssm(fleet):
    return fleet.client("ssm", ACCOUNT)


def _error_code(call) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"]


def test_install_by_instance_ids_moves_pending_inprogress_success(fleet):
    ssm = _ssm(fleet)
    (host_id,) = fleet.ids("alpha", "life-01")
    command = ssm.send_command(
        DocumentName=DOC, InstanceIds=[host_id], Parameters=INSTALL, Comment="cycle 1"
    )["Command"]
    assert command["Status"] == "Pending"
    assert command["InstanceIds"] == [host_id]
    assert command["TargetCount"] == 1
    assert command["Parameters"]["Operation"] == ["Install"]
    assert (command["MaxConcurrency"], command["MaxErrors"]) == ("50", "0")

    seen_invocation: list[str] = []
    seen_command: list[str] = []

    def probe():
        inv = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=host_id)
        cmd = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
        for seen, status in ((seen_invocation, inv["Status"]), (seen_command, cmd["Status"])):
            if not seen or seen[-1] != status:
                seen.append(status)
        return inv

    final = wait_for(probe, lambda inv: inv["Status"] in TERMINAL, every=0.02)
    # Each distinct status in order, never going back; at least two of them observed.
    assert seen_invocation[-1] == "Success" and seen_command[-1] == "Success"
    for seen in (seen_invocation, seen_command):
        assert len(seen) >= 2, seen
        assert seen == [s for s in ("Pending", "InProgress", "Success") if s in seen], seen
    assert final["ResponseCode"] == 0
    assert final["PluginName"] == "PatchLinux"
    assert final["StandardOutputContent"].startswith("Patch operation Install completed")
    assert final["Comment"] == "cycle 1"
    done = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (done["CompletedCount"], done["ErrorCount"]) == (1, 0)


def test_invocation_details_show_the_platform_plugin_and_output(fleet):
    ssm = _ssm(fleet)
    linux, windows = fleet.ids("alpha", "plug-lin-01", "plug-win-01")
    command_id = ssm.send_command(DocumentName=DOC, InstanceIds=[linux, windows], Parameters=INSTALL)[
        "Command"
    ]["CommandId"]
    # A plugin reports its output and response code once it has ended, not before.
    for early in invocations(ssm, command_id).values():
        (plugin,) = early["CommandPlugins"]
        assert ("Output" in plugin) == ("ResponseCode" in plugin) == (plugin["Status"] in TERMINAL)

    assert wait_command(ssm, command_id)["Status"] == "Success"
    rows = invocations(ssm, command_id)
    assert set(rows) == {linux, windows}
    plugins = {iid: row["CommandPlugins"] for iid, row in rows.items()}
    assert [p["Name"] for p in plugins[linux]] == ["PatchLinux"]
    assert [p["Name"] for p in plugins[windows]] == ["PatchWindows"]
    for iid, (plugin,) in plugins.items():
        assert plugin["Status"] == "Success"
        assert plugin["ResponseCode"] == 0
        assert plugin["Output"].startswith("Patch operation Install completed: Installed=")
        assert plugin["ResponseFinishDateTime"] >= plugin["ResponseStartDateTime"]
        assert rows[iid]["DocumentName"] == DOC
    assert plugins[windows][0]["Output"].startswith("Patch operation Install completed: Installed=1 ")
    assert plugins[linux][0]["Output"].startswith("Patch operation Install completed: Installed=2 ")
    # Without Details there are no plugins.
    assert all("CommandPlugins" not in r for r in invocations(ssm, command_id, details=False).values())

    # The plugin name must match the platform's.
    assert (
        _error_code(
            lambda: ssm.get_command_invocation(
                CommandId=command_id, InstanceId=linux, PluginName="PatchWindows"
            )
        )
        == "InvocationDoesNotExist"
    )
    ok = ssm.get_command_invocation(CommandId=command_id, InstanceId=windows, PluginName="PatchWindows")
    assert ok["Status"] == "Success"


def test_install_by_tag_target_reaches_exactly_the_tagged_hosts(fleet):
    ssm = _ssm(fleet)
    tagged = sorted(fleet.ids("alpha", "tag-01", "tag-02", "tag-03"))
    command = ssm.send_command(
        DocumentName=DOC, Targets=[{"Key": "tag:Environment", "Values": ["tagged"]}], Parameters=INSTALL
    )["Command"]
    assert command["TargetCount"] == 3
    assert command["Targets"] == [{"Key": "tag:Environment", "Values": ["tagged"]}]
    assert wait_command(ssm, command["CommandId"])["Status"] == "Success"
    assert sorted(invocations(ssm, command["CommandId"])) == tagged

    truth = fleet.truth("alpha")
    installs = {
        n for n, h in truth.items() if any(a["command_id"] == command["CommandId"] for a in h["actions"])
    }
    assert installs == {"tag-01", "tag-02", "tag-03"}
    assert truth["untag-01"]["actions"] == [] and truth["untag-01"]["missing"] == ["ALAS2-1", "ALAS2-2"]

    # A tag added at run time (as the product tags a stage's hosts) is what targeting sees.
    ec2 = fleet.client("ec2", ACCOUNT)
    ec2.create_tags(Resources=tagged[:2], Tags=[{"Key": "PatchcycleStage", "Value": "s1"}])
    staged = ssm.send_command(
        DocumentName=DOC,
        Targets=[{"Key": "tag:PatchcycleStage", "Values": ["s1"]}],
        Parameters={"Operation": ["Scan"]},
    )["Command"]
    assert staged["TargetCount"] == 2
    assert sorted(staged["InstanceIds"]) == tagged[:2]


def test_invocations_paginate_at_50(fleet):
    ssm = _ssm(fleet)
    command_id = ssm.send_command(
        DocumentName=DOC, Targets=[{"Key": "tag:Environment", "Values": ["bulk"]}], Parameters=INSTALL
    )["Command"]["CommandId"]
    pages = list(
        ssm.get_paginator("list_command_invocations").paginate(
            CommandId=command_id, PaginationConfig={"PageSize": 50}
        )
    )
    assert [len(p["CommandInvocations"]) for p in pages] == [50, 5]
    ids = [i["InstanceId"] for p in pages for i in p["CommandInvocations"]]
    assert sorted(ids) == sorted(
        h["host_id"] for n, h in fleet.truth("alpha").items() if n.startswith("bulk-")
    )
    assert len(set(ids)) == 55
    first = ssm.list_command_invocations(CommandId=command_id)
    assert len(first["CommandInvocations"]) == 50 and first["NextToken"]
    assert _error_code(lambda: ssm.list_command_invocations(CommandId=command_id, MaxResults=51)) == (
        "ValidationException"
    )
    command = wait_command(ssm, command_id)
    assert (command["Status"], command["CompletedCount"], command["TargetCount"]) == ("Success", 55, 55)


def _watch_in_progress(ssm, command_id: str) -> list[int]:
    """How many invocations are InProgress at each observation until the command ends."""
    counts: list[int] = []

    def probe():
        rows = invocations(ssm, command_id, details=False)
        counts.append(sum(1 for r in rows.values() if r["Status"] == "InProgress"))
        return ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"]

    wait_for(probe, lambda status: status in TERMINAL, every=0.02)
    return counts


def _windows(ssm, command_id: str, host_ids: list[str]) -> list[tuple]:
    rows = invocations(ssm, command_id)
    spans = [
        (
            rows[i]["CommandPlugins"][0]["ResponseStartDateTime"],
            rows[i]["CommandPlugins"][0]["ResponseFinishDateTime"],
        )
        for i in host_ids
    ]
    return sorted(spans)


def test_max_concurrency_one_runs_invocations_one_at_a_time(fleet):
    ssm = _ssm(fleet)
    hosts = fleet.ids("alpha", "seq-01", "seq-02", "seq-03", "seq-04")
    command_id = ssm.send_command(
        DocumentName=DOC, InstanceIds=hosts, Parameters=INSTALL, MaxConcurrency="1"
    )["Command"]["CommandId"]
    counts = _watch_in_progress(ssm, command_id)
    assert max(counts) == 1, counts
    assert counts.count(1) >= 2  # observed while running, more than once
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Success"
    spans = _windows(ssm, command_id, hosts)
    for (_, finished), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start >= finished  # strictly one after another


def test_default_concurrency_runs_invocations_together(fleet):
    """The control for the test above: without MaxConcurrency the same hosts overlap."""
    ssm = _ssm(fleet)
    hosts = fleet.ids("alpha", "par-01", "par-02", "par-03")
    command_id = ssm.send_command(DocumentName=DOC, InstanceIds=hosts, Parameters=INSTALL)["Command"][
        "CommandId"
    ]
    counts = _watch_in_progress(ssm, command_id)
    assert max(counts) >= 2, counts
    spans = _windows(ssm, command_id, hosts)
    assert spans[1][0] < spans[0][1]


def test_max_errors_exceeded_fails_the_command_and_cancels_the_rest(fleet):
    ssm = _ssm(fleet)
    # One at a time, a failing host first: its failure exceeds MaxErrors=0 before anything else starts.
    order = fleet.ids("alpha", "mefail-01", "meok-01", "meok-02", "mefail-02", "meok-03")
    command_id = ssm.send_command(
        DocumentName=DOC, InstanceIds=order, Parameters=INSTALL, MaxConcurrency="1", MaxErrors="0"
    )["Command"]["CommandId"]
    command = wait_command(ssm, command_id)
    assert command["Status"] == "Failed"
    assert (command["ErrorCount"], command["CompletedCount"]) == (1, 5)
    rows = invocations(ssm, command_id)
    assert [rows[i]["Status"] for i in order] == [
        "Failed",
        "Cancelled",
        "Cancelled",
        "Cancelled",
        "Cancelled",
    ]
    failed = rows[order[0]]["CommandPlugins"][0]
    assert failed["ResponseCode"] != 0
    assert "FAILED" in failed["Output"]

    # Cancelled hosts were never patched; the failed one recorded its failure.
    truth = fleet.truth("alpha")
    assert truth["meok-01"]["missing"] == ["ALAS2-1", "ALAS2-2"] and truth["meok-01"]["installed"] == []
    assert truth["mefail-02"]["failed"] == []
    assert truth["mefail-01"]["failed"]  # at least one patch failed there
    assert truth["mefail-01"]["actions"][-1]["result"] == "Failed"


def test_failures_within_max_errors_end_in_success(fleet):
    ssm = _ssm(fleet)
    hosts = fleet.ids("alpha", "within-01", "within-02", "within-03")
    command_id = ssm.send_command(DocumentName=DOC, InstanceIds=hosts, Parameters=INSTALL, MaxErrors="1")[
        "Command"
    ]["CommandId"]
    command = wait_command(ssm, command_id)
    assert command["Status"] == "Success"
    assert command["ErrorCount"] == 1
    rows = invocations(ssm, command_id)
    assert [rows[i]["Status"] for i in hosts] == ["Success", "Failed", "Success"]
    truth = fleet.truth("alpha")
    assert truth["within-01"]["installed"] == ["ALAS2-1", "ALAS2-2"]
    assert truth["within-02"]["failed"] != []


def test_offline_host_invocation_ends_delivery_timed_out(fleet):
    ssm = _ssm(fleet)
    online, offline = fleet.ids("alpha", "off-01", "off-02")
    command_id = ssm.send_command(
        DocumentName=DOC, InstanceIds=[online, offline], Parameters=INSTALL, MaxErrors="1"
    )["Command"]["CommandId"]
    seen: list[str] = []

    def probe():
        status = ssm.get_command_invocation(CommandId=command_id, InstanceId=offline)["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status

    wait_for(probe, lambda s: s in TERMINAL, every=0.03)
    assert seen == ["Pending", "TimedOut"]  # never InProgress: the agent never got it
    command = wait_command(ssm, command_id)
    assert (command["Status"], command["DeliveryTimedOutCount"]) == ("Success", 1)  # within MaxErrors=1
    inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=offline)
    assert inv["ResponseCode"] == -1
    assert inv["StatusDetails"] == "Delivery Timed Out"

    truth = fleet.truth("alpha")
    assert truth["off-02"]["missing"] == ["ALAS2-1", "ALAS2-2"]
    assert [a["result"] for a in truth["off-02"]["actions"]] == ["DeliveryTimedOut"]
    assert truth["off-01"]["installed"] == ["ALAS2-1", "ALAS2-2"]
    # The offline host's last patch state is still the seeded scan, not an install.
    (state,) = ssm.describe_instance_patch_states(InstanceIds=[offline])["InstancePatchStates"]
    assert state["Operation"] == "Scan"


def test_send_command_errors(fleet):
    ssm = _ssm(fleet)
    (host_id,) = fleet.ids("alpha", "err-01")

    def send(**kw):
        return lambda: ssm.send_command(**{"DocumentName": DOC, "Parameters": INSTALL, **kw})

    assert _error_code(send(InstanceIds=["i-0123456789abcdef0"])) == "InvalidInstanceId"
    assert _error_code(send(InstanceIds=[host_id], DocumentName="No-Such-Document")) == "InvalidDocument"
    too_many = [f"i-{n:017x}" for n in range(51)]
    assert _error_code(send(InstanceIds=too_many)) == "ValidationException"
    assert (
        _error_code(send(InstanceIds=[host_id], Parameters={"Operation": ["Uninstall"]}))
        == "ValidationException"
    )
    # Rate controls outside SendCommand's patterns are a 400, not a server error.
    assert _error_code(send(InstanceIds=[host_id], MaxConcurrency="0")) == "ValidationException"
    assert _error_code(send(InstanceIds=[host_id], MaxConcurrency="lots")) == "ValidationException"
    assert _error_code(send(InstanceIds=[host_id], MaxErrors="-1")) == "ValidationException"
    assert _error_code(lambda: ssm.list_commands(CommandId="00000000-0000-0000-0000-000000000000")) == (
        "InvalidCommandId"
    )
    # None of the rejected requests touched the host.
    assert fleet.truth("alpha")["err-01"]["actions"] == []
    assert ssm.list_commands(InstanceId=host_id)["Commands"] == []


def test_commands_are_private_to_their_account(fleet):
    ssm = _ssm(fleet)
    (host_id,) = fleet.ids("alpha", "xacct-01")
    command_id = ssm.send_command(
        DocumentName=DOC, InstanceIds=[host_id], Parameters={"Operation": ["Scan"]}
    )["Command"]["CommandId"]
    other = fleet.client("ssm", OTHER)
    assert _error_code(lambda: other.list_commands(CommandId=command_id)) == "InvalidCommandId"
    assert _error_code(lambda: other.list_command_invocations(CommandId=command_id)) == "InvalidCommandId"
    assert (
        _error_code(lambda: other.get_command_invocation(CommandId=command_id, InstanceId=host_id))
        == "InvalidCommandId"
    )
    assert all(c["CommandId"] != command_id for c in other.list_commands()["Commands"])
    assert all(i["CommandId"] != command_id for i in other.list_command_invocations()["CommandInvocations"])
    # The owner still sees it.
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["CommandId"] == command_id


def test_invocation_timeline_follows_the_scenario_timings(fleet):
    """Delivery waits command_pending_seconds (0.1); the run lasts within invocation_seconds [0.2, 0.4]."""
    ssm = _ssm(fleet)
    (host_id,) = fleet.ids("alpha", "rate-01")
    sent = time.monotonic()
    command_id = ssm.send_command(DocumentName=DOC, InstanceIds=[host_id], Parameters=INSTALL)["Command"][
        "CommandId"
    ]
    command = wait_command(ssm, command_id)
    assert time.monotonic() - sent < 3.0
    inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=host_id)
    requested = command["RequestedDateTime"].timestamp()
    started = dt.datetime.fromisoformat(inv["ExecutionStartDateTime"]).timestamp()
    ended = dt.datetime.fromisoformat(inv["ExecutionEndDateTime"]).timestamp()
    assert started - requested == pytest.approx(0.1, abs=0.01)
    assert 0.19 <= ended - started <= 0.41
    elapsed = inv["ExecutionElapsedTime"]
    assert elapsed.startswith("PT") and elapsed.endswith("S")
    assert float(elapsed[2:-1]) == pytest.approx(ended - started, abs=0.051)


def test_list_commands_filters_by_document_and_time(fleet):
    """ListCommands ``Filters`` (API reference, ListCommands and CommandFilter): keys InvokedAfter,
    InvokedBefore, Status, ExecutionStage, DocumentName, every one must hold; an unknown key is
    InvalidFilterKey, a timestamp that does not parse InvalidFilterValue; 1 to 5 filters."""
    ssm = _ssm(fleet)
    (host_id,) = fleet.ids("alpha", "rate-01")
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    command_id = ssm.send_command(
        DocumentName=DOC, InstanceIds=[host_id], Parameters={"Operation": ["Scan"]}
    )["Command"]["CommandId"]

    def listed(*filters: tuple[str, str]) -> set[str]:
        pages = ssm.get_paginator("list_commands").paginate(
            Filters=[{"key": k, "value": v} for k, v in filters]
        )
        return {c["CommandId"] for page in pages for c in page["Commands"]}

    assert command_id in listed(("DocumentName", DOC), ("InvokedAfter", before))
    assert command_id not in listed(("DocumentName", "AWS-RunShellScript"))
    assert command_id not in listed(("InvokedAfter", "2099-01-01T00:00:00Z"))
    assert command_id not in listed(("InvokedBefore", before))
    assert (
        _error_code(lambda: ssm.list_commands(Filters=[{"key": "Comment", "value": "x"}]))
        == "InvalidFilterKey"
    )
    assert (
        _error_code(lambda: ssm.list_commands(Filters=[{"key": "InvokedAfter", "value": "yesterday"}]))
        == "InvalidFilterValue"
    )


def test_a_lost_answer_leaves_the_command_sent(fleet):
    """The scenario's ``lost_install_answers``: the Install takes effect but the caller gets HTTP 500
    (SendCommand takes no idempotency token, so only ListCommands tells the caller it was sent)."""
    ssm = fleet.client("ssm", LOSSY)
    (host_id,) = fleet.ids("cedar", "lost-01")
    with pytest.raises(ClientError) as lost:
        ssm.send_command(DocumentName=DOC, InstanceIds=[host_id], Parameters=INSTALL)
    assert lost.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert lost.value.response["Error"]["Code"] == "InternalServerError"
    (sent,) = ssm.list_commands(Filters=[{"key": "DocumentName", "value": DOC}])["Commands"]
    assert sent["InstanceIds"] == [host_id]
    # Only the first answer is lost.
    assert ssm.send_command(DocumentName=DOC, InstanceIds=[host_id], Parameters=INSTALL)["Command"][
        "CommandId"
    ]
