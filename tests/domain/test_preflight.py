"""The pre-flight gate: each host's verdict and reason, the held share and the halt threshold."""

from __future__ import annotations

import json

import pytest

from patchcycle.domain.preflight import HostDecision, PreflightResult, evaluate_host, evaluate_preflight

ALL = {"nonprod", "staging", "prod"}


@pytest.mark.parametrize(
    ("columns", "environments", "verdict", "reason"),
    [
        pytest.param(
            {"environment": None, "environment_tag": None},
            ALL,
            "out_of_scope",
            "environment tag None matches no environment",
            id="no-environment-tag",
        ),
        pytest.param(
            {"environment": None, "environment_tag": "sandbox"},
            ALL,
            "out_of_scope",
            "environment tag 'sandbox' matches no environment",
            id="unknown-environment-tag",
        ),
        pytest.param(
            {"environment": "prod", "environment_tag": "prod"},
            {"nonprod", "staging"},
            "out_of_scope",
            "environment prod not selected for this run",
            id="environment-not-selected",
        ),
        pytest.param(
            {"os_family": None, "platform": "Ubuntu 18.04"},
            ALL,
            "out_of_scope",
            "platform 'Ubuntu 18.04' is not patched by Patchcycle",
            id="unpatched-platform",
        ),
        pytest.param(
            {"os_family": "rhel_9", "platform": "Red Hat Enterprise Linux 9.4"},
            ALL,
            "out_of_scope",
            "no patch baseline for rhel_9",
            id="no-baseline",
        ),
        pytest.param(
            {"agent_status": "ConnectionLost", "agent_online": False},
            ALL,
            "held",
            "ssm agent ConnectionLost",
            id="agent-connection-lost",
        ),
        pytest.param(
            {"agent_status": "Inactive", "agent_online": False},
            ALL,
            "held",
            "ssm agent Inactive",
            id="agent-inactive",
        ),
        pytest.param(
            {
                "agent_status": "NotRegistered",
                "agent_online": False,
                "os_family": None,
                "platform": "unknown (no SSM registration)",
            },
            ALL,
            "held",
            "ssm agent not registered",
            id="not-registered",
        ),
        pytest.param({}, ALL, "eligible", None, id="eligible"),
        pytest.param(
            {"os_family": "windows_2019", "environment": "prod"},
            ALL,
            "eligible",
            None,
            id="eligible-windows-prod",
        ),
        # Scope is decided before readiness: a host we would not patch anyway is never "held".
        pytest.param(
            {"agent_status": "ConnectionLost", "agent_online": False, "environment": "prod"},
            {"nonprod"},
            "out_of_scope",
            "environment prod not selected for this run",
            id="offline-but-not-selected",
        ),
        pytest.param(
            {"agent_status": "ConnectionLost", "agent_online": False, "os_family": "centos_7"},
            ALL,
            "out_of_scope",
            "no patch baseline for centos_7",
            id="offline-but-no-baseline",
        ),
        pytest.param(
            {
                "agent_status": "NotRegistered",
                "agent_online": False,
                "os_family": None,
                "environment": None,
                "environment_tag": "sandbox",
            },
            ALL,
            "out_of_scope",
            "environment tag 'sandbox' matches no environment",
            id="not-registered-but-untagged",
        ),
    ],
)
def test_evaluate_host(tenant, host_row, columns, environments, verdict, reason):
    decision = evaluate_host(tenant, host_row("i-0123", **columns), environments)
    assert decision == HostDecision("i-0123", verdict, reason)


def test_evaluate_host_names_the_agent_kind(tenant, host_row):
    host = host_row("arc-01", agent_kind="arc", agent_status="Disconnected", agent_online=False)
    assert evaluate_host(tenant, host, ALL).reason == "arc agent Disconnected"


def _fleet(host_row, held: int, eligible: int, out_of_scope: int = 0):
    hosts = [host_row(f"i-h{n:03d}", agent_status="ConnectionLost", agent_online=False) for n in range(held)]
    hosts += [host_row(f"i-e{n:03d}") for n in range(eligible)]
    hosts += [
        host_row(f"i-o{n:03d}", environment=None, environment_tag="sandbox") for n in range(out_of_scope)
    ]
    return hosts


@pytest.mark.parametrize(
    ("held", "eligible", "threshold", "halted"),
    [
        pytest.param(1, 3, 0.25, False, id="exactly-at-0.25"),
        pytest.param(25, 75, 0.25, False, id="exactly-at-0.25-of-100"),
        pytest.param(26, 74, 0.25, True, id="just-above-0.25"),
        pytest.param(1, 2, 0.25, True, id="one-of-three"),
        pytest.param(1, 4, 0.2, False, id="exactly-at-0.2"),
        pytest.param(21, 79, 0.2, True, id="just-above-0.2"),
        pytest.param(3, 7, 0.3, False, id="exactly-at-0.3"),
        pytest.param(31, 69, 0.3, True, id="just-above-0.3"),
        pytest.param(7, 93, 0.07, False, id="exactly-at-0.07"),
        pytest.param(0, 5, 0.0, False, id="none-held-zero-tolerance"),
        pytest.param(1, 99, 0.0, True, id="one-held-zero-tolerance"),
        pytest.param(4, 0, 1.0, False, id="all-held-full-tolerance"),
        pytest.param(4, 0, 0.99, True, id="all-held"),
    ],
)
def test_halt_threshold(make_tenant, host_row, held, eligible, threshold, halted):
    tenant = make_tenant(preflight={"max_held_share": threshold})
    result = evaluate_preflight(tenant, _fleet(host_row, held, eligible))
    assert result.max_held_share == threshold
    assert result.held_share == pytest.approx(held / (held + eligible))
    assert result.halted is halted
    assert len(result.held) == held and len(result.eligible) == eligible


