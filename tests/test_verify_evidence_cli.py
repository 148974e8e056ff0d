"""``python -m patchcycle verify-evidence`` on bad input: one line, a documented exit code, no traceback.

Exit codes: 0 intact, 1 tampered, 2 bad usage or input, 3 the packs could not be read.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from patchcycle import __main__ as cli
from patchcycle.reports.manifest import MANIFEST_NAME, build_manifest

REPO = Path(__file__).resolve().parents[1]
BUCKET = "patchcycle-evidence-cu-alpha"


def write_pack(folder: Path) -> Path:
    files = {"report.pdf": b"%PDF-1.7 x", "evidence.json": b"{}", "hosts.csv": b"host_id\n"}
    manifest = build_manifest(
        files,
        tenant_id="cu_alpha",
        cycle_date="2026-11-22",
        run_id="r1",
        created_at="2026-11-22T03:00:00+00:00",
        previous_manifest_sha256=None,
    )
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return folder


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "patchcycle", "verify-evidence", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "plugins"), **(env or {})},
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("verify-evidence: ")
    return lines[0]


def test_help_documents_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify-evidence", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ("0  every pack is intact", "1  tampered", "2  bad usage", "3  the packs could not be read"):
        assert code in out


def test_an_intact_copy_exits_0_and_a_tampered_one_1(tmp_path, capsys) -> None:
    pack = write_pack(tmp_path / "cu_alpha" / "2026-11-22")
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_INTACT
    (pack / "hosts.csv").write_bytes(b"host_id\ni-evil\n")
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_TAMPERED
    assert "changed file hosts.csv" in capsys.readouterr().out


def test_a_manifest_that_is_not_json_is_tampering_not_a_traceback(tmp_path, capsys) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / MANIFEST_NAME).write_text("{not json")
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_TAMPERED
    assert "manifest is not a valid manifest" in capsys.readouterr().out


def test_unknown_tenant_exits_2_listing_the_known_ones(capsys) -> None:
    assert cli.main(["verify-evidence", "cu_nope"]) == cli.EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "unknown tenant 'cu_nope'" in line
    assert "cu_alpha" in line and "cu_birch" in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["cu_alpha", "garbage"], "'garbage' is not a date YYYY-MM-DD"),
        (["cu_alpha", "20261122"], "'20261122' is not a date YYYY-MM-DD"),
        (["cu_alpha", "--endpoint-url", "localhost:5055"], "'localhost:5055' is not an http(s)://"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(argv, named, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify-evidence", *argv])
    assert exc.value.code == cli.EXIT_USAGE
    assert named in capsys.readouterr().err.strip().splitlines()[-1]


def test_neither_tenant_nor_dir_exits_2(capsys) -> None:
    assert cli.main(["verify-evidence"]) == cli.EXIT_USAGE
    assert "give a tenant id or --dir" in one_error_line(capsys.readouterr().err)


def test_a_missing_folder_exits_3(tmp_path, capsys) -> None:
    assert cli.main(["verify-evidence", "--dir", str(tmp_path / "nope")]) == cli.EXIT_UNREADABLE
    assert (
        one_error_line(capsys.readouterr().err)
        == f"verify-evidence: cannot read {tmp_path / 'nope'}: no such folder"
    )


def test_a_folder_without_packs_exits_3(tmp_path, capsys) -> None:
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_UNREADABLE
    assert f"cannot read {tmp_path}: no evidence pack" in one_error_line(capsys.readouterr().err)


def test_no_aws_credentials_exits_3_naming_the_bucket() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_cli("cu_alpha", "2026-11-22", env=env)
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"s3://{BUCKET}/cycles/2026-11-22/" in line and "Unable to locate credentials" in line


def test_an_unreachable_endpoint_exits_3_naming_the_bucket_and_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    result = run_cli("cu_alpha", "--endpoint-url", url, env={"AWS_MAX_ATTEMPTS": "1"})
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"cannot read s3://{BUCKET}/cycles/" in line and url in line


@mock_aws
def test_a_missing_bucket_or_pack_exits_3(capsys) -> None:
    assert cli.main(["verify-evidence", "cu_alpha", "--bucket", "no-such-bucket"]) == cli.EXIT_UNREADABLE
    line = one_error_line(capsys.readouterr().err)
    assert "cannot read s3://no-such-bucket/cycles/" in line and "NoSuchBucket" in line

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="empty-bucket")
    assert cli.main(["verify-evidence", "cu_alpha", "2026-11-22", "--bucket", "empty-bucket"]) == 3
    line = one_error_line(capsys.readouterr().err)
    where = "s3://empty-bucket/cycles/2026-11-22/"
    assert line == f"verify-evidence: cannot read {where}: no evidence pack ({MANIFEST_NAME}) there"


def test_a_downloaded_addendum_is_checked_against_the_packs_beside_it(tmp_path, capsys) -> None:
    from patchcycle.reports.manifest import manifest_sha256

    pack = write_pack(tmp_path / "cu_alpha" / "2026-11-22")
    digest = manifest_sha256(json.loads((pack / MANIFEST_NAME).read_text()))
    copy = tmp_path / "cu_alpha" / "2026-11-22.distribution.json"
    copy.write_text(json.dumps({"kind": "distribution_addendum", "pack_manifest_sha256": digest}))
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_INTACT
    assert "1 pack(s), 1 distribution addendum: intact" in capsys.readouterr().out
    copy.write_text(json.dumps({"kind": "distribution_addendum", "pack_manifest_sha256": "0" * 64}))
    assert cli.main(["verify-evidence", "--dir", str(tmp_path)]) == cli.EXIT_TAMPERED
    assert f"FAIL {copy}: chained to manifest 000000000000" in capsys.readouterr().out
