"""Contacts API: list/filter, create, read, update, tags, timeline, merge, consent,
identities, rule explanations, import and export."""


import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import File, Form, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.channels.models import ChannelAccount
from siyu.contacts import actions
from siyu.contacts.models import Contact, ContactEvent
from siyu.contacts.queries import filter_contacts, get_visible_contact, get_visible_contacts, resolve_tags, visible_contacts
from siyu.contacts.rules import explain_contact

router = Router(tags=["contacts"])


class TagRef(Schema):
    id: int
    group: str
    name: str
    source: str
    reason: str = ""


class OwnerRef(Schema):
    id: int
    name: str


class ContactOut(Schema):
    id: int
    name: str
    gender: str
    birthday: dt.date | None
    region: str
    city: str
    phone: str = Field(description="masked (138****5678) unless your role may see identifiers")
    owner: OwnerRef | None
    lifecycle_stage: str
    source_channel: str
    source_campaign: str
    external_id: str
    profile: dict[str, Any]
    tags: list[TagRef]
    created_at: dt.datetime
    updated_at: dt.datetime

    @staticmethod
    def resolve_phone(obj: Contact, context: Any) -> str:
        request = context["request"]
        if obj.phone_hash and has_perm(me(request), Perm.VIEW_PII):
            return obj.phone
        return obj.phone_masked

    @staticmethod
    def resolve_owner(obj: Contact) -> dict[str, Any] | None:
        return {"id": obj.owner.pk, "name": obj.owner.display_name} if obj.owner else None

    @staticmethod
    def resolve_external_id(obj: Contact) -> str:
        return obj.external_ref

    @staticmethod
    def resolve_tags(obj: Contact) -> list[dict[str, Any]]:
        links = obj.tag_links.all()  # prefetched
        return [
            {"id": link.tag.pk, "group": link.tag.group.name, "name": link.tag.name, "source": link.source, "reason": link.reason}
            for link in sorted(links, key=lambda link: (link.tag.group_id, link.tag_id))
        ]


class ContactIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    gender: str = "unknown"
    birthday: dt.date | None = None
    region: str = ""
    city: str = ""
    phone: str = ""
    owner_id: int | None = None
    lifecycle_stage: str = "new"
    source_channel: str = Field("", max_length=64)
    source_campaign: str = Field("", max_length=64)
    external_id: str = Field("", max_length=100)
    profile: dict[str, Any] = {}
    tags: list[str] = []


class ContactPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    gender: str | None = None
    birthday: dt.date | None = None
    region: str | None = None
    city: str | None = None
    phone: str | None = None
    owner_id: int | None = None
    lifecycle_stage: str | None = None
    external_id: str | None = Field(None, max_length=100)
    profile: dict[str, Any] | None = None


class ContactFilters(Schema):
    tag: list[str] = Field([], description="contacts holding ALL of these tags (id, group/name, or unique name)")
    tag_any: list[str] = Field([], description="contacts holding ANY of these tags")
    tag_none: list[str] = Field([], description="contacts holding NONE of these tags")
    stage: str | None = None
    owner: int | None = None
    channel: str | None = Field(None, description="first-touch source channel")
    q: str | None = Field(None, max_length=100, description="name, city, external id, or an exact phone number")

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "tags_all": self.tag, "tags_any": self.tag_any, "tags_none": self.tag_none, "stage": self.stage,
            "owner_id": self.owner, "channel": self.channel, "q": self.q,
        }


def _with_tags(qs: Any) -> Any:
    return qs.select_related("owner").prefetch_related("tag_links__tag__group")


def _contact(request: HttpRequest, contact_id: int) -> Contact:
    return get_visible_contact(ws(request), me(request), contact_id)


def _fresh(request: HttpRequest, contact_id: int) -> Contact:
    return _with_tags(visible_contacts(ws(request), me(request))).get(pk=contact_id)  # type: ignore[no-any-return]


@router.get("/contacts", response={200: list[ContactOut], **ERRORS})
@paginate(Page)
def list_contacts(request: HttpRequest, filters: Query[ContactFilters]) -> Any:
    qs = filter_contacts(visible_contacts(ws(request), me(request)), ws(request), **filters.as_kwargs())
    return _with_tags(qs).order_by("-created_at", "-id")


@router.post("/contacts", response={201: ContactOut, **ERRORS})
def create_contact(request: HttpRequest, payload: ContactIn) -> Any:
    tags = resolve_tags(ws(request), payload.tags)
    data = payload.dict()
    contact = actions.do_create_contact(
        ws(request),
        me(request),
        name=data.pop("name"),
        source_channel=data.pop("source_channel"),
        source_campaign=data.pop("source_campaign"),
        profile=data.pop("profile"),
        tags=tags,
        owner=data.pop("owner_id"),
        external_ref=data.pop("external_id"),
        **{k: v for k, v in data.items() if k != "tags"},
    )
    return Status(201, _fresh(request, contact.pk))


