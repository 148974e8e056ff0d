"""The PagerDuty incident of a failed cycle stage: its dedup key, its one-line summary, its details.

Pure. One incident per tenant, cycle and stage: :func:`incident_key` is the PagerDuty ``dedup_key`` and
depends on nothing else, so a re-run of the same stage (a retried task, a cleared DAG run) re-triggers the
open incident instead of paging again, and a successful re-run resolves it by the same key.

* :func:`incident_key`: ``patchcycle/<tenant id>/<cycle date>/<stage>``, at most 255 characters (the
  Events API's limit); a longer one keeps a readable prefix and ends in a hash of the whole key.
* :func:`incident_summary`: one line, at most 1024 characters (the API's limit for ``payload.summary``),
  naming the tenant, cycle date and stage, the number of failing hosts and the first few of them, then
  the reason. Hosts are listed sorted and de-duplicated, so the same failure reads the same each time.
* :func:`incident_details`: the ``custom_details`` object: reason, failing hosts (at most
  :data:`DETAIL_HOSTS_MAX` names, plus the full count), the DAG run id, the plan hash, the runbook URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

KEY_PREFIX = "patchcycle"
KEY_MAX_CHARS = 255  # PagerDuty's maximum dedup_key length
SUMMARY_MAX_CHARS = 1024  # PagerDuty's maximum payload.summary length
SUMMARY_HOSTS = 5  # host names a summary lists before "and N more"
DETAIL_HOSTS_MAX = 100  # host names custom_details lists (the count is always exact)
_HASH_CHARS = 16


def _part(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-blank string, got {value!r}")
    if "/" in value or any(c.isspace() for c in value):
        raise ValueError(f"{name} must not contain '/' or whitespace, got {value!r}")
    return value


def _date(cycle_date: dt.date) -> str:
    if isinstance(cycle_date, dt.datetime) or not isinstance(cycle_date, dt.date):
        raise TypeError(f"cycle_date must be a date (the cycle's UTC date), got {cycle_date!r}")
    return cycle_date.isoformat()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hosts(failing_hosts: Iterable[str]) -> list[str]:
    return sorted({h for h in failing_hosts if h})


def incident_key(tenant_id: str, cycle_date: dt.date, stage: str) -> str:
    """The dedup_key of the incident for one tenant, cycle and stage, e.g.
    ``patchcycle/cu_alpha/2026-11-22/prod``: the same inputs always give the same key."""
    key = f"{KEY_PREFIX}/{_part('tenant_id', tenant_id)}/{_date(cycle_date)}/{_part('stage', stage)}"
    if len(key) <= KEY_MAX_CHARS:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:_HASH_CHARS]
    return f"{key[: KEY_MAX_CHARS - _HASH_CHARS - 1]}#{digest}"


def incident_summary(
    tenant_name: str, cycle_date: dt.date, stage: str, reason: str, failing_hosts: list[str]
) -> str:
    """The incident's title, e.g. ``Patchcycle: Alpha CU 2026-11-22 stage prod: 3 hosts failing
    (web-01, web-02, web-03): install failed``; at most 1024 characters (the reason is cut first)."""
    if not tenant_name.strip():
        raise ValueError(f"tenant_name must not be blank, got {tenant_name!r}")
    if not reason.strip():
        raise ValueError(f"reason must not be blank (tenant {tenant_name!r}, stage {stage!r})")
    head = f"Patchcycle: {_one_line(tenant_name)} {_date(cycle_date)} stage {_part('stage', stage)}"
    hosts = _hosts(failing_hosts)
    if hosts:
        shown = ", ".join(hosts[:SUMMARY_HOSTS])
        more = f" and {len(hosts) - SUMMARY_HOSTS} more" if len(hosts) > SUMMARY_HOSTS else ""
        noun = "host" if len(hosts) == 1 else "hosts"
        head += f": {len(hosts)} {noun} failing ({shown}{more})"
    return _truncate(f"{head}: {_one_line(reason)}", SUMMARY_MAX_CHARS)


def incident_details(
    *,
    tenant_id: str,
    cycle_date: dt.date,
    stage: str,
    reason: str,
    failing_hosts: list[str],
    dag_run_id: str,
    plan_hash: str,
    runbook_url: str | None = None,
) -> dict[str, Any]:
    """The incident's ``custom_details``: what failed, where to look and what to do (JSON-able)."""
    hosts = _hosts(failing_hosts)
    return {
        "tenant_id": _part("tenant_id", tenant_id),
        "cycle_date": _date(cycle_date),
        "stage": _part("stage", stage),
        "reason": reason,
        "failing_host_count": len(hosts),
        "failing_hosts": hosts[:DETAIL_HOSTS_MAX],
        "failing_hosts_truncated": len(hosts) > DETAIL_HOSTS_MAX,
        "dag_run_id": dag_run_id,
        "plan_hash": plan_hash,
        "runbook_url": runbook_url,
        "incident_key": incident_key(tenant_id, cycle_date, stage),
    }
