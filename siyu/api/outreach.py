"""Outreach API: the material library (素材库), the quota ledger (发送配额) with "why
didn't this person get the message?", broadcasts (群发) with preview/send/stats, group
sets and columns (栏目)."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.communities.models import Group
from siyu.contacts.queries import get_visible_contact
from siyu.core.errors import ValidationFailed
from siyu.outreach import actions, queries, quota
from siyu.outreach.models import Broadcast, Column, GroupSet, Material
from siyu.outreach.planning import broadcast_stats, preview_broadcast

router = Router(tags=["outreach"])


# ---------------------------------------------------------------- materials


class MaterialOut(Schema):
    id: int
    name: str
    kind: str
    text: str
    data: dict[str, Any]
    folder: str
    tags: list[str]
    variables: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None


class MaterialIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    kind: str = "text"
    text: str = Field("", max_length=4000)
    data: dict[str, Any] = {}
    folder: str = Field("", max_length=100)
    tags: list[str] = []


class MaterialPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    text: str | None = Field(None, max_length=4000)
    data: dict[str, Any] | None = None
    folder: str | None = Field(None, max_length=100)
    tags: list[str] | None = None


def _material(request: HttpRequest, material_id: int) -> Material:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    return Material.objects.get_in_workspace(ws(request), pk=material_id)


@router.get("/materials", response={200: list[MaterialOut], **ERRORS})
@paginate(Page)
def list_materials(request: HttpRequest, folder: str | None = None, kind: str | None = None, q: str | None = None, archived: bool = False) -> Any:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    return queries.materials(ws(request), folder=folder, kind=kind, q=q, archived=archived)


@router.post("/materials", response={201: MaterialOut, **ERRORS})
def create_material(request: HttpRequest, payload: MaterialIn) -> Any:
    data = payload.dict()
    material = actions.do_create_material(ws(request), me(request), **data)
    return Status(201, material)


@router.post("/materials/upload", response={201: MaterialOut, **ERRORS})
def upload_image(request: HttpRequest, name: Form[str], file: File[UploadedFile], folder: Form[str] = "", text: Form[str] = "") -> Any:
    """An image material from an uploaded JPEG/PNG/GIF (multipart form: name, file)."""
    material = actions.do_upload_material_image(ws(request), me(request), name=name, data=file.read(), folder=folder, text=text)
    return Status(201, material)


@router.get("/materials/{int:material_id}", response={200: MaterialOut, **ERRORS})
def get_material(request: HttpRequest, material_id: int) -> Any:
    return _material(request, material_id)


@router.patch("/materials/{int:material_id}", response={200: MaterialOut, **ERRORS})
def update_material(request: HttpRequest, material_id: int, payload: MaterialPatch) -> Any:
    changes = {k: v for k, v in payload.dict().items() if v is not None}
    return actions.do_update_material(_material(request, material_id), me(request), **changes)


@router.delete("/materials/{int:material_id}", response={204: None, **ERRORS})
def archive_material(request: HttpRequest, material_id: int) -> Any:
    actions.do_archive_material(_material(request, material_id), me(request))
    return Status(204, None)


# ---------------------------------------------------------------- quota ledger


class PolicyIn(Schema):
    contact_marketing_cap: int | None = Field(None, ge=0, le=1000)
    contact_window_days: int | None = Field(None, ge=1, le=366)
    group_marketing_cap: int | None = Field(None, ge=0, le=1000)
    group_window_days: int | None = Field(None, ge=1, le=366)
    reminder_cap: int | None = Field(None, ge=0, le=1000)
    reminder_window_hours: int | None = Field(None, ge=1, le=24 * 31)
    quiet_start: str | None = None
    quiet_end: str | None = None
    consent_mode: str | None = None
    default_expiry_hours: int | None = Field(None, ge=1, le=24 * 62)


class CheckIn(Schema):
    contact_id: int | None = None
    group_id: int | None = None
    message_class: str = "marketing"
    at: dt.datetime | None = None


@router.get("/quota/rules", response={200: dict[str, Any], **ERRORS})
def get_quota_rules(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    return queries.quota_rules(ws(request))


@router.put("/quota/rules", response={200: dict[str, Any], **ERRORS})
def set_quota_rules(request: HttpRequest, payload: PolicyIn) -> Any:
    actions.do_set_quota_policy(ws(request), me(request), **{k: v for k, v in payload.dict().items() if v is not None})
    return queries.quota_rules(ws(request))


@router.get("/quota/contacts/{int:contact_id}", response={200: dict[str, Any], **ERRORS})
def contact_quota(request: HttpRequest, contact_id: int) -> Any:
    """Why didn't this person get the message? The ledger's answer for each class now,
    and every delivery to the contact with the decisions taken."""
    contact = get_visible_contact(ws(request), me(request), contact_id)
    return queries.contact_ledger(ws(request), contact)


@router.post("/quota/check", response={200: dict[str, Any], **ERRORS})
def quota_check(request: HttpRequest, payload: CheckIn) -> Any:
    workspace = ws(request)
    at = payload.at or timezone.now()
    if payload.contact_id is not None and payload.group_id is None:
        contact = get_visible_contact(workspace, me(request), payload.contact_id)
        return quota.check(workspace, contact=contact, message_class=payload.message_class, at=at).as_dict()
    if payload.group_id is not None and payload.contact_id is None:
        require(me(request), Perm.VIEW_GROUPS)
        group = Group.objects.select_related("channel_account").get_in_workspace(workspace, pk=payload.group_id)
        return quota.check(workspace, group=group, message_class=payload.message_class, at=at).as_dict()
    raise ValidationFailed("give contact_id or group_id", code="invalid_target")


# ---------------------------------------------------------------- group sets


class GroupSetOut(Schema):
    id: int
    name: str
    group_ids: list[int]

    @staticmethod
    def resolve_group_ids(obj: GroupSet) -> list[int]:
        return sorted(g.pk for g in obj.groups.all())


class GroupSetIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    group_ids: list[int]


@router.get("/group-sets", response={200: list[GroupSetOut], **ERRORS})
def list_group_sets(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return list(GroupSet.objects.in_workspace(ws(request)).prefetch_related("groups"))


@router.post("/group-sets", response={201: GroupSetOut, **ERRORS})
def create_group_set(request: HttpRequest, payload: GroupSetIn) -> Any:
    return Status(201, actions.do_create_group_set(ws(request), me(request), name=payload.name, group_ids=payload.group_ids))


# ---------------------------------------------------------------- broadcasts


class VariantOut(Schema):
    label: str
    material_id: int | None
    content: dict[str, Any]
    weight: int


class BroadcastOut(Schema):
    id: int
    name: str
    status: str
    audience: dict[str, Any]
    message_class: str
    schedule_mode: str
    scheduled_at: dt.datetime | None
    expires_after_hours: int
    auto_winner: bool
    test_fraction: float
    winner_wait_hours: int
    winner: str | None
    plan_summary: dict[str, Any]
    planned_at: dt.datetime | None
    created_at: dt.datetime
    variants: list[VariantOut]

    @staticmethod
    def resolve_winner(obj: Broadcast) -> str | None:
        return obj.winner.label if obj.winner_id and obj.winner else None

    @staticmethod
    def resolve_variants(obj: Broadcast) -> list[Any]:
        return list(obj.variants.order_by("label"))


class VariantIn(Schema):
    label: str | None = None
    material_id: int | None = None
    content: dict[str, Any] | None = None
    weight: int = Field(1, ge=1, le=100)


class BroadcastIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    audience: dict[str, Any]
    variants: list[VariantIn] = Field(min_length=1, max_length=5)
    schedule: dict[str, Any] = {"mode": "now"}
    message_class: str = "marketing"
    auto_winner: bool = False
    test_fraction: float = Field(0.2, gt=0, lt=1)
    winner_wait_hours: int = Field(24, ge=1, le=24 * 14)
    expires_after_hours: int | None = Field(None, ge=1, le=24 * 31)


def _broadcast(request: HttpRequest, broadcast_id: int) -> Broadcast:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    return Broadcast.objects.select_related("winner").get_in_workspace(ws(request), pk=broadcast_id)


@router.get("/broadcasts", response={200: list[BroadcastOut], **ERRORS})
@paginate(Page)
def list_broadcasts(request: HttpRequest, status: str | None = None) -> Any:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    qs = queries.broadcasts(ws(request)).select_related("winner")
    return qs.filter(status=status) if status else qs


@router.post("/broadcasts", response={201: BroadcastOut, **ERRORS})
def create_broadcast(request: HttpRequest, payload: BroadcastIn) -> Any:
    data = payload.dict()
    variants = [{k: v for k, v in variant.items() if v is not None} for variant in data.pop("variants")]
    broadcast = actions.do_create_broadcast(ws(request), actor=me(request), variants=variants, **data)
    return Status(201, broadcast)


@router.get("/broadcasts/{int:broadcast_id}", response={200: BroadcastOut, **ERRORS})
def get_broadcast(request: HttpRequest, broadcast_id: int) -> Any:
    return _broadcast(request, broadcast_id)


@router.post("/broadcasts/{int:broadcast_id}/preview", response={200: dict[str, Any], **ERRORS})
def preview(request: HttpRequest, broadcast_id: int) -> Any:
    """What sending would do now (reach, consent exclusions, deferred/skipped by rule,
    variants, WeCom tasks per staff member) — nothing is written."""
    return preview_broadcast(_broadcast(request, broadcast_id)).as_dict()


@router.post("/broadcasts/{int:broadcast_id}/send", response={200: dict[str, Any], **ERRORS})
def send(request: HttpRequest, broadcast_id: int) -> Any:
    from dataclasses import asdict

    return asdict(actions.do_send_broadcast(_broadcast(request, broadcast_id), me(request)))


@router.post("/broadcasts/{int:broadcast_id}/cancel", response={200: BroadcastOut, **ERRORS})
def cancel(request: HttpRequest, broadcast_id: int) -> Any:
    return actions.do_cancel_broadcast(_broadcast(request, broadcast_id), me(request))


@router.get("/broadcasts/{int:broadcast_id}/stats", response={200: list[dict[str, Any]], **ERRORS})
def stats(request: HttpRequest, broadcast_id: int) -> Any:
    return broadcast_stats(_broadcast(request, broadcast_id))


# ---------------------------------------------------------------- columns


class ColumnOut(Schema):
    id: int
    name: str
    group_ids: list[int]
    group_set_id: int | None
    weekdays: list[int]
    time_of_day: dt.time
    time_zone: str
    quiet_start: dt.time | None
    quiet_end: dt.time | None
    materials: list[int]
    message_class: str
    starts_on: dt.date
    ends_on: dt.date | None
    is_active: bool
    last_run_at: dt.datetime | None

    @staticmethod
    def resolve_group_ids(obj: Column) -> list[int]:
        return sorted(g.pk for g in obj.groups.all())


class ColumnIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    time_of_day: str
    material_ids: list[int] = Field(min_length=1)
    group_ids: list[int] = []
    group_set_id: int | None = None
    weekdays: list[int] = []
    time_zone: str = ""
    quiet_start: str | None = None
    quiet_end: str | None = None
    message_class: str = "marketing"
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None


class ColumnPatch(Schema):
    is_active: bool


@router.get("/columns", response={200: list[ColumnOut], **ERRORS})
def list_columns(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return list(queries.columns(ws(request)))


@router.post("/columns", response={201: ColumnOut, **ERRORS})
def create_column(request: HttpRequest, payload: ColumnIn) -> Any:
    return Status(201, actions.do_create_column(ws(request), me(request), **payload.dict()))


@router.patch("/columns/{int:column_id}", response={200: ColumnOut, **ERRORS})
def update_column(request: HttpRequest, column_id: int, payload: ColumnPatch) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    column = Column.objects.get_in_workspace(ws(request), pk=column_id)
    return actions.do_set_column_active(column, me(request), is_active=payload.is_active)


class DeliveryOut(Schema):
    id: int
    idempotency_key: str
    contact_id: int | None
    group_id: int | None
    channel_account_id: int | None
    platform: str
    message_class: str
    source: str
    status: str
    rule: str
    reason: str
    requested_at: dt.datetime
    planned_for: dt.datetime | None
    slot_at: dt.datetime | None
    sent_at: dt.datetime | None
    expires_at: dt.datetime | None
    broadcast_id: int | None
    column_id: int | None
    staff_task_id: int | None
    content: dict[str, Any]
    decisions: list[dict[str, Any]]


@router.get("/deliveries", response={200: list[DeliveryOut], **ERRORS})
@paginate(Page)
def list_deliveries(request: HttpRequest, status: str | None = None, source: str | None = None, broadcast_id: int | None = None) -> Any:
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    from siyu.outreach.models import Delivery

    qs = Delivery.objects.in_workspace(ws(request)).order_by("-requested_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if source:
        qs = qs.filter(source=source)
    if broadcast_id is not None:
        qs = qs.filter(broadcast_id=broadcast_id)
    return qs
