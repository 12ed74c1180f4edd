"""Huey tasks: thin, idempotent, each calls an action."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task

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


def _event_consumers() -> list[Callable[[list[Any]], object]]:
    """Who reacts to new timeline events, in order: segments first (their enter/leave
    events are timeline events themselves and come back through here), then journeys."""
    return []


@db_task(retries=3, retry_delay=5)
def contact_events_task(event_ids: Sequence[int]) -> int:
    """Hand new timeline events (oldest first) to every consumer; consumers are idempotent
    per event, so a retry after a crash does no harm."""
    from siyu.contacts.models import ContactEvent

    consumers = _event_consumers()
    if not consumers:
        return 0
    events = list(ContactEvent.objects.filter(pk__in=list(event_ids)).order_by("pk"))
    for consume in consumers:
        consume(events)
    return len(events)


@db_task(retries=4, retry_delay=2)
def process_inbox_task(inbox_id: int) -> str:
    """Process one stored inbound event (exactly once; a retry of a processed row is a no-op)."""
    from siyu.channels.inbox import process

    return process(inbox_id)


@db_task()
def deliver_outbox_task(outbox_id: int) -> str:
    """Try one outbox send; the outbox itself schedules retries with backoff."""
    from siyu.channels.outbox import deliver

    return deliver(outbox_id)


def sweep_channels() -> dict[str, int]:
    """Re-schedule work a dead worker left behind: outbox rows that are due or whose lease
    expired, inbox rows still pending."""
    from siyu.channels.inbox import pending_ids
    from siyu.channels.outbox import due_ids

    outbox = due_ids()
    for pk in outbox:
        deliver_outbox_task(pk)
    inbox = pending_ids()
    for pk in inbox:
        process_inbox_task(pk)
    return {"outbox": len(outbox), "inbox": len(inbox)}


@db_periodic_task(crontab(minute="*"))
def channels_sweeper() -> dict[str, int]:
    return sweep_channels()


@HUEY.on_startup()
def _sweep_on_startup() -> None:
    # A consumer that starts after a crash picks up what the dead one left at once,
    # instead of waiting for the next minute's sweep. Errors must not stop the consumer.
    try:
        from django.db import close_old_connections

        close_old_connections()
        sweep_channels()
    except Exception:
        import logging

        logging.getLogger(__name__).exception("startup sweep failed")


@db_task(retries=3, retry_delay=10)
def order_commission_task(order_id: int) -> int:
    """Two-level distribution: credit the invitee's sharers for a new order (分销佣金)."""
    from siyu.campaigns.actions import do_record_order_commission
    from siyu.commerce.models import Order

    order = Order.objects.filter(pk=order_id).first()
    return len(do_record_order_commission(order)) if order is not None else 0


@db_periodic_task(crontab(minute="*/10"))
def confirm_due_invites_periodic() -> dict[str, int]:
    """Fission invites whose hold period ended are confirmed (or clawed back) every ten
    minutes; thresholds reached then grant their rewards once."""
    from siyu.campaigns.actions import do_confirm_due_invites
    from siyu.campaigns.models import Campaign, CampaignStatus

    totals: dict[str, int] = {}
    for campaign in Campaign.objects.filter(status__in=[CampaignStatus.RUNNING, CampaignStatus.FINISHED]):
        for key, value in do_confirm_due_invites(campaign).items():
            totals[key] = totals.get(key, 0) + value
    return totals


@db_periodic_task(crontab(minute="5"))
def close_ended_short_term_groups_periodic() -> list[int]:
    """Hourly, so a group ends soon after midnight in whatever zone its workspace keeps."""
    from siyu.communities.actions import do_close_ended_short_term_groups

    return do_close_ended_short_term_groups()
