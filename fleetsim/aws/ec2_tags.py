"""EC2 ``DescribeTags`` in pages, as the EC2 API reference documents it; moto answers every tag in one
response whatever ``MaxResults`` says, so a client's paging was never exercised and its calls undercounted.

DescribeTags, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeTags.html (and
botocore's ec2 2016-11-15 service model, shape ``DescribeTagsRequest``):

- ``MaxResults``: "The maximum number of items to return for this request. This value can be between 5
  and 1000. To get the next page of items, make another request with the token returned in the
  output." A value outside 5-1000 is refused with ``InvalidParameterValue`` (EC2's code for "a value
  specified in a parameter is not valid, is unsupported, or cannot be used", Error codes for the Amazon
  EC2 API, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html). (The reference
  of API version 2015-03-01 said a value above 1000 returned 1,000 results; the current text gives the
  range only, and fleetsim follows the current text.)
- ``NextToken``: "Pagination continues from the end of the items returned by the previous request."
  The response's ``nextToken`` "is null when there are no more items to return."
- Without ``MaxResults`` the reference names no page size: it calls such a request unpaginated ("We
  strongly recommend using only paginated requests. Unpaginated requests are susceptible to throttling
  and timeouts."), and Pagination in the Amazon EC2 API
  (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-pagination.html) does not say more. fleetsim
  takes the conservative reading: never more than the documented maximum, 1,000 items, in one response,
  with a ``NextToken`` for the rest. A client that follows ``nextToken`` as the reference says reads
  everything either way; one that ignores it is caught here rather than trusted.
- Filters: ``key``, ``resource-id``, ``resource-type``, ``tag:<key>`` and ``value``, applied before
  paging (a page holds up to ``MaxResults`` matching tags). moto ignores ``tag:<key>`` and any unknown
  name; fleetsim applies the first and refuses the others with ``InvalidParameterValue``.
- "The order of the elements in the response ... might vary": fleetsim orders by resource id then key,
  so a token (the last item returned) continues after that item even when tags are created or deleted
  between pages. A token that is not one fleetsim issued for the same filters is refused with
  ``InvalidPaginationToken`` ("The specified pagination token is not valid or is expired", Error codes
  for the Amazon EC2 API).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.tags import TagBackend
from moto.ec2.responses import EC2Response
from moto.ec2.utils import simple_aws_filter_to_re

from fleetsim.aws.root_volume import EC2Error

MIN_RESULTS, MAX_RESULTS = 5, 1000  # DescribeTags' documented MaxResults range
DEFAULT_RESULTS = MAX_RESULTS  # no MaxResults: the documented maximum per response (see above)
MOTO_FILTERS = frozenset(TagBackend.VALID_TAG_FILTERS)  # key, resource-id, resource-type, value


def _page_size(raw: Any) -> int:
    if raw is None:
        return DEFAULT_RESULTS
    try:
        size = int(raw)
    except (TypeError, ValueError):
        size = None
    if size is None or not MIN_RESULTS <= size <= MAX_RESULTS:
        raise EC2Error(
            "InvalidParameterValue",
            f"Value ( {raw} ) for parameter maxResults is invalid. "
            f"Expecting a value between {MIN_RESULTS} and {MAX_RESULTS}.",
        )
    return size


def _filters_digest(filters: dict[str, list[str]]) -> str:
    canonical = json.dumps({k: sorted(v) for k, v in sorted(filters.items())})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _token(last: dict[str, str], digest: str) -> str:
    raw = json.dumps([digest, last["resource_id"], last["key"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _after(token: str, digest: str) -> tuple[str, str]:
    """The (resource id, key) a token continues after; refused if it is not one issued for these filters."""
    try:
        issued_for, resource_id, key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        issued_for = None
    if issued_for != digest:
        raise EC2Error("InvalidPaginationToken", "The specified pagination token is not valid or is expired")
    return str(resource_id), str(key)


def _tag_filters(filters: dict[str, list[str]]) -> list[tuple[str, list[re.Pattern[str]]]]:
    """``tag:<key>`` filters: the resource has tag ``<key>`` with one of the values (wildcards allowed)."""
    return [
        (name.removeprefix("tag:"), [re.compile(simple_aws_filter_to_re(v)) for v in values])
        for name, values in filters.items()
        if name.startswith("tag:")
    ]


def _describe_tags(self: EC2Response) -> ActionResult:
    filters: dict[str, list[str]] = self._filters_from_querystring()
    self.error_on_dryrun()
    unknown = sorted(n for n in filters if n not in MOTO_FILTERS and not n.startswith("tag:"))
    if unknown:
        raise EC2Error("InvalidParameterValue", f"The filter '{unknown[0]}' is invalid")
    size = _page_size(self._get_param("MaxResults"))
    digest = _filters_digest(filters)
    token = self._get_param("NextToken")
    after = _after(token, digest) if token else None

    backend = self.ec2_backend
    rows = backend.describe_tags(filters={k: v for k, v in filters.items() if k in MOTO_FILTERS})
    for key, patterns in _tag_filters(filters):
        rows = [
            r
            for r in rows
            if (value := backend.tags.get(r["resource_id"], {}).get(key)) is not None
            and any(p.match(value) for p in patterns)
        ]
    rows.sort(key=lambda r: (r["resource_id"], r["key"]))
    if after is not None:
        rows = [r for r in rows if (r["resource_id"], r["key"]) > after]
    page = rows[:size]
    body: dict[str, Any] = {"Tags": page}
    if len(rows) > size:
        body["NextToken"] = _token(page[-1], digest)
    return ActionResult(body)


def install() -> None:
    """Serve DescribeTags in pages on moto's EC2."""
    EC2Response.describe_tags = _describe_tags  # type: ignore[method-assign]
