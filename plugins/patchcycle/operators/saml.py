"""The daily SAML certificate watch of one tenant, or of the platform: read every identity-provider
configuration its clouds trust, decide (:mod:`patchcycle.domain.saml`), page once per certificate and
tier, mail the SREs the renewal runbooks, and keep the day's evidence.

Scopes, each read on its own (one that fails is recorded with its error and the others go on; the task
fails at the end, after the evidence is written and the pages and mail are sent):

- ``aws:<account>``: the IAM SAML providers of each AWS account of the tenant (its account connection);
- ``identity_center``: IAM Identity Center's external identity provider, from the IdP's published
  metadata (``saml.aws_identity_center.metadata_url``);
- ``entra:<connection>``: the Entra ID applications with SAML single sign-on (Microsoft Graph);
- ``gcp:organizations/<org>``: the SAML providers of the organization's workforce pools.

Evidence, in the target's evidence bucket (write-once, retained as its frameworks demand):
``saml/<day>/runs/<run>/watch.try-<n>.json`` (every certificate and finding, every scope with its API
calls and error, the incidents triggered, kept and resolved, the mail, the control mapping) and the
runbooks sent, ``saml/<day>/runs/<run>/try-<n>/runbooks/<kind>-<fingerprint>.md``. The latest record
is the next run's memory of what is already paged and mailed: each certificate and tier pages once;
a renewed certificate's incident is resolved.

The day is the run's logical date (a backfilled day files its record under that day), but certificates
are judged against the time of the reading: the clouds keep no history of what they trusted, so a
backfill records what is trusted now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from patchcycle.config.models import Tenant
from patchcycle.domain.saml import (
    IncidentPlan,
    ObservedProvider,
    PageSpec,
    SamlAssessment,
    TrustPoint,
    WatchedCertificate,
    assess,
    load_runbook_template,
    observe_key_credentials,
    observe_metadata,
    plan_incidents,
    render_runbook,
    runbook_facts,
)
from patchcycle.operators.base import EventLog, run_type_name, utcnow
from patchcycle.reports.store import EvidenceStore, safe_run_segment

SMTP_CONNECTION = "patchcycle_smtp"
PLATFORM = "platform"
SCHEMA_VERSION = "saml-watch-1.0"
RECORD_NAME = "watch.json"
NOTICE_FINDINGS = ("weak_key", "sha1_signature", "not_yet_valid")
NO_PROJECT = "-"  # a tenant watching a workforce pool through a connection of its own, without a project
_RECORD_KEY = re.compile(r"^saml/(?P<day>\d{4}-\d{2}-\d{2})/runs/[^/]+/watch\.try-\d+\.json$")


# --------------------------------------------------------------------------------------------------
# Reading the scopes (only hooks speak to the clouds)
# --------------------------------------------------------------------------------------------------

Reader = Callable[[], tuple[list[ObservedProvider], int]]


def read_aws_iam(account_id: str | None, conn_id: str, region: str) -> tuple[list[ObservedProvider], int]:
    """Every IAM SAML provider of one account, with its metadata's certificates; and the calls made."""
    from patchcycle.hooks.aws_iam_saml import IamSamlHook

    hook = IamSamlHook(aws_conn_id=conn_id, region_name=region)
    observed: list[ObservedProvider] = []
    for listed in hook.saml_providers(account_id):
        arn = listed["Arn"]
        provider = hook.saml_provider(arn)
        if provider is None:
            continue  # deleted between the two calls
        account = arn.split(":")[4]
        point = TrustPoint(
            kind="aws_iam",
            scope=f"aws:{account}",
            provider_id=arn,
            provider_name=arn.rsplit("/", 1)[1],
            trusted_by=f"AWS account {account}",
        )
        valid_until = provider.get("ValidUntil")
        observed.append(
            observe_metadata(point, provider.get("SAMLMetadataDocument"), valid_until=valid_until)
        )
    return observed, hook.calls


