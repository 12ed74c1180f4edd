"""Writes for contacts, tags, identities, consent, profile fields and the timeline.

Every function here validates, writes inside a transaction, records an audit entry and
(where it concerns a contact) a timeline event, and schedules side effects on commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm, require
from siyu.channels.models import ChannelAccount
from siyu.contacts.errors import InvalidProfileValue, MergeRefused
from siyu.contacts.events import EventKind, record_timeline
from siyu.contacts.models import (
    ChannelIdentity,
    Consent,
    ConsentPurpose,
    Contact,
    ContactEvent,
    ContactTag,
    FieldType,
    Gender,
    LifecycleStage,
    ProfileField,
    Tag,
    TagGroup,
    TagKind,
    TagRule,
    TagSource,
)
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.core.oncommit import on_commit_batched
from siyu.core.phones import normalize_phone

# Fields a caller may set on a contact; first-touch attribution is only set at creation.
EDITABLE_FIELDS = ("name", "gender", "birthday", "region", "city", "phone", "owner", "lifecycle_stage", "external_ref")


def schedule_rule_evaluation(contact_ids: Iterable[int]) -> None:
    """After commit, re-evaluate tag rules for these contacts in the worker. Calls within
    one transaction share a single task (an import of 200 rows queues one, not 200); ids
    whose savepoint rolled back are harmless — the task evaluates contacts that exist."""
    ids = set(contact_ids)
    if not ids:
        return

    def _enqueue(batch: set[Any]) -> None:
        from siyu.worker.tasks import apply_tag_rules_task

        apply_tag_rules_task(sorted(batch))

    on_commit_batched("tag_rules", None, ids, _enqueue)


def check_can_edit(actor: Staff | None, contact: Contact) -> None:
    require(actor, Perm.EDIT_CONTACTS)
    if actor is not None and not has_perm(actor, Perm.VIEW_ALL_CONTACTS) and contact.owner_id != actor.pk:
        # An agent touching a colleague's contact: same answer as a missing contact.
        raise NotFound("contact not found", code="contact_not_found")


def _check_owner(workspace: Workspace, owner: Staff | int | None) -> Staff | None:
    if owner is None:
        return None
    owner_id = owner if isinstance(owner, int) else owner.pk
    staff = Staff.objects.in_workspace(workspace).filter(pk=owner_id, is_active=True).first()
    if staff is None:
        raise ValidationFailed(f"owner {owner_id} is not an active staff member of this workspace", code="unknown_owner")
    return staff


def _clean_fields(workspace: Workspace, values: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in EDITABLE_FIELDS:
            raise ValidationFailed(f"unknown contact field {key!r}", code="unknown_field")
        if key == "name":
            value = (value or "").strip()
            if not value:
                raise ValidationFailed("name must not be empty", code="name_required")
            if len(value) > 100:
                raise ValidationFailed("name is longer than 100 characters", code="name_too_long")
        elif key == "gender":
            value = value or Gender.UNKNOWN
            if value not in Gender.values:
                raise ValidationFailed(f"unknown gender {value!r}", code="invalid_gender")
        elif key == "lifecycle_stage":
            if value not in LifecycleStage.values:
                raise ValidationFailed(f"unknown lifecycle stage {value!r}", code="unknown_stage")
        elif key == "birthday":
            if isinstance(value, str) and value:
                try:
                    value = dt.date.fromisoformat(value)
                except ValueError as exc:
                    raise ValidationFailed(f"birthday must be YYYY-MM-DD, got {value!r}", code="invalid_date") from exc
            value = value or None
        elif key == "phone":
            value = normalize_phone(value or "")
        elif key == "owner":
            value = _check_owner(workspace, value)
        elif key in ("region", "city", "external_ref"):
            value = (value or "").strip()
        clean[key] = value
    return clean


def _snapshot(contact: Contact) -> dict[str, Any]:
    return {
        "name": contact.name,
        "gender": contact.gender,
        "birthday": contact.birthday.isoformat() if contact.birthday else None,
        "region": contact.region,
        "city": contact.city,
        "phone": contact.phone_masked,
        "owner": contact.owner_id,
        "lifecycle_stage": contact.lifecycle_stage,
        "external_ref": contact.external_ref,
    }


def do_create_contact(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    source_channel: str = "",
    source_campaign: str = "",
    profile: dict[str, Any] | None = None,
    tags: Sequence[Tag] = (),
    tag_source: str = TagSource.MANUAL,
    created_at: dt.datetime | None = None,
    **fields: Any,
) -> Contact:
    """Create a contact with its first-touch attribution. Records ``contact.created`` in
    the audit log and an ``added`` timeline event; schedules tag rule evaluation."""
    require(actor, Perm.EDIT_CONTACTS)
    clean = _clean_fields(workspace, {"name": name, **fields})
    if actor is not None and not has_perm(actor, Perm.VIEW_ALL_CONTACTS):
        clean["owner"] = actor  # an agent's new contact is their own
    profile_values = check_profile_values(workspace, profile or {})
    when = created_at or timezone.now()
    phone = clean.pop("phone", "")
    with transaction.atomic():
        contact = Contact(
            workspace=workspace,
            source_channel=source_channel[:64],
            source_campaign=source_campaign[:64],
            profile=profile_values,
            created_at=when,
            updated_at=when,
            **clean,
        )
        if phone:
            contact.set_phone(phone)
        contact.save()
        record_timeline(
            contact,
            EventKind.ADDED,
            idempotency_key=f"contact:{contact.pk}:added",
            data={"source_channel": contact.source_channel, "source_campaign": contact.source_campaign},
            occurred_at=when,
        )
        if tags:
            _link_tags(workspace, actor, [contact], tags, source=tag_source)
        record_audit(workspace, actor, "contact.created", target=contact, after=_snapshot(contact))
        schedule_rule_evaluation([contact.pk])
    return contact


def do_update_contact(contact: Contact, actor: Staff | None, **changes: Any) -> Contact:
    """Change a contact's editable fields. Source channel/campaign (first touch) are kept
    forever and cannot be changed here. Records ``contact.updated`` with before/after and
    an ``updated`` timeline event."""
    check_can_edit(actor, contact)
    profile = changes.pop("profile", None)
    if "owner" in changes:
        require(actor, Perm.VIEW_ALL_CONTACTS)  # agents cannot hand contacts around
    clean = _clean_fields(Workspace.objects.get(pk=contact.workspace_id), changes)
    before = _snapshot(contact)
    updated: list[str] = []
    for key, value in clean.items():
        if key == "phone":
            if value != contact.phone:
                contact.set_phone(value)
                updated += ["phone_encrypted", "phone_hash", "phone_masked"]
        elif key == "owner":
            if (value.pk if value else None) != contact.owner_id:
                contact.owner = value
                updated.append("owner")
        elif getattr(contact, key) != value:
            setattr(contact, key, value)
            updated.append(key)
    if profile is not None:
        values = check_profile_values(contact.workspace, profile)
        merged = {**contact.profile, **values}
        merged = {k: v for k, v in merged.items() if v not in (None, "")}
        if merged != contact.profile:
            contact.profile = merged
            updated.append("profile")
    if not updated:
        return contact
    with transaction.atomic():
        contact.updated_at = timezone.now()
        contact.save(update_fields=[*updated, "updated_at"])
        after = _snapshot(contact)
        changed = sorted({k for k in after if after[k] != before[k]} | ({"profile"} if "profile" in updated else set()))
        record_timeline(
            contact, EventKind.UPDATED, idempotency_key=f"contact:{contact.pk}:updated:{uuid.uuid4().hex}", data={"fields": changed}
        )
        record_audit(contact.workspace, actor, "contact.updated", target=contact, before=before, after=after)
        schedule_rule_evaluation([contact.pk])
    return contact


# ---------------------------------------------------------------- profile fields


def do_create_profile_field(
    workspace: Workspace, actor: Staff | None, *, key: str, label: str, field_type: str = FieldType.TEXT, choices: Sequence[str] = ()
) -> ProfileField:
    """Define a custom profile field. Records ``profile_field.created``."""
    require(actor, Perm.MANAGE_TAGS)
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug

    try:
        validate_slug(key)
    except ValidationError as exc:
        raise ValidationFailed(f"field key {key!r} must be letters, digits, - or _", code="invalid_field_key") from exc
    if field_type not in FieldType.values:
        raise ValidationFailed(f"unknown field type {field_type!r}", code="invalid_field_type")
    if field_type == FieldType.CHOICE and not choices:
        raise ValidationFailed("a choice field needs choices", code="invalid_field_type")
    with transaction.atomic():
        if ProfileField.objects.in_workspace(workspace).filter(key=key).exists():
            raise Conflict(f"profile field {key!r} already exists", code="field_exists")
        field = ProfileField.objects.create(workspace=workspace, key=key, label=label, field_type=field_type, choices=list(choices))
        record_audit(workspace, actor, "profile_field.created", target=field, after={"key": key, "type": field_type})
    return field


def check_profile_values(workspace: Workspace | int, values: dict[str, Any]) -> dict[str, Any]:
    """Validate values against the workspace's profile fields; returns cleaned values."""
    if not values:
        return {}
    fields = {f.key: f for f in ProfileField.objects.in_workspace(workspace)}
    clean: dict[str, Any] = {}
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            raise InvalidProfileValue(f"unknown profile field {key!r}", details={"field": key})
        if value in (None, ""):
            clean[key] = None
            continue
        if field.field_type == FieldType.NUMBER:
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise InvalidProfileValue(f"{key} must be a number, got {value!r}", details={"field": key}) from exc
            clean[key] = int(number) if number.is_integer() else number
        elif field.field_type == FieldType.DATE:
            try:
                clean[key] = dt.date.fromisoformat(str(value)).isoformat()
            except ValueError as exc:
                raise InvalidProfileValue(f"{key} must be YYYY-MM-DD, got {value!r}", details={"field": key}) from exc
        elif field.field_type == FieldType.CHOICE:
            if str(value) not in field.choices:
                raise InvalidProfileValue(
                    f"{key} must be one of {', '.join(field.choices)}, got {value!r}", details={"field": key}
                )
            clean[key] = str(value)
        else:
            clean[key] = str(value)[:500]
    return clean


