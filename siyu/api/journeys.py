"""Journeys (旅程 / SOP) and playbooks API.

A journey definition is sent as the request body, as JSON (``application/json``) or as
YAML (``application/yaml`` or ``text/yaml``): the same language as ``siyu journeys apply``.
"""

import datetime as dt
import json
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.communities.models import Group
from siyu.contacts.queries import get_visible_contact
from siyu.core.errors import NotFound, ValidationFailed
from siyu.journeys import actions, playbooks, queries
from siyu.journeys.definition import parse_text
from siyu.journeys.models import Journey, JourneyRun

router = Router(tags=["journeys"])


class JourneyOut(Schema):
    id: int
    name: str
    description: str
    status: str
    trigger_kind: str
    playbook: str
    version: int | None
    draft: dict[str, Any]
    published_definition: dict[str, Any] | None
    open_runs: int
    total_runs: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @staticmethod
    def resolve_version(obj: Journey) -> int | None:
        return obj.current_version.number if obj.current_version else None

    @staticmethod
    def resolve_published_definition(obj: Journey) -> dict[str, Any] | None:
        return obj.current_version.definition if obj.current_version else None


class StepCountOut(Schema):
    id: str
    type: str
    label: str
    now_here: int
    outcomes: dict[str, int]
    edges: list[tuple[str, str]]


class JourneyDetailOut(JourneyOut):
    steps: list[StepCountOut]
    runs_by_state: dict[str, int]


class PathEntryOut(Schema):
    step: str
    type: str
    outcome: str
    reason: str
    detail: dict[str, Any]
    next: str
    at: dt.datetime


class RunOut(Schema):
    id: int
    journey_id: int
    journey: str
    version: int
    contact_id: int | None
    group_id: int | None
    state: str
    current_step: str
    current_step_type: str
    wake_at: dt.datetime | None
    waiting_for: dict[str, Any] | None
    entered_at: dt.datetime
    finished_at: dt.datetime | None
    exit_reason: str
    trigger_key: str
    path: list[PathEntryOut]


class RunListOut(Schema):
    id: int
    journey_id: int
    version: int
    contact_id: int | None
    group_id: int | None
    state: str
    current_step: str
    wake_at: dt.datetime | None
    entered_at: dt.datetime
    finished_at: dt.datetime | None
    exit_reason: str
    trigger_key: str

    @staticmethod
    def resolve_version(obj: JourneyRun) -> int:
        return obj.version.number


class StatusIn(Schema):
    status: str


class EnrolIn(Schema):
    contact_id: int | None = None
    group_id: int | None = None
    key: str = Field("", max_length=150, description="idempotency key of this enrolment (default: one per contact/group)")


class EnrolOut(Schema):
    run: RunOut | None
    refused: str


class ExitIn(Schema):
    reason: str = Field("", max_length=200)


class PlaybookOut(Schema):
    name: str
    title: str
    description: str
    needs: list[str]
    params: dict[str, Any]
    journeys: list[str]


class InstantiateIn(Schema):
    date: str | None = Field(None, description="event time, local to time_zone: 2026-12-12T20:00")
    group_ids: list[int] = []
    group_set_id: int | None = None
    time_zone: str | None = None
    params: dict[str, Any] = {}


def _definition(request: HttpRequest) -> dict[str, Any] | str:
    body = request.body.decode("utf-8", errors="replace")
    if not body.strip():
        raise ValidationFailed("send the journey definition as the request body (JSON or YAML)", code="invalid_definition")
    if (request.content_type or "").endswith("json"):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"not valid JSON: {exc}", code="invalid_definition") from exc
        return data if isinstance(data, dict) else body
    return parse_text(body)


def _journey(request: HttpRequest, journey_id: int, perm: Perm = Perm.VIEW_JOURNEYS) -> Journey:
    require(me(request), perm)
    journey = queries.journeys(ws(request)).filter(pk=journey_id).first()
    if journey is None:
        raise NotFound("journey not found", code="journey_not_found")
    return journey


def _detail(journey: Journey) -> Journey:
    journey.steps = queries.step_counts(journey)  # type: ignore[attr-defined]
    journey.runs_by_state = queries.run_summary(journey)  # type: ignore[attr-defined]
    return journey


def _run(request: HttpRequest, run_id: int) -> JourneyRun:
    require(me(request), Perm.VIEW_JOURNEYS)
    run = queries.visible_runs(ws(request), me(request)).filter(pk=run_id).first()
    if run is None:
        raise NotFound("journey run not found", code="run_not_found")
    return run


@router.get("/journeys", response={200: list[JourneyOut], **ERRORS})
@paginate(Page)
def list_journeys(request: HttpRequest, status: str | None = None) -> Any:
    require(me(request), Perm.VIEW_JOURNEYS)
    qs = queries.journeys(ws(request))
    return qs.filter(status=status) if status else qs


