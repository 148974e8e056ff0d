"""The lint the README promises, in the test command: ruff's rules (including McCabe complexity at most 12
in the product, with a reasoned ``noqa`` per exception) and its formatting, over the whole repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUFF), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_passes() -> None:
    done = ruff("check", ".")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    done = ruff("format", "--check", ".")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_every_complexity_exception_in_the_product_gives_its_reason() -> None:
    bare = []
    for path in [*(REPO / "plugins").rglob("*.py"), *(REPO / "dags").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "noqa: C901" in line and "noqa: C901 - " not in line:
                bare.append(f"{path.relative_to(REPO)}:{number}")
    assert bare == [], f"C901 exceptions without a reason: {bare}"
