"""The outbox (发件箱): every send is a row first, then a delivery attempt.

Exactly-once out: enqueueing is idempotent by key; a delivery claims its row with a
lease (an atomic conditional UPDATE, so two workers never send the same row at once);
the platform receives the same idempotency key on a retry (Matrix txnId, sandbox key),
so a worker killed between "sent" and "marked sent" does not send twice once the lease
runs out and the row is retried. Transient errors retry with exponential backoff;
permanent ones mark the row failed with the platform's error code.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.channels.base import Command, CommandKind, SendResult
from siyu.channels.models import ChannelAccount, OutboxMessage, OutboxStatus
from siyu.channels.registry import adapter_for
from siyu.core.oncommit import on_commit_batched

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0


def lease_seconds() -> float:
    return float(getattr(settings, "SIYU_OUTBOX_LEASE_SECONDS", 60))


def backoff(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    seconds = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempts - 1)))
    if retry_after is not None:
        seconds = max(seconds, retry_after)
    return dt.timedelta(seconds=seconds)


def to_command(row: OutboxMessage) -> Command:
    return Command(kind=CommandKind(row.command), idempotency_key=row.idempotency_key, target=row.target, payload=row.payload)


def do_enqueue(
    account: ChannelAccount, command: Command, *, not_before: dt.datetime | None = None
) -> tuple[OutboxMessage, bool]:
    """Store a send in the outbox (once per idempotency key) and schedule its delivery
    after commit. Raises UnsupportedCommand when the channel cannot do it: callers decide
    how to degrade (e.g. a staff task)."""
    adapter_for(account).check(command)
    key = command.idempotency_key[:200]
    with transaction.atomic():
        existing = OutboxMessage.objects.filter(workspace_id=account.workspace_id, idempotency_key=key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                row = OutboxMessage.objects.create(
                    workspace_id=account.workspace_id,
                    account=account,
                    idempotency_key=key,
                    command=command.kind.value,
                    target=command.target,
                    payload=command.payload,
                    next_attempt_at=not_before or timezone.now(),
                )
        except IntegrityError:
            return OutboxMessage.objects.get(workspace_id=account.workspace_id, idempotency_key=key), False
        if not_before is None or not_before <= timezone.now():
            transaction.on_commit(lambda: _schedule(row.pk))
    return row, True


def _schedule(outbox_id: int, delay: float | None = None) -> None:
    from siyu.worker.tasks import deliver_outbox_task

    if delay:
        deliver_outbox_task.schedule((outbox_id,), delay=delay)
    else:
        deliver_outbox_task(outbox_id)


_ENQUEUED = ("workspace_id", "account_id", "idempotency_key", "command", "target", "payload", "status", "attempts", "next_attempt_at",
             "error_code", "error", "external_id", "created_at")


def do_enqueue_many(items: list[tuple[ChannelAccount, Command, dt.datetime | None]]) -> dict[str, int]:
    """The bulk twin of :func:`do_enqueue` for the batch processor:
    ``(account, command, not_before)`` rows stored once per idempotency key with one
    lookup and one insert, delivered after commit by one worker task for all of them
    (not one task per row). The caller has checked that each channel can run its
    command. Returns the outbox id per (truncated) key, existing rows included."""
    if not items:
        return {}
    from siyu.channels.inbox import insert_rows, select_in

    now = timezone.now()
    workspaces = {account.workspace_id for account, _c, _n in items}
    keys = [command.idempotency_key[:200] for _a, command, _n in items]
    with transaction.atomic():
        # plain statements: the ORM's per-row preparation costs more than these few rows
        existing = dict(select_in(OutboxMessage, ("idempotency_key", "id"), "idempotency_key", set(keys), workspace_id=workspaces))
        fresh: dict[str, tuple[Any, ...]] = {}
        due: set[str] = set()
        for (account, command, not_before), key in zip(items, keys, strict=True):
            if key in existing or key in fresh:
                continue
            fresh[key] = (account.workspace_id, account.pk, key, command.kind.value, command.target, command.payload, OutboxStatus.PENDING.value,
                          0, not_before or now, "", "", "", now)
            if not_before is None or not_before <= now:
                due.add(key)
        insert_rows(OutboxMessage, _ENQUEUED, list(fresh.values()))
        ids = dict(existing)
        if fresh:
            ids.update(select_in(OutboxMessage, ("idempotency_key", "id"), "idempotency_key", list(fresh), workspace_id=workspaces))
        if due:
            def _deliver(batch: set[Any]) -> None:
                from siyu.worker.tasks import deliver_outbox_batch_task

                deliver_outbox_batch_task(sorted(batch))

            on_commit_batched("outbox_batch", None, [ids[key] for key in due], _deliver)
    return ids


def _claim(outbox_id: int) -> OutboxMessage | None:
    """Take the row for this worker: pending and due, or sending with an expired lease.
    One conditional UPDATE, so concurrent workers cannot both win."""
    now = timezone.now()
    due = Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now) | Q(status=OutboxStatus.SENDING, lease_until__lt=now)
    from django.db.models import F

    claimed = OutboxMessage.objects.filter(due, pk=outbox_id).update(
        status=OutboxStatus.SENDING, lease_until=now + dt.timedelta(seconds=lease_seconds()), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return OutboxMessage.objects.select_related("account").get(pk=outbox_id)


def deliver(outbox_id: int) -> str:
    """Try to deliver one outbox row; returns its status afterwards (or ``skipped`` when
    another worker holds it or it is not due)."""
    row = _claim(outbox_id)
    if row is None:
        return "skipped"
    try:
        result = adapter_for(row.account).send(to_command(row))
    except Exception as exc:
        log.exception("outbox %s: adapter raised", outbox_id)
        result = SendResult.failed("adapter_exception", f"{type(exc).__name__}: {exc}", transient=True)
    return _record_result(row, result)


def _record_result(row: OutboxMessage, result: SendResult) -> str:
    now = timezone.now()
    fields: dict[str, Any] = {"lease_until": None}
    if result.ok:
        fields.update(status=OutboxStatus.SENT, sent_at=now, external_id=result.external_id[:255], error_code="", error="")
    elif result.transient and row.attempts < MAX_ATTEMPTS:
        delay = backoff(row.attempts, result.retry_after)
        fields.update(status=OutboxStatus.PENDING, next_attempt_at=now + delay, error_code=result.error_code[:64], error=result.error[:2000])
    else:
        fields.update(status=OutboxStatus.FAILED, error_code=result.error_code[:64], error=result.error[:2000])
    # Only the holder of the lease may record the outcome.
    recorded = OutboxMessage.objects.filter(pk=row.pk, status=OutboxStatus.SENDING).update(**fields)
    if recorded and result.ok and row.command == CommandKind.CREATE_GROUP:
        _link_created_group(row, result.external_id)
    if fields["status"] == OutboxStatus.PENDING:
        _schedule(row.pk, delay=fields["next_attempt_at"].timestamp() - now.timestamp())
    return str(fields["status"])


def _link_created_group(row: OutboxMessage, external_id: str) -> None:
    """A group siyu asked the channel to create (re-pull, live-code window, playbook sale
    group) learns its platform id from the send result, so the platform's later events
    about that room find the same group instead of creating a second one."""
    from siyu.communities.actions import do_adopt_stand_in_group
    from siyu.communities.models import Group

    group_id = (row.payload or {}).get("group_id")
    if not isinstance(group_id, int) or not external_id:
        return
    external_id = external_id[:200]
    with transaction.atomic():
        planned = Group.objects.select_for_update().filter(workspace_id=row.account.workspace_id, pk=group_id, external_id="").first()
        if planned is None:
            return
        stand_in = Group.objects.filter(channel_account=row.account, external_id=external_id).exclude(pk=planned.pk).first()
        if stand_in is not None:
            # the channel's own events about the new room (a Matrix sync) arrived before this
            # result was recorded and made a group of their own for it
            log.info("outbox %s: group %s adopts the stand-in group %s of room %s", row.pk, planned.pk, stand_in.pk, external_id)
            do_adopt_stand_in_group(planned, stand_in)
        Group.objects.filter(pk=planned.pk).update(external_id=external_id, channel_account=row.account)


def due_ids(limit: int = 1000) -> list[int]:
    """Rows a sweep should (re)try: pending and due, or sending with an expired lease
    (their worker died)."""
    now = timezone.now()
    due = Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now) | Q(status=OutboxStatus.SENDING, lease_until__lt=now)
    return list(OutboxMessage.objects.filter(due).order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])


def do_retry(row: OutboxMessage, actor: Staff | None) -> OutboxMessage:
    """Put a failed or cancelled send back in the queue (console "retry"). Records
    ``outbox.retried``."""
    from siyu.accounts.permissions import Perm, require

    require(actor, Perm.OPERATE_CHANNELS)
    if row.status not in (OutboxStatus.FAILED, OutboxStatus.CANCELLED):
        return row
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxStatus.PENDING, next_attempt_at=timezone.now(), attempts=0)
        record_audit(row.account.workspace, actor, "outbox.retried", target=row, before={"status": row.status, "error_code": row.error_code})
        transaction.on_commit(lambda: _schedule(row.pk))
    row.refresh_from_db()
    return row


def do_cancel(row: OutboxMessage, actor: Staff | None) -> OutboxMessage:
    """Cancel a send that has not gone out. Records ``outbox.cancelled``."""
    from siyu.accounts.permissions import Perm, require

    require(actor, Perm.OPERATE_CHANNELS)
    with transaction.atomic():
        changed = OutboxMessage.objects.filter(pk=row.pk, status=OutboxStatus.PENDING).update(status=OutboxStatus.CANCELLED)
        if changed:
            record_audit(row.account.workspace, actor, "outbox.cancelled", target=row)
    row.refresh_from_db()
    return row