# ---------------------------------------------------------------- tags


def do_create_tag_group(
    workspace: Workspace, actor: Staff | None, *, name: str, kind: str = TagKind.BUSINESS, exclusive: bool = False
) -> TagGroup:
    """Create a tag group (标签组). Records ``tag_group.created``."""
    require(actor, Perm.MANAGE_TAGS)
    name = name.strip()
    if not name:
        raise ValidationFailed("tag group name must not be empty", code="name_required")
    if kind not in TagKind.values:
        raise ValidationFailed(f"unknown tag kind {kind!r}", code="invalid_tag_kind")
    with transaction.atomic():
        if TagGroup.objects.in_workspace(workspace).filter(name=name).exists():
            raise Conflict(f"tag group {name!r} already exists", code="tag_group_exists")
        group = TagGroup.objects.create(workspace=workspace, name=name, kind=kind, exclusive=exclusive)
        record_audit(workspace, actor, "tag_group.created", target=group, after={"name": name, "kind": kind, "exclusive": exclusive})
    return group


def do_create_tag(workspace: Workspace, actor: Staff | None, *, group: TagGroup, name: str) -> Tag:
    """Create a tag in a group. Records ``tag.created``."""
    require(actor, Perm.MANAGE_TAGS)
    name = name.strip()
    if not name or "/" in name:
        raise ValidationFailed("tag name must not be empty or contain '/'", code="invalid_tag_name")
    if group.workspace_id != workspace.pk:
        raise NotFound("tag group not found")
    with transaction.atomic():
        if Tag.objects.filter(group=group, name=name).exists():
            raise Conflict(f"tag {group.name}/{name} already exists", code="tag_exists")
        tag = Tag.objects.create(workspace=workspace, group=group, name=name)
        record_audit(workspace, actor, "tag.created", target=tag, after={"group": group.name, "name": name})
    return tag


