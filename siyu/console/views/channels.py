"""Channels (渠道): accounts, the inbox (收件箱), the outbox (发件箱) and staff tasks (任务) —
what came in, what went out, what failed and what a person must do by hand."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.accounts.permissions import Perm
from siyu.channels.actions import do_close_staff_task
from siyu.channels.inbox import do_requeue
from siyu.channels.models import (
    ChannelAccount,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    StaffTask,
    StaffTaskStatus,
)
from siyu.channels.outbox import do_cancel, do_retry
from siyu.channels.queries import account_overview
from siyu.console.workspace import Console, back, console_view, page_numbers
from siyu.core.models import Workspace, WorkspaceQuerySet

PAGE_SIZE = 50


def pretty(value: Any) -> str:
    return "" if value in (None, "", {}, []) else json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _accounts(workspace: Workspace) -> list[ChannelAccount]:
    return list(ChannelAccount.objects.in_workspace(workspace).order_by("kind", "name"))


def _account_filter(request: HttpRequest, qs: QuerySet[Any]) -> tuple[QuerySet[Any], str]:
    """Narrow to the chosen account; ``qs`` is already scoped, so another workspace's
    account id narrows to nothing."""
    account = request.GET.get("account", "").strip()
    if not account.isdigit():
        return qs, ""
    return qs.filter(account_id=int(account)), account


def _choice(request: HttpRequest, name: str, allowed: list[str]) -> str:
    value = request.GET.get(name, "").strip()
    return value if value in allowed else ""


def _paged(request: HttpRequest, qs: QuerySet[Any], keep: list[tuple[str, str]]) -> dict[str, Any]:
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "page_links": page_numbers(page.number, page.paginator.num_pages),
        "querystring": urlencode([(k, v) for k, v in keep if v]),
    }


@require_GET
@console_view(Perm.OPERATE_CHANNELS)
def channel_accounts(request: HttpRequest, console: Console) -> HttpResponse:
    rows = account_overview(console.workspace)
    for row in rows:
        # The platform is configured with the full URL, so show the one it must call.
        row["callback_url"] = request.build_absolute_uri(row["callback_path"]) if row["callback_path"] else ""
    return render(request, "console/channels/accounts.html", {"section": "channels", "tab": "accounts", "accounts": rows})


@require_GET
@console_view(Perm.OPERATE_CHANNELS)
def inbox_list(request: HttpRequest, console: Console) -> HttpResponse:
    base = InboxEvent.objects.in_workspace(console.workspace)
    qs, account = _account_filter(request, base.select_related("account"))
    status = _choice(request, "status", InboxStatus.values)
    kinds = sorted(set(base.values_list("kind", flat=True).distinct()))
    kind = _choice(request, "kind", kinds)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    qs = qs.order_by("-received_at", "-id")
    context = _paged(request, qs, [("account", account), ("status", status), ("kind", kind)])
    context.update(
        section="channels", tab="inbox", account=account, status=status, kind=kind, kinds=kinds,
        statuses=InboxStatus.choices, accounts=_accounts(console.workspace),
    )
    return render(request, "console/channels/inbox.html", context)


@require_GET
@console_view(Perm.OPERATE_CHANNELS)
def inbox_event(request: HttpRequest, console: Console, event_id: int) -> HttpResponse:
    event = InboxEvent.objects.select_related("account").get_in_workspace(console.workspace, pk=event_id)
    return render(
        request,
        "console/channels/inbox_event.html",
        {
            "section": "channels", "tab": "inbox", "event": event, "data": pretty(event.data),
            # The raw payload is what the platform sent: names, phone numbers, message text.
            "show_raw": console.can(Perm.VIEW_PII),
        },
    )


@require_POST
@console_view(Perm.OPERATE_CHANNELS)
def inbox_retry(request: HttpRequest, console: Console, event_id: int) -> HttpResponse:
    event = InboxEvent.objects.select_related("account__workspace").get_in_workspace(console.workspace, pk=event_id)
    was_failed = event.status == InboxStatus.FAILED
    event = do_requeue(event, console.staff)
    if was_failed:
        messages.success(request, _("Event #%(id)s queued again; it is now %(status)s.") % {"id": event.pk, "status": event.get_status_display()})
    else:
        messages.info(request, _("Only failed events can be retried."))
    return back(request, reverse("console:channel_inbox"))


@require_GET
@console_view(Perm.OPERATE_CHANNELS)
def outbox_list(request: HttpRequest, console: Console) -> HttpResponse:
    base = OutboxMessage.objects.in_workspace(console.workspace)
    qs, account = _account_filter(request, base.select_related("account"))
    status = _choice(request, "status", OutboxStatus.values)
    commands = sorted(set(base.values_list("command", flat=True).distinct()))
    command = _choice(request, "command", commands)
    row_id = request.GET.get("id", "").strip()
    if status:
        qs = qs.filter(status=status)
    if command:
        qs = qs.filter(command=command)
    if row_id.isdigit():
        qs = qs.filter(pk=int(row_id))
    else:
        row_id = ""
    qs = qs.order_by("-created_at", "-id")
    context = _paged(request, qs, [("account", account), ("status", status), ("command", command), ("id", row_id)])
    context.update(
        section="channels", tab="outbox", account=account, status=status, command=command, commands=commands, row_id=row_id,
        statuses=OutboxStatus.choices, accounts=_accounts(console.workspace),
    )
    return render(request, "console/channels/outbox.html", context)


@require_POST
@console_view(Perm.OPERATE_CHANNELS)
def outbox_retry(request: HttpRequest, console: Console, message_id: int) -> HttpResponse:
    row = OutboxMessage.objects.select_related("account__workspace").get_in_workspace(console.workspace, pk=message_id)
    if row.status not in (OutboxStatus.FAILED, OutboxStatus.CANCELLED):
        messages.info(request, _("Only failed or cancelled sends can be retried."))
        return back(request, reverse("console:channel_outbox"))
    row = do_retry(row, console.staff)
    messages.success(request, _("Send #%(id)s queued again; it is now %(status)s.") % {"id": row.pk, "status": row.get_status_display()})
    return back(request, reverse("console:channel_outbox"))


@require_POST
@console_view(Perm.OPERATE_CHANNELS)
def outbox_cancel(request: HttpRequest, console: Console, message_id: int) -> HttpResponse:
    row = OutboxMessage.objects.select_related("account__workspace").get_in_workspace(console.workspace, pk=message_id)
    row = do_cancel(row, console.staff)
    if row.status == OutboxStatus.CANCELLED:
        messages.success(request, _("Send #%(id)s cancelled.") % {"id": row.pk})
    else:
        # A worker may have taken it between the page load and the click.
        messages.error(request, _("Send #%(id)s could not be cancelled: it is %(status)s.") % {"id": row.pk, "status": row.get_status_display()})
    return back(request, reverse("console:channel_outbox"))


def visible_tasks(console: Console) -> WorkspaceQuerySet[StaffTask]:
    """Operators see the workspace's whole queue; everyone else the tasks assigned to them."""
    qs = StaffTask.objects.in_workspace(console.workspace)
    if not console.can(Perm.OPERATE_CHANNELS):
        qs = qs.filter(assignee=console.staff)
    return qs


