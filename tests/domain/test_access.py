"""The SOC 2 CC6.1 access report: one row per account, permission set and person, with the route."""

from __future__ import annotations

from patchcycle.domain.access import access_report


def test_group_and_direct_grants_are_flattened_per_person() -> None:
    report = access_report(
        reviewed_at="2026-11-22T05:00:00+00:00",
        accounts={
            "111111111111": [
                {
                    "permission_set": {
                        "Name": "PatchcycleExecution",
                        "SessionDuration": "PT1H",
                        "ManagedPolicies": ["arn:aws:iam::aws:policy/AmazonSSMFullAccess"],
                    },
                    "assignments": [
                        {"PrincipalType": "GROUP", "PrincipalId": "g1"},
                        {"PrincipalType": "USER", "PrincipalId": "u3"},
                    ],
                }
            ]
        },
        users={
            "u1": {"UserName": "jlee", "DisplayName": "Jordan Lee", "Emails": [{"Value": "jlee@x.example"}]},
            "u2": {"UserName": "mpatel", "DisplayName": "Maya Patel"},
            "u3": {"UserName": "rgarcia", "DisplayName": "Rosa Garcia"},
        },
        groups={"g1": {"DisplayName": "sre-patching"}},
        members={"g1": ["u1", "u2"]},
    )
    assert report["principals"] == 3
    assert report["permission_sets"] == ["PatchcycleExecution"]
    assert [(g["user_name"], g["via"]) for g in report["grants"]] == [
        ("jlee", "group sre-patching"),
        ("mpatel", "group sre-patching"),
        ("rgarcia", "direct assignment"),
    ]
    assert report["grants"][0]["email"] == "jlee@x.example" and report["grants"][1]["email"] is None


def test_no_assignments_means_nobody() -> None:
    report = access_report(reviewed_at="t", accounts={"1": []}, users={}, groups={}, members={})
    assert report == {"reviewed_at": "t", "principals": 0, "permission_sets": [], "grants": []}
