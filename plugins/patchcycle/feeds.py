"""Vulnerability feeds for risk ranking and SLA clocks: CISA KEV, FIRST EPSS and CVSS vectors.

Each feed has a parser that takes the feed's own bytes or text and returns an immutable value, so the
same code reads the live feed in production and the small snapshots committed under ``include/feeds/``
in tests and the demo (see that folder's README for what each snapshot is and which ones are made up).

Feeds and their live locations (production reads the URLs from the extras of the Airflow connection
``patchcycle_feeds``: ``kev_url``, ``epss_url``, ``nvd_url``; the defaults below are the public ones):

* CISA Known Exploited Vulnerabilities catalog, JSON (CC0 1.0):
  top level ``title``, ``catalogVersion``, ``dateReleased``, ``count``, ``vulnerabilities[]``; each entry
  has ``cveID``, ``dateAdded`` and ``dueDate`` (YYYY-MM-DD) and ``knownRansomwareCampaignUse`` ("Known" or
  "Unknown").
* FIRST EPSS daily scores, CSV (usually gzipped): a comment line
  ``#model_version:v2025.03.14,score_date:2025-09-03T12:55:00Z``, a header ``cve,epss,percentile``, then one
  row per CVE with the probability of exploitation in the next 30 days and its percentile, both in [0, 1].
* CVSS base vectors per CVE. The committed snapshot is a simplified map
  ``{"CVE-…": {"version": "3.1", "vector": "CVSS:3.1/…"}}``; :func:`parse_nvd_cvss` reduces an NVD CVE API 2.0
  response page to the same map.

Malformed input raises :class:`FeedError`, whose message names the source (file name or URL) and the line
or field at fault. Nothing here scores or ranks: that is :mod:`patchcycle.domain.risk`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

FEEDS_CONNECTION_ID = "patchcycle_feeds"
"""Airflow connection whose extras hold ``kev_url``, ``epss_url`` and ``nvd_url`` in production."""

KEV_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
EPSS_URL = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
NVD_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"

FEEDS_DIR = Path(__file__).resolve().parents[2] / "include" / "feeds"
"""The committed snapshots: ``<repo>/include/feeds``."""

KEV_SNAPSHOT = "kev-subset.json"
EPSS_SNAPSHOT = "epss-sample.csv"
CVSS_SNAPSHOT = "cvss-sample.json"

EPSS_HEADER = ("cve", "epss", "percentile")
CVSS_VERSIONS = ("3.0", "3.1", "4.0")

_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
_GZIP_MAGIC = b"\x1f\x8b"


class FeedError(ValueError):
    """A feed could not be read or parsed; the message names the source and the line or field."""


# --------------------------------------------------------------------------------------------------- KEV


@dataclass(frozen=True)
class KevEntry:
    """One Known Exploited Vulnerability, reduced to what ranking and SLA clocks use."""

    cve_id: str
    date_added: dt.date
    due_date: dt.date
    known_ransomware: bool
    vendor_project: str = ""
    product: str = ""
    vulnerability_name: str = ""


@dataclass(frozen=True)
class KevCatalog:
    """The CISA KEV catalog (or a subset of it), keyed by CVE id."""

    catalog_version: str
    date_released: str
    entries: Mapping[str, KevEntry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

    def __contains__(self, cve_id: object) -> bool:
        return cve_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, cve_id: str) -> KevEntry | None:
        """The entry for a CVE id, or ``None`` when the CVE is not in the catalog."""
        return self.entries.get(cve_id)

    def due_dates(self) -> dict[str, dt.date]:
        """``{cve_id: dueDate}`` for every entry (the input :mod:`patchcycle.domain.sla` takes)."""
        return {cve: entry.due_date for cve, entry in self.entries.items()}

    def earliest_due(self, cves: Iterable[str]) -> dt.date | None:
        """The earliest KEV ``dueDate`` among the given CVEs, or ``None`` when none of them is in KEV."""
        dues = [self.entries[c].due_date for c in cves if c in self.entries]
        return min(dues) if dues else None


def parse_kev(data: bytes | str, source: str = "KEV feed") -> KevCatalog:
    """Parse the CISA KEV JSON (the full catalog or a subset in the same shape).

    ``count`` must match the number of entries, CVE ids must be well formed and unique, and ``dateAdded``
    and ``dueDate`` must be ISO dates; anything else raises :class:`FeedError` naming the entry and field.
    """
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FeedError(f"{source}: top level must be a JSON object, got {type(document).__name__}")
    for key in ("catalogVersion", "dateReleased", "vulnerabilities"):
        if key not in document:
            raise FeedError(f"{source}: missing top-level field {key!r}")
    vulnerabilities = document["vulnerabilities"]
    if not isinstance(vulnerabilities, list):
        raise FeedError(f"{source}: field 'vulnerabilities' must be a list")
    count = document.get("count")
    if count is not None and count != len(vulnerabilities):
        raise FeedError(
            f"{source}: field 'count' is {count!r} but 'vulnerabilities' has {len(vulnerabilities)}"
        )

    entries: dict[str, KevEntry] = {}
    for index, item in enumerate(vulnerabilities):
        where = f"{source}: vulnerabilities[{index}]"
        if not isinstance(item, dict):
            raise FeedError(f"{where}: must be an object")
        cve_id = _cve_id(item.get("cveID"), f"{where}: field 'cveID'")
        where = f"{where} ({cve_id})"
        if cve_id in entries:
            raise FeedError(f"{where}: duplicate cveID")
        ransomware = item.get("knownRansomwareCampaignUse", "Unknown")
        if not isinstance(ransomware, str):
            raise FeedError(f"{where}: field 'knownRansomwareCampaignUse' must be a string")
        entries[cve_id] = KevEntry(
            cve_id=cve_id,
            date_added=_iso_date(item.get("dateAdded"), f"{where}: field 'dateAdded'"),
            due_date=_iso_date(item.get("dueDate"), f"{where}: field 'dueDate'"),
            known_ransomware=ransomware.strip().lower() == "known",
            vendor_project=str(item.get("vendorProject", "")).strip(),
            product=str(item.get("product", "")).strip(),
            vulnerability_name=str(item.get("vulnerabilityName", "")).strip(),
        )
    return KevCatalog(
        catalog_version=str(document["catalogVersion"]),
        date_released=str(document["dateReleased"]),
        entries=entries,
    )


# -------------------------------------------------------------------------------------------------- EPSS


class EpssScore(NamedTuple):
    """A CVE's EPSS probability of exploitation in the next 30 days, and its percentile (both 0..1)."""

    epss: float
    percentile: float


