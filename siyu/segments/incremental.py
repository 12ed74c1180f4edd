"""Incremental segment updates: when timeline events arrive, re-check only the contacts
in them, and only against the dynamic segments whose definitions those event kinds can
change (see :func:`siyu.segments.conditions.dependencies`). Segments that read other
segments are updated after them; their own enter/leave events come back through the
same consumer and reach the segments that reference them, and nobody else.

The periodic pass (:func:`scheduled_pass`) rebuilds the segments whose answer changes
with time alone (windows, P(alive), RFM, inferred group roles).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from siyu.contacts.events import EventKind
from siyu.contacts.models import ContactEvent
from siyu.segments.actions import do_build_segment, do_update_memberships
from siyu.segments.conditions import Dependencies, dependencies
from siyu.segments.models import BuildMode, Segment, SegmentBuild, SegmentKind


def _in_dependency_order(segments: list[Segment], deps: dict[int, Dependencies]) -> list[Segment]:
    """Referenced segments first (definitions are acyclic: cycles are refused on save)."""
    by_id = {s.pk: s for s in segments}
    ordered: list[Segment] = []
    seen: set[int] = set()

    def visit(segment: Segment) -> None:
        if segment.pk in seen:
            return
        seen.add(segment.pk)
        for ref in sorted(deps[segment.pk].segments):
            if ref in by_id:
                visit(by_id[ref])
        ordered.append(segment)

    for segment in segments:
        visit(segment)
    return ordered


def affected_contacts(segments: list[Segment], events: Iterable[ContactEvent]) -> dict[int, set[int]]:
    """segment id → ids of the contacts whose events may change their membership."""
    deps = {s.pk: dependencies(s.definition) for s in segments}
    affected: dict[int, set[int]] = defaultdict(set)
    for event in events:
        data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
        contacts = {event.contact_id}
        if event.kind == EventKind.MERGED and isinstance(data.get("merged_contact"), int):
            # The duplicate is no longer a live contact: it must leave every segment.
            contacts.add(data["merged_contact"])
        for segment in segments:
            if deps[segment.pk].affected_by(event.kind, data):
                affected[segment.pk] |= contacts
    return affected


def on_contact_events(events: list[ContactEvent]) -> None:
    """Consumer of new timeline events (registered first in
    ``siyu.worker.tasks._event_consumers``): enter/leave the affected contacts of the
    affected dynamic segments. Idempotent: re-running on the same events changes
    nothing, since membership is recomputed from the facts."""
    by_workspace: dict[int, list[ContactEvent]] = defaultdict(list)
    for event in events:
        by_workspace[event.workspace_id].append(event)
    for workspace_id, batch in by_workspace.items():
        segments = list(Segment.objects.in_workspace(workspace_id).filter(kind=SegmentKind.DYNAMIC).select_related("workspace"))
        if not segments:
            continue
        affected = affected_contacts(segments, batch)
        if not affected:
            continue
        deps = {s.pk: dependencies(s.definition) for s in segments}
        for segment in _in_dependency_order(segments, deps):
            if segment.pk in affected:
                do_update_memberships(segment, affected[segment.pk])


def scheduled_pass(workspace_id: int | None = None) -> list[SegmentBuild]:
    """Rebuild every dynamic segment whose answer can change with time alone (mode
    ``scheduled``); referenced segments first."""
    qs = Segment.objects.filter(kind=SegmentKind.DYNAMIC).select_related("workspace").order_by("workspace_id", "pk")
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    segments = list(qs)
    deps = {s.pk: dependencies(s.definition) for s in segments}
    builds = []
    for segment in _in_dependency_order(segments, deps):
        if deps[segment.pk].time_relative:
            builds.append(do_build_segment(segment, mode=BuildMode.SCHEDULED))
    return builds
