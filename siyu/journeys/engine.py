"""The journey runner: moves durable runs through their version's steps.

A run is a row; a wait is ``wake_at`` on that row, not a sleeping task. A worker claims a
run with a lease (one conditional UPDATE, as the outbox does), executes steps until the
run waits or ends, and gives the lease back. Each step executes inside one transaction
that also writes its :class:`JourneyStepLog` (unique per run, step and visit) and moves
the run on with a guarded UPDATE; a crash rolls all of it back and the next worker
executes the step again from scratch, so every step takes effect exactly once. Sends go
through the outreach ledger with an idempotency key derived from the same key, so a
message is never sent twice either.

Time is an argument (``now``): the worker passes the clock, tests and simulations pass
the moment they want to look at.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from siyu.contacts.models import ContactEvent
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.journeys.definition import step_map
from siyu.journeys.models import JourneyRun, JourneyStepLog, RunState

log = logging.getLogger(__name__)

#: a run executing more steps than this in one pass is a definition bug, not work
MAX_STEPS_PER_PASS = 200
#: waits shorter than this also get a delayed worker task (the minute sweep is the net)
SHORT_WAIT_SECONDS = 120


def lease_seconds() -> float:
    """How long a worker holds a run it is advancing before another may take it over."""
    return float(settings.SIYU_JOURNEY_LEASE_SECONDS)


class _Raced(Exception):
    """Another worker moved the run first: roll this step back."""


@dataclass
class StepResult:
    outcome: str
    next_step: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: the run pauses here until this moment (a wait step's first visit)
    wait_until: dt.datetime | None = None
    waiting_for: dict[str, Any] = field(default_factory=dict)
    #: end the run with this state
    finish: str = ""
    context: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- claiming


def _due(now: dt.datetime) -> Q:
    return Q(state=RunState.ACTIVE, wake_at__isnull=True) | Q(state__in=[RunState.ACTIVE, RunState.WAITING], wake_at__lte=now)


def _free() -> Q:
    # Leases are real time even when the run is driven with a simulated ``now``.
    return Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now())


def _claim(run_id: int, now: dt.datetime, *, event: ContactEvent | None) -> JourneyRun | None:
    ready = Q(state=RunState.WAITING, waiting_for__kind=event.kind) if event is not None else _due(now)
    claimed = JourneyRun.objects.filter(ready, _free(), pk=run_id).update(
        lease_until=timezone.now() + dt.timedelta(seconds=lease_seconds())
    )
    if not claimed:
        return None
    return JourneyRun.objects.select_related("version", "journey", "contact", "group").get(pk=run_id)


def _release(run_id: int) -> None:
    JourneyRun.objects.filter(pk=run_id).update(lease_until=None)


def due_run_ids(now: dt.datetime | None = None, limit: int = 1000) -> list[int]:
    """Runs a sweep should advance: due (started, or their wait is over) and not held by
    a live worker; a run whose worker died is due again once its lease runs out."""
    now = now or timezone.now()
    return list(
        JourneyRun.objects.filter(_due(now), _free()).order_by("wake_at", "id").values_list("pk", flat=True)[:limit]
    )


# ---------------------------------------------------------------- advancing


def advance(run_id: int, *, now: dt.datetime | None = None, event: ContactEvent | None = None) -> str:
    """Execute a run's steps until it waits or ends. ``event``: the timeline event a
    wait-until-event step may be waiting for. Returns the run's state afterwards, or
    ``skipped`` when the run is not due or another worker holds it."""
    now = now or timezone.now()
    run = _claim(run_id, now, event=event)
    if run is None:
        return "skipped"
    try:
        if event is not None and not _event_matches(run, event):
            return "skipped"
        for _ in range(MAX_STEPS_PER_PASS):
            if run.state not in (RunState.ACTIVE, RunState.WAITING):
                break
            if run.state == RunState.WAITING and event is None and (run.wake_at is None or run.wake_at > now):
                break
            if run.state == RunState.ACTIVE and run.wake_at is not None and run.wake_at > now:
                break
            try:
                run = _execute_one(run, now, event)
            except _Raced:
                return "skipped"
            event = None  # an event resumes one wait, not the ones after it
        else:
            _fail_run(run, now, f"more than {MAX_STEPS_PER_PASS} steps in one pass")
        if run.state == RunState.WAITING and run.wake_at is not None:
            _schedule_wake(run, now)
        return str(run.state)
    finally:
        _release(run_id)


def _event_matches(run: JourneyRun, event: ContactEvent) -> bool:
    waiting = run.waiting_for or {}
    if run.contact_id != event.contact_id or waiting.get("kind") != event.kind:
        return False
    since = waiting.get("since")
    if since and event.occurred_at < dt.datetime.fromisoformat(since):
        return False
    if run.wake_at is not None and event.occurred_at > run.wake_at:
        return False  # it came after the timeout: the timeout edge is the true path
    return all(str((event.data or {}).get(key)) == str(value) for key, value in (waiting.get("data") or {}).items())


def _execute_one(run: JourneyRun, now: dt.datetime, event: ContactEvent | None) -> JourneyRun:
    steps = step_map(run.version.definition)
    step = steps.get(run.current_step)
    if step is None:
        _fail_run(run, now, f"step {run.current_step!r} is not in version {run.version.number}")
        run.refresh_from_db()
        return run
    key = f"journey-run:{run.pk}:{step['id']}:{run.steps_done}"
    try:
        with transaction.atomic():
            if JourneyStepLog.objects.filter(workspace_id=run.workspace_id, idempotency_key=key).exists():
                raise _Raced
            result = _run_step(run, step, now, event, key)
            JourneyStepLog.objects.create(
                workspace_id=run.workspace_id, run=run, journey_id=run.journey_id, step_id=step["id"], step_type=step["type"],
                idempotency_key=key, outcome=result.outcome, reason=result.reason[:2000], detail=result.detail,
                next_step=result.next_step, executed_at=now,
            )
            changes: dict[str, Any] = {"steps_done": F("steps_done") + 1}
            if result.context:
                changes["context"] = {**run.context, **result.context}
            if result.wait_until is not None:
                changes.update(state=RunState.WAITING, wake_at=result.wait_until, waiting_for=result.waiting_for)
            elif result.finish or not result.next_step:
                changes.update(
                    state=result.finish or RunState.COMPLETED, wake_at=None, waiting_for={}, finished_at=now,
                    exit_reason=result.reason[:200] if result.finish == RunState.EXITED else "",
                )
            else:
                changes.update(state=RunState.ACTIVE, current_step=result.next_step, wake_at=None, waiting_for={})
            moved = JourneyRun.objects.filter(pk=run.pk, steps_done=run.steps_done, current_step=run.current_step).update(**changes)
            if not moved:
                raise _Raced
    except IntegrityError as exc:
        raise _Raced from exc
    run.refresh_from_db()
    return run


def _fail_run(run: JourneyRun, now: dt.datetime, reason: str) -> None:
    log.error("journey run %s failed: %s", run.pk, reason)
    JourneyRun.objects.filter(pk=run.pk).update(state=RunState.FAILED, finished_at=now, exit_reason=reason[:200], wake_at=None)


def _schedule_wake(run: JourneyRun, now: dt.datetime) -> None:
    """A short wait also gets a delayed task, so it does not wait for the minute sweep.
    The task is only a hint: the row is the truth, and the sweep finds it anyway."""
    if settings.HUEY.get("immediate") or run.wake_at is None:
        return
    delay = (run.wake_at - now).total_seconds()
    if delay > SHORT_WAIT_SECONDS:
        return
    from siyu.worker.tasks import journey_advance_task

    run_id = run.pk
    transaction.on_commit(lambda: journey_advance_task.schedule((run_id,), delay=max(0.0, delay) + 0.2))


def schedule_advance(run_id: int) -> None:
    """After commit, advance the run in the worker."""

    def _enqueue() -> None:
        from siyu.worker.tasks import journey_advance_task

        journey_advance_task(run_id)

    transaction.on_commit(_enqueue)


# ---------------------------------------------------------------- steps


def _tz(run: JourneyRun, step: dict[str, Any]) -> zoneinfo.ZoneInfo:
    definition = run.version.definition
    if step.get("time_zone", "contact") == "contact" and run.contact is not None:
        zone = (run.contact.profile or {}).get("time_zone")
        if zone:
            try:
                return zoneinfo.ZoneInfo(str(zone))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                pass
    return zoneinfo.ZoneInfo(definition.get("time_zone") or Workspace.objects.get(pk=run.workspace_id).time_zone)


def next_time_of_day(after: dt.datetime, hhmm: str, tz: zoneinfo.ZoneInfo, days: int = 0) -> dt.datetime:
    """The first moment at local ``hhmm`` that is at least ``days`` local days after
    ``after`` and not before it."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = after.astimezone(tz)
    day = local.date() + dt.timedelta(days=days)
    candidate = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)
    if candidate < after:
        candidate += dt.timedelta(days=1)
    return candidate.astimezone(dt.UTC)


