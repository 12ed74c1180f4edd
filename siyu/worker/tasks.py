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
    from siyu.journeys.triggers import on_contact_events as journey_consumer
    from siyu.segments.incremental import on_contact_events as segment_consumer

    return [segment_consumer, journey_consumer]


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
    from siyu.channels.inbox import schedule_batches

    inbox = pending_ids()
    schedule_batches(inbox)
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


@db_periodic_task(crontab(minute="23"))
def group_care_periodic() -> dict[str, int]:
    """Group health snapshots (alerts on fading/silent) and inferred member roles for the
    last complete local day. Hourly, so each workspace's day is closed soon after its own
    midnight; a run with nothing new to compute costs one query per group."""
    from siyu.communities.actions import do_daily_group_care

    return do_daily_group_care()


@db_task(retries=2, retry_delay=30)
def build_segment_task(segment_id: int, mode: str = "full") -> int | None:
    """Rebuild one dynamic segment (after it was created or redefined); the size it
    reached, or None when the segment is gone or static."""
    from siyu.segments.actions import do_build_segment
    from siyu.segments.models import Segment, SegmentKind

    segment = Segment.objects.select_related("workspace").filter(pk=segment_id, kind=SegmentKind.DYNAMIC).first()
    return do_build_segment(segment, mode=mode).size if segment is not None else None


@db_periodic_task(crontab(minute="*/30"))
def segments_scheduled_pass_periodic() -> int:
    """Every 30 minutes: segments with time-relative conditions ("ordered in the last 90
    days", P(alive)) change without any new event; rebuild those."""
    from siyu.segments.incremental import scheduled_pass

    return len(scheduled_pass())


@db_task(retries=3, retry_delay=5)
def journey_advance_task(run_id: int) -> str:
    """Move one journey run on (exactly once per step; a duplicate or early call is a no-op)."""
    from siyu.journeys.engine import advance

    return advance(run_id)


def sweep_journeys() -> int:
    """Hand every due journey run (wait over, or left behind by a dead worker whose lease
    ran out) to the worker."""
    from siyu.journeys.engine import due_run_ids

    due = due_run_ids()
    for run_id in due:
        journey_advance_task(run_id)
    return len(due)


@db_periodic_task(crontab(minute="*"))
def journeys_sweeper() -> int:
    return sweep_journeys()


@db_periodic_task(crontab(minute="3"))
def journeys_scheduled_triggers_periodic() -> dict[str, int]:
    """Hourly, so birthdays and "N days since" start soon after each workspace's own
    midnight; the enrolment keys make the other 23 passes no-ops."""
    from siyu.journeys.triggers import run_scheduled_triggers

    return run_scheduled_triggers()


@HUEY.on_startup()
def _sweep_journeys_on_startup() -> None:
    # Runs whose wait ended while no consumer was up continue at once, not at the next minute.
    try:
        from django.db import close_old_connections

        close_old_connections()
        sweep_journeys()
    except Exception:
        import logging

        logging.getLogger(__name__).exception("journey startup sweep failed")


@db_task(retries=4, retry_delay=2)
def process_inbox_batch_task(inbox_ids: Sequence[int]) -> dict[str, int]:
    """Process stored inbound events together (one transaction, bulk writes); rows already
    processed are skipped, so a retried or duplicated task is harmless. Fewer rows than a
    batch take the oldest other pending ones along (see ``process_batch``'s ``fill``)."""
    from siyu.channels.inbox import BATCH_SIZE, process_batch

    return process_batch(inbox_ids, fill=BATCH_SIZE)


@db_periodic_task(crontab(minute="25"))
def first_days_nudges_periodic() -> dict[str, int]:
    """Hourly: members who joined a while ago and have not spoken get one @-mention
    inviting them to introduce themselves (outside quiet hours)."""
    from siyu.communities.actions import do_send_first_days_nudges

    return do_send_first_days_nudges()


