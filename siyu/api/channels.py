"""Channels API: account overview, the inbox (收件箱) and outbox (发件箱) with retry and
cancel, and staff tasks (任务). Thin: every write goes through an action."""

import datetime as dt
from typing import Any, Literal

from django.db.models import Case, IntegerField, Value, When
from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.channels.actions import do_close_staff_task
from siyu.channels.inbox import do_requeue
from siyu.channels.models import InboxEvent, OutboxMessage, StaffTask, StaffTaskStatus
from siyu.channels.outbox import do_cancel, do_retry
from siyu.channels.queries import account_overview
from siyu.core.models import WorkspaceQuerySet

router = Router(tags=["channels"])


class AccountOut(Schema):
    id: int
    kind: str
    name: str
    external_id: str
    is_active: bool
    capabilities: list[str]
    callback_path: str
    callback_url: str = Field(description="the absolute URL to configure on the platform (WeCom); empty for other kinds")
    last_event_at: dt.datetime | None
    inbox_pending: int
    inbox_failed: int = Field(description="failed and malformed events")
    outbox_pending: int = Field(description="pending and sending")
    outbox_failed: int


@router.get("/channels/accounts", response={200: list[AccountOut], **ERRORS})
def list_accounts(request: HttpRequest) -> Any:
    """Each channel account with its status, last event, error counts and capabilities."""
    require(me(request), Perm.OPERATE_CHANNELS)
    rows = account_overview(ws(request))
    for row in rows:
        row["callback_url"] = request.build_absolute_uri(row["callback_path"]) if row["callback_path"] else ""
    return rows


class InboxOut(Schema):
    id: int
    account_id: int
    dedupe_key: str
    kind: str
    status: str
    attempts: int
    error: str
    data: dict[str, Any]
    raw: str | None = Field(description="the payload as received; null unless your role may see personal data")
    occurred_at: dt.datetime
    received_at: dt.datetime
    processed_at: dt.datetime | None

    @staticmethod
    def resolve_raw(obj: InboxEvent, context: dict[str, Any]) -> str | None:
        return obj.raw if has_perm(me(context["request"]), Perm.VIEW_PII) else None


class InboxFilters(Schema):
    account_id: int | None = None
    status: str | None = None
    kind: str | None = None


@router.get("/channels/inbox", response={200: list[InboxOut], **ERRORS})
@paginate(Page)
def list_inbox(request: HttpRequest, filters: Query[InboxFilters]) -> Any:
    """Inbound events, newest first."""
    require(me(request), Perm.OPERATE_CHANNELS)
    qs = InboxEvent.objects.in_workspace(ws(request))
    if filters.account_id is not None:
        qs = qs.filter(account_id=filters.account_id)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    return qs.order_by("-received_at", "-id")


@router.post("/channels/inbox/{int:event_id}/retry", response={200: InboxOut, **ERRORS})
def retry_inbox(request: HttpRequest, event_id: int) -> Any:
    """Put a failed event back to pending and process it again; any other status is
    answered unchanged."""
    require(me(request), Perm.OPERATE_CHANNELS)
    row = InboxEvent.objects.select_related("account__workspace").get_in_workspace(ws(request), pk=event_id)
    return do_requeue(row, me(request))


class OutboxOut(Schema):
    id: int
    account_id: int
    idempotency_key: str
    command: str
    target: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    error_code: str
    error: str
    external_id: str
    created_at: dt.datetime
    sent_at: dt.datetime | None


class OutboxFilters(Schema):
    account_id: int | None = None
    status: str | None = None
    command: str | None = None


@router.get("/channels/outbox", response={200: list[OutboxOut], **ERRORS})
@paginate(Page)
def list_outbox(request: HttpRequest, filters: Query[OutboxFilters]) -> Any:
    """Outbound sends, newest first."""
    require(me(request), Perm.OPERATE_CHANNELS)
    qs = OutboxMessage.objects.in_workspace(ws(request))
    if filters.account_id is not None:
        qs = qs.filter(account_id=filters.account_id)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.command:
        qs = qs.filter(command=filters.command)
    return qs.order_by("-created_at", "-id")


def _outbox_row(request: HttpRequest, message_id: int) -> OutboxMessage:
    require(me(request), Perm.OPERATE_CHANNELS)
    return OutboxMessage.objects.select_related("account__workspace").get_in_workspace(ws(request), pk=message_id)


@router.post("/channels/outbox/{int:message_id}/retry", response={200: OutboxOut, **ERRORS})
def retry_outbox(request: HttpRequest, message_id: int) -> Any:
    """Queue a failed or cancelled send again; any other status is answered unchanged."""
    return do_retry(_outbox_row(request, message_id), me(request))


@router.post("/channels/outbox/{int:message_id}/cancel", response={200: OutboxOut, **ERRORS})
def cancel_outbox(request: HttpRequest, message_id: int) -> Any:
    """Cancel a pending send. A send that already left (or is leaving) is answered
    unchanged: check ``status``."""
    return do_cancel(_outbox_row(request, message_id), me(request))


class TaskOut(Schema):
    id: int
    account_id: int | None
    kind: str
    title: str
    detail: dict[str, Any]
    assignee_id: int | None
    status: str
    created_at: dt.datetime
    done_at: dt.datetime | None


class TaskFilters(Schema):
    status: str | None = None
    kind: str | None = None
    assignee_id: int | None = None


def _visible_tasks(request: HttpRequest) -> WorkspaceQuerySet[StaffTask]:
    """The whole queue for channel operators; only one's own tasks for everyone else."""
    staff: Staff = me(request)
    qs = StaffTask.objects.in_workspace(ws(request))
    if not has_perm(staff, Perm.OPERATE_CHANNELS):
        qs = qs.filter(assignee=staff)
    return qs


@router.get("/tasks", response={200: list[TaskOut], **ERRORS})
@paginate(Page)
def list_tasks(request: HttpRequest, filters: Query[TaskFilters]) -> Any:
    """Staff tasks, open ones first, then newest first."""
    qs = _visible_tasks(request)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.assignee_id is not None:
        qs = qs.filter(assignee_id=filters.assignee_id)
    open_first = Case(When(status=StaffTaskStatus.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField())
    return qs.order_by(open_first, "-created_at", "-id")


class CloseIn(Schema):
    status: Literal["done", "dismissed"]


@router.post("/tasks/{int:task_id}/close", response={200: TaskOut, **ERRORS})
def close_task(request: HttpRequest, task_id: int, payload: CloseIn) -> Any:
    """Mark a task done or dismissed; a closed task is answered unchanged."""
    task = _visible_tasks(request).select_related("workspace").get_in_workspace(ws(request), pk=task_id)
    return do_close_staff_task(task, me(request), status=payload.status)
