"""PagerDuty Events API v2: open, acknowledge and resolve the incident of a failed cycle stage.

``POST {base}/v2/enqueue`` with ``{"routing_key", "event_action": trigger|acknowledge|resolve, "dedup_key",
"payload": {"summary" (≤1024), "source", "severity", "timestamp", "component", "group",
"custom_details"}, "links"}`` answers 202 ``{"status": "success", "message": "Event processed",
"dedup_key"}``; 400 ``{"status": "invalid event", "message", "errors": [...]}`` (never retried); 429
(throttled per integration key), 5xx and network errors are retried. Events with the same dedup_key
update one incident while it is open; once resolved, the next trigger opens a new one.

Configured only by an Airflow connection (conn_type ``http``): ``host`` = the Events API base URL
(``https://events.pagerduty.com`` in production, fleetsim's ``http://127.0.0.1:PORT`` in tests; a bare
host name gets ``schema`` or https, and ``port``), ``password`` = the service's Events API v2 integration
(routing) key. Optional extra ``backoff_seconds`` (default 2): the first retry's wait when the answer
names none, doubled for each later retry. Neither Airflow's PagerDuty provider (its client cannot be given
a base URL) nor the deprecated pdpyras is used. The routing key is never logged nor put in an error.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import requests
from airflow.sdk.bases.hook import BaseHook

ENQUEUE_PATH = "/v2/enqueue"
SUMMARY_MAX_CHARS = 1024  # the API's maximum for payload.summary
DEDUP_KEY_MAX_CHARS = 255  # the API's maximum for dedup_key
SEVERITIES = ("critical", "error", "warning", "info")
TIMEOUT_SECONDS = (5, 15)  # (connect, read)
MAX_ATTEMPTS = 4  # one try and at most three retries (PagerDuty suggests three)
DEFAULT_BACKOFF_SECONDS = 2.0
MAX_WAIT_SECONDS = 60.0  # the longest a single back-off (or Retry-After) may hold the task


class PagerDutyError(RuntimeError):
    """PagerDuty refused an event or could not be reached; the message names the event, the HTTP status
    and the API's errors (never the routing key)."""

    def __init__(self, message: str, *, status: int | None = None, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PagerDutyEventsHook(BaseHook):
    """Alert events to one PagerDuty service (its integration key is the connection's password)."""

    conn_name_attr = "pagerduty_conn_id"
    default_conn_name = "pagerduty_default"
    conn_type = "http"
    hook_name = "PagerDuty Events v2 (Patchcycle)"

    def __init__(self, pagerduty_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.pagerduty_conn_id = pagerduty_conn_id

    @cached_property
    def _endpoint(self) -> tuple[str, str, float]:
        """(enqueue URL, routing key, back-off seconds) from the connection."""
        conn = self.get_connection(self.pagerduty_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(
                f"connection {self.pagerduty_conn_id!r}: host (the Events API base URL, e.g. "
                "https://events.pagerduty.com) is empty"
            )
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        if not conn.password:
            raise ValueError(
                f"connection {self.pagerduty_conn_id!r}: password (the Events API v2 integration key) "
                "is empty"
            )
        raw = conn.extra_dejson.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)
        try:
            backoff = float(raw)
        except (TypeError, ValueError):
            backoff = -1.0
        if not 0 <= backoff <= MAX_WAIT_SECONDS:
            raise ValueError(
                f"connection {self.pagerduty_conn_id!r}: extra backoff_seconds must be a number of seconds "
                f"from 0 to {MAX_WAIT_SECONDS:g}, got {raw!r}"
            )
        return host + ENQUEUE_PATH, conn.password, backoff

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    # -- events -------------------------------------------------------------------------------------
    def trigger(
        self,
        *,
        dedup_key: str,
        summary: str,
        source: str,
        severity: str,
        component: str | None = None,
        group: str | None = None,
        custom_details: Mapping[str, Any] | None = None,
        links: Sequence[Mapping[str, str]] | None = None,
        timestamp: dt.datetime | str | None = None,
    ) -> str:
        """Open the incident ``dedup_key`` names, or add this event to it while it is open; returns the
        dedup_key PagerDuty filed it under. ``summary`` is cut to 1024 characters; ``severity`` is one of
        critical, error, warning, info; ``links`` are ``{"href", "text"}`` objects; ``timestamp`` is when
        the problem was detected (timezone-aware, or an ISO 8601 string)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        if not summary.strip():
            raise ValueError(f"summary must not be blank (dedup_key {dedup_key!r})")
        if not source.strip():
            raise ValueError(f"source must not be blank (dedup_key {dedup_key!r})")
        payload: dict[str, Any] = {
            "summary": _truncate(summary, SUMMARY_MAX_CHARS),
            "source": source,
            "severity": severity,
        }
        if timestamp is not None:
            if isinstance(timestamp, dt.datetime):
                if timestamp.tzinfo is None:
                    raise ValueError(f"timestamp must be timezone-aware, got {timestamp!r}")
                timestamp = timestamp.isoformat()
            payload["timestamp"] = timestamp
        if component:
            payload["component"] = component
        if group:
            payload["group"] = group
        if custom_details:
            payload["custom_details"] = dict(custom_details)
        event: dict[str, Any] = {"event_action": "trigger", "dedup_key": dedup_key, "payload": payload}
        if links:
            event["links"] = [dict(link) for link in links]
        return self._send(event)

    def acknowledge(self, dedup_key: str) -> str:
        """Acknowledge the open incident ``dedup_key`` names (PagerDuty drops it when none is open)."""
        return self._send({"event_action": "acknowledge", "dedup_key": dedup_key})

    def resolve(self, dedup_key: str) -> str:
        """Resolve the open incident ``dedup_key`` names (PagerDuty drops it when none is open); returns
        the dedup_key."""
        return self._send({"event_action": "resolve", "dedup_key": dedup_key})

    # -- transport ----------------------------------------------------------------------------------
    def _send(self, event: dict[str, Any]) -> str:
        dedup_key = event["dedup_key"]
        if not isinstance(dedup_key, str) or not dedup_key.strip():
            raise ValueError(f"dedup_key must be a non-blank string, got {dedup_key!r}")
        if len(dedup_key) > DEDUP_KEY_MAX_CHARS:
            raise ValueError(
                f"dedup_key is {len(dedup_key)} characters, PagerDuty allows {DEDUP_KEY_MAX_CHARS}: "
                f"{dedup_key[:60]!r}..."
            )
        url, routing_key, backoff = self._endpoint
        what = f"PagerDuty {event['event_action']} of {dedup_key!r} at {url}"
        body = {"routing_key": routing_key, **event}
        problem, last_status, errors = "", None, []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait = backoff * 2 ** (attempt - 1)
            try:
                response = self._session.post(url, json=body, timeout=TIMEOUT_SECONDS)
            except requests.RequestException as exc:
                problem, last_status, errors = f"{type(exc).__name__}: {exc}", None, []
            else:
                if response.status_code == 202:
                    answer = self._json(response)
                    self.log.info("%s: %s", what, answer.get("message", "accepted"))
                    return str(answer.get("dedup_key") or dedup_key)
                last_status = response.status_code
                errors = [str(e) for e in self._json(response).get("errors") or []]
                detail = "; ".join(errors) or response.text[:300]
                problem = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
                if response.status_code != 429 and response.status_code < 500:
                    raise PagerDutyError(
                        self._scrub(f"{what}: {problem}", routing_key),
                        status=response.status_code,
                        errors=[self._scrub(e, routing_key) for e in errors],
                    )
                hinted = retry_after_seconds(response.headers.get("Retry-After"))
                if hinted is not None:
                    wait = hinted
            if attempt < MAX_ATTEMPTS:
                wait = min(wait, MAX_WAIT_SECONDS)
                self.log.warning(
                    "%s: %s (attempt %d of %d); retrying in %.1fs",
                    what,
                    self._scrub(problem, routing_key),
                    attempt,
                    MAX_ATTEMPTS,
                    wait,
                )
                time.sleep(wait)
        raise PagerDutyError(
            self._scrub(f"{what}: gave up after {MAX_ATTEMPTS} attempts: {problem}", routing_key),
            status=last_status,
            errors=[self._scrub(e, routing_key) for e in errors],
        )

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    @staticmethod
    def _scrub(text: str, routing_key: str) -> str:
        """The text with the routing key masked, should the API or a library ever echo it."""
        return text.replace(routing_key, "***") if routing_key else text