def do_get_or_create_tag(workspace: Workspace, actor: Staff | None, *, group_name: str, name: str) -> Tag:
    """Find ``group/name`` or create the group and tag (used by imports and channels)."""
    group = TagGroup.objects.in_workspace(workspace).filter(name=group_name).first()
    if group is None:
        group = do_create_tag_group(workspace, actor, name=group_name)
    tag = Tag.objects.filter(group=group, name=name).first()
    return tag or do_create_tag(workspace, actor, group=group, name=name)


def do_rename_tag(tag: Tag, actor: Staff | None, *, name: str) -> Tag:
    """Rename a tag. Records ``tag.renamed``."""
    require(actor, Perm.MANAGE_TAGS)
    name = name.strip()
    if not name or "/" in name:
        raise ValidationFailed("tag name must not be empty or contain '/'", code="invalid_tag_name")
    if name == tag.name:
        return tag
    with transaction.atomic():
        if Tag.objects.filter(group_id=tag.group_id, name=name).exists():
            raise Conflict(f"tag {name!r} already exists in this group", code="tag_exists")
        before = tag.name
        tag.name = name
        tag.save(update_fields=["name"])
        record_audit(tag.workspace, actor, "tag.renamed", target=tag, before={"name": before}, after={"name": name})
    return tag


