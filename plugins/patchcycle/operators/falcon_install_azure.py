"""The Falcon roll-out's Azure Arc install task: CrowdStrike's machine extension put on each Arc machine that
has no sensor, a bounded number at a time, waited for in the triggerer, each machine's result recorded.

What the extension can do decides what is sent (:mod:`patchcycle.domain.arc_extension`): it installs a
sensor on a machine that has none and skips one that has a sensor, so upgrades and reduced-functionality
hosts are recorded ``not_sent`` with that reason. The extension downloads the sensor itself with the Falcon
API client it is given in its protected settings (``falcon.rollout.install.azure.api_client_connection_id``);
the client's id and secret are read from the connection when each request is built and go nowhere else:
not into a log, an event, a record, the trigger's payload or XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchcycle.domain import arc_extension, arc_installs
from patchcycle.operators.base import EventLog
from patchcycle.operators.falcon_rollout import (
    INSTALLED_ACTIONS,
    NEEDS_RECORD,
    RolloutContext,
    SensorInstallOperator,
    install_record,
)

SENT_RECORD = "install-azure-sent.json"
"""The task's state across its rounds: the machines, the operations started, their results, the hosts
not sent to (no secret)."""
CHECK = "arc_extensions"


class InstallSensorsArcOperator(SensorInstallOperator):
    """Installs the Falcon sensor on the tenant's Azure Arc machines that have none, through CrowdStrike's
    machine extension (``FalconSensorLinux`` / ``FalconSensorWindows``, publisher ``Crowdstrike.Falcon``),
    with no SSH. Each machine is told the sensor-update policy whose build is its target version (else
    ``platform_default``). At most the install rate control's MaxConcurrency of the machines at once, no new
    machine once the failures exceed MaxErrors (as the cycle's Arc patching); the task defers between rounds
    and records each host's result (``records/install-azure.json``)."""

    # -- Airflow's entry points ---------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        """Start the first round; wait for it, or record the results when nothing was started."""
        return self._next(context, super().execute(context))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Woken with machines still queued: start the next round and wait again. Otherwise (done, or out
        of attempts) record each host's result."""
        if event.get("status") == "wake":
            payload = self.resume(context, event, self._wake)
            return self._next(context, payload)
        return self.resume(context, event, self._complete)

    def _next(self, context: Any, payload: dict[str, Any]) -> Any:
        if payload["operations"]:
            return self.wait_for(context, CHECK, payload)
        return self.resume(context, {"status": "done", "results": {}}, self._complete)

    # -- rounds -------------------------------------------------------------------------------------
    def run(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Decide what each Azure host gets (a retry resumes the earlier attempt's state: a machine
        already started is not started again); start the first round; the wait's payload."""
        state = self._state(run) or self._plan(run, log)
        return self._round(run, log, state, finished={})

    def _wake(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        state = self._state(run)
        if state is None:
            raise RuntimeError(f"{run.store.url(run.paths.file(SENT_RECORD))}: no state to resume from")
        return self._round(run, log, state, finished=event.get("results") or {})

    def _state(self, run: RolloutContext) -> dict[str, Any] | None:
        return run.read_record(run.paths.file(SENT_RECORD), required=False)

    def _save(self, run: RolloutContext, state: dict[str, Any]) -> None:
        state["writes"] = state.get("writes", 0) + 1
        run.write_record(run.paths.file(SENT_RECORD), state, step=state["writes"])

    def _plan(self, run: RolloutContext, log: EventLog) -> dict[str, Any]:
        """Each Azure host the roll-out acts on: the machine, extension and policy it gets, or why not."""
        needs = run.read_record(run.paths.file(NEEDS_RECORD))
        identity = {str(h["host_id"]): h for h in needs["hosts"]}
        wanted = [n for n in needs["needs"] if n["cloud"] == "azure" and n["action"] in INSTALLED_ACTIONS]
        azure = self.tenant.clouds.azure
        subscriptions = {s.subscription_id.lower(): s for s in azure.subscriptions} if azure else {}
        state: dict[str, Any] = {
            "names": {str(n["host_id"]): n["name"] for n in wanted},
            "machines": {},
            "operations": {},
            "results": {},
            "not_sent": {},
            "round": 0,
        }
        sendable = []
        for need in wanted:
            host_id = str(need["host_id"])
            why = arc_extension.not_sent_reason(need)
            if why is None:
                why, where = self._where(host_id, subscriptions)
            if why is not None:
                state["not_sent"][host_id] = why
                continue
            sendable.append((need, where))
        if sendable and (missing := self._client_problem(run)) is not None:
            state["not_sent"].update({str(need["host_id"]): missing for need, _ in sendable})
            sendable = []
        policies = self._policies(sorted({str(need["platform"]) for need, _ in sendable}))
        install = run.rollout.install.azure
        for need, (subscription, resource_group, machine) in sendable:
            host_id = str(need["host_id"])
            platform = str(need["platform"])
            group = run.rollout.host_groups.get(need["environment"])  # type: ignore[call-overload]
            state["machines"][host_id] = {
                "name": need["name"],
                "conn_id": self.tenant.azure_connection_id(subscription),
                "subscription": subscription.subscription_id,
                "resource_group": resource_group,
                "machine": machine,
                "location": str(identity.get(host_id, {}).get("region") or ""),
                "platform": platform,
                "extension": arc_extension.extension_type(install, platform),
                "version": need["target_version"],
                "policy": arc_extension.update_policy_name(
                    policies.get(platform, []), str(need["target_version"]), group
                ),
            }
        self._save(run, state)
        return state

    def _where(self, host_id: str, subscriptions: dict[str, Any]) -> tuple[str | None, Any]:
        """(None, (subscription, resource group as the tenant file spells it, machine)), or (why, None)."""
        try:
            sub, rg, machine = arc_extension.machine_of(host_id)
        except ValueError as exc:
            return str(exc), None
        subscription = subscriptions.get(sub.lower())
        if subscription is None:
            return f"subscription {sub} is not one of the tenant's (clouds.azure.subscriptions)", None
        declared = next((g for g in subscription.resource_groups if g.lower() == rg.lower()), rg)
        return None, (subscription, declared, machine)

    def _client_problem(self, run: RolloutContext) -> str | None:
        """Why the extension's API client cannot be handed over (None when it can); never its values."""
        from airflow.sdk.bases.hook import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        conn_id = run.rollout.install.azure.api_client_connection(self.tenant.id)
        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return f"the Falcon API client connection {conn_id} is not defined"
        if not conn.login or not conn.password:
            return f"the Falcon API client connection {conn_id} has no client id (login) or secret (password)"
        return None

    def _policies(self, platforms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Each platform's sensor-update policies, highest precedence first (one listing per platform)."""
        if not platforms:
            return {}
        from patchcycle.hooks.falcon import FalconHook

        hook = FalconHook(falcon_conn_id=self.tenant.falcon_connection_id())
        return {platform: hook.policies("sensor_update", platform.capitalize()) for platform in platforms}

    def _round(
        self, run: RolloutContext, log: EventLog, state: dict[str, Any], finished: dict[str, Any]
    ) -> dict[str, Any]:
        """Start machines into the free slots (none once the failures exceed MaxErrors); the wait's
        payload: the operations in flight, how many machines are still queued, when to wake."""
        from patchcycle.hooks.azure_arc import ArcError, ArcHook

        state["results"].update(finished)
        machines = state["machines"]
        rate = run.rollout.install.azure.rate_control
        decision = arc_installs.plan_round(sorted(machines), state["operations"], state["results"], rate)
        if decision.not_sent and not any(h in state["not_sent"] for h in decision.not_sent):
            why = (
                f"not started: {decision.errors} extension installs failed, more than the "
                f"{decision.allowed_errors} the install rate control's MaxErrors allows"
            )
            state["not_sent"].update(dict.fromkeys(decision.not_sent, why))
            log.record(
                "falcon.install_budget_exhausted",
                target=f"azure:{self.tenant.id}",
                result="stopped",
                errors=decision.errors,
                allowed_errors=decision.allowed_errors,
                not_sent=len(decision.not_sent),
            )
        started, refused = [], []
        if decision.start:
            client = self._client(run)
            install = run.rollout.install.azure
            for host_id in decision.start:
                machine = machines[host_id]
                body = arc_extension.extension_resource(
                    install, machine["platform"], machine["location"], machine["policy"], *client
                )
                hook = ArcHook(azure_conn_id=machine["conn_id"], subscription_id=machine["subscription"])
                try:
                    url = hook.start_extension(
                        machine["resource_group"], machine["machine"], machine["extension"], body
                    )
                except ArcError as exc:
                    if not exc.refused:  # a retry of the task may ask again (a PUT is idempotent)
                        self._save(run, state)
                        raise
                    state["operations"][host_id] = {"refused": True}
                    error = {"code": f"HTTP {exc.status_code}", "message": str(exc)}
                    state["results"][host_id] = {"status": "Failed", "error": error}
                    refused.append(machine["name"])
                    continue
                state["operations"][host_id] = {
                    "conn_id": machine["conn_id"],
                    "subscription": machine["subscription"],
                    "operation": url,
                }
                started.append(host_id)
        state["round"] += 1
        self._save(run, state)
        if started or refused:
            log.record(
                "falcon.install_sent",
                target=f"azure:{self.tenant.id}",
                result="refused" if refused and not started else "ok",
                round=state["round"],
                hosts=[machines[h]["name"] for h in started],
                refused=refused,
                extensions=sorted({machines[h]["extension"] for h in started}),
                sensor_update_policies=sorted({machines[h]["policy"] for h in started}),
                versions=sorted({str(machines[h]["version"]) for h in started}),
            )
        pending = {
            h: op
            for h, op in state["operations"].items()
            if h not in state["results"] and op.get("operation")
        }
        queued = 0 if decision.stopped else len([h for h in machines if h not in state["operations"]])
        return {"operations": pending, "queued": queued, "wake_after": arc_installs.wake_after(len(pending))}

    def _client(self, run: RolloutContext) -> tuple[str, str]:
        """The extension's API client (id, secret), read for this round's requests only."""
        from airflow.sdk.bases.hook import BaseHook

        conn = BaseHook.get_connection(run.rollout.install.azure.api_client_connection(self.tenant.id))
        return str(conn.login or ""), str(conn.password or "")

    # -- results ------------------------------------------------------------------------------------
    def _complete(self, run: RolloutContext, event: dict[str, Any], log: EventLog) -> dict[str, Any]:
        """Each host's result (``records/install-azure.json``); the counts as the task's XCom."""
        from patchcycle.hooks.azure_arc import ArcError, ArcHook

        state = self._state(run) or {"names": {}, "machines": {}, "operations": {}, "results": {}}
        state.setdefault("not_sent", {})
        state["results"].update(event.get("results") or {})
        names = state["names"]
        results: dict[str, dict[str, Any]] = {
            host_id: {"name": names.get(host_id), "result": "not_sent", "reason": why}
            for host_id, why in state["not_sent"].items()
        }
        for host_id, machine in state["machines"].items():
            if host_id in results:
                continue
            op = state["operations"].get(host_id)
            if op is None:  # queued when the wait ran out
                results[host_id] = {
                    "name": machine["name"],
                    "result": "not_sent",
                    "reason": "the wait ran out before the extension was put on this machine",
                }
                continue
            answer = state["results"].get(host_id)
            message = None
            if answer and answer.get("status") == "Succeeded":
                hook = ArcHook(azure_conn_id=machine["conn_id"], subscription_id=machine["subscription"])
                try:
                    found = hook.extension(
                        machine["resource_group"], machine["machine"], machine["extension"]
                    )
                except ArcError:
                    found = None  # the operation's own answer stands
                view = ((found or {}).get("properties") or {}).get("instanceView") or {}
                message = (view.get("status") or {}).get("message")
            result, why = arc_extension.outcome(answer, message)
            results[host_id] = {
                "name": machine["name"],
                "result": result,
                "reason" if result != "sent_succeeded" else "status": why,
                "version": machine["version"],
                "extension": machine["extension"],
                "sensor_update_policy": machine["policy"],
                "operation": op.get("operation"),
            }
        failed = [r for r in results.values() if r["result"] != "sent_succeeded"]
        run.write_record(
            run.paths.file(install_record("azure")), {"wait": event.get("status"), "hosts": results}
        )
        log.record(
            "falcon.install_finished",
            target=f"azure:{self.tenant.id}",
            result="failed" if failed else "ok",
            hosts=len(results),
            failed=len(failed),
        )
        return {"hosts": len(results), "failed": len(failed)}
