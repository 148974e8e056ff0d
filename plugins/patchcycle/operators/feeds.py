"""Refresh the threat-intelligence feeds (CISA KEV, FIRST EPSS) into the platform bucket, daily.

Cycles read the newest refreshed feeds from there (see :func:`latest_feeds`); without any, they fall
back to the snapshots committed under ``include/feeds``, and the evidence says which was used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from patchcycle.reports.store import safe_run_segment

FEEDS_CONNECTION = "patchcycle_feeds"
PLATFORM_CONNECTION = "patchcycle_evidence"
KEV_FILE = "known_exploited_vulnerabilities.json"
EPSS_FILE = "epss_scores.csv.gz"


def latest_feeds(hook: Any, bucket: str) -> Any:
    """The newest refreshed feeds in the platform bucket (CVSS from the committed snapshot), or None."""
    prefix = latest_feeds_prefix(hook, bucket)
    return feeds_at(hook, bucket, prefix) if prefix is not None else None


def latest_feeds_prefix(hook: Any, bucket: str) -> str | None:
    """The key prefix (``feeds/<day>/<run>``) of the newest refresh holding both feeds, or None."""
    from botocore.exceptions import ClientError

    try:
        keys = hook.keys(bucket, "feeds/")
    except ClientError:
        return None
    runs = sorted(
        {k.rsplit("/", 1)[0] for k in keys if k.endswith(KEV_FILE)}
        & {k.rsplit("/", 1)[0] for k in keys if k.endswith(EPSS_FILE)}
    )
    return runs[-1] if runs else None


def platform_bucket() -> str:
    """The platform bucket the feeds are refreshed into (``[patchcycle] portfolio_bucket``)."""
    from airflow.configuration import conf

    return conf.get("patchcycle", "portfolio_bucket", fallback="patchcycle-portfolio")


def cycle_feeds(hook: Any, pinned: str | None = None) -> tuple[Any, str | None]:
    """The feeds a cycle reads, as the evidence does: the newest refresh in the platform bucket, else the
    committed snapshots; with ``pinned`` (a refresh's prefix an earlier step of the same plan read, "" for
    the committed snapshots), that refresh. Returns the feeds and the prefix read (None: the committed
    snapshots)."""
    from patchcycle.feeds import load_feed_snapshots

    bucket = platform_bucket()
    prefix = pinned if pinned is not None else latest_feeds_prefix(hook, bucket)
    if not prefix:  # None: no refresh yet; "": the committed snapshots were pinned
        return load_feed_snapshots(), None
    return feeds_at(hook, bucket, prefix), prefix


def feeds_at(hook: Any, bucket: str, prefix: str) -> Any:
    """The feeds one refresh stored under ``prefix`` (CVSS from the committed snapshot)."""
    import gzip

    from patchcycle.feeds import FeedSnapshot, load_feed_snapshots, parse_epss_bytes, parse_kev

    committed = load_feed_snapshots()
    epss = hook.get(bucket, f"{prefix}/{EPSS_FILE}")
    return FeedSnapshot(
        kev=parse_kev(hook.get(bucket, f"{prefix}/{KEV_FILE}"), f"s3://{bucket}/{prefix}/{KEV_FILE}"),
        epss=parse_epss_bytes(gzip.decompress(epss), f"s3://{bucket}/{prefix}/{EPSS_FILE}"),
        cvss=committed.cvss,
        source=f"s3://{bucket}/{prefix} (CVSS: {committed.source})",
    )


class RefreshFeedsOperator(BaseOperator):
    """Fetch KEV and EPSS from the URLs in the ``patchcycle_feeds`` connection, check them, store them."""

    template_fields: Sequence[str] = ("platform_bucket",)

    def __init__(
        self,
        *,
        platform_bucket: str,
        feeds_conn_id: str = FEEDS_CONNECTION,
        aws_conn_id: str = PLATFORM_CONNECTION,
        region_name: str = "us-east-1",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.platform_bucket = platform_bucket
        self.feeds_conn_id = feeds_conn_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def execute(self, context: Any) -> dict[str, Any]:
        """Fetch KEV and EPSS and parse both, then store them (EPSS gzipped) under ``feeds/<day>/<run>/``
        in the platform bucket; return the prefix and the feeds' versions and counts."""
        import gzip

        from airflow.sdk import BaseHook

        from patchcycle.feeds import FeedUrls, fetch_feed, parse_epss_bytes, parse_kev
        from patchcycle.hooks.s3 import EvidenceBucketHook
        from patchcycle.reports.store import EvidenceStore

        urls = FeedUrls.from_extras(BaseHook.get_connection(self.feeds_conn_id).extra_dejson)
        kev_bytes = fetch_feed(urls.kev_url)
        kev = parse_kev(kev_bytes, urls.kev_url)  # never store what does not parse
        epss_raw = fetch_feed(urls.epss_url)
        epss = parse_epss_bytes(epss_raw, urls.epss_url)
        epss_gz = epss_raw if epss_raw[:2] == b"\x1f\x8b" else gzip.compress(epss_raw, mtime=0)
        bucket_hook = EvidenceBucketHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        store = EvidenceStore(bucket_hook, self.platform_bucket)
        earlier = latest_feeds_prefix(bucket_hook, self.platform_bucket)
        previous = (
            parse_kev(bucket_hook.get(self.platform_bucket, f"{earlier}/{KEV_FILE}"), f"{earlier}/{KEV_FILE}")
            if earlier is not None
            else None
        )
        day = dt.datetime.now(dt.UTC).date().isoformat()
        prefix = f"feeds/{day}/{safe_run_segment(context['run_id'])}"
        store.put_bytes(f"{prefix}/{KEV_FILE}", kev_bytes, "application/json")
        store.put_bytes(f"{prefix}/{EPSS_FILE}", epss_gz, "application/gzip")
        result = {
            "prefix": store.url(prefix),
            "kev_catalog_version": kev.catalog_version,
            "kev_entries": len(kev.entries),
            "epss_model_version": epss.model_version,
            "epss_score_date": epss.score_date,
            "epss_scores": len(epss.scores),
            "zero_day_triggers": self._announce(context, kev, previous, store.url(prefix)),
        }
        self.log.info("feeds refreshed: %s", result)
        return result

    def _announce(self, context: Any, kev: Any, previous: Any, feeds_url: str) -> list[dict[str, Any]]:
        """One event on each affected tenant's KEV asset (through the task's asset alias), carrying the new
        KEV CVEs that affect the OS families it patches: the event that starts its zero-day cycle, kept in
        Airflow's Assets view. New = not in the previous refresh's catalog (a first refresh announces
        nothing). Tenant files are read here, at run time, never at parse time."""
        from airflow.sdk import Asset, AssetAlias

        from patchcycle.config.loader import load_tenants
        from patchcycle.domain.zero_day import NEW_KEV_ALIAS, kev_asset_name, kev_triggers, new_kev_entries

        if previous is None:
            self.log.info("no earlier refresh: this catalog is the baseline, no KEV listing is new")
        new = new_kev_entries(kev, previous)
        triggers = kev_triggers(new, load_tenants().tenants, kev.catalog_version)
        outlet_events = context.get("outlet_events")
        announced = []
        for trigger in triggers:
            extra = trigger.extra(feeds_url)
            if outlet_events is not None:
                outlet_events[AssetAlias(name=NEW_KEV_ALIAS)].add(
                    Asset(name=kev_asset_name(trigger.tenant_id)), extra=extra
                )
            self.log.info(
                "new KEV listing(s) %s affect %s: its zero-day cycle starts",
                trigger.cve_ids,
                trigger.tenant_id,
            )
            announced.append(extra)
        if new and not triggers:
            self.log.info(
                "new KEV listing(s) %s affect no tenant with an automatic zero-day cycle",
                [e.cve_id for e in new],
            )
        return announced
