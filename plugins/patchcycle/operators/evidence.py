"""Write the cycle's evidence pack (PDF, JSON, CSV, manifest) after the cycle, whatever its outcome."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from patchcycle import __version__
from patchcycle.domain.evidence import build_evidence_document, compliance_trend
from patchcycle.operators.base import CycleContext, CycleOperator, EventLog, run_type_name, utcnow
from patchcycle.reports.manifest import MANIFEST_NAME, build_manifest, manifest_bytes, manifest_sha256
from patchcycle.reports.store import CyclePaths

HOSTS_LEFT_STATES = ("failed", "held", "non_compliant", "not_assessed", "not_run")
"""Final states of hosts the cycle left unpatched, named in the outcome task's log."""
MAX_HOSTS_NAMED = 100
"""At most this many hosts left are named in the task's result and log; the pack lists every one."""


class WriteEvidencePackOperator(CycleOperator):
    """Assemble everything the stages recorded into the evidence document and the pack auditors receive."""

    after_the_run = True

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Build the evidence document from the run's plan, records and events, and write the pack (PDF,
        JSON, CSV, manifest chained to the previous pack's) under ``pack/`` (a retry beside it); set the
        outlets' asset event extra and return the outcome, the pack's URL, the manifest digest, the
        summary counts and the hosts left unpatched (at most 100 named)."""
        import json

        # reportlab and pandas load when the pack is written, not each time the DAG file is parsed.
        from patchcycle.reports.pdf import render_cycle_report
        from patchcycle.reports.tables import hosts_csv

        info = cycle.info
        paths = cycle.paths
        store = cycle.store
        environments = list(info["environments"])
        stages = {env: cycle.stage_record(env) for env in environments}
        events: list[dict[str, Any]] = []
        for key in store.keys(paths.events_prefix):
            events.extend(store.get_json(key))
        run = cycle.dag_run
        now = utcnow().isoformat()
        facts = {
            "cycle_date": info["cycle_date"],
            "run_id": cycle.run_id,
            "run_type": run_type_name(run),
            "plan_hash": info["plan_hash"],
            "dry_run": info["dry_run"],
            # When the run began: its first recorded step (the plan's), not the run's start_date, which
            # ``airflow dags test`` sets to the logical date; that only for a run that recorded nothing.
            "started_at": min((str(e["at"]) for e in events if e.get("at")), default=None)
            or (run.start_date.isoformat() if run.start_date else None),
            "finished_at": now,
            "generated_by": f"patchcycle {__version__}",
            "soak_hours_override": info.get("soak_hours_override"),
            "soak_override_reason": info.get("soak_override_reason"),
            "window_override_reason": info.get("window_override_reason"),
            "triggered_by": getattr(run, "triggering_user_name", None),
            "refused_reasons": list(info.get("refused") or []),
            "halted_reason": cycle.halted_reason,
            # A zero-day cycle: its CVEs, justification, trigger and the emergency policy with its approver.
            **({"kind": info["kind"], "zero_day": info["zero_day"]} if info.get("zero_day") else {}),
        }
        from patchcycle.config.exceptions import load_tenant_exception_register
        from patchcycle.domain.controls import controls_summary, load_control_catalogs, map_controls

        pack = self._free_pack_prefix(cycle, paths, cycle.attempt)
        # This task's own facts belong in the pack it writes, and count for the control mapping.
        events.append(
            {
                "at": now,
                "actor": cycle.actor,
                "action": "evidence.written",
                "target": store.url(pack),
                "result": "ok",
                "details": {"retention_days": store.retention_days},
            }
        )
        register = load_tenant_exception_register(self.tenant_id)
        evidence = build_evidence_document(
            tenant=self.tenant,
            cycle=facts,
            plan=store.get_json(info["plan_url"].split(f"s3://{store.bucket}/", 1)[1]),
            inventory=cycle.read_record(paths.run_file("inventory.json"), required=False),
            preflight=(preflight := cycle.read_record(paths.run_file("preflight.json"), required=False)),
            stages=stages,
            access=cycle.read_record(paths.run_file("access.json"), required=False),
            selected_environments=environments,
            events=events,
            exceptions=register,
            scopes=cycle.read_record(paths.run_file("scopes.json"), required=False),
        )
        evidence["sensor_upgrades"] = self._sensor_upgrades(cycle, evidence, preflight)
        frameworks = [f.value for f in self.tenant.frameworks]
        evidence["risk"] = self._risk_section(cycle, evidence, frameworks)
        if info.get("zero_day"):
            exposure = (preflight or {}).get("kev_exposure") or {}
            evidence["risk"]["zero_day"] = zero_day_report(evidence["plan"], info["zero_day"], exposure)
        evidence["events"].append(
            {
                "at": now,
                "actor": cycle.actor,
                "action": "risk.assessed",
                "target": self.tenant_id,
                "result": "ok",
                "details": {"open": evidence["risk"]["summary"]["open"], "feeds": evidence["risk"]["feeds"]},
            }
        )
        controls = map_controls(
            evidence["events"], frameworks, load_control_catalogs(), retention_days=store.retention_days or 0
        )
        evidence["controls"] = [c.to_dict() for c in controls]
        evidence["controls_summary"] = controls_summary(controls)
        evidence["retention"] = {"days": store.retention_days, "mode": "COMPLIANCE"}
        evidence["trend"] = self._trend(cycle, info["cycle_date"]) + [
            {
                "cycle_date": info["cycle_date"],
                "compliance_before": evidence["summary"]["compliance_before"],
                "compliance_after": evidence["summary"]["compliance_after"],
                "outcome": evidence["cycle"]["outcome"],
            }
        ]
        files = {
            "report.pdf": render_cycle_report(evidence, generated_at=now),
            "evidence.json": (json.dumps(evidence, indent=1, sort_keys=True, default=str) + "\n").encode(),
            "hosts.csv": hosts_csv(evidence["hosts"]),
        }
        previous = self._previous_manifest_sha256(cycle, paths, info["cycle_date"])
        manifest = build_manifest(
            files,
            tenant_id=self.tenant_id,
            cycle_date=info["cycle_date"],
            run_id=cycle.run_id,
            created_at=now,
            previous_manifest_sha256=previous,
        )
        for name, data in files.items():
            store.put_bytes(f"{pack}/{name}", data, _content_type(name))
        store.put_bytes(f"{pack}/{MANIFEST_NAME}", manifest_bytes(manifest), "application/json")
        log.record(
            "evidence.written",
            target=self.tenant_id,
            outcome=evidence["cycle"]["outcome"],
            pack=store.url(pack),
            manifest_sha256=manifest_sha256(manifest),
            previous_manifest_sha256=previous,
        )
        summary = evidence["summary"]
        counts = {k: v for k, v in summary.items() if not isinstance(v, dict)}
        left = [
            {
                "name": h["name"],
                "environment": h["environment"],
                "state": h["final_state"],
                "reason": h["reason"],
            }
            for h in sorted(evidence["hosts"], key=lambda h: (h["final_state"], str(h["name"])))
            if h["final_state"] in HOSTS_LEFT_STATES
        ]
        # The asset event says how the cycle ended, so the Assets view and the roll-up see it too.
        extra = {
            "cycle_date": info["cycle_date"],
            "outcome": evidence["cycle"]["outcome"],
            "pack_url": store.url(pack),
            **{k: counts.get(k) for k in ("compliance_after", *HOSTS_LEFT_STATES)},
        }
        outlet_events = cycle.airflow.get("outlet_events")
        if outlet_events is not None:
            for outlet in self.outlets:
                outlet_events[outlet].extra = extra
        # No pre-signed link here: a task's return value is an XCom anyone who can view the DAG can
        # read. Links are made by distribute and travel only in the mail.
        return {
            "outcome": evidence["cycle"]["outcome"],
            "pack_url": store.url(pack),
            "manifest_sha256": manifest_sha256(manifest),
            "summary": counts,
            "hosts_left": left[:MAX_HOSTS_NAMED],
            "hosts_left_total": len(left),
        }

    def _risk_section(
        self, cycle: CycleContext, evidence: dict[str, Any], frameworks: list[str]
    ) -> dict[str, Any]:
        """Risk ranking and SLA clocks of the plan's patches on the hosts (feeds: committed snapshots)."""
        from airflow.configuration import conf

        from patchcycle.domain.risk_report import risk_and_sla
        from patchcycle.domain.sla import SlaPolicy
        from patchcycle.feeds import load_feed_snapshots
        from patchcycle.operators.feeds import latest_feeds

        platform = conf.get("patchcycle", "portfolio_bucket", fallback="patchcycle-portfolio")
        feeds = latest_feeds(cycle.store.hook, platform) or load_feed_snapshots()
        return risk_and_sla(
            hosts=evidence["hosts"],
            approved=evidence["plan"].get("approved", {}),
            feeds=feeds,
            frameworks=frameworks,
            as_of=dt.date.fromisoformat(evidence["cycle"]["cycle_date"]),
            policy=SlaPolicy(
                critical_days=self.tenant.sla.critical,
                high_days=self.tenant.sla.high,
                medium_days=self.tenant.sla.medium,
                low_days=self.tenant.sla.low,
            ),
        )

    def _sensor_upgrades(
        self, cycle: CycleContext, evidence: dict[str, Any], preflight: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The kernel-held hand-off (the paper's 6.2): the sensor upgrades this cycle hands to the tenant's
        Falcon roll-out (from the pre-flight), and whether those the previous cycle handed off are resolved
        (the host's sensor upgraded and the host patched with its kernel in this cycle)."""
        from patchcycle.domain.falcon_rollout import follow_up_upgrades
        from patchcycle.domain.fleet_status import PackUnreadable, latest_packs

        falcon = self.tenant.falcon
        rollout = self.tenant.falcon_rollout_dag_id if falcon is not None and falcon.rollout else None
        cycle_date = evidence["cycle"]["cycle_date"]
        keys = [k for k in cycle.store.keys("cycles/") if k.split("/")[1] < cycle_date]
        try:
            previous = latest_packs(keys, cycle.store.get_json).cycle
        except PackUnreadable:
            previous = None  # the chain check reports an unreadable pack; the hand-off is only its reader
        before = (previous.evidence.get("sensor_upgrades") or {}) if previous else {}
        return {
            "rollout_dag_id": rollout,
            "handed_off": list((preflight or {}).get("sensor_upgrades") or []),
            "previous_cycle_date": previous.evidence["cycle"]["cycle_date"] if previous else None,
            "followed_up": [
                f.to_dict() for f in follow_up_upgrades(before.get("handed_off") or [], evidence["hosts"])
            ],
        }

    def _trend(self, cycle: CycleContext, cycle_date: str) -> list[dict[str, Any]]:
        """Compliance of each previous cycle (oldest first), from the latest of its packs that patched."""
        return compliance_trend(cycle_date, cycle.store.keys("cycles/"), cycle.store.get_json)

    def _free_pack_prefix(self, cycle: CycleContext, paths: CyclePaths, try_number: int) -> str:
        """``pack`` on the first attempt; a retry writes beside it and never over it."""
        base = paths.pack("").rstrip("/")
        if not cycle.store.keys(f"{base}/"):
            return base
        return f"{base}-try{try_number}"

    def _previous_manifest_sha256(
        self, cycle: CycleContext, paths: CyclePaths, cycle_date: str
    ) -> str | None:
        """The manifest of the latest pack written before this one, of the most recent earlier cycle date:
        the chain link. Among that cycle's packs (several runs, retries' ``pack-tryN``) the one its
        manifest says was created last: key names do not sort by time (``pack/`` after ``pack-try2/``,
        ``scheduled__`` after ``manual__``)."""
        from patchcycle.reports.manifest import sha256_hex

        manifests = [
            k
            for k in cycle.store.keys("cycles/")
            if k.endswith(f"/{MANIFEST_NAME}") and "/pack" in k and k.split("/")[1] < cycle_date
        ]
        if not manifests:
            return None
        latest_cycle = max(k.split("/")[1] for k in manifests)
        written = []
        for key in (k for k in manifests if k.split("/")[1] == latest_cycle):
            data = cycle.store.get_bytes(key)
            try:
                created_at = str(json.loads(data).get("created_at") or "")
            except (ValueError, AttributeError):
                created_at = ""  # an unreadable manifest is still a link, ranked before any dated one
            written.append((created_at, key, data))
        return sha256_hex(max(written)[2])


def zero_day_report(
    plan: dict[str, Any], request: dict[str, Any], exposure: dict[str, Any]
) -> dict[str, Any]:
    """A zero-day cycle's section of the risk report: what it was started for, the fixes it planned, and
    per CVE with no fix yet its exposed hosts and the compensating controls the exception register names
    (from the pre-flight record's ``kev_exposure``; hosts unknown when the run never got there)."""
    unfixed = ((plan.get("risk") or {}).get("zero_day") or {}).get("without_fix") or []
    approved = plan.get("approved") or {}
    return {
        **request,
        "fixes": sorted({p["id"] for patches in approved.values() for p in patches}),
        "without_fix": exposure.get("without_fix")
        or [{"cve": c, "exposed_hosts": [], "exposure_known": False} for c in unfixed],
    }


def _content_type(name: str) -> str:
    return {"pdf": "application/pdf", "json": "application/json", "csv": "text/csv"}[name.rsplit(".", 1)[1]]


class CycleOutcomeOperator(CycleOperator):
    """Fail the run when the cycle failed, so the DAG run's state tells the truth (the pack is written)."""

    after_the_run = True

    def run(self, cycle: CycleContext, log: EventLog) -> dict[str, Any]:
        """Log each host the cycle left unpatched, and fail the task when no pack was written, the cycle
        failed or was refused, or it is partial and the tenant's ``partial_run_fails`` is set; otherwise
        return the outcome."""
        result = cycle.ti.xcom_pull(task_ids="evidence")
        if not result:
            raise AirflowFailException(
                "no evidence pack was written for this run; see the evidence task's log"
            )
        left = result.get("hosts_left") or []
        for host in left:
            self.log.warning(
                "%s (%s) %s: %s", host["name"], host["environment"], host["state"], host["reason"] or "-"
            )
        if (total := result.get("hosts_left_total", len(left))) > len(left):
            self.log.warning(
                "... and %d more hosts left; the evidence pack lists every one", total - len(left)
            )
        if result["outcome"] == "failed":
            raise AirflowFailException(f"cycle failed for {self.tenant_id}; evidence: {result['pack_url']}")
        if result["outcome"] == "refused":
            reasons = "\n- ".join(cycle.info.get("refused") or [])
            raise AirflowFailException(
                f"the run was refused before any change for {self.tenant_id}; evidence: "
                f"{result['pack_url']}\n- {reasons}"
            )
        if result["outcome"] == "partial" and self.tenant.partial_run_fails:
            raise AirflowFailException(
                f"cycle partial for {self.tenant_id}: {total} host(s) left unpatched (listed above); "
                f"the tenant's partial_run_fails marks such a run failed; evidence: {result['pack_url']}"
            )
        return {"outcome": result["outcome"], "checked_at": dt.datetime.now(dt.UTC).isoformat()}

    def flush_events(self, cycle: CycleContext, log: EventLog, phase: str) -> None:
        """The outcome is already in the pack; nothing more to append."""


def proceed_unless_dry_run(plan: dict[str, Any]) -> bool:
    """The dry-run gate: a dry run stops after the plan (its log prints it) and writes plan-only evidence;
    so does a refused run (its evidence says why, and its outcome task fails it)."""
    return not plan.get("dry_run") and not plan.get("refused")
