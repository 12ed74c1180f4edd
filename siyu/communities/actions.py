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
    "name", "group_type", "horizon", "ends_on", "dismiss_at_end", "end_farewell", "vision", "rights", "threshold", "threshold_detail",
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
        elif key == "dismiss_at_end" and not isinstance(value, bool):
            raise ValidationFailed("dismiss_at_end must be true or false", code="invalid_dismiss_at_end")
        elif key == "end_farewell":
            value = (value or "").strip()
            if len(value) > 500:
                raise ValidationFailed("the end farewell is at most 500 characters", code="invalid_dismissal")
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
    if group.dismiss_at_end and group.horizon != Horizon.SHORT_TERM:
        raise ValidationFailed("only a short-term group is dismissed at its end date (dismiss_at_end)", code="dismiss_needs_short_term")


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


def do_dismiss_group(group: Group, actor: Staff | None, *, farewell_text: str | None = None, reason: str = "") -> list[dict[str, Any]]:
    """Dismiss a group (解散群) — on the platform, not only in siyu: the channel posts the
    farewell (optional) and ends the group (Matrix: closed to joins, everyone removed, the
    bot leaves) through the outbox; a channel that cannot (WeCom: only the owner can
    dismiss a customer group, in the app) gets a staff task for the group's owner with the
    farewell to post first. Then the group is archived (memberships close, open alerts
    are resolved). Returns what was queued, ``[{"outbox": id} | {"staff_task": id}]``
    (empty for a group on no channel, and on a repeat: a dismissed group is answered
    unchanged). Records ``group.dismissed``."""
    from siyu.channels.actions import do_command_or_task
    from siyu.channels.base import Command, CommandKind
    from siyu.communities.models import Alert

    require(actor, Perm.MANAGE_GROUPS)
    farewell = (farewell_text or "").strip()
    reason = reason.strip()
    if len(farewell) > 500 or len(reason) > 200:
        raise ValidationFailed("the farewell is at most 500 characters and the reason 200", code="invalid_dismissal")
    applied: list[dict[str, Any]] = []
    with transaction.atomic():
        locked = Group.objects.select_for_update(of=("self",)).select_related("workspace", "channel_account", "owner").get(pk=group.pk)
        if locked.dismissed_at is not None:
            group.archived_at, group.dismissed_at = locked.archived_at, locked.dismissed_at
            return applied
        account = locked.channel_account
        if account is not None and locked.external_id:
            command = Command(CommandKind.DISMISS_GROUP, f"dismiss:{locked.pk}", locked.external_id,
                              {"farewell": farewell, "reason": reason or "群已解散"})
            where, pk = do_command_or_task(
                account, command, task_kind="dismiss_group", title=f"解散群「{locked.name}」" + ("（先发告别公告）" if farewell else ""),
                detail={"group": locked.pk, "group_external_id": locked.external_id, "farewell": farewell}, assignee=locked.owner,
            )
            applied.append({where: pk})
        now = timezone.now()
        for alert in Alert.objects.filter(group=locked, resolved_at__isnull=True):
            _resolve(alert, actor, "group dismissed", now)
        do_archive_group(locked, actor)
        locked.dismissed_at = now
        locked.save(update_fields=["dismissed_at"])
        record_audit(locked.workspace, actor, "group.dismissed", target=locked, summary=locked.name,
                     after={"farewell": farewell, "reason": reason, "applied": applied})
    group.archived_at, group.dismissed_at = locked.archived_at, locked.dismissed_at
    return applied


def do_record_group_dismissed(group: Group) -> Group:
    """The platform reports the group dismissed (WeCom's ``dismiss`` callback — the owner
    did it in the app, perhaps from the task :func:`do_dismiss_group` gave them): archived
    and marked dismissed, and that task, if still open, is done. A system change."""
    from siyu.channels.actions import do_close_staff_task
    from siyu.channels.models import StaffTask, StaffTaskStatus

    with transaction.atomic():
        do_archive_group(group, None)
        if group.dismissed_at is None:
            group.dismissed_at = timezone.now()
            group.save(update_fields=["dismissed_at"])
        task = StaffTask.objects.filter(workspace_id=group.workspace_id, dedupe_key=f"task:dismiss:{group.pk}", status=StaffTaskStatus.OPEN).first()
        if task is not None:
            do_close_staff_task(task, None, status=StaffTaskStatus.DONE)
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


def do_remove_member_on_channel(membership: Membership, actor: Staff | None, *, reason: str = "") -> list[dict[str, Any]]:
    """Remove a member from the group (移出群聊) as staff — on its channel, not only in
    siyu: a channel that can removes them (Matrix: kicked with the reason) through the
    outbox, and the membership closes at once (:func:`do_remove_member`). Where it cannot
    (WeCom: only the owner removes members of a customer group, in the app) the group's
    owner gets a staff task and the membership stays open — they are still in the room —
    until the platform reports them gone, which closes both. A group on no channel, or a
    member the channel does not know, only closes the membership. Returns what was queued,
    ``[{"outbox": id} | {"staff_task": id}]`` (empty for a member already gone)."""
    from siyu.channels.actions import do_command_or_task
    from siyu.channels.base import Command, CommandKind
    from siyu.contacts.models import ChannelIdentity

    require(actor, Perm.MANAGE_GROUPS)
    reason = reason.strip()
    if len(reason) > 200:
        raise ValidationFailed("the reason is at most 200 characters", code="invalid_reason")
    applied: list[dict[str, Any]] = []
    with transaction.atomic():
        locked = Membership.objects.select_for_update(of=("self",)).select_related(
            "group__channel_account", "group__owner", "group__workspace", "contact").get(pk=membership.pk)
        if locked.left_at is not None:
            membership.left_at = locked.left_at
            return applied
        group = locked.group
        account = group.channel_account
        member_id = (ChannelIdentity.objects.filter(account=account, contact_id=locked.contact_id).values_list("external_id", flat=True).first()
                     if account is not None and group.external_id else None)
        if account is not None and member_id:
            command = Command(CommandKind.REMOVE_MEMBER, f"kick:{locked.pk}", group.external_id, {"member": member_id, "reason": reason or "移出群聊"})
            where, pk = do_command_or_task(
                account, command, task_kind="remove_member", title=f"将「{locked.contact.name}」移出群「{group.name}」",
                detail={"group": group.pk, "group_external_id": group.external_id, "member": member_id, "reason": reason}, assignee=group.owner,
            )
            applied.append({where: pk})
            if where == "staff_task":
                record_audit(group.workspace, actor, "member.removal_requested", target=locked, summary=reason[:300], after={"staff_task": pk})
                return applied
        do_remove_member(locked, actor, reason=reason or "removed by staff")
    membership.left_at = locked.left_at
    return applied


