"""``python -m devtools.demo`` (``make demo``) rejects bad arguments with exit 2 before starting anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from devtools import demo

REPO = Path(__file__).resolve().parents[2]


class Started(Exception):
    """Raised by the stand-in for fleetsim: the demo got as far as starting something."""


@pytest.fixture
def nothing_starts(monkeypatch) -> list[Path]:
    """fleetsim raises ``Started`` instead of starting; nothing is removed (the folders it would clear)."""

    def running_fleetsim(scenario, workdir):
        raise Started(scenario)

    cleared: list[Path] = []
    monkeypatch.setattr(demo, "running_fleetsim", running_fleetsim)
    monkeypatch.setattr(demo, "shutil", SimpleNamespace(rmtree=lambda path, **kw: cleared.append(path)))
    return cleared


def usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        demo.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("value", ["garbage", "2026-02-30", "20261122", "22/11/2026"])
def test_a_bad_cycle_date_exits_2_naming_it(nothing_starts, capsys, value) -> None:
    line = usage_error(capsys, ["--cycle-date", value])
    assert line == (
        f"python -m devtools.demo: error: argument --cycle-date: {value!r} is not a date YYYY-MM-DD "
        "(e.g. 2026-11-22)"
    )


def test_an_unknown_tenant_exits_2_before_anything_starts(nothing_starts, capsys) -> None:
    line = usage_error(capsys, ["--tenant", "cu_alpha", "--tenant", "cu_nope"])
    assert nothing_starts == []  # var/demo untouched, fleetsim not started
    assert line.startswith("python -m devtools.demo: error: unknown tenant 'cu_nope' (known: ")
    assert "cu_alpha" in line and "cu_birch" in line and "cu_cedar" in line


def test_a_missing_scenario_exits_2(nothing_starts, capsys, tmp_path) -> None:
    line = usage_error(capsys, ["--scenario", str(tmp_path / "nope.yaml")])
    assert "no such file" in line and "nope.yaml" in line


def test_good_arguments_get_to_fleetsim(nothing_starts, capsys) -> None:
    with pytest.raises(Started):
        demo.main(["--cycle-date", "2026-11-22", "--tenant", "cu_birch"])
    assert "cycle date 2026-11-22, tenants cu_birch" in capsys.readouterr().out
    assert nothing_starts == [REPO / "var" / "demo"]


def test_the_real_cli_gives_one_error_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--cycle-date", "garbage"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("'garbage' is not a date YYYY-MM-DD (e.g. 2026-11-22)")
    )
    assert not result.stdout
