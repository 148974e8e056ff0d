"""Dynatrace Environment API v2, spoken to only here: the health gate's open problems and error rates.

No SDK: two ``GET`` calls over one ``requests`` session with ``Authorization: Api-Token <token>``.

* ``GET {base}/api/v2/problems?problemSelector=status("open")&entitySelector=...&from=...&pageSize=500``
  → ``{"totalCount", "pageSize", "nextPageKey"?, "problems": [{problemId, displayId, title, impactLevel,
  severityLevel, status, startTime, endTime, affectedEntities, impactedEntities, rootCauseEntity,
  entityTags, managementZones, ...}]}``. The next page is asked for with ``nextPageKey`` *alone* (the API
  refuses any other parameter but ``fields`` next to it). A problem is listed only when its start or end
  lies in the timeframe, so ``since`` must reach back to the oldest open problem that must block a wave.
* ``GET {base}/api/v2/metrics/query?metricSelector=...&entitySelector=...&from=...&to=...&resolution=Inf``
  → ``{"totalCount", "nextPageKey": null, "resolution", "result": [{"metricId", "data": [{"dimensions",
  "dimensionMap", "timestamps", "values"}]}]}`` (values may be null).

Configured only by an Airflow connection (conn_type ``http``):

* ``host``: the environment's base URL with its scheme: SaaS ``https://<env-id>.live.dynatrace.com``,
  Managed / Environment ActiveGate ``https://<host>[:9999]/e/<env-id>``, fleetsim ``http://127.0.0.1:PORT``.
  A host without a scheme gets the connection's ``schema`` (default https) and ``port``;
* ``password``: an API token with the scopes ``problems.read`` and ``metrics.read``;
* extra (all optional): ``timeout`` (read seconds, default 30), ``connect_timeout`` (default 5),
  ``max_retries`` (default 3), ``backoff_factor`` (default 0.5), ``verify`` (CA bundle path or bool).

429 (the API's request queue is full) and 5xx answers and connection failures are retried up to
``max_retries`` times with exponential back-off, honouring ``Retry-After`` up to 60 s. Every failure raises
:class:`DynatraceError` naming the URL, the HTTP status and the API's own message; the token never appears
in a message or a log line.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.sdk.bases.hook import BaseHook
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

PROBLEMS_PATH = "/api/v2/problems"
METRICS_QUERY_PATH = "/api/v2/metrics/query"
# Documented maxima of the API.
PROBLEMS_PAGE_SIZE = 500  # GET /api/v2/problems: pageSize 1..500
ENTITY_SELECTOR_MAX_CHARS = 2000  # an entitySelector is at most 2,000 characters
MAX_PAGES = 10_000  # a guard against a server that hands out page keys forever (5,000,000 problems)
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_FACTOR = 0.5
MAX_RETRY_AFTER_SECONDS = 60.0  # the longest a Retry-After may hold the task per retry
RETRY_STATUSES = (429, 500, 502, 503, 504)


class DynatraceError(RuntimeError):
    """A Dynatrace API call that did not succeed; the message names the URL, status and API message."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


def _api_message(response: requests.Response) -> str:
    """The API's own error message (``error.message`` plus constraint violations), else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or "").strip()[:500] or "no message in the response"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(body)[:500]
    message = str(error.get("message") or "no message in the response")
    violations = [
        f"{v.get('path') or v.get('parameterLocation') or '?'}: {v.get('message')}"
        for v in error.get("constraintViolations") or []
        if isinstance(v, dict)
    ]
    return f"{message} ({'; '.join(violations)})" if violations else message


def timeframe_bound(value: dt.datetime | str, name: str) -> str:
    """A timeframe bound as the API takes it: a datetime as UTC epoch milliseconds, a string as given
    (``now``, ``now-2h``, ISO 8601, epoch ms). A datetime without a time zone is refused: ambiguous."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} {value.isoformat()!r} has no time zone; pass an aware datetime")
        return str(int(value.timestamp() * 1000))
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{name} {value!r} is neither a datetime nor a Dynatrace time string")


