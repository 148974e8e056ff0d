"""Send the evidence pack's link to the tenant's compliance contacts (a pre-signed URL, at most 7 days)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from patchcycle.operators.base import CycleContext, CycleOperator, EventLog

SMTP_CONNECTION = "patchcycle_smtp"
MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4 pre-signed URLs cannot live longer


def link_seconds(expiry_hours: int) -> int:
    """The link's lifetime: the tenant's setting, never beyond what a SigV4 pre-signed URL allows."""
    return min(expiry_hours * 3600, MAX_LINK_SECONDS)


def link_lifetime(
    requested_seconds: int, *, now: dt.datetime, temporary: bool, credentials_expire: dt.datetime | None
) -> tuple[int, str | None]:
    """How long the links really work, and a caveat for the mail when that is shorter or unknown.

    A link signed with temporary credentials stops working when they expire, whatever its own expiry
    (S3 user guide, "Sharing objects with presigned URLs"): the mail promises the shorter of the two,
    and says so; when the expiry of temporary credentials is unknown, it says the links may stop sooner.
    """
    if not temporary:
        return requested_seconds, None
    if credentials_expire is None:
        return requested_seconds, (
            "they were signed with temporary credentials whose expiry is unknown, and stop working when "
            "those expire, which may be sooner; the pack stays in the bucket, where a new link can be made"
        )
    left = int((credentials_expire - now).total_seconds())
    if left >= requested_seconds:
        return requested_seconds, None
    return max(0, left), (
        f"they were signed with temporary credentials that expire at {credentials_expire:%Y-%m-%d %H:%M} "
        "UTC, so they stop working then; the pack stays in the bucket, where a new link can be made"
    )


def evidence_email(
    *,
    tenant_name: str,
    cycle_date: str,
    outcome: str,
    links: dict[str, str],
    manifest_sha256: str,
    hours: float,
    caveat: str | None = None,
) -> tuple[str, str]:
    """Subject and HTML body of the evidence notice (pure; the digest lets recipients verify the pack)."""
    subject = f"[Patchcycle] {tenant_name}: patch cycle {cycle_date} evidence ({outcome})"
    items = "".join(
        f'<li><a href="{html.escape(url, quote=True)}">{html.escape(name)}</a></li>'
        for name, url in links.items()
    )
    cycle, name = html.escape(cycle_date), html.escape(tenant_name)
    body = (
        f"<p>The evidence pack of the {cycle} patch cycle of {name} is ready. "
        f"Outcome: <b>{html.escape(outcome.upper())}</b>.</p><ul>{items}</ul>"
        f"<p>The links expire in {hours:g} hours"
        + (f"; {html.escape(caveat)}" if caveat else "")
        + f". Manifest SHA-256: <code>{manifest_sha256}</code>. "
        "Check the pack with <code>python -m patchcycle verify-evidence --dir &lt;folder&gt; "
        f"--expect-manifest {manifest_sha256}</code>.</p>"
    )
    return subject, body


class DistributeEvidenceOperator(CycleOperator):
    """Pre-sign the pack's files and email the links to the compliance contacts over the SMTP connection."""

    after_the_run = True

    def __init__(self, *, smtp_conn_id: str = SMTP_CONNECTION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Pre-sign the evidence task's pack files (report, evidence JSON, hosts CSV, manifest), mail the
        links to the compliance contacts and write the distribution addendum; return the recipients, the
        links' lifetime and the addendum's URL (never the links)."""
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        result = cycle.ti.xcom_pull(task_ids="evidence")
        tenant = self.tenant
        store = cycle.store
        prefix = result["pack_url"].removeprefix(f"s3://{store.bucket}/")
        temporary, expires = store.hook.signing_credentials()
        seconds, caveat = link_lifetime(
            link_seconds(tenant.evidence.link_expiry_hours),
            now=dt.datetime.now(dt.UTC),
            temporary=temporary,
            credentials_expire=expires,
        )
        links = {
            name: store.hook.presigned_get(store.bucket, f"{prefix}/{name}", seconds)
            for name in ("report.pdf", "evidence.json", "hosts.csv", "manifest.json")
        }
        subject, body = evidence_email(
            tenant_name=tenant.display_name,
            cycle_date=cycle.info["cycle_date"],
            outcome=result["outcome"],
            links=links,
            manifest_sha256=result["manifest_sha256"],
            hours=seconds / 3600,
            caveat=caveat,
        )
        recipients = [c.email for c in tenant.contacts.compliance]
        with SmtpHook(smtp_conn_id=self.smtp_conn_id) as smtp:
            smtp.send_email_smtp(to=recipients, subject=subject, html_content=body)
        log.record(
            "evidence.distributed",
            target=",".join(recipients),
            pack=result["pack_url"],
            link_expiry_seconds=seconds,
            link_caveat=caveat,
            manifest_sha256=result["manifest_sha256"],
        )
        addendum_url = self._write_addendum(cycle, prefix, result, log.events[-1])
        return {"recipients": recipients, "link_expiry_seconds": seconds, "addendum": addendum_url}

    def _write_addendum(
        self, cycle: CycleContext, prefix: str, result: dict[str, Any], distributed: dict[str, Any]
    ) -> str:
        """The distribution addendum beside the pack (never inside it: the pack is sealed by its
        manifest): ``.../distribution/<pack>.json``, written once; a retry keeps the first one."""
        from patchcycle.domain.controls import distribution_addendum, load_control_catalogs

        store = cycle.store
        parent, pack_name = prefix.rsplit("/", 1)
        key = f"{parent}/distribution/{pack_name}.json"
        if store.get_json_or_none(key) is None:
            addendum = distribution_addendum(
                store.get_json(f"{prefix}/evidence.json"),
                distributed,
                load_control_catalogs(),
                pack_url=result["pack_url"],
                pack_manifest_sha256=result["manifest_sha256"],
                retention_days=store.retention_days or 0,
            )
            store.put_json(key, addendum)
        return store.url(key)


def held_hosts_email(
    *, tenant_name: str, cycle_date: str, held: list[tuple[str, str]], kernel_held: list[tuple[str, str]]
) -> tuple[str, str]:
    """Subject and HTML body of the pre-flight alert: which hosts the gates held out, and why (pure)."""
    subject = (
        f"[Patchcycle] {tenant_name}: {len(held)} host(s) held, {len(kernel_held)} kernel update(s) held "
        f"in the {cycle_date} cycle"
    )

    def rows(items: list[tuple[str, str]]) -> str:
        return "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(r)}</li>" for n, r in sorted(items))

    body = (
        f"<p>The pre-flight gates of the {html.escape(cycle_date)} cycle of {html.escape(tenant_name)}:</p>"
    )
    if held:
        body += f"<p>Held (not backed up, not patched):</p><ul>{rows(held)}</ul>"
    if kernel_held:
        body += (
            "<p>Patched without the kernel update (their Falcon sensor lacks the new kernel):</p>"
            f"<ul>{rows(kernel_held)}</ul>"
        )
    return subject, body


def send_once(
    store: Any,
    marker_key: str,
    recipients: list[str],
    subject: str,
    body: str,
    smtp_conn_id: str = SMTP_CONNECTION,
) -> bool:
    """Mail once per marker: skipped when the marker exists (a retry or re-run of the same cycle).

    The mail goes out before the marker is written, so a crash in between repeats the mail rather than
    losing it: at least once, and in practice exactly once.
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    if store.get_json_or_none(marker_key) is not None:
        return False
    with SmtpHook(smtp_conn_id=smtp_conn_id) as smtp:
        smtp.send_email_smtp(to=recipients, subject=subject, html_content=body)
    store.put_json(marker_key, {"recipients": recipients, "subject": subject})
    return True
