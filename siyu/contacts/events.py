"""Timeline records (客户动态). Append-only; the idempotency key makes a replay a no-op."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.contacts.models import Contact, ContactEvent
from siyu.core.oncommit import on_commit_batched


class EventKind:
    ADDED = "added"
    UPDATED = "updated"
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    JOINED_GROUP = "joined_group"
    LEFT_GROUP = "left_group"
    MESSAGE = "message"
    ORDER = "order"
    SCAN = "scan"
    MERGED = "merged"
    CONSENT = "consent"
    OWNER_CHANGED = "owner_changed"
    # Recorded by siyu.segments when a contact enters / leaves a segment's stored membership.
    SEGMENT_ENTERED = "segment_entered"
    SEGMENT_LEFT = "segment_left"

    ALL = (ADDED, UPDATED, TAGGED, UNTAGGED, JOINED_GROUP, LEFT_GROUP, MESSAGE, ORDER, SCAN, MERGED, CONSENT, OWNER_CHANGED,
           SEGMENT_ENTERED, SEGMENT_LEFT)


def record_timeline(
    contact: Contact,
    kind: str,
    *,
    idempotency_key: str,
    data: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> tuple[ContactEvent, bool]:
    """Append one event to the contact's timeline; returns (event, created). A second call
    with the same key returns the first event and changes nothing."""
    key = idempotency_key[:200]
    existing = ContactEvent.objects.filter(workspace_id=contact.workspace_id, idempotency_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            event = ContactEvent.objects.create(
                workspace_id=contact.workspace_id,
                contact=contact,
                kind=kind,
                occurred_at=occurred_at or timezone.now(),
                data=data or {},
                idempotency_key=key,
            )
    except IntegrityError:
        # A concurrent writer stored the same fact first.
        return ContactEvent.objects.get(workspace_id=contact.workspace_id, idempotency_key=key), False
    schedule_event_fanout([event.pk])
    return event, True


def schedule_event_fanout(event_ids: list[int]) -> None:
    """After commit, hand new timeline events to the consumers that react to them
    (segment membership, journey triggers) — one worker task per transaction."""
    if not event_ids:
        return

    def _enqueue(batch: set[Any]) -> None:
        from siyu.worker.tasks import contact_events_task

        contact_events_task(sorted(batch))

    on_commit_batched("contact_events", None, event_ids, _enqueue)