@router.post("/journeys", response={201: JourneyDetailOut, **ERRORS}, openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": {"type": "object"}}, "application/yaml": {"schema": {"type": "string"}}}}})
def create_journey(request: HttpRequest) -> Any:
    journey = actions.do_save_journey(ws(request), me(request), _definition(request))
    return Status(201, _detail(_journey(request, journey.pk)))


@router.get("/journeys/{int:journey_id}", response={200: JourneyDetailOut, **ERRORS})
def get_journey(request: HttpRequest, journey_id: int) -> Any:
    return _detail(_journey(request, journey_id))


@router.put("/journeys/{int:journey_id}", response={200: JourneyDetailOut, **ERRORS})
def replace_journey(request: HttpRequest, journey_id: int) -> Any:
    journey = _journey(request, journey_id, Perm.MANAGE_JOURNEYS)
    actions.do_save_journey(ws(request), me(request), _definition(request), journey=journey)
    return _detail(_journey(request, journey_id))


@router.post("/journeys/{int:journey_id}/publish", response={200: JourneyDetailOut, **ERRORS})
def publish_journey(request: HttpRequest, journey_id: int) -> Any:
    actions.do_publish_journey(_journey(request, journey_id, Perm.MANAGE_JOURNEYS), me(request))
    return _detail(_journey(request, journey_id))


@router.post("/journeys/{int:journey_id}/status", response={200: JourneyDetailOut, **ERRORS})
def set_journey_status(request: HttpRequest, journey_id: int, payload: StatusIn) -> Any:
    actions.do_set_journey_status(_journey(request, journey_id, Perm.MANAGE_JOURNEYS), me(request), status=payload.status)
    return _detail(_journey(request, journey_id))


@router.get("/journeys/{int:journey_id}/runs", response={200: list[RunListOut], **ERRORS})
@paginate(Page)
def list_runs(request: HttpRequest, journey_id: int, state: str | None = None) -> Any:
    journey = _journey(request, journey_id)
    qs = queries.visible_runs(ws(request), me(request)).filter(journey=journey).order_by("-entered_at", "-id")
    if state:
        qs = qs.filter(state=state)
    return qs


@router.post("/journeys/{int:journey_id}/enrol", response={201: EnrolOut, 200: EnrolOut, **ERRORS})
def enrol(request: HttpRequest, journey_id: int, payload: EnrolIn) -> Any:
    journey = _journey(request, journey_id, Perm.MANAGE_JOURNEYS)
    if (payload.contact_id is None) == (payload.group_id is None):
        raise ValidationFailed("give either contact_id or group_id", code="invalid_enrolment")
    if payload.contact_id is not None:
        contact = get_visible_contact(ws(request), me(request), payload.contact_id)
        key = f"api:{payload.key}" if payload.key else f"api:contact:{contact.pk}:{journey.current_version_id}"
        run, why = actions.do_enrol_contact(journey, contact, trigger_key=key, actor=me(request))
    else:
        group = Group.objects.get_in_workspace(ws(request), pk=payload.group_id)
        key = f"api:{payload.key}" if payload.key else f"api:group:{group.pk}:{journey.current_version_id}"
        run, why = actions.do_enrol_group(journey, group, trigger_key=key, actor=me(request))
    if run is None:
        return Status(200, {"run": None, "refused": why})
    return Status(201, {"run": queries.describe_run(JourneyRun.objects.get(pk=run.pk)), "refused": ""})


@router.get("/journey-runs/{int:run_id}", response={200: RunOut, **ERRORS})
def get_run(request: HttpRequest, run_id: int) -> Any:
    return queries.describe_run(_run(request, run_id))


@router.post("/journey-runs/{int:run_id}/exit", response={200: RunOut, **ERRORS})
def exit_run(request: HttpRequest, run_id: int, payload: ExitIn) -> Any:
    run = actions.do_exit_run(_run(request, run_id), me(request), reason=payload.reason)
    return queries.describe_run(run)


@router.get("/contacts/{int:contact_id}/journeys", response={200: list[RunOut], **ERRORS})
def contact_journeys(request: HttpRequest, contact_id: int) -> Any:
    """Where this contact is in each journey, and why (the path with reasons)."""
    require(me(request), Perm.VIEW_JOURNEYS)
    contact = get_visible_contact(ws(request), me(request), contact_id)
    return queries.contact_journeys(ws(request), contact)


@router.get("/playbooks", response={200: list[PlaybookOut], **ERRORS})
def list_playbooks(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_JOURNEYS)
    return playbooks.list_playbooks()


@router.post("/playbooks/{name}/instantiate", response={201: dict[str, Any], **ERRORS})
def instantiate_playbook(request: HttpRequest, name: str, payload: InstantiateIn) -> Any:
    result = playbooks.do_instantiate_playbook(
        ws(request), me(request), name, event_at=payload.date, group_ids=payload.group_ids, group_set_id=payload.group_set_id,
        time_zone=payload.time_zone, params=payload.params,
    )
    return Status(201, result)
