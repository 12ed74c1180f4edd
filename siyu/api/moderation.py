"""Moderation API: the cases (处理记录) the group bot's policy produced, with the rule
that fired and what was done about it."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.channels.models import ChannelAccount
from siyu.contacts.queries import get_visible_contact, get_visible_contacts, visible_contacts
from siyu.core.phones import mask_digit_runs
from siyu.moderation import actions
from siyu.moderation.models import BlacklistEntry, ModerationCase
from siyu.moderation.queries import find_blacklist, get_visible_entries, visible_blacklist

router = Router(tags=["moderation"])

class CaseOut(Schema):
    id: int
    group_id: int
    contact_id: int | None
    message_id: int | None
    verdict: str
    reasons: list[dict[str, Any]]
    text: str
    applied: list[dict[str, Any]]
    created_at: dt.datetime
    undone_at: dt.datetime | None

    @staticmethod
    def resolve_text(obj: ModerationCase, context: dict[str, Any]) -> str:
        if has_perm(me(context["request"]), Perm.VIEW_PII):
            return obj.text
        return mask_digit_runs(obj.text)


class CaseFilters(Schema):
    group_id: int | None = None
    contact_id: int | None = None
    verdict: str | None = None


@router.get("/moderation/cases", response={200: list[CaseOut], **ERRORS})
@paginate(Page)
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> Any:
    """Newest first. An agent sees only the cases about their own contacts; phone numbers
    in the message text are masked unless the role may see personal data."""
    staff = me(request)
    require(staff, Perm.VIEW_GROUPS)
    qs = ModerationCase.objects.in_workspace(ws(request))
    if not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(ws(request), staff))
    if filters.group_id is not None:
        qs = qs.filter(group_id=filters.group_id)
    if filters.contact_id is not None:
        qs = qs.filter(contact_id=filters.contact_id)
    if filters.verdict:
        qs = qs.filter(verdict=filters.verdict)
    return qs.order_by("-created_at", "-id")


class BlacklistOut(Schema):
    id: int
    contact_id: int
    contact_name: str
    reason: str
    case_id: int | None = Field(None, description="the moderation case that blacklisted them (empty: by hand)")
    created_at: dt.datetime
    lifted_at: dt.datetime | None

    @staticmethod
    def resolve_contact_name(obj: BlacklistEntry) -> str:
        return obj.contact.name


class BlacklistFilters(Schema):
    include_lifted: bool = False
    contact_id: int | None = None
    q: str = Field("", max_length=100, description="name, city, phone, external reference, a channel id they used, or part of the reason")


class BlacklistIn(Schema):
    contact_id: int
    reason: str = Field("", max_length=300)


class LiftIn(Schema):
    note: str = Field("", max_length=200)


class BulkBlacklistIn(Schema):
    contact_ids: list[int] = Field(..., min_length=1, max_length=actions.MAX_BULK_BLACKLIST)
    reason: str = Field("", max_length=300)


class ChannelPerson(Schema):
    external_id: str = Field(..., min_length=1, max_length=200, description="the id they use on the account's channel")
    name: str = Field("", max_length=100)


class BlacklistByIdIn(Schema):
    account_id: int = Field(..., description="the channel account the ids belong to")
    people: list[ChannelPerson] = Field(..., min_length=1, max_length=actions.MAX_BULK_BLACKLIST)
    reason: str = Field("", max_length=300)


class BulkBlacklistOut(Schema):
    created: list[BlacklistOut] = Field(description="entries made now")
    existing: list[BlacklistOut] = Field(description="the standing entries of contacts already blacklisted")


class BulkLiftIn(Schema):
    entry_ids: list[int] = Field(..., min_length=1, max_length=actions.MAX_BULK_BLACKLIST)
    note: str = Field("", max_length=200)


class BulkLiftOut(Schema):
    lifted: list[BlacklistOut] = Field(description="the entries that were standing and are lifted now")


def _visible_entries(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return visible_blacklist(ws(request), me(request)).select_related("contact")


@router.get("/moderation/blacklist", response={200: list[BlacklistOut], **ERRORS})
@paginate(Page)
def list_blacklist(request: HttpRequest, filters: Query[BlacklistFilters]) -> Any:
    """The blacklist (黑名单), newest first: standing entries (``include_lifted`` for the
    lifted ones too); ``q`` finds a contact by name, city, phone, external reference or a
    channel id they used, or an entry by part of its reason. An agent sees only their own
    contacts' entries."""
    require(me(request), Perm.VIEW_GROUPS)
    return find_blacklist(ws(request), me(request), q=filters.q, state="all" if filters.include_lifted else "standing",
                          contact_id=filters.contact_id).select_related("contact")


