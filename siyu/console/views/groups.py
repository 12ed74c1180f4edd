"""Groups (社群): list with health, creation with positioning (定位), detail with health,
heatmap, members and roles, moderation log and re-pull (重新拉群); group alerts."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.actions import (
    do_create_group,
    do_dismiss_group,
    do_infer_member_roles,
    do_refresh_group_health,
    do_remove_member_on_channel,
    do_repull_group,
    do_resolve_alert,
    do_set_member_role,
    do_update_group,
)
from siyu.communities.heatmap import best_hours, group_heatmap
from siyu.communities.models import Alert, Group, GroupHealthDay, GroupRepull, GroupType, HealthState, MemberRole, Membership
from siyu.communities.queries import find_groups, group_messages, may_read_messages, open_members
from siyu.console.forms import GroupForm
from siyu.console.workspace import Console, back, console_view, page_numbers
from siyu.contacts.queries import visible_contacts
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.phones import mask_digit_runs
from siyu.moderation.models import ModerationCase

PAGE_SIZE = 50


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_list(request: HttpRequest, console: Console) -> HttpResponse:
    group_type = request.GET.get("type", "")
    group_type = group_type if group_type in GroupType.values else ""
    health = request.GET.get("health", "")
    health = health if health in HealthState.values else ""
    q = request.GET.get("q", "").strip()[:100]
    qs = find_groups(console.workspace, q=q, group_type=group_type, health=health, archived=request.GET.get("archived") == "1")
    page = Paginator(qs.select_related("owner"), PAGE_SIZE).get_page(request.GET.get("page"))
    keep = [(k, v) for k, v in (("q", q), ("type", group_type), ("health", health), ("archived", request.GET.get("archived", ""))) if v]
    return render(
        request,
        "console/groups/list.html",
        {
            "page": page,
            "page_links": page_numbers(page.number, page.paginator.num_pages),
            "querystring": urlencode(keep),
            "group_type": group_type, "health": health, "q": q, "health_states": HealthState.choices,
            "show_archived": request.GET.get("archived") == "1",
            "types": GroupType.choices,
            "health_labels": dict(HealthState.choices),
            "open_alerts": Alert.objects.in_workspace(console.workspace).filter(resolved_at__isnull=True).count(),
        },
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_GROUPS)
def group_create(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        form = GroupForm(workspace=console.workspace)
        return render(request, "console/groups/form.html", {"form": form})
    form = GroupForm(request.POST, workspace=console.workspace)
    if form.is_valid():
        values = form.values()
        try:
            group = do_create_group(console.workspace, console.staff, name=values.pop("name"), **values)
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Group “%(name)s” created.") % {"name": group.name})
            return HttpResponseRedirect(reverse("console:group", args=[group.pk]))
    return render(request, "console/groups/form.html", {"form": form}, status=422)


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_GROUPS)
def group_edit(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("workspace").get_in_workspace(console.workspace, pk=group_id)
    if request.method == "GET":
        return render(request, "console/groups/form.html", {"form": GroupForm(workspace=console.workspace, group=group), "group": group})
    form = GroupForm(request.POST, workspace=console.workspace, group=group)
    if form.is_valid():
        try:
            do_update_group(group, console.staff, **form.values())
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Group “%(name)s” saved.") % {"name": group.name})
            return HttpResponseRedirect(reverse("console:group", args=[group.pk]))
    return render(request, "console/groups/form.html", {"form": form, "group": group}, status=422)


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_detail(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("owner", "workspace").get_in_workspace(console.workspace, pk=group_id)
    members = list(open_members(group))
    group.member_count = len(members)  # type: ignore[attr-defined]  # as in the list, which annotates it
    role_labels = dict(MemberRole.choices)
    for m in members:
        m.candidate_label = role_labels.get(m.role_candidate, "")  # type: ignore[attr-defined]
    # Agents see the group's members but may open only the contacts they own.
    linkable = set(visible_contacts(console.workspace, console.staff).filter(pk__in=[m.contact_id for m in members]).values_list("pk", flat=True))
    return render(
        request,
        "console/groups/detail.html",
        {
            "group": group, "members": members, "linkable": linkable, "roles": MemberRole.choices, "admins": list(group.admins.all()),
            "may_read_messages": may_read_messages(group, console.staff),
            **health_context(console, group),
        },
    )


MESSAGES_PAGE_SIZE = 50


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_message_log(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    """The group's messages (群聊记录), newest first, searchable by text and sender."""
    group = Group.objects.get_in_workspace(console.workspace, pk=group_id)
    if not may_read_messages(group, console.staff):
        raise Forbidden(_("Only the group's owner or admins, or staff who see every contact, may read its messages."))
    q = request.GET.get("q", "").strip()[:100]
    contact = request.GET.get("contact", "").strip()
    sender_id = int(contact) if contact.isdigit() else None
    page = Paginator(group_messages(group, q=q, sender_id=sender_id), MESSAGES_PAGE_SIZE).get_page(request.GET.get("page"))
    sees_pii = console.can(Perm.VIEW_PII)
    rows = list(page.object_list)
    linkable = set(visible_contacts(console.workspace, console.staff).filter(pk__in={m.sender_id for m in rows if m.sender_id})
                   .values_list("pk", flat=True))
    for m in rows:
        m.shown_text = m.text if sees_pii else mask_digit_runs(m.text)  # type: ignore[attr-defined]
    keep = [(k, v) for k, v in (("q", q), ("contact", str(sender_id) if sender_id else "")) if v]
    return render(request, "console/groups/messages.html", {
        "group": group, "rows": rows, "page": page, "q": q, "sender": sender_id, "linkable": linkable,
        "page_links": page_numbers(page.number, page.paginator.num_pages), "querystring": urlencode(keep),
    })


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def member_role(request: HttpRequest, console: Console, group_id: int, membership_id: int) -> HttpResponse:
    membership = (
        Membership.objects.select_related("contact", "group", "group__workspace")
        .filter(group_id=group_id)
        .get_in_workspace(console.workspace, pk=membership_id)
    )
    role = request.POST.get("role", "")
    do_set_member_role(membership, console.staff, role=role)
    messages.success(
        request, _("%(name)s is now %(role)s.") % {"name": membership.contact.name, "role": membership.get_role_display()}
    )
    return back(request, reverse("console:group", args=[group_id]))


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def member_remove(request: HttpRequest, console: Console, group_id: int, membership_id: int) -> HttpResponse:
    membership = (
        Membership.objects.select_related("contact", "group").filter(group_id=group_id, left_at__isnull=True)
        .get_in_workspace(console.workspace, pk=membership_id)
    )
    queued = do_remove_member_on_channel(membership, console.staff, reason=request.POST.get("reason", ""))
    name = membership.contact.name
    if any("staff_task" in q for q in queued):
        messages.success(request, _("The channel cannot remove members: the owner has a task to remove %(name)s in the app; they stay listed until the platform reports them gone.")
                         % {"name": name})
    elif queued:
        messages.success(request, _("%(name)s is being removed from the group on its channel.") % {"name": name})
    else:
        messages.success(request, _("%(name)s left the group.") % {"name": name})
    return HttpResponseRedirect(reverse("console:group", args=[group_id]))