def do_delete_tag(tag: Tag, actor: Staff | None) -> None:
    """Delete a tag and its links to contacts. Records ``tag.deleted`` with the number of
    contacts that held it."""
    require(actor, Perm.MANAGE_TAGS)
    with transaction.atomic():
        holders = ContactTag.objects.filter(tag=tag).count()
        record_audit(
            tag.workspace, actor, "tag.deleted", target=tag, before={"name": str(tag), "contacts": holders}
        )
        tag.delete()


def _link_tags(
    workspace: Workspace,
    actor: Staff | None,
    contacts: Sequence[Contact],
    tags: Sequence[Tag],
    *,
    source: str,
    rule: TagRule | None = None,
    reason: str = "",
) -> int:
    """Add links (inside the caller's transaction). Exclusive groups drop the sibling tag."""
    for tag in tags:
        if tag.workspace_id != workspace.pk:
            raise NotFound("tag not found", code="unknown_tag")
    contact_ids = [c.pk for c in contacts]
    existing = set(ContactTag.objects.filter(contact_id__in=contact_ids, tag__in=tags).values_list("contact_id", "tag_id"))
    added = 0
    batch_key = uuid.uuid4().hex
    for tag in tags:
        group = tag.group
        if group.exclusive:
            siblings = ContactTag.objects.filter(contact_id__in=contact_ids, tag__group=group).exclude(tag=tag)
            for link in siblings.select_related("contact", "tag"):
                record_timeline(
                    link.contact,
                    EventKind.UNTAGGED,
                    idempotency_key=f"untag:{link.pk}:{batch_key}",
                    data={"tag": str(link.tag), "reason": f"replaced by {tag.name} (exclusive group)"},
                )
            siblings.delete()
        new_links = [
            ContactTag(workspace=workspace, contact=c, tag=tag, source=source, rule=rule, reason=reason, added_by=actor)
            for c in contacts
            if (c.pk, tag.pk) not in existing
        ]
        ContactTag.objects.bulk_create(new_links, ignore_conflicts=True)
        for link in new_links:
            record_timeline(
                link.contact,
                EventKind.TAGGED,
                idempotency_key=f"tag:{link.contact.pk}:{tag.pk}:{batch_key}",
                data={"tag": str(tag), "tag_id": tag.pk, "source": source, **({"reason": reason} if reason else {})},
            )
        added += len(new_links)
    return added