def read_identity_center(url: str) -> tuple[list[ObservedProvider], int]:
    """IAM Identity Center's external identity provider, from the IdP's published metadata."""
    from patchcycle.hooks.saml_metadata import fetch_metadata

    point = TrustPoint(
        kind="aws_identity_center",
        scope="identity_center",
        provider_id=url,
        provider_name="IAM Identity Center identity source",
        trusted_by="IAM Identity Center (the AWS access portal and every account it assigns)",
    )
    return [observe_metadata(point, fetch_metadata(url))], 1


def read_entra(conn_id: str) -> tuple[list[ObservedProvider], int]:
    """Every Entra ID application with SAML single sign-on, with its token-signing certificates."""
    from patchcycle.hooks.entra_graph import EntraGraphHook

    hook = EntraGraphHook(azure_conn_id=conn_id)
    observed: list[ObservedProvider] = []
    for sp in hook.saml_service_principals():
        name = sp.get("displayName") or sp["id"]
        point = TrustPoint(
            kind="entra_id",
            scope=f"entra:{conn_id}",
            provider_id=sp["id"],
            provider_name=name,
            trusted_by=f"application {name} (appId {sp.get('appId')})",
        )
        credentials = hook.key_credentials(sp["id"])
        observed.append(
            observe_key_credentials(point, credentials, sp.get("preferredTokenSigningKeyThumbprint"))
        )
    return observed, hook.calls


def read_gcp_workforce(
    conn_id: str, project_id: str, organization_id: str | None
) -> tuple[list[ObservedProvider], int]:
    """The SAML providers of every workforce pool of the organization (OIDC and disabled ones left out)."""
    from patchcycle.hooks.gcp_workforce import WorkforcePoolsHook

    hook = WorkforcePoolsHook(gcp_conn_id=conn_id, project_id=project_id)
    org = organization_id or hook.configured_organization
    if org is None:
        if project_id == NO_PROJECT:
            raise ValueError(
                "no organization to read: set saml.gcp_workforce.organization_id or the connection's extra "
                "organization_id (the tenant has no GCP project to find it from)"
            )
        org = hook.organization_of(project_id)
    observed: list[ObservedProvider] = []
    for pool in hook.workforce_pools(org):
        pool_id = pool["name"].rsplit("/", 1)[1]
        for provider in hook.providers(pool["name"]):
            if "saml" not in provider or provider.get("disabled"):
                continue
            provider_id = provider["name"].rsplit("/", 1)[1]
            point = TrustPoint(
                kind="gcp_workforce",
                scope=f"gcp:organizations/{org}",
                provider_id=provider["name"],
                provider_name=f"{pool_id}/{provider_id}",
                trusted_by=f"workforce pool {pool_id} of organization {org}",
            )
            observed.append(observe_metadata(point, provider["saml"].get("idpMetadataXml")))
    return observed, hook.calls


# --------------------------------------------------------------------------------------------------
# What is watched: a tenant, or the platform
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WatchScope:
    """One scope of a target and how to read it."""

    name: str
    kind: str
    read: Reader


@dataclasses.dataclass(frozen=True)
class WatchTarget:
    """Whose certificates are watched, where they are read, who is told and where the evidence goes."""

    id: str
    name: str
    tiers: tuple[int, ...]
    frameworks: tuple[str, ...]
    scopes: tuple[WatchScope, ...]
    sre_emails: tuple[str, ...]
    pagerduty_conn_id: str | None
    evidence_conn_id: str
    evidence_region: str
    evidence_bucket: str
    runbook_url: str | None = None


