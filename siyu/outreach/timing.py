"""Best send time (最佳发送时间): post when people are there.

- A group: the busiest hour of the coming week in its 7×24 heatmap of the last 30 days
  (:func:`siyu.communities.heatmap.group_heatmap`, workspace zone).
- A contact: the hour of day they most often write to us (their ``message`` timeline
  events of the last 90 days), in their zone.
- Otherwise (no history) the workspace's typical peaks: 09:30, 12:00 and 20:00.

Ties go to the earliest moment after ``after``. The answer is never before ``after``
and never more than a week after it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter

from siyu.communities.models import Group
from siyu.contacts.events import EventKind
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.models import Workspace
from siyu.outreach.quota import zone

__all__ = ["PEAKS", "best_send_time", "next_peak"]

#: typical peaks of office workers (DOMAIN: "around 09:30, 12:00 and 20:00–21:00")
PEAKS = (dt.time(9, 30), dt.time(12, 0), dt.time(20, 0))


def next_peak(after: dt.datetime, tz: zoneinfo.ZoneInfo, peaks: tuple[dt.time, ...] = PEAKS) -> dt.datetime:
    """The first of the workspace's peak times at or after ``after``."""
    local = after.astimezone(tz)
    for day in range(2):
        date = local.date() + dt.timedelta(days=day)
        for peak in peaks:
            candidate = dt.datetime.combine(date, peak, tzinfo=tz)
            if candidate >= local:
                return candidate
    raise AssertionError("unreachable: a peak comes within two days")


def _next_hour_start(after: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    local = after.astimezone(tz)
    start = local.replace(minute=0, second=0, microsecond=0)
    return start if start >= local else start + dt.timedelta(hours=1)


def _from_weekly_grid(grid: list[list[int]], after: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if not any(any(row) for row in grid):
        return None
    best: tuple[int, dt.datetime] | None = None
    first = _next_hour_start(after, tz)
    for step in range(7 * 24):
        moment = first + dt.timedelta(hours=step)
        heat = grid[moment.weekday()][moment.hour]
        if heat > 0 and (best is None or heat > best[0]):
            best = (heat, moment)
    return best[1] if best else None


def _contact_hours(contact: Contact, tz: zoneinfo.ZoneInfo, after: dt.datetime) -> Counter[int]:
    since = after - dt.timedelta(days=90)
    times = ContactEvent.objects.filter(contact=contact, kind=EventKind.MESSAGE, occurred_at__gte=since, occurred_at__lt=after).values_list(
        "occurred_at", flat=True
    )
    return Counter(t.astimezone(tz).hour for t in times)


def best_send_time(workspace: Workspace, *, group: Group | None = None, contact: Contact | None = None, after: dt.datetime) -> dt.datetime:
    """When to send to ``group`` or ``contact`` (or to the workspace at large) at the
    earliest ``after``: the busiest coming hour from their own history, else the next of
    the workspace's peaks (09:30, 12:00, 20:00)."""
    tz = workspace.tz
    if group is not None:
        from siyu.communities.heatmap import group_heatmap

        found = _from_weekly_grid(group_heatmap(group, days=30, now=after), after, tz)
        if found is not None:
            return found
    elif contact is not None:
        tz = zone((contact.profile or {}).get("time_zone"), tz)
        hours = _contact_hours(contact, tz, after)
        if hours:
            top = max(hours.values())
            first = _next_hour_start(after, tz)
            for step in range(24):
                moment = first + dt.timedelta(hours=step)
                if hours.get(moment.hour, 0) == top:
                    return moment
    return next_peak(after, tz)
