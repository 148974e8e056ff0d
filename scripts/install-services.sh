#!/usr/bin/env bash
# Install the servers the process stack (devtools/stack/, tests/deploy) runs as real processes:
# PostgreSQL 15 (the metadata DB) and Redis (the Celery broker), and the browser the UI tests drive
# (tests/ui: Playwright on Debian's Chromium, /usr/bin/chromium), from Debian's packages.
# Idempotent: it only installs what is missing, and never starts a system-wide service.
set -euo pipefail

missing=()
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
  missing+=(postgresql-15)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  missing+=(redis-server)
fi
# Playwright drives this binary directly (it cannot download its own browsers here); no chromedriver.
if [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-services: missing ${missing[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-services: installing ${missing[*]} from Debian's packages" >&2
# Keep Debian's postinst scripts from starting system-wide servers: the stack runs its own, on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