def _run_step(run: JourneyRun, step: dict[str, Any], now: dt.datetime, event: ContactEvent | None, key: str) -> StepResult:
    kind = step["type"]
    if kind == "wait":
        return _wait(run, step, now, event)
    if run.contact is not None and run.contact.merged_into_id is not None:
        return StepResult("exited", reason="the contact was merged into another", finish=RunState.EXITED)
    from siyu.journeys import steps as step_actions

    try:
        return step_actions.execute(run, step, now, key)
    except SiyuError as exc:
        # A refusal (out of stock, archived group, ...) is recorded and the run moves on:
        # one missing coupon must not stop the rest of the care.
        return StepResult("skipped", next_step=step.get("next") or "", reason=f"{exc.code}: {exc.message}")


def _wait(run: JourneyRun, step: dict[str, Any], now: dt.datetime, event: ContactEvent | None) -> StepResult:
    if run.state == RunState.WAITING:
        if "event" in step:
            if event is not None:
                return StepResult("event", next_step=step["next"]["event"], reason=f"{event.kind} event #{event.pk}",
                                  detail={"event_id": event.pk})
            return StepResult("timeout", next_step=step["next"]["timeout"], reason="no matching event before the timeout")
        return StepResult("waited", next_step=step.get("next") or "")
    if "duration" in step:
        until = now + dt.timedelta(seconds=step["duration"])
    elif "until_time" in step:
        until = next_time_of_day(now, step["until_time"], _tz(run, step), step.get("days", 0))
    elif "until_at" in step:
        until = dt.datetime.fromisoformat(step["until_at"])
    else:
        until = now + dt.timedelta(seconds=step["event"]["timeout"])
        waiting = {"kind": step["event"]["kind"], "data": step["event"].get("data") or {}, "since": now.isoformat()}
        return StepResult("waiting", reason=f"until a {waiting['kind']} event or {until.isoformat()}", wait_until=until,
                          waiting_for=waiting, detail={"until": until.isoformat()}, next_step=run.current_step)
    return StepResult("waiting", reason=f"until {until.isoformat()}", wait_until=until, detail={"until": until.isoformat()},
                      next_step=run.current_step)


def run_due(now: dt.datetime | None = None, *, limit: int = 1000) -> dict[str, int]:
    """Advance every due run here and now (the sweep without the queue: simulations,
    tests and ``siyu journeys tick``). Returns how many ended in each state."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for run_id in due_run_ids(now, limit):
        state = advance(run_id, now=now)
        counts[state] = counts.get(state, 0) + 1
    return counts
