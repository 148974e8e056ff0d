"""Feed parsing and the committed snapshots in include/feeds (no network: fetch_feed is not called here)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path

import pytest

from patchcycle.domain.risk import base_score
from patchcycle.feeds import (
    EPSS_URL,
    FEEDS_CONNECTION_ID,
    FEEDS_DIR,
    KEV_URL,
    NVD_URL,
    CvssVector,
    EpssScore,
    FeedError,
    FeedUrls,
    load_feed_snapshots,
    parse_cvss_sample,
    parse_epss,
    parse_epss_bytes,
    parse_kev,
    parse_nvd_cvss,
)

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = [
    REPO / "fleetsim" / "scenarios" / "demo.yaml",
    *sorted((REPO / "tests/e2e/scenarios").glob("*.yaml")),
]
SHARED_KEV = Path("/work/shared/data/cisa-kev/known_exploited_vulnerabilities.json")
EPSS_HEAD = "#model_version:v2025.03.14,score_date:2025-09-03T12:55:00Z\ncve,epss,percentile\n"


def scenario_cves() -> set[str]:
    return {cve for path in SCENARIOS for cve in re.findall(r"CVE-\d{4}-\d{4,}", path.read_text())}


# ------------------------------------------------------------------------------- committed snapshots


@pytest.fixture(scope="module")
def snapshot():
    return load_feed_snapshots()


def test_default_directory_is_include_feeds_of_the_repo(snapshot):
    assert FEEDS_DIR == REPO / "include" / "feeds"
    # Named for a reader of the evidence, not by the path on the machine that wrote it.
    assert snapshot.source == "committed snapshots (include/feeds of the patchcycle release)"
    assert load_feed_snapshots(FEEDS_DIR / ".." / "feeds").source.startswith("committed snapshots")


def test_kev_subset_is_the_2025_08_25_catalog(snapshot):
    assert snapshot.kev.catalog_version == "2025.08.25"
    assert snapshot.kev.date_released == "2025-08-25T17:04:19.9796Z"
    raw = json.loads((FEEDS_DIR / "kev-subset.json").read_text())
    assert list(raw) == ["title", "catalogVersion", "dateReleased", "count", "vulnerabilities"]
    assert raw["count"] == len(raw["vulnerabilities"]) == len(snapshot.kev)


@pytest.mark.parametrize(
    ("cve", "date_added", "due", "ransomware"),
    [
        ("CVE-2023-0386", dt.date(2025, 6, 17), dt.date(2025, 7, 8), False),
        ("CVE-2024-53104", dt.date(2025, 2, 5), dt.date(2025, 2, 26), False),
        ("CVE-2025-29824", dt.date(2025, 4, 8), dt.date(2025, 4, 29), True),
        ("CVE-2025-33053", dt.date(2025, 6, 10), dt.date(2025, 7, 1), False),
    ],
)
def test_kev_subset_has_the_real_entries_of_demo_cves(snapshot, cve, date_added, due, ransomware):
    entry = snapshot.kev.get(cve)
    assert entry is not None, f"{cve} missing from include/feeds/kev-subset.json"
    assert (entry.date_added, entry.due_date, entry.known_ransomware) == (date_added, due, ransomware)


def test_every_scenario_cve_in_the_subset_is_one_of_ours(snapshot):
    assert set(snapshot.kev.entries) <= scenario_cves()


@pytest.mark.skipif(not SHARED_KEV.exists(), reason="shared KEV catalog not available")
def test_kev_subset_is_exactly_the_shared_catalog_entries_for_the_scenario_cves():
    shared = json.loads(SHARED_KEV.read_text())
    wanted = [v for v in shared["vulnerabilities"] if v["cveID"] in scenario_cves()]
    subset = json.loads((FEEDS_DIR / "kev-subset.json").read_text())
    assert subset["catalogVersion"] == shared["catalogVersion"]
    assert subset["vulnerabilities"] == wanted, "refresh include/feeds/kev-subset.json (see its README)"


def test_epss_sample_keeps_its_metadata(snapshot):
    assert snapshot.epss.model_version == "v2025.03.14"
    assert snapshot.epss.score_date == "2025-09-03T12:55:00Z"
    assert snapshot.epss.get("CVE-2023-0386") == EpssScore(0.71245, 0.98627)
    assert set(snapshot.epss.scores) == set(snapshot.kev.entries)


def test_cvss_sample_vectors_all_score(snapshot):
    assert set(snapshot.cvss.vectors) == set(snapshot.kev.entries)
    assert snapshot.cvss.get("CVE-2025-33053") == CvssVector(
        "3.1", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"
    )
    assert {cve: base_score(v.vector) for cve, v in snapshot.cvss.vectors.items()}["CVE-2024-50302"] == 5.5


def test_readme_labels_the_made_up_files_and_names_the_connection():
    readme = (FEEDS_DIR / "README.md").read_text()
    assert "MADE-UP EPSS scores, not real EPSS data" in readme
    assert "ILLUSTRATIVE" in readme
    assert "CC0 1.0" in readme
    for needle in (FEEDS_CONNECTION_ID, "kev_url", "epss_url", "nvd_url", KEV_URL, EPSS_URL, NVD_URL):
        assert needle in readme


def test_load_from_another_directory_reads_gzipped_epss(tmp_path):
    for name in ("kev-subset.json", "cvss-sample.json"):
        (tmp_path / name).write_bytes((FEEDS_DIR / name).read_bytes())
    (tmp_path / "epss-sample.csv.gz").write_bytes(gzip.compress((FEEDS_DIR / "epss-sample.csv").read_bytes()))
    feeds = load_feed_snapshots(tmp_path)
    assert len(feeds.epss) == 10 and feeds.epss.model_version == "v2025.03.14"


def test_missing_snapshot_names_the_file(tmp_path):
    with pytest.raises(FeedError, match=r"kev-subset\.json: cannot read feed snapshot"):
        load_feed_snapshots(tmp_path)


# -------------------------------------------------------------------------------------------- EPSS


def test_parse_epss_rows_and_metadata():
    scores = parse_epss(EPSS_HEAD + "CVE-1999-0001,0.0142,0.7991\nCVE-2024-53104,0.5,0.99\n")
    assert scores.model_version == "v2025.03.14"
    assert scores.score_date == "2025-09-03T12:55:00Z"
    assert scores.get("CVE-1999-0001") == EpssScore(0.0142, 0.7991)
    assert scores.get("CVE-2000-0001") is None
    assert "CVE-2024-53104" in scores and len(scores) == 2


def test_parse_epss_without_comment_line_crlf_and_trailing_blank_lines():
    scores = parse_epss("\ufeffcve,epss,percentile\r\nCVE-1999-0001,0.0142,0.7991\r\n\r\n")
    assert scores.model_version is None and scores.score_date is None
    assert scores.get("CVE-1999-0001") == EpssScore(0.0142, 0.7991)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "CVE-1999-0001,0.1,0.5\nCVE-1999-0002,abc,0.5\n",
            r"epss\.csv: line 4: field 'epss': not a number: 'abc'",
        ),
        ("CVE-1999-0001,0.1,0.5\nCVE-1999-0002,0.1\n", r"epss\.csv: line 4: expected 3 fields"),
        ("CVE-1999-0001,0.1,1.5\n", r"epss\.csv: line 3: field 'percentile': must be between 0 and 1"),
        ("CVE-1999-0001,nan,0.5\n", r"epss\.csv: line 3: field 'epss': must be between 0 and 1"),
        ("cve-nope,0.1,0.5\n", r"epss\.csv: line 3: field 'cve': not a CVE id: 'cve-nope'"),
        (
            "CVE-1999-0001,0.1,0.5\nCVE-1999-0001,0.2,0.6\n",
            r"epss\.csv: line 4: duplicate row for CVE-1999-0001",
        ),
        ("#late comment\n", r"epss\.csv: line 3: comment line only allowed before the header"),
    ],
)
def test_malformed_epss_names_the_file_and_line(body, message):
    with pytest.raises(FeedError, match=message):
        parse_epss(EPSS_HEAD + body, "epss.csv")


def test_epss_header_and_metadata_errors():
    with pytest.raises(FeedError, match=r"x\.csv: line 2: expected header 'cve,epss,percentile'"):
        parse_epss("#model_version:v1\ncve,score\n", "x.csv")
    with pytest.raises(FeedError, match=r"x\.csv: no header line"):
        parse_epss("#model_version:v1\n", "x.csv")
    with pytest.raises(FeedError, match=r"x\.csv: line 1: metadata 'garbage' is not 'key:value'"):
        parse_epss("#garbage\ncve,epss,percentile\n", "x.csv")


def test_parse_epss_bytes_plain_and_gzip():
    text = EPSS_HEAD + "CVE-1999-0001,0.0142,0.7991\n"
    plain = parse_epss_bytes(text.encode())
    assert parse_epss_bytes(gzip.compress(text.encode())) == plain
    with pytest.raises(FeedError, match=r"feed\.csv\.gz: corrupt gzip data"):
        parse_epss_bytes(gzip.compress(text.encode())[:20], "feed.csv.gz")
    with pytest.raises(FeedError, match=r"e\.csv: not UTF-8"):
        parse_epss_bytes(b"\xff\xfe\x00", "e.csv")


# --------------------------------------------------------------------------------------------- KEV


def kev_doc(*entries: dict, count: int | None = None) -> bytes:
    return json.dumps(
        {
            "title": "CISA Catalog of Known Exploited Vulnerabilities",
            "catalogVersion": "2025.08.25",
            "dateReleased": "2025-08-25T17:04:19.9796Z",
            "count": len(entries) if count is None else count,
            "vulnerabilities": list(entries),
        }
    ).encode()


def kev_entry(**overrides: str) -> dict:
    entry = {
        "cveID": "CVE-2099-0001",
        "dateAdded": "2025-08-01",
        "dueDate": "2025-08-22",
        "knownRansomwareCampaignUse": "Known",
    }
    entry.update(overrides)
    return entry


def test_parse_kev_entry_and_earliest_due():
    catalog = parse_kev(kev_doc(kev_entry(), kev_entry(cveID="CVE-2099-0002", dueDate="2025-08-15")))
    assert catalog.get("CVE-2099-0001").known_ransomware
    assert catalog.earliest_due(["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]) == dt.date(2025, 8, 15)
    assert catalog.earliest_due(["CVE-2099-0003"]) is None
    assert catalog.due_dates() == {
        "CVE-2099-0001": dt.date(2025, 8, 22),
        "CVE-2099-0002": dt.date(2025, 8, 15),
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            kev_doc(kev_entry(dueDate="2025-13-01")),
            r"vulnerabilities\[0\] \(CVE-2099-0001\): field 'dueDate'",
        ),
        (kev_doc(kev_entry(dateAdded=None)), r"vulnerabilities\[0\] \(CVE-2099-0001\): field 'dateAdded'"),
        (kev_doc(kev_entry(), kev_entry(cveID="nope")), r"vulnerabilities\[1\]: field 'cveID': not a CVE id"),
        (kev_doc(kev_entry(), kev_entry()), r"vulnerabilities\[1\] \(CVE-2099-0001\): duplicate cveID"),
        (kev_doc(kev_entry(), count=1404), r"field 'count' is 1404 but 'vulnerabilities' has 1"),
        (b'{"catalogVersion": "x", "dateReleased": "y"}', r"missing top-level field 'vulnerabilities'"),
        (b"{not json", r"not valid JSON"),
    ],
)
def test_malformed_kev_names_the_file_and_field(document, message):
    with pytest.raises(FeedError, match=r"^kev\.json: .*" + message):
        parse_kev(document, "kev.json")


# -------------------------------------------------------------------------------------------- CVSS


def test_parse_cvss_sample_ignores_notes_and_accepts_v4():
    vectors = parse_cvss_sample(
        json.dumps(
            {
                "_note": "illustrative",
                "CVE-2099-0001": {
                    "version": "4.0",
                    "vector": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                },
            }
        )
    )
    assert list(vectors.vectors) == ["CVE-2099-0001"]
    assert base_score(vectors.get("CVE-2099-0001").vector) == 9.3


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"CVE-2099-0001": {"version": "3.1", "vector": "CVSS:3.0/AV:N"}},
            r"CVE-2099-0001: field 'vector' must start",
        ),
        (
            {"CVE-2099-0001": {"version": "2.0", "vector": "AV:N"}},
            r"CVE-2099-0001: field 'version' must be one of",
        ),
        ({"CVE-2099-0001": "CVSS:3.1/AV:N"}, r"CVE-2099-0001: must be an object"),
        ({"bogus": {}}, r"key 'bogus': not a CVE id"),
    ],
)
def test_malformed_cvss_sample_names_the_file_and_cve(document, message):
    with pytest.raises(FeedError, match=r"^cvss\.json: " + message):
        parse_cvss_sample(json.dumps(document), "cvss.json")


def test_parse_nvd_cvss_prefers_v31_primary_and_falls_back_to_v40():
    def metric(version: str, vector: str, kind: str) -> dict:
        return {"source": "x", "type": kind, "cvssData": {"version": version, "vectorString": vector}}

    page = {
        "format": "NVD_CVE",
        "version": "2.0",
        "vulnerabilities": [
            {
                "cve": {
                    "id": "CVE-2099-0001",
                    "metrics": {
                        "cvssMetricV40": [
                            metric(
                                "4.0",
                                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                                "Primary",
                            )
                        ],
                        "cvssMetricV31": [
                            metric("3.1", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", "Secondary"),
                            metric("3.1", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "Primary"),
                        ],
                    },
                }
            },
            {
                "cve": {
                    "id": "CVE-2099-0002",
                    "metrics": {
                        "cvssMetricV40": [
                            metric(
                                "4.0",
                                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                                "Secondary",
                            )
                        ]
                    },
                }
            },
            {"cve": {"id": "CVE-2099-0003", "metrics": {}}},
        ],
    }
    vectors = parse_nvd_cvss(json.dumps(page))
    assert vectors.get("CVE-2099-0001") == CvssVector("3.1", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H")
    assert vectors.get("CVE-2099-0002").version == "4.0"
    assert "CVE-2099-0003" not in vectors
    with pytest.raises(FeedError, match=r"nvd: vulnerabilities\[0\]: missing object field 'cve'"):
        parse_nvd_cvss(json.dumps({"vulnerabilities": [{}]}), "nvd")


# ------------------------------------------------------------------------------------------- URLs


def test_feed_urls_from_connection_extras():
    assert FeedUrls.from_extras(None) == FeedUrls(KEV_URL, EPSS_URL, NVD_URL)
    urls = FeedUrls.from_extras({"kev_url": "https://mirror.example/kev.json", "epss_url": "", "other": "x"})
    assert urls == FeedUrls("https://mirror.example/kev.json", EPSS_URL, NVD_URL)
