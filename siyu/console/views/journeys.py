"""Journeys (旅程 / SOP) in the console: the list, a YAML editor that validates as it
saves, the journey viewer with per-step counts, a run viewer ("where is this contact and
why") and the playbook instantiation form."""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.models import Group
from siyu.console.workspace import Console, console_view, page_numbers
from siyu.core.errors import NotFound, ValidationFailed
from siyu.journeys import actions, playbooks, queries
from siyu.journeys.models import Journey

PAGE_SIZE = 50

STARTER = """name: 新客欢迎
trigger: {kind: contact_added}
reentry: once
steps:
  - {id: welcome, type: send, message_class: service, content: "{name}你好，欢迎！", next: wait_1d}
  - {id: wait_1d, type: wait, duration: 1d, next: guide}
  - {id: guide, type: send, message_class: marketing, content: "{name}，给你一份新手指南。"}
"""


def _journey(console: Console, journey_id: int) -> Journey:
    journey = queries.journeys(console.workspace).filter(pk=journey_id).first()
    if journey is None:
        raise NotFound(_("Journey not found."), code="journey_not_found")
    return journey


def _as_yaml(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, allow_unicode=True, sort_keys=False, width=120) if definition else ""


@require_GET
@console_view(Perm.VIEW_JOURNEYS)
def journey_list(request: HttpRequest, console: Console) -> HttpResponse:
    return render(request, "console/journeys/index.html", {"section": "journeys", "journeys": queries.journeys(console.workspace)})


def _editor(request: HttpRequest, journey: Journey | None, text: str, error: str = "", status: int = 200) -> HttpResponse:
    return render(request, "console/journeys/editor.html",
                  {"section": "journeys", "journey": journey, "text": text, "error": error}, status=status)


def _save(request: HttpRequest, console: Console, journey: Journey | None) -> HttpResponse:
    text = request.POST.get("definition", "")
    try:
        saved = actions.do_save_journey(console.workspace, console.staff, text, journey=journey)
        if request.POST.get("publish"):
            version = actions.do_publish_journey(saved, console.staff)
            messages.success(request, _("Journey “%(name)s” published as version %(version)s.") % {"name": saved.name, "version": version.number})
        else:
            messages.success(request, _("Journey “%(name)s” saved as a draft.") % {"name": saved.name})
    except ValidationFailed as exc:
        # Stay in the editor with the text as typed and the path of the problem.
        return _editor(request, journey, text, exc.message, status=422)
    return HttpResponseRedirect(reverse("console:journey", args=[saved.pk]))


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_JOURNEYS)
def journey_new(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method == "GET":
        return _editor(request, None, STARTER)
    return _save(request, console, None)


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_JOURNEYS)
def journey_edit(request: HttpRequest, console: Console, journey_id: int) -> HttpResponse:
    journey = _journey(console, journey_id)
    if request.method == "GET":
        return _editor(request, journey, _as_yaml(journey.draft))
    return _save(request, console, journey)


@require_POST
@console_view(Perm.MANAGE_JOURNEYS)
def journey_validate(request: HttpRequest, console: Console) -> HttpResponse:
    """HTMX: validate the editor's text as the operator types."""
    try:
        clean = actions.check_definition(console.workspace, request.POST.get("definition", ""))
    except ValidationFailed as exc:
        return render(request, "console/journeys/_validation.html", {"error": exc.message})
    return render(request, "console/journeys/_validation.html", {"steps": len(clean["steps"]), "trigger": clean["trigger"]["kind"]})


def _graph(steps: list[dict[str, Any]]) -> str:
    """ECharts graph data: nodes with their counts, edges labelled by branch."""
    nodes = [{"name": s["id"], "value": s["now_here"], "category": s["type"],
              "label_text": f"{s['id']} ({s['type']})\n{_('now here')}: {s['now_here']}"} for s in steps]
    links = [{"source": s["id"], "target": target, "label_text": label if label != "next" else ""} for s in steps for label, target in s["edges"]]
    return json.dumps({"nodes": nodes, "links": links}, ensure_ascii=False)


