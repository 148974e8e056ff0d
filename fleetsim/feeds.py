"""The threat feeds, as their publishers serve them: CISA's KEV catalog (JSON) and FIRST's daily EPSS scores
(CSV, gzipped), so the product's daily feed refresh can run against fleetsim end to end.

- KEV: the committed subset (``include/feeds/kev-subset.json``: real CISA entries, copied verbatim) plus
  the scenario's ``feeds.kev_added`` listings and any added at run time (``POST /fleetsim/kev``): made-up
  test data in CISA's own shape (``title``, ``catalogVersion``, ``dateReleased``, ``count``,
  ``vulnerabilities[]`` with ``cveID``, ``vendorProject``, ``product``, ``vulnerabilityName``,
  ``dateAdded``, ``dueDate``, ``knownRansomwareCampaignUse``), newest first as CISA orders them.
  https://www.cisa.gov/known-exploited-vulnerabilities-catalog (JSON feed:
  https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json)
- EPSS: the committed sample (made-up scores; see include/feeds/README.md) plus the listings' own ``epss``,
  as the daily bulk file: a ``#model_version:...,score_date:...`` comment line, the header
  ``cve,epss,percentile``, one row per CVE, gzipped. https://www.first.org/epss/data_stats

Served at ``/feeds/kev.json`` and ``/feeds/epss_scores.csv.gz`` (the product reads the URLs from its
``patchcycle_feeds`` connection's extras ``kev_url`` and ``epss_url``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from fleetsim.fleet import FleetState
from fleetsim.scenario import KevListing

FEEDS_DIR = Path(__file__).resolve().parents[1] / "include" / "feeds"
KEV_PATH = "/feeds/kev.json"
EPSS_PATH = "/feeds/epss_scores.csv.gz"


class FeedsApi:
    """KEV and EPSS as their publishers serve them, with the listings the scenario (or a test) adds."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        self.seed = state.scenario.feeds
        self.base = json.loads((FEEDS_DIR / "kev-subset.json").read_text())
        self.epss_text = (FEEDS_DIR / "epss-sample.csv").read_text()
        self.added: list[KevListing] = list(self.seed.kev_added)

    def handles(self, path: str) -> bool:
        """The two feed documents."""
        return path in (KEV_PATH, EPSS_PATH)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.state.lock:
            self.state.calls[f"feeds.{request.path.rsplit('/', 1)[-1]}"] += 1
        if request.method != "GET":
            return Response("method not allowed", 405)(environ, start_response)
        if request.path == KEV_PATH:
            body = json.dumps(self.kev_document(), indent=4).encode()
            return Response(body, 200, mimetype="application/json")(environ, start_response)
        return Response(gzip.compress(self.epss_csv().encode(), mtime=0), 200, mimetype="application/gzip")(
            environ, start_response
        )

    # -- what is served -----------------------------------------------------------------------------
    def add(self, listing: dict[str, Any]) -> dict[str, Any]:
        """Add a listing (``POST /fleetsim/kev``, a KevListing's fields): CISA adds an entry."""
        entry = KevListing.model_validate(listing)
        with self.state.lock:
            self.added = [a for a in self.added if a.cveID != entry.cveID] + [entry]
        return {"added": entry.cveID, "count": len(self.kev_document()["vulnerabilities"])}

    def kev_document(self) -> dict[str, Any]:
        """The catalog: the committed subset and the added listings, newest first."""
        with self.state.lock:
            added = list(self.added)
        extra = [
            {
                "cveID": a.cveID,
                "vendorProject": a.vendorProject,
                "product": a.product,
                "vulnerabilityName": a.vulnerabilityName,
                "dateAdded": a.dateAdded.isoformat(),
                "shortDescription": "Made-up listing served by fleetsim for tests and the demo.",
                "requiredAction": "Apply mitigations per vendor instructions.",
                "dueDate": a.dueDate.isoformat(),
                "knownRansomwareCampaignUse": a.knownRansomwareCampaignUse,
                "notes": "fleetsim test data; not a CISA entry",
            }
            for a in sorted(added, key=lambda a: (a.dateAdded, a.cveID), reverse=True)
        ]
        listed = {a["cveID"] for a in extra}
        vulnerabilities = extra + [v for v in self.base["vulnerabilities"] if v["cveID"] not in listed]
        newest = max((a.dateAdded for a in added), default=None)
        version = self.seed.catalog_version or (
            newest.strftime("%Y.%m.%d") if newest else self.base["catalogVersion"]
        )
        released = (
            dt.datetime.combine(newest, dt.time(17), dt.UTC).isoformat().replace("+00:00", "Z")
            if newest
            else self.base["dateReleased"]
        )
        return {
            **self.base,
            "catalogVersion": version,
            "dateReleased": released,
            "count": len(vulnerabilities),
            "vulnerabilities": vulnerabilities,
        }

    def epss_csv(self) -> str:
        """The EPSS sample with the added listings' scores (a listing without one is not scored)."""
        with self.state.lock:
            scored = {a.cveID: a.epss for a in self.added if a.epss is not None}
        lines = [line for line in self.epss_text.splitlines() if line.split(",", 1)[0] not in scored]
        lines += [f"{cve},{score:.5f},0.99000" for cve, score in sorted(scored.items())]
        return "\n".join(lines) + "\n"