@dataclass(frozen=True)
class EpssScores:
    """One day's EPSS scores, with the model version and score date from the file's comment line."""

    model_version: str | None
    score_date: str | None
    scores: Mapping[str, EpssScore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    def __contains__(self, cve_id: object) -> bool:
        return cve_id in self.scores

    def __len__(self) -> int:
        return len(self.scores)

    def get(self, cve_id: str) -> EpssScore | None:
        """The score of a CVE, or ``None`` when the file has no row for it."""
        return self.scores.get(cve_id)


def parse_epss(text: str, source: str = "EPSS feed") -> EpssScores:
    """Parse EPSS CSV text.

    The optional first line ``#key:value,key:value`` is metadata: ``model_version`` and ``score_date`` are
    kept (for evidence), other keys ignored. Then the header ``cve,epss,percentile`` and one row per CVE.
    Blank lines are skipped. Errors name the 1-based line number in the file.
    """
    model_version: str | None = None
    score_date: str | None = None
    scores: dict[str, EpssScore] = {}
    header_seen = False
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if header_seen or number != 1:
                raise FeedError(f"{source}: line {number}: comment line only allowed before the header")
            metadata = _epss_metadata(line[1:], f"{source}: line {number}")
            model_version = metadata.get("model_version")
            score_date = metadata.get("score_date")
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if not header_seen:
            if tuple(f.lower() for f in fields) != EPSS_HEADER:
                raise FeedError(
                    f"{source}: line {number}: expected header {','.join(EPSS_HEADER)!r}, "
                    f"got {line.strip()!r}"
                )
            header_seen = True
            continue
        where = f"{source}: line {number}"
        if len(fields) != len(EPSS_HEADER):
            raise FeedError(f"{where}: expected 3 fields (cve,epss,percentile), got {len(fields)}: {line!r}")
        cve_id = _cve_id(fields[0], f"{where}: field 'cve'")
        if cve_id in scores:
            raise FeedError(f"{where}: duplicate row for {cve_id}")
        scores[cve_id] = EpssScore(
            epss=_probability(fields[1], f"{where}: field 'epss'"),
            percentile=_probability(fields[2], f"{where}: field 'percentile'"),
        )
    if not header_seen:
        raise FeedError(f"{source}: no header line {','.join(EPSS_HEADER)!r} found")
    return EpssScores(model_version=model_version, score_date=score_date, scores=scores)


def parse_epss_bytes(data: bytes, source: str = "EPSS feed") -> EpssScores:
    """Parse EPSS CSV bytes, gunzipping them first when they are gzip (the daily bulk file is ``.csv.gz``)."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FeedError(f"{source}: corrupt gzip data: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedError(f"{source}: not UTF-8 text: {exc}") from exc
    return parse_epss(text, source)


def _epss_metadata(text: str, where: str) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition(":")
        if not sep:
            raise FeedError(f"{where}: metadata {part.strip()!r} is not 'key:value'")
        metadata[key.strip()] = value.strip()
    return metadata


# -------------------------------------------------------------------------------------------------- CVSS


class CvssVector(NamedTuple):
    """A CVE's CVSS base vector and the CVSS version it is written in."""

    version: str
    vector: str


@dataclass(frozen=True)
class CvssVectors:
    """CVSS base vectors keyed by CVE id."""

    vectors: Mapping[str, CvssVector] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", MappingProxyType(dict(self.vectors)))

    def __contains__(self, cve_id: object) -> bool:
        return cve_id in self.vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def get(self, cve_id: str) -> CvssVector | None:
        """The vector of a CVE, or ``None`` when there is none."""
        return self.vectors.get(cve_id)


def parse_cvss_sample(data: bytes | str, source: str = "CVSS sample") -> CvssVectors:
    """Parse the simplified map ``{"CVE-…": {"version": "3.1", "vector": "CVSS:3.1/…"}}``.

    Top-level keys starting with ``_`` are notes and ignored. The vector must carry the prefix of its
    declared version (``CVSS:3.1/`` for 3.1); whether its metrics are valid is checked when it is scored.
    """
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FeedError(f"{source}: top level must be a JSON object of CVE id -> {{version, vector}}")
    vectors: dict[str, CvssVector] = {}
    for key, item in document.items():
        if key.startswith("_"):
            continue
        cve_id = _cve_id(key, f"{source}: key {key!r}")
        where = f"{source}: {cve_id}"
        if not isinstance(item, dict):
            raise FeedError(f"{where}: must be an object with 'version' and 'vector'")
        vectors[cve_id] = _cvss_vector(item.get("version"), item.get("vector"), where)
    return CvssVectors(vectors)


def parse_nvd_cvss(data: bytes | str, source: str = "NVD response") -> CvssVectors:
    """Reduce one page of an NVD CVE API 2.0 response to a CVE -> CVSS vector map.

    Per CVE the first available of ``cvssMetricV31``, ``cvssMetricV30``, ``cvssMetricV40`` is used (v3.x
    first: it is what NVD and vendors publish for nearly every CVE, and what the risk bands are calibrated
    on), preferring the ``Primary`` (NVD's own) metric over ``Secondary`` (CNA/ADP) ones. CVEs without any
    v3/v4 metric are left out. Paging (``startIndex``/``resultsPerPage``) is the caller's job.
    """
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("vulnerabilities"), list):
        raise FeedError(f"{source}: missing list field 'vulnerabilities'")
    vectors: dict[str, CvssVector] = {}
    for index, item in enumerate(document["vulnerabilities"]):
        where = f"{source}: vulnerabilities[{index}]"
        cve = item.get("cve") if isinstance(item, dict) else None
        if not isinstance(cve, dict):
            raise FeedError(f"{where}: missing object field 'cve'")
        cve_id = _cve_id(cve.get("id"), f"{where}: field 'cve.id'")
        metrics = cve.get("metrics") or {}
        for key in ("cvssMetricV31", "cvssMetricV30", "cvssMetricV40"):
            candidates = [m for m in metrics.get(key) or [] if isinstance(m, dict)]
            if not candidates:
                continue
            chosen = sorted(candidates, key=lambda m: m.get("type") != "Primary")[0]
            data_ = chosen.get("cvssData") or {}
            vectors[cve_id] = _cvss_vector(
                data_.get("version"), data_.get("vectorString"), f"{where} ({cve_id}): {key}"
            )
            break
    return CvssVectors(vectors)