# --------------------------------------------------------------------------- health, roles, alerts, re-pull


def health_context(console: Console, group: Group) -> dict[str, Any]:
    """Everything the group page shows about health: the latest snapshot, a 30-day trend,
    the 7×24 heatmap and its best hours, the group's alerts and moderation log."""
    days = list(GroupHealthDay.objects.filter(group=group).order_by("-day")[:30])[::-1]
    latest = days[-1] if days else None
    grid = group_heatmap(group)
    cases = ModerationCase.objects.filter(group=group).select_related("contact").order_by("-created_at", "-id")
    if not console.can(Perm.VIEW_ALL_CONTACTS):
        cases = cases.filter(contact__in=visible_contacts(console.workspace, console.staff))
    trend = {
        "days": [d.day.isoformat() for d in days],
        "series": {"messages": [d.messages for d in days], "talkers": [d.talkers for d in days],
                   "ratio": [round(d.active_ratio * 100, 1) for d in days]},
        "labels": {"messages": _("Messages"), "talkers": _("Active talkers"), "ratio": _("Active ratio (%)")},
    }
    heat = {
        "cells": [[hour, weekday, grid[weekday][hour]] for weekday in range(7) for hour in range(24)],
        "max": max((max(row) for row in grid), default=0),
        "days": [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")],
    }
    return {
        "health": latest,
        "health_trend": trend,
        "heatmap": heat,
        "best_hours": best_hours(group, heatmap=grid),
        "alerts": list(Alert.objects.filter(group=group).order_by("-created_at", "-id")[:10]),
        "cases": list(cases[:20]),
        "repull": GroupRepull.objects.filter(old_group=group).select_related("new_group").first(),
        "repulled_from": GroupRepull.objects.filter(new_group=group).select_related("old_group").first(),
        "repull_window_days": 30,
    }


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def group_health_refresh(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("workspace", "owner", "channel_account").get_in_workspace(console.workspace, pk=group_id)
    rows = do_refresh_group_health(group)
    do_infer_member_roles(group)
    messages.success(request, _("Health recomputed: %(n)s new days.") % {"n": len(rows)})
    return back(request, reverse("console:group", args=[group.pk]))


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def group_repull(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("workspace", "owner", "channel_account").get_in_workspace(console.workspace, pk=group_id)
    try:
        min_messages = int(request.POST.get("min_messages") or 1)
        window_days = int(request.POST.get("window_days") or 30)
    except ValueError:
        messages.error(request, _("Minimum messages and window must be whole numbers."))
        return back(request, reverse("console:group", args=[group.pk]))
    repull = do_repull_group(
        console.workspace, group, actor=console.staff, new_name=request.POST.get("new_name", "").strip() or None,
        farewell_text=request.POST.get("farewell_text", "").strip() or None, min_messages=min_messages, window_days=window_days,
        archive_old=request.POST.get("archive_old") == "1",
    )
    messages.success(
        request, _("Re-pulled: %(n)s members invited to “%(name)s”.") % {"n": len(repull.invited), "name": repull.new_group.name}
    )
    return HttpResponseRedirect(reverse("console:group", args=[repull.new_group_id]))


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def group_dismiss(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.get_in_workspace(console.workspace, pk=group_id)
    queued = do_dismiss_group(group, console.staff, farewell_text=request.POST.get("farewell_text", ""), reason=request.POST.get("reason", ""))
    if any("staff_task" in q for q in queued):
        messages.success(request, _("Group archived. The channel cannot dismiss it: the owner has a task to dismiss it in the app."))
    elif queued:
        messages.success(request, _("Group dismissed: the bot posts the farewell, removes everyone and leaves."))
    else:
        messages.success(request, _("Group archived."))
    return HttpResponseRedirect(reverse("console:group", args=[group.pk]))


@require_GET
@console_view(Perm.VIEW_GROUPS)
def group_alerts(request: HttpRequest, console: Console) -> HttpResponse:
    state = request.GET.get("state", "open")
    qs = Alert.objects.in_workspace(console.workspace).select_related("group", "resolved_by", "staff_task").order_by("-created_at", "-id")
    if state == "open":
        qs = qs.filter(resolved_at__isnull=True)
    elif state == "resolved":
        qs = qs.filter(resolved_at__isnull=False)
    else:
        state = "all"
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/groups/alerts.html",
        {"page": page, "page_links": page_numbers(page.number, page.paginator.num_pages), "querystring": urlencode({"state": state}),
         "state": state},
    )


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def group_alert_resolve(request: HttpRequest, console: Console, alert_id: int) -> HttpResponse:
    alert = Alert.objects.select_related("group__workspace", "staff_task").get_in_workspace(console.workspace, pk=alert_id)
    do_resolve_alert(alert, console.staff, note=request.POST.get("note", "").strip()[:300])
    messages.success(request, _("Alert resolved."))
    return back(request, reverse("console:group_alerts"))
