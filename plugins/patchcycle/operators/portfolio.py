"""Build the cross-tenant portfolio report from every tenant's latest evidence pack."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.reports.store import safe_run_segment

if TYPE_CHECKING:
    from patchcycle.domain.sensor_coverage import RolloutPack
    from patchcycle.hooks.s3 import EvidenceBucketHook

EVIDENCE_CONNECTION = "patchcycle_evidence"


def latest_cycle_evidence(hook: EvidenceBucketHook, bucket: str) -> dict[str, Any] | None:
    """The evidence of a tenant's latest cycle: its newest pack that is neither a dry run's nor a refused
    run's (:func:`patchcycle.domain.fleet_status.latest_packs`); None before its first cycle."""
    from patchcycle.domain.fleet_status import latest_packs

    latest = latest_packs(hook.keys(bucket, "cycles/"), lambda key: json.loads(hook.get(bucket, key)))
    return dict(latest.cycle.evidence) if latest.cycle else None


def latest_rollout_pack(hook: EvidenceBucketHook, bucket: str) -> RolloutPack | None:
    """The tenant's latest Falcon roll-out pack (newest day, then newest run:
    :func:`patchcycle.domain.sensor_coverage.latest_rollout_pack`); None before its first roll-out."""
    from patchcycle.domain.sensor_coverage import latest_rollout_pack as latest

    return latest(hook.keys(bucket, "falcon-rollout/"), lambda key: json.loads(hook.get(bucket, key)))


class PortfolioRollupOperator(BaseOperator):
    """Read each tenant's latest evidence, write the portfolio (JSON, CSV, PDF) to the platform bucket."""

    template_fields: Sequence[str] = ("tenant_ids", "portfolio_bucket")

    def __init__(
        self,
        *,
        tenant_ids: list[str],
        portfolio_bucket: str,
        aws_conn_id: str = EVIDENCE_CONNECTION,
        region_name: str = "us-east-1",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_ids = tenant_ids
        self.portfolio_bucket = portfolio_bucket
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def execute(self, context: Any) -> dict[str, Any]:
        """Read each tenant's latest cycle evidence, SAML watch and Falcon roll-out pack (an unreadable
        bucket gives a row saying so), write ``portfolio.json``, ``.csv`` and ``.pdf`` under
        ``rounds/<latest cycle>/<run>/`` in the portfolio bucket; return the prefix and the totals."""
        import pandas as pd
        from botocore.exceptions import ClientError

        from patchcycle.domain.portfolio import PORTFOLIO_COLUMNS, portfolio, tenant_row
        from patchcycle.domain.sensor_coverage import sensor_columns
        from patchcycle.hooks.s3 import EvidenceBucketHook
        from patchcycle.operators.saml import latest_record
        from patchcycle.reports.portfolio_pdf import render_portfolio_report
        from patchcycle.reports.store import EvidenceStore

        rows = []
        for tenant_id in self.tenant_ids:
            tenant = load_tenant(default_tenants_dir() / f"{tenant_id}.yaml")
            hook = EvidenceBucketHook(
                aws_conn_id=tenant.evidence.connection_id, region_name=tenant.evidence.region
            )
            try:
                evidence = latest_cycle_evidence(hook, tenant.evidence.bucket)
                # The nearest SAML certificate expiry, from the tenant's latest daily SAML watch.
                saml_watch = latest_record(EvidenceStore(hook, tenant.evidence.bucket))
                rollout = latest_rollout_pack(hook, tenant.evidence.bucket) if tenant.falcon else None
            except ClientError as exc:
                # One unreachable bucket must not hide every other tenant; the row says what is wrong.
                self.log.warning("tenant %s: evidence bucket unreadable: %s", tenant.id, exc)
                row = tenant_row(tenant.id, tenant.display_name, None)
                rows.append(row | {"outcome": f"evidence unreadable ({exc.response['Error']['Code']})"})
                continue
            sensor = sensor_columns(tenant.falcon, tenant.environment_names, rollout, evidence)
            rows.append(tenant_row(tenant.id, tenant.display_name, evidence, saml_watch, sensor))
        now = dt.datetime.now(dt.UTC).isoformat()
        view = portfolio(rows, now)
        store = EvidenceStore(
            EvidenceBucketHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name),
            self.portfolio_bucket,
        )
        round_date = max((r["cycle_date"] for r in rows if r["cycle_date"]), default="none")
        prefix = f"rounds/{round_date}/{safe_run_segment(context['run_id'])}"
        frame = pd.DataFrame(rows, columns=list(PORTFOLIO_COLUMNS))
        urls = [
            store.put_json(f"{prefix}/portfolio.json", view),
            store.put_bytes(f"{prefix}/portfolio.csv", frame.to_csv(index=False).encode(), "text/csv"),
            store.put_bytes(f"{prefix}/portfolio.pdf", render_portfolio_report(view), "application/pdf"),
        ]
        self.log.info("portfolio of %d tenants written: %s", len(rows), ", ".join(urls))
        return {"prefix": store.url(prefix), "totals": view["totals"]}