@router.get("/contacts/{int:contact_id}", response={200: ContactOut, **ERRORS})
def get_contact(request: HttpRequest, contact_id: int) -> Any:
    _contact(request, contact_id)
    return _fresh(request, contact_id)


@router.patch("/contacts/{int:contact_id}", response={200: ContactOut, **ERRORS})
def update_contact(request: HttpRequest, contact_id: int, payload: ContactPatch) -> Any:
    contact = _contact(request, contact_id)
    changes = payload.dict(exclude_unset=True)
    if "owner_id" in changes:
        changes["owner"] = changes.pop("owner_id")
    if "external_id" in changes:
        changes["external_ref"] = changes.pop("external_id")
    actions.do_update_contact(contact, me(request), **changes)
    return _fresh(request, contact_id)


class EventOut(Schema):
    id: int
    kind: str
    occurred_at: dt.datetime
    data: dict[str, Any]
    idempotency_key: str


class EventIn(Schema):
    kind: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    idempotency_key: str = Field(min_length=1, max_length=200)
    occurred_at: dt.datetime | None = None
    data: dict[str, Any] = {}


@router.get("/contacts/{int:contact_id}/timeline", response={200: list[EventOut], **ERRORS})
@paginate(Page)
def contact_timeline(request: HttpRequest, contact_id: int, kind: str | None = None) -> Any:
    contact = _contact(request, contact_id)
    qs = ContactEvent.objects.in_workspace(ws(request)).filter(contact=contact)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-occurred_at", "-id")


@router.post("/contacts/{int:contact_id}/events", response={201: EventOut, 200: EventOut, **ERRORS})
def record_event(request: HttpRequest, contact_id: int, payload: EventIn) -> Any:
    """Append a fact to the timeline (idempotent by key: a replay answers 200 with the
    stored event)."""
    contact = _contact(request, contact_id)
    actions.check_can_edit(me(request), contact)
    if payload.occurred_at is not None and payload.occurred_at.tzinfo is None:
        from siyu.core.errors import ValidationFailed

        raise ValidationFailed("occurred_at needs a time zone offset", code="naive_datetime")
    event, created = actions.do_record_event(
        contact, payload.kind, idempotency_key=payload.idempotency_key, data=payload.data, occurred_at=payload.occurred_at
    )
    return Status(201 if created else 200, event)


class TagsIn(Schema):
    tags: list[str] = Field(min_length=1)


class CountOut(Schema):
    changed: int


@router.post("/contacts/{int:contact_id}/tags", response={200: ContactOut, **ERRORS})
def add_tags(request: HttpRequest, contact_id: int, payload: TagsIn) -> Any:
    contact = _contact(request, contact_id)
    actions.do_tag_contacts(ws(request), me(request), [contact], resolve_tags(ws(request), payload.tags))
    return _fresh(request, contact_id)


@router.delete("/contacts/{int:contact_id}/tags/{tag_ref}", response={200: ContactOut, **ERRORS})
def remove_tag(request: HttpRequest, contact_id: int, tag_ref: str) -> Any:
    contact = _contact(request, contact_id)
    actions.do_untag_contacts(ws(request), me(request), [contact], resolve_tags(ws(request), [tag_ref]))
    return _fresh(request, contact_id)


class BulkTagIn(Schema):
    contact_ids: list[int] = Field(min_length=1, max_length=5000)
    add: list[str] = []
    remove: list[str] = []


class BulkTagOut(Schema):
    contacts: int
    added: int
    removed: int


@router.post("/contacts/bulk-tag", response={200: BulkTagOut, **ERRORS})
def bulk_tag(request: HttpRequest, payload: BulkTagIn) -> Any:
    """Add and/or remove tags on many contacts at once (批量打标签). Every id must be a
    contact you can see, or nothing changes."""
    from siyu.core.errors import ValidationFailed

    if not payload.add and not payload.remove:
        raise ValidationFailed("give tags to add or remove", code="nothing_to_do")
    contacts = get_visible_contacts(ws(request), me(request), payload.contact_ids)
    add, remove = resolve_tags(ws(request), payload.add), resolve_tags(ws(request), payload.remove)
    from django.db import transaction

    with transaction.atomic():
        added = actions.do_tag_contacts(ws(request), me(request), contacts, add) if add else 0
        removed = actions.do_untag_contacts(ws(request), me(request), contacts, remove) if remove else 0
    return {"contacts": len(contacts), "added": added, "removed": removed}


