"""Re-pull (重新拉群), read side: who moves to the fresh group, and what is said.

99% of groups fall silent within a month; the remedy is to invite the members who still
talk into a fresh group and let the old one go. The people who move are the open members
with at least ``min_messages`` messages in the group within the last ``window_days`` days,
plus the hand-set owner and admins (they run the new group too). Members whose current
role is *rebel* (ads in the window) stay behind.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from django.utils import timezone

from siyu.communities.models import Group, GroupMessage, MemberRole, Membership

__all__ = ["DEFAULT_FAREWELL", "active_members", "default_new_name"]

DEFAULT_FAREWELL = "本群即将停止使用。最近活跃的朋友已被邀请进新群「{new}」，感谢大家一路的陪伴，我们新群见！"


def default_new_name(group: Group) -> str:
    base = group.name.removesuffix("（新）")
    return f"{base}（新）"[:100]


def active_members(group: Group, *, min_messages: int = 1, window_days: int = 30, now: dt.datetime | None = None) -> list[Membership]:
    """The open memberships that move in a re-pull, in join order."""
    now = now or timezone.now()
    talkers = (
        GroupMessage.objects.filter(group=group, sender__isnull=False, sent_at__gte=now - dt.timedelta(days=window_days), sent_at__lte=now)
        .values("sender_id")
        .annotate(n=Count("id"))
        .filter(n__gte=max(1, min_messages))
        .values_list("sender_id", flat=True)
    )
    talking = set(talkers)
    members = Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact").order_by("joined_at", "id")
    return [
        m
        for m in members
        if m.role != MemberRole.REBEL
        and (m.contact_id in talking or (m.role_assigned and m.role in (MemberRole.OWNER, MemberRole.ADMIN)))
    ]