def _cvss_vector(version: Any, vector: Any, where: str) -> CvssVector:
    if not isinstance(version, str) or version not in CVSS_VERSIONS:
        raise FeedError(
            f"{where}: field 'version' must be one of {', '.join(CVSS_VERSIONS)}, got {version!r}"
        )
    if not isinstance(vector, str) or not vector.strip().startswith(f"CVSS:{version}/"):
        raise FeedError(f"{where}: field 'vector' must start with 'CVSS:{version}/', got {vector!r}")
    return CvssVector(version=version, vector=vector.strip())


# --------------------------------------------------------------------------------------- snapshot loading


@dataclass(frozen=True)
class FeedSnapshot:
    """The three feeds as of one point in time: what risk ranking reads."""

    kev: KevCatalog
    epss: EpssScores
    cvss: CvssVectors
    source: str = ""
    """Where the feeds came from (a directory or a note), for evidence."""


def load_feed_snapshots(directory: Path | str | None = None) -> FeedSnapshot:
    """Read the committed snapshots (default ``<repo>/include/feeds``): KEV, EPSS and CVSS files.

    The EPSS file may be plain (``epss-sample.csv``) or gzipped (``epss-sample.csv.gz``).
    """
    folder = Path(directory) if directory is not None else FEEDS_DIR
    kev_path = folder / KEV_SNAPSHOT
    cvss_path = folder / CVSS_SNAPSHOT
    epss_path = folder / EPSS_SNAPSHOT
    if not epss_path.exists() and (folder / f"{EPSS_SNAPSHOT}.gz").exists():
        epss_path = folder / f"{EPSS_SNAPSHOT}.gz"
    return FeedSnapshot(
        kev=parse_kev(_read(kev_path), str(kev_path)),
        epss=parse_epss_bytes(_read(epss_path), str(epss_path)),
        cvss=parse_cvss_sample(_read(cvss_path), str(cvss_path)),
        # Where the snapshots came from, as a reader of the evidence can find it: the project's own
        # committed snapshots are named as such, not by this machine's path.
        source=(
            "committed snapshots (include/feeds of the patchcycle release)"
            if folder.resolve() == FEEDS_DIR.resolve()
            else str(folder)
        ),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FeedError(f"{path}: cannot read feed snapshot: {exc.strerror or exc}") from exc


# ----------------------------------------------------------------------------------------- live fetching


@dataclass(frozen=True)
class FeedUrls:
    """Where production fetches each feed."""

    kev_url: str = KEV_URL
    epss_url: str = EPSS_URL
    nvd_url: str = NVD_URL

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any] | None) -> FeedUrls:
        """The URLs from the ``patchcycle_feeds`` connection's extras, with the public feeds as defaults."""
        extras = extras or {}
        return cls(
            **{name: str(extras[name]) for name in ("kev_url", "epss_url", "nvd_url") if extras.get(name)}
        )


