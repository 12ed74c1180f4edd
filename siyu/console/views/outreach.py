"""Outreach console (触达): broadcasts (群发) with the composer, the preview before
sending and the variant stats; the material library (素材库); the quota settings and
each contact's ledger ("why didn't this person get the message?"); columns (栏目).

Reading needs ``VIEW_ALL_CONTACTS`` (broadcasts name their audience); every write goes
through an outreach action, which requires ``MANAGE_OUTREACH``. Form errors are domain
errors: the console wrapper shows their message on the page that held the form.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.models import Group
from siyu.console.workspace import Console, console_view
from siyu.contacts.queries import get_visible_contact
from siyu.core.errors import ValidationFailed
from siyu.outreach import actions, queries
from siyu.outreach.models import Broadcast, Column, GroupSet, Material, MaterialKind, ScheduleMode
from siyu.outreach.planning import broadcast_stats, preview_broadcast

SECTION = {"section": "outreach"}


def _ints(text: str, what: str) -> list[int]:
    parts = [p for p in text.replace("，", ",").replace("\n", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        return [int(p) for p in parts]
    except ValueError as exc:
        raise ValidationFailed(_("%(what)s: give ids separated by commas") % {"what": what}) from exc


# ---------------------------------------------------------------- broadcasts


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_broadcasts(request: HttpRequest, console: Console) -> HttpResponse:
    rows = list(queries.broadcasts(console.workspace).select_related("winner")[:200])
    return render(request, "console/outreach/broadcasts.html", {**SECTION, "tab": "broadcasts", "broadcasts": rows})


def _composer_context(console: Console) -> dict[str, Any]:
    from siyu.segments.models import Segment

    return {
        **SECTION, "tab": "broadcasts",
        "segments": list(Segment.objects.in_workspace(console.workspace).order_by("name")),
        "group_sets": list(GroupSet.objects.in_workspace(console.workspace).order_by("name")),
        "groups": list(Group.objects.in_workspace(console.workspace).filter(archived_at__isnull=True).order_by("name")[:500]),
        "materials": list(queries.materials(console.workspace)),
        "labels": ["A", "B", "C", "D", "E"],
    }


def _audience_from_post(post: Any) -> dict[str, Any]:
    kind = post.get("audience_kind", "")
    if kind == "segment":
        return {"segment": post.get("segment") or 0}
    if kind == "group_set":
        return {"group_set": post.get("group_set") or 0}
    if kind == "groups":
        return {"groups": [int(g) for g in post.getlist("groups")]}
    if kind == "contacts":
        return {"contacts": _ints(post.get("contacts", ""), _("Contacts"))}
    raise ValidationFailed(_("Choose who receives the broadcast."))


def _variants_from_post(post: Any) -> list[dict[str, Any]]:
    variants = []
    for label in "ABCDE":
        material_id = post.get(f"variant_{label}_material") or ""
        text = post.get(f"variant_{label}_text", "").strip()
        if material_id:
            variants.append({"label": label, "material_id": int(material_id)})
        elif text:
            variants.append({"label": label, "content": {"kind": "text", "text": text}})
    return variants


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_OUTREACH)
def outreach_broadcast_create(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        return render(request, "console/outreach/composer.html", _composer_context(console))
    post = request.POST
    mode = post.get("schedule_mode", ScheduleMode.NOW)
    schedule: dict[str, Any] = {"mode": mode}
    if post.get("scheduled_at"):
        local = dt.datetime.fromisoformat(post["scheduled_at"])
        schedule["at"] = local.replace(tzinfo=console.workspace.tz) if timezone.is_naive(local) else local
    broadcast = actions.do_create_broadcast(
        console.workspace, actor=console.staff, name=post.get("name", ""), audience=_audience_from_post(post),
        variants=_variants_from_post(post), schedule=schedule, message_class=post.get("message_class", "marketing"),
        auto_winner=post.get("auto_winner") == "on", test_fraction=float(post.get("test_fraction") or 0.2),
        winner_wait_hours=int(post.get("winner_wait_hours") or 24),
    )
    messages.success(request, _("Broadcast “%(name)s” saved as a draft: check the preview, then send.") % {"name": broadcast.name})
    return HttpResponseRedirect(reverse("console:outreach_broadcast", args=[broadcast.pk]))


def _broadcast(console: Console, broadcast_id: int) -> Broadcast:
    return Broadcast.objects.select_related("winner").get_in_workspace(console.workspace, pk=broadcast_id)


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_broadcast(request: HttpRequest, console: Console, broadcast_id: int) -> HttpResponse:
    broadcast = _broadcast(console, broadcast_id)
    variants = list(broadcast.variants.select_related("material").order_by("label"))
    return render(request, "console/outreach/broadcast.html", {
        **SECTION, "tab": "broadcasts", "broadcast": broadcast, "variants": variants,
        "stats": broadcast_stats(broadcast) if broadcast.planned_at else [],
    })


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_broadcast_preview(request: HttpRequest, console: Console, broadcast_id: int) -> HttpResponse:
    """The preview fragment (HTMX): computed as sending would, nothing written."""
    preview = preview_broadcast(_broadcast(console, broadcast_id))
    return render(request, "console/outreach/_preview.html", {"preview": preview})


@require_POST
@console_view(Perm.MANAGE_OUTREACH)
def outreach_broadcast_send(request: HttpRequest, console: Console, broadcast_id: int) -> HttpResponse:
    result = actions.do_send_broadcast(_broadcast(console, broadcast_id), console.staff)
    messages.success(request, _("Planned %(planned)s, deferred %(deferred)s, skipped %(skipped)s.") % {
        "planned": result.planned, "deferred": result.deferred, "skipped": result.skipped})
    return HttpResponseRedirect(reverse("console:outreach_broadcast", args=[broadcast_id]))


@require_POST
@console_view(Perm.MANAGE_OUTREACH)
def outreach_broadcast_cancel(request: HttpRequest, console: Console, broadcast_id: int) -> HttpResponse:
    actions.do_cancel_broadcast(_broadcast(console, broadcast_id), console.staff)
    messages.success(request, _("Broadcast cancelled; waiting sends were released."))
    return HttpResponseRedirect(reverse("console:outreach_broadcast", args=[broadcast_id]))


# ---------------------------------------------------------------- materials


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_materials(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        kind = post.get("kind", MaterialKind.TEXT)
        upload = request.FILES.get("file")
        if kind == MaterialKind.IMAGE and upload is not None:
            material = actions.do_upload_material_image(
                console.workspace, console.staff, name=post.get("name", ""), data=upload.read(), folder=post.get("folder", ""), text=post.get("text", ""),
            )
            messages.success(request, _("Material “%(name)s” added.") % {"name": material.name})
            return HttpResponseRedirect(reverse("console:outreach_materials"))
        data = {key: post.get(key, "").strip() for key in ("title", "desc", "url", "cover", "appid", "page") if post.get(key, "").strip()}
        if kind == MaterialKind.MINIPROGRAM:
            data.pop("url", None)
            data.pop("desc", None)
        elif kind == MaterialKind.IMAGE:
            data = {k: v for k, v in data.items() if k == "url"}
        elif kind == MaterialKind.TEXT:
            data = {}
        material = actions.do_create_material(
            console.workspace, console.staff, name=post.get("name", ""), kind=kind, text=post.get("text", ""), data=data,
            folder=post.get("folder", ""), tags=[t for t in post.get("tags", "").replace("，", ",").split(",")],
        )
        messages.success(request, _("Material “%(name)s” added.") % {"name": material.name})
        return HttpResponseRedirect(reverse("console:outreach_materials"))
    folder = request.GET.get("folder")
    from siyu.outreach.content import VARIABLES

    return render(request, "console/outreach/materials.html", {
        **SECTION, "tab": "materials", "materials": list(queries.materials(console.workspace, folder=folder or None, q=request.GET.get("q") or None)),
        "folders": queries.folders(console.workspace), "folder": folder or "", "kinds": MaterialKind.choices, "variables": VARIABLES,
    })


@require_POST
@console_view(Perm.MANAGE_OUTREACH)
def outreach_material_archive(request: HttpRequest, console: Console, material_id: int) -> HttpResponse:
    actions.do_archive_material(Material.objects.get_in_workspace(console.workspace, pk=material_id), console.staff)
    messages.success(request, _("Material archived."))
    return HttpResponseRedirect(reverse("console:outreach_materials"))


# ---------------------------------------------------------------- quota


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_quota(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        values: dict[str, Any] = {}
        for key in ("contact_marketing_cap", "contact_window_days", "group_marketing_cap", "group_window_days", "reminder_cap",
                    "reminder_window_hours", "default_expiry_hours"):
            if post.get(key, "").strip():
                try:
                    values[key] = int(post[key])
                except ValueError as exc:
                    raise ValidationFailed(_("%(field)s must be a whole number") % {"field": key}) from exc
        for key in ("quiet_start", "quiet_end", "consent_mode"):
            if post.get(key, "").strip():
                values[key] = post[key].strip()
        actions.do_set_quota_policy(console.workspace, console.staff, **values)
        messages.success(request, _("Quota settings saved."))
        return HttpResponseRedirect(reverse("console:outreach_quota"))
    if request.GET.get("contact", "").isdigit():
        return HttpResponseRedirect(reverse("console:outreach_contact_ledger", args=[int(request.GET["contact"])]))
    return render(request, "console/outreach/quota.html", {**SECTION, "tab": "quota", "rules": queries.quota_rules(console.workspace)})


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def outreach_contact_ledger(request: HttpRequest, console: Console, contact_id: int) -> HttpResponse:
    contact = get_visible_contact(console.workspace, console.staff, contact_id)
    ledger = queries.contact_ledger(console.workspace, contact)
    return render(request, "console/outreach/contact_ledger.html", {**SECTION, "tab": "quota", "contact": contact, "ledger": ledger})


# ---------------------------------------------------------------- columns


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def outreach_columns(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        column = actions.do_create_column(
            console.workspace, console.staff, name=post.get("name", ""), time_of_day=post.get("time_of_day", ""),
            material_ids=[int(m) for m in post.getlist("materials")], group_ids=[int(g) for g in post.getlist("groups")],
            group_set_id=int(post["group_set"]) if post.get("group_set") else None, weekdays=[int(d) for d in post.getlist("weekdays")],
            quiet_start=post.get("quiet_start") or None, quiet_end=post.get("quiet_end") or None,
            message_class=post.get("message_class", "marketing"),
        )
        messages.success(request, _("Column “%(name)s” created.") % {"name": column.name})
        return HttpResponseRedirect(reverse("console:outreach_columns"))
    return render(request, "console/outreach/columns.html", {
        **SECTION, "tab": "columns", "columns": list(queries.columns(console.workspace)),
        "groups": list(Group.objects.in_workspace(console.workspace).filter(archived_at__isnull=True).order_by("name")[:500]),
        "group_sets": list(GroupSet.objects.in_workspace(console.workspace).order_by("name")),
        "materials": list(queries.materials(console.workspace)),
        "weekday_names": [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")],
    })


@require_POST
@console_view(Perm.MANAGE_OUTREACH)
def outreach_column_toggle(request: HttpRequest, console: Console, column_id: int) -> HttpResponse:
    column = Column.objects.get_in_workspace(console.workspace, pk=column_id)
    actions.do_set_column_active(column, console.staff, is_active=not column.is_active)
    return HttpResponseRedirect(reverse("console:outreach_columns"))
