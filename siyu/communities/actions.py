"""Writes for groups (社群) and memberships."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group, GroupMessage, GroupType, Horizon, MemberRole, Membership, Threshold
from siyu.contacts.actions import schedule_rule_evaluation
from siyu.contacts.events import EventKind, record_timeline
from siyu.contacts.models import Contact
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace

GROUP_FIELDS = (
    "name", "group_type", "horizon", "ends_on", "vision", "rights", "threshold", "threshold_detail",
    "rules_text", "welcome_message", "capacity", "owner", "external_id", "channel_account",
)
MAX_CAPACITY = 2000


def _clean_group_fields(workspace: Workspace, values: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in GROUP_FIELDS:
            raise ValidationFailed(f"unknown group field {key!r}", code="unknown_field")
        if key == "name":
            value = (value or "").strip()
            if not value:
                raise ValidationFailed("group name must not be empty", code="name_required")
        elif key == "group_type" and value not in GroupType.values:
            raise ValidationFailed(f"unknown group type {value!r}; expected {', '.join(GroupType.values)}", code="invalid_group_type")
        elif key == "horizon" and value not in Horizon.values:
            raise ValidationFailed(f"unknown horizon {value!r}", code="invalid_horizon")
        elif key == "threshold" and value not in Threshold.values:
            raise ValidationFailed(f"unknown threshold {value!r}", code="invalid_threshold")
        elif key == "capacity":
            if not isinstance(value, int) or not 2 <= value <= MAX_CAPACITY:
                raise ValidationFailed(f"capacity must be between 2 and {MAX_CAPACITY}", code="invalid_capacity")
        elif key == "ends_on" and isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value) if value else None
            except ValueError as exc:
                raise ValidationFailed("ends_on must be YYYY-MM-DD", code="invalid_date") from exc
        elif key == "owner" and value is not None:
            owner_id = value if isinstance(value, int) else value.pk
            value = Staff.objects.in_workspace(workspace).filter(pk=owner_id).first()
            if value is None:
                raise ValidationFailed(f"owner {owner_id} is not staff of this workspace", code="unknown_owner")
        elif key == "channel_account" and value is not None:
            account_id = value if isinstance(value, int) else value.pk
            value = ChannelAccount.objects.in_workspace(workspace).filter(pk=account_id).first()
            if value is None:
                raise NotFound("channel account not found")
        clean[key] = value
    return clean


def _check_horizon(group: Group) -> None:
    if group.horizon == Horizon.SHORT_TERM and group.ends_on is None:
        raise ValidationFailed("a short-term group needs an end date (ends_on)", code="ends_on_required")


def _group_snapshot(group: Group) -> dict[str, Any]:
    return {f: (getattr(group, f + "_id") if f in ("owner", "channel_account") else getattr(group, f)) for f in GROUP_FIELDS}


def do_create_group(workspace: Workspace, actor: Staff | None, *, name: str, created_at: dt.datetime | None = None, **fields: Any) -> Group:
    """Create a group with its positioning (定位: vision, rights, threshold). Records
    ``group.created``."""
    require(actor, Perm.MANAGE_GROUPS)
    clean = _clean_group_fields(workspace, {"name": name, **fields})
    group = Group(workspace=workspace, created_at=created_at or timezone.now(), **clean)
    _check_horizon(group)
    with transaction.atomic():
        try:
            group.save()
        except IntegrityError as exc:
            raise Conflict("a group with this external id already exists on the channel", code="group_exists") from exc
        record_audit(workspace, actor, "group.created", target=group, after=_group_snapshot(group))
    return group


def do_update_group(group: Group, actor: Staff | None, **changes: Any) -> Group:
    """Change a group's settings. Records ``group.updated`` with before/after."""
    require(actor, Perm.MANAGE_GROUPS)
    admins = changes.pop("admins", None)
    clean = _clean_group_fields(group.workspace, changes)
    before = _group_snapshot(group)
    for key, value in clean.items():
        setattr(group, key, value)
    _check_horizon(group)
    with transaction.atomic():
        update_fields = [("owner" if k == "owner" else k) for k in clean]
        if update_fields:
            group.save(update_fields=update_fields)
        if admins is not None:
            staff = list(Staff.objects.in_workspace(group.workspace_id).filter(pk__in=admins))
            if len(staff) != len(set(admins)):
                raise ValidationFailed("every admin must be staff of this workspace", code="unknown_staff")
            group.admins.set(staff)
        record_audit(group.workspace, actor, "group.updated", target=group, before=before, after=_group_snapshot(group))
    return group


def do_archive_group(group: Group, actor: Staff | None) -> Group:
    """Archive a group (解散/归档): open memberships close. Records ``group.archived``."""
    require(actor, Perm.MANAGE_GROUPS)
    if group.archived_at is not None:
        return group
    with transaction.atomic():
        now = timezone.now()
        group.archived_at = now
        group.save(update_fields=["archived_at"])
        closed = Membership.objects.filter(group=group, left_at__isnull=True).update(left_at=now)
        record_audit(group.workspace, actor, "group.archived", target=group, after={"closed_memberships": closed})
    return group


