"""CloudTrail event history and ``LookupEvents``, which moto lacks (its CloudTrail keeps trails only).

The history is per account and region, kept on moto's own CloudTrail backend (so ``reset()`` empties it);
:mod:`fleetsim.aws.audit` fills it from the requests fleetsim's AWS serves. Documents followed:

- LE = API Reference, LookupEvents
  https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html (the same text is
  in botocore's cloudtrail-2013-11-01 model): one lookup attribute ("Currently the list can contain only
  one item") of EventId | EventName | ReadOnly | Username | ResourceType | ResourceName | EventSource |
  AccessKeyId; StartTime "after or at", EndTime "before or at", and "If the specified start time is after
  the specified end time, an error is returned"; MaxResults "Possible values are 1 through 50. The
  default is 50"; NextToken "must be passed in with the same parameters that were specified in the
  original call"; Events "sorted by time. The most recent event is listed first"; "You can look up
  events that occurred in a Region within the last 90 days"; EventCategory "insight" asks for Insights
  events only; and "The rate of lookup requests is limited to two per second, per account, per Region.
  If this limit is exceeded, a throttling error occurs."
- EV = API Reference, Event and Resource: EventId, EventName, ReadOnly, AccessKeyId, EventTime,
  EventSource, Username, Resources (ResourceType, ResourceName), CloudTrailEvent ("A JSON string that
  contains a representation of the event returned").
- QT = User Guide, "Quotas in AWS CloudTrail": "LookupEvents API | 2 transactions per second (TPS)",
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/WhatIsCloudTrail-Limits.html
- CE = API Reference, Common Errors: ThrottlingException, "The request was denied due to request
  throttling", HTTP status 400, https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/CommonErrors.html
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.cloudtrail.models import cloudtrail_backends
from moto.cloudtrail.responses import CloudTrailResponse
from moto.core.exceptions import JsonRESTError

RETENTION = dt.timedelta(days=90)  # LE: "within the last 90 days"
LOOKUPS_PER_SECOND = 2  # LE, QT: "two per second, per account, per Region"
MAX_RESULTS = 50  # LE: "1 through 50. The default is 50"
LOOKUP_ATTRIBUTE_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)
# LE, LookupAttribute.AttributeValue: "The maximum length [...] is 2000 characters. The following
# characters ('_', ' ', ',', '\n') count as two characters towards the 2000 character limit."
ATTRIBUTE_VALUE_LIMIT = 2000
_DOUBLE_WIDTH = frozenset("_ ,\n")


class InvalidLookupAttributesException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidLookupAttributesException", message)


class InvalidTimeRangeException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidTimeRangeException", message)


class InvalidMaxResultsException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidMaxResultsException", message)


class InvalidNextTokenException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidNextTokenException", message)


class InvalidEventCategoryException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidEventCategoryException", message)


class ThrottlingException(JsonRESTError):
    code = 400  # CE: ThrottlingException, HTTP Status Code 400

    def __init__(self, message: str) -> None:
        super().__init__("ThrottlingException", message)


@dataclass(frozen=True)
class TrailEvent:
    """One management event as event history keeps it (EV), with the record CloudTrail wrote."""

    seq: int  # arrival order: breaks ties between events of the same second
    event_time: dt.datetime  # aware, whole seconds (a record's eventTime has no fraction)
    event_id: str
    event_name: str
    event_source: str
    read_only: bool
    access_key_id: str | None
    username: str | None
    resources: tuple[tuple[str | None, str], ...]  # (ResourceType, ResourceName)
    record: str  # the CloudTrailEvent JSON string

    @property
    def order(self) -> tuple[float, int]:
        return (self.event_time.timestamp(), self.seq)

    def matches(self, key: str, value: str) -> bool:
        """Whether the event has ``value`` for lookup attribute ``key`` (LE's attribute keys)."""
        if key == "ResourceType":
            return any(rtype == value for rtype, _ in self.resources)
        if key == "ResourceName":
            return any(name == value for _, name in self.resources)
        if key == "ReadOnly":
            return ("true" if self.read_only else "false") == value.lower()
        field_of = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "Username": self.username,
            "EventSource": self.event_source,
            "AccessKeyId": self.access_key_id,
        }
        return field_of[key] == value

    def to_api(self) -> dict[str, Any]:
        """The event as LookupEvents returns it (EV); EventTime as the JSON protocol's epoch seconds."""
        event: dict[str, Any] = {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
            "EventTime": self.event_time.timestamp(),
            "EventSource": self.event_source,
            "Resources": [
                {"ResourceType": rtype, "ResourceName": name} if rtype else {"ResourceName": name}
                for rtype, name in self.resources
            ],
            "CloudTrailEvent": self.record,
        }
        if self.access_key_id:
            event["AccessKeyId"] = self.access_key_id
        if self.username:
            event["Username"] = self.username
        return event