def do_tag_contacts(
    workspace: Workspace,
    actor: Staff | None,
    contacts: Sequence[Contact],
    tags: Sequence[Tag],
    *,
    source: str = TagSource.MANUAL,
    rule: TagRule | None = None,
    reason: str = "",
) -> int:
    """Add tags to contacts (bulk tagging, 批量打标签); returns the number of new links.
    Records ``contacts.tagged`` and a ``tagged`` timeline event per new link."""
    require(actor, Perm.TAG_CONTACTS)
    for contact in contacts:
        if contact.workspace_id != workspace.pk:
            raise NotFound("contact not found", code="contact_not_found")
        if actor is not None:
            check_can_edit(actor, contact)
    if not contacts or not tags:
        return 0
    with transaction.atomic():
        added = _link_tags(workspace, actor, contacts, tags, source=source, rule=rule, reason=reason)
        if added:
            record_audit(
                workspace,
                actor,
                "contacts.tagged",
                target_type="contact",
                summary=f"{added} links: {', '.join(str(t) for t in tags)} on {len(contacts)} contacts",
                after={"tags": [t.pk for t in tags], "contacts": [c.pk for c in contacts][:500], "source": source},
            )
            if source != TagSource.RULE:
                schedule_rule_evaluation(c.pk for c in contacts)
    return added


def do_untag_contacts(
    workspace: Workspace, actor: Staff | None, contacts: Sequence[Contact], tags: Sequence[Tag], *, reason: str = ""
) -> int:
    """Remove tags from contacts; returns the number of links removed. Records
    ``contacts.untagged`` and an ``untagged`` timeline event per removed link."""
    require(actor, Perm.TAG_CONTACTS)
    for contact in contacts:
        if contact.workspace_id != workspace.pk:
            raise NotFound("contact not found", code="contact_not_found")
        if actor is not None:
            check_can_edit(actor, contact)
    with transaction.atomic():
        links = list(
            ContactTag.objects.filter(workspace=workspace, contact__in=contacts, tag__in=tags).select_related("contact", "tag", "tag__group")
        )
        batch_key = uuid.uuid4().hex
        for link in links:
            record_timeline(
                link.contact,
                EventKind.UNTAGGED,
                idempotency_key=f"untag:{link.pk}:{batch_key}",
                data={"tag": str(link.tag), "tag_id": link.tag_id, **({"reason": reason} if reason else {})},
            )
        ContactTag.objects.filter(pk__in=[link.pk for link in links]).delete()
        if links:
            record_audit(
                workspace,
                actor,
                "contacts.untagged",
                target_type="contact",
                summary=f"{len(links)} links removed: {', '.join(str(t) for t in tags)}",
                after={"tags": [t.pk for t in tags], "contacts": sorted({link.contact_id for link in links})[:500]},
            )
    return len(links)


# ---------------------------------------------------------------- timeline


def do_record_event(
    contact: Contact,
    kind: str,
    *,
    idempotency_key: str,
    data: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
    evaluate_rules: bool = True,
) -> tuple[ContactEvent, bool]:
    """Append a fact (message, order, scan...) to the contact's timeline, once per
    idempotency key; returns (event, created). A new event schedules tag rule evaluation."""
    if not idempotency_key:
        raise ValidationFailed("an event needs an idempotency key", code="idempotency_key_required")
    with transaction.atomic():
        event, created = record_timeline(contact, kind, idempotency_key=idempotency_key, data=data, occurred_at=occurred_at)
        if created and evaluate_rules:
            schedule_rule_evaluation([contact.pk])
    return event, created


# ---------------------------------------------------------------- identities and merge


