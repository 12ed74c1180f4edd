"""Writes for channel accounts."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.models import ChannelAccount, ChannelKind, StaffTask, StaffTaskStatus
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace


def do_create_channel_account(
    workspace: Workspace, actor: Staff | None, *, kind: str, name: str, external_id: str = "", config: dict | None = None
) -> ChannelAccount:
    """Connect a channel account to the workspace. Records ``channel_account.created``."""
    require(actor, Perm.MANAGE_WORKSPACE)
    if kind not in ChannelKind.values:
        raise ValidationFailed(f"unknown channel kind {kind!r}", code="unknown_channel")
    with transaction.atomic():
        account, created = ChannelAccount.objects.get_or_create(
            workspace=workspace, kind=kind, name=name, defaults={"external_id": external_id, "config": config or {}}
        )
        if created:
            record_audit(workspace, actor, "channel_account.created", target=account, after={"kind": kind, "name": name})
    return account


def do_create_staff_task(
    workspace_id: int,
    *,
    kind: str,
    title: str,
    detail: dict | None = None,
    account: ChannelAccount | None = None,
    assignee: Staff | None = None,
    dedupe_key: str = "",
) -> tuple[StaffTask, bool]:
    """Ask a person to do what the channel cannot (remove a WeCom group member, retry a
    failed transfer...). Idempotent by ``dedupe_key``. Records ``staff_task.created``."""
    with transaction.atomic():
        if dedupe_key:
            existing = StaffTask.objects.filter(workspace_id=workspace_id, dedupe_key=dedupe_key).first()
            if existing is not None:
                return existing, False
        task = StaffTask.objects.create(
            workspace_id=workspace_id, account=account, kind=kind, title=title[:200], detail=detail or {}, assignee=assignee,
            dedupe_key=dedupe_key[:200],
        )
        record_audit(task.workspace, None, "staff_task.created", target=task, summary=title[:300])
    return task, True


def do_command_or_task(account: ChannelAccount, command: Any, *, task_kind: str, title: str, detail: dict | None = None,
                       assignee: Staff | None = None) -> tuple[str, int]:
    """Where the account's channel can carry out ``command``, enqueue it; otherwise ask a
    person: a staff task (``task_kind``, keyed ``task:<the command's idempotency key>``,
    so a repeat finds the first). Returns ``("outbox", row id)`` or ``("staff_task", task id)``."""
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for

    if adapter_for(account).can(command.required_capability()):
        row, _ = do_enqueue(account, command)
        return "outbox", row.pk
    task, _ = do_create_staff_task(account.workspace_id, kind=task_kind, title=title, detail=detail, account=account, assignee=assignee,
                                   dedupe_key=f"task:{command.idempotency_key}")
    return "staff_task", task.pk


def do_close_staff_task(task: StaffTask, actor: Staff | None, *, status: str = StaffTaskStatus.DONE) -> StaffTask:
    """Mark a staff task done or dismissed; the assignee may close their own. Records
    ``staff_task.closed``."""
    if actor is None or task.assignee_id != actor.pk:
        require(actor, Perm.OPERATE_CHANNELS)
    if status not in (StaffTaskStatus.DONE, StaffTaskStatus.DISMISSED):
        raise ValidationFailed("status must be done or dismissed", code="invalid_status")
    if task.status != StaffTaskStatus.OPEN:
        return task
    with transaction.atomic():
        task.status, task.done_at = status, timezone.now()
        task.save(update_fields=["status", "done_at"])
        record_audit(task.workspace, actor, "staff_task.closed", target=task, after={"status": status})
    return task