@db_periodic_task(crontab(minute="*/5"))
def release_stale_seats_periodic() -> dict[str, int]:
    """Every 5 minutes: live code seats reserved by scans that never became a join/add
    within the TTL go back to the pool (acquisition)."""
    from siyu.acquisition.actions import do_release_stale_seats

    return do_release_stale_seats()


@db_periodic_task(crontab(minute="*"))
def outreach_due_deliveries_periodic() -> dict[str, int]:
    """Every minute: planned outreach sends whose time came go out; deferred ones that are
    due ask the quota ledger again (sent, deferred further, or skipped with the reason)."""
    from siyu.outreach.actions import do_send_due_deliveries

    return do_send_due_deliveries()


@db_periodic_task(crontab(minute="*"))
def outreach_columns_periodic() -> dict[str, int]:
    """Every minute: column (栏目) occurrences that are due become group posts, once each
    (keyed by column, group and occurrence), so a restart never double-posts."""
    from siyu.outreach.actions import do_run_due_columns

    return do_run_due_columns()


@db_periodic_task(crontab(minute="*/5"))
def outreach_mass_tasks_periodic() -> dict[str, int]:
    """Every 5 minutes: the results of WeCom mass-message tasks are pulled back from the
    API, and tasks staff marked done (or dismissed) in siyu mark their deliveries sent (or
    release their slots); broadcasts with an automatic winner pick it once the test wait
    is over."""
    import logging

    from siyu.outreach.actions import do_pull_wecom_mass_results, do_sync_mass_tasks
    from siyu.outreach.models import Delivery, DeliveryStatus
    from siyu.outreach.planning import do_pick_due_winners

    totals: dict[str, int] = {}
    waiting = Delivery.objects.filter(status=DeliveryStatus.QUEUED, staff_task__isnull=False)
    for ws_id in waiting.values_list("workspace_id", flat=True).distinct().order_by():
        try:
            # WeCom's own record first (per customer), then what staff marked by hand
            results = {**do_pull_wecom_mass_results(ws_id)}
        except Exception:  # one workspace's unreachable WeCom must not stop the others
            logging.getLogger(__name__).exception("pulling WeCom mass results of workspace %s failed", ws_id)
            results = {}
        for key, value in [*results.items(), *do_sync_mass_tasks(ws_id).items()]:
            totals[key] = totals.get(key, 0) + value
    totals["winners"] = len(do_pick_due_winners())
    return totals


@db_task()
def sync_live_code_task(live_code_id: int) -> dict[str, int]:
    """Sync one live code's WeCom 「联系我」/join way configs (acquisition). Failures are
    kept on the slot/code and retried by ``live_code_sync_sweep_periodic``."""
    from siyu.acquisition.actions import do_sync_live_code

    return do_sync_live_code(live_code_id)


@db_task(retries=3, retry_delay=60)
def delete_contact_way_task(account_id: int, config_id: str) -> bool:
    """Delete the WeCom 「联系我」 of a staff slot taken off a live code (acquisition)."""
    from siyu.acquisition.actions import do_delete_contact_way

    return do_delete_contact_way(account_id, config_id)


@db_periodic_task(crontab(minute="*/10"))
def live_code_sync_sweep_periodic() -> dict[str, int]:
    """Every 10 minutes: retry WeCom live code configs that are pending or failed."""
    from siyu.acquisition.actions import do_sync_live_code, sync_candidates

    totals = {"synced": 0, "failed": 0}
    for code_id in sync_candidates():
        for key, value in do_sync_live_code(code_id).items():
            totals[key] += value
    return totals


@db_task()
def deliver_outbox_batch_task(outbox_ids: Sequence[int]) -> dict[str, int]:
    """Try the outbox sends written together by the batch inbox processor (one task per
    batch instead of one per row); each row is claimed and retried as on its own."""
    from siyu.channels.outbox import deliver

    counts: dict[str, int] = {}
    for pk in outbox_ids:
        status = deliver(pk)
        counts[status] = counts.get(status, 0) + 1
    return counts