@require_GET
@console_view(Perm.VIEW_JOURNEYS)
def journey_detail(request: HttpRequest, console: Console, journey_id: int) -> HttpResponse:
    journey = _journey(console, journey_id)
    steps = queries.step_counts(journey)
    runs = queries.visible_runs(console.workspace, console.staff).filter(journey=journey).order_by("-entered_at", "-id")
    state = request.GET.get("state") or ""
    if state:
        runs = runs.filter(state=state)
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/journeys/detail.html", {
        "section": "journeys", "journey": journey, "steps": steps, "graph": _graph(steps), "summary": queries.run_summary(journey),
        "page": page, "page_links": page_numbers(page.number, page.paginator.num_pages), "state": state,
        "definition_yaml": _as_yaml(journey.current_version.definition if journey.current_version else journey.draft),
        "versions": journey.versions.order_by("-number"),
    })


@require_POST
@console_view(Perm.MANAGE_JOURNEYS)
def journey_publish(request: HttpRequest, console: Console, journey_id: int) -> HttpResponse:
    journey = _journey(console, journey_id)
    version = actions.do_publish_journey(journey, console.staff)
    messages.success(request, _("Journey “%(name)s” published as version %(version)s.") % {"name": journey.name, "version": version.number})
    return HttpResponseRedirect(reverse("console:journey", args=[journey.pk]))


@require_POST
@console_view(Perm.MANAGE_JOURNEYS)
def journey_status(request: HttpRequest, console: Console, journey_id: int) -> HttpResponse:
    journey = _journey(console, journey_id)
    actions.do_set_journey_status(journey, console.staff, status=request.POST.get("status", ""))
    messages.success(request, _("Journey “%(name)s” is now %(status)s.") % {"name": journey.name, "status": journey.get_status_display()})
    return HttpResponseRedirect(reverse("console:journey", args=[journey.pk]))


@require_GET
@console_view(Perm.VIEW_JOURNEYS)
def journey_run(request: HttpRequest, console: Console, run_id: int) -> HttpResponse:
    run = queries.visible_runs(console.workspace, console.staff).filter(pk=run_id).first()
    if run is None:
        raise NotFound(_("Journey run not found."), code="run_not_found")
    return render(request, "console/journeys/run.html", {"section": "journeys", "run": run, "described": queries.describe_run(run)})


@require_POST
@console_view(Perm.MANAGE_JOURNEYS)
def journey_run_exit(request: HttpRequest, console: Console, run_id: int) -> HttpResponse:
    run = queries.visible_runs(console.workspace, console.staff).filter(pk=run_id).first()
    if run is None:
        raise NotFound(_("Journey run not found."), code="run_not_found")
    actions.do_exit_run(run, console.staff, reason=request.POST.get("reason", ""))
    messages.success(request, _("The run was stopped."))
    return HttpResponseRedirect(reverse("console:journey_run", args=[run.pk]))


@require_http_methods(["GET", "POST"])
@console_view(Perm.MANAGE_JOURNEYS)
def playbook_index(request: HttpRequest, console: Console) -> HttpResponse:
    groups = Group.objects.in_workspace(console.workspace).filter(archived_at__isnull=True).order_by("name", "id")
    context: dict[str, Any] = {"section": "journeys", "playbooks": playbooks.list_playbooks(), "groups": groups,
                               "time_zone": console.workspace.time_zone, "form": {}}
    if request.method == "GET":
        return render(request, "console/journeys/playbooks.html", context)
    name = request.POST.get("playbook", "")
    params = {key[len("param_"):]: value for key, value in request.POST.items() if key.startswith("param_") and value != ""}
    try:
        group_ids = [int(g) for g in request.POST.getlist("groups")]
        result = playbooks.do_instantiate_playbook(
            console.workspace, console.staff, name, event_at=request.POST.get("date") or None, group_ids=group_ids,
            time_zone=request.POST.get("time_zone") or None, params=params,
        )
    except (ValidationFailed, ValueError) as exc:
        context.update(error=getattr(exc, "message", str(exc)), form=request.POST)
        return render(request, "console/journeys/playbooks.html", context, status=422)
    context["result"] = result
    messages.success(request, _("Playbook “%(name)s” created %(count)s journeys.") % {"name": name, "count": len(result["journeys"])})
    return render(request, "console/journeys/playbooks.html", context)
