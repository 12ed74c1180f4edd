"""Reads of groups, memberships and group messages."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm
from siyu.communities.models import Group, GroupMessage, Membership
from siyu.core.models import Workspace


def groups_with_counts(workspace: Workspace) -> QuerySet[Group]:
    return Group.objects.in_workspace(workspace).annotate(
        member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    )


def find_groups(workspace: Workspace, *, q: str = "", group_type: str = "", horizon: str = "", health: str = "",
                archived: bool = False) -> QuerySet[Group]:
    """The group list's search, newest first: open groups (``archived``: the archived ones
    too), with ``member_count`` and ``health_state`` (the latest daily health snapshot's
    state, ``None`` before the first), filtered by name (``q``, contained), type, horizon
    and health state."""
    from siyu.communities.models import GroupHealthDay

    latest = GroupHealthDay.objects.filter(group=OuterRef("pk")).order_by("-day")
    qs = groups_with_counts(workspace).annotate(health_state=Subquery(latest.values("state")[:1])).order_by("-created_at", "-id")
    if not archived:
        qs = qs.filter(archived_at__isnull=True)
    if q:
        qs = qs.filter(name__icontains=q)
    if group_type:
        qs = qs.filter(group_type=group_type)
    if horizon:
        qs = qs.filter(horizon=horizon)
    if health:
        qs = qs.filter(health_state=health)
    return qs


def open_members(group: Group) -> QuerySet[Membership]:
    return Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact").order_by("joined_at")


def may_read_messages(group: Group, staff: Staff | None) -> bool:
    """Who may read a group's messages (群聊记录): staff who see every contact (operators,
    analysts, admins, owners), and an agent only in the groups they own or administer."""
    if staff is None or has_perm(staff, Perm.VIEW_ALL_CONTACTS):  # None: the system
        return True
    return has_perm(staff, Perm.VIEW_GROUPS) and (group.owner_id == staff.pk or group.admins.filter(pk=staff.pk).exists())


def group_messages(group: Group, *, q: str = "", sender_id: int | None = None, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> QuerySet[GroupMessage]:
    """A group's messages, newest first, with the sender and the moderation verdict on each
    (``verdict``, ``case_id``: empty when none): ``q`` finds a text (case-insensitive),
    ``sender_id`` one contact's, ``since``/``until`` a period (``until`` excluded)."""
    from siyu.moderation.models import ModerationCase

    cases = ModerationCase.objects.filter(message=OuterRef("pk")).order_by("-id")
    qs = (GroupMessage.objects.filter(group=group).select_related("sender")
          .annotate(verdict=Subquery(cases.values("verdict")[:1]), case_id=Subquery(cases.values("id")[:1])))
    if q:
        qs = qs.filter(text__icontains=q)
    if sender_id is not None:
        qs = qs.filter(sender_id=sender_id)
    if since is not None:
        qs = qs.filter(sent_at__gte=since)
    if until is not None:
        qs = qs.filter(sent_at__lt=until)
    return qs.order_by("-sent_at", "-id")