def tenant_target(tenant: Tenant) -> WatchTarget:
    """A tenant's watch: the provider kinds its ``saml`` section (or its clouds) name."""
    policy = tenant.saml
    kinds = policy.kinds(tenant.clouds.declared)
    scopes: list[WatchScope] = []
    if "aws_iam" in kinds and tenant.clouds.aws:
        for account in tenant.clouds.aws.accounts:
            conn, region = tenant.aws_connection_id(account), account.regions[0]
            reader = _bind(read_aws_iam, account.account_id, conn, region)
            scopes.append(WatchScope(f"aws:{account.account_id}", "aws_iam", reader))
    if "aws_identity_center" in kinds and policy.aws_identity_center is not None:
        url = policy.aws_identity_center.metadata_url
        scopes.append(WatchScope("identity_center", "aws_identity_center", _bind(read_identity_center, url)))
    if "entra_id" in kinds:
        entra_conn = policy.entra_id.connection_id or _first_azure_connection(tenant)
        if entra_conn:
            scopes.append(WatchScope(f"entra:{entra_conn}", "entra_id", _bind(read_entra, entra_conn)))
    if "gcp_workforce" in kinds:
        projects = tenant.clouds.gcp.projects if tenant.clouds.gcp else []
        gcp_conn = policy.gcp_workforce.connection_id or (
            tenant.gcp_connection_id(projects[0]) if projects else None
        )
        project = projects[0].project_id if projects else NO_PROJECT
        org = policy.gcp_workforce.organization_id
        if gcp_conn:
            reader = _bind(read_gcp_workforce, gcp_conn, project, org)
            scopes.append(WatchScope(f"gcp:{org or project}", "gcp_workforce", reader))
    return WatchTarget(
        id=tenant.id,
        name=tenant.display_name,
        tiers=tuple(policy.tiers_days),
        frameworks=tuple(f.value for f in tenant.frameworks),
        scopes=tuple(scopes),
        sre_emails=tuple(c.email for c in tenant.contacts.sre),
        pagerduty_conn_id=tenant.pagerduty_connection_id(),
        evidence_conn_id=tenant.evidence.connection_id,
        evidence_region=tenant.evidence.region,
        evidence_bucket=tenant.evidence.bucket,
        runbook_url=tenant.incident_runbook_url,
    )


def _first_azure_connection(tenant: Tenant) -> str | None:
    azure = tenant.clouds.azure
    return tenant.azure_connection_id(azure.subscriptions[0]) if azure else None


def _bind(reader: Callable[..., tuple[list[ObservedProvider], int]], *args: Any) -> Reader:
    def read() -> tuple[list[ObservedProvider], int]:
        return reader(*args)

    return read


def platform_target() -> WatchTarget:
    """The platform's own watch: the IAM SAML providers of the platform account, from Airflow's
    ``[patchcycle]`` configuration (``saml_platform_aws_conn_id``, default ``patchcycle_identity``;
    ``saml_platform_account_id`` to check the account; ``platform_sre_emails``, comma-separated;
    ``platform_pagerduty_conn_id``); its evidence goes to the portfolio bucket."""
    from airflow.configuration import conf

    def option(name: str, fallback: str | None = None) -> str | None:
        value = conf.get("patchcycle", name, fallback=fallback)
        return value.strip() or None if isinstance(value, str) else None

    conn = option("saml_platform_aws_conn_id", "patchcycle_identity") or "patchcycle_identity"
    region = option("saml_platform_region", "us-east-1") or "us-east-1"
    account = option("saml_platform_account_id")
    emails = tuple(e.strip() for e in (option("platform_sre_emails") or "").split(",") if e.strip())
    return WatchTarget(
        id=PLATFORM,
        name="Patchcycle platform",
        tiers=(60, 30, 14, 7),
        frameworks=("soc2",),
        scopes=(WatchScope(f"aws:{account or conn}", "aws_iam", _bind(read_aws_iam, account, conn, region)),),
        sre_emails=emails,
        pagerduty_conn_id=option("platform_pagerduty_conn_id"),
        evidence_conn_id="patchcycle_evidence",
        evidence_region=region,
        evidence_bucket=option("portfolio_bucket", "patchcycle-portfolio") or "patchcycle-portfolio",
    )


def load_target(target_id: str) -> WatchTarget:
    """The watch target ``target_id``: ``platform`` or a tenant id (its file in the tenants directory)."""
    if target_id == PLATFORM:
        return platform_target()
    from patchcycle.config.loader import default_tenants_dir, load_tenant

    return tenant_target(load_tenant(default_tenants_dir() / f"{target_id}.yaml"))


