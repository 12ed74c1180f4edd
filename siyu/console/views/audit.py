"""Audit log (审计日志): every write, newest first."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from siyu.accounts.models import AuditEntry, Staff
from siyu.accounts.permissions import Perm
from siyu.console.workspace import Console, console_view, page_numbers

PAGE_SIZE = 50


def _pretty(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


@require_GET
@console_view(Perm.VIEW_AUDIT)
def audit_list(request: HttpRequest, console: Console) -> HttpResponse:
    qs = AuditEntry.objects.in_workspace(console.workspace).select_related("actor").order_by("-created_at", "-id")
    action = request.GET.get("action", "").strip()
    actor = request.GET.get("actor", "").strip()
    if action:
        qs = qs.filter(action=action)
    if actor == "system":
        qs = qs.filter(actor__isnull=True)
    elif actor.isdigit():
        qs = qs.filter(actor_id=int(actor))
    else:
        actor = ""
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    entries = [{"entry": e, "before": _pretty(e.before), "after": _pretty(e.after)} for e in page.object_list]
    actions = AuditEntry.objects.in_workspace(console.workspace).order_by("action").values_list("action", flat=True).distinct()
    return render(
        request,
        "console/audit/list.html",
        {
            "entries": entries,
            "page": page,
            "page_links": page_numbers(page.number, page.paginator.num_pages),
            "querystring": urlencode([(k, v) for k, v in (("action", action), ("actor", actor)) if v]),
            "action": action,
            "actor": actor,
            "actions": list(actions),
            "actors": list(Staff.objects.in_workspace(console.workspace).order_by("display_name")),
        },
    )