@require_GET
@console_view()
def task_list(request: HttpRequest, console: Console) -> HttpResponse:
    base = visible_tasks(console)
    status = _choice(request, "status", StaffTaskStatus.values)
    kinds = sorted(set(base.values_list("kind", flat=True).distinct()))
    kind = _choice(request, "kind", kinds)
    row_id = request.GET.get("id", "").strip()
    qs = base.select_related("account", "assignee")
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if row_id.isdigit():
        qs = qs.filter(pk=int(row_id))
    else:
        row_id = ""
    open_first = Case(When(status=StaffTaskStatus.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField())
    qs = qs.order_by(open_first, "-created_at", "-id")
    context = _paged(request, qs, [("status", status), ("kind", kind), ("id", row_id)])
    context.update(
        section="tasks", status=status, kind=kind, kinds=kinds, statuses=StaffTaskStatus.choices, row_id=row_id,
        tasks=[{"task": t, "detail": pretty(t.detail)} for t in context["page"].object_list],
        open_count=base.filter(status=StaffTaskStatus.OPEN).count(),
    )
    return render(request, "console/channels/tasks.html", context)


@require_POST
@console_view()
def task_close(request: HttpRequest, console: Console, task_id: int) -> HttpResponse:
    task = visible_tasks(console).select_related("workspace").get_in_workspace(console.workspace, pk=task_id)
    status = request.POST.get("status", "")
    was_open = task.status == StaffTaskStatus.OPEN
    task = do_close_staff_task(task, console.staff, status=status)
    if was_open:
        messages.success(request, _("Task “%(title)s” marked %(status)s.") % {"title": task.title, "status": task.get_status_display()})
    else:
        messages.info(request, _("Task “%(title)s” was already closed.") % {"title": task.title})
    return back(request, reverse("console:tasks"))
