"""Acquisition API: channels (with spend and the attribution report) and live codes
(staff / group slots, status, routing stats). Mounted by the lead under ``/api/v1/``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts.models import Staff, StaffChannelIdentity
from siyu.accounts.permissions import Perm, require
from siyu.acquisition import actions
from siyu.acquisition.models import AcquisitionChannel, LiveCode, LiveCodeGroup, LiveCodeStaff
from siyu.acquisition.queries import channel_report, live_code_stats
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group
from siyu.core.errors import ValidationFailed

router = Router(tags=["acquisition"])


class ChannelOut(Schema):
    id: int
    key: str
    name: str
    kind: str
    owner_id: int | None
    cost_model: str
    cost_per_add: Decimal
    tag_ids: list[int]
    group_ids: list[int]
    welcome_message: str
    is_active: bool
    created_at: dt.datetime

    @staticmethod
    def resolve_tag_ids(obj: AcquisitionChannel) -> list[int]:
        return sorted(t.pk for t in obj.tags.all())

    @staticmethod
    def resolve_group_ids(obj: AcquisitionChannel) -> list[int]:
        return sorted(g.pk for g in obj.groups.all())


class ChannelIn(Schema):
    key: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    kind: str = "other"
    owner_id: int | None = None
    cost_model: str = "none"
    cost_per_add: Decimal = Decimal("0")
    tag_ids: list[int] = []
    group_ids: list[int] = []
    welcome_message: str = ""


class ChannelPatch(Schema):
    name: str | None = None
    kind: str | None = None
    owner_id: int | None = None
    cost_model: str | None = None
    cost_per_add: Decimal | None = None
    tag_ids: list[int] | None = None
    group_ids: list[int] | None = None
    welcome_message: str | None = None
    is_active: bool | None = None


class SpendIn(Schema):
    starts_on: dt.date
    ends_on: dt.date
    amount: Decimal
    note: str = ""


class SpendOut(Schema):
    id: int
    starts_on: dt.date
    ends_on: dt.date
    amount: Decimal
    note: str


class ReportQuery(Schema):
    start: dt.date
    end: dt.date


def _channel(request: HttpRequest, channel_id: int) -> AcquisitionChannel:
    return AcquisitionChannel.objects.get_in_workspace(ws(request), pk=channel_id)  # type: ignore[no-any-return]


def _staff(request: HttpRequest, staff_id: int | None) -> Staff | None:
    return None if staff_id is None else Staff.objects.get_in_workspace(ws(request), pk=staff_id)  # type: ignore[no-any-return]


@router.get("/acquisition/channels", response={200: list[ChannelOut], **ERRORS})
def list_channels(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return AcquisitionChannel.objects.in_workspace(ws(request)).prefetch_related("tags", "groups").order_by("key")


@router.post("/acquisition/channels", response={201: ChannelOut, **ERRORS})
def create_channel(request: HttpRequest, payload: ChannelIn) -> Any:
    data = payload.dict()
    channel = actions.do_create_channel(
        ws(request), me(request), key=data.pop("key"), name=data.pop("name"), owner=data.pop("owner_id"),
        tags=data.pop("tag_ids"), groups=data.pop("group_ids"), **data,
    )
    return Status(201, channel)


@router.get("/acquisition/channels/{int:channel_id}", response={200: ChannelOut, **ERRORS})
def get_channel(request: HttpRequest, channel_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return _channel(request, channel_id)


@router.patch("/acquisition/channels/{int:channel_id}", response={200: ChannelOut, **ERRORS})
def update_channel(request: HttpRequest, channel_id: int, payload: ChannelPatch) -> Any:
    channel = _channel(request, channel_id)
    changes = payload.dict(exclude_unset=True)
    for api_name, field in (("owner_id", "owner"), ("tag_ids", "tags"), ("group_ids", "groups")):
        if api_name in changes:
            changes[field] = changes.pop(api_name)
    return actions.do_update_channel(channel, me(request), **changes)


@router.post("/acquisition/channels/{int:channel_id}/spend", response={201: SpendOut, **ERRORS})
def record_spend(request: HttpRequest, channel_id: int, payload: SpendIn) -> Any:
    spend = actions.do_record_spend(_channel(request, channel_id), me(request), **payload.dict())
    return Status(201, spend)


@router.get("/acquisition/channels/{int:channel_id}/report", response={200: dict[str, Any], **ERRORS})
def report(request: HttpRequest, channel_id: int, query: Query[ReportQuery]) -> Any:
    """Scans → adds → joined group → first order → revenue, cost, cost per add and ROI by day."""
    require(me(request), Perm.VIEW_ALL_CONTACTS)
    if query.end < query.start or (query.end - query.start).days > 366:
        raise ValidationFailed("report range: end ≥ start, at most 367 days", code="invalid_range")
    return channel_report(ws(request), _channel(request, channel_id), query.start, query.end).as_dict()


class LiveCodeOut(Schema):
    id: int
    code: str
    state: str
    name: str
    kind: str
    status: str
    channel_id: int
    channel_account_id: int | None
    backup_staff_id: int | None
    group_capacity: int
    window_size: int
    low_watermark: int
    auto_create_groups: bool
    expires_at: dt.datetime | None
    scan_count: int
    url: str
    join_qr_url: str
    sync_status: str
    sync_error: str

    @staticmethod
    def resolve_url(obj: LiveCode, context: Any) -> str:
        return str(context["request"].build_absolute_uri(f"/c/{obj.code}"))


class LiveCodeIn(Schema):
    channel_id: int
    name: str = Field(min_length=1, max_length=100)
    kind: str
    channel_account_id: int | None = None
    backup_staff_id: int | None = None
    group_capacity: int = 200
    window_size: int = 5
    low_watermark: int = 2
    auto_create_groups: bool = True
    expires_at: dt.datetime | None = None


class StatusIn(Schema):
    status: str
    expires_at: dt.datetime | None = None


class StaffSlotIn(Schema):
    staff_id: int
    weight: int = 1
    daily_cap: int = 0
    total_cap: int = 0
    schedule: dict[str, Any] = {}
    is_online: bool = True


class StaffSlotPatch(Schema):
    weight: int | None = None
    daily_cap: int | None = None
    total_cap: int | None = None
    schedule: dict[str, Any] | None = None
    is_online: bool | None = None


class GroupSlotIn(Schema):
    group_id: int
    capacity: int | None = None


def _code(request: HttpRequest, code_id: int) -> LiveCode:
    return LiveCode.objects.get_in_workspace(ws(request), pk=code_id)  # type: ignore[no-any-return]


@router.get("/acquisition/live-codes", response={200: list[LiveCodeOut], **ERRORS})
def list_live_codes(request: HttpRequest, channel_id: int | None = None) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    qs = LiveCode.objects.in_workspace(ws(request))
    return qs.filter(channel_id=channel_id) if channel_id else qs


@router.post("/acquisition/live-codes", response={201: LiveCodeOut, **ERRORS})
def create_live_code(request: HttpRequest, payload: LiveCodeIn) -> Any:
    data = payload.dict()
    account_id = data.pop("channel_account_id")
    account = ChannelAccount.objects.get_in_workspace(ws(request), pk=account_id) if account_id else None
    code = actions.do_create_live_code(
        ws(request), me(request), channel=_channel(request, data.pop("channel_id")), channel_account=account,
        backup_staff=_staff(request, data.pop("backup_staff_id")), **data,
    )
    return Status(201, code)


@router.get("/acquisition/live-codes/{int:code_id}", response={200: LiveCodeOut, **ERRORS})
def get_live_code(request: HttpRequest, code_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return _code(request, code_id)


@router.get("/acquisition/live-codes/{int:code_id}/stats", response={200: dict[str, Any], **ERRORS})
def get_live_code_stats(request: HttpRequest, code_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return live_code_stats(_code(request, code_id))


@router.post("/acquisition/live-codes/{int:code_id}/status", response={200: LiveCodeOut, **ERRORS})
def set_status(request: HttpRequest, code_id: int, payload: StatusIn) -> Any:
    return actions.do_set_live_code_status(_code(request, code_id), me(request), status=payload.status, expires_at=payload.expires_at)


@router.post("/acquisition/live-codes/{int:code_id}/staff", response={201: dict[str, Any], **ERRORS})
def add_staff(request: HttpRequest, code_id: int, payload: StaffSlotIn) -> Any:
    data = payload.dict()
    staff = Staff.objects.get_in_workspace(ws(request), pk=data.pop("staff_id"))
    slot = actions.do_add_code_staff(_code(request, code_id), me(request), staff=staff, **data)
    return Status(201, {"id": slot.pk, "staff_id": slot.staff_id, "weight": slot.weight, "daily_cap": slot.daily_cap,
                        "total_cap": slot.total_cap, "is_online": slot.is_online, "schedule": slot.schedule})


@router.patch("/acquisition/live-codes/{int:code_id}/staff/{int:slot_id}", response={200: dict[str, Any], **ERRORS})
def update_staff(request: HttpRequest, code_id: int, slot_id: int, payload: StaffSlotPatch) -> Any:
    slot = LiveCodeStaff.objects.get_in_workspace(ws(request), pk=slot_id, live_code=_code(request, code_id))
    slot = actions.do_update_code_staff(slot, me(request), **payload.dict(exclude_unset=True))
    return {"id": slot.pk, "staff_id": slot.staff_id, "weight": slot.weight, "daily_cap": slot.daily_cap,
            "total_cap": slot.total_cap, "is_online": slot.is_online, "schedule": slot.schedule}


@router.post("/acquisition/live-codes/{int:code_id}/groups", response={201: dict[str, Any], **ERRORS})
def add_group(request: HttpRequest, code_id: int, payload: GroupSlotIn) -> Any:
    group = Group.objects.get_in_workspace(ws(request), pk=payload.group_id)
    slot = actions.do_add_code_group(_code(request, code_id), me(request), group=group, capacity=payload.capacity)
    return Status(201, {"id": slot.pk, "group_id": slot.group_id, "capacity": slot.capacity, "seats_taken": slot.seats_taken})


class LiveCodePatch(Schema):
    name: str | None = None
    group_capacity: int | None = None
    window_size: int | None = None
    low_watermark: int | None = None
    auto_create_groups: bool | None = None
    expires_at: dt.datetime | None = None
    backup_staff_id: int | None = None


@router.patch("/acquisition/live-codes/{int:code_id}", response={200: LiveCodeOut, **ERRORS})
def update_live_code(request: HttpRequest, code_id: int, payload: LiveCodePatch) -> Any:
    changes = payload.dict(exclude_unset=True)
    if "backup_staff_id" in changes:
        changes["backup_staff"] = _staff(request, changes.pop("backup_staff_id"))
    return actions.do_update_live_code(_code(request, code_id), me(request), **changes)


def _slot_out(slot: LiveCodeStaff) -> dict[str, Any]:
    return {"id": slot.pk, "staff_id": slot.staff_id, "config_id": slot.config_id, "qr_url": slot.qr_url,
            "sync_status": slot.sync_status, "sync_error": slot.sync_error}


@router.get("/acquisition/live-codes/{int:code_id}/staff", response={200: list[dict[str, Any]], **ERRORS})
def list_staff_slots(request: HttpRequest, code_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return [_slot_out(slot) for slot in LiveCodeStaff.objects.filter(live_code=_code(request, code_id))]


@router.delete("/acquisition/live-codes/{int:code_id}/staff/{int:slot_id}", response={204: None, **ERRORS})
def remove_staff(request: HttpRequest, code_id: int, slot_id: int) -> Any:
    slot = LiveCodeStaff.objects.get_in_workspace(ws(request), pk=slot_id, live_code=_code(request, code_id))
    actions.do_remove_code_staff(slot, me(request))
    return Status(204, None)


class GroupSlotPatch(Schema):
    capacity: int


def _group_slot(request: HttpRequest, code_id: int, slot_id: int) -> LiveCodeGroup:
    return LiveCodeGroup.objects.get_in_workspace(ws(request), pk=slot_id, live_code=_code(request, code_id))  # type: ignore[no-any-return]


@router.patch("/acquisition/live-codes/{int:code_id}/groups/{int:slot_id}", response={200: dict[str, Any], **ERRORS})
def update_group(request: HttpRequest, code_id: int, slot_id: int, payload: GroupSlotPatch) -> Any:
    slot = actions.do_update_code_group(_group_slot(request, code_id, slot_id), me(request), capacity=payload.capacity)
    return {"id": slot.pk, "group_id": slot.group_id, "capacity": slot.capacity, "seats_taken": slot.seats_taken,
            "open": slot.filled_at is None}


@router.delete("/acquisition/live-codes/{int:code_id}/groups/{int:slot_id}", response={204: None, **ERRORS})
def remove_group(request: HttpRequest, code_id: int, slot_id: int) -> Any:
    actions.do_remove_code_group(_group_slot(request, code_id, slot_id), me(request))
    return Status(204, None)


class IdentityIn(Schema):
    account_id: int
    userid: str = Field(max_length=64)


class IdentityOut(Schema):
    account_id: int
    userid: str


@router.get("/acquisition/staff/{int:staff_id}/channel-identities", response={200: list[IdentityOut], **ERRORS})
def list_identities(request: HttpRequest, staff_id: int) -> Any:
    require(me(request), Perm.MANAGE_STAFF)
    staff = Staff.objects.get_in_workspace(ws(request), pk=staff_id)
    return [{"account_id": i.account_id, "userid": i.external_id}
            for i in StaffChannelIdentity.objects.in_workspace(ws(request)).filter(staff=staff)]


@router.put("/acquisition/staff/{int:staff_id}/channel-identities", response={200: list[IdentityOut], **ERRORS})
def set_identity(request: HttpRequest, staff_id: int, payload: IdentityIn) -> Any:
    """Map the staff member to their user id on one account (an empty userid removes it)."""
    staff = Staff.objects.get_in_workspace(ws(request), pk=staff_id)
    account = ChannelAccount.objects.get_in_workspace(ws(request), pk=payload.account_id)
    actions.do_map_staff_identity(account, staff, me(request), userid=payload.userid)
    return list_identities(request, staff_id)
