"""Reads of contacts: data scope per role, filters shared by API, console and CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import Exists, OuterRef, Q, QuerySet

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm
from siyu.contacts.errors import AmbiguousTag, ContactNotFound, UnknownTag
from siyu.contacts.models import Contact, ContactTag, Tag
from siyu.core import crypto
from siyu.core.errors import ValidationFailed
from siyu.core.lookups import every_one
from siyu.core.models import Workspace
from siyu.core.phones import normalize_phone


def visible_contacts(workspace: Workspace, staff: Staff | None) -> QuerySet[Contact]:
    """Contacts of the workspace that ``staff`` may see: all for most roles, only their own
    for agents (导购 see their customers, not their colleagues'). Merged duplicates are
    hidden."""
    qs = Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True)
    if staff is not None and not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(owner=staff)
    return qs


def get_visible_contact(workspace: Workspace, staff: Staff | None, contact_id: int | str) -> Contact:
    try:
        return visible_contacts(workspace, staff).select_related("owner", "owner__user").get(pk=int(contact_id))
    except (Contact.DoesNotExist, ValueError, TypeError) as exc:
        raise ContactNotFound("contact not found") from exc


def get_visible_contacts(workspace: Workspace, staff: Staff | None, contact_ids: Iterable[int]) -> list[Contact]:
    """The contacts behind these ids, in the order given (a repeated id once), all
    visible to ``staff``; otherwise :class:`ContactNotFound` naming the ids that are not."""
    return every_one(visible_contacts(workspace, staff), contact_ids, noun="contacts", error=ContactNotFound)


def resolve_tags(workspace: Workspace, refs: Iterable[str | int]) -> list[Tag]:
    """Turn tag references into tags of this workspace. A reference is a tag id, a
    ``group/name`` pair, or a bare name that is unique in the workspace. Unknown or
    ambiguous references raise with the offending value."""
    tags: list[Tag] = []
    base = Tag.objects.in_workspace(workspace).select_related("group")
    for ref in refs:
        text = str(ref).strip()
        if not text:
            continue
        if text.isdigit():
            found = list(base.filter(pk=int(text)))
        elif "/" in text:
            group_name, _, tag_name = text.partition("/")
            found = list(base.filter(group__name=group_name.strip(), name=tag_name.strip()))
        else:
            found = list(base.filter(name=text))
        if not found:
            raise UnknownTag(f"unknown tag {text!r}", details={"tag": text})
        if len(found) > 1:
            choices = ", ".join(f"{t.group.name}/{t.name}" for t in found)
            raise AmbiguousTag(f"tag name {text!r} is in several groups; use one of: {choices}", details={"tag": text})
        if found[0] not in tags:
            tags.append(found[0])
    return tags


def _has_tag(tag: Tag) -> Exists:
    return Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag=tag))


def filter_contacts(
    qs: QuerySet[Contact],
    workspace: Workspace,
    *,
    tags_all: Sequence[str | int] = (),
    tags_any: Sequence[str | int] = (),
    tags_none: Sequence[str | int] = (),
    stage: str | None = None,
    owner_id: int | None = None,
    channel: str | None = None,
    q: str | None = None,
) -> QuerySet[Contact]:
    """Apply the contact list filters (tag all/any/none, stage, owner, source channel, text)."""
    from siyu.contacts.models import LifecycleStage

    for tag in resolve_tags(workspace, tags_all):
        qs = qs.filter(_has_tag(tag))
    any_tags = resolve_tags(workspace, tags_any)
    if any_tags:
        qs = qs.filter(Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__in=any_tags)))
    none_tags = resolve_tags(workspace, tags_none)
    if none_tags:
        qs = qs.exclude(Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__in=none_tags)))
    if stage:
        if stage not in LifecycleStage.values:
            raise ValidationFailed(f"unknown lifecycle stage {stage!r}", code="unknown_stage")
        qs = qs.filter(lifecycle_stage=stage)
    if owner_id is not None:
        qs = qs.filter(owner_id=owner_id)
    if channel:
        qs = qs.filter(source_channel=channel)
    if q and q.strip():
        qs = qs.filter(contact_matches(q))
    return qs


def contact_matches(q: str, prefix: str = "") -> Q:
    """The search box's condition on a contact: part of the name or city, the external
    reference exactly, or — for a query of 7+ digits — the phone number exactly (through
    its keyed hash: phones are stored encrypted). ``prefix`` (``"contact__"``) applies it
    to a related contact."""
    q = q.strip()
    cond = Q(**{f"{prefix}name__icontains": q}) | Q(**{f"{prefix}external_ref": q}) | Q(**{f"{prefix}city__icontains": q})
    digits = q.replace(" ", "").replace("-", "")
    if digits.lstrip("+").isdigit() and len(digits) >= 7:
        try:
            cond |= Q(**{f"{prefix}phone_hash": crypto.lookup_hash(normalize_phone(digits))})
        except ValidationFailed:
            pass
    return cond


def contact_tags(contact: Contact) -> list[ContactTag]:
    return list(contact.tag_links.select_related("tag", "tag__group", "rule").order_by("tag__group_id", "tag_id"))
