"""An identity provider's published SAML metadata, fetched from its URL (for IAM Identity Center's external
identity provider, whose certificates AWS offers no API to read).

One ``GET`` of the URL the tenant file names (``saml.aws_identity_center.metadata_url``): https, or http
on loopback only (a test's or fleetsim's server); at most 10 MB (IAM's own bound on a metadata
document); no redirects to another host. Answers the document's text; any failure is a
:class:`MetadataFetchError` naming the URL.
"""

from __future__ import annotations

from urllib.parse import urlparse

import requests

TIMEOUT_SECONDS = (10, 30)
MAX_BYTES = 10_000_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class MetadataFetchError(RuntimeError):
    """The metadata URL could not be read; the message names it and why."""


def fetch_metadata(url: str) -> str:
    """The SAML metadata document published at ``url``."""
    parsed = urlparse(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS):
        raise MetadataFetchError(f"{url}: metadata is fetched over https only (http on loopback)")
    try:
        with requests.get(url, timeout=TIMEOUT_SECONDS, stream=True, allow_redirects=False) as response:
            if response.status_code != 200:
                raise MetadataFetchError(f"{url}: HTTP {response.status_code}")
            body: bytes = response.raw.read(MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise MetadataFetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
    if len(body) > MAX_BYTES:
        raise MetadataFetchError(f"{url}: more than {MAX_BYTES} bytes")
    return body.decode("utf-8", errors="replace")
