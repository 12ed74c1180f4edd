"""Group health (社群健康度): daily figures and a state per group, read side.

For each completed local day (workspace time zone) of a group:

- ``messages``, ``talkers`` — messages by members that day and how many members sent them;
- ``members`` — open memberships at the end of the day; ``active_ratio`` = talkers / members
  (healthy ≈ 10–15%: 20–30 daily talkers in a 200-member group);
- ``messages_avg7`` / ``talkers_avg7`` — daily averages over the 7 days ending that day, and
  ``messages_base`` / ``talkers_base`` over the 21 days before (None while fewer than 7
  baseline days were observed). Days before the group was created or before its first
  stored message are not observed and left out of both averages;
- ``newcomers`` / ``newcomer_retention`` — members who joined 7–14 days before, and the
  share of them still in the group who have spoken since joining;
- ``silence_days`` — days since the last message (since creation when there is none);
- ``ads_caught`` — moderation cases that day.

The state, first rule that matches:

=========  ==================================================================================
silent     no message for ``SILENT_DAYS`` (7) days or more
fading     7-day average messages or talkers ≤ 60% of the 21-day baseline (a drop of ≥ 40%,
           with a baseline of at least 1 message / 1 talker a day), or — with at least
           ``RATIO_MIN_MEMBERS`` (20) members and 7 observed days — 7-day average talkers
           below ``RATIO_FLOOR`` (2%) of the members
thriving   7-day average talkers ≥ ``THRIVING_RATIO`` (10%) of the members and at least 3
steady     anything else
=========  ==================================================================================

Figures come from :class:`GroupMessage` rows (the source of truth), so health does not
depend on the activity counters being up to date.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Max, Min
from django.utils.translation import gettext

from siyu.communities.models import Group, GroupMessage, HealthState, Membership
from siyu.communities.roles import day_bounds

__all__ = [
    "BASELINE_DAYS", "DROP", "RATIO_FLOOR", "SILENT_DAYS", "THRIVING_RATIO", "HealthFigures", "health_series", "state_for",
]

RECENT_DAYS = 7
BASELINE_DAYS = 21
SILENT_DAYS = 7
DROP = 0.40
RATIO_FLOOR = 0.02
RATIO_MIN_MEMBERS = 20
THRIVING_RATIO = 0.10
THRIVING_MIN_TALKERS = 3


@dataclass
class HealthFigures:
    day: dt.date
    messages: int = 0
    talkers: int = 0
    members: int = 0
    active_ratio: float = 0.0
    messages_avg7: float = 0.0
    talkers_avg7: float = 0.0
    messages_base: float | None = None
    talkers_base: float | None = None
    newcomers: int = 0
    newcomer_retention: float | None = None
    silence_days: int = 0
    ads_caught: int = 0
    state: str = HealthState.STEADY
    reasons: list[str] = field(default_factory=list)
    observed_days: int = RECENT_DAYS  # of the last 7 (a new group has fewer): not stored

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


def state_for(f: HealthFigures) -> tuple[str, list[str]]:
    """The state and the reasons behind it (pure; the rules are in the module docstring;
    the reasons in the active language — the workspace's, zh-hans, when the worker stores
    them)."""
    if f.silence_days >= SILENT_DAYS:
        return HealthState.SILENT, [gettext("no messages for %(days)s days") % {"days": f.silence_days}]
    reasons: list[str] = []
    keep = 1 - DROP
    if f.messages_base is not None and f.messages_base >= 1 and f.messages_avg7 <= keep * f.messages_base:
        reasons.append(gettext("messages %(now).1f/day vs %(before).1f/day before (−%(drop)s)") % {
            "now": f.messages_avg7, "before": f.messages_base, "drop": f"{1 - f.messages_avg7 / f.messages_base:.0%}"})
    if f.talkers_base is not None and f.talkers_base >= 1 and f.talkers_avg7 <= keep * f.talkers_base:
        reasons.append(gettext("talkers %(now).1f/day vs %(before).1f/day before (−%(drop)s)") % {
            "now": f.talkers_avg7, "before": f.talkers_base, "drop": f"{1 - f.talkers_avg7 / f.talkers_base:.0%}"})
    ratio7 = f.talkers_avg7 / f.members if f.members else 0.0
    if f.members >= RATIO_MIN_MEMBERS and f.observed_days >= RECENT_DAYS and ratio7 < RATIO_FLOOR:
        reasons.append(gettext("only %(ratio)s of members talk on a day (floor %(floor)s)") % {"ratio": f"{ratio7:.1%}", "floor": f"{RATIO_FLOOR:.0%}"})
    if reasons:
        return HealthState.FADING, reasons
    if f.members and ratio7 >= THRIVING_RATIO and f.talkers_avg7 >= THRIVING_MIN_TALKERS:
        return HealthState.THRIVING, [gettext("%(ratio)s of members talk on a day") % {"ratio": f"{ratio7:.0%}"}]
    return HealthState.STEADY, [gettext("%(ratio)s of members talk on a day") % {"ratio": f"{ratio7:.1%}"}]


def health_series(group: Group, first: dt.date, last: dt.date) -> list[HealthFigures]:
    """Figures and state for each local day from ``first`` to ``last`` (reads: one query
    for messages, one for memberships, one for moderation cases, one for the last message
    before the range)."""
    from siyu.moderation.models import ModerationCase

    if last < first:
        return []
    tz = group.workspace.tz
    lookback = first - dt.timedelta(days=RECENT_DAYS + BASELINE_DAYS - 1)
    range_start, _ = day_bounds(lookback, tz)
    _, range_end = day_bounds(last, tz)
    # Days before the first stored message were not observed (siyu connected to the group
    # later, or history was not imported): they must not count as silent days in averages.
    first_message = GroupMessage.objects.filter(group=group, sender__isnull=False).aggregate(at=Min("sent_at"))["at"]
    created_day = group.created_at.astimezone(tz).date()
    if first_message is not None:
        created_day = max(created_day, first_message.astimezone(tz).date())

    per_day_messages: dict[dt.date, int] = defaultdict(int)
    per_day_talkers: dict[dt.date, set[int]] = defaultdict(set)
    first_spoke: dict[int, list[dt.datetime]] = defaultdict(list)
    rows = GroupMessage.objects.filter(group=group, sender__isnull=False, sent_at__gte=range_start, sent_at__lt=range_end)
    for sender_id, sent_at in rows.values_list("sender_id", "sent_at").iterator(chunk_size=5000):
        local_day = sent_at.astimezone(tz).date()
        per_day_messages[local_day] += 1
        per_day_talkers[local_day].add(sender_id)
        first_spoke[sender_id].append(sent_at)
    last_before = GroupMessage.objects.filter(group=group, sender__isnull=False, sent_at__lt=range_start).aggregate(at=Max("sent_at"))["at"]
    last_message_day = last_before.astimezone(tz).date() if last_before else None

    memberships = list(Membership.objects.filter(group=group, joined_at__lt=range_end).values_list("contact_id", "joined_at", "left_at"))
    ads: dict[dt.date, int] = defaultdict(int)
    for created_at in ModerationCase.objects.filter(group=group, created_at__gte=range_start, created_at__lt=range_end).values_list("created_at", flat=True):
        ads[created_at.astimezone(tz).date()] += 1

    out: list[HealthFigures] = []
    day = lookback
    while day <= last:
        if per_day_messages.get(day):
            last_message_day = day
        if day >= first:
            out.append(_figures(day, tz, created_day, last_message_day, per_day_messages, per_day_talkers, memberships, first_spoke, ads))
        day += dt.timedelta(days=1)
    return out


def _figures(
    day: dt.date,
    tz: dt.tzinfo,
    created_day: dt.date,
    last_message_day: dt.date | None,
    per_day_messages: dict[dt.date, int],
    per_day_talkers: dict[dt.date, set[int]],
    memberships: list[tuple[int, dt.datetime, dt.datetime | None]],
    spoke: dict[int, list[dt.datetime]],
    ads: dict[dt.date, int],
) -> HealthFigures:
    _, end = day_bounds(day, tz)
    f = HealthFigures(day=day, messages=per_day_messages.get(day, 0), talkers=len(per_day_talkers.get(day, ())), ads_caught=ads.get(day, 0))
    f.members = sum(1 for _, joined, left in memberships if joined < end and (left is None or left >= end))
    f.active_ratio = round(f.talkers / f.members, 4) if f.members else 0.0
    recent = [day - dt.timedelta(days=i) for i in range(RECENT_DAYS)]
    recent = [d for d in recent if d >= created_day] or [day]
    f.observed_days = len(recent)
    f.messages_avg7 = round(sum(per_day_messages.get(d, 0) for d in recent) / len(recent), 3)
    f.talkers_avg7 = round(sum(len(per_day_talkers.get(d, ())) for d in recent) / len(recent), 3)
    base = [day - dt.timedelta(days=RECENT_DAYS + i) for i in range(BASELINE_DAYS)]
    base = [d for d in base if d >= created_day]
    if len(base) >= RECENT_DAYS:
        f.messages_base = round(sum(per_day_messages.get(d, 0) for d in base) / len(base), 3)
        f.talkers_base = round(sum(len(per_day_talkers.get(d, ())) for d in base) / len(base), 3)
    joined_from, _ = day_bounds(day - dt.timedelta(days=14), tz)
    _, joined_to = day_bounds(day - dt.timedelta(days=7), tz)
    newcomers = [(cid, joined, left) for cid, joined, left in memberships if joined_from <= joined < joined_to]
    f.newcomers = len(newcomers)
    if newcomers:
        kept = sum(
            1
            for cid, joined, left in newcomers
            if (left is None or left >= end) and any(joined <= at < end for at in spoke.get(cid, ()))
        )
        f.newcomer_retention = round(kept / len(newcomers), 4)
    since = last_message_day if last_message_day is not None else created_day
    f.silence_days = max(0, (day - since).days)
    f.state, f.reasons = state_for(f)
    return f
