"""fleetsim's threat feeds as the product's feed refresh reads them: CISA's KEV JSON (the committed subset
plus the scenario's and a test's added listings) and FIRST's gzipped EPSS CSV, both parsed by the
product's own parsers (patchcycle.feeds)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from fleetsim_testkit import group, patch, scenario_dict

from patchcycle.feeds import fetch_feed, load_feed_snapshots, parse_epss_bytes, parse_kev

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-feeds")]

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "feeds",
            "aws": {"account_id": "111111111111", "region": "us-east-1", "groups": [group("a", 1)]},
        }
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
    feeds={
        "kev_added": [
            {
                "cveID": "CVE-2026-21001",
                "vendorProject": "Microsoft",
                "product": "Windows",
                "dateAdded": "2026-11-24",
                "dueDate": "2026-12-15",
                "epss": 0.61,
            }
        ]
    },
)


def test_kev_is_the_committed_subset_with_the_scenarios_listing_in_cisas_shape(fleet) -> None:
    committed = load_feed_snapshots().kev
    kev = parse_kev(fetch_feed(f"{fleet.url}/feeds/kev.json"), "fleetsim")
    assert set(kev.entries) == {*committed.entries, "CVE-2026-21001"}
    added = kev.get("CVE-2026-21001")
    assert (added.vendor_project, added.product, added.date_added.isoformat()) == (
        "Microsoft",
        "Windows",
        "2026-11-24",
    )
    assert kev.catalog_version == "2026.11.24" and kev.date_released.startswith("2026-11-24")
    epss = parse_epss_bytes(fetch_feed(f"{fleet.url}/feeds/epss_scores.csv.gz"), "fleetsim")
    assert epss.get("CVE-2026-21001").epss == 0.61 and epss.score_date


def test_a_listing_added_at_run_time_is_served_next(fleet) -> None:
    body = {
        "cveID": "CVE-2026-21002",
        "vendorProject": "Linux",
        "product": "Kernel",
        "dateAdded": "2026-11-25",
        "dueDate": "2026-12-16",
    }
    request = urllib.request.Request(
        f"{fleet.url}/fleetsim/kev", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        assert json.load(resp)["added"] == "CVE-2026-21002"
    kev = parse_kev(fetch_feed(f"{fleet.url}/feeds/kev.json"), "fleetsim")
    assert "CVE-2026-21002" in kev and kev.catalog_version == "2026.11.25"
    assert fleet.status_of("/fleetsim/kev", method="POST") == 400  # no listing in the body