def fetch_feed(
    url: str, timeout: float = 60.0, headers: Mapping[str, str] | None = None, max_bytes: int = 64 * 2**20
) -> bytes:
    """GET a feed over HTTPS and return its body (EPSS stays gzipped: pass it to :func:`parse_epss_bytes`).

    ``headers`` carries e.g. the NVD ``apiKey``. Raises :class:`FeedError` naming the URL on HTTP errors,
    network errors, non-HTTP(S) URLs, and bodies larger than ``max_bytes``.
    """
    if not url.lower().startswith(("https://", "http://")):
        raise FeedError(f"{url}: only http(s) feed URLs are supported")
    request = urllib.request.Request(url, headers={"User-Agent": "patchcycle-feeds/1.0", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise FeedError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise FeedError(f"{url}: cannot fetch feed: {getattr(exc, 'reason', exc)}") from exc
    if len(body) > max_bytes:
        raise FeedError(f"{url}: feed larger than {max_bytes} bytes")
    return body


# ------------------------------------------------------------------------------------------------ helpers


def _cve_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _CVE_ID.match(value.strip()):
        raise FeedError(f"{where}: not a CVE id: {value!r}")
    return value.strip()


def _iso_date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise FeedError(f"{where}: not a YYYY-MM-DD date: {value!r}") from None


def _probability(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FeedError(f"{where}: not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise FeedError(f"{where}: must be between 0 and 1, got {value}")
    return number