def do_close_removal_task(group: Group, contact: Contact) -> None:
    """The platform reports ``contact`` gone from ``group``: the open tasks asking a person
    to remove them are done — staff's (:func:`do_remove_member_on_channel`, keyed by the
    stay) and moderation's (a remove or blacklist verdict, or the blacklist enforced on a
    join, naming the group and contact in their evidence)."""
    from siyu.channels.actions import do_close_staff_task
    from siyu.channels.models import StaffTask, StaffTaskStatus

    keys = [f"task:kick:{pk}" for pk in Membership.objects.filter(group=group, contact=contact, left_at__isnull=False).values_list("pk", flat=True)]
    open_tasks = StaffTask.objects.filter(workspace_id=group.workspace_id, status=StaffTaskStatus.OPEN)
    moderation = open_tasks.filter(kind="moderation_remove_member", detail__group_id=group.pk, detail__contact_id=contact.pk)
    for task in open_tasks.filter(dedupe_key__in=keys) | moderation:
        do_close_staff_task(task, None, status=StaffTaskStatus.DONE)


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


def do_adopt_stand_in_group(group: Group, stand_in: Group) -> None:
    """Fold ``stand_in`` — a group made from a platform room's events before siyu had
    recorded that the room is ``group`` (which it asked the channel to create) — into
    ``group``: memberships, messages, moderation cases, strikes and activity counters move
    (rows ``group`` already has stay), then the stand-in is deleted. Same workspace."""
    from siyu.communities.models import MemberDayActivity
    from siyu.moderation.models import ModerationCase, Strike

    if stand_in.workspace_id != group.workspace_id:
        raise ValidationFailed("a group can only adopt a stand-in of its own workspace", code="cross_workspace")
    with transaction.atomic():
        Membership.objects.filter(group=stand_in).exclude(
            left_at__isnull=True, contact_id__in=Membership.objects.filter(group=group, left_at__isnull=True).values("contact_id"),
        ).update(group=group)
        GroupMessage.objects.filter(group=stand_in).exclude(external_id__in=GroupMessage.objects.filter(group=group).values("external_id")).update(
            group=group,
        )
        ModerationCase.objects.filter(group=stand_in).update(group=group)
        Strike.objects.filter(group=stand_in).update(group=group)
        days = set(MemberDayActivity.objects.filter(group=group).values_list("contact_id", "day"))
        MemberDayActivity.objects.filter(pk__in=[
            pk for pk, contact_id, day in MemberDayActivity.objects.filter(group=stand_in).values_list("pk", "contact_id", "day")
            if (contact_id, day) not in days
        ]).update(group=group)
        stand_in.delete()


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
    ``group.archived`` audit entry each) — or, when the group says so
    (``dismiss_at_end``), dismissed on its channel with its end farewell
    (:func:`do_dismiss_group`: the channel ends the group, or its owner gets the task).
    Returns the ids closed; safe to run repeatedly."""
    now = now or timezone.now()
    closed: list[int] = []
    due = Group.objects.filter(horizon=Horizon.SHORT_TERM, archived_at__isnull=True, ends_on__isnull=False).select_related("workspace")
    for group in due.order_by("id"):
        if group.ends_on is not None and group.ends_on < now.astimezone(group.workspace.tz).date():
            if group.dismiss_at_end:
                do_dismiss_group(group, None, farewell_text=group.end_farewell, reason="短期群已到期")
            else:
                do_archive_group(group, None)
            closed.append(group.pk)
    return closed


# --------------------------------------------------------------------------- roles, health, re-pull (engineer "health")


def _local_yesterday(workspace: Workspace, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(workspace.tz).date() - dt.timedelta(days=1)


def do_infer_member_roles(group: Group, *, day: dt.date | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """Evaluate the inferred roles of a group's open members for one local day (default:
    yesterday, the last complete day) with anti-flapping (see
    :mod:`siyu.communities.roles`): a new role replaces the current one only after it was
    proposed on ``HOLD_EVALUATIONS`` evaluations in a row; hand-set roles are left alone;
    a second evaluation of the same day is a no-op. Records ``member.roles_inferred``
    when a role changed. Returns ``{"evaluated", "changed", "pending"}``."""
    from siyu.communities.roles import HOLD_EVALUATIONS, infer_roles

    day = day or _local_yesterday(group.workspace, now)
    due = Membership.objects.filter(group=group, left_at__isnull=True, role_assigned=False).exclude(role_evaluated_on__gte=day)
    if not due.exists():  # the hourly pass after the day was done: nothing to read
        return {"evaluated": 0, "changed": 0, "pending": 0}
    proposals = infer_roles(group, day)
    memberships = Membership.objects.filter(pk__in=list(proposals)).exclude(role_evaluated_on__gte=day).select_related("contact")
    changed: list[dict[str, Any]] = []
    touched: list[Membership] = []
    pending = 0
    for m in memberships:
        proposal = proposals[m.pk]
        if m.role_evaluated_on is None or proposal.role == m.role:
            if m.role != proposal.role:
                changed.append({"membership": m.pk, "contact": m.contact.name, "from": m.role, "to": proposal.role})
            m.role, m.role_reason = proposal.role, proposal.reason
            m.role_candidate, m.role_candidate_reason, m.role_candidate_since, m.role_candidate_streak = "", "", None, 0
        elif proposal.role == m.role_candidate:
            m.role_candidate_streak += 1
            m.role_candidate_reason = proposal.reason
        else:
            m.role_candidate, m.role_candidate_reason, m.role_candidate_since, m.role_candidate_streak = proposal.role, proposal.reason, day, 1
        if m.role_candidate and m.role_candidate_streak >= HOLD_EVALUATIONS:
            changed.append({"membership": m.pk, "contact": m.contact.name, "from": m.role, "to": m.role_candidate})
            m.role, m.role_reason = m.role_candidate, m.role_candidate_reason
            m.role_candidate, m.role_candidate_reason, m.role_candidate_since, m.role_candidate_streak = "", "", None, 0
        pending += bool(m.role_candidate)
        m.role_evaluated_on = day
        touched.append(m)
    fields = ["role", "role_reason", "role_candidate", "role_candidate_reason", "role_candidate_since", "role_candidate_streak",
              "role_evaluated_on"]
    with transaction.atomic():
        Membership.objects.bulk_update(touched, fields, batch_size=500)
        if changed:
            record_audit(group.workspace, None, "member.roles_inferred", target=group, summary=f"{len(changed)} role changes on {day}",
                         after={"day": day.isoformat(), "changed": changed[:200]})
    return {"evaluated": len(touched), "changed": len(changed), "pending": pending}


def _save_health(group: Group, figures: list[Any], now: dt.datetime) -> list[Any]:
    from siyu.communities.models import GroupHealthDay

    values = ("messages", "talkers", "members", "active_ratio", "messages_avg7", "talkers_avg7", "messages_base", "talkers_base",
              "newcomers", "newcomer_retention", "silence_days", "ads_caught", "state", "reasons")
    existing = {row.day: row for row in GroupHealthDay.objects.filter(group=group, day__in=[f.day for f in figures])}
    rows, new = [], []
    for f in figures:
        row = existing.get(f.day) or GroupHealthDay(workspace_id=group.workspace_id, group=group, day=f.day)
        for name in values:
            setattr(row, name, getattr(f, name))
        row.computed_at = now
        rows.append(row)
        if row.pk is None:
            new.append(row)
    GroupHealthDay.objects.bulk_create(new, batch_size=500)
    GroupHealthDay.objects.bulk_update([r for r in rows if r not in new], [*values, "computed_at"], batch_size=500)
    return rows


def _raise_alert(group: Group, row: Any, previous: str, now: dt.datetime) -> Any:
    from siyu.channels.actions import do_create_staff_task
    from siyu.communities.models import Alert, AlertKind, HealthState

    kind = AlertKind.SILENT if row.state == HealthState.SILENT else AlertKind.FADING
    alert = Alert.objects.filter(group=group, day=row.day, kind=kind).first()
    if alert is not None:
        return None
    label = "已沉寂" if row.state == HealthState.SILENT else "活跃度下滑"
    message = f"社群「{group.name}」{label}：{'; '.join(row.reasons)}"[:300]
    task, _ = do_create_staff_task(
        group.workspace_id, kind=kind.value, account=group.channel_account, assignee=group.owner,
        title=f"「{group.name}」{label}：看看是否需要激活或重新拉群", dedupe_key=f"alert:{group.pk}:{row.day.isoformat()}:{kind.value}",
        detail={"group": group.pk, "group_name": group.name, "day": row.day.isoformat(), "state": row.state, "reasons": row.reasons},
    )
    alert = Alert.objects.create(
        workspace_id=group.workspace_id, group=group, kind=kind, day=row.day, from_state=previous, to_state=row.state, message=message,
        detail={"reasons": row.reasons, "messages_avg7": row.messages_avg7, "talkers_avg7": row.talkers_avg7, "members": row.members},
        staff_task=task, created_at=now,
    )
    record_audit(group.workspace, None, "group.alert_raised", target=alert, summary=message)
    return alert


def do_record_group_health(group: Group, first: dt.date, last: dt.date, *, now: dt.datetime | None = None) -> list[Any]:
    """Compute and store the daily health snapshots of a group from ``first`` to ``last``
    (local days; recomputing a day replaces its row). Walking the days in order, a
    transition into *fading* or *silent* raises one :class:`Alert` with a
    :class:`StaffTask` for the group's owner — once per transition (unique per group, day
    and kind); a return to *steady* or *thriving* resolves the open alerts. Records
    ``group.health_recorded`` and ``group.alert_raised``/``group.alert_resolved``.
    Returns the snapshot rows."""
    from siyu.communities.health import health_series
    from siyu.communities.models import Alert, GroupHealthDay, HealthState

    now = now or timezone.now()
    figures = health_series(group, first, last)
    if not figures:
        return []
    with transaction.atomic():
        rows = _save_health(group, figures, now)
        before = GroupHealthDay.objects.filter(group=group, day__lt=first).order_by("-day").values_list("state", flat=True).first()
        previous = before or ""
        raised = 0
        for row in rows:
            if row.state in (HealthState.FADING, HealthState.SILENT) and row.state != previous:
                raised += _raise_alert(group, row, previous, now) is not None
            elif row.state in (HealthState.THRIVING, HealthState.STEADY):
                open_alerts = Alert.objects.filter(group=group, resolved_at__isnull=True, day__lte=row.day)
                for alert in open_alerts:
                    _resolve(alert, None, f"recovered: {row.state} on {row.day.isoformat()}", now)
            previous = row.state
        record_audit(group.workspace, None, "group.health_recorded", target=group, summary=f"{first}…{last}: {rows[-1].state}",
                     after={"days": len(rows), "state": rows[-1].state, "alerts": raised})
    return rows


def do_refresh_group_health(group: Group, *, now: dt.datetime | None = None, days: int = 30) -> list[Any]:
    """Fill the missing daily snapshots of a group up to yesterday (at most ``days`` back)
    — the periodic task and the "recompute" button call this; cheap when up to date."""
    from siyu.communities.models import GroupHealthDay

    last = _local_yesterday(group.workspace, now)
    earliest = max(last - dt.timedelta(days=days - 1), group.created_at.astimezone(group.workspace.tz).date())
    latest = GroupHealthDay.objects.filter(group=group).order_by("-day").values_list("day", flat=True).first()
    first = max(earliest, latest + dt.timedelta(days=1)) if latest else earliest
    if first > last:
        return []
    return do_record_group_health(group, first, last, now=now)


def do_daily_group_care(now: dt.datetime | None = None) -> dict[str, int]:
    """The daily pass over every open group of every workspace: health snapshots up to
    yesterday (alerts on transitions), then inferred roles for yesterday. Idempotent:
    hourly runs only do the work of a new local day."""
    counts = {"groups": 0, "snapshots": 0, "role_changes": 0}
    for group in Group.objects.filter(archived_at__isnull=True).select_related("workspace", "owner", "channel_account").order_by("id"):
        counts["groups"] += 1
        counts["snapshots"] += len(do_refresh_group_health(group, now=now))
        counts["role_changes"] += do_infer_member_roles(group, now=now)["changed"]
    return counts


def _resolve(alert: Any, actor: Staff | None, note: str, now: dt.datetime) -> None:
    from siyu.channels.actions import do_close_staff_task
    from siyu.channels.models import StaffTaskStatus

    alert.resolved_at, alert.resolved_by, alert.resolution = now, actor, note[:300]
    alert.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    if alert.staff_task is not None and alert.staff_task.status == StaffTaskStatus.OPEN:
        # The alert's permission was checked by the caller; its task follows it as a system change.
        do_close_staff_task(alert.staff_task, None, status=StaffTaskStatus.DONE)
    record_audit(alert.group.workspace, actor, "group.alert_resolved", target=alert, summary=note[:300])


def do_resolve_alert(alert: Any, actor: Staff | None, *, note: str = "") -> Any:
    """Mark a group alert resolved (and its staff task done). Resolving twice is a no-op.
    Records ``group.alert_resolved``."""
    require(actor, Perm.MANAGE_GROUPS)
    if alert.resolved_at is not None:
        return alert
    with transaction.atomic():
        _resolve(alert, actor, note or "resolved", timezone.now())
    return alert


def _copy_group_settings(old: Group, new: Group, actor: Staff | None) -> None:
    """The old group's own settings layer, its own auto-replies and its moderation policy
    override go with it to the new group (through their actions, each audited)."""
    from siyu.communities.models import AutoReplyRule, GroupSettings
    from siyu.moderation.actions import do_set_policy
    from siyu.moderation.models import ModerationPolicy

    layer = GroupSettings.objects.filter(group=old).first()
    if layer is not None and layer.values:
        do_set_group_settings(new, actor, dict(layer.values))
    for rule in AutoReplyRule.objects.filter(group=old).order_by("id"):
        do_create_auto_reply(new.workspace, actor, name=rule.name, pattern=rule.pattern, reply=rule.reply, match=rule.match,
                             cooldown_seconds=rule.cooldown_seconds, priority=rule.priority, is_active=rule.is_active, group=new)
    policy = ModerationPolicy.objects.filter(group=old).first()
    if policy is not None:
        do_set_policy(new.workspace, actor, dict(policy.config), group=new)


def do_repull_group(
    workspace: Workspace,
    group: Group,
    *,
    actor: Staff | None,
    new_name: str | None = None,
    farewell_text: str | None = None,
    min_messages: int = 1,
    window_days: int = 30,
    archive_old: bool = True,
) -> Any:
    """Re-pull a group (重新拉群): create a fresh group with the old one's positioning,
    rules, welcome message, capacity, owner and admins; invite its active members (see
    :mod:`siyu.communities.repull`); post a farewell in the old group; archive the old
    group when ``archive_old``. Each step goes through the channel's outbox
    (CREATE_GROUP, INVITE_MEMBER, SEND_MESSAGE) or becomes a :class:`StaffTask` where the
    channel cannot do it (WeCom cannot create customer groups or post in them through the
    API). Invited members are recorded in the new group at once (as the moderation undo
    does); when a person must invite them, they join through the channel's events later.
    Open alerts of the old group are resolved. Idempotent: a second call returns the first
    re-pull. Records ``group.repulled``."""
    from siyu.channels.actions import do_command_or_task, do_create_staff_task
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.models import ChannelKind
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for
    from siyu.communities.models import Alert, GroupRepull, RepullStatus
    from siyu.communities.repull import DEFAULT_FAREWELL, active_members, default_new_name
    from siyu.contacts.models import ChannelIdentity

    require(actor, Perm.MANAGE_GROUPS)
    if group.workspace_id != workspace.pk:
        raise NotFound("group not found", code="group_not_found")
    existing = GroupRepull.objects.filter(old_group=group).select_related("new_group").first()
    if existing is not None:
        return existing
    if group.archived_at is not None:
        raise Conflict("the group is archived", code="group_archived")
    if not 1 <= min_messages <= 10_000 or not 1 <= window_days <= 365:
        raise ValidationFailed("min_messages must be 1–10000 and window_days 1–365", code="invalid_repull_window")
    name = (new_name or "").strip() or default_new_name(group)
    now = timezone.now()
    movers = active_members(group, min_messages=min_messages, window_days=window_days, now=now)
    account = group.channel_account
    adapter = adapter_for(account) if account is not None else None
    applied: list[dict[str, Any]] = []
    waiting = False

    def send_or_task(command: Command, title: str, detail: dict[str, Any]) -> bool:
        nonlocal waiting
        assert account is not None
        where, pk = do_command_or_task(account, command, task_kind=f"repull_{command.kind.value}", title=title, detail=detail,
                                       assignee=group.owner)
        applied.append({where: pk, "command": command.kind.value})
        waiting = waiting or where == "staff_task"
        return where == "outbox"

    with transaction.atomic():
        locked = Group.objects.select_for_update().get(pk=group.pk)
        existing = GroupRepull.objects.filter(old_group=locked).first()
        if existing is not None:
            return existing
        sandbox = account is not None and account.kind == ChannelKind.SANDBOX
        new = do_create_group(
            workspace, actor, name=name, group_type=group.group_type, horizon=group.horizon, ends_on=group.ends_on, dismiss_at_end=group.dismiss_at_end,
            end_farewell=group.end_farewell, vision=group.vision,
            rights=group.rights, threshold=group.threshold, threshold_detail=group.threshold_detail, rules_text=group.rules_text,
            welcome_message=group.welcome_message, capacity=group.capacity, owner=group.owner, channel_account=account,
            external_id=f"{group.external_id or 'sbx'}-repull-{group.pk}"[:200] if sandbox else "",
        )
        new.admins.set(group.admins.all())
        _copy_group_settings(group, new, actor)
        identities = dict(
            ChannelIdentity.objects.filter(account=account, contact_id__in=[m.contact_id for m in movers]).values_list("contact_id", "external_id")
        ) if account is not None else {}
        invitees = [m for m in movers if account is None or m.contact_id in identities]
        base = f"repull:{group.pk}"
        invited_now = account is None
        if account is not None and adapter is not None:
            people = [{"contact": m.contact_id, "name": m.contact.name, "member": identities[m.contact_id]} for m in invitees]
            inline_invites = not new.external_id and adapter.can(Capability.CREATE_GROUP)
            created = send_or_task(
                Command(CommandKind.CREATE_GROUP, f"{base}:create", "", {
                    "name": name, "group_id": new.pk, "topic": group.vision,
                    **({"invite": [p["member"] for p in people]} if inline_invites else {}),
                }),
                f"新建群「{name}」并邀请{len(people)}位活跃成员（重新拉群）", {"old_group": group.pk, "new_group": new.pk, "invite": people},
            )
            if created and inline_invites:
                invited_now = True
            elif created and adapter.can(Capability.INVITE_MEMBER):
                for p in people:
                    do_enqueue(account, Command(CommandKind.INVITE_MEMBER, f"{base}:invite:{p['contact']}", new.external_id,
                                                {"member": p["member"], "reason": "repull"}))
                applied.append({"invited": len(people), "command": CommandKind.INVITE_MEMBER.value})
                invited_now = True
            elif created:
                do_create_staff_task(workspace.pk, kind="repull_invite_member", title=f"把{len(people)}位活跃成员拉进新群「{name}」",
                                     detail={"new_group": new.pk, "invite": people}, account=account, assignee=group.owner,
                                     dedupe_key=f"task:{base}:invite")
                waiting = True
            farewell = (farewell_text or "").strip() or DEFAULT_FAREWELL.format(new=name)
            send_or_task(Command(CommandKind.SEND_MESSAGE, f"{base}:farewell", group.external_id, {"to": "group", "text": farewell}),
                         f"在「{group.name}」发布告别公告", {"group": group.pk, "text": farewell})
        if invited_now:
            for m in invitees:
                do_add_member(new, m.contact, None, join_source="repull", role=m.role if m.role_assigned else None)
        repull = GroupRepull.objects.create(
            workspace_id=workspace.pk, old_group=group, new_group=new, status=RepullStatus.WAITING_FOR_STAFF if waiting else RepullStatus.DONE,
            invited=[m.contact_id for m in invitees], applied=applied, created_by=actor, created_at=now,
        )
        for alert in Alert.objects.filter(group=group, resolved_at__isnull=True):
            _resolve(alert, actor, f"re-pulled into {name}", now)
        if archive_old:
            do_archive_group(group, actor)
        record_audit(workspace, actor, "group.repulled", target=repull, summary=f"{group.name} → {name}: {len(invitees)} members",
                     after={"old_group": group.pk, "new_group": new.pk, "invited": repull.invited, "applied": applied, "archived": archive_old})
    return repull


# --- group settings, keyword auto-replies, onboarding (群设置 / 关键词自动回复 / 入群引导) ---


def _save_settings_layer(
    workspace: Workspace, actor: Staff | None, values: dict[str, Any], *, group: Group | None = None, group_type: str = "",
) -> Any:
    from siyu.communities.group_settings import clean_values
    from siyu.communities.models import GroupSettings, GroupSettingsScope

    require(actor, Perm.MANAGE_GROUPS)
    if group is not None and group.workspace_id != workspace.pk:
        raise NotFound("group not found", code="group_not_found")
    if group_type and group_type not in GroupType.values:
        raise ValidationFailed(f"unknown group type {group_type!r}; expected {', '.join(GroupType.values)}", code="invalid_group_type")
    clean = clean_values(workspace, values)
    scope = GroupSettingsScope.GROUP if group is not None else (GroupSettingsScope.TEMPLATE if group_type else GroupSettingsScope.DEFAULT)
    with transaction.atomic():
        if group is not None:
            row = GroupSettings.objects.filter(group=group).first()
        else:
            row = GroupSettings.objects.in_workspace(workspace).filter(scope=scope, group_type=group_type).first()
        before = dict(row.values) if row else {}
        merged = {k: v for k, v in {**before, **clean}.items() if v is not None}
        if row is None:
            row = GroupSettings.objects.create(workspace=workspace, scope=scope, group=group, group_type=group_type, values=merged)
        else:
            row.values = merged
            row.save(update_fields=["values", "updated_at"])
        if group is not None:
            # the Group row mirrors its own rules, welcome and capacity for the code that reads them there
            mirrored: dict[str, Any] = {}
            for key in ("rules_text", "welcome_message"):
                if key in clean:
                    mirrored[key] = clean[key] or ""
            changed = [k for k, v in mirrored.items() if getattr(group, k) != v]
            for key in changed:
                setattr(group, key, mirrored[key])
            if changed:
                group.save(update_fields=changed)
        if "capacity" in clean:
            _mirror_capacity(workspace, group=group, group_type=group_type)
        label = "group" if group is not None else (f"template:{group_type}" if group_type else "default")
        record_audit(workspace, actor, "group_settings.saved", target=group or row, summary=label, before=before, after=merged)
    return row


def _mirror_capacity(workspace: Workspace, *, group: Group | None, group_type: str) -> None:
    """``Group.capacity`` is what live codes and member limits read: keep it equal to the
    effective capacity of every group the saved layer reaches (the group itself, the
    groups of the template's type, or all groups for the workspace default)."""
    from siyu.communities.group_settings import effective_for_groups

    if group is not None:
        groups = [group]
    else:
        query = Group.objects.in_workspace(workspace).filter(archived_at__isnull=True)
        groups = list(query.filter(group_type=group_type) if group_type else query)
    resolved = effective_for_groups(groups)
    for g in groups:
        capacity = int(resolved[g.pk]["capacity"])
        if g.capacity != capacity:
            g.capacity = capacity
            g.save(update_fields=["capacity"])


def do_set_group_settings(group: Group, actor: Staff | None, values: dict[str, Any]) -> Any:
    """Set a group's own settings (群设置); a key set to ``None`` goes back to inheriting
    from the template for the group's type or the workspace default. Rules, welcome and
    capacity are mirrored on the group row. Records ``group_settings.saved``."""
    return _save_settings_layer(group.workspace, actor, values, group=group)


def do_set_settings_layer(workspace: Workspace, actor: Staff | None, values: dict[str, Any], *, group_type: str = "") -> Any:
    """Set the workspace default settings, or with ``group_type`` the template for that
    type of group (福利群 / 转化群 / 组织群). Records ``group_settings.saved``."""
    return _save_settings_layer(workspace, actor, values, group_type=group_type)


AUTO_REPLY_FIELDS = ("name", "match", "pattern", "reply", "cooldown_seconds", "priority", "is_active", "group")


def _clean_auto_reply(workspace: Workspace, values: dict[str, Any], current: Any = None) -> dict[str, Any]:
    from siyu.communities.autoreply import check_pattern

    unknown = set(values) - set(AUTO_REPLY_FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown auto-reply field(s) {', '.join(sorted(unknown))}", code="unknown_field")
    clean = dict(values)
    if "name" in clean:
        clean["name"] = (clean["name"] or "").strip()[:100]
        if not clean["name"]:
            raise ValidationFailed("an auto-reply needs a name", code="name_required")
    if "reply" in clean:
        clean["reply"] = (clean["reply"] or "").strip()
        if not clean["reply"] or len(clean["reply"]) > 2000:
            raise ValidationFailed("the reply must be 1–2000 characters", code="invalid_reply")
    if "match" in clean or "pattern" in clean:
        match = clean.get("match", getattr(current, "match", "contains"))
        clean["match"] = match
        clean["pattern"] = check_pattern(match, clean.get("pattern", getattr(current, "pattern", "")))
    if "cooldown_seconds" in clean:
        value = clean["cooldown_seconds"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 7 * 86400:
            raise ValidationFailed("cooldown_seconds must be between 0 and 604800", code="invalid_cooldown")
    if "priority" in clean and (not isinstance(clean["priority"], int) or isinstance(clean["priority"], bool)):
        raise ValidationFailed("priority must be a whole number", code="invalid_priority")
    if "is_active" in clean and not isinstance(clean["is_active"], bool):
        raise ValidationFailed("is_active must be true or false", code="invalid_setting")
    if clean.get("group") is not None:
        group_id = clean["group"] if isinstance(clean["group"], int) else clean["group"].pk
        clean["group"] = Group.objects.in_workspace(workspace).filter(pk=group_id).first()
        if clean["group"] is None:
            raise NotFound("group not found", code="group_not_found")
    return clean


def _auto_reply_snapshot(rule: Any) -> dict[str, Any]:
    return {f: (rule.group_id if f == "group" else getattr(rule, f)) for f in AUTO_REPLY_FIELDS}


def do_create_auto_reply(workspace: Workspace, actor: Staff | None, *, name: str, pattern: str, reply: str, **fields: Any) -> Any:
    """Create a keyword auto-reply for one group (``group``) or the whole workspace. A
    regex is validated and probed for catastrophic backtracking first. Records
    ``auto_reply.created``."""
    from siyu.communities.autoreply import invalidate
    from siyu.communities.models import AutoReplyRule

    require(actor, Perm.MANAGE_GROUPS)
    clean = _clean_auto_reply(workspace, {"name": name, "pattern": pattern, "reply": reply, "match": fields.pop("match", "contains"), **fields})
    with transaction.atomic():
        rule = AutoReplyRule.objects.create(workspace=workspace, **clean)
        record_audit(workspace, actor, "auto_reply.created", target=rule, after=_auto_reply_snapshot(rule))
        invalidate()
        transaction.on_commit(invalidate)
    return rule


def do_update_auto_reply(rule: Any, actor: Staff | None, **changes: Any) -> Any:
    """Change an auto-reply. Records ``auto_reply.updated`` with before/after."""
    from siyu.communities.autoreply import invalidate

    require(actor, Perm.MANAGE_GROUPS)
    clean = _clean_auto_reply(rule.workspace, changes, current=rule)
    before = _auto_reply_snapshot(rule)
    for key, value in clean.items():
        setattr(rule, key, value)
    with transaction.atomic():
        rule.save(update_fields=[*clean.keys(), "updated_at"])
        record_audit(rule.workspace, actor, "auto_reply.updated", target=rule, before=before, after=_auto_reply_snapshot(rule))
        invalidate()
        transaction.on_commit(invalidate)
    return rule


def do_delete_auto_reply(rule: Any, actor: Staff | None) -> None:
    """Delete an auto-reply (its cool-down state goes with it). Records ``auto_reply.deleted``."""
    from siyu.communities.autoreply import invalidate

    require(actor, Perm.MANAGE_GROUPS)
    with transaction.atomic():
        record_audit(rule.workspace, actor, "auto_reply.deleted", target=rule, before=_auto_reply_snapshot(rule))
        rule.delete()
        invalidate()
        transaction.on_commit(invalidate)


def do_send_auto_replies(items: list[tuple[ChannelAccount, Group, GroupMessage, Any]]) -> list[Any]:
    """Answer messages that triggered a keyword auto-reply: each reply goes to the outbox
    (key ``autoreply:<rule>:<message>``, so a re-processed message answers once; a reply
    deferred past quiet hours waits with ``not_before``) and the rule's cool-down in that
    group restarts at the message's time. ``items`` are (account, group, message,
    :class:`siyu.communities.autoreply.Reply`). Bot replies are not audited one by one:
    the outbox row is their record. Returns the outbox rows."""
    from siyu.channels.base import Command, CommandKind
    from siyu.channels.outbox import do_enqueue
    from siyu.communities.models import AutoReplyFiring

    rows = []
    with transaction.atomic():
        for account, group, message, reply in items:
            firing = AutoReplyFiring.objects.filter(rule_id=reply.rule.pk, group=group).first()
            if firing is None:
                AutoReplyFiring.objects.create(workspace_id=group.workspace_id, rule_id=reply.rule.pk, group=group,
                                               last_fired_at=message.sent_at, fired=1)
            elif firing.last_fired_at < message.sent_at:
                firing.last_fired_at, firing.fired = message.sent_at, firing.fired + 1
                firing.save(update_fields=["last_fired_at", "fired"])
            command = Command(CommandKind.SEND_MESSAGE, f"autoreply:{reply.rule.pk}:{message.pk}", group.external_id,
                              {"to": "group", "text": reply.rule.reply, "reply_to": message.external_id})
            row, _ = do_enqueue(account, command, not_before=reply.not_before)
            rows.append(row)
    return rows


def _quiet_not_before(group: Group, effective: Any, when: dt.datetime) -> dt.datetime | None:
    from siyu.communities.group_settings import in_quiet_hours, quiet_hours_end

    quiet = effective["quiet_hours"]
    tz = group.workspace.tz
    return quiet_hours_end(quiet, when, tz) if in_quiet_hours(quiet, when, tz) else None


def do_onboard_member(account: ChannelAccount, membership: Membership, *, member_external_id: str, key: str) -> dict[str, Any]:
    """Welcome a member who just joined (入群引导), by the group's effective settings: the
    welcome text (``{member}``, ``{group}``, ``{rules_link}``) @-mentioning them through
    the channel (held until quiet hours end), a coupon from the welcome coupon template
    once per membership, and a tag naming the join source (live-code state, join way)
    in the configured tag group. Each part is skipped where it is not configured or the
    channel cannot do it. Returns what was done; the parts record their own events
    (outbox row, ``coupon.issued``, ``contacts.tagged``)."""
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for
    from siyu.communities.group_settings import effective, render_template

    group, contact = membership.group, membership.contact
    settings = effective(group)
    done: dict[str, Any] = {}
    welcome = settings["welcome_message"]
    if welcome and group.external_id and adapter_for(account).can(Capability.SEND_GROUP_MESSAGE):
        text = render_template(welcome, member=contact.name, group=group.name, rules_link=settings["rules_link"])
        row, _ = do_enqueue(account, Command(CommandKind.SEND_MESSAGE, key, group.external_id,
                                             {"to": "group", "text": text, "mention": member_external_id}),
                            not_before=_quiet_not_before(group, settings, timezone.now()))
        done["welcome"] = row.pk
    if (template_id := settings["welcome_coupon_template"]) is not None:
        done["coupon"] = _welcome_coupon(group, membership, template_id)
    if settings["tag_join_source"] and membership.join_source:
        from siyu.channels.handlers import split_state
        from siyu.contacts.actions import do_get_or_create_tag, do_tag_contacts
        from siyu.contacts.models import TagSource

        channel, _campaign = split_state(membership.join_source)
        tag = do_get_or_create_tag(group.workspace, None, group_name=settings["join_source_tag_group"], name=(channel or membership.join_source)[:50])
        do_tag_contacts(group.workspace, None, [contact], [tag], source=TagSource.CHANNEL, reason=f"joined {group.name}")
        done["tag"] = tag.pk
    return done


def _welcome_coupon(group: Group, membership: Membership, template_id: int) -> int | None:
    from siyu.commerce.actions import do_issue_coupon
    from siyu.commerce.models import Coupon, CouponSource, CouponTemplate

    ref = f"group-welcome:{membership.pk}"
    existing = Coupon.objects.filter(contact=membership.contact, source_ref=ref).values_list("pk", flat=True).first()
    if existing is not None:
        return existing
    template = CouponTemplate.objects.in_workspace(group.workspace_id).filter(pk=template_id).first()
    if template is None:
        return None
    try:
        with transaction.atomic():
            return do_issue_coupon(template, membership.contact, None, source=CouponSource.REWARD, source_ref=ref).pk
    except (Conflict, ValidationFailed) as exc:
        # out of stock, limit reached, template ended: the welcome goes out without it
        record_audit(group.workspace, None, "onboarding.coupon_skipped", target=membership, summary=str(exc)[:300])
        return None


#: members who joined longer ago than the nudge delay plus this are not nudged late
NUDGE_GRACE = dt.timedelta(days=3)


def do_send_first_days_nudges(now: dt.datetime | None = None, *, limit: int = 5000) -> dict[str, int]:
    """The first-days nudge (自我介绍邀请): members who joined ``nudge_after_hours`` ago
    (by their group's settings) and have not spoken since get one gentle @-mention
    inviting them to introduce themselves. Once per membership (an
    :class:`OnboardingNudge` row, also written for members who did speak, so they are
    checked once); nothing is sent during the group's quiet hours (the next run sends
    it). Safe to run repeatedly. Returns counts."""
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for
    from siyu.communities.group_settings import effective_for_groups, in_quiet_hours, render_template
    from siyu.communities.models import OnboardingNudge
    from siyu.contacts.models import ChannelIdentity

    now = now or timezone.now()
    counts = {"nudged": 0, "spoke": 0, "quiet": 0, "skipped": 0}
    candidates = list(
        Membership.objects.filter(
            left_at__isnull=True, nudge__isnull=True, group__archived_at__isnull=True, joined_at__lte=now,
            joined_at__gte=now - dt.timedelta(hours=24 * 30) - NUDGE_GRACE,
        ).exclude(join_source="seen_speaking").select_related("group", "group__workspace", "group__channel_account", "contact").order_by("id")[:limit]
    )
    settings = effective_for_groups({m.group_id: m.group for m in candidates}.values())
    for membership in candidates:
        group, eff = membership.group, settings[membership.group_id]
        after = eff["nudge_after_hours"]
        if not after or not (now - dt.timedelta(hours=after) - NUDGE_GRACE <= membership.joined_at <= now - dt.timedelta(hours=after)):
            continue
        account = group.channel_account
        if account is None or not group.external_id or not adapter_for(account).can(Capability.SEND_GROUP_MESSAGE):
            counts["skipped"] += 1
            continue
        spoke = GroupMessage.objects.filter(group=group, sender_id=membership.contact_id, sent_at__gte=membership.joined_at).exists()
        if not spoke and in_quiet_hours(eff["quiet_hours"], now, group.workspace.tz):
            counts["quiet"] += 1
            continue
        key = "" if spoke else f"nudge:{membership.pk}"
        with transaction.atomic():
            try:
                with transaction.atomic():
                    OnboardingNudge.objects.create(workspace_id=group.workspace_id, membership=membership, group=group, outbox_key=key, created_at=now)
            except IntegrityError:
                continue  # another run got there first
            if spoke:
                counts["spoke"] += 1
                continue
            member_id = ChannelIdentity.objects.filter(account=account, contact_id=membership.contact_id).values_list("external_id", flat=True).first() or ""
            text = render_template(eff["nudge_text"], member=membership.contact.name, group=group.name, rules_link=eff["rules_link"])
            do_enqueue(account, Command(CommandKind.SEND_MESSAGE, key, group.external_id, {"to": "group", "text": text, "mention": member_id}))
            counts["nudged"] += 1
    return counts


# ---------------------------------------------------------------- activity counters


def do_add_activity(counter: Any) -> int:
    """Add an :class:`~siyu.communities.activity.ActivityCounter`'s deltas to the stored
    :class:`MemberDayActivity` rows in one statement batch (``INSERT … ON CONFLICT DO
    UPDATE SET x = x + excluded.x``, atomic per row on SQLite and PostgreSQL). Counters
    are derived data: no audit entry per message. Returns the number of rows touched."""
    from django.db import connection

    from siyu.communities.activity import UPSERT_SQL
    from siyu.communities.models import MemberDayActivity

    if not counter:
        return 0
    rows = [(ws, group, contact, day, *values) for (ws, group, contact, day), values in sorted(counter.deltas.items())]
    sql = UPSERT_SQL.format(table=connection.ops.quote_name(MemberDayActivity._meta.db_table))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


def do_rebuild_activity(workspace: Workspace, group: Group | None = None, since: dt.date | dt.datetime | None = None) -> int:
    """Recompute the activity counters of a workspace (or one group) from its stored
    group messages, from the local day ``since`` on (everything when omitted): the rows
    in that range are replaced. For data loaded in bulk (the demo seeding) and repairs.
    Records ``activity.rebuilt``; returns the number of counter rows written."""
    from siyu.communities.activity import count_stored_messages
    from siyu.communities.models import MemberDayActivity

    counter, messages, since_day = count_stored_messages(workspace, group, since)
    stored = MemberDayActivity.objects.in_workspace(workspace)
    if group is not None:
        stored = stored.filter(group=group)
    if since_day is not None:
        stored = stored.filter(day__gte=since_day)
    with transaction.atomic():
        stored.delete()
        MemberDayActivity.objects.bulk_create(
            [
                MemberDayActivity(workspace_id=ws, group_id=g, contact_id=c, day=day, messages=v[0], replies_received=v[1],
                                  mentions=v[2], links=v[3])
                for (ws, g, c, day), v in sorted(counter.deltas.items())
            ],
            batch_size=500,
        )
        record_audit(workspace, None, "activity.rebuilt", target=group, summary=f"since {since_day or 'the beginning'}",
                     after={"rows": len(counter.deltas), "messages": messages})
    return len(counter.deltas)