@dataclass
class EventHistory:
    """The event history of one account and region: events in time order, and the lookup rate."""

    events: list[TrailEvent] = field(default_factory=list)
    lookups: deque[float] = field(default_factory=deque)  # times of the lookups of the last second
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: TrailEvent) -> None:
        with self.lock:
            if not self.events or event.order >= self.events[-1].order:
                self.events.append(event)
            else:  # an event stamped earlier than the newest (fleetsim's actors stamp past times)
                bisect.insort(self.events, event, key=lambda e: e.order)

    def admit_lookup(self, now: float) -> bool:
        """Whether a LookupEvents call at ``now`` is within the rate (LE, QT); counts it if so. Only the
        lookups of the second up to ``now`` count (a clock set back forgets the ones after it)."""
        with self.lock:
            self.lookups = deque(t for t in self.lookups if now - 1.0 < t <= now)
            if len(self.lookups) >= LOOKUPS_PER_SECOND:
                return False
            self.lookups.append(now)
            return True

    def newest_first(self, oldest: dt.datetime) -> list[TrailEvent]:
        """Every event at or after ``oldest``, the most recent first (LE)."""
        with self.lock:
            start = bisect.bisect_left(
                self.events, oldest.timestamp(), key=lambda e: e.event_time.timestamp()
            )
            return self.events[start:][::-1]


_SEQUENCE = itertools.count()
_CLOCK: list[Callable[[], float]] = []


def install(clock: Callable[[], float]) -> None:
    """Add LookupEvents to moto's CloudTrail; ``clock`` (epoch seconds) is the emulated cloud's time."""
    _CLOCK[:] = [clock]
    CloudTrailResponse.lookup_events = _lookup_events  # type: ignore[attr-defined]


def clock() -> float:
    """The emulated cloud's time in epoch seconds (fleetsim's clock once installed)."""
    return _CLOCK[0]() if _CLOCK else dt.datetime.now(dt.UTC).timestamp()


def now() -> dt.datetime:
    """The emulated cloud's time as an aware datetime."""
    return dt.datetime.fromtimestamp(clock(), dt.UTC)


def history(account_id: str, region: str) -> EventHistory:
    """The event history of an account and region (created with moto's backend, emptied by its reset)."""
    backend = cloudtrail_backends[account_id][region]
    found = backend.__dict__.get("fleetsim_history")
    if found is None:
        found = backend.__dict__.setdefault("fleetsim_history", EventHistory())
    return found


def forget_history() -> None:
    """Empty every account's event history (the seeding of a new emulated cloud is no one's activity)."""
    for account in list(cloudtrail_backends.values()):
        for backend in list(account.values()):
            backend.__dict__.pop("fleetsim_history", None)


def record_event(
    account_id: str,
    region: str,
    record: Mapping[str, Any],
    *,
    username: str | None,
    resources: tuple[tuple[str | None, str], ...] = (),
) -> TrailEvent:
    """Keep one CloudTrail record (its ``eventTime``, ``eventName``... as the record contents name them)
    in the account and region's event history."""
    when = dt.datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
    event = TrailEvent(
        seq=next(_SEQUENCE),
        event_time=when.replace(microsecond=0),
        event_id=str(record["eventID"]),
        event_name=str(record["eventName"]),
        event_source=str(record["eventSource"]),
        read_only=bool(record.get("readOnly")),
        access_key_id=(record.get("userIdentity") or {}).get("accessKeyId"),
        username=username,
        resources=resources,
        record=json.dumps(record, separators=(",", ":")),
    )
    history(account_id, region).add(event)
    return event