class MergeIn(Schema):
    duplicate_id: int


@router.post("/contacts/{int:contact_id}/merge", response={200: ContactOut, **ERRORS})
def merge_contact(request: HttpRequest, contact_id: int, payload: MergeIn) -> Any:
    """Merge a duplicate into this contact (合并). The duplicate disappears from lists."""
    primary = _contact(request, contact_id)
    duplicate = _contact(request, payload.duplicate_id)
    actions.do_merge_contacts(primary, duplicate, me(request))
    return _fresh(request, contact_id)


class ConsentIn(Schema):
    granted: bool
    do_not_disturb: bool = False
    source: str = Field("api", max_length=64)


class ConsentOut(Schema):
    purpose: str
    granted: bool
    do_not_disturb: bool
    source: str
    updated_at: dt.datetime


@router.get("/contacts/{int:contact_id}/consents", response={200: list[ConsentOut], **ERRORS})
def list_consents(request: HttpRequest, contact_id: int) -> Any:
    return list(_contact(request, contact_id).consents.order_by("purpose"))


@router.put("/contacts/{int:contact_id}/consents/{purpose}", response={200: ConsentOut, **ERRORS})
def set_consent(request: HttpRequest, contact_id: int, purpose: str, payload: ConsentIn) -> Any:
    contact = _contact(request, contact_id)
    return actions.do_set_consent(
        contact, me(request), purpose=purpose, granted=payload.granted, do_not_disturb=payload.do_not_disturb, source=payload.source
    )


class IdentityIn(Schema):
    account_id: int
    external_id: str = Field(min_length=1, max_length=200)
    unionid: str = Field("", max_length=200)


class IdentityOut(Schema):
    id: int
    account_id: int
    external_id: str
    created_at: dt.datetime


@router.get("/contacts/{int:contact_id}/identities", response={200: list[IdentityOut], **ERRORS})
def list_identities(request: HttpRequest, contact_id: int) -> Any:
    return list(_contact(request, contact_id).identities.order_by("id"))


@router.post("/contacts/{int:contact_id}/identities", response={201: IdentityOut, **ERRORS})
def add_identity(request: HttpRequest, contact_id: int, payload: IdentityIn) -> Any:
    contact = _contact(request, contact_id)
    account = ChannelAccount.objects.get_in_workspace(ws(request), pk=payload.account_id)
    return Status(201, actions.do_add_identity(contact, me(request), account=account, external_id=payload.external_id, unionid=payload.unionid))


class RuleExplanation(Schema):
    rule_id: int
    rule: str
    tag: str
    met: bool
    explanation: str


@router.get("/contacts/{int:contact_id}/rules", response={200: list[RuleExplanation], **ERRORS})
def explain_rules(request: HttpRequest, contact_id: int) -> Any:
    """For each active tag rule: does this contact meet it now, and why."""
    return explain_contact(_contact(request, contact_id))


class ImportRowError(Schema):
    row: int
    reason: str


class ImportOut(Schema):
    imported: int
    updated: int
    unchanged: int
    rejected: list[ImportRowError]
    dry_run: bool
    encoding: str


@router.post("/contacts/import", response={200: ImportOut, **ERRORS})
def import_contacts(
    request: HttpRequest, file: File[UploadedFile], dry_run: Form[bool] = False, create_tags: Form[bool] = False
) -> Any:
    """Import a CSV (UTF-8 or GB18030). Broken rows are reported with their row number
    and reason; the rest are imported; re-importing the same file changes nothing."""
    from siyu.contacts.importing import import_contacts as run_import
    from siyu.core.errors import ValidationFailed

    require(me(request), Perm.IMPORT_CONTACTS)
    if file.size and file.size > 50 * 1024 * 1024:
        raise ValidationFailed("file is larger than 50 MB", code="file_too_large")
    report = run_import(ws(request), me(request), file.read(), dry_run=dry_run, create_tags=create_tags)
    return report.as_dict()


@router.get("/contacts/export", response={200: None, **ERRORS})
def export_contacts_view(request: HttpRequest, filters: Query[ContactFilters], format: str = "csv") -> HttpResponse:
    """Download the filtered contacts as CSV or XLSX (identifiers masked per role; audited)."""
    from siyu.contacts.exporting import export_contacts
    from siyu.core.errors import ValidationFailed

    if format not in ("csv", "xlsx"):
        raise ValidationFailed("format must be csv or xlsx", code="invalid_format")
    result = export_contacts(ws(request), me(request), fmt=format, filters=filters.as_kwargs())
    response = HttpResponse(result.content, content_type=result.content_type)
    response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    return response
