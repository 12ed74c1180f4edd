"""The inbox (收件箱): inbound platform events are stored first, acknowledged, then
processed by the worker exactly once.

Idempotent in: ``(account, dedupe_key)`` is unique, so a replayed or concurrently
duplicated callback stores one row and schedules one processing. Processing locks the
row, runs the handler and marks it processed in one transaction: a crash rolls both
back and the row is retried. Unknown kinds are kept as ``ignored`` and malformed
payloads as ``malformed`` — visible in the console, never dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.models import ChannelAccount, InboxEvent, InboxStatus

log = logging.getLogger(__name__)
MAX_PROCESS_ATTEMPTS = 5


def do_receive(account: ChannelAccount, events: Sequence[InboundEvent], *, raw: str = "") -> list[tuple[InboxEvent, bool]]:
    """Store inbound events (once per dedupe key) and schedule their processing after
    commit; returns (row, created) per event."""
    stored: list[tuple[InboxEvent, bool]] = []
    with transaction.atomic():
        for event in events:
            key = event.dedupe_key[:255]
            existing = InboxEvent.objects.filter(account=account, dedupe_key=key).first()
            if existing is not None:
                stored.append((existing, False))
                continue
            try:
                with transaction.atomic():
                    row = InboxEvent.objects.create(
                        workspace_id=account.workspace_id,
                        account=account,
                        dedupe_key=key,
                        kind=event.kind.value,
                        data=event.data,
                        raw=raw[:20000],
                        occurred_at=event.occurred_at,
                        status=InboxStatus.IGNORED if event.kind == InboundKind.UNKNOWN else InboxStatus.PENDING,
                    )
            except IntegrityError:
                stored.append((InboxEvent.objects.get(account=account, dedupe_key=key), False))
                continue
            stored.append((row, True))
            if row.status == InboxStatus.PENDING:
                transaction.on_commit(_scheduler(row.pk))
    return stored


def do_receive_malformed(account: ChannelAccount, raw: str, error: str) -> InboxEvent:
    """Keep a payload that could not be understood, marked malformed, for the console."""
    key = "malformed:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    with transaction.atomic():
        row, _ = InboxEvent.objects.get_or_create(
            account=account,
            dedupe_key=key,
            defaults={
                "workspace_id": account.workspace_id, "kind": InboundKind.UNKNOWN.value, "raw": raw[:20000],
                "status": InboxStatus.MALFORMED, "error": error[:2000], "occurred_at": timezone.now(),
            },
        )
    return row


def _scheduler(inbox_id: int) -> Callable[[], None]:
    return lambda: _schedule(inbox_id)


def _schedule(inbox_id: int) -> None:
    from siyu.worker.tasks import process_inbox_task

    process_inbox_task(inbox_id)


def process(inbox_id: int) -> str:
    """Process one stored event through the domain actions, exactly once. Returns the
    row's status afterwards."""
    from siyu.channels.handlers import PermanentEventError, handle

    try:
        with transaction.atomic():
            row = InboxEvent.objects.select_for_update().select_related("account", "account__workspace").filter(pk=inbox_id).first()
            if row is None or row.status != InboxStatus.PENDING:
                return row.status if row else "missing"
            outcome = handle(row)
            row.status = InboxStatus.PROCESSED if outcome != "ignored" else InboxStatus.IGNORED
            row.processed_at = timezone.now()
            row.attempts += 1
            row.error = "" if outcome in ("ok", "ignored") else outcome
            row.save(update_fields=["status", "processed_at", "attempts", "error"])
            return row.status
    except Exception as exc:
        log.exception("inbox %s failed", inbox_id)
        with transaction.atomic():
            row = InboxEvent.objects.select_for_update().get(pk=inbox_id)
            row.attempts += 1
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= MAX_PROCESS_ATTEMPTS or isinstance(exc, PermanentEventError):
                row.status = InboxStatus.FAILED
            row.save(update_fields=["attempts", "error", "status"])
        if row.status == InboxStatus.FAILED:
            return row.status
        raise


def do_requeue(row: InboxEvent, actor: object | None = None) -> InboxEvent:
    """Console "retry": put a failed event back to pending and process it again."""
    from siyu.accounts.events import record_audit
    from siyu.accounts.permissions import Perm, require

    require(actor, Perm.OPERATE_CHANNELS)  # type: ignore[arg-type]
    if row.status not in (InboxStatus.FAILED,):
        return row
    with transaction.atomic():
        InboxEvent.objects.filter(pk=row.pk).update(status=InboxStatus.PENDING, attempts=0, error="")
        record_audit(row.account.workspace, actor, "inbox.retried", target=row)  # type: ignore[arg-type]
        transaction.on_commit(lambda: _schedule(row.pk))
    row.refresh_from_db()
    return row


def pending_ids(older_than: dt.timedelta = dt.timedelta(seconds=30), limit: int = 1000) -> list[int]:
    """Pending rows whose processing task was lost (worker killed) — for the sweeper."""
    cutoff = timezone.now() - older_than
    return list(
        InboxEvent.objects.filter(status=InboxStatus.PENDING, received_at__lt=cutoff).order_by("id").values_list("pk", flat=True)[:limit]
    )
