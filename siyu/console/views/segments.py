"""Segments (人群包) in the console: the list, a builder with a live count, members and
the build / size history."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.console.workspace import Console, console_view, page_numbers
from siyu.contacts.models import LifecycleStage
from siyu.core.errors import ValidationFailed
from siyu.segments.actions import do_build_segment, do_create_segment, do_delete_segment, do_import_static_csv, do_update_segment
from siyu.segments.models import Segment, SegmentKind
from siyu.segments.queries import preview, segment_history, visible_members

PAGE_SIZE = 50


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("，", ",").split(",") if part.strip()]


def definition_from_form(data: Any) -> dict[str, Any]:
    """The builder's condition rows (all must hold) — or the raw JSON, which wins when
    it is filled in."""
    raw = (data.get("raw") or "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(_("The JSON definition does not parse: %(error)s") % {"error": exc.msg}, code="invalid_definition") from exc
        if not isinstance(parsed, dict):
            raise ValidationFailed(_("The JSON definition must be an object."), code="invalid_definition")
        return parsed
    leaves: list[dict[str, Any]] = []
    tags = {part: _split(data.get(f"tags_{part}", "")) for part in ("all", "any", "none")}
    if any(tags.values()):
        leaves.append({"tags": tags})
    stages = data.getlist("stages") if hasattr(data, "getlist") else data.get("stages", [])
    if stages:
        leaves.append({"lifecycle_stage": list(stages)})
    kind = (data.get("event_kind") or "").strip()
    if kind:
        event: dict[str, Any] = {"kind": kind}
        for name in ("min", "max", "within_days"):
            value = (data.get(f"event_{name}") or "").strip()
            if value:
                if not value.isdigit():
                    raise ValidationFailed(_("Event %(name)s must be a whole number.") % {"name": name}, code="invalid_definition")
                event[name] = int(value)
        leaves.append({"event": event})
    field = (data.get("field") or "").strip()
    if field:
        op = data.get("field_op") or "eq"
        field_value: Any = data.get("field_value", "")
        if op == "in":
            field_value = _split(field_value)
        leaves.append({"field": field, "op": op, "value": field_value})
    if not leaves:
        raise ValidationFailed(_("Add at least one condition."), code="invalid_definition")
    return leaves[0] if len(leaves) == 1 else {"all": leaves}


def _form_from_definition(definition: dict[str, Any]) -> dict[str, Any]:
    return {"raw": json.dumps(definition, ensure_ascii=False, indent=2) if definition else ""}


@require_GET
@console_view(Perm.VIEW_SEGMENTS)
def segment_list(request: HttpRequest, console: Console) -> HttpResponse:
    segments = Segment.objects.in_workspace(console.workspace).order_by("name", "id")
    return render(request, "console/segments/index.html", {"section": "segments", "segments": segments})


def _builder(request: HttpRequest, console: Console, segment: Segment | None, form: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, "console/segments/builder.html", {
        "section": "segments", "segment": segment, "form": form, "stages": LifecycleStage.choices,
        "ops": ["eq", "ne", "in", "contains", "gte", "lte", "exists", "missing"],
    }, status=status)


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_SEGMENTS)
def segment_new(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        return _builder(request, console, None, {"kind": "dynamic"})
    kind = request.POST.get("kind", SegmentKind.DYNAMIC)
    definition = definition_from_form(request.POST) if kind == SegmentKind.DYNAMIC else None
    segment = do_create_segment(console.workspace, console.staff, name=request.POST.get("name", ""), kind=kind,
                                definition=definition, description=request.POST.get("description", ""))
    messages.success(request, _("Segment “%(name)s” created.") % {"name": segment.name})
    return HttpResponseRedirect(reverse("console:segment", args=[segment.pk]))


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_SEGMENTS)
def segment_edit(request: HttpRequest, console: Console, segment_id: int) -> HttpResponse:
    segment = Segment.objects.select_related("workspace").get_in_workspace(console.workspace, pk=segment_id)
    if request.method == "GET":
        form = {"name": segment.name, "description": segment.description, "kind": segment.kind, **_form_from_definition(segment.definition)}
        return _builder(request, console, segment, form)
    definition = definition_from_form(request.POST) if segment.is_dynamic else None
    do_update_segment(segment, console.staff, name=request.POST.get("name"), description=request.POST.get("description"),
                      definition=definition)
    messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
    return HttpResponseRedirect(reverse("console:segment", args=[segment.pk]))


@require_POST
@console_view(Perm.VIEW_SEGMENTS)
def segment_preview(request: HttpRequest, console: Console) -> HttpResponse:
    """The live count under the builder (HTMX partial): errors show in place."""
    try:
        result = preview(console.workspace, console.staff, definition_from_form(request.POST))
    except ValidationFailed as exc:
        return render(request, "console/segments/_preview.html", {"error": exc.message})
    return render(request, "console/segments/_preview.html", {"result": result})


@require_GET
@console_view(Perm.VIEW_SEGMENTS)
def segment_detail(request: HttpRequest, console: Console, segment_id: int) -> HttpResponse:
    segment = Segment.objects.get_in_workspace(console.workspace, pk=segment_id)
    members = visible_members(console.workspace, console.staff, segment).select_related("owner", "owner__user").order_by("-id")
    page = Paginator(members, PAGE_SIZE).get_page(request.GET.get("page"))
    builds = segment_history(console.workspace, segment)
    chart = {
        "at": [b.started_at.astimezone(console.workspace.tz).strftime("%m-%d %H:%M") for b in builds],
        "size": [b.size for b in builds],
        "ms": [b.duration_ms for b in builds],
        "labels": {"size": _("Size"), "ms": _("Build time (ms)")},
    }
    return render(request, "console/segments/detail.html", {
        "section": "segments", "segment": segment, "page": page, "page_links": page_numbers(page.number, page.paginator.num_pages),
        "builds": builds[::-1][:20], "chart": chart,
        "definition_json": json.dumps(segment.definition, ensure_ascii=False, indent=2),
    })


@require_POST
@console_view(Perm.MANAGE_SEGMENTS)
def segment_build(request: HttpRequest, console: Console, segment_id: int) -> HttpResponse:
    segment = Segment.objects.select_related("workspace").get_in_workspace(console.workspace, pk=segment_id)
    build = do_build_segment(segment, actor=console.staff)
    messages.success(request, _("Rebuilt: %(size)s members (+%(entered)s −%(left)s) in %(ms)s ms.") % {
        "size": build.size, "entered": build.entered, "left": build.left, "ms": build.duration_ms})
    return HttpResponseRedirect(reverse("console:segment", args=[segment.pk]))


@require_POST
@console_view(Perm.MANAGE_SEGMENTS)
def segment_upload(request: HttpRequest, console: Console, segment_id: int) -> HttpResponse:
    segment = Segment.objects.select_related("workspace").get_in_workspace(console.workspace, pk=segment_id)
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationFailed(_("Choose a CSV file."), code="no_file")
    report = do_import_static_csv(segment, console.staff, upload.read())
    text = _("%(matched)s of %(rows)s rows matched.") % {"matched": report.matched, "rows": report.rows}
    if report.unknown_rows:
        rows = ", ".join(str(r["row"]) for r in report.unknown_rows[:20])
        text += " " + _("Unknown rows: %(rows)s") % {"rows": rows}
    messages.success(request, text)
    return HttpResponseRedirect(reverse("console:segment", args=[segment.pk]))


@require_POST
@console_view(Perm.MANAGE_SEGMENTS)
def segment_delete(request: HttpRequest, console: Console, segment_id: int) -> HttpResponse:
    segment = Segment.objects.select_related("workspace").get_in_workspace(console.workspace, pk=segment_id)
    name = segment.name
    do_delete_segment(segment, console.staff)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": name})
    return HttpResponseRedirect(reverse("console:segments"))
