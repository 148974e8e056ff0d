"""The access evidence of a cycle (SOC 2 CC6.1): which people could execute it, through what, where."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def access_report(
    *,
    reviewed_at: str,
    accounts: Mapping[str, list[Mapping[str, Any]]],
    users: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Mapping[str, Any]],
    members: Mapping[str, list[str]],
) -> dict[str, Any]:
    """Flatten SSO assignments into one row per (account, permission set, person), with how they got it.

    ``accounts``: account id -> [{permission_set: {Name, PermissionSetArn, SessionDuration, ManagedPolicies},
    assignments: [{PrincipalType, PrincipalId}]}]; ``users``/``groups`` by id; ``members``: group -> user ids.
    """
    rows = []
    for account, grants in sorted(accounts.items()):
        for grant in grants:
            ps = grant["permission_set"]
            for assignment in grant["assignments"]:
                if assignment["PrincipalType"] == "GROUP":
                    group = groups.get(assignment["PrincipalId"], {})
                    via = f"group {group.get('DisplayName', assignment['PrincipalId'])}"
                    people = members.get(assignment["PrincipalId"], [])
                else:
                    via, people = "direct assignment", [assignment["PrincipalId"]]
                for user_id in people:
                    user = users.get(user_id, {})
                    emails = user.get("Emails") or [{}]
                    rows.append(
                        {
                            "account": account,
                            "permission_set": ps.get("Name"),
                            "managed_policies": list(ps.get("ManagedPolicies", [])),
                            "session_duration": ps.get("SessionDuration"),
                            "user_name": user.get("UserName", user_id),
                            "display_name": user.get("DisplayName"),
                            "email": emails[0].get("Value"),
                            "via": via,
                        }
                    )
    rows.sort(key=lambda r: (r["account"], r["permission_set"] or "", r["user_name"]))
    return {
        "reviewed_at": reviewed_at,
        "principals": len({r["user_name"] for r in rows}),
        "permission_sets": sorted({r["permission_set"] for r in rows if r["permission_set"]}),
        "grants": rows,
    }