@router.post("/moderation/blacklist", response={201: BlacklistOut, 200: BlacklistOut, **ERRORS})
def blacklist_contact(request: HttpRequest, payload: BlacklistIn) -> Any:
    """Blacklist a contact by hand (拉黑): out of every group now and whenever they join
    one. 201 for a new entry, 200 when the contact was already blacklisted."""
    contact = get_visible_contact(ws(request), me(request), payload.contact_id)
    before = BlacklistEntry.objects.filter(contact=contact, lifted_at__isnull=True).values_list("pk", flat=True).first()
    entry = actions.do_blacklist_contact(contact, me(request), reason=payload.reason)
    return Status(200 if entry.pk == before else 201, entry)


@router.post("/moderation/blacklist/bulk", response={200: BulkBlacklistOut, **ERRORS})
def blacklist_contacts(request: HttpRequest, payload: BulkBlacklistIn) -> Any:
    """Blacklist up to 500 contacts at once (批量拉黑), each as ``POST /moderation/blacklist``
    does; all or none — an id this caller cannot see is a 404 naming it, and nothing changes."""
    contacts = get_visible_contacts(ws(request), me(request), payload.contact_ids)
    created, existing = actions.do_blacklist_contacts(contacts, me(request), reason=payload.reason)
    return {"created": created, "existing": existing}


@router.post("/moderation/blacklist/by-channel-id", response={200: BulkBlacklistOut, **ERRORS})
def blacklist_channel_ids(request: HttpRequest, payload: BlacklistByIdIn) -> Any:
    """Blacklist up to 500 people by the id they use on a channel account (按渠道账号拉黑),
    seen before or not: an unknown id becomes a contact with that identity, so they are
    removed the moment they join or speak in any group. All or none."""
    account = ChannelAccount.objects.get_in_workspace(ws(request), pk=payload.account_id)
    created, existing = actions.do_blacklist_identities(account, me(request), [(p.external_id, p.name) for p in payload.people],
                                                        reason=payload.reason)
    return {"created": created, "existing": existing}


@router.post("/moderation/blacklist/lift", response={200: BulkLiftOut, **ERRORS})
def lift_blacklist_entries(request: HttpRequest, payload: BulkLiftIn) -> Any:
    """Lift up to 500 entries at once (批量解除); entries already lifted are skipped. All or
    none — an entry this caller cannot see is a 404, and nothing changes."""
    require(me(request), Perm.VIEW_GROUPS)
    entries = get_visible_entries(ws(request), me(request), payload.entry_ids)
    return {"lifted": actions.do_lift_blacklist_entries(entries, me(request), note=payload.note)}


@router.post("/moderation/blacklist/{int:entry_id}/lift", response={200: BlacklistOut, **ERRORS})
def lift_blacklist(request: HttpRequest, entry_id: int, payload: LiftIn) -> Any:
    """Lift an entry (解除拉黑): the contact may join groups again."""
    entry = _visible_entries(request).get_in_workspace(ws(request), pk=entry_id)
    return actions.do_lift_blacklist(entry, me(request), note=payload.note)
