"""When a group talks: the 7×24 active-hours heatmap (活跃时段) and its best hours.

A query runner in the analytics sense: a group and a window in, counts out. The counting
is one aggregate query — weekday and hour extracted in the workspace's time zone by the
database (Django's tz-aware ``Extract*``: ``AT TIME ZONE`` on PostgreSQL, its registered
functions on SQLite) — so a group with a million messages costs one GROUP BY.
Outreach uses :func:`group_heatmap` to pick each group's best send time.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone

from siyu.communities.models import Group, GroupMessage

__all__ = ["best_hours", "group_heatmap"]


def group_heatmap(group: Group, *, days: int = 30, now: dt.datetime | None = None) -> list[list[int]]:
    """Messages per (weekday, local hour) over the last ``days`` days: 7 rows (Monday = 0)
    of 24 columns (hour 0–23) in the workspace time zone."""
    now = now or timezone.now()
    tz = group.workspace.tz
    grid = [[0] * 24 for _ in range(7)]
    rows = (
        GroupMessage.objects.filter(group=group, sent_at__gte=now - dt.timedelta(days=days), sent_at__lt=now)
        .annotate(wd=ExtractIsoWeekDay("sent_at", tzinfo=tz), hour=ExtractHour("sent_at", tzinfo=tz))
        .values("wd", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        grid[int(row["wd"]) - 1][int(row["hour"])] = int(row["n"])
    return grid


def best_hours(group: Group, k: int = 3, *, days: int = 30, now: dt.datetime | None = None,
               heatmap: list[list[int]] | None = None) -> list[int]:
    """The ``k`` local hours with the most messages across the week, busiest first (ties:
    the earlier hour); hours without any message are never proposed."""
    grid = heatmap if heatmap is not None else group_heatmap(group, days=days, now=now)
    totals = [sum(row[hour] for row in grid) for hour in range(24)]
    ranked = sorted((h for h in range(24) if totals[h] > 0), key=lambda h: (-totals[h], h))
    return ranked[:k]
