"""Time is aware UTC in storage and shown in the workspace's zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.utils import timezone


def now() -> dt.datetime:
    return timezone.now()


def local(value: dt.datetime, tz_name: str) -> dt.datetime:
    return value.astimezone(zoneinfo.ZoneInfo(tz_name))


def days_ago(days: float) -> dt.datetime:
    return now() - dt.timedelta(days=days)