# --------------------------------------------------------------------------------------------------
# Memory between runs, and the pure pieces of a run
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScopeRead:
    """What one scope gave: its providers, the API calls made, or its error."""

    scope: WatchScope
    providers: list[ObservedProvider]
    calls: int
    error: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The scope's line in the evidence."""
        certificates = {c.sha256 for p in self.providers for c in p.certificates}
        return {
            "scope": self.scope.name,
            "kind": self.scope.kind,
            "status": "failed" if self.error else "ok",
            "providers": len(self.providers),
            "certificates": len(certificates),
            "api_calls": self.calls,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def latest_record(store: EvidenceStore) -> dict[str, Any] | None:
    """The most recent watch record in the store: the latest day's, and of that day the latest reading
    (a retry's or a re-run's record included); None before the first run."""
    records = [k for k in store.keys("saml/") if _RECORD_KEY.match(k)]
    if not records:
        return None
    day = max(_RECORD_KEY.match(k)["day"] for k in records)  # type: ignore[index]
    same_day: list[dict[str, Any]] = [store.get_json(k) for k in records if k.startswith(f"saml/{day}/")]
    return max(same_day, key=lambda r: str(r.get("observed_at", "")))


def notice_keys(target_id: str, assessment: SamlAssessment) -> dict[str, WatchedCertificate]:
    """The findings mailed once (not paged): a weak key, a SHA-1 signature, a certificate not valid yet."""
    keys: dict[str, WatchedCertificate] = {}
    for cert in assessment.certificates:
        if cert.standing != "active":
            continue
        for finding in cert.findings:
            if finding.kind in NOTICE_FINDINGS:
                keys[f"patchcycle/{target_id}/saml-notice/{cert.facts.sha256[:20]}/{finding.kind}"] = cert
    return keys


def runbook_name(cert: WatchedCertificate, kind: str) -> str:
    """The attachment's file name: ``<kind>-<fingerprint prefix>.md``."""
    return f"{kind}-{cert.facts.sha256[:16]}.md"


def saml_email(
    target_name: str,
    alerts: Sequence[tuple[PageSpec, WatchedCertificate | None]],
    notices: Sequence[tuple[str, WatchedCertificate]],
    resolved: Sequence[str],
    attachments: Sequence[str],
) -> tuple[str, str]:
    """Subject and HTML body of the SREs' mail (pure): what crossed a tier, what else was found, what was
    resolved, and which runbooks are attached."""
    worst = min(
        (a.severity for a, _ in alerts), key=["critical", "error", "warning", "info"].index, default=None
    )
    parts = []
    if alerts:
        parts.append(f"{len(alerts)} certificate alert(s)" + (f", {worst}" if worst else ""))
    if notices:
        parts.append(f"{len(notices)} finding(s)")
    if resolved:
        parts.append(f"{len(resolved)} resolved")
    subject = f"[Patchcycle] {target_name}: SAML certificates: {'; '.join(parts) or 'no change'}"
    rows = "".join(
        f"<li><b>{html.escape(page.severity.upper())}</b> {html.escape(page.summary)}"
        + (f" (runbook attached: <code>{html.escape(cert.facts.sha256[:16])}</code>)" if cert else "")
        + "</li>"
        for page, cert in alerts
    )
    body = f"<p>The daily SAML certificate watch of {html.escape(target_name)}.</p>"
    if rows:
        body += f"<p>Alerts (one incident per certificate and tier):</p><ul>{rows}</ul>"
    if notices:
        items = "".join(
            f"<li>{html.escape(cert.facts.subject)} (<code>{cert.facts.sha256[:16]}</code>): "
            f"{html.escape(kind.rsplit('/', 1)[1].replace('_', ' '))}</li>"
            for kind, cert in notices
        )
        body += f"<p>Also found:</p><ul>{items}</ul>"
    if resolved:
        body += (
            "<p>Resolved (renewed or removed):</p><ul>"
            + "".join(f"<li><code>{html.escape(k)}</code></li>" for k in resolved)
            + "</ul>"
        )
    if attachments:
        body += "<p>Attached: " + ", ".join(f"<code>{html.escape(a)}</code>" for a in attachments) + "</p>"
    return subject, body


def control_mapping(events: Sequence[Mapping[str, Any]], frameworks: Sequence[str]) -> list[dict[str, Any]]:
    """The controls this run's events evidence (the catalogs' ``saml_controls``), as the evidence shows."""
    from patchcycle.domain.controls import load_control_catalogs, map_controls

    catalogs = load_control_catalogs()
    selected = [f for f in frameworks if f in catalogs]
    results = map_controls(
        events, selected, catalogs, retention_days=0, include_references=False, evidence="saml"
    )
    return [r.to_dict() for r in results]


# --------------------------------------------------------------------------------------------------
# The operator
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WatchRun:
    """The run a watch belongs to: its day (the logical date), id, type and attempt."""

    day: str
    run_id: str
    run_type: str
    attempt: int

    @classmethod
    def of(cls, context: Mapping[str, Any]) -> WatchRun:
        """From Airflow's context; a run without a logical date (an API trigger) is filed under the day
        it ran."""
        run = context["dag_run"]
        when = context.get("logical_date") or run.run_after
        return cls(
            when.date().isoformat(), str(context["run_id"]), run_type_name(run), int(context["ti"].try_number)
        )

    @property
    def prefix(self) -> str:
        """Where the run's evidence goes: ``saml/<day>/runs/<run>``."""
        return f"saml/{self.day}/runs/{safe_run_segment(self.run_id)}"

    def to_dict(self) -> dict[str, Any]:
        """The run's facts for the record."""
        return {"day": self.day, "run_id": self.run_id, "run_type": self.run_type, "attempt": self.attempt}


class SamlCertificateWatchOperator(BaseOperator):
    """Watch the SAML certificates of one tenant (``target_id`` = its id) or of the platform
    (``platform``)."""

    template_fields: Sequence[str] = ("target_id",)
    ui_color = "#fde8e8"

    def __init__(self, *, target_id: str, smtp_conn_id: str = SMTP_CONNECTION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_id = target_id
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def target(self) -> WatchTarget:
        """The watch target, loaded when the task runs (never at parse time)."""
        return load_target(self.target_id)

    @cached_property
    def store(self) -> EvidenceStore:
        """The target's evidence bucket, objects locked for its frameworks' longest retention."""
        from patchcycle.domain.controls import load_control_catalogs, retention_days_for
        from patchcycle.hooks.s3 import EvidenceBucketHook

        target = self.target
        retention = retention_days_for(list(target.frameworks), load_control_catalogs())
        hook = EvidenceBucketHook(aws_conn_id=target.evidence_conn_id, region_name=target.evidence_region)
        return EvidenceStore(hook, target.evidence_bucket, retention_days=retention)

    def execute(self, context: Any) -> dict[str, Any]:
        """Read every scope, decide, page, mail, write the record; fail after all that when a scope
        could not be read or a page could not be sent."""
        target, store = self.target, self.store
        log = EventLog(f"airflow:{self.dag_id}/{self.task_id}")
        run = WatchRun.of(context)
        reads = [self._read(scope, log) for scope in target.scopes]
        now = utcnow()
        assessment = assess(target.id, [p for r in reads for p in r.providers], tiers=target.tiers, now=now)
        previous = latest_record(store) or {}
        unread = [r.scope.name for r in reads if r.error]
        plan = plan_incidents(assessment, previous.get("incidents", {}).get("open", {}), unread_scopes=unread)
        notices = notice_keys(target.id, assessment)
        known = set(previous.get("notices", []))
        new_notices = [(k, c) for k, c in sorted(notices.items()) if k not in known]
        runbooks = self._runbooks(assessment, plan, new_notices, now)
        runbook_urls = {
            name: store.put_bytes(
                f"{run.prefix}/try-{run.attempt}/runbooks/{name}", text.encode(), "text/markdown"
            )
            for name, text in runbooks.items()
        }
        paged, page_errors = self._page(assessment, plan, runbook_urls, log)
        mail = self._mail(assessment, plan, new_notices, runbooks, log)
        delivered = self._delivered(mail)
        alerted = {
            p.key for p in plan.trigger if (p.key in paged or not target.pagerduty_conn_id) and delivered
        }
        open_after = {
            k: v for k, v in plan.open_after.items() if k in alerted or k not in {p.key for p in plan.trigger}
        }
        record = {
            "schema_version": SCHEMA_VERSION,
            "target": target.id,
            "target_name": target.name,
            **run.to_dict(),
            "observed_at": now.isoformat(),
            "scopes": [r.to_dict() for r in reads],
            **assessment.to_dict(),
            "incidents": {
                "routing": target.pagerduty_conn_id,
                "triggered": sorted(paged),
                "not_sent": page_errors,
                "kept": list(plan.keep),
                "resolved": list(plan.resolve),
                "open": open_after,
            },
            "notices": sorted(
                {*(k for k in known if k in notices), *(k for k, _ in new_notices if delivered)}
            ),
            "mail": mail,
            "runbooks": runbook_urls,
            "events": log.events,
            "controls": control_mapping(log.events, target.frameworks),
        }
        url = store.put_record(f"{run.prefix}/{RECORD_NAME}", record, run.attempt)
        self.log.info(
            "SAML watch of %s: %d certificate(s); record %s", target.id, len(assessment.certificates), url
        )
        self._fail_if_incomplete(reads, page_errors)
        nearest = assessment.nearest_expiry
        return {
            "target": target.id,
            "record": url,
            "certificates": len(assessment.certificates),
            "triggered": len(paged),
            "resolved": len(plan.resolve),
            "nearest_days_left": nearest.days_left if nearest else None,
            "api_calls": sum(r.calls for r in reads),
        }

    def _delivered(self, mail: Mapping[str, Any] | None) -> bool:
        """Whether today's news reached the SREs (or there is no one to mail): else the next run tries
        again."""
        return not self.target.sre_emails or mail is None or bool(mail.get("sent"))

    @staticmethod
    def _fail_if_incomplete(reads: Sequence[ScopeRead], page_errors: Sequence[str]) -> None:
        failed = [f"{r.scope.name}: {r.error}" for r in reads if r.error]
        if failed or page_errors:
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(
                "SAML watch incomplete (the rest was read, paged and recorded): "
                + "; ".join([*failed, *page_errors])
            )

    # -- steps ---------------------------------------------------------------------------------------
    def _read(self, scope: WatchScope, log: EventLog) -> ScopeRead:
        """One scope; any error is the scope's (recorded, never raised)."""
        import time

        started = time.monotonic()
        try:
            providers, calls = scope.read()
        except Exception as exc:  # noqa: BLE001 - one unreadable scope must not hide the others
            error = f"{type(exc).__name__}: {exc}"[:800]
            log.record(
                "saml.certificates_checked", target=scope.name, result="failed", kind=scope.kind, error=error
            )
            self.log.warning("SAML scope %s could not be read: %s", scope.name, error)
            return ScopeRead(scope, [], 0, error, time.monotonic() - started)
        certificates = len({c.sha256 for p in providers for c in p.certificates})
        log.record(
            "saml.certificates_checked",
            target=scope.name,
            kind=scope.kind,
            providers=len(providers),
            certificates=certificates,
            api_calls=calls,
        )
        return ScopeRead(scope, providers, calls, None, time.monotonic() - started)

    def _runbooks(
        self,
        assessment: SamlAssessment,
        plan: IncidentPlan,
        new_notices: Sequence[tuple[str, WatchedCertificate]],
        now: dt.datetime,
    ) -> dict[str, str]:
        """One rendered runbook per certificate alerted or noticed today and provider kind trusting it."""
        wanted = {p.certificate for p in plan.trigger if p.certificate} | {
            c.facts.sha256 for _, c in new_notices
        }
        books: dict[str, str] = {}
        for cert in assessment.certificates:
            if cert.facts.sha256 not in wanted:
                continue
            for kind in cert.kinds():
                facts = runbook_facts(cert, kind, target_name=self.target.name, generated_at=now)
                books[runbook_name(cert, kind)] = render_runbook(load_runbook_template(kind), facts)
        return books

    def _page(
        self, assessment: SamlAssessment, plan: IncidentPlan, runbooks: Mapping[str, str], log: EventLog
    ) -> tuple[list[str], list[str]]:
        """Trigger the new incidents and resolve the renewed ones; return the keys triggered and the
        errors (a page that could not be sent is tried again by the next run)."""
        target = self.target
        if target.pagerduty_conn_id is None:
            return [], []  # no incident routing: the mail is the alert
        from patchcycle.hooks.pagerduty import PagerDutyError, PagerDutyEventsHook

        hook = PagerDutyEventsHook(pagerduty_conn_id=target.pagerduty_conn_id)
        by_sha = {c.facts.sha256: c for c in assessment.certificates}
        paged: list[str] = []
        errors: list[str] = []
        for page in plan.trigger:
            cert = by_sha.get(page.certificate or "")
            details: dict[str, Any] = {
                "target": target.id,
                "incident_key": page.key,
                "scopes": list(page.scopes),
            }
            if cert is not None:
                details |= {
                    "certificate": cert.facts.to_dict(),
                    "days_left": cert.days_left,
                    "trusted_by": sorted({t.trusted_by for t in cert.trust}),
                    "runbooks": [
                        runbooks[n] for n in (runbook_name(cert, k) for k in cert.kinds()) if n in runbooks
                    ],
                }
            try:
                hook.trigger(
                    dedup_key=page.key,
                    summary=f"Patchcycle: {target.name}: {page.summary}",
                    source=f"patchcycle/{target.id}",
                    severity=page.severity,
                    component="saml",
                    group=target.id,
                    custom_details=details,
                    links=[{"href": target.runbook_url, "text": "Runbook"}] if target.runbook_url else None,
                )
            except PagerDutyError as exc:
                errors.append(f"{page.key}: {exc}")
                log.record("incident.triggered", target=page.key, result="failed", error=str(exc))
                continue
            paged.append(page.key)
            log.record("incident.triggered", target=page.key, result=page.severity, component="saml")
        for key in plan.resolve:
            try:
                hook.resolve(key)
            except PagerDutyError as exc:
                errors.append(f"{key}: {exc}")
                continue
            log.record("incident.resolved", target=key, component="saml")
        return paged, errors

    def _mail(
        self,
        assessment: SamlAssessment,
        plan: IncidentPlan,
        new_notices: Sequence[tuple[str, WatchedCertificate]],
        runbooks: Mapping[str, str],
        log: EventLog,
    ) -> dict[str, Any] | None:
        """Mail the SREs what is new today with the runbooks attached; None when nothing is new."""
        if not (plan.trigger or new_notices or plan.resolve):
            return None
        target = self.target
        by_sha = {c.facts.sha256: c for c in assessment.certificates}
        alerts = [(p, by_sha.get(p.certificate or "")) for p in plan.trigger]
        subject, body = saml_email(target.name, alerts, new_notices, plan.resolve, sorted(runbooks))
        if not target.sre_emails:
            return {"sent": False, "reason": "no SRE contacts configured", "subject": subject}
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with tempfile.TemporaryDirectory(prefix="saml-runbooks-") as folder:
            files = []
            for name, text in sorted(runbooks.items()):
                path = Path(folder) / name
                path.write_text(text, encoding="utf-8")
                files.append(str(path))
            try:
                with SmtpHook(smtp_conn_id=self.smtp_conn_id) as smtp:
                    smtp.send_email_smtp(
                        to=list(target.sre_emails), subject=subject, html_content=body, files=files
                    )
            except Exception as exc:  # noqa: BLE001 - the pages and the record still stand; next run mails
                log.record("saml.mailed", target=",".join(target.sre_emails), result="failed", error=str(exc))
                return {"sent": False, "reason": f"{type(exc).__name__}: {exc}", "subject": subject}
        log.record("saml.mailed", target=",".join(target.sre_emails), attachments=sorted(runbooks))
        return {
            "sent": True,
            "recipients": list(target.sre_emails),
            "subject": subject,
            "attachments": sorted(runbooks),
        }


__all__ = [
    "PLATFORM",
    "SamlCertificateWatchOperator",
    "WatchTarget",
    "latest_record",
    "load_target",
    "platform_target",
    "saml_email",
    "tenant_target",
]
