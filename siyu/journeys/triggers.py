"""What starts and resumes runs: new timeline events (through the worker's event
fan-out) and the scheduled triggers (birthday, days since an event).

Every start is keyed by what caused it (``event:<id>``, ``birthday:<year>``,
``days_since:<event id>``), so handing the same events over twice starts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, OuterRef
from django.utils import timezone

from siyu.contacts.models import Contact, ContactEvent
from siyu.core.models import Workspace
from siyu.journeys.definition import TRIGGER_EVENTS
from siyu.journeys.models import Journey, JourneyRun, JourneyStatus, RunState

#: timeline event kind → the trigger kinds it can fire
_BY_EVENT: dict[str, list[str]] = {}
for _trigger, _event in TRIGGER_EVENTS.items():
    if _event is not None:
        _BY_EVENT.setdefault(_event, []).append(_trigger)


def _trigger_matches(trigger: dict[str, Any], event: ContactEvent) -> bool:
    data = event.data or {}
    kind = trigger["kind"]
    if kind in ("tag_added", "tag_removed"):
        return data.get("tag_id") == trigger["tag_id"]
    if kind in ("joined_group", "left_group"):
        return "group_id" not in trigger or data.get("group_id") == trigger["group_id"]
    if kind in ("segment_entered", "segment_left"):
        return data.get("segment_id") == trigger["segment_id"]
    if kind == "scan":
        return "live_code" not in trigger or data.get("live_code") == trigger["live_code"]
    return True


def on_contact_events(events: list[ContactEvent]) -> None:
    """Start runs of published journeys whose trigger the events fire (re-entry rules
    apply; one run per journey and event), then resume runs waiting for such an event."""
    from siyu.journeys.actions import do_enrol_contact
    from siyu.journeys.engine import advance

    if not events:
        return
    kinds = {e.kind for e in events}
    trigger_kinds = sorted({t for k in kinds for t in _BY_EVENT.get(k, [])})
    workspaces = {e.workspace_id for e in events}
    journeys = (
        list(
            Journey.objects.filter(workspace_id__in=workspaces, status=JourneyStatus.PUBLISHED, trigger_kind__in=trigger_kinds)
            .select_related("current_version").order_by("id")
        )
        if trigger_kinds else []
    )
    contacts = {c.pk: c for c in Contact.objects.filter(pk__in={e.contact_id for e in events})}
    for event in events:
        contact = contacts.get(event.contact_id)
        if contact is None or contact.merged_into_id is not None:
            continue
        for journey in journeys:
            if journey.workspace_id != event.workspace_id or journey.current_version is None:
                continue
            trigger = journey.current_version.definition["trigger"]
            if TRIGGER_EVENTS.get(trigger["kind"]) == event.kind and _trigger_matches(trigger, event):
                do_enrol_contact(journey, contact, trigger_key=f"event:{event.pk}", now=max(event.occurred_at, timezone.now()))
        waiting = JourneyRun.objects.filter(
            workspace_id=event.workspace_id, contact_id=event.contact_id, state=RunState.WAITING, waiting_for__kind=event.kind
        ).values_list("pk", flat=True)
        for run_id in list(waiting):
            advance(run_id, event=event)


# ---------------------------------------------------------------- scheduled triggers


def _local_today(workspace: Workspace, now: dt.datetime) -> dt.date:
    return now.astimezone(zoneinfo.ZoneInfo(workspace.time_zone)).date()


def _at(day: dt.date, hhmm: str, tz_name: str) -> dt.datetime:
    hour, minute = (int(p) for p in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zoneinfo.ZoneInfo(tz_name))


def _birthday_contacts(workspace: Workspace, today: dt.date) -> Iterable[Contact]:
    from django.db.models import Q

    when = Q(birthday__month=today.month, birthday__day=today.day)
    if today.month == 2 and today.day == 28 and not _is_leap(today.year):
        when |= Q(birthday__month=2, birthday__day=29)  # remembered on 28 February in other years
    return Contact.objects.in_workspace(workspace).filter(when, merged_into__isnull=True).order_by("id")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_since_contacts(workspace: Workspace, trigger: dict[str, Any], today: dt.date) -> Iterable[tuple[Contact, ContactEvent]]:
    """Contacts whose latest ``event`` happened exactly ``days`` local days ago."""
    tz = zoneinfo.ZoneInfo(workspace.time_zone)
    day = today - dt.timedelta(days=trigger["days"])
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    later = ContactEvent.objects.filter(contact=OuterRef("contact"), kind=trigger["event"], occurred_at__gte=start + dt.timedelta(days=1))
    rows = (
        ContactEvent.objects.in_workspace(workspace)
        .filter(kind=trigger["event"], occurred_at__gte=start, occurred_at__lt=start + dt.timedelta(days=1),
                contact__merged_into__isnull=True)
        .exclude(Exists(later)).select_related("contact").order_by("contact_id", "-occurred_at")
    )
    seen: set[int] = set()
    for event in rows:
        if event.contact_id not in seen:
            seen.add(event.contact_id)
            yield event.contact, event


def run_scheduled_triggers(now: dt.datetime | None = None, *, workspace_id: int | None = None) -> dict[str, int]:
    """Enrol today's birthdays and "N days since" contacts in every published journey
    with such a trigger; the run starts at the trigger's local time. Safe to run as
    often as wanted: the keys make it a no-op after the first time each day."""
    from siyu.journeys.actions import do_enrol_contact

    now = now or timezone.now()
    totals = {"enrolled": 0, "skipped": 0}
    journeys = Journey.objects.filter(status=JourneyStatus.PUBLISHED, trigger_kind__in=["birthday", "days_since"])
    if workspace_id is not None:
        journeys = journeys.filter(workspace_id=workspace_id)
    for journey in journeys.select_related("current_version").order_by("id"):
        workspace = Workspace.objects.get(pk=journey.workspace_id)
        today = _local_today(workspace, now)
        trigger = journey.current_version.definition["trigger"] if journey.current_version else None
        if trigger is None:
            continue
        start_at = _at(today, trigger["at"], workspace.time_zone)
        if trigger["kind"] == "birthday":
            pairs: Iterable[tuple[Contact, str]] = ((c, f"birthday:{today.year}:{c.pk}") for c in _birthday_contacts(workspace, today))
        else:
            pairs = ((c, f"days_since:{e.pk}:{trigger['days']}") for c, e in _days_since_contacts(workspace, trigger, today))
        for contact, key in pairs:
            run, _why = do_enrol_contact(journey, contact, trigger_key=key, now=now, start_at=start_at)
            totals["enrolled" if run is not None else "skipped"] += 1
    return totals
