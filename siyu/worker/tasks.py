"""Huey tasks: thin, idempotent, each calls an action."""

from __future__ import annotations

from collections.abc import Sequence

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.models import Workspace


@db_task(retries=3, retry_delay=5)
def apply_tag_rules_task(contact_ids: Sequence[int]) -> dict[str, int]:
    """Re-evaluate tag rules for contacts whose facts just changed."""
    from siyu.contacts.models import Contact
    from siyu.contacts.rules import do_apply_tag_rules

    totals = {"contacts": 0, "added": 0, "removed": 0}
    by_workspace: dict[int, list[int]] = {}
    for cid, ws in Contact.objects.filter(pk__in=list(contact_ids)).values_list("pk", "workspace_id"):
        by_workspace.setdefault(ws, []).append(cid)
    for ws_id, ids in by_workspace.items():
        for key, value in do_apply_tag_rules(ws_id, ids).items():
            totals[key] += value
    return totals


@db_task(retries=2, retry_delay=30)
def run_tag_rules_task(workspace_id: int) -> dict[str, int]:
    """A full pass of one workspace's tag rules."""
    from siyu.contacts.rules import do_apply_tag_rules

    return do_apply_tag_rules(workspace_id)


@db_periodic_task(crontab(minute="17"))
def tag_rules_hourly() -> None:
    """Time-relative conditions ("2+ orders in 90 days") change without new events: an
    hourly pass over every workspace keeps rule tags true."""
    for ws_id in Workspace.objects.values_list("pk", flat=True):
        run_tag_rules_task(ws_id)
