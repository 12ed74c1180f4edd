"""Groups (社群) API: groups with positioning, and their members."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.communities import actions
from siyu.communities.models import Group, GroupMessage, HealthState, Membership
from siyu.communities.queries import find_groups, group_messages, may_read_messages
from siyu.contacts.queries import get_visible_contact
from siyu.core.errors import Forbidden, NotFound, ValidationFailed
from siyu.core.phones import mask_digit_runs

router = Router(tags=["groups"])


class GroupOut(Schema):
    id: int
    name: str
    channel_account_id: int | None
    external_id: str
    group_type: str
    horizon: str
    ends_on: dt.date | None
    dismiss_at_end: bool
    end_farewell: str
    vision: str
    rights: str
    threshold: str
    threshold_detail: str
    rules_text: str
    welcome_message: str
    capacity: int
    owner_id: int | None
    admin_ids: list[int]
    member_count: int
    created_at: dt.datetime
    archived_at: dt.datetime | None
    dismissed_at: dt.datetime | None
    health_state: str | None = Field(None, description="the latest daily health snapshot's state (thriving, steady, fading, silent)")

    @staticmethod
    def resolve_admin_ids(obj: Group) -> list[int]:
        return sorted(s.pk for s in obj.admins.all())


class GroupIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    group_type: str = "traffic"
    horizon: str = "long_term"
    ends_on: dt.date | None = None
    dismiss_at_end: bool = False
    end_farewell: str = Field("", max_length=500)
    vision: str = Field("", max_length=200)
    rights: str = Field("", max_length=2000)
    threshold: str = "none"
    threshold_detail: str = Field("", max_length=200)
    rules_text: str = Field("", max_length=5000)
    welcome_message: str = Field("", max_length=2000)
    capacity: int = 200
    owner_id: int | None = None
    channel_account_id: int | None = None
    external_id: str = Field("", max_length=200)


class GroupPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    group_type: str | None = None
    horizon: str | None = None
    ends_on: dt.date | None = None
    dismiss_at_end: bool | None = None
    end_farewell: str | None = Field(None, max_length=500)
    vision: str | None = Field(None, max_length=200)
    rights: str | None = Field(None, max_length=2000)
    threshold: str | None = None
    threshold_detail: str | None = Field(None, max_length=200)
    rules_text: str | None = Field(None, max_length=5000)
    welcome_message: str | None = Field(None, max_length=2000)
    capacity: int | None = None
    owner_id: int | None = None
    admin_ids: list[int] | None = None


def _group(request: HttpRequest, group_id: int) -> Group:
    require(me(request), Perm.VIEW_GROUPS)
    group = find_groups(ws(request), archived=True).prefetch_related("admins").filter(pk=group_id).first()
    if group is None:
        raise NotFound("group not found")
    return group


@router.get("/groups", response={200: list[GroupOut], **ERRORS})
@paginate(Page)
def list_groups(request: HttpRequest, group_type: str | None = None, horizon: str | None = None, archived: bool = False,
                q: str = Query("", max_length=100), health: str | None = None) -> Any:
    """Newest first: the open groups (``archived=true``: the archived ones), by type,
    horizon, health state (``thriving|steady|fading|silent``, the latest daily snapshot) and
    name (``q``: contained)."""
    require(me(request), Perm.VIEW_GROUPS)
    if health and health not in HealthState.values:
        raise ValidationFailed(f"unknown health state {health!r}; expected {', '.join(HealthState.values)}", code="invalid_health")
    qs = find_groups(ws(request), q=q.strip(), group_type=group_type or "", horizon=horizon or "", health=health or "", archived=True)
    return qs.prefetch_related("admins").filter(archived_at__isnull=not archived)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    if "owner_id" in data:
        data["owner"] = data.pop("owner_id")
    if "channel_account_id" in data:
        data["channel_account"] = data.pop("channel_account_id")
    if "admin_ids" in data:
        data["admins"] = data.pop("admin_ids")
    return data


@router.post("/groups", response={201: GroupOut, **ERRORS})
def create_group(request: HttpRequest, payload: GroupIn) -> Any:
    data = _fields(payload.dict())
    group = actions.do_create_group(ws(request), me(request), name=data.pop("name"), **data)
    return Status(201, _group(request, group.pk))


@router.get("/groups/{int:group_id}", response={200: GroupOut, **ERRORS})
def get_group(request: HttpRequest, group_id: int) -> Any:
    return _group(request, group_id)


@router.patch("/groups/{int:group_id}", response={200: GroupOut, **ERRORS})
def update_group(request: HttpRequest, group_id: int, payload: GroupPatch) -> Any:
    actions.do_update_group(_group(request, group_id), me(request), **_fields(payload.dict(exclude_unset=True)))
    return _group(request, group_id)


@router.post("/groups/{int:group_id}/archive", response={200: GroupOut, **ERRORS})
def archive_group(request: HttpRequest, group_id: int) -> Any:
    actions.do_archive_group(_group(request, group_id), me(request))
    return _group(request, group_id)


class DismissIn(Schema):
    farewell: str = Field("", max_length=500)
    reason: str = Field("", max_length=200)


class DismissOut(Schema):
    group: GroupOut
    #: what was queued: ``{"outbox": id}`` (the channel dismisses) or ``{"staff_task": id}`` (the owner does); empty on a repeat
    queued: list[dict[str, int]]


@router.post("/groups/{int:group_id}/dismiss", response={200: DismissOut, **ERRORS})
def dismiss_group(request: HttpRequest, group_id: int, payload: DismissIn) -> Any:
    """Dismiss the group on its channel (解散群: farewell, everyone out) and archive it."""
    queued = actions.do_dismiss_group(_group(request, group_id), me(request), farewell_text=payload.farewell, reason=payload.reason)
    return {"group": _group(request, group_id), "queued": queued}


class MemberOut(Schema):
    id: int
    contact_id: int
    contact_name: str
    role: str
    role_assigned: bool
    role_reason: str = Field("", description="why the inferred role (empty for hand-set roles)")
    role_candidate: str = Field("", description="a role the member is becoming; it replaces the current one once it holds")
    role_candidate_streak: int = Field(0, description="daily evaluations the candidate has held so far")
    join_source: str
    joined_at: dt.datetime
    left_at: dt.datetime | None

    @staticmethod
    def resolve_contact_name(obj: Membership) -> str:
        return obj.contact.name


class MemberIn(Schema):
    contact_id: int
    join_source: str = Field("", max_length=64)
    role: str | None = None


class MemberPatch(Schema):
    role: str


class MemberFilters(Schema):
    include_left: bool = False
    role: str | None = None


@router.get("/groups/{int:group_id}/members", response={200: list[MemberOut], **ERRORS})
@paginate(Page)
def list_members(request: HttpRequest, group_id: int, filters: Query[MemberFilters]) -> Any:
    group = _group(request, group_id)
    qs = Membership.objects.in_workspace(ws(request)).filter(group=group).select_related("contact")
    if not filters.include_left:
        qs = qs.filter(left_at__isnull=True)
    if filters.role:
        qs = qs.filter(role=filters.role)
    return qs.order_by("joined_at", "id")


def _open_membership(request: HttpRequest, group: Group, contact_id: int) -> Membership:
    membership = (
        Membership.objects.in_workspace(ws(request))
        .select_related("contact", "group")
        .filter(group=group, contact_id=contact_id, left_at__isnull=True)
        .first()
    )
    if membership is None:
        raise NotFound("no such member in this group", code="member_not_found")
    return membership


@router.post("/groups/{int:group_id}/members", response={201: MemberOut, 200: MemberOut, **ERRORS})
def add_member(request: HttpRequest, group_id: int, payload: MemberIn) -> Any:
    group = _group(request, group_id)
    contact = get_visible_contact(ws(request), me(request), payload.contact_id)
    membership, created = actions.do_add_member(group, contact, me(request), join_source=payload.join_source, role=payload.role)
    return Status(201 if created else 200, membership)


@router.patch("/groups/{int:group_id}/members/{int:contact_id}", response={200: MemberOut, **ERRORS})
def set_member_role(request: HttpRequest, group_id: int, contact_id: int, payload: MemberPatch) -> Any:
    membership = _open_membership(request, _group(request, group_id), contact_id)
    return actions.do_set_member_role(membership, me(request), role=payload.role)


@router.delete("/groups/{int:group_id}/members/{int:contact_id}", response={200: MemberOut, **ERRORS})
def remove_member(request: HttpRequest, group_id: int, contact_id: int, reason: str = "") -> Any:
    membership = _open_membership(request, _group(request, group_id), contact_id)
    return actions.do_remove_member(membership, me(request), reason=reason[:300])


class RemoveIn(Schema):
    reason: str = Field("", max_length=200)


class RemoveOut(Schema):
    member: MemberOut
    #: ``{"outbox": id}`` (the channel removes them) or ``{"staff_task": id}`` (the owner does); empty when nothing goes to a channel
    queued: list[dict[str, int]]


@router.post("/groups/{int:group_id}/members/{int:contact_id}/remove", response={200: RemoveOut, **ERRORS})
def remove_member_on_channel(request: HttpRequest, group_id: int, contact_id: int, payload: RemoveIn) -> Any:
    """Remove a member from the group on its channel too (移出群聊), not only in siyu
    (``DELETE`` on the member closes the membership here alone)."""
    membership = _open_membership(request, _group(request, group_id), contact_id)
    queued = actions.do_remove_member_on_channel(membership, me(request), reason=payload.reason)
    return {"member": membership, "queued": queued}


class MessageOut(Schema):
    id: int
    external_id: str
    sender_id: int | None
    sender_name: str
    msgtype: str
    text: str = Field(description="phone-number-like digit runs are masked unless the role may see personal data")
    reply_to: str = ""
    sent_at: dt.datetime
    deleted_at: dt.datetime | None
    verdict: str | None = Field(None, description="the moderation verdict on the message, if any")
    case_id: int | None = None

    @staticmethod
    def resolve_sender_name(obj: GroupMessage) -> str:
        return obj.sender.name if obj.sender else ""

    @staticmethod
    def resolve_text(obj: GroupMessage, context: dict[str, Any]) -> str:
        return obj.text if has_perm(me(context["request"]), Perm.VIEW_PII) else mask_digit_runs(obj.text)

    @staticmethod
    def resolve_reply_to(obj: GroupMessage) -> str:
        return str(obj.data.get("reply_to", ""))


class MessageFilters(Schema):
    q: str = Field("", max_length=100, description="text contained in the message")
    contact_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@router.get("/groups/{int:group_id}/messages", response={200: list[MessageOut], **ERRORS})
@paginate(Page)
def list_messages(request: HttpRequest, group_id: int, filters: Query[MessageFilters]) -> Any:
    """The group's messages (群聊记录), newest first. Staff who see every contact may read
    any group's; an agent only those of groups they own or administer."""
    group = _group(request, group_id)
    if not may_read_messages(group, me(request)):
        raise Forbidden("only the group's owner or admins, or staff who see every contact, may read its messages", code="permission_denied")
    return group_messages(group, q=filters.q.strip(), sender_id=filters.contact_id, since=filters.since, until=filters.until)
