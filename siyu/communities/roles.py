"""Inferred member roles (成员角色) from a rolling window of activity.

Each evaluation looks at the last ``WINDOW_DAYS`` local days of :class:`MemberDayActivity`
(messages, replies received, @-mentions, links) and the moderation cases of every open
member, and proposes one role with a plain explanation. Thresholds are relative to the
group — percentiles among the members who spoke in the window — with absolute floors so
that a quiet group does not crown someone for three messages:

==========  ==============================================================================
role        rule (first that matches wins)
==========  ==============================================================================
rebel       at least one moderation case in the window that was not undone (反动派)
lurker      no messages in the window (潜水党)
core        messages >= max(10, p90 of messages) and replies received >= max(5, p75 of
            replies received) (骨干精英)
expert      replies received >= max(5, p75) and replies per message >= 1, or links shared
            >= max(3, p90 of links) with replies per message >= 0.5 (隐藏大佬)
mascot      @-mentions received >= max(3, p90 of mentions) (团宠)
onlooker    spoke, but none of the above (吃瓜群众)
==========  ==============================================================================

Anti-flapping: a proposal that differs from the current role becomes a *candidate* and
replaces the role only after it was proposed on ``HOLD_EVALUATIONS`` daily evaluations in
a row; any other proposal in between restarts the count. A membership evaluated for the
first time takes its proposal at once (the default ``onlooker`` is a placeholder, not an
observation). Roles set by hand (``role_assigned``: owner, admins, anyone an operator
chose) are never touched.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Sum
from django.utils.translation import gettext, ngettext

from siyu.communities.models import Group, MemberDayActivity, MemberRole, Membership

__all__ = ["HOLD_EVALUATIONS", "WINDOW_DAYS", "Inference", "MemberStats", "classify", "day_bounds", "infer_roles"]

WINDOW_DAYS = 30
HOLD_EVALUATIONS = 7
CORE_MIN_MESSAGES = 10
MIN_REPLIES = 5
MIN_LINKS = 3
MIN_MENTIONS = 3


@dataclass(frozen=True)
class MemberStats:
    contact_id: int
    messages: int = 0
    replies_received: int = 0
    mentions: int = 0
    links: int = 0
    cases: int = 0


@dataclass(frozen=True)
class Inference:
    role: str
    reason: str


@dataclass(frozen=True)
class GroupThresholds:
    messages: float
    replies: float
    links: float
    mentions: float


def percentile(values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def thresholds(stats: Sequence[MemberStats]) -> GroupThresholds:
    talkers = [s for s in stats if s.messages > 0]
    return GroupThresholds(
        messages=max(CORE_MIN_MESSAGES, percentile([s.messages for s in talkers], 90)),
        replies=max(MIN_REPLIES, percentile([s.replies_received for s in talkers], 75)),
        links=max(MIN_LINKS, percentile([s.links for s in talkers], 90)),
        mentions=max(MIN_MENTIONS, percentile([s.mentions for s in stats], 90)),
    )


def classify(s: MemberStats, t: GroupThresholds, *, window_days: int = WINDOW_DAYS) -> Inference:
    """The role the numbers suggest for one member, with its explanation (pure; in the
    active language — the workspace's, zh-hans, when the worker stores it)."""
    n = {"days": window_days, "messages": s.messages, "replies": s.replies_received, "mentions": s.mentions, "links": s.links, "cases": s.cases}
    if s.cases:
        return Inference(MemberRole.REBEL, ngettext("%(cases)s moderation case in %(days)s days (ads or banned content)",
                                                    "%(cases)s moderation cases in %(days)s days (ads or banned content)", s.cases) % n)
    if s.messages == 0:
        if s.mentions:
            return Inference(MemberRole.LURKER, gettext("no messages in %(days)s days; @-mentioned %(mentions)s times") % n)
        return Inference(MemberRole.LURKER, gettext("no messages in %(days)s days") % n)
    ratio = s.replies_received / s.messages
    if s.messages >= t.messages and s.replies_received >= t.replies:
        return Inference(
            MemberRole.CORE, gettext("%(messages)s messages and %(replies)s replies received in %(days)s days — top 10%% of this group") % n,
        )
    if (s.replies_received >= t.replies and ratio >= 1) or (s.links >= t.links and ratio >= 0.5):
        return Inference(
            MemberRole.EXPERT,
            gettext("%(replies)s replies to %(messages)s messages and %(links)s links shared in %(days)s days — others answer what they post") % n,
        )
    if s.mentions >= t.mentions:
        return Inference(MemberRole.MASCOT, gettext("@-mentioned %(mentions)s times in %(days)s days — top 10%% of this group") % n)
    return Inference(MemberRole.ONLOOKER, ngettext("%(messages)s message in %(days)s days", "%(messages)s messages in %(days)s days", s.messages) % n)


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where a local day starts and ends (DST-safe: each end is the next
    local midnight)."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def window(day: dt.date, window_days: int = WINDOW_DAYS) -> tuple[dt.date, dt.date]:
    return day - dt.timedelta(days=window_days - 1), day


def member_stats(group: Group, memberships: Sequence[Membership], day: dt.date, window_days: int = WINDOW_DAYS) -> dict[int, MemberStats]:
    """Window totals per contact for the given memberships (two aggregate queries)."""
    from siyu.moderation.models import ModerationCase

    first, last = window(day, window_days)
    contact_ids = [m.contact_id for m in memberships]
    rows = (
        MemberDayActivity.objects.filter(group=group, day__gte=first, day__lte=last, contact_id__in=contact_ids)
        .values("contact_id")
        .annotate(m=Sum("messages"), r=Sum("replies_received"), n=Sum("mentions"), links=Sum("links"))
    )
    totals = {row["contact_id"]: row for row in rows}
    tz = group.workspace.tz
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    cases = dict(
        ModerationCase.objects.filter(
            group=group, contact_id__in=contact_ids, undone_at__isnull=True, created_at__gte=start, created_at__lt=end
        )
        .values_list("contact_id")
        .annotate(n=Count("id"))
        .values_list("contact_id", "n")
    )
    out: dict[int, MemberStats] = {}
    for cid in contact_ids:
        row = totals.get(cid, {})
        out[cid] = MemberStats(
            cid, int(row.get("m") or 0), int(row.get("r") or 0), int(row.get("n") or 0), int(row.get("links") or 0), int(cases.get(cid, 0))
        )
    return out


def infer_roles(group: Group, day: dt.date, *, window_days: int = WINDOW_DAYS) -> dict[int, Inference]:
    """What each open, not hand-assigned membership of the group would be on ``day``,
    keyed by membership id (reads only)."""
    memberships = list(Membership.objects.filter(group=group, left_at__isnull=True, role_assigned=False))
    if not memberships:
        return {}
    stats = member_stats(group, memberships, day, window_days)
    limits = thresholds(list(stats.values()))
    return {m.pk: classify(stats[m.contact_id], limits, window_days=window_days) for m in memberships}