def do_add_member(
    group: Group,
    contact: Contact,
    actor: Staff | None,
    *,
    join_source: str = "",
    joined_at: dt.datetime | None = None,
    role: str | None = None,
    idempotency_key: str = "",
) -> tuple[Membership, bool]:
    """Record that a contact joined a group; returns (membership, created). Joining a
    group one is already in is a no-op. Records ``member.joined`` and a
    ``joined_group`` timeline event."""
    require(actor, Perm.MANAGE_GROUPS)
    if contact.workspace_id != group.workspace_id:
        raise NotFound("contact not found", code="contact_not_found")
    if group.archived_at is not None:
        raise Conflict("the group is archived", code="group_archived")
    if role is not None and role not in MemberRole.values:
        raise ValidationFailed(f"unknown member role {role!r}", code="invalid_member_role")
    when = joined_at or timezone.now()
    with transaction.atomic():
        open_row = Membership.objects.filter(group=group, contact=contact, left_at__isnull=True).first()
        if open_row is not None:
            return open_row, False
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    workspace_id=group.workspace_id, group=group, contact=contact, join_source=join_source[:64], joined_at=when,
                    role=role or MemberRole.ONLOOKER, role_assigned=role is not None,
                )
        except IntegrityError:
            return Membership.objects.get(group=group, contact=contact, left_at__isnull=True), False
        record_timeline(
            contact, EventKind.JOINED_GROUP,
            idempotency_key=idempotency_key or f"join:{membership.pk}",
            data={"group_id": group.pk, "group": group.name, "join_source": join_source},
            occurred_at=when,
        )
        record_audit(group.workspace, actor, "member.joined", target=membership, summary=f"{contact.name} → {group.name}")
        schedule_rule_evaluation([contact.pk])
    return membership, True


def do_remove_member(membership: Membership, actor: Staff | None, *, reason: str = "", left_at: dt.datetime | None = None) -> Membership:
    """Close a membership (left or removed). Records ``member.left`` and a
    ``left_group`` timeline event."""
    require(actor, Perm.MANAGE_GROUPS)
    if membership.left_at is not None:
        return membership
    with transaction.atomic():
        membership.left_at = left_at or timezone.now()
        membership.save(update_fields=["left_at"])
        record_timeline(
            membership.contact, EventKind.LEFT_GROUP, idempotency_key=f"leave:{membership.pk}",
            data={"group_id": membership.group_id, "group": membership.group.name, "reason": reason},
            occurred_at=membership.left_at,
        )
        record_audit(membership.group.workspace, actor, "member.left", target=membership, summary=reason[:300])
        schedule_rule_evaluation([membership.contact_id])
    return membership


def do_set_member_role(membership: Membership, actor: Staff | None, *, role: str) -> Membership:
    """Assign a member role by hand (wins over inferred roles). Records ``member.role_set``."""
    require(actor, Perm.MANAGE_GROUPS)
    if role not in MemberRole.values:
        raise ValidationFailed(f"unknown member role {role!r}; expected {', '.join(MemberRole.values)}", code="invalid_member_role")
    with transaction.atomic():
        before = membership.role
        membership.role, membership.role_assigned = role, True
        membership.save(update_fields=["role", "role_assigned"])
        record_audit(membership.group.workspace, actor, "member.role_set", target=membership, before={"role": before}, after={"role": role})
    return membership


def do_ensure_group(account: ChannelAccount, external_id: str, *, name: str = "", created_at: dt.datetime | None = None) -> tuple[Group, bool]:
    """The group behind a channel room/chat id, created the first time it is seen;
    a changed name is kept up to date. Returns (group, created)."""
    group = Group.objects.filter(channel_account=account, external_id=external_id).first()
    if group is not None:
        if name and name != group.name:
            before = group.name
            group.name = name[:100]
            group.save(update_fields=["name"])
            record_audit(group.workspace, None, "group.renamed", target=group, before={"name": before}, after={"name": group.name})
        return group, False
    workspace = Workspace.objects.get(pk=account.workspace_id)
    return do_create_group(workspace, None, name=(name or external_id)[:100], channel_account=account, external_id=external_id,
                           created_at=created_at), True


def do_record_group_message(
    group: Group, sender: Contact | None, *, external_id: str, text: str, msgtype: str = "text", data: dict[str, Any] | None = None,
    sent_at: dt.datetime | None = None,
) -> tuple[GroupMessage, bool]:
    """Store a message seen in a group (once per platform message id) and add it to the
    sender's timeline. Returns (message, created)."""
    existing = GroupMessage.objects.filter(group=group, external_id=external_id).first()
    if existing is not None:
        return existing, False
    when = sent_at or timezone.now()
    with transaction.atomic():
        message = GroupMessage.objects.create(
            workspace_id=group.workspace_id, group=group, sender=sender, external_id=external_id[:255], msgtype=msgtype[:32],
            text=text, data=data or {}, sent_at=when,
        )
        if sender is not None:
            record_timeline(
                sender, EventKind.MESSAGE, idempotency_key=f"msg:{group.pk}:{external_id}"[:200],
                data={"group_id": group.pk, "group": group.name, "text": text[:200], "msgtype": msgtype}, occurred_at=when,
            )
    return message, True


def do_close_ended_short_term_groups(now: dt.datetime | None = None) -> list[int]:
    """Short-term groups (短期群: a flash sale, one event) close once their end date has
    passed in their workspace's time zone: each is archived (memberships close; one
    ``group.archived`` audit entry each). Returns the ids closed; safe to run repeatedly."""
    now = now or timezone.now()
    closed: list[int] = []
    due = Group.objects.filter(horizon=Horizon.SHORT_TERM, archived_at__isnull=True, ends_on__isnull=False).select_related("workspace")
    for group in due.order_by("id"):
        if group.ends_on is not None and group.ends_on < now.astimezone(group.workspace.tz).date():
            do_archive_group(group, None)
            closed.append(group.pk)
    return closed