# -- LookupEvents --------------------------------------------------------------------------------
def _timestamp(value: Any, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidTimeRangeException(f"{name} {value!r} is not a time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _attribute(raw: Any) -> tuple[str, str] | None:
    attributes = list(raw or [])
    if not attributes:
        return None
    if len(attributes) > 1:
        raise InvalidLookupAttributesException("Currently the list can contain only one item.")
    key, value = attributes[0].get("AttributeKey"), attributes[0].get("AttributeValue")
    if key not in LOOKUP_ATTRIBUTE_KEYS:
        raise InvalidLookupAttributesException(f"AttributeKey {key!r} is not a lookup attribute key")
    if not isinstance(value, str) or not value:
        raise InvalidLookupAttributesException("AttributeValue is required")
    if sum(2 if c in _DOUBLE_WIDTH else 1 for c in value) > ATTRIBUTE_VALUE_LIMIT:
        raise InvalidLookupAttributesException(
            f"AttributeValue is longer than {ATTRIBUTE_VALUE_LIMIT} characters"
        )
    if key == "ReadOnly" and value.lower() not in ("true", "false"):
        raise InvalidLookupAttributesException("ReadOnly takes the value true or false")
    return key, value


def _token(fingerprint: str, last: TrailEvent) -> str:
    raw = json.dumps({"p": fingerprint, "t": last.event_time.timestamp(), "s": last.seq})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _after_token(token: str, fingerprint: str) -> tuple[float, int]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = (float(decoded["t"]), int(decoded["s"]))
        same = decoded["p"] == fingerprint
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidNextTokenException("The token is not valid.") from exc
    if not same:
        raise InvalidNextTokenException("The token was used in a request with different parameters.")
    return position


def lookup(
    account_id: str,
    region: str,
    *,
    attribute: tuple[str, str] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    max_results: int = MAX_RESULTS,
    next_token: str | None = None,
    fingerprint: str = "",
) -> tuple[list[TrailEvent], str | None]:
    """One page of the account and region's events, the most recent first, and the next page's token."""
    current = now()
    oldest = current - RETENTION
    events = history(account_id, region).newest_first(max(oldest, start) if start else oldest)
    position = _after_token(next_token, fingerprint) if next_token else None
    page: list[TrailEvent] = []
    more = False
    for event in events:
        if position is not None and event.order >= position:
            continue
        if end is not None and event.event_time > end:
            continue
        if attribute is not None and not event.matches(*attribute):
            continue
        if len(page) == max_results:
            more = True
            break
        page.append(event)
    return page, (_token(fingerprint, page[-1]) if more else None)


def _lookup_events(self: CloudTrailResponse) -> str:
    """LookupEvents (LE): throttled at two a second per account and region, then validated and paged."""
    if not history(self.current_account, self.region).admit_lookup(clock()):
        raise ThrottlingException("Rate exceeded")
    category = self._get_param("EventCategory")
    if category is not None and category != "insight":
        raise InvalidEventCategoryException(
            f"EventCategory {category!r} is not valid; the valid value is insight"
        )
    raw_max = self._get_param("MaxResults")
    try:
        max_results = MAX_RESULTS if raw_max is None else int(raw_max)
    except (TypeError, ValueError) as exc:
        raise InvalidMaxResultsException(f"MaxResults {raw_max!r} is not a number") from exc
    if not 1 <= max_results <= MAX_RESULTS:
        raise InvalidMaxResultsException(f"MaxResults must be 1 through {MAX_RESULTS}, not {max_results}")
    attribute = _attribute(self._get_param("LookupAttributes"))
    start = _timestamp(self._get_param("StartTime"), "StartTime")
    end = _timestamp(self._get_param("EndTime"), "EndTime")
    if start and end and start > end:
        raise InvalidTimeRangeException("The start time is after the end time.")
    if category == "insight":  # fleetsim emulates no Insights events
        return json.dumps({"Events": []})
    fingerprint = hashlib.sha256(
        json.dumps([attribute, start and start.isoformat(), end and end.isoformat()]).encode()
    ).hexdigest()[:16]
    page, token = lookup(
        self.current_account,
        self.region,
        attribute=attribute,
        start=start,
        end=end,
        max_results=max_results,
        next_token=self._get_param("NextToken"),
        fingerprint=fingerprint,
    )
    body: dict[str, Any] = {"Events": [event.to_api() for event in page]}
    if token:
        body["NextToken"] = token
    return json.dumps(body)
