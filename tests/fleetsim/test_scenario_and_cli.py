"""Scenario validation, the server's own guards and seeding, and ``python -m fleetsim serve`` as a process."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml
from fleetsim_testkit import group, patch, running, scenario_dict, wait_for

from fleetsim import __main__ as fleetsim_cli
from fleetsim.scenario import ScenarioError, load_scenario, parse_scenario
from fleetsim.server import FleetsimServer

REPO = Path(__file__).resolve().parents[2]


def _tenant(**faults: list[str]) -> dict:
    return {
        "id": "alpha",
        "aws": {"account_id": "111111111111", "region": "us-east-1", "groups": [group("web", 2)]},
        "faults": faults,
    }


def _raw(*tenants: dict, catalog: list[dict] | None = None, **extra) -> dict:
    return scenario_dict(list(tenants), catalog or [patch("ALAS2-1", "amazon_linux_2")], **extra)


@pytest.mark.parametrize("field", ["agent_offline", "install_fails", "backup_fails"])
def test_fault_naming_an_unknown_host_is_a_scenario_error(field):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(_raw(_tenant(**{field: ["web-01", "web-99"]})), source="bad.yaml")
    message = str(exc.value)
    assert message.startswith("bad.yaml: invalid scenario")
    assert f"tenants[alpha].faults.{field}" in message
    assert "web-99" in message and "web-01" not in message.split("unknown hosts")[1]


def test_slow_backup_fault_naming_an_unknown_host_is_a_scenario_error():
    raw = _raw(_tenant())
    raw["tenants"][0]["faults"] = {"backup_slow_seconds": {"web-3": 5}}
    with pytest.raises(ScenarioError, match=r"faults\.backup_slow_seconds: unknown hosts \['web-3'\]"):
        parse_scenario(raw)


def test_faults_naming_real_hosts_are_accepted():
    scenario = parse_scenario(_raw(_tenant(agent_offline=["web-02"], install_fails=["web-01"])))
    assert scenario.tenants[0].faults.agent_offline == ["web-02"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda r: r["tenants"][0]["aws"]["groups"][0].update(os_family="debian_12"),
            "tenants.0.aws.groups.0.os_family",
        ),
        (lambda r: r["patch_catalog"][0].update(os_family="amazon_linux_3"), "patch_catalog.0.os_family"),
        (lambda r: r["tenants"][0]["aws"].update(account_id="1234"), "tenants.0.aws.account_id"),
        (lambda r: r["tenants"].append(dict(r["tenants"][0])), "tenants"),
        (lambda r: r["timings"].update(ami_pending="fast"), "timings.ami_pending"),
    ],
)
def test_invalid_scenarios_name_the_field(mutate, field):
    raw = _raw(_tenant())
    mutate(raw)
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw)
    assert f"  - {field}: " in str(exc.value)


def test_load_scenario_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tenants: [\n")
    with pytest.raises(ScenarioError, match="broken.yaml: cannot read scenario"):
        load_scenario(path)
    assert load_scenario(REPO / "fleetsim" / "scenarios" / "demo.yaml").tenants[0].id == "cu_alpha"


def test_server_refuses_a_non_loopback_host():
    scenario = parse_scenario(_raw(_tenant()))
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback only"):
            FleetsimServer(scenario, port=0, host=host)


@pytest.mark.integration
def test_evidence_account_and_region_are_honoured_and_seeding_is_not_counted():
    """Buckets land in the scenario's evidence account and region; the call counts start empty."""
    evidence = {"account_id": "444444444444", "region": "eu-west-1", "buckets": ["pc-ev-eu"]}
    with running(_raw(_tenant(), evidence=evidence)) as fleet:
        assert fleet.calls() == {}
        owner = fleet.client("s3", "444444444444", "eu-west-1")
        assert [b["Name"] for b in owner.list_buckets()["Buckets"]] == ["pc-ev-eu"]
        assert owner.get_bucket_location(Bucket="pc-ev-eu")["LocationConstraint"] == "eu-west-1"
        lock = owner.get_object_lock_configuration(Bucket="pc-ev-eu")["ObjectLockConfiguration"]
        assert lock["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 365, "Years": 0}
        assert fleet.evidence_s3("eu-west-1").list_buckets()["Buckets"] == []  # not the default account


# -- the CLI ------------------------------------------------------------------------------------
def _fleetsim(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetsim", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        **kw,
    )


@pytest.mark.integration
def test_cli_serve_writes_ready_file_answers_health_and_stops_on_sigterm(tmp_path):
    good = tmp_path / "scenario.yaml"
    good.write_text(yaml.safe_dump(_raw(_tenant(agent_offline=["web-02"]))))
    ready, log_path = tmp_path / "ready.json", tmp_path / "fleetsim.log"
    log = log_path.open("w")
    proc = _fleetsim(
        "serve", "--scenario", str(good), "--port", "0", "--ready-file", str(ready), stdout=log, stderr=log
    )
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, bool, timeout=45, every=0.1)
        assert proc.poll() is None, log_path.read_text()
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["hosts"] == 2
        assert info["url"].startswith("http://127.0.0.1:") and not info["url"].endswith(":0")
        with urllib.request.urlopen(info["url"] + "/fleetsim/health", timeout=10) as resp:  # noqa: S310
            assert json.load(resp)["hosts"] == 2

        truth = subprocess.run(
            [sys.executable, "-m", "fleetsim", "ground-truth", "--url", info["url"], "--tenant", "alpha"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        hosts = {h["name"]: h for h in json.loads(truth.stdout)["hosts"]}
        assert hosts["web-02"]["agent_status"] == "ConnectionLost"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert f"fleetsim listening on {info['url']} (2 hosts)" in log_path.read_text()
    # The port is released once it has stopped.
    with pytest.raises(OSError):
        urllib.request.urlopen(info["url"] + "/fleetsim/health", timeout=2)  # noqa: S310


def test_cli_serve_rejects_an_invalid_scenario(tmp_path, capsys):
    """Exit status 2 and the field on stderr, before any server exists (in-process: it never gets to one)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_raw(_tenant(install_fails=["web-42"]))))
    assert fleetsim_cli.main(["serve", "--scenario", str(bad), "--port", "0"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"fleetsim: {bad}: invalid scenario")
    assert "tenants[alpha].faults.install_fails: unknown hosts ['web-42']" in stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on return: nothing listens there


@pytest.mark.parametrize("command", ["ground-truth", "calls"])
def test_cli_readers_require_url(command, capsys):
    with pytest.raises(SystemExit) as exc:
        fleetsim_cli.main([command])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"fleetsim {command}: error: the following arguments are required: --url"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ground-truth", "--url", "127.0.0.1:5055"],
            "argument --url: '127.0.0.1:5055' is not an http(s)://",
        ),
        (["calls", "--url", "nonsense"], "argument --url: 'nonsense' is not an http(s)://"),
        (["serve", "--port", "99999"], "argument --port: '99999' is not a port 0-65535"),
        (["serve", "--port", "http"], "argument --port: 'http' is not a port 0-65535"),
    ],
)
def test_cli_rejects_a_bad_url_or_port_with_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        fleetsim_cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("command", ["ground-truth", "calls"])
def test_cli_reader_names_an_unreachable_url_in_one_line_and_exits_3(command):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "fleetsim", command, "--url", url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and not result.stdout
    assert result.stderr.splitlines() == [
        f"fleetsim: cannot reach fleetsim at {url}/fleetsim/{command}: [Errno 111] Connection refused"
    ]


class _NotFleetsim(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the handler's protocol
        self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


def test_cli_reader_names_a_server_that_is_not_fleetsim_and_exits_3(capsys):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotFleetsim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert fleetsim_cli.main(["calls", "--url", url + "/"]) == 3
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert err.splitlines() == [f"fleetsim: cannot read {url}/fleetsim/calls: HTTP 404 Not Found"]