def do_add_identity(contact: Contact, actor: Staff | None, *, account: ChannelAccount, external_id: str, unionid: str = "") -> ChannelIdentity:
    """Attach a channel identity to a contact. An identity already held by another contact
    is refused (merge the two contacts instead). Records ``identity.added``."""
    check_can_edit(actor, contact)
    if account.workspace_id != contact.workspace_id:
        raise NotFound("channel account not found")
    external_id = external_id.strip()
    if not external_id:
        raise ValidationFailed("external id must not be empty", code="external_id_required")
    with transaction.atomic():
        existing = ChannelIdentity.objects.filter(account=account, external_id=external_id).first()
        if existing is not None:
            if existing.contact_id == contact.pk:
                return existing
            raise Conflict(
                f"{account}:{external_id} already belongs to contact {existing.contact_id}; merge the contacts instead",
                code="identity_taken",
            )
        try:
            identity = ChannelIdentity.objects.create(
                workspace_id=contact.workspace_id, contact=contact, account=account, external_id=external_id, unionid=unionid
            )
        except IntegrityError as exc:
            raise Conflict(f"{account}:{external_id} was just claimed by another contact", code="identity_taken") from exc
        record_audit(contact.workspace, actor, "identity.added", target=contact, after={"account": account.pk, "external_id": external_id})
    return identity


def do_merge_contacts(primary: Contact, duplicate: Contact, actor: Staff | None) -> Contact:
    """Merge ``duplicate`` into ``primary`` (合并重复客户): identities, tags, timeline,
    memberships and consents move over; empty fields of the primary are filled from the
    duplicate; the duplicate stays as a tombstone pointing at the primary. The earlier
    first touch wins. Records ``contact.merged`` with both snapshots."""
    require(actor, Perm.MERGE_CONTACTS)
    if primary.workspace_id != duplicate.workspace_id:
        raise NotFound("contact not found", code="contact_not_found")
    if primary.pk == duplicate.pk:
        raise MergeRefused("cannot merge a contact into itself")
    if primary.merged_into_id or duplicate.merged_into_id:
        raise MergeRefused("one of the contacts was already merged")
    from siyu.communities.models import Membership

    with transaction.atomic():
        # Lock both rows in id order so two concurrent merges cannot interleave.
        locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[primary.pk, duplicate.pk]).order_by("pk")}
        primary, duplicate = locked[primary.pk], locked[duplicate.pk]
        if primary.merged_into_id or duplicate.merged_into_id:
            raise MergeRefused("one of the contacts was already merged")
        before = {"primary": _snapshot(primary), "duplicate": _snapshot(duplicate)}
        fill: list[str] = []
        for field in ("gender", "birthday", "region", "city", "external_ref", "owner_id"):
            empty = getattr(primary, field) in (None, "", Gender.UNKNOWN)
            if empty and getattr(duplicate, field) not in (None, "", Gender.UNKNOWN):
                setattr(primary, field, getattr(duplicate, field))
                fill.append(field.removesuffix("_id") if field == "owner_id" else field)
        if not primary.phone_hash and duplicate.phone_hash:
            primary.phone_encrypted, primary.phone_hash, primary.phone_masked = (
                duplicate.phone_encrypted, duplicate.phone_hash, duplicate.phone_masked,
            )
            fill += ["phone_encrypted", "phone_hash", "phone_masked"]
        if duplicate.created_at < primary.created_at:
            primary.source_channel, primary.source_campaign = duplicate.source_channel, duplicate.source_campaign
            primary.created_at = duplicate.created_at
            fill += ["source_channel", "source_campaign", "created_at"]
        merged_profile = {**duplicate.profile, **primary.profile}
        if merged_profile != primary.profile:
            primary.profile = merged_profile
            fill.append("profile")
        ChannelIdentity.objects.filter(contact=duplicate).update(contact=primary)
        held = set(ContactTag.objects.filter(contact=primary).values_list("tag_id", flat=True))
        ContactTag.objects.filter(contact=duplicate).exclude(tag_id__in=held).update(contact=primary)
        ContactTag.objects.filter(contact=duplicate).delete()
        ContactEvent.objects.filter(contact=duplicate).update(contact=primary)
        open_groups = set(Membership.objects.filter(contact=primary, left_at__isnull=True).values_list("group_id", flat=True))
        Membership.objects.filter(contact=duplicate).exclude(group_id__in=open_groups, left_at__isnull=True).update(contact=primary)
        Membership.objects.filter(contact=duplicate, left_at__isnull=True).update(left_at=timezone.now())
        consents = set(Consent.objects.filter(contact=primary).values_list("purpose", flat=True))
        Consent.objects.filter(contact=duplicate).exclude(purpose__in=consents).update(contact=primary)
        primary.updated_at = timezone.now()
        primary.save(update_fields=[*sorted(set(fill)), "updated_at"])
        duplicate.merged_into = primary
        duplicate.updated_at = timezone.now()
        duplicate.save(update_fields=["merged_into", "updated_at"])
        record_timeline(
            primary, EventKind.MERGED, idempotency_key=f"merge:{duplicate.pk}", data={"merged_contact": duplicate.pk, "name": duplicate.name}
        )
        record_audit(primary.workspace, actor, "contact.merged", target=primary, before=before, after=_snapshot(primary))
        schedule_rule_evaluation([primary.pk])
    return primary


