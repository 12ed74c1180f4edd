"""Writes for journeys: save a draft, publish a version, pause/resume/archive, enrol a
contact or a group, take a run out. The runner (:mod:`siyu.journeys.engine`) writes the
runs' progress; everything an operator does goes through here."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.journeys import definition as spec
from siyu.journeys.engine import schedule_advance
from siyu.journeys.models import OPEN_STATES, Journey, JourneyRun, JourneyStatus, JourneyVersion, RunState


def check_definition(workspace: Workspace, data: dict[str, Any] | str) -> dict[str, Any]:
    """Parse (when text) and validate a definition; the normalised dict."""
    return spec.validate(workspace, spec.parse_text(data) if isinstance(data, str) else data)


def do_save_journey(
    workspace: Workspace, actor: Staff | None, data: dict[str, Any] | str, *, journey: Journey | None = None, playbook: str = ""
) -> Journey:
    """Create a journey or replace its draft definition (validated first; the published
    version is untouched until :func:`do_publish_journey`). Records ``journey.created``
    or ``journey.updated``."""
    require(actor, Perm.MANAGE_JOURNEYS)
    clean = check_definition(workspace, data)
    if journey is not None and journey.workspace_id != workspace.pk:
        raise NotFound("journey not found", code="journey_not_found")
    with transaction.atomic():
        clash = Journey.objects.in_workspace(workspace).filter(name=clean["name"])
        if journey is not None:
            clash = clash.exclude(pk=journey.pk)
        if clash.exists():
            raise Conflict(f"a journey named {clean['name']!r} already exists", code="journey_name_taken")
        if journey is None:
            journey = Journey.objects.create(
                workspace=workspace, name=clean["name"], description=clean["description"], draft=clean, created_by=actor,
                playbook=playbook or clean.get("playbook", ""),
            )
            record_audit(workspace, actor, "journey.created", target=journey, after={"name": journey.name})
        else:
            before = {"name": journey.name, "draft": journey.draft}
            journey.name, journey.description, journey.draft = clean["name"], clean["description"], clean
            journey.save(update_fields=["name", "description", "draft", "updated_at"])
            record_audit(workspace, actor, "journey.updated", target=journey, before=before, after={"name": journey.name})
    return journey


def do_publish_journey(journey: Journey, actor: Staff | None, *, now: dt.datetime | None = None) -> JourneyVersion:
    """Publish the draft as a new immutable version (re-validated against the workspace
    as it is now). Publishing an unchanged draft returns the current version. Runs
    already under way keep their version. Records ``journey.published``."""
    require(actor, Perm.MANAGE_JOURNEYS)
    workspace = Workspace.objects.get(pk=journey.workspace_id)
    if journey.status == JourneyStatus.ARCHIVED:
        raise Conflict("an archived journey cannot be published", code="journey_archived")
    clean = check_definition(workspace, journey.draft)
    with transaction.atomic():
        locked = Journey.objects.select_for_update().get(pk=journey.pk)
        current = locked.current_version
        if current is not None and current.definition == clean:
            if locked.status != JourneyStatus.PUBLISHED:
                locked.status = JourneyStatus.PUBLISHED
                locked.save(update_fields=["status", "updated_at"])
            journey.status, journey.current_version = locked.status, current
            return current
        number = (current.number if current is not None else 0) + 1
        version = JourneyVersion.objects.create(
            workspace=workspace, journey=locked, number=number, definition=clean, published_by=actor,
            published_at=now or timezone.now(),
        )
        locked.current_version, locked.status, locked.trigger_kind = version, JourneyStatus.PUBLISHED, clean["trigger"]["kind"]
        locked.save(update_fields=["current_version", "status", "trigger_kind", "updated_at"])
        record_audit(workspace, actor, "journey.published", target=locked, after={"version": number})
    journey.current_version, journey.status, journey.trigger_kind = version, locked.status, locked.trigger_kind
    return version


def do_set_journey_status(journey: Journey, actor: Staff | None, *, status: str) -> Journey:
    """Pause (no new entries, runs hold where they are), resume, or archive (open runs
    exit). Records ``journey.paused`` / ``journey.resumed`` / ``journey.archived``."""
    require(actor, Perm.MANAGE_JOURNEYS)
    if status not in (JourneyStatus.PAUSED, JourneyStatus.PUBLISHED, JourneyStatus.ARCHIVED):
        raise ValidationFailed("status must be paused, published or archived", code="invalid_status")
    if status in (JourneyStatus.PUBLISHED, JourneyStatus.PAUSED) and journey.current_version_id is None:
        raise Conflict("publish the journey first", code="journey_not_published")
    if journey.status == status:
        return journey
    with transaction.atomic():
        before = journey.status
        journey.status = status
        journey.save(update_fields=["status", "updated_at"])
        if status == JourneyStatus.ARCHIVED:
            JourneyRun.objects.filter(journey=journey, state__in=OPEN_STATES).update(
                state=RunState.EXITED, finished_at=timezone.now(), exit_reason="journey archived", wake_at=None
            )
        action = {"paused": "paused", "published": "resumed", "archived": "archived"}[str(status)]
        record_audit(Workspace.objects.get(pk=journey.workspace_id), actor, f"journey.{action}", target=journey,
                     before={"status": before}, after={"status": status})
    return journey


def _reentry_refusal(journey: Journey, version: JourneyVersion, contact: Contact, now: dt.datetime) -> str:
    runs = JourneyRun.objects.filter(journey=journey, contact=contact)
    if runs.filter(state__in=OPEN_STATES).exists():
        return "already in this journey"
    rule = version.definition.get("reentry") or {"mode": "once"}
    last = runs.order_by("-entered_at").values_list("entered_at", flat=True).first()
    if last is None or rule["mode"] == "always":
        return ""
    if rule["mode"] == "once":
        return "entered before (re-entry: once)"
    if last > now - dt.timedelta(days=rule["days"]):
        return f"entered less than {rule['days']} days ago (re-entry: every {rule['days']} days)"
    return ""


def do_enrol_contact(
    journey: Journey,
    contact: Contact,
    *,
    trigger_key: str,
    actor: Staff | None = None,
    now: dt.datetime | None = None,
    start_at: dt.datetime | None = None,
    context: dict[str, Any] | None = None,
    run_now: bool = True,
) -> tuple[JourneyRun | None, str]:
    """Start a run of the journey's current version for a contact, if the re-entry rule
    allows and no run exists for ``trigger_key`` (the triggering event, an enrolment
    key: a replay starts nothing). Returns (run or None, why not). ``start_at`` delays
    the first step. Records ``journey.enrolled`` when an operator enrols by hand."""
    if actor is not None:
        require(actor, Perm.MANAGE_JOURNEYS)
    if contact.workspace_id != journey.workspace_id:
        raise NotFound("contact not found", code="contact_not_found")
    if journey.status != JourneyStatus.PUBLISHED or journey.current_version_id is None:
        return None, "journey is not published"
    version = JourneyVersion.objects.get(pk=journey.current_version_id)
    if version.definition.get("audience", "contact") != "contact":
        raise ValidationFailed("this journey runs per group; enrol groups", code="journey_audience")
    if contact.merged_into_id is not None:
        return None, "contact was merged into another"
    when = now or timezone.now()
    key = trigger_key[:200]
    if JourneyRun.objects.filter(journey=journey, trigger_key=key).exists():
        return None, "already started for this trigger"
    with transaction.atomic():
        refusal = _reentry_refusal(journey, version, contact, when)
        if refusal:
            return None, refusal
        run = _create_run(journey, version, key, when, start_at, context, contact=contact)
        if run is None:
            return None, "already in this journey"
        if actor is not None:
            record_audit(Workspace.objects.get(pk=journey.workspace_id), actor, "journey.enrolled", target=run,
                         summary=f"{contact.name} → {journey.name}")
        if run_now:
            schedule_advance(run.pk)
    return run, ""


def do_enrol_group(
    journey: Journey,
    group: Group,
    *,
    trigger_key: str,
    actor: Staff | None = None,
    now: dt.datetime | None = None,
    context: dict[str, Any] | None = None,
    run_now: bool = True,
) -> tuple[JourneyRun | None, str]:
    """Start a run of a group journey (playbook notices) for one group, once per
    ``trigger_key``. Records ``journey.enrolled``."""
    require(actor, Perm.MANAGE_JOURNEYS)
    if group.workspace_id != journey.workspace_id:
        raise NotFound("group not found", code="group_not_found")
    if journey.status != JourneyStatus.PUBLISHED or journey.current_version_id is None:
        return None, "journey is not published"
    version = JourneyVersion.objects.get(pk=journey.current_version_id)
    if version.definition.get("audience") != "group":
        raise ValidationFailed("this journey runs per contact; enrol contacts", code="journey_audience")
    when = now or timezone.now()
    key = trigger_key[:200]
    with transaction.atomic():
        if JourneyRun.objects.filter(journey=journey, trigger_key=key).exists():
            return None, "already started for this trigger"
        if JourneyRun.objects.filter(journey=journey, group=group, state__in=OPEN_STATES).exists():
            return None, "already in this journey"
        run = _create_run(journey, version, key, when, None, context, group=group)
        if run is None:
            return None, "already in this journey"
        record_audit(Workspace.objects.get(pk=journey.workspace_id), actor, "journey.enrolled", target=run,
                     summary=f"{group.name} → {journey.name}")
        if run_now:
            schedule_advance(run.pk)
    return run, ""


def _create_run(
    journey: Journey, version: JourneyVersion, key: str, when: dt.datetime, start_at: dt.datetime | None,
    context: dict[str, Any] | None, *, contact: Contact | None = None, group: Group | None = None,
) -> JourneyRun | None:
    try:
        with transaction.atomic():
            return JourneyRun.objects.create(
                workspace_id=journey.workspace_id, journey=journey, version=version, contact=contact, group=group,
                state=RunState.ACTIVE, current_step=version.definition["start"], trigger_key=key, context=context or {},
                entered_at=when, wake_at=start_at if start_at is not None and start_at > when else None,
            )
    except IntegrityError:
        # The same trigger, or an open run, got there first (a concurrent worker).
        return None


def do_exit_run(run: JourneyRun, actor: Staff | None, *, reason: str = "") -> JourneyRun:
    """Take a contact or group out of a journey now. Records ``journey_run.exited``."""
    require(actor, Perm.MANAGE_JOURNEYS)
    with transaction.atomic():
        moved = JourneyRun.objects.filter(pk=run.pk, state__in=OPEN_STATES).update(
            state=RunState.EXITED, finished_at=timezone.now(), exit_reason=(reason or "taken out by staff")[:200], wake_at=None
        )
        if moved:
            record_audit(Workspace.objects.get(pk=run.workspace_id), actor, "journey_run.exited", target=run, summary=reason[:300])
    run.refresh_from_db()
    return run
