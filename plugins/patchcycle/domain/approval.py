"""What a stage's recorded human approval means for the stage."""

from __future__ import annotations

from typing import Any


def rejection_reason(approval: dict[str, Any] | None) -> str | None:
    """Why a stage was not patched because its approval was refused, if it was."""
    if approval and approval.get("decision") != "approved":
        return f"{approval['decision']} by {approval.get('by') or 'nobody'} at {approval.get('at')}"
    return None