def test_out_of_scope_hosts_do_not_dilute_the_held_share(tenant, host_row):
    result = evaluate_preflight(tenant, _fleet(host_row, held=1, eligible=2, out_of_scope=20))
    assert result.held_share == pytest.approx(1 / 3)
    assert result.halted is True  # 1/3 > 0.25, however many out-of-scope hosts there are
    assert len(result.out_of_scope) == 20


@pytest.mark.parametrize("out_of_scope", [0, 5])
def test_zero_in_scope_hosts_halt_the_scope(tenant, host_row, out_of_scope):
    # An empty scope is a broken inventory until proven otherwise; it must not read as a compliant cycle.
    result = evaluate_preflight(tenant, _fleet(host_row, held=0, eligible=0, out_of_scope=out_of_scope))
    assert result.held_share == 0.0
    assert result.in_scope == 0
    assert result.halted is True
    assert result.to_dict()["halted"] is True
    assert result.eligible == [] and result.held == []
    assert len(result.out_of_scope) == out_of_scope


def test_environments_default_to_all_of_the_tenants(tenant, host_row):
    hosts = [
        host_row("i-n", environment="nonprod"),
        host_row("i-s", environment="staging"),
        host_row("i-p", environment="prod"),
    ]
    assert evaluate_preflight(tenant, hosts).eligible == ["i-n", "i-s", "i-p"]
    only_prod = evaluate_preflight(tenant, hosts, iter(["prod"]))
    assert only_prod.eligible == ["i-p"]
    assert [d.host_id for d in only_prod.out_of_scope] == ["i-n", "i-s"]
    assert evaluate_preflight(tenant, hosts, []).eligible == []


def test_decisions_keep_inventory_order_and_cover_every_host(alpha, host_row):
    alpha = alpha.model_copy(update={"falcon": None})  # the sensor gates have their own tests
    hosts = [
        host_row("i-3", os_family="rhel_8"),
        host_row("i-1", agent_status="ConnectionLost", agent_online=False),
        host_row("i-2", os_family="rhel_9"),
        host_row("i-4", os_family="windows_2019", environment="prod"),
    ]
    result = evaluate_preflight(alpha, hosts)
    assert [d.host_id for d in result.decisions] == ["i-3", "i-1", "i-2", "i-4"]
    assert [d.verdict for d in result.decisions] == ["eligible", "held", "out_of_scope", "eligible"]
    assert result.max_held_share == 0.25  # cu_alpha's preflight.max_held_share
    assert result.held_share == pytest.approx(1 / 3)
    assert result.halted is True


def test_to_dict_round_trip(tenant, host_row):
    hosts = _fleet(host_row, held=1, eligible=2, out_of_scope=1)
    result = evaluate_preflight(tenant, hosts)
    data = json.loads(json.dumps(result.to_dict()))
    assert data == {
        "max_held_share": 0.25,
        "held_share": 0.3333,
        "halted": True,
        "in_scope": 3,
        "eligible": 2,
        "held": 1,
        "out_of_scope": 1,
        "excepted": 0,
        "kernel_held": 0,
        "decisions": [
            {"host_id": "i-h000", "verdict": "held", "reason": "ssm agent ConnectionLost", "variant": "full"},
            {"host_id": "i-e000", "verdict": "eligible", "reason": None, "variant": "full"},
            {"host_id": "i-e001", "verdict": "eligible", "reason": None, "variant": "full"},
            {
                "host_id": "i-o000",
                "verdict": "out_of_scope",
                "reason": "environment tag 'sandbox' matches no environment",
                "variant": "full",
            },
        ],
        "notes": [],
    }
    rebuilt = PreflightResult(
        decisions=tuple(HostDecision(**d) for d in data["decisions"]),
        max_held_share=data["max_held_share"],
        notes=tuple(data["notes"]),
    )
    assert rebuilt == result
    assert rebuilt.to_dict() == result.to_dict()


def test_a_covering_risk_acceptance_defers_the_host_and_a_partial_one_holds_it(tenant, host_row):
    import datetime as dt

    from patchcycle.config.exceptions import ExceptionRegister
    from patchcycle.domain.preflight import deferral_for

    register = ExceptionRegister.model_validate(
        {
            "tenant_id": "cu_alpha",
            "exceptions": [
                {
                    "id": "EXC-2026-001",
                    "hosts": ["legacy-01"],
                    "patches": ["K-1"],
                    "justification": "vendor application is certified on the current kernel only",
                    "compensating_control": "segmented VLAN, EDR in prevention mode",
                    "requested_by": "app owner",
                    "approver": "Dana CISO",
                    "approver_role": "CISO",
                    "approved_on": "2026-10-15",
                    "expires_on": "2027-01-31",
                    "risk_rating": "High",
                }
            ],
        }
    )
    as_of = dt.date(2026, 11, 22)
    host = host_row("i-legacy", name="legacy-01")
    covered = deferral_for(host, {"K-1"}, register, as_of)
    assert covered is not None and covered.verdict == "excepted" and "EXC-2026-001" in covered.reason
    partial = deferral_for(host, {"K-1", "OPENSSL-2"}, register, as_of)
    assert partial is not None and partial.verdict == "held" and "EXC-2026-001" in partial.reason
    assert deferral_for(host_row("i-other", name="web-01"), {"K-1"}, register, as_of) is None
    result = evaluate_preflight(tenant, [host, host_row("i-web")], deferrals={"i-legacy": covered})
    assert [d.verdict for d in result.decisions] == ["excepted", "eligible"]
    assert result.held_share == 0.0 and result.to_dict()["excepted"] == 1
