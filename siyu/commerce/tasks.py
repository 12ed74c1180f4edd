"""Huey tasks of the commerce domain: thin and idempotent, each calls actions.

Periodic passes (UTC): lifecycle recomputation daily at 18:40 (02:40 in Shanghai),
birthday/anniversary reminders daily at 01:05 (09:05 in Shanghai), membership and coupon
expiry hourly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.models import Workspace

log = logging.getLogger(__name__)


@db_task(retries=2, retry_delay=10)
def update_lifecycle_task(contact_ids: Sequence[int]) -> int:
    """Recompute the lifecycle stage of contacts whose orders or membership just changed."""
    from siyu.commerce.actions import do_update_lifecycle
    from siyu.contacts.models import Contact

    changed = 0
    for contact in Contact.objects.filter(pk__in=list(contact_ids), merged_into__isnull=True).order_by("pk"):
        changed += do_update_lifecycle(contact) is not None
    return changed


def _p_alive(workspace_id: int) -> dict[int, float] | None:
    """P(alive) per buyer from the analytics BG/NBD fit, when that module is there and
    the workspace has enough data; otherwise None (the stages use purchase intervals)."""
    try:
        from siyu.analytics.value import workspace_probability_alive
    except ImportError:
        return None
    try:
        return workspace_probability_alive(Workspace.objects.get(pk=workspace_id)) or None
    except Exception:  # a failed fit must not stop the lifecycle pass, which works without it
        log.exception("P(alive) for workspace %s failed; lifecycle stages computed without it", workspace_id)
        return None


@db_task(retries=2, retry_delay=60)
def recompute_lifecycles_task(workspace_id: int) -> dict[str, int]:
    """A full lifecycle pass over one workspace, with P(alive) when analytics has it."""
    from siyu.commerce.actions import do_recompute_lifecycles

    return do_recompute_lifecycles(workspace_id, p_alive=_p_alive(workspace_id))


@db_periodic_task(crontab(hour="18", minute="40"))
def lifecycle_daily() -> None:
    """Stages such as at risk and churned change with time alone, without new events."""
    for ws_id in Workspace.objects.values_list("pk", flat=True):
        recompute_lifecycles_task(ws_id)


@db_periodic_task(crontab(minute="23"))
def expiry_hourly() -> dict[str, int]:
    """Close expired paid memberships and mark expired coupons."""
    from siyu.commerce.actions import do_expire_coupons, do_expire_memberships

    return {"memberships": do_expire_memberships(), "coupons": do_expire_coupons()}


@db_task(retries=2, retry_delay=60)
def birthday_reminders_task(workspace_id: int) -> dict[str, int]:
    from siyu.commerce.actions import do_create_birthday_reminders

    return do_create_birthday_reminders(Workspace.objects.get(pk=workspace_id))


@db_periodic_task(crontab(hour="1", minute="5"))
def birthday_reminders_daily() -> None:
    """Remind owners of coming birthdays and membership anniversaries (VIP care)."""
    for ws_id in Workspace.objects.values_list("pk", flat=True):
        birthday_reminders_task(ws_id)