# ---------------------------------------------------------------- consent


def do_set_consent(
    contact: Contact, actor: Staff | None, *, purpose: str, granted: bool, do_not_disturb: bool = False, source: str = ""
) -> Consent:
    """Record consent / do-not-disturb for one purpose. Records ``consent.changed`` and a
    ``consent`` timeline event."""
    if actor is not None:
        check_can_edit(actor, contact)
    if purpose not in ConsentPurpose.values:
        raise ValidationFailed(f"unknown consent purpose {purpose!r}", code="unknown_purpose")
    with transaction.atomic():
        consent, _ = Consent.objects.get_or_create(workspace_id=contact.workspace_id, contact=contact, purpose=purpose)
        before = {"granted": consent.granted, "do_not_disturb": consent.do_not_disturb}
        consent.granted, consent.do_not_disturb, consent.source = granted, do_not_disturb, source[:64]
        consent.save(update_fields=["granted", "do_not_disturb", "source", "updated_at"])
        after = {"granted": granted, "do_not_disturb": do_not_disturb}
        if before != after:
            record_timeline(
                contact, EventKind.CONSENT, idempotency_key=f"consent:{contact.pk}:{purpose}:{uuid.uuid4().hex}", data={"purpose": purpose, **after}
            )
            record_audit(contact.workspace, actor, "consent.changed", target=contact, before=before, after={"purpose": purpose, **after})
    return consent



def do_ensure_contact_for_identity(
    account: ChannelAccount,
    external_id: str,
    *,
    name: str = "",
    unionid: str = "",
    source_channel: str = "",
    source_campaign: str = "",
    owner: Staff | None = None,
    created_at: dt.datetime | None = None,
    actor: Staff | None = None,
) -> tuple[Contact, bool]:
    """The contact behind a channel identity, created (with first-touch attribution) the
    first time the identity is seen; returns (contact, created). A merged contact
    resolves to the one it was merged into. ``actor`` is the staff member on whose word
    the identity is entered (a blacklist by channel id), else the channel's own report
    (``None``, a system action); a new contact and its identity are audited as theirs."""
    identity = ChannelIdentity.objects.select_related("contact").filter(account=account, external_id=external_id).first()
    if identity is not None:
        contact = identity.contact
        while contact.merged_into_id is not None:
            contact = Contact.objects.get(pk=contact.merged_into_id)
        return contact, False
    workspace = Workspace.objects.get(pk=account.workspace_id)
    with transaction.atomic():
        contact = do_create_contact(
            workspace, actor, name=(name or external_id)[:100], source_channel=source_channel, source_campaign=source_campaign,
            owner=owner, created_at=created_at,
        )
        do_add_identity(contact, actor, account=account, external_id=external_id, unionid=unionid)
    return contact, True