class DynatraceHook(BaseHook):
    """One Dynatrace environment, through the Airflow connection ``dynatrace_conn_id``."""

    conn_name_attr = "dynatrace_conn_id"
    default_conn_name = "dynatrace_default"
    conn_type = "http"
    hook_name = "Dynatrace"

    def __init__(self, dynatrace_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.dynatrace_conn_id = dynatrace_conn_id

    # -- connection -------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Base URL, token, timeouts, retries and TLS verification, read from the connection."""
        name = self.dynatrace_conn_id
        conn = self.get_connection(name)
        if conn.conn_type not in ("http", "generic", None, ""):
            raise ValueError(f"connection {name!r}: conn_type {conn.conn_type!r}; expected 'http'")
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ValueError(
                f"connection {name!r} has no host; set it to the environment URL, e.g. "
                "https://<env-id>.live.dynatrace.com or https://<host>/e/<env-id> "
                "(fleetsim: http://127.0.0.1:PORT)"
            )
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"connection {name!r}: host {conn.host!r} is not an http(s) environment URL")
        if conn.port and parts.port is None:
            host = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
        token = (conn.password or "").strip().removeprefix("Api-Token ").strip()
        if not token:
            raise ValueError(
                f"connection {name!r} has no API token (password); it needs problems.read and metrics.read"
            )
        extra = conn.extra_dejson

        def number(key: str, default: float, minimum: float) -> float:
            raw = extra.get(key, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"connection {name!r}: extra {key} {raw!r} is not a number") from None
            if not math.isfinite(value) or value < minimum:
                raise ValueError(f"connection {name!r}: extra {key} {raw!r} must be at least {minimum}")
            return value

        verify = extra.get("verify", True)
        if not isinstance(verify, (bool, str)):
            raise ValueError(
                f"connection {name!r}: extra verify {verify!r} must be a bool or a CA bundle path"
            )
        return {
            "base_url": host,
            "token": token,
            "timeout": (
                number("connect_timeout", DEFAULT_CONNECT_TIMEOUT, 0.001),
                number("timeout", DEFAULT_READ_TIMEOUT, 0.001),
            ),
            "max_retries": int(number("max_retries", DEFAULT_MAX_RETRIES, 0)),
            "backoff_factor": number("backoff_factor", DEFAULT_BACKOFF_FACTOR, 0),
            "verify": verify,
        }

    @property
    def base_url(self) -> str:
        """The environment's base URL, with its scheme and no trailing slash."""
        return self.settings["base_url"]

    @cached_property
    def session(self) -> requests.Session:
        """A session that sends the token and retries throttled, failing and unreachable requests."""
        s = self.settings
        retry = Retry(
            total=s["max_retries"],
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            backoff_factor=s["backoff_factor"],
            respect_retry_after_header=True,
            retry_after_max=MAX_RETRY_AFTER_SECONDS,
            raise_on_status=False,  # the last answer comes back, so its status and message can be named
        )
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Authorization": f"Api-Token {s['token']}", "Accept": "application/json"})
        session.verify = s["verify"]
        return session

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of a successful GET; a :class:`DynatraceError` naming URL, status and message."""
        url = f"{self.base_url}{path}"
        try:
            response = self.session.get(url, params=params, timeout=self.settings["timeout"])
        except requests.RequestException as exc:
            raise DynatraceError(
                f"Dynatrace GET {url} failed (retried up to {self.settings['max_retries']} times): "
                f"{type(exc).__name__}: {exc}",
                url=url,
            ) from exc
        if response.status_code != 200:
            raise DynatraceError(
                f"Dynatrace GET {url} answered HTTP {response.status_code}: {_api_message(response)}",
                url=url,
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DynatraceError(
                f"Dynatrace GET {url} answered HTTP 200 without a JSON object: {response.text[:200]!r}",
                url=url,
                status=200,
            )
        return body

    @staticmethod
    def _check_selector(entity_selector: str) -> None:
        if not entity_selector or not entity_selector.strip():
            raise ValueError('entity_selector is empty; name the entities, e.g. type("HOST"),tag("k:v")')
        if len(entity_selector) > ENTITY_SELECTOR_MAX_CHARS:
            raise ValueError(
                f"entity_selector is {len(entity_selector)} characters long; the API takes at most "
                f"{ENTITY_SELECTOR_MAX_CHARS}: {entity_selector[:80]!r}..."
            )

    # -- problems ---------------------------------------------------------------------------------------
    def open_problems(
        self, entity_selector: str, since: dt.datetime | str = "now-2h"
    ) -> list[dict[str, Any]]:
        """Every OPEN problem concerning the selected entities (affected, impacted or root cause) that
        started or ended since ``since``, as the API returns them, over every page (500 per page)."""
        self._check_selector(entity_selector)
        params: dict[str, Any] = {
            "problemSelector": 'status("open")',
            "entitySelector": entity_selector,
            "from": timeframe_bound(since, "since"),
            "pageSize": PROBLEMS_PAGE_SIZE,
        }
        problems: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            body = self._get(PROBLEMS_PATH, params)
            problems.extend(body.get("problems") or [])
            key = body.get("nextPageKey")
            if not key:
                return problems
            params = {"nextPageKey": key}  # alone: the key holds the query
        raise DynatraceError(
            f"Dynatrace GET {self.base_url}{PROBLEMS_PATH} kept returning page keys after {MAX_PAGES} pages "
            f"for entitySelector {entity_selector!r}",
            url=f"{self.base_url}{PROBLEMS_PATH}",
        )

    # -- metrics ----------------------------------------------------------------------------------------
    def metric_series(
        self,
        metric_selector: str,
        entity_selector: str,
        start: dt.datetime | str,
        end: dt.datetime | str,
        resolution: str = "Inf",
    ) -> list[dict[str, Any]]:
        """The series (``{"dimensions", "dimensionMap", "timestamps", "values"}``) of one metric for the
        selected entities over ``start``..``end``; ``resolution="Inf"`` gives one value per series."""
        if not metric_selector or not metric_selector.strip():
            raise ValueError("metric_selector is empty; e.g. builtin:service.errors.total.rate:avg")
        self._check_selector(entity_selector)
        body = self._get(
            METRICS_QUERY_PATH,
            {
                "metricSelector": metric_selector,
                "entitySelector": entity_selector,
                "from": timeframe_bound(start, "start"),
                "to": timeframe_bound(end, "end"),
                "resolution": resolution,
            },
        )
        series: list[dict[str, Any]] = []
        for result in body.get("result") or []:
            series.extend(result.get("data") or [])
        return series

    def metric_average(
        self,
        metric_selector: str,
        entity_selector: str,
        start: dt.datetime | str,
        end: dt.datetime | str,
    ) -> float | None:
        """The average of the metric's non-null values over ``start``..``end`` across every selected
        entity's series (one value per series: ``resolution=Inf``); None when there is no data."""
        values = [
            float(v)
            for series in self.metric_series(metric_selector, entity_selector, start, end, "Inf")
            for v in series.get("values") or []
            if v is not None
        ]
        return sum(values) / len(values) if values else None
