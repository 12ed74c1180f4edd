"""Reads for journeys: lists, per-step counts for the viewer, and "where is this contact
in the journey and why" (each run's current step and the path it took, with reasons)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from siyu.accounts.models import Staff
from siyu.contacts.models import Contact
from siyu.contacts.queries import visible_contacts
from siyu.core.models import Workspace
from siyu.journeys.definition import edges
from siyu.journeys.models import OPEN_STATES, Journey, JourneyRun, JourneyStepLog, JourneyVersion, RunState


def journeys(workspace: Workspace) -> QuerySet[Journey]:
    return (
        Journey.objects.in_workspace(workspace).select_related("current_version")
        .annotate(open_runs=Count("runs", filter=Q(runs__state__in=OPEN_STATES)), total_runs=Count("runs"))
        .order_by("-created_at", "-id")
    )


def visible_runs(workspace: Workspace, staff: Staff | None) -> QuerySet[JourneyRun]:
    """Runs the staff member may see: group runs, and contact runs of contacts they see."""
    runs = JourneyRun.objects.in_workspace(workspace).select_related("journey", "version", "contact", "group")
    if staff is None:
        return runs
    return runs.filter(Q(contact__isnull=True) | Q(contact__in=visible_contacts(workspace, staff)))


def step_counts(journey: Journey, version: JourneyVersion | None = None) -> list[dict[str, Any]]:
    """Per step of a version (the current one by default): runs now at the step, and how
    often it executed with each outcome."""
    version = version or journey.current_version
    if version is None:
        return []
    at = dict(
        JourneyRun.objects.filter(journey=journey, version=version, state__in=OPEN_STATES)
        .values_list("current_step").annotate(n=Count("id")).values_list("current_step", "n")
    )
    outcomes: dict[str, dict[str, int]] = {}
    for step_id, outcome, n in (
        JourneyStepLog.objects.filter(journey=journey, run__version=version).values_list("step_id", "outcome")
        .annotate(n=Count("id")).values_list("step_id", "outcome", "n")
    ):
        outcomes.setdefault(step_id, {})[outcome] = n
    return [
        {
            "id": step["id"], "type": step["type"], "label": step.get("label", ""), "now_here": at.get(step["id"], 0),
            "outcomes": dict(sorted(outcomes.get(step["id"], {}).items())), "edges": edges(step),
        }
        for step in version.definition["steps"]
    ]


def run_summary(journey: Journey) -> dict[str, int]:
    rows = JourneyRun.objects.filter(journey=journey).values_list("state").annotate(n=Count("id")).values_list("state", "n")
    counts = {state: 0 for state in RunState.values}
    counts.update(dict(rows))
    return counts


def run_path(run: JourneyRun) -> list[dict[str, Any]]:
    """The steps a run executed, oldest first, each with its outcome and why."""
    return [
        {
            "step": row.step_id, "type": row.step_type, "outcome": row.outcome, "reason": row.reason, "detail": row.detail,
            "next": row.next_step, "at": row.executed_at,
        }
        for row in run.log.order_by("executed_at", "id")
    ]


def describe_run(run: JourneyRun) -> dict[str, Any]:
    """Where the run is and why: state, current step, when it wakes and what it waits
    for, and the path so far."""
    steps = {s["id"]: s for s in run.version.definition["steps"]}
    current = steps.get(run.current_step, {})
    return {
        "id": run.pk, "journey_id": run.journey_id, "journey": run.journey.name, "version": run.version.number,
        "contact_id": run.contact_id, "group_id": run.group_id, "state": run.state, "current_step": run.current_step,
        "current_step_type": current.get("type", ""), "wake_at": run.wake_at, "waiting_for": run.waiting_for or None,
        "entered_at": run.entered_at, "finished_at": run.finished_at, "exit_reason": run.exit_reason,
        "trigger_key": run.trigger_key, "path": run_path(run),
    }


def contact_journeys(workspace: Workspace, contact: Contact) -> list[dict[str, Any]]:
    """Every run of the contact (newest first), described."""
    runs = JourneyRun.objects.in_workspace(workspace).filter(contact=contact).select_related("journey", "version")
    return [describe_run(run) for run in runs.order_by("-entered_at", "-id")]
