#!/usr/bin/env bash
# Install what the project needs on a fresh machine with Python 3.11: uv (pinned), then the locked
# environment in .venv. Safe to run again; it only changes what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
if command -v uv >/dev/null 2>&1 && [ "$(uv --version | awk '{print $2}')" = "$UV_VERSION" ]; then
  UV=uv
else
  if [ ! -x .tools/bin/uv ]; then
    echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
    python3.11 -m venv .tools 2>/dev/null || python3 -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  UV=.tools/bin/uv
fi
# --compile-bytecode: every process of a run (each Airflow task, trigger, fleetsim, CLI) imports Airflow
# and the cloud SDKs; without .pyc files (uv writes none by default, and a shell with
# PYTHONDONTWRITEBYTECODE set never caches them) each one compiles them from source again: `import
# airflow.sdk` took 8 s instead of 4 s on this project's 2-core machine.
"$UV" sync --frozen --python 3.11 --quiet --compile-bytecode
# checkov (tests/terraform scans include/terraform with it) in a venv of its own: no release of it that
# Airflow's pins allow is current (pyproject.toml, the dev group, says why). Hash-pinned; `pip sync`
# removes anything not in the list, so a second run changes nothing.
CHECKOV_VENV=.venv-tools/checkov
if [ ! -x "$CHECKOV_VENV/bin/python" ]; then
  "$UV" venv --python 3.11 --quiet "$CHECKOV_VENV"
fi
"$UV" pip sync --python "$CHECKOV_VENV/bin/python" --require-hashes --quiet scripts/checkov-requirements.txt
