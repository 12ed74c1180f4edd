"""Reads of groups and memberships."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from siyu.communities.models import Group, Membership
from siyu.core.models import Workspace


def groups_with_counts(workspace: Workspace) -> QuerySet[Group]:
    return Group.objects.in_workspace(workspace).annotate(
        member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    )


def open_members(group: Group) -> QuerySet[Membership]:
    return Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact").order_by("joined_at")
